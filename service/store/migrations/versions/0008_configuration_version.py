"""Configuration versions and paging receipts by sale time.

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-01

`configuration_version` holds one row whose number every catalogue or offer write raises in
its own transaction; results say which configuration computed them (spec §12). Until the
first such write there is no row: version 0. The index on receipts (sale_time, receipt_id)
lets a campaign replay read a period page by page by key (spec §13).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "configuration_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_configuration_version")),
    )
    op.create_index(
        "ix_receipts_sale_time_receipt_id", "receipts", ["sale_time", "receipt_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_receipts_sale_time_receipt_id", table_name="receipts")
    op.drop_table("configuration_version")
