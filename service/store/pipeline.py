"""Statements of one transaction sent together: one round trip on PostgreSQL.

A confirm runs a dozen statements, and its Python code needs the result of only a few of
them before it can go on (was the receipt id claimed; what are the member's counters,
document and balance once everything is written). Sent one by one, the client and the server
wait for each other a dozen times, and each wait costs more than the statement itself. A
`Batch` queues statements and sends them together when a result is read (or `send()` is
called):

- PostgreSQL: libpq's pipeline mode on the transaction's connection. The server still runs
  each statement on its own, in order, each with its own snapshot (READ COMMITTED), exactly
  as if they had been sent one at a time; only the waiting is shared. Statements are built
  with SQLAlchemy as everywhere else and compiled once per shape; values and results go
  through their column types (aware UTC datetimes, enums by name) as SQLAlchemy would do,
  then through psycopg's adapters (binary values; the arrays of a many-row insert packed
  by service.store.arrays), errors come out as SQLAlchemy's
  (IntegrityError, DataError, OperationalError), and the engine's cursor events fire for
  every statement (tracing, statement counts). What is queued goes into libpq's buffer and
  leaves in one write with the sync; each statement is prepared once per connection
  (`_Prepared`). psycopg's cursors are not used for this: in pipeline mode each
  `execute` flushed the socket on its own (a send() holding the GIL, and a wake-up of the
  server), which cost more client CPU than the rest of the confirm's Python.
- SQLite (embedded, nothing to wait for): each statement runs through SQLAlchemy as it is
  queued.

A statement that fails on PostgreSQL stops the rest of its batch; the caller rolls back, as
after any failed statement. Whoever queues must not use the session directly while
statements are queued (service.app.unit_of_work sends its batch before it hands the session
out).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any, Generic, TypeVar

from psycopg import adapt, generators
from psycopg import errors as psycopg_errors
from psycopg.adapt import PyFormat
from psycopg.pq import ConnStatus, ExecStatus, TransactionStatus
from sqlalchemy import (
    Connection,
    Engine,
    Enum,
    Insert,
    LargeBinary,
    Pool,
    String,
    bindparam,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from service.deadline import check_deadline
from service.store.arrays import Pack, packer_for

Params = Mapping[str, Any]
T = TypeVar("T")

# A transaction a batch opens sends its bounds (service.store.db: the call's remaining time as
# statement_timeout and lock_timeout) after its BEGIN, in its first round trip.
_OPENING: ContextVar[bool] = ContextVar("batch_opening", default=False)
_BOUNDS_MS = "loyalty_batch_bounds_ms"  # in the connection's info until the batch sends them


def bounds_sent_by_batch(connection: Connection, ms: int | None) -> bool:
    """Called as a transaction begins, with its bounds in ms (None: none): True when a batch
    is opening it, which then sends them with its first round trip; False when the caller
    must set them itself. Bounds an earlier transaction never sent are forgotten."""
    connection.info.pop(_BOUNDS_MS, None)
    if ms is None or not _OPENING.get():
        return False
    connection.info[_BOUNDS_MS] = ms
    return True


class Pending:
    """The result of a queued statement: its rows, once the batch is sent (reading them
    sends it)."""

    __slots__ = ("_batch", "_rows")

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        self._rows: Sequence[Sequence[Any]] | None = None

    @property
    def rows(self) -> Sequence[Sequence[Any]]:
        if self._rows is None:
            self._batch.send()
        assert self._rows is not None
        return self._rows

    def first(self) -> Sequence[Any] | None:
        rows = self.rows
        return rows[0] if rows else None

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def found(self) -> bool:
        """Whether a row came back: a conditional write (ON CONFLICT DO NOTHING, WHERE) wrote."""
        return self.first() is not None

    def integer(self) -> int | None:
        """The first column of the first row as an int; None when no row came back (a
        conditional write's RETURNING that wrote nothing)."""
        row = self.first()
        return None if row is None else int(row[0])


class Later(Generic[T]):
    """A value made from a queued statement's result, once the batch is sent."""

    __slots__ = ("_pending", "_make", "_value", "_made")

    def __init__(self, pending: Pending, make: Callable[[Pending], T]) -> None:
        self._pending = pending
        self._make = make
        self._made = False

    def value(self) -> T:
        if not self._made:
            self._value = self._make(self._pending)
            self._made = True
        return self._value


class Batch:
    """Statements queued on a session's transaction, sent together (see the module)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._queued: list[tuple[_Compiled, Any, bool, Pending | None]] = []
        self._connection: Connection | None = None
        self.dialect: str = session.get_bind().dialect.name

    @property
    def queued(self) -> int:
        return len(self._queued)

    def execute(self, statement: Executable, params: Params) -> Pending:
        """Queue a statement with one set of values; its rows come later."""
        pending = Pending(self)
        self._queue(statement, params, many=False, pending=pending)
        return pending

    def execute_many(self, statement: Executable, rows: Sequence[Params]) -> None:
        """Queue a statement without results for many sets of values (an executemany)."""
        if rows:
            self._queue(statement, rows, many=True, pending=None)

    def send(self, *, commit: bool = False) -> None:
        """Send what is queued and wait for every result. With `commit`, the transaction's
        COMMIT goes in the same round trip (PostgreSQL; the caller then commits the session,
        which has nothing left to send); on SQLite the caller's commit does it."""
        queued, self._queued = self._queued, []
        if self._connection is None or self._connection.dialect.name != "postgresql":
            return
        _send_pipelined(self._connection, queued, commit)

    def discard(self) -> None:
        """Forget what is queued (the transaction is rolled back)."""
        self._queued = []

    def _queue(
        self, statement: Executable, params: Any, *, many: bool, pending: Pending | None
    ) -> None:
        connection = self._connection
        if connection is None:
            opening = _OPENING.set(True)
            try:
                connection = self._connection = self._session.connection()
            finally:
                _OPENING.reset(opening)
        keys = tuple((params[0] if many else params).keys())
        if connection.dialect.name != "postgresql":
            result = connection.execute(statement, list(params) if many else params)
            if pending is not None:
                pending._rows = result.all() if result.returns_rows else []
            return
        if many and isinstance(statement, Insert):  # one statement, however many rows
            compiled = _compiled_unnest(statement, keys, connection.dialect)
            params = {key: [row[key] for row in params] for key in keys}
            many = False
        else:
            compiled = _compiled(statement, keys, connection.dialect)
        self._queued.append((compiled, params, many, pending))


class _Compiled:
    """A statement's PostgreSQL text and the conversions of its values and results."""

    __slots__ = (
        "_compiled",
        "sql",
        "query",
        "names",
        "binds",
        "packers",
        "results",
        "returns_rows",
    )

    def __init__(
        self,
        statement: Executable,
        keys: tuple[str, ...],
        dialect: Dialect,
    ) -> None:
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        self._compiled = compiled
        self.sql = compiled.string
        self.query, self.names = _numbered(self.sql)
        self.binds = {}
        # arrays (unnest's columns, `= ANY(:ids)`) packed by service.store.arrays, once
        # their type converted the elements: psycopg's list dumper looks at every element
        self.packers: dict[str, Pack] = {}
        for bind in compiled.binds.values():
            name = compiled.bind_names[bind]
            process = _bind_processor(bind.type, dialect)
            if process is not None:
                self.binds[name] = process
            pack = _array_packer(bind.type)
            if pack is not None:
                self.packers[name] = pack
        columns = getattr(statement, "exported_columns", ())
        self.returns_rows = bool(columns)
        self.results = [c.type.result_processor(dialect, None) for c in columns]

    def values(self, params: Params) -> dict[str, Any]:
        """The driver's values: constants of the statement added, each through its type."""
        values: dict[str, Any] = self._compiled.construct_params(params)
        for name, process in self.binds.items():
            values[name] = process(values[name])
        for name, pack in self.packers.items():
            values[name] = pack(values[name])
        return values

    def positional(self, values: Mapping[str, Any]) -> list[Any]:
        """The driver's values in the order of the numbered placeholders of `query`."""
        return [values[name] for name in self.names]

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        if not any(self.results):
            return list(fetched)
        return [
            tuple(
                value if p is None else p(value) for p, value in zip(self.results, row, strict=True)
            )
            for row in fetched
        ]


def _bind_processor(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The type's conversion of a value for the driver; none for an array of elements that
    need none (the array's would only copy the list, element by element) or of bytes (the
    driver's wrapper of each would only be unwrapped by the array's packer)."""
    if isinstance(column_type, ARRAY) and (
        isinstance(column_type.item_type, LargeBinary)
        or column_type.item_type.bind_processor(dialect) is None
    ):
        return None
    process: Callable[[Any], Any] | None = column_type.bind_processor(dialect)
    return process


def _array_packer(bind_type: Any) -> Pack | None:
    """How to pack an array parameter (an unnest column, `= ANY(:ids)`), or NULL for it;
    None: not an array, or of elements left to psycopg."""
    if not isinstance(bind_type, ARRAY):
        return None
    pack = packer_for(bind_type.item_type)
    if pack is None:
        return None
    return lambda values: None if values is None else pack(values)


_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s|%%")


def _numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """SQLAlchemy's `%(name)s` placeholders as PostgreSQL's `$n` (what psycopg does to every
    query it sends, here once per statement), and the names in their order."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        return f"${names.setdefault(name, len(names) + 1)}"

    return _PLACEHOLDER.sub(number, sql).encode(), tuple(names)


@functools.lru_cache(maxsize=256)
def _compiled(statement: Executable, keys: tuple[str, ...], dialect: Dialect) -> _Compiled:
    return _Compiled(statement, keys, dialect)


@functools.lru_cache(maxsize=64)
def _compiled_unnest(statement: Insert, keys: tuple[str, ...], dialect: Dialect) -> _Compiled:
    """INSERT ... SELECT FROM unnest(one array per column): many rows in one statement of
    one shape (a driver's executemany would send them one by one, and a VALUES list of n
    rows is a new statement for every n). ON CONFLICT clauses stay as they were."""
    table = statement.table
    arrays = [bindparam(key, type_=ARRAY(_unbounded(table.c[key].type))) for key in keys]
    rows = func.unnest(*arrays).table_valued(*keys).render_derived(name="source")
    return _Compiled(statement.from_select(keys, select(*rows.c)), keys, dialect)


def _unbounded(column_type: Any) -> Any:
    """A VARCHAR(n) array's type without n: PostgreSQL truncates what is cast to VARCHAR(n),
    while the column refuses what is too long (DataError, as for one row)."""
    if isinstance(column_type, String) and not isinstance(column_type, Enum):
        return String()
    return column_type


def _send_pipelined(
    connection: Connection,
    queued: list[tuple[_Compiled, Any, bool, Pending | None]],
    commit: bool,
) -> None:
    """Everything queued goes into libpq's output buffer, leaves with the sync in one write,
    and its results are read once, up to the sync."""
    driver: Any = connection.connection.driver_connection
    pgconn = driver.pgconn
    events = connection.dispatch  # the engine's cursor events, as for any statement
    listened = bool(events.before_cursor_execute or events.after_cursor_execute)
    cursor = driver.cursor() if listened else None  # what events are given; nothing runs on it
    converter: Any = adapt.Transformer(driver)  # psycopg's conversions, as a cursor's
    prepared = _prepared_of(connection)
    sent: list[tuple[_Compiled, Any, Any, bool, Pending | None, int]] = []
    try:
        # The driver's values first: a value that fails to convert raises before anything
        # is in libpq's buffer, so the connection is left as it was.
        converted = [
            [compiled.values(row) for row in (params if many else (params,))]
            for compiled, params, many, _pending in queued
        ]
        with driver.lock:
            idle = pgconn.transaction_status == TransactionStatus.IDLE  # (ACTIVE once queued)
            pgconn.enter_pipeline_mode()
            try:
                skipped = prepared.close_stale(pgconn)  # results before the statements'
                if idle:
                    pgconn.send_query_params(b"BEGIN", None)  # what a cursor sends first
                    skipped += 1
                skipped += _send_bounds(pgconn, connection.info.pop(_BOUNDS_MS, None))
                for (compiled, _params, many, pending), values in zip(
                    queued, converted, strict=True
                ):
                    shown = values if many else values[0]  # what the events see
                    context = SimpleNamespace()  # what event listeners keep per statement
                    if listened:
                        events.before_cursor_execute(
                            connection, cursor, compiled.sql, shown, context, many
                        )
                    results = 0
                    for one in values:
                        query, positional = compiled.query, compiled.positional(one)
                        results += prepared.send(pgconn, converter, query, positional)
                    sent.append((compiled, shown, context, many, pending, results))
                if commit:
                    # A call past its deadline commits nothing (as the engine's commit
                    # listener of service.store.db checks for any commit), then the COMMIT,
                    # queued behind the statements. The session's own commit comes after:
                    # it finds the transaction ended and has nothing to send.
                    check_deadline("commit")
                    pgconn.send_query_params(b"COMMIT", None)
                pgconn.pipeline_sync()
                answers = driver.wait(_results_to_sync(pgconn))
            finally:
                if pgconn.status == ConnStatus.OK:
                    pgconn.exit_pipeline_mode()
        _raise_first_error(answers, driver.info.encoding)
    except connection.dialect.loaded_dbapi.Error as error:
        prepared.forget()
        raise _translated(connection, queued, error) from error
    finally:
        if cursor is not None:
            cursor.close()
    answered = iter(answers[skipped:])
    for compiled, shown, context, many, pending, results in sent:
        for _ in range(results):
            last = next(answered)  # a statement's own results come last
        if listened:
            events.after_cursor_execute(connection, cursor, compiled.sql, shown, context, many)
        if pending is not None and compiled.returns_rows:
            pending._rows = compiled.rows(_loaded(converter, last))
        elif pending is not None:
            pending._rows = []


def bounds_statement(ms: int) -> str:
    """One statement that sets both bounds of the transaction (SET LOCAL would take two)."""
    return (
        f"SELECT set_config('statement_timeout', '{ms}', true), "
        f"set_config('lock_timeout', '{ms}', true)"
    )


def _send_bounds(pgconn: Any, ms: int | None) -> int:
    """The transaction's bounds (`bounds_sent_by_batch`); how many statements that sent."""
    if ms is None:
        return 0
    pgconn.send_query_params(bounds_statement(ms).encode(), None)
    return 1


# Prepared statements kept per connection, as psycopg's `prepared_max`: an integer's type
# follows its size (int2, int4, int8), so a statement has a few keys.
MOST_PREPARED = 100


class _Prepared:
    """The statements a batch prepared on one connection (PostgreSQL keeps a prepared
    statement for the connection's life, whatever its transactions do), keyed like
    psycopg's own: the text and its values' types. psycopg deallocates every prepared
    statement of a connection after a rollback that follows one of its own, so after any
    rollback (and after a batch that failed, whose statements may be half prepared) the
    names are forgotten and closed on the server with the next batch: closing a name that
    no longer exists is not an error."""

    __slots__ = ("names", "stale", "made")

    def __init__(self) -> None:
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.stale: list[bytes] = []
        self.made = 0

    def forget(self) -> None:
        self.stale.extend(self.names.values())
        self.names.clear()

    def send(self, pgconn: Any, converter: Any, query: bytes, values: Sequence[Any]) -> int:
        """The statement into libpq's output buffer (nothing is sent yet), prepared the
        first time, its values dumped by psycopg's adapters in binary (text would quote
        each element of an array with a regular expression). How many results it will have
        (the preparation has one)."""
        params = converter.dump_sequence(values, [PyFormat.BINARY] * len(values))
        types, formats = converter.types, converter.formats
        key = (query, tuple(types))
        name = self.names.get(key)
        results = 1
        if name is None:
            self.made += 1
            name = self.names[key] = b"loyalty_%d" % self.made
            pgconn.send_prepare(name, query, param_types=types)
            results += 1
        pgconn.send_query_prepared(name, params, param_formats=formats)
        return results

    def close_stale(self, pgconn: Any) -> int:
        """At a batch's start: close the forgotten names on the server (all of them once
        there are MOST_PREPARED); how many results that will have."""
        if len(self.names) >= MOST_PREPARED:
            self.forget()
        closed = len(self.stale)
        for name in self.stale:
            pgconn.send_close_prepared(name)
        self.stale.clear()
        return closed


_PREPARED = "loyalty_prepared"  # the key of a connection's _Prepared in its pool record's info


def _prepared_of(connection: Connection) -> _Prepared:
    info = connection.connection.info
    prepared = info.get(_PREPARED)
    if prepared is None:
        prepared = info[_PREPARED] = _Prepared()
    return prepared


def forget_prepared(info: dict[Any, Any], driver: Any) -> None:
    """Before a rollback (`info`: the pool record's): psycopg sends one (and may deallocate)
    only in a transaction. Whoever rolls back on the driver itself, where no SQLAlchemy
    event sees it, calls this first."""
    prepared = info.get(_PREPARED)
    if prepared is not None and driver.info.transaction_status != TransactionStatus.IDLE:
        prepared.forget()


@event.listens_for(Engine, "rollback")
@event.listens_for(Engine, "rollback_savepoint")
def _on_rollback(connection: Connection, *_args: Any) -> None:
    if not connection.invalidated:
        record = connection.connection
        forget_prepared(record.info, record.driver_connection)


@event.listens_for(Pool, "reset")
def _on_reset(dbapi_connection: Any, record: Any, _state: Any) -> None:
    forget_prepared(record.info, dbapi_connection)  # the pool rolls back what is left open


def _results_to_sync(pgconn: Any) -> Any:
    """psycopg's generator: flush, then each statement's results up to the pipeline's sync."""
    yield from generators.send(pgconn)
    answers: list[list[Any]] = []
    while True:
        results = yield from generators.fetch_many(pgconn)
        if results and results[-1].status == ExecStatus.PIPELINE_SYNC:
            return answers
        answers.append(results)


def _raise_first_error(answers: list[list[Any]], encoding: str) -> None:
    """The first statement that failed raises its error (those after it were not run)."""
    for results in answers:
        for result in results:
            if result.status == ExecStatus.FATAL_ERROR:
                raise psycopg_errors.error_from_result(result, encoding=encoding)
            if result.status == ExecStatus.PIPELINE_ABORTED:
                raise psycopg_errors.PipelineAborted("pipeline aborted")


def _loaded(converter: Any, results: list[Any]) -> list[Sequence[Any]]:
    """A statement's rows through psycopg's loaders, as a cursor's fetchall()."""
    result = results[-1]
    converter.set_pgresult(result)
    rows: list[Sequence[Any]] = converter.load_rows(0, result.ntuples, tuple)
    return rows


def _translated(
    connection: Connection,
    queued: list[tuple[_Compiled, Any, bool, Pending | None]],
    error: Exception,
) -> StatementError:
    """The driver's error as SQLAlchemy raises it; a lost connection is invalidated, so the
    pool does not hand it out again."""
    dialect = connection.dialect
    driver = connection.connection.driver_connection
    lost = dialect.is_disconnect(error, driver, None)  # type: ignore[arg-type]
    if lost:
        connection.invalidate(error)
    statement = "; ".join(compiled.sql[:60] for compiled, *_ in queued)
    return DBAPIError.instance(
        statement,
        None,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    )
