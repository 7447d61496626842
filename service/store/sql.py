"""Small SQL building blocks shared by the repositories: upsert, delete by key, chunking."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session

from service import batching

T = TypeVar("T")

# Rows per statement when keys go into an IN (...) list; well below SQLite's variable limit.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """service.batching.chunks, by default of the store's IN-list size."""
    return batching.chunks(items, size)


def keyset_pages(
    session: Session, query: Select[Any], key: ColumnElement[Any], page_size: int
) -> Iterator[Sequence[Row[Any]]]:
    """The rows of `query` in the order of `key`, a unique column selected first, one page
    per statement, each starting after the last key of the one before: no OFFSET, and no
    cursor held open between pages (a caller may commit between them)."""
    last: Any = None
    while True:
        page = query.order_by(key).limit(page_size)
        if last is not None:
            page = page.where(key > last)
        rows = session.execute(page).all()
        if rows:
            yield rows
        if len(rows) < page_size:
            return
        last = rows[-1][0]


def table_of(model: type[DeclarativeBase]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _insert(session: Session, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL only)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"the store supports SQLite and PostgreSQL, not {dialect}")


def insert_if_absent(
    session: Session, model: type[DeclarativeBase], row: Mapping[str, Any]
) -> bool:
    """INSERT one row unless its primary key exists; True when it was inserted. A concurrent
    insert of the same key waits for the other transaction and then reports False."""
    table = table_of(model)
    stmt = (
        _insert(session, table)
        .values(**row)
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return session.execute(stmt).first() is not None


def upsert(
    session: Session,
    model: type[DeclarativeBase],
    rows: Sequence[Mapping[str, Any]],
    *,
    keep: Iterable[str] = (),
    on_conflict: Callable[[Any], Mapping[str, Any]] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE, as one executemany.

    On conflict every given column is overwritten except the key and `keep`; `on_conflict`
    maps the statement's `excluded` row to SET expressions that add to or replace those
    (e.g. `lambda excluded: {"used": table.c.used + excluded.used}`).
    Works on SQLite and PostgreSQL, and is safe against concurrent inserts of the same key.
    """
    if not rows:
        return
    table = table_of(model)
    stmt = _insert(session, table)
    key = [c.name for c in table.primary_key]
    skip = set(key) | set(keep)
    set_: dict[str, Any] = {c: stmt.excluded[c] for c in rows[0] if c not in skip}
    if on_conflict is not None:
        set_.update(on_conflict(stmt.excluded))
    if set_:
        stmt = stmt.on_conflict_do_update(index_elements=key, set_=set_)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=key)
    session.execute(stmt, list(rows))


def insert_rows(session: Session, model: type[DeclarativeBase], rows: Sequence[Any]) -> None:
    """Plain INSERT of many rows in one executemany."""
    if rows:
        session.execute(table_of(model).insert(), list(rows))


def delete_where_in(
    session: Session, model: type[DeclarativeBase], column: str, keys: Sequence[Any]
) -> None:
    """DELETE FROM model WHERE column IN keys, chunked."""
    table = table_of(model)
    for part in chunks(keys):
        session.execute(delete(table).where(table.c[column].in_(part)))
