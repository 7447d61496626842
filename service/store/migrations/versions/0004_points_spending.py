"""Bonus points can be spent: the ledger says what each row is and when it may be spent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

`points_ledger.kind` is one of accrual, reversal, spend, return, expiry (rows written before
this revision are accruals, or reversals when a refund wrote them); `available_at` is when an
accrual's points may be spent (NULL: at once, as every earlier row) and `expires_at` when
they expire (NULL: never, as every earlier row; indexed for the expiry job). `receipt_lines.
points_spent` is what a confirm spent on the line, given back in proportion by refunds.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("points_ledger") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="accrual"))
        batch.add_column(sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_points_ledger_expires_at", ["expires_at"])
    op.execute("UPDATE points_ledger SET kind = 'reversal' WHERE refund_id IS NOT NULL")
    with op.batch_alter_table("receipt_lines") as batch:
        batch.add_column(
            sa.Column("points_spent", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("receipt_lines") as batch:
        batch.drop_column("points_spent")
    with op.batch_alter_table("points_ledger") as batch:
        batch.drop_index("ix_points_ledger_expires_at")
        batch.drop_column("expires_at")
        batch.drop_column("available_at")
        batch.drop_column("kind")
