"""Driver-level bulk statements for the hot writes and reads of an attribute import.

SQLAlchemy's executemany runs every value through its column type's bind processor (aware
datetimes to UTC, JSON to text, enums by name), which costs more than the database's own work
at millions of rows; and psycopg re-parses a long query's `%s` placeholders in Python on every
execution. So the import converts values once, into what the driver takes, and sends
hand-built statements on the session's own connection (inside its transaction):
- INSERT ... ON CONFLICT: on PostgreSQL with many rows per statement (VALUES (...), (...),
  ...) through a psycopg RawCursor with $n placeholders (nothing to parse, the same text
  every time, so the server can prepare it); on SQLite as one executemany through
  exec_driver_sql (SQLite prepares the statement once and steps it per row, which beats one
  huge statement);
- UPDATE / DELETE of a few rows as one executemany;
- `column IN (ids)` for the batch's reads as `column = ANY(array)` on PostgreSQL (one
  parameter), a plain IN list on SQLite (see `in_ids`).

Stored values are exactly what the ORM types store, so every reader sees no difference
(tests read imported members back through service.store.loader on both backends):
- times: PostgreSQL timestamptz from an aware datetime; SQLite the naive UTC text
  'YYYY-MM-DD HH:MM:SS.ffffff' that SQLAlchemy's SQLite DateTime writes;
- dates: a date (PostgreSQL), 'YYYY-MM-DD' (SQLite);
- JSON: json.dumps text (psycopg sends text untyped, so PostgreSQL takes it as json);
- enums: their name; booleans: bool (SQLite stores 1 / 0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from service.batching import chunks

ROWS_PER_STATEMENT = 500
MAX_PARAMETERS = 30_000  # below SQLite's 32,766 and PostgreSQL's 65,535 bind parameters
IDS_PER_READ = 500  # ids in one IN list (SQLite); PostgreSQL takes them as one array
_PLAIN = re.compile(r"[ !#-\[\]-~]*\Z")  # printable ASCII but " and \


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def in_ids(column: Any, ids: Sequence[str], postgres: bool) -> ColumnElement[bool]:
    """`column IN ids`: one array parameter on PostgreSQL, an IN list on SQLite."""
    result: ColumnElement[bool]
    if postgres:
        result = column == any_(bindparam(None, list(ids), type_=ARRAY(String())))
    else:
        result = column.in_(ids)
    return result


class BulkSql:
    """Statements for one session's connection and dialect, built once per shape."""

    def __init__(self, session: Session) -> None:
        self._connection = session.connection()
        self.postgres = self._connection.dialect.name == "postgresql"
        self._raw: Any = None
        if self.postgres:
            import psycopg  # the PostgreSQL driver; only needed here

            driver: Any = self._connection.connection.driver_connection
            self._raw = psycopg.RawCursor(driver)
        self._times: dict[datetime, Any] = {}
        self._groups: dict[int, tuple[str, list[int]]] = {}

    # --- values ---------------------------------------------------------------------------------

    def time(self, moment: datetime | None) -> Any:
        if moment is None:
            return None
        found = self._times.get(moment)
        if found is None:
            utc = moment.astimezone(UTC)
            found = (
                utc if self.postgres else utc.replace(tzinfo=None).isoformat(" ", "microseconds")
            )
            if len(self._times) < 10_000:
                self._times[moment] = found
        return found

    def day(self, value: date | None) -> Any:
        if value is None or self.postgres:
            return value
        return value.isoformat()

    @staticmethod
    def json(value: Any) -> str:
        return json.dumps(value)

    @staticmethod
    def json_strings(items: Sequence[str]) -> str:
        """json.dumps of a list of strings, byte for byte, without the encoder for the usual
        ids and SKUs (printable ASCII, no quote or backslash)."""
        joined = '", "'.join(items)
        if _PLAIN.match(joined):
            return f'["{joined}"]' if items else "[]"
        return json.dumps(list(items))

    # --- statements -----------------------------------------------------------------------------

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        *,
        keep: Sequence[str] = (),
        bump: str | None = None,
    ) -> None:
        """INSERT ... ON CONFLICT (key) DO UPDATE every column but the key and `keep`;
        `bump` (a counter column) becomes its stored value + 1 instead. No two rows may
        share a key (PostgreSQL refuses to update a row twice in one statement)."""
        if not rows:
            return
        skip = {*key, *keep}
        sets = [f"{c} = excluded.{c}" for c in columns if c not in skip and c != bump]
        if bump is not None:
            sets.append(f"{bump} = {table}.{bump} + 1")
        conflict = f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}"
        self._insert_rows(table, columns, rows, conflict)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        self._insert_rows(table, columns, rows, "")

    def insert_absent(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """INSERT ... ON CONFLICT (key) DO NOTHING: rows whose key is stored are left out."""
        self._insert_rows(table, columns, rows, f" ON CONFLICT ({', '.join(key)}) DO NOTHING")

    def _insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], tail: str
    ) -> None:
        if not rows:
            return
        width = len(columns)
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        if not self.postgres:  # SQLite prepares a statement once and steps it per row
            self._execute_many(head + self._value_groups(width, 1) + tail, rows)
            return
        step = max(1, min(ROWS_PER_STATEMENT, MAX_PARAMETERS // width))
        for part in chunks(rows, step):
            sql = head + self._value_groups(width, len(part)) + tail
            self._execute(sql, [value for row in part for value in row])

    def _value_groups(self, width: int, count: int) -> str:
        """ "(?, ?), (?, ?)" or "($1, $2), ($3, $4)" for `count` rows of `width` values: a
        prefix of the text for a full statement, built once per width."""
        found = self._groups.get(width)
        if found is None:
            step = max(1, min(ROWS_PER_STATEMENT, MAX_PARAMETERS // width))
            if self.postgres:
                groups = [
                    "(" + ", ".join(f"${row * width + i}" for i in range(1, width + 1)) + ")"
                    for row in range(step)
                ]
            else:
                groups = ["(" + ", ".join(["?"] * width) + ")"] * step
            text = ", ".join(groups)
            ends = [0]
            for group in groups:
                ends.append(ends[-1] + len(group) + (2 if len(ends) > 1 else 0))
            found = self._groups[width] = (text, ends)
        text, ends = found
        return text[: ends[count]]

    def update(
        self,
        table: str,
        set_columns: Sequence[str],
        where_columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """UPDATE table SET set_columns WHERE where_columns; each row gives the SET values,
        then the WHERE values."""
        marks = self._marks(len(set_columns) + len(where_columns))
        sets = ", ".join(f"{c} = {m}" for c, m in zip(set_columns, marks, strict=False))
        tail = marks[len(set_columns) :]
        where = " AND ".join(f"{c} = {m}" for c, m in zip(where_columns, tail, strict=True))
        self._execute_many(f"UPDATE {table} SET {sets} WHERE {where}", rows)

    def delete(
        self, table: str, where_columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        marks = self._marks(len(where_columns))
        where = " AND ".join(f"{c} = {m}" for c, m in zip(where_columns, marks, strict=True))
        self._execute_many(f"DELETE FROM {table} WHERE {where}", rows)

    def _marks(self, count: int) -> list[str]:
        return [f"${i}" for i in range(1, count + 1)] if self.postgres else ["?"] * count

    def _execute(self, sql: str, params: list[Any]) -> None:
        if self.postgres:
            self._raw.execute(sql, params)
        else:
            self._connection.exec_driver_sql(sql, tuple(params))

    def _execute_many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            self._raw.executemany(sql, list(rows))
        else:
            self._connection.exec_driver_sql(sql, list(rows))
