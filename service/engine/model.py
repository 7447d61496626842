"""Domain types the engine reads and returns.

Plain frozen dataclasses: no gRPC, no SQL. Units (spec §2):
- money: int minor units (kopecks, cents);
- quantity: int thousandths of a unit (1 piece = 1000, 0.753 kg = 753);
- percentages: int basis points (1500 = 15 %);
- times: timezone-aware datetimes in UTC; local dates and times are derived with zoneinfo.

Offer ids, SKUs, category, group, list, store and member ids are strings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from service.engine.points_balance import NO_POINTS, PointsHolding

PIECE_QUANTITY = 1000  # one piece, in thousandths of a unit


class Unit(enum.Enum):
    PIECE = "PIECE"
    WEIGHT = "WEIGHT"


class Level(enum.Enum):
    ALL_BUYERS = "ALL_BUYERS"
    MEMBERS_ONLY = "MEMBERS_ONLY"
    TARGET_AUDIENCE = "TARGET_AUDIENCE"
    INDIVIDUAL = "INDIVIDUAL"


class Mechanic(enum.Enum):
    """What produced a benefit: the offer's level, or for INDIVIDUAL offers which mechanic."""

    ALL_BUYERS = "ALL_BUYERS"
    MEMBERS_ONLY = "MEMBERS_ONLY"
    TARGET_AUDIENCE = "TARGET_AUDIENCE"
    FAVORITE_PRODUCTS = "FAVORITE_PRODUCTS"
    FAVORITE_CATEGORIES = "FAVORITE_CATEGORIES"
    PERSONALIZED_OFFER = "PERSONALIZED_OFFER"


class BenefitKind(enum.Enum):
    PERCENT = "PERCENT"  # value: basis points of the line amount
    AMOUNT_PER_UNIT = "AMOUNT_PER_UNIT"  # value: minor units per unit (per kg for WEIGHT)
    FIXED_PRICE = "FIXED_PRICE"  # value: minor units per unit
    BONUS_PERCENT = "BONUS_PERCENT"  # value: basis points of the paid amount, as points
    CHIPS = "CHIPS"  # value: game chips per Offer.chips_threshold paid (engine.chips)


class Stacking(enum.Enum):
    EXCLUSIVE = "EXCLUSIVE"
    COMBINABLE = "COMBINABLE"


class Channel(enum.Enum):
    POS = "POS"
    ONLINE = "ONLINE"


class Gender(enum.Enum):
    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"


class Frequency(enum.Enum):
    """How often a member may replace a filled selection (spec §7.1)."""

    ONE_TIME = "ONE_TIME"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    EVERY_N_DAYS = "EVERY_N_DAYS"


class ListSource(enum.Enum):
    PREDEFINED = "PREDEFINED"
    PURCHASE_HISTORY = "PURCHASE_HISTORY"


class LimitUnit(enum.Enum):
    RECEIPTS = "RECEIPTS"  # limit counts receipts the offer was applied on
    UNITS = "UNITS"  # limit counts quantity in thousandths of a unit


class LimitPeriod(enum.Enum):
    OFFER = "OFFER"  # the whole validity of the offer
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


# --- catalogue ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: str
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    category_ids: tuple[str, ...] = ()  # direct categories; ancestors are implied
    unit: Unit = Unit.PIECE
    min_price: int | None = None  # minor units per unit; the line is never paid below it
    excluded: bool = False  # no loyalty benefits at all (tobacco, by law)


@dataclass(frozen=True, slots=True)
class ProductGroup:
    """Listed SKUs plus whole categories (with descendants), minus exclusions."""

    id: str
    name: str
    skus: frozenset[str] = frozenset()
    category_ids: frozenset[str] = frozenset()
    excluded_skus: frozenset[str] = frozenset()
    excluded_category_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ProductList:
    """An ordered list of SKUs members may pick favorites from."""

    id: str
    name: str
    skus: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    name: str = ""
    time_zone: str | None = None  # IANA name; None: the program's zone


# --- offers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Benefit:
    kind: BenefitKind
    value: int


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Local minutes since midnight, [start, end). end <= start means the range crosses
    midnight (22:00-02:00); such a range belongs to the day it starts on."""

    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class Schedule:
    """Evaluated in the store's local time. Empty days or ranges mean every day / all day."""

    days_of_week: frozenset[int] = frozenset()  # ISO: 1 = Monday ... 7 = Sunday
    time_ranges: tuple[TimeRange, ...] = ()


@dataclass(frozen=True, slots=True)
class Audience:
    """Target-audience criteria; every criterion that is set must match."""

    segment_tags: frozenset[str] = frozenset()  # member must carry at least one of them
    min_age: int | None = None  # inclusive, whole years at the sale date
    max_age: int | None = None  # inclusive
    gender: Gender | None = None
    birthday_within_days: int | None = None  # birthday within +-N days of the sale date


@dataclass(frozen=True, slots=True)
class UsageLimit:
    unit: LimitUnit
    limit: int  # receipts, or thousandths of a unit
    period: LimitPeriod = LimitPeriod.OFFER


@dataclass(frozen=True, slots=True)
class Offer:
    """A configured offer of levels 1-3, or the general part of an INDIVIDUAL offer."""

    id: str
    name: str
    level: Level
    benefit: Benefit
    scope_group_id: str | None = None  # None: all products
    priority: int = 0  # higher first
    stacking: Stacking = Stacking.COMBINABLE
    valid_from: datetime | None = None  # inclusive; None: open
    valid_to: datetime | None = None  # exclusive; None: open
    schedule: Schedule | None = None
    store_ids: frozenset[str] = frozenset()  # empty: every store
    channels: frozenset[Channel] = frozenset()  # empty: every channel
    audience: Audience | None = None  # TARGET_AUDIENCE only
    usage_limit: UsageLimit | None = None  # per member
    text: str = ""  # printed on the receipt; empty: derived from name and benefit
    # chips (engine.chips): minor units paid per grant of benefit.value chips (kind CHIPS),
    # and the chips per unit a reward costs (0: not a reward)
    chips_threshold: int = 0
    chips_price: int = 0


@dataclass(frozen=True, slots=True)
class FavoriteProductsOffer:
    """spec §7.1: one benefit for everyone, applied to the SKUs in a member's slots.
    `offer` carries the benefit, validity, priority, stacking and filters (level INDIVIDUAL)."""

    offer: Offer
    slot_count: int
    list_source: ListSource
    product_list_id: str | None = None  # PREDEFINED only
    frequency: Frequency = Frequency.MONTHLY
    every_n_days: int = 0  # EVERY_N_DAYS only
    autofill: bool = False


# --- member state --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FavoriteCategoryTerms:
    """spec §7.2: a member's imported terms for one favorite-categories offer."""

    offer_id: str
    name: str
    group_ids: tuple[str, ...]  # categories offered, as product groups
    benefit: Benefit
    max_count: int
    acceptance_required: bool  # on: only chosen groups apply; off: every offered group applies
    chosen_group_ids: frozenset[str] = frozenset()
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    frequency: Frequency = Frequency.MONTHLY
    every_n_days: int = 0
    priority: int = 0
    stacking: Stacking = Stacking.EXCLUSIVE


@dataclass(frozen=True, slots=True)
class PersonalOffer:
    """spec §7.3: an imported per-member offer the member can only view."""

    offer_id: str
    name: str
    benefit: Benefit
    skus: frozenset[str] = frozenset()
    group_id: str | None = None  # products may be given as a group instead of / besides SKUs
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    usage_limit: UsageLimit | None = None
    priority: int = 0
    stacking: Stacking = Stacking.EXCLUSIVE


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    active: bool = True
    birth_date: date | None = None
    gender: Gender | None = None
    segment_tags: frozenset[str] = frozenset()
    # favorite-products offer id -> SKUs currently in the member's slots
    favorite_slots: Mapping[str, frozenset[str]] = field(default_factory=dict)
    favorite_categories: tuple[FavoriteCategoryTerms, ...] = ()
    personal_offers: tuple[PersonalOffer, ...] = ()
    # (offer id, period key) -> used so far: receipts or thousandths of a unit, per the
    # offer's UsageLimit. Period keys come from engine.usage.period_key().
    usage: Mapping[tuple[str, str], int] = field(default_factory=dict)
    chips: int = 0  # game chips held (the store's balance as of the last change)
    points: PointsHolding = NO_POINTS  # bonus points' lots (the store's as of the last change)


# --- receipt in, result out ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    line_id: str
    sku: str
    quantity: int  # thousandths of a unit
    price: int  # minor units per unit
    amount: int  # minor units the customer pays before loyalty benefits


@dataclass(frozen=True, slots=True)
class Receipt:
    receipt_id: str
    sale_time: datetime  # aware, UTC
    lines: tuple[Line, ...]
    store_id: str = ""
    channel: Channel = Channel.POS
    member: Member | None = None
    chips_to_spend: int = 0  # at most this many of the member's chips unlock rewards
    # the coupon-gated offers a valid code on the receipt unlocks (engine.coupons)
    coupon_offers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AppliedBenefit:
    offer_id: str
    mechanic: Mechanic
    kind: BenefitKind
    discount: int  # minor units taken off the line (0 for bonus)
    points: int  # bonus points (0 for discounts)
    text: str  # short, printable: "Favorite product -15 %"


@dataclass(frozen=True, slots=True)
class RejectedCandidate:
    """Why an offer that was looked at did not apply (explain mode)."""

    offer_id: str
    mechanic: Mechanic
    reason: str  # e.g. "outside schedule", "lost to exclusive offer X", "cut by min price"
    discount: int = 0  # what it would have given, where it was valued


@dataclass(frozen=True, slots=True)
class LineResult:
    line_id: str
    sku: str
    amount: int
    discount: int
    paid: int  # amount - discount
    points: int
    benefits: tuple[AppliedBenefit, ...]
    known_sku: bool = True
    rejected: tuple[RejectedCandidate, ...] = ()


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """What confirming this result uses up of an offer's per-member limit."""

    offer_id: str
    period_key: str
    used: int  # receipts (1) or thousandths of a unit


@dataclass(frozen=True, slots=True)
class ChipsAward:
    """Chips a grant offer gives on one line (its share of the receipt's grant)."""

    line_id: str
    offer_id: str
    mechanic: Mechanic
    chips: int
    text: str


@dataclass(frozen=True, slots=True)
class RewardUse:
    """Chips spent on a reward on one line; its discount is one of the line's benefits."""

    line_id: str
    offer_id: str
    chips_spent: int


@dataclass(frozen=True, slots=True)
class ChipsResult:
    """What chips do on a receipt (engine.chips): granted by line and offer, spent on
    rewards by line."""

    awards: tuple[ChipsAward, ...] = ()
    rewards: tuple[RewardUse, ...] = ()

    @property
    def granted(self) -> int:
        return sum(award.chips for award in self.awards)

    @property
    def spent(self) -> int:
        return sum(reward.chips_spent for reward in self.rewards)


@dataclass(frozen=True, slots=True)
class PointsSpend:
    """Points a receipt spends (engine.points_spend, spec §21): per line in the result's
    order, and the figures behind it."""

    requested: int
    available: int
    allowed: int  # the most the limits allow on this receipt, whatever the balance
    point_value: int
    per_line: tuple[int, ...]  # points spent per line, in the result's order

    @property
    def spent(self) -> int:
        return sum(self.per_line)

    @property
    def value(self) -> int:
        return self.spent * self.point_value


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    receipt_id: str
    lines: tuple[LineResult, ...]  # in the request's order
    total_amount: int
    total_discount: int
    total_paid: int
    total_points: int
    unknown_skus: tuple[str, ...] = ()
    usage: tuple[UsageCharge, ...] = ()
    configuration_version: int = 0  # of the snapshot that computed it (spec §12)
    # offer id -> what is left of its per-member limit after this receipt (limited offers
    # that applied to an identified member only; spec §19)
    usage_left: tuple[tuple[str, int], ...] = ()
    chips: ChipsResult | None = None  # None: no chips offer applied, none spent
    spend: PointsSpend | None = None  # None: the request spent no points
