"""Arrays packed by service.store.arrays read back from a real PostgreSQL as they were sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, Text

from service.engine.model import Channel
from service.store.arrays import packer_for
from service.store.models import enum_type
from service.store.types import UtcDateTime

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC)
SECOND = timedelta(seconds=1)  # (12,000 days back is before PostgreSQL's epoch, 2000-01-01)

CASES = [
    (BigInteger(), "bigint", [0, 1, -1, 2**63 - 1, -(2**63), None, 42]),
    (Integer(), "integer", [0, 7, -7, 2**31 - 1]),
    (Boolean(), "boolean", [True, False, None]),
    (String(40), "varchar", ["", "R-0000001", "Молоко 2,5 %", None, "a'b\"c{d},e"]),
    (Text(), "text", ["{}", "NULL", "x" * 1000]),
    (LargeBinary(), "bytea", [b"", b"\x00\xff", None, bytes(range(256))]),
    (
        UtcDateTime(),
        "timestamptz",
        [NOW, NOW - timedelta(days=9000), None, NOW + timedelta(days=1)],
    ),
    (enum_type(Channel), "varchar", ["POS", "ONLINE"]),
]


@pytest.mark.parametrize(("column_type", "sql_type", "values"), CASES, ids=[c[1] for c in CASES])
def test_a_packed_array_reads_back_as_sent(pg_url: str, column_type, sql_type, values) -> None:
    pack = packer_for(column_type)
    assert pack is not None
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            f"SELECT unnest(%b::{sql_type}[])",
            [pack(values)],  # type: ignore[arg-type]
        ).fetchall()
    assert [row[0] for row in rows] == values


def test_an_empty_array_reads_back_empty(pg_url: str) -> None:
    pack = packer_for(BigInteger())
    assert pack is not None
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        found = connection.execute("SELECT cardinality(%b::bigint[])", [pack([])]).fetchone()
    assert found == (0,)


def test_types_it_does_not_know_are_left_to_psycopg() -> None:
    from sqlalchemy import JSON, DateTime, Numeric

    assert packer_for(Numeric()) is None
    assert packer_for(JSON()) is None
    assert packer_for(DateTime()) is None  # naive: not the store's
