"""A batch on PostgreSQL (service/store/pipeline.py) sends its statements prepared, once per
connection: what it prepared survives commits, and a rollback (after which psycopg may
deallocate every prepared statement of the connection) never leaves it using a name the
server no longer has. Real PostgreSQL, one pooled connection so every batch reuses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Enum,
    LargeBinary,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    column,
    func,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.engine.model import Channel
from service.store import db, pipeline
from service.store.db import make_engine, make_session_factory
from service.store.pipeline import Batch

pytestmark = pytest.mark.postgres

ITEMS = table("items", column("id", String), column("note", String))
INSERT = ITEMS.insert().returning(ITEMS.c.id)
READ = select(ITEMS.c.note).where(ITEMS.c.id == bindparam("b_id"))


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    made = make_engine(pg_url, pool_size=1, max_overflow=0)
    with made.begin() as connection:
        connection.execute(text("CREATE TABLE items (id VARCHAR PRIMARY KEY, note VARCHAR)"))
    yield made
    made.dispose()


def server_prepared(session: Session) -> int:
    return int(session.scalar(text("SELECT count(*) FROM pg_prepared_statements")) or 0)


def insert_and_read(sessions: sessionmaker[Session], item_id: str, *, commit: bool) -> str:
    with sessions() as session:
        batch = Batch(session)
        inserted = batch.execute(INSERT, {"id": item_id, "note": f"note {item_id}"})
        note = batch.execute(READ, {"b_id": item_id})
        batch.send(commit=commit)
        assert inserted.scalar() == item_id
        if commit:
            session.commit()
        else:
            session.rollback()
        return str(note.scalar())


def test_statements_are_prepared_once_and_reused_across_transactions(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    for n in range(5):
        assert insert_and_read(sessions, f"I{n}", commit=True) == f"note I{n}"
    with sessions() as session:
        assert server_prepared(session) == 2  # the insert and the read, whatever the count


def test_after_psycopg_deallocated_everything_a_batch_prepares_again(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    assert insert_and_read(sessions, "A", commit=True) == "note A"
    with sessions() as session:  # psycopg prepares a statement run often enough itself ...
        for _ in range(6):
            session.execute(text("SELECT count(*) FROM items")).scalar()
        session.rollback()  # ... and then deallocates all on a rollback
        assert server_prepared(session) == 0

    # the first batch after it closes the names and prepares again, in its own transaction
    assert insert_and_read(sessions, "B", commit=False) == "note B"  # rolled back
    assert insert_and_read(sessions, "C", commit=False) == "note C"  # rolled back
    assert insert_and_read(sessions, "C", commit=True) == "note C"
    with sessions() as session:
        assert list(session.scalars(select(ITEMS.c.id).order_by(ITEMS.c.id))) == ["A", "C"]


def test_a_failed_batch_raises_the_first_error_and_the_next_one_works(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    assert insert_and_read(sessions, "D", commit=True) == "note D"
    with pytest.raises(IntegrityError):
        insert_and_read(sessions, "D", commit=True)  # the key exists: nothing after it ran
    assert insert_and_read(sessions, "E", commit=True) == "note E"
    with sessions() as session:
        assert server_prepared(session) == 2  # the failed batch's names were closed
        assert list(session.scalars(select(ITEMS.c.id).order_by(ITEMS.c.id))) == ["D", "E"]


def test_a_connection_keeps_a_bounded_number_of_prepared_statements(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "MOST_PREPARED", 1)
    sessions = make_session_factory(engine)
    for n in range(4):  # each batch prepares two, and closes those of the batch before
        assert insert_and_read(sessions, f"F{n}", commit=True) == f"note F{n}"
    with sessions() as session:
        assert server_prepared(session) == 2
        assert session.scalar(select(func.count()).select_from(ITEMS)) == 4


BLOBS = Table(
    "blobs",
    MetaData(),
    Column("id", String, primary_key=True),
    Column("kind", Enum(Channel, native_enum=False, length=8)),
    Column("body", LargeBinary),
)


def test_many_rows_of_bytes_and_enums_are_inserted_in_one_statement(engine: Engine) -> None:
    """The unnest insert packs a bytea column from the rows' bytes and an enum column from
    the rows' enum members, through the enum's own conversion (by name)."""
    BLOBS.create(engine)
    rows = [
        {"id": "a", "kind": Channel.POS, "body": b"\x00\xffraw"},
        {"id": "b", "kind": Channel.ONLINE, "body": b""},
    ]
    sessions = make_session_factory(engine)
    with sessions() as session:
        batch = Batch(session)
        batch.execute_many(BLOBS.insert(), rows)
        batch.send(commit=True)
        session.commit()
    with engine.connect() as connection:
        stored = connection.execute(select(BLOBS).order_by(BLOBS.c.id)).all()
    assert [tuple(row) for row in stored] == [
        ("a", Channel.POS, b"\x00\xffraw"),
        ("b", Channel.ONLINE, b""),
    ]


def test_a_value_that_cannot_be_converted_leaves_the_connection_usable(engine: Engine) -> None:
    BLOBS.create(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        batch = Batch(session)
        batch.execute(INSERT, {"id": "ok", "note": "sent first"})
        batch.execute_many(BLOBS.insert(), [{"id": "x", "kind": 5, "body": b""}])
        with pytest.raises(LookupError):
            batch.send()
        session.rollback()
    assert insert_and_read(sessions, "after", commit=True) == "note after"


def test_pings_of_an_idle_connection_never_take_its_prepared_statements(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection idle a while is pinged when checked out (SELECT 1, then a rollback on
    the driver, which no SQLAlchemy event sees). Once psycopg prepared a query of its own
    (any query its cursors ran five times, as reads outside a batch do), that rollback
    deallocates every prepared statement of the connection, the batch's too: the next
    confirm on it failed (a quiet till's first receipt after a pause)."""
    sessions = make_session_factory(engine)
    assert insert_and_read(sessions, "A", commit=True) == "note A"  # the batch prepares
    for _ in range(8):
        with sessions() as session:  # a read outside any batch, as the back office makes
            assert session.scalar(READ, {"b_id": "A"}) == "note A"
            session.commit()
    monkeypatch.setattr(db, "PG_PING_AFTER_IDLE_S", -1.0)  # as after a pause
    assert insert_and_read(sessions, "B", commit=True) == "note B"


def test_an_array_parameter_is_sent_packed_with_its_nulls_and_as_null(engine: Engine) -> None:
    """`= ANY(:ids)` takes its array packed by service.store.arrays (psycopg's list dumper
    inspected every element): the same rows as a list expanded per call gives, NULL
    elements and a NULL array included."""
    ids = bindparam("ids", type_=ARRAY(String()))
    notes = select(ITEMS.c.note).where(ITEMS.c.id == any_(ids)).order_by(ITEMS.c.id)
    assert "ids" in pipeline._compiled(notes, ("ids",), engine.dialect).packers  # noqa: SLF001
    sessions = make_session_factory(engine)
    for item_id in ("a", "b", "é"):
        insert_and_read(sessions, item_id, commit=True)
    with sessions() as session:
        batch = Batch(session)
        found = batch.execute(notes, {"ids": ["é", None, "a", "missing"]})
        none = batch.execute(notes, {"ids": None})
        empty = batch.execute(notes, {"ids": []})
        batch.send()
        assert [tuple(row) for row in found.rows] == [("note a",), ("note é",)]
        assert list(none.rows) == [] and list(empty.rows) == []
