"""The test PostgreSQL helper fails loudly, and cleans up, where the server cannot run."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.pg import PostgresCluster, PostgresUnavailable


def test_missing_postgresql_binaries_give_a_clear_error_and_leave_nothing_behind(tmp_path):
    cluster = PostgresCluster(bin_dir=tmp_path / "no-such-bin")
    with pytest.raises(PostgresUnavailable, match="binaries not found .* PG_BIN_DIR"), cluster:
        pass
    assert not cluster.root.exists()


@pytest.mark.postgres
def test_each_new_database_starts_empty_and_is_reachable(pg_cluster):
    url = pg_cluster.create_database()
    name = url.rsplit("/", 1)[1]
    dsn = f"host=127.0.0.1 port={pg_cluster.port} user=postgres dbname={name}"
    with psycopg.connect(dsn) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    pg_cluster.drop_database(name)
    assert tables == (0,)
    assert Path(pg_cluster.root).is_dir()
