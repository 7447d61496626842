"""Coupon campaigns, unique codes and redemptions (spec §22, docs/coupons.md).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01

New tables only. A shared code's uses are counted in `coupon_campaigns.used`; a unique code
is free while `coupon_codes.receipt_id` is NULL; `coupon_redemptions` says which receipt
redeemed which code, so a refund can release it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = sa.String(64)
_CODE = sa.String(32)
_ENUM = sa.String(24)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "coupon_campaigns",
        sa.Column("id", _KEY, nullable=False),
        sa.Column("offer_id", _KEY, nullable=False),
        sa.Column("kind", _ENUM, nullable=False),
        sa.Column("shared_code", _CODE, nullable=True),
        sa.Column("per_member_limit", sa.BigInteger(), nullable=False),
        sa.Column("total_limit", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", _TIME, nullable=True),
        sa.Column("valid_to", _TIME, nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_coupon_campaigns"),
        sa.UniqueConstraint("shared_code", name="uq_coupon_campaigns_shared_code"),
    )
    op.create_index("ix_coupon_campaigns_offer_id", "coupon_campaigns", ["offer_id"])
    op.create_table(
        "coupon_codes",
        sa.Column("code", _CODE, nullable=False),
        sa.Column("campaign_id", _KEY, nullable=False),
        sa.Column("member_id", _KEY, nullable=True),
        sa.Column("receipt_id", _KEY, nullable=True),
        sa.Column("used_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("code", name="pk_coupon_codes"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["coupon_campaigns.id"],
            name="fk_coupon_codes_campaign_id_coupon_campaigns",
        ),
    )
    op.create_index("ix_coupon_codes_campaign_id", "coupon_codes", ["campaign_id"])
    op.create_index("ix_coupon_codes_member_id", "coupon_codes", ["member_id"])
    op.create_table(
        "coupon_redemptions",
        sa.Column("receipt_id", _KEY, nullable=False),
        sa.Column("code", _CODE, nullable=False),
        sa.Column("campaign_id", _KEY, nullable=False),
        sa.Column("kind", _ENUM, nullable=False),
        sa.Column("member_id", _KEY, nullable=True),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.Column("redeemed_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", "code", name="pk_coupon_redemptions"),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["receipts.receipt_id"],
            name="fk_coupon_redemptions_receipt_id_receipts",
        ),
    )
    op.create_index(
        "ix_coupon_redemptions_campaign_id_member_id",
        "coupon_redemptions",
        ["campaign_id", "member_id"],
    )


def downgrade() -> None:
    op.drop_table("coupon_redemptions")
    op.drop_table("coupon_codes")
    op.drop_table("coupon_campaigns")
