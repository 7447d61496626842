"""Event consumers belong to the credential that created them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

`outbox_acks.owner` is the credential id whose first acknowledgement created the consumer;
another credential can neither move nor read its position. Consumers acknowledged before
this revision have no owner ("") and belong to the first credential that acknowledges them
next; the member jobs' own cursors keep "".
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_acks") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("outbox_acks") as batch:
        batch.drop_column("owner")
