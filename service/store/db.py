"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from service.deadline import check_deadline, remaining_seconds
from service.store.member_documents import backfill
from service.store.pipeline import bounds_sent_by_batch, bounds_statement, forget_prepared
from service.store.watchdog import WATCHDOG

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
BUSY_TIMEOUT_STEP_MS = 100
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 20
PG_POOL_TIMEOUT_S = 2.0
PG_CONNECT_ARGS = {
    "connect_timeout": 2,  # seconds; libpq's least
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,  # ms: unacknowledged data this long means the peer is gone
    # Times travel as UTC: in another session zone, psycopg cannot read back a time within
    # hours of year 1 or 9999 (which a Timestamp may carry).
    "options": "-c TimeZone=UTC",
}
# A connection idle longer than this is pinged when checked out (under the watchdog); one
# used more recently is trusted, and if it is dead after all the call fails over as UNAVAILABLE.
PG_PING_AFTER_IDLE_S = 5.0

# The PostgreSQL advisory lock every migration holds ("loyalty" in ASCII); advisory locks
# belong to one database, so two databases on one server do not wait for each other.
MIGRATION_LOCK_KEY = 0x6C6F79616C7479


def normalize_url(url: str) -> str:
    """PostgreSQL URLs always go through psycopg 3: postgresql:// -> postgresql+psycopg://."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings the service relies on.

    SQLite: WAL, foreign keys on, a busy timeout, usable from any thread, and transactions
    that really begin at BEGIN (the pysqlite driver otherwise defers them to the first write).
    PostgreSQL: psycopg 3, pre-ping, a bounded pool.
    """
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    options: dict[str, Any] = {
        "pool_size": PG_POOL_SIZE,
        "max_overflow": PG_MAX_OVERFLOW,
        "pool_recycle": 1800,
        # Bounds on every wait the client side can bound (docs/operations.md): a pool that
        # is exhausted, a server that does not accept, a peer that is gone.
        "pool_timeout": PG_POOL_TIMEOUT_S,
        "connect_args": PG_CONNECT_ARGS,
    }
    options.update(kwargs)
    engine = create_engine(url, **options)
    _configure_postgres(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
        ):  # the busy timeout comes from the driver's `timeout` argument
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A call's remaining time bounds how long this transaction waits for the write lock.
        # Rounded down to whole steps, and set only when it changes on this connection: most
        # transactions are a cached member's one read, and the PRAGMA would double their cost.
        left = remaining_seconds()
        wait_ms = SQLITE_BUSY_TIMEOUT_MS if left is None else _bounded_ms(left)
        if wait_ms > BUSY_TIMEOUT_STEP_MS:
            wait_ms -= wait_ms % BUSY_TIMEOUT_STEP_MS
        if connection.info.get("busy_timeout_ms") != wait_ms:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
            connection.info["busy_timeout_ms"] = wait_ms
        connection.exec_driver_sql("BEGIN")

    event.listen(engine, "commit", _refuse_commit_past_deadline)


def _bounded_ms(seconds_left: float) -> int:
    return max(1, min(SQLITE_BUSY_TIMEOUT_MS, int(seconds_left * 1000)))


def _refuse_commit_past_deadline(_connection: Any) -> None:
    check_deadline("commit")


def _configure_postgres(engine: Engine) -> None:
    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # Everything the connection does until checkin ends by the call's deadline, even
        # when the server hangs (service/store/watchdog.py).
        left = remaining_seconds()
        if left is not None:
            WATCHDOG.arm(id(record), dbapi_connection, time.monotonic() + max(left, 0.0))
        idle = time.monotonic() - record.info.get("checked_in_at", time.monotonic())
        if idle > PG_PING_AFTER_IDLE_S:
            _ping(dbapi_connection, record.info)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        WATCHDOG.disarm(id(record))
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A call's remaining time bounds every statement and lock wait of its transaction.
        left = remaining_seconds()
        ms = None if left is None else _bounded_ms(left) if left > 0 else 1
        if bounds_sent_by_batch(connection, ms) or ms is None:
            return  # a batch sends them with its first round trip (service.store.pipeline)
        # one round trip more than the BEGIN's own (counted on the wire; psycopg's pipeline
        # mode gives no less)
        with connection.connection.driver_connection.pipeline():
            connection.exec_driver_sql(bounds_statement(ms))

    event.listen(engine, "commit", _refuse_commit_past_deadline)


def _ping(dbapi_connection: Any, info: dict[Any, Any]) -> None:
    """Raise DisconnectionError for a dead connection: the pool then takes a new one. The
    rollback after the ping is psycopg's own, which deallocates every prepared statement of
    the connection once psycopg prepared one (it prepares any query its cursors ran five
    times): the batch's are forgotten first, or the next confirm would find them gone."""
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        forget_prepared(info, dbapi_connection)
        dbapi_connection.rollback()
    except Exception as exc:
        raise DisconnectionError(str(exc)) from exc


def trace_statements(engine: Engine, tracer_provider: TracerProvider) -> None:
    """A client span per statement of this engine (opentelemetry-instrumentation-sqlalchemy's
    EngineTracer), a child of the call's span. The instrumentor's instrument() would also
    patch create_engine for every engine of the process, once per process: servers made in
    one process (the tests) could not each trace their own store."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__
    from opentelemetry.metrics import NoOpMeter

    tracer = tracer_provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
    unmetered = NoOpMeter("loyalty").create_up_down_counter("db.client.connections.usage")
    EngineTracer(_WithinSpans(tracer), engine, unmetered)  # type: ignore[no-untyped-call]


class _WithinSpans:
    """Statement spans only inside another span (a call's). Without a parent a statement
    would start a trace of its own: the change follower polls ten times a second and the
    member jobs run on their own, and each poll would be a trace."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Any = None, **kwargs: Any) -> Any:
        from opentelemetry import trace

        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (rows are mapped to frozen dataclasses)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def read_snapshot(session_factory: Callable[[], Session]) -> Iterator[Session]:
    """A session whose reads all see one consistent snapshot, rolled back at the end.

    PostgreSQL runs it at REPEATABLE READ (READ COMMITTED, the default, gives each statement
    its own snapshot); SQLite's transaction already reads one snapshot from its first read.
    """
    with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            yield session
        finally:
            session.rollback()


def alembic_config(url: str) -> Config:
    """An Alembic configuration built in code: no alembic.ini on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> str | None:
    """Bring the database at `url` to `revision` (alembic upgrade), creating it if needed,
    holding the migration lock; returns the revision it is at."""
    engine = make_engine(url)
    try:
        with migration_lock(engine):
            return upgrade(engine, revision)
    finally:
        engine.dispose()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """migrate() for a caller holding the migration lock. When this applied revisions up to
    head, also write the member documents that are missing or in an older format: finding
    them scans every member (seconds for a million), so a start with nothing to migrate
    skips it."""
    with engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    # Alembic's own INFO lines are quieted (service/logs.py): this one says it all.
    if after == before:
        log.info("store at revision %s", after)
    else:
        log.info("store migrated from revision %s to %s", before or "none", after)
    if revision == "head" and after != before:
        with Session(engine) as session:
            backfill(session)
    return after


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """One migration at a time on a database, however many replicas start together: the
    others wait, then find it at head (and the demo data loaded: prepare_store). Without it,
    two upgrades of a new PostgreSQL database both create alembic_version (a unique
    violation on pg_type), and on SQLite a transaction that read before another committed
    gets "database is locked" at its first write, without waiting out the busy timeout."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":  # private to this process: nobody to wait for
        yield
        return
    with open(f"{database}.migration-lock", "a") as lock_file:  # beside -wal and -shm
        _lock_exclusively(lock_file.fileno(), database)
        yield  # closing the file releases the lock


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    """The migration lock on its own connection, outside the migration's transaction: it is
    held across the upgrade's commit and the document backfill's batches, and released with
    the connection if this process dies."""
    key = {"key": MIGRATION_LOCK_KEY}
    with engine.connect() as plain:
        connection = plain.execution_options(isolation_level="AUTOCOMMIT")
        if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            log.info("waiting for another replica's migration")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)


def _lock_exclusively(fd: int, database: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("waiting for another process's migration of %s", database)
        fcntl.flock(fd, fcntl.LOCK_EX)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at; None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class NoStore(LookupError):
    """The URL names no database, or one that was never migrated: a tool that only reads or
    edits a store says so instead of creating an empty one."""


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for another backend or an in-memory database)."""
    parsed = make_url(normalize_url(url))
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return None if database.startswith("file:") else Path(database)


def require_store(url: str, *, create_flag: str = "") -> None:
    """Raise NoStore unless `url` names an existing, migrated database; creates nothing.
    `create_flag` is the tool's flag that would create it, for the message."""
    how = f"use {create_flag}" if create_flag else "the server makes it on its first start"
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise NoStore(f"no database at {path} (for a new one, {how})")
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    if revision is None:
        raise NoStore(f"the database has no schema ({how})")
