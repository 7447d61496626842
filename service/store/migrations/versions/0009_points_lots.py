"""Points lots: the open part of each member's points ledger (spec §21, docs/points.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

`points_lots` holds what is left of each accrual and of spent points given back, and a
member's debt (kind "debt"), so a confirm or refund reads those rows instead of replaying the
member's whole ledger. It is filled from the ledger by the engine's replay (the rule that
defined the balance until now). Points that expired before the upgrade and that no expiry row
recorded yet get theirs now, as the expiry job would have written, and their lots are closed:
after this the expiry job records exactly the lots it closes. The member documents gain the
lots too (format 2), rewritten after the upgrade (service.store.db.upgrade).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

from service.engine.points_balance import Movement, PointsHolding, replay
from service.store.types import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 1000  # lot rows per insert

_LEDGER = sa.table(
    "points_ledger",
    sa.column("id", sa.BigInteger()),
    sa.column("member_id", sa.String()),
    sa.column("receipt_id", sa.String()),
    sa.column("refund_id", sa.String()),
    sa.column("offer_id", sa.String()),
    sa.column("points", sa.BigInteger()),
    sa.column("created_at", UtcDateTime()),
    sa.column("kind", sa.String()),
    sa.column("available_at", UtcDateTime()),
    sa.column("expires_at", UtcDateTime()),
)


def upgrade() -> None:
    op.create_table(
        "points_lots",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("points_left", sa.BigInteger(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name="fk_points_lots_member_id_members",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_points_lots"),
    )
    op.create_index("ix_points_lots_member_id_id", "points_lots", ["member_id", "id"])
    op.create_index("ix_points_lots_expires_at", "points_lots", ["expires_at"])
    _fill(op.get_bind(), datetime.now(UTC))


def downgrade() -> None:
    op.drop_index("ix_points_lots_expires_at", "points_lots")
    op.drop_index("ix_points_lots_member_id_id", "points_lots")
    op.drop_table("points_lots")


_LOTS = sa.table(
    "points_lots",
    sa.column("member_id", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("points_left", sa.BigInteger()),
    sa.column("available_at", UtcDateTime()),
    sa.column("expires_at", UtcDateTime()),
    sa.column("receipt_id", sa.String()),
    sa.column("created_at", UtcDateTime()),
)


def _fill(connection: sa.Connection, now: datetime) -> None:
    """Each member's lots as the replay of their ledger leaves them at `now`."""
    rows = connection.execute(
        sa.select(
            _LEDGER.c.member_id,
            _LEDGER.c.kind,
            _LEDGER.c.points,
            _LEDGER.c.created_at,
            _LEDGER.c.available_at,
            _LEDGER.c.expires_at,
            _LEDGER.c.receipt_id,
        ).order_by(_LEDGER.c.member_id, _LEDGER.c.id)
    ).all()  # read before writing: SQLite cannot write while a read is open on it
    open_lots: list[dict[str, Any]] = []
    expiries: list[dict[str, Any]] = []
    for member_id, member_rows in groupby(rows, key=lambda row: row.member_id):
        holding, recorded = replay(Movement(*row[1:]) for row in member_rows)
        unrecorded = holding.position(now).expired - recorded
        if unrecorded > 0:
            expiries.append(_expiry_row(member_id, unrecorded, now))
        open_lots += _lot_rows(member_id, holding.without_expired(now), now)
    for part in _batches(open_lots):
        connection.execute(_LOTS.insert(), part)
    if expiries:
        connection.execute(_LEDGER.insert(), expiries)


def _lot_rows(member_id: str, holding: PointsHolding, now: datetime) -> Iterator[dict[str, Any]]:
    for lot in holding.lots:
        yield {
            "member_id": member_id,
            "kind": lot.kind,
            "points_left": lot.left,
            "available_at": lot.available_at,
            "expires_at": lot.expires_at,
            "receipt_id": lot.receipt_id,
            "created_at": now,
        }
    if holding.debt:
        yield {
            "member_id": member_id,
            "kind": "debt",
            "points_left": holding.debt,
            "available_at": None,
            "expires_at": None,
            "receipt_id": None,
            "created_at": now,
        }


def _expiry_row(member_id: str, points: int, now: datetime) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "receipt_id": None,
        "refund_id": None,
        "offer_id": "",
        "points": -points,
        "created_at": now,
        "kind": "expiry",
        "available_at": None,
        "expires_at": None,
    }


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]
