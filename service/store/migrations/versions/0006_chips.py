"""Game chips (spec §20, docs/chips.md): chips offers, chips on receipt and refund lines, each
member's balance and its ledger.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01

Additive: new columns default to 0 (no chips), existing rows are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NEW_COLUMNS = {
    "offers": ("chips_threshold", "chips_price"),
    "receipt_lines": ("chips", "chips_spent"),
    "refund_lines": ("chips", "chips_spent"),
}


def upgrade() -> None:
    for table, columns in _NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(
                    sa.Column(column, sa.BigInteger(), nullable=False, server_default="0")
                )
    op.create_table(
        "chip_balances",
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name="fk_chip_balances_member_id_members",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", name="pk_chip_balances"),
    )
    op.create_table(
        "chips_ledger",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("receipt_id", sa.String(64), nullable=False),
        sa.Column("refund_id", sa.String(64), nullable=True),
        sa.Column("chips", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name="fk_chips_ledger_member_id_members",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["receipt_id"], ["receipts.receipt_id"], name="fk_chips_ledger_receipt_id_receipts"
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.refund_id"], name="fk_chips_ledger_refund_id_refunds"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chips_ledger"),
    )
    op.create_index("ix_chips_ledger_member_id_id", "chips_ledger", ["member_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_chips_ledger_member_id_id", "chips_ledger")
    op.drop_table("chips_ledger")
    op.drop_table("chip_balances")
    for table, columns in _NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column)
