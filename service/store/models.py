"""The SQL schema, as SQLAlchemy declarative models (SQLite and PostgreSQL alike).

Conventions:
- money and quantities are BIGINT (minor units, thousandths of a unit), never floats;
- times are aware UTC datetimes (UtcDateTime); enums are stored by name as VARCHAR;
- foreign keys only tie a row to the aggregate that owns it (a card to its member, an item to
  its group). References across aggregates (a slot's SKU, an offer's scope group) stay loose, so
  catalogue, offers and member data can be written in any order and replaced independently;
- every migration in migrations/versions must leave the database equal to this metadata
  (a test compares them).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service import limits
from service.engine.coupons import CODE_LENGTH as COUPON_CODE
from service.engine.coupons import CampaignKind
from service.engine.model import (
    BenefitKind,
    Channel,
    Frequency,
    Gender,
    Level,
    LimitPeriod,
    LimitUnit,
    ListSource,
    Stacking,
    Unit,
)
from service.store.types import UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY = limits.ID  # ids, SKUs, offer and member ids
NAME = limits.NAME
ENUM_LENGTH = 24

# Autoincrementing BIGINT; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def enum_type(enum_class: type[enum.Enum]) -> Enum:
    """An enum stored by name in a VARCHAR (no native type, no CHECK: portable, easy to extend)."""
    return Enum(enum_class, native_enum=False, length=ENUM_LENGTH, validate_strings=True)


class GroupItemKind(enum.Enum):
    """What one row of a product group's criterion is."""

    SKU = "SKU"
    CATEGORY = "CATEGORY"
    EXCLUDED_SKU = "EXCLUDED_SKU"
    EXCLUDED_CATEGORY = "EXCLUDED_CATEGORY"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _member_fk() -> Any:
    return ForeignKey("members.id", ondelete="CASCADE")


# --- catalogue ---------------------------------------------------------------------------


class CategoryRow(Base):
    __tablename__ = "categories"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    parent_id: Mapped[str | None] = mapped_column(String(KEY), index=True)


class ProductRow(Base):
    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    unit: Mapped[Unit] = mapped_column(enum_type(Unit))
    min_price: Mapped[int | None] = mapped_column(BigInteger)
    excluded: Mapped[bool] = mapped_column(Boolean)


class ProductCategoryRow(Base):
    """A product's direct category; `position` keeps the order of Product.category_ids."""

    __tablename__ = "product_categories"

    sku: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("products.sku", ondelete="CASCADE"), primary_key=True
    )
    category_id: Mapped[str] = mapped_column(String(KEY), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class ProductGroupRow(Base):
    __tablename__ = "product_groups"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))


class ProductGroupItemRow(Base):
    __tablename__ = "product_group_items"

    group_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("product_groups.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[GroupItemKind] = mapped_column(enum_type(GroupItemKind), primary_key=True)
    ref: Mapped[str] = mapped_column(String(KEY), primary_key=True)


class ProductListRow(Base):
    __tablename__ = "product_lists"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))


class ProductListItemRow(Base):
    __tablename__ = "product_list_items"
    __table_args__ = (UniqueConstraint("list_id", "sku"),)

    list_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("product_lists.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(KEY))


class StoreRow(Base):
    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    time_zone: Mapped[str | None] = mapped_column(String(limits.ZONE))


# --- offers ------------------------------------------------------------------------------


class OfferRow(Base):
    """An offer of levels 1-3, or the general part of a favorite-products offer.

    `schedule` is {"days": [1..7], "ranges": [[start_minute, end_minute], ...]} or NULL;
    `audience` is {"segment_tags": [...], "min_age", "max_age", "gender",
    "birthday_within_days"} or NULL; `store_ids` and `channels` are lists (empty: every one).
    """

    __tablename__ = "offers"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    level: Mapped[Level] = mapped_column(enum_type(Level))
    benefit_kind: Mapped[BenefitKind] = mapped_column(enum_type(BenefitKind))
    benefit_value: Mapped[int] = mapped_column(BigInteger)
    scope_group_id: Mapped[str | None] = mapped_column(String(KEY))
    priority: Mapped[int] = mapped_column(Integer)
    stacking: Mapped[Stacking] = mapped_column(enum_type(Stacking))
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    store_ids: Mapped[list[str]] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON)
    audience: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    limit_unit: Mapped[LimitUnit | None] = mapped_column(enum_type(LimitUnit))
    limit_value: Mapped[int | None] = mapped_column(BigInteger)
    limit_period: Mapped[LimitPeriod | None] = mapped_column(enum_type(LimitPeriod))
    text: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # chips (migration 0006): a grant's threshold, a reward's chips per unit; 0: none
    chips_threshold: Mapped[int] = mapped_column(BigInteger, server_default="0")
    chips_price: Mapped[int] = mapped_column(BigInteger, server_default="0")


class FavoriteProductsOfferRow(Base):
    __tablename__ = "favorite_product_offers"

    offer_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True
    )
    slot_count: Mapped[int] = mapped_column(Integer)
    list_source: Mapped[ListSource] = mapped_column(enum_type(ListSource))
    product_list_id: Mapped[str | None] = mapped_column(String(KEY))
    frequency: Mapped[Frequency] = mapped_column(enum_type(Frequency))
    every_n_days: Mapped[int] = mapped_column(Integer)
    autofill: Mapped[bool] = mapped_column(Boolean)


# --- members and their individual terms ----------------------------------------------------


class MemberRow(Base):
    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[Gender | None] = mapped_column(enum_type(Gender))
    segment_tags: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CardRow(Base):
    __tablename__ = "cards"

    card_number: Mapped[str] = mapped_column(String(limits.CARD), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), index=True)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FavoriteSelectionRow(Base):
    """A member's selection state for one favorite-products offer.

    `version` grows on every change of the slots, so a change can be made conditional
    (UPDATE ... WHERE version = :seen) and "one change per period" holds across replicas.
    """

    __tablename__ = "favorite_selections"

    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    last_change_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer)


class FavoriteSlotRow(Base):
    __tablename__ = "favorite_slots"
    __table_args__ = (
        UniqueConstraint("member_id", "offer_id", "sku"),
        ForeignKeyConstraint(
            ["member_id", "offer_id"],
            ["favorite_selections.member_id", "favorite_selections.offer_id"],
            ondelete="CASCADE",
        ),
    )

    member_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    slot_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(KEY))
    auto_filled: Mapped[bool] = mapped_column(Boolean)
    filled_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FavoriteCategoryAttributeRow(Base):
    """A member's imported terms for one favorite-categories offer (spec §7.2).

    `group_ids` is the ordered list of groups offered; choices live in
    favorite_category_choices. `version` and `last_change_at` guard member choices.
    """

    __tablename__ = "favorite_category_attributes"

    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    group_ids: Mapped[list[str]] = mapped_column(JSON)
    benefit_kind: Mapped[BenefitKind] = mapped_column(enum_type(BenefitKind))
    benefit_value: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    max_count: Mapped[int] = mapped_column(Integer)
    acceptance_required: Mapped[bool] = mapped_column(Boolean)
    frequency: Mapped[Frequency] = mapped_column(enum_type(Frequency))
    every_n_days: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    stacking: Mapped[Stacking] = mapped_column(enum_type(Stacking))
    import_id: Mapped[str | None] = mapped_column(String(KEY))
    last_change_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FavoriteCategoryChoiceRow(Base):
    __tablename__ = "favorite_category_choices"
    __table_args__ = (
        ForeignKeyConstraint(
            ["member_id", "offer_id"],
            ["favorite_category_attributes.member_id", "favorite_category_attributes.offer_id"],
            ondelete="CASCADE",
            name="fk_favorite_category_choices_attribute",  # the generated name is > 63 chars
        ),
    )

    member_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)


class PersonalOfferRow(Base):
    """An imported personalized offer (spec §7.3); `skus` is a sorted list. Revoked rows stay."""

    __tablename__ = "personal_offers"

    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    skus: Mapped[list[str]] = mapped_column(JSON)
    group_id: Mapped[str | None] = mapped_column(String(KEY))
    benefit_kind: Mapped[BenefitKind] = mapped_column(enum_type(BenefitKind))
    benefit_value: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    limit_unit: Mapped[LimitUnit | None] = mapped_column(enum_type(LimitUnit))
    limit_value: Mapped[int | None] = mapped_column(BigInteger)
    limit_period: Mapped[LimitPeriod | None] = mapped_column(enum_type(LimitPeriod))
    priority: Mapped[int] = mapped_column(Integer)
    stacking: Mapped[Stacking] = mapped_column(enum_type(Stacking))
    revoked: Mapped[bool] = mapped_column(Boolean)
    import_id: Mapped[str | None] = mapped_column(String(KEY))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OfferUsageRow(Base):
    """How much of an offer's per-member limit is used in one period (receipts or units)."""

    __tablename__ = "offer_usage"

    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    period_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MemberDocumentRow(Base):
    """A member's whole state (profile, slots, terms, personal offers, usage) as one JSON text,
    rewritten by every write to that state in the same transaction, so a cold member is one
    indexed read. `format` says which codec wrote it; readers skip other formats."""

    __tablename__ = "member_documents"

    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), primary_key=True)
    format: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PurchaseRow(Base):
    """Confirmed, not refunded purchases of one SKU by one member in one local month."""

    __tablename__ = "purchase_history"

    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # 'YYYY-MM'
    sku: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)


# --- receipts, refunds, points -------------------------------------------------------------


class ReceiptRow(Base):
    """A confirmed receipt. `fingerprint` hashes the request, `response` is the stored reply
    that a repeated confirm returns unchanged. The (sale_time, receipt_id) index lets a
    campaign replay page through a period by key (migration 0008)."""

    __tablename__ = "receipts"
    __table_args__ = (Index("ix_receipts_sale_time_receipt_id", "sale_time", "receipt_id"),)

    receipt_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    store_id: Mapped[str] = mapped_column(String(KEY))
    channel: Mapped[Channel] = mapped_column(enum_type(Channel))
    member_id: Mapped[str | None] = mapped_column(String(KEY), ForeignKey("members.id"), index=True)
    sale_time: Mapped[datetime] = mapped_column(UtcDateTime)
    fingerprint: Mapped[str] = mapped_column(String(KEY))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    total_discount: Mapped[int] = mapped_column(BigInteger)
    total_paid: Mapped[int] = mapped_column(BigInteger)
    total_points: Mapped[int] = mapped_column(BigInteger)
    confirmed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReceiptLineRow(Base):
    __tablename__ = "receipt_lines"

    receipt_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("receipts.receipt_id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)  # request order, from 0
    line_id: Mapped[str] = mapped_column(String(KEY))
    sku: Mapped[str] = mapped_column(String(KEY))
    quantity: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger)
    paid: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    # chips granted on the line and spent on its reward (migration 0006)
    chips: Mapped[int] = mapped_column(BigInteger, server_default="0")
    chips_spent: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Bonus points spent on the line (migration 0004); refunds give them back in proportion.
    points_spent: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The line's benefits in the order applied, as JSON (service.store.codec,
    # migration 0010): one row per line, where a row per benefit cost a confirm a third of
    # its statements' time.
    benefits: Mapped[str] = mapped_column(Text, server_default="[]")


class RefundRow(Base):
    __tablename__ = "refunds"

    refund_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("receipts.receipt_id"), index=True
    )
    fingerprint: Mapped[str] = mapped_column(String(KEY))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RefundLineRow(Base):
    """What one refund takes back of one receipt line (`line_no` of the receipt)."""

    __tablename__ = "refund_lines"

    refund_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("refunds.refund_id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    # chips taken back (granted) and given back (spent) (migration 0006)
    chips: Mapped[int] = mapped_column(BigInteger, server_default="0")
    chips_spent: Mapped[int] = mapped_column(BigInteger, server_default="0")


class PointsLedgerRow(Base):
    """One movement of a member's bonus points (`kind`, service.store.points_repo): an
    accrual (positive, on confirm), a reversal of one (negative, on refund), a spending
    (negative, on confirm), spent points given back (positive, on refund) or the record of
    points that expired (negative, by the expiry job)."""

    __tablename__ = "points_ledger"
    __table_args__ = (Index(None, "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(KEY), ForeignKey("members.id"))
    receipt_id: Mapped[str | None] = mapped_column(
        String(KEY), ForeignKey("receipts.receipt_id"), index=True
    )
    refund_id: Mapped[str | None] = mapped_column(String(KEY), ForeignKey("refunds.refund_id"))
    offer_id: Mapped[str] = mapped_column(String(KEY))
    points: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # migration 0004: the kind of movement, when its points may be spent (NULL: at once) and
    # when they expire (NULL: never)
    kind: Mapped[str] = mapped_column(String(16), server_default="accrual")
    available_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)


class PointsLotRow(Base):
    """The open part of a member's points (migration 0009, service.store.points_repo): what
    is left of an accrual or of spent points given back (`kind`, `points_left` > 0), or their
    debt (kind "debt": points taken back after they were spent, paid by the next points).
    Kept with every movement, so a confirm or refund reads these rows, not the ledger; a lot
    taken to nothing is deleted, an expired one by the expiry job, which records it."""

    __tablename__ = "points_lots"
    __table_args__ = (Index(None, "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk())
    kind: Mapped[str] = mapped_column(String(16))
    points_left: Mapped[int] = mapped_column(BigInteger)
    available_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    receipt_id: Mapped[str | None] = mapped_column(String(KEY), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChipBalanceRow(Base):
    """A member's game chips (migration 0006). Never below zero: a debit is one conditional
    UPDATE (balance >= chips), so confirms racing on any replicas cannot overdraw it."""

    __tablename__ = "chip_balances"

    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk(), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChipsLedgerRow(Base):
    """One change of a member's chips: granted or spent by a confirm, reversed by a refund."""

    __tablename__ = "chips_ledger"
    __table_args__ = (Index(None, "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(KEY), _member_fk())
    receipt_id: Mapped[str] = mapped_column(String(KEY), ForeignKey("receipts.receipt_id"))
    refund_id: Mapped[str | None] = mapped_column(String(KEY), ForeignKey("refunds.refund_id"))
    chips: Mapped[int] = mapped_column(BigInteger)  # signed: what the balance gained
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- sync, notifications, audit, imports, credentials ----------------------------------------


class ConfigurationVersionRow(Base):
    """The configuration version: one row, raised in the transaction of every catalogue or
    offer write (catalog_repo), so every replica that loads the same catalogue and offers
    reads the same number with them (spec §12). No row yet: version 0."""

    __tablename__ = "configuration_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class ChangeFeedRow(Base):
    """One change a replica must apply to its cache: (entity kind, key) at a position.

    Positions are handed out at insert, not at commit: a follower must not assume that every
    position below the highest one it saw is already visible.
    """

    __tablename__ = "change_feed"
    __table_args__ = {"sqlite_autoincrement": True}

    position: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_kind: Mapped[str] = mapped_column(String(32))
    entity_key: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class OutboxRow(Base):
    """An event a member should hear about, for channel adapters and stream subscribers."""

    __tablename__ = "outbox"
    __table_args__ = (Index(None, "member_id", "position"), {"sqlite_autoincrement": True})

    position: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str | None] = mapped_column(String(KEY))
    event_type: Mapped[str] = mapped_column(String(KEY))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OutboxAckRow(Base):
    """The last outbox position a consumer (channel adapter) has processed."""

    __tablename__ = "outbox_acks"

    consumer: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The credential that created it (migration 0003); "" for the jobs' cursors.
    owner: Mapped[str] = mapped_column(String(KEY), server_default="")


class AuditLogRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "member_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(KEY))
    member_id: Mapped[str | None] = mapped_column(String(KEY))
    offer_id: Mapped[str | None] = mapped_column(String(KEY))
    before: Mapped[Any | None] = mapped_column(JSON)
    after: Mapped[Any | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class ImportRow(Base):
    """A bulk import, idempotent by import_id; counts show progress."""

    __tablename__ = "imports"

    import_id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str | None] = mapped_column(String(KEY))
    rows_total: Mapped[int] = mapped_column(BigInteger)
    rows_applied: Mapped[int] = mapped_column(BigInteger)
    rows_rejected: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiCredentialRow(Base):
    """A caller's credential: only a hash of the secret is kept; empty store_ids: any store."""

    __tablename__ = "api_credentials"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(NAME))
    store_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- coupons ------------------------------------------------------------------------------------


class CouponCampaignRow(Base):
    """A coupon campaign (engine.coupons.CouponCampaign). `used` counts the redemptions of a
    shared code not released by refunds: the conditional UPDATE of this counter is what
    keeps the total limit across replicas, and its row lock orders a shared code's confirms."""

    __tablename__ = "coupon_campaigns"

    id: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(KEY), index=True)
    kind: Mapped[CampaignKind] = mapped_column(enum_type(CampaignKind))
    shared_code: Mapped[str | None] = mapped_column(String(COUPON_CODE), unique=True)
    per_member_limit: Mapped[int] = mapped_column(BigInteger)
    total_limit: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CouponCodeRow(Base):
    """A unique single-use code; `receipt_id` is the receipt that redeemed it (NULL: free).
    `member_id` (loose, like a slot's SKU) names the only member who may use it."""

    __tablename__ = "coupon_codes"

    code: Mapped[str] = mapped_column(String(COUPON_CODE), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("coupon_campaigns.id"), index=True
    )
    member_id: Mapped[str | None] = mapped_column(String(KEY), index=True)
    receipt_id: Mapped[str | None] = mapped_column(String(KEY))
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CouponRedemptionRow(Base):
    """A code a confirmed receipt redeemed; `released` once a refund gave it back."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (Index(None, "campaign_id", "member_id"),)

    receipt_id: Mapped[str] = mapped_column(
        String(KEY), ForeignKey("receipts.receipt_id"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(COUPON_CODE), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(KEY))
    kind: Mapped[CampaignKind] = mapped_column(enum_type(CampaignKind))
    member_id: Mapped[str | None] = mapped_column(String(KEY))
    released: Mapped[bool] = mapped_column(Boolean)
    redeemed_at: Mapped[datetime] = mapped_column(UtcDateTime)
