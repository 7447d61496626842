"""The Alembic migrations build exactly the schema of the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta, timezone
from threading import Barrier

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect, select, text
from sqlalchemy.orm import Session

from service.engine.model import Gender
from service.store.db import alembic_config, current_revision, make_engine, migrate
from service.store.loader import load_members
from service.store.member_documents import members_without_document
from service.store.models import Base, MemberRow

HEAD = "0010"
REPLICAS = 4


def schema_differences(url: str, metadata: MetaData = Base.metadata) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def assert_migration_matches_models(url: str) -> None:
    migrate(url)
    assert schema_differences(url) == []
    engine = make_engine(url)
    try:
        assert current_revision(engine) == HEAD
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set(Base.metadata.tables)
    finally:
        engine.dispose()


def test_migrating_a_new_sqlite_file_creates_exactly_the_tables_of_the_models(sqlite_url):
    assert_migration_matches_models(sqlite_url)


@pytest.mark.postgres
def test_migrating_a_new_postgresql_database_creates_exactly_the_tables_of_the_models(pg_url):
    assert_migration_matches_models(pg_url)


def test_the_schema_comparison_notices_a_table_the_migrations_lack(sqlite_url):
    migrate(sqlite_url)
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table("not_migrated", metadata, Column("id", Integer, primary_key=True))
    differences = schema_differences(sqlite_url, metadata)
    assert [d[0] for d in differences] == ["add_table"]  # type: ignore[index]


def test_a_database_never_migrated_has_no_revision(sqlite_url):
    engine = make_engine(sqlite_url)
    assert current_revision(engine) is None
    engine.dispose()


def test_migrating_again_is_harmless_and_data_survives(sqlite_url):
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            MemberRow.__table__.insert(),
            {"id": "M1", "active": True, "segment_tags": [], "created_at": now, "updated_at": now},
        )
    migrate(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(select(MemberRow.id)).scalars().all() == ["M1"]
    engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_upgrading_a_database_with_members_writes_their_documents(backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    migrate(url, "0001")
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            MemberRow.__table__.insert(),
            [
                {
                    "id": f"M{i}",
                    "active": True,
                    "segment_tags": [f"tag{i}"],
                    "gender": "FEMALE",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(3)
            ],  # fmt: skip
        )
    migrate(url)
    with Session(engine) as session:
        members = load_members(session, ["M0", "M1", "M2"])
        assert members_without_document(session) == []
    engine.dispose()
    assert [(m.id, m.segment_tags, m.gender) for m in members.values()] == [
        (f"M{i}", {f"tag{i}"}, Gender.FEMALE) for i in range(3)
    ]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_downgrading_to_base_removes_every_table_and_upgrading_restores_them(backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    migrate(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate(url)
    assert schema_differences(url) == []


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    engine.dispose()


def test_a_plain_postgresql_url_is_served_by_psycopg_3():
    engine = make_engine("postgresql://user@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_times_come_back_aware_in_utc_and_naive_times_are_refused(backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    migrate(url)
    engine = make_engine(url)
    moscow_noon = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=3)))
    row = {"id": "M1", "active": True, "segment_tags": [], "updated_at": moscow_noon}
    with engine.begin() as connection:
        connection.execute(MemberRow.__table__.insert(), {**row, "created_at": moscow_noon})
    with engine.connect() as connection:
        stored = connection.execute(select(MemberRow.created_at)).scalar_one()
        raw = connection.execute(text("SELECT created_at FROM members")).scalar_one()
    assert stored == moscow_noon and stored.tzinfo == UTC
    assert str(raw).startswith("2026-03-01 09:00:00.123456")
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(
            MemberRow.__table__.insert(),
            {**row, "id": "M2", "created_at": datetime(2026, 3, 1, 12, 0)},
        )
    engine.dispose()


def test_a_start_with_nothing_to_migrate_does_not_scan_for_missing_documents(sqlite_url):
    """Finding members without a document scans them all; only an upgrade does it."""
    migrate(sqlite_url, "0001")
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    row = {"id": "M1", "active": True, "segment_tags": [], "created_at": now, "updated_at": now}
    with engine.begin() as connection:
        connection.execute(MemberRow.__table__.insert(), row)
    migrate(sqlite_url)  # 0001 -> 0002: M1 gets its document
    with engine.begin() as connection:
        connection.execute(MemberRow.__table__.insert(), {**row, "id": "M2"})  # behind the API
    migrate(sqlite_url)  # at head already
    with Session(engine) as session:
        assert members_without_document(session) == ["M2"]
    engine.dispose()


def _migrate_with_the_others(url: str, start_together: Barrier) -> None:
    start_together.wait(timeout=60)
    migrate(url)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_replicas_migrating_a_new_database_at_the_same_moment_all_succeed(backend, request):
    """Replicas started together each migrate at start: the migrations wait for one another
    instead of creating the same tables (and PostgreSQL types) at once."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate replicas
    start_together = spawn.Barrier(REPLICAS)
    replicas = [
        spawn.Process(target=_migrate_with_the_others, args=(url, start_together))
        for _ in range(REPLICAS)
    ]
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.join(timeout=120)
        assert [r.exitcode for r in replicas] == [0] * REPLICAS
    finally:
        for replica in replicas:
            if replica.is_alive():
                replica.kill()
                replica.join()
    assert schema_differences(url) == []
