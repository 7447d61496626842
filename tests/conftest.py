"""Shared fixtures: a real SQLite file and a real PostgreSQL server started by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import make_engine, make_session_factory, migrate
from service.store.loader import iter_member_ids, load_member, load_members_from_rows
from service.store.member_documents import members_without_document
from tests.pg import PostgresCluster, PostgresUnavailable


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL 15 server for the whole session, stopped and removed at the end.

    Fails (never skips) when PostgreSQL cannot be started here."""
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresUnavailable as exc:
        cluster.close()
        pytest.fail(f"cannot start PostgreSQL for tests: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a new SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'store.db'}"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _new_database_url(backend: str, request: pytest.FixtureRequest, directory: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / 'store.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    request.addfinalizer(lambda: cluster.drop_database(url.rsplit("/", 1)[1]))
    return url


@contextmanager
def _session_factory(url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def assert_member_documents_current(url: str) -> None:
    """Every member's document says what their rows say: whatever a test wrote, through
    whichever writer, left no document stale (service.store.member_documents)."""
    with _session_factory(url) as sessions, sessions() as session:
        ids = list(iter_member_ids(session))
        from_rows = load_members_from_rows(session, ids)
        stale = [m for m in ids if load_member(session, m) != from_rows[m]]
        missing = members_without_document(session, limit=10)
    assert not stale, f"member documents differ from their rows: {stale[:10]}"
    assert not missing, f"members without a document: {missing}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, migrated database on each backend (SQLite file, PostgreSQL), as a URL. After
    the test, every member document must still match its rows."""
    url = _new_database_url(request.param, request, tmp_path)
    migrate(url)
    yield url
    assert_member_documents_current(url)


@pytest.fixture
def db(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on a new, migrated database, once per backend."""
    with _session_factory(db_url) as factory:
        yield factory


@pytest.fixture(scope="module", params=BACKENDS)
def shared_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """A migrated database shared by a module's tests, which must roll back what they write
    (for property tests, which cannot use function-scoped fixtures)."""
    url = _new_database_url(request.param, request, tmp_path_factory.mktemp("shared"))
    migrate(url)
    with _session_factory(url) as factory:
        yield factory
    assert_member_documents_current(url)
