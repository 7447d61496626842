"""Member documents: each member's whole state as one row, for one-read cold loads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Only the table: db.migrate() writes the documents of members that lack a current one after an
upgrade that applied revisions (member_documents.backfill), with the code that reads them, so
this revision does not depend on how a document is laid out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_documents",
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("format", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name="fk_member_documents_member_id_members",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", name="pk_member_documents"),
    )


def downgrade() -> None:
    op.drop_table("member_documents")
