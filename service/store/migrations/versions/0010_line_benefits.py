"""A receipt line's benefits in the line's own row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

`receipt_lines.benefits` holds the line's benefits in the order applied, as a JSON array of
objects keyed like the columns of `receipt_benefits` (service.store.codec.line_benefits),
and that table goes. A confirm wrote one row per benefit, each checked against its line by a
foreign key and kept in two indexes: a third of the time its statements took on PostgreSQL.
Only a refund reads them, and always a whole receipt's at once.

The rows are moved by one statement per dialect, so a large table is moved inside the
database; the downgrade expands them back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = ("offer_id", "mechanic", "kind", "discount", "points", "text")

# One object per benefit, in benefit_no order, per line (lines without benefits keep "[]").
_FILL = {
    "postgresql": """
        UPDATE receipt_lines AS l SET benefits = b.benefits
        FROM (
            SELECT receipt_id, line_no,
                   json_agg(json_build_object({pairs}) ORDER BY benefit_no)::text AS benefits
            FROM receipt_benefits GROUP BY receipt_id, line_no
        ) AS b
        WHERE l.receipt_id = b.receipt_id AND l.line_no = b.line_no
    """,
    "sqlite": """
        UPDATE receipt_lines SET benefits = (
            SELECT json_group_array(json(b.benefit)) FROM (
                SELECT json_object({pairs}) AS benefit FROM receipt_benefits AS rb
                WHERE rb.receipt_id = receipt_lines.receipt_id
                  AND rb.line_no = receipt_lines.line_no
                ORDER BY rb.benefit_no
            ) AS b
        )
        WHERE EXISTS (
            SELECT 1 FROM receipt_benefits AS rb
            WHERE rb.receipt_id = receipt_lines.receipt_id AND rb.line_no = receipt_lines.line_no
        )
    """,
}

_EXPAND = {
    "postgresql": """
        INSERT INTO receipt_benefits
        SELECT l.receipt_id, l.line_no, (e.n - 1)::int, {values}
        FROM receipt_lines AS l, json_array_elements(l.benefits::json) WITH ORDINALITY AS e(b, n)
    """,
    "sqlite": """
        INSERT INTO receipt_benefits
        SELECT l.receipt_id, l.line_no, CAST(e.key AS INTEGER), {values}
        FROM receipt_lines AS l, json_each(l.benefits) AS e
    """,
}
_VALUE = {
    "postgresql": "e.b->>'{key}'",
    "sqlite": "json_extract(e.value, '$.{key}')",
}
_NUMBERS = ("discount", "points")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("receipt_lines") as batch:
        batch.add_column(sa.Column("benefits", sa.Text(), nullable=False, server_default="[]"))
    pairs = ", ".join(f"'{key}', {key}" for key in _KEYS)
    op.execute(_FILL[dialect].format(pairs=pairs))
    op.drop_index("ix_receipt_benefits_offer_id", "receipt_benefits")
    op.drop_table("receipt_benefits")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "receipt_benefits",
        sa.Column("receipt_id", sa.String(64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("benefit_no", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.String(64), nullable=False),
        sa.Column("mechanic", sa.String(24), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("discount", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["receipt_id", "line_no"],
            ["receipt_lines.receipt_id", "receipt_lines.line_no"],
            name="fk_receipt_benefits_receipt_id_line_no_receipt_lines",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("receipt_id", "line_no", "benefit_no", name="pk_receipt_benefits"),
    )
    op.create_index("ix_receipt_benefits_offer_id", "receipt_benefits", ["offer_id"])
    values = ", ".join(_value(dialect, key) for key in _KEYS)
    op.execute(_EXPAND[dialect].format(values=values))
    # Not a batch: SQLite's batch copies the table, and dropping the old copy would cascade
    # to the benefits just expanded. SQLite drops a column in place since 3.35.
    op.drop_column("receipt_lines", "benefits")


def _value(dialect: str, key: str) -> str:
    value = _VALUE[dialect].format(key=key)
    if dialect == "postgresql" and key in _NUMBERS:
        return f"({value})::bigint"
    return value
