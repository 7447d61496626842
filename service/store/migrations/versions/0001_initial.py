"""Initial schema: catalogue, offers, members and their individual terms, receipts, refunds,
points, purchase history, change feed, outbox, audit log, imports, API credentials.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written out by hand on purpose: migrations must not depend on the models module, which
changes. Types: enums are VARCHAR(24) holding the member name; times are timestamptz
(SQLite: naive UTC text); money and quantities BIGINT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Autoincrementing BIGINT; SQLite only autoincrements INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _key(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(64), nullable=nullable)


def _name(name: str = "name") -> sa.Column[Any]:
    return sa.Column(name, sa.String(200), nullable=False)


def _enum(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(24), nullable=nullable)


def _time(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _big(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _int(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _bool(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Boolean(), nullable=False)


def _json(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.JSON(), nullable=nullable)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def _fk(
    table: str,
    columns: list[str],
    referred: str,
    ref_columns: list[str],
    cascade: bool = True,
    name: str | None = None,
) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        columns,
        [f"{referred}.{c}" for c in ref_columns],
        name=name or f"fk_{table}_{'_'.join(columns)}_{referred}",
        ondelete="CASCADE" if cascade else None,
    )


def _member_fk(table: str) -> sa.ForeignKeyConstraint:
    return _fk(table, ["member_id"], "members", ["id"])


def _index(table: str, *columns: str) -> None:
    op.create_index(f"ix_{table}_{'_'.join(columns)}", table, list(columns))


def _limit_columns() -> list[sa.Column[Any]]:
    return [_enum("limit_unit", True), _big("limit_value", True), _enum("limit_period", True)]


def upgrade() -> None:
    _create_catalogue()
    _create_offers()
    _create_members()
    _create_receipts()
    _create_sync_and_admin()


def _create_catalogue() -> None:
    op.create_table(
        "categories", _key("id"), _name(), _key("parent_id", True), _pk("categories", "id")
    )
    _index("categories", "parent_id")
    op.create_table(
        "products",
        _key("sku"),
        _name(),
        _enum("unit"),
        _big("min_price", True),
        _bool("excluded"),
        _pk("products", "sku"),
    )
    op.create_table(
        "product_categories",
        _key("sku"),
        _key("category_id"),
        _int("position"),
        _fk("product_categories", ["sku"], "products", ["sku"]),
        _pk("product_categories", "sku", "category_id"),
    )
    _index("product_categories", "category_id")
    op.create_table("product_groups", _key("id"), _name(), _pk("product_groups", "id"))
    op.create_table(
        "product_group_items",
        _key("group_id"),
        _enum("kind"),
        _key("ref"),
        _fk("product_group_items", ["group_id"], "product_groups", ["id"]),
        _pk("product_group_items", "group_id", "kind", "ref"),
    )
    op.create_table("product_lists", _key("id"), _name(), _pk("product_lists", "id"))
    op.create_table(
        "product_list_items",
        _key("list_id"),
        _int("position"),
        _key("sku"),
        _fk("product_list_items", ["list_id"], "product_lists", ["id"]),
        _pk("product_list_items", "list_id", "position"),
        sa.UniqueConstraint("list_id", "sku", name="uq_product_list_items_list_id_sku"),
    )
    op.create_table("stores", _key("id"), _name(), _key("time_zone", True), _pk("stores", "id"))


def _create_offers() -> None:
    op.create_table(
        "offers",
        _key("id"),
        _name(),
        _enum("level"),
        _enum("benefit_kind"),
        _big("benefit_value"),
        _key("scope_group_id", True),
        _int("priority"),
        _enum("stacking"),
        _time("valid_from", True),
        _time("valid_to", True),
        _json("schedule", True),
        _json("store_ids"),
        _json("channels"),
        _json("audience", True),
        *_limit_columns(),
        sa.Column("text", sa.Text(), nullable=False),
        _bool("active"),
        _time("updated_at"),
        _pk("offers", "id"),
    )
    op.create_table(
        "favorite_product_offers",
        _key("offer_id"),
        _int("slot_count"),
        _enum("list_source"),
        _key("product_list_id", True),
        _enum("frequency"),
        _int("every_n_days"),
        _bool("autofill"),
        _fk("favorite_product_offers", ["offer_id"], "offers", ["id"]),
        _pk("favorite_product_offers", "offer_id"),
    )


def _create_members() -> None:
    op.create_table(
        "members",
        _key("id"),
        _bool("active"),
        sa.Column("birth_date", sa.Date(), nullable=True),
        _enum("gender", True),
        _json("segment_tags"),
        _time("created_at"),
        _time("updated_at"),
        _pk("members", "id"),
    )
    op.create_table(
        "cards",
        sa.Column("card_number", sa.String(32), nullable=False),
        _key("member_id"),
        _bool("active"),
        _time("created_at"),
        _member_fk("cards"),
        _pk("cards", "card_number"),
    )
    _index("cards", "member_id")
    op.create_table(
        "favorite_selections",
        _key("member_id"),
        _key("offer_id"),
        _time("last_change_at", True),
        _int("version"),
        _member_fk("favorite_selections"),
        _pk("favorite_selections", "member_id", "offer_id"),
    )
    op.create_table(
        "favorite_slots",
        _key("member_id"),
        _key("offer_id"),
        _int("slot_index"),
        _key("sku"),
        _bool("auto_filled"),
        _time("filled_at"),
        _fk(
            "favorite_slots",
            ["member_id", "offer_id"],
            "favorite_selections",
            ["member_id", "offer_id"],
        ),
        _pk("favorite_slots", "member_id", "offer_id", "slot_index"),
        sa.UniqueConstraint(
            "member_id", "offer_id", "sku", name="uq_favorite_slots_member_id_offer_id_sku"
        ),
    )
    op.create_table(
        "favorite_category_attributes",
        _key("member_id"),
        _key("offer_id"),
        _name(),
        _json("group_ids"),
        _enum("benefit_kind"),
        _big("benefit_value"),
        _time("valid_from", True),
        _time("valid_to", True),
        _int("max_count"),
        _bool("acceptance_required"),
        _enum("frequency"),
        _int("every_n_days"),
        _int("priority"),
        _enum("stacking"),
        _key("import_id", True),
        _time("last_change_at", True),
        _int("version"),
        _time("updated_at"),
        _member_fk("favorite_category_attributes"),
        _pk("favorite_category_attributes", "member_id", "offer_id"),
    )
    op.create_table(
        "favorite_category_choices",
        _key("member_id"),
        _key("offer_id"),
        _key("group_id"),
        _fk(
            "favorite_category_choices",
            ["member_id", "offer_id"],
            "favorite_category_attributes",
            ["member_id", "offer_id"],
            name="fk_favorite_category_choices_attribute",
        ),
        _pk("favorite_category_choices", "member_id", "offer_id", "group_id"),
    )
    op.create_table(
        "personal_offers",
        _key("member_id"),
        _key("offer_id"),
        _name(),
        _json("skus"),
        _key("group_id", True),
        _enum("benefit_kind"),
        _big("benefit_value"),
        _time("valid_from", True),
        _time("valid_to", True),
        *_limit_columns(),
        _int("priority"),
        _enum("stacking"),
        _bool("revoked"),
        _key("import_id", True),
        _time("updated_at"),
        _member_fk("personal_offers"),
        _pk("personal_offers", "member_id", "offer_id"),
    )
    op.create_table(
        "offer_usage",
        _key("member_id"),
        _key("offer_id"),
        sa.Column("period_key", sa.String(32), nullable=False),
        _big("used"),
        _time("updated_at"),
        _member_fk("offer_usage"),
        _pk("offer_usage", "member_id", "offer_id", "period_key"),
    )
    op.create_table(
        "purchase_history",
        _key("member_id"),
        sa.Column("month", sa.String(7), nullable=False),
        _key("sku"),
        _big("quantity"),
        _big("amount"),
        _member_fk("purchase_history"),
        _pk("purchase_history", "member_id", "month", "sku"),
    )


def _create_receipts() -> None:
    op.create_table(
        "receipts",
        _key("receipt_id"),
        _key("store_id"),
        _enum("channel"),
        _key("member_id", True),
        _time("sale_time"),
        _key("fingerprint"),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        _big("total_amount"),
        _big("total_discount"),
        _big("total_paid"),
        _big("total_points"),
        _time("confirmed_at"),
        _fk("receipts", ["member_id"], "members", ["id"], cascade=False),
        _pk("receipts", "receipt_id"),
    )
    _index("receipts", "member_id")
    op.create_table(
        "receipt_lines",
        _key("receipt_id"),
        _int("line_no"),
        _key("line_id"),
        _key("sku"),
        *[_big(c) for c in ("quantity", "price", "amount", "discount", "paid", "points")],
        _fk("receipt_lines", ["receipt_id"], "receipts", ["receipt_id"]),
        _pk("receipt_lines", "receipt_id", "line_no"),
    )
    op.create_table(
        "receipt_benefits",
        _key("receipt_id"),
        _int("line_no"),
        _int("benefit_no"),
        _key("offer_id"),
        _enum("mechanic"),
        _enum("kind"),
        _big("discount"),
        _big("points"),
        sa.Column("text", sa.String(200), nullable=False),
        _fk(
            "receipt_benefits",
            ["receipt_id", "line_no"],
            "receipt_lines",
            ["receipt_id", "line_no"],
        ),
        _pk("receipt_benefits", "receipt_id", "line_no", "benefit_no"),
    )
    _index("receipt_benefits", "offer_id")
    op.create_table(
        "refunds",
        _key("refund_id"),
        _key("receipt_id"),
        _key("fingerprint"),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        _time("created_at"),
        _fk("refunds", ["receipt_id"], "receipts", ["receipt_id"], cascade=False),
        _pk("refunds", "refund_id"),
    )
    _index("refunds", "receipt_id")
    op.create_table(
        "refund_lines",
        _key("refund_id"),
        _int("line_no"),
        *[_big(c) for c in ("quantity", "amount", "discount", "points")],
        _fk("refund_lines", ["refund_id"], "refunds", ["refund_id"]),
        _pk("refund_lines", "refund_id", "line_no"),
    )
    op.create_table(
        "points_ledger",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        _key("member_id"),
        _key("receipt_id", True),
        _key("refund_id", True),
        _key("offer_id"),
        _big("points"),
        _time("created_at"),
        _fk("points_ledger", ["member_id"], "members", ["id"], cascade=False),
        _fk("points_ledger", ["receipt_id"], "receipts", ["receipt_id"], cascade=False),
        _fk("points_ledger", ["refund_id"], "refunds", ["refund_id"], cascade=False),
        _pk("points_ledger", "id"),
    )
    _index("points_ledger", "member_id", "id")
    _index("points_ledger", "receipt_id")


def _create_sync_and_admin() -> None:
    op.create_table(
        "change_feed",
        sa.Column("position", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("entity_kind", sa.String(32), nullable=False),
        sa.Column("entity_key", sa.String(200), nullable=False),
        _time("created_at"),
        _pk("change_feed", "position"),
        sqlite_autoincrement=True,
    )
    _index("change_feed", "created_at")
    op.create_table(
        "outbox",
        sa.Column("position", BIG_ID, autoincrement=True, nullable=False),
        _key("member_id", True),
        _key("event_type"),
        _json("payload"),
        _time("created_at"),
        _pk("outbox", "position"),
        sqlite_autoincrement=True,
    )
    _index("outbox", "member_id", "position")
    op.create_table(
        "outbox_acks",
        _key("consumer"),
        _big("position"),
        _time("updated_at"),
        _pk("outbox_acks", "consumer"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        _name("actor"),
        _key("action"),
        _key("member_id", True),
        _key("offer_id", True),
        _json("before", True),
        _json("after", True),
        _time("at"),
        _pk("audit_log", "id"),
    )
    _index("audit_log", "member_id", "at")
    op.create_table(
        "imports",
        _key("import_id"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _key("fingerprint", True),
        _big("rows_total"),
        _big("rows_applied"),
        _big("rows_rejected"),
        _time("created_at"),
        _time("updated_at"),
        _time("finished_at", True),
        _pk("imports", "import_id"),
    )
    op.create_table(
        "api_credentials",
        _key("id"),
        _name(),
        sa.Column("role", sa.String(32), nullable=False),
        _name("secret_hash"),
        _json("store_ids"),
        _time("created_at"),
        _time("revoked_at", True),
        _pk("api_credentials", "id"),
    )


TABLES_IN_DROP_ORDER = (
    "api_credentials",
    "imports",
    "audit_log",
    "outbox_acks",
    "outbox",
    "change_feed",
    "points_ledger",
    "refund_lines",
    "refunds",
    "receipt_benefits",
    "receipt_lines",
    "receipts",
    "purchase_history",
    "offer_usage",
    "personal_offers",
    "favorite_category_choices",
    "favorite_category_attributes",
    "favorite_slots",
    "favorite_selections",
    "cards",
    "members",
    "favorite_product_offers",
    "offers",
    "stores",
    "product_list_items",
    "product_lists",
    "product_group_items",
    "product_groups",
    "product_categories",
    "products",
    "categories",
)


def downgrade() -> None:
    for table in TABLES_IN_DROP_ORDER:
        op.drop_table(table)
