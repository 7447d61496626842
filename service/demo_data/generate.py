"""Builds the demo data set as engine domain objects: deterministic (seeded random generator),
with every time relative to a given `now`. Nothing here touches the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from service.demo_data.catalogue import ASSORTMENT, CATEGORIES, Assortment
from service.engine.coupons import CampaignKind, CouponCampaign
from service.engine.model import (
    Audience,
    Benefit,
    BenefitKind,
    Category,
    Channel,
    FavoriteProductsOffer,
    Frequency,
    Gender,
    Level,
    LimitPeriod,
    LimitUnit,
    ListSource,
    Offer,
    Product,
    ProductGroup,
    ProductList,
    Schedule,
    Stacking,
    Store,
    TimeRange,
    UsageLimit,
)

SEED = 20260301
PROGRAM_ZONE = ZoneInfo("Europe/Moscow")
MEMBER_COUNT = 1000
SHOWCASE_MEMBER = "M000001"
SHOWCASE_CARD = "2000000000001"

FAVORITE_PRODUCTS = "I-FAV-PRODUCTS"  # PREDEFINED list, 3 slots, weekly
FAVORITE_HISTORY = "I-FAV-HISTORY"  # last month's purchases, 5 slots, monthly, auto-fill
FAVORITE_CATEGORIES = "I-FAV-CATEGORIES"  # per-member imported terms
FAVORITES_LIST = "L-FAVORITES"
FOOD_ROOTS = ("dairy", "bakery", "produce", "meat", "fish", "grocery", "sweets", "beverages")
CATEGORY_CHOICES = tuple(f"G-{root.upper()}" for root in (*FOOD_ROOTS, "household"))

# The products the showcase receipt is made of (name of the product in the catalogue).
SHOWCASE = {
    "weighed": "Bananas",
    "yellow_price": "Milk 2.5 % 930 ml, Green Meadow",
    "favorite": "Greek yogurt 2 % 140 g, Green Meadow",
    "category": "Milk chocolate 90 g, Red October",
    "personal": "Ground coffee 250 g, Live Coffee",
    "history": "Buckwheat 900 g, Mistral",
    "tobacco": "Cigarettes Classic 20 pcs, Tabak No. 1",
}


# The chips reward: these products at a token price for chips (docs/chips.md).
CHIPS_REWARD = "Paper towels 2 rolls"

# The demo coupon (docs/coupons.md): a shared code, as printed on a flyer, that unlocks
# 10 % off household goods for anyone, in the shops and online, on top of other discounts.
WELCOME_CODE = "WELCOME10"
WELCOME_OFFER = "K-WELCOME10-HOUSEHOLD"


def member_id(n: int) -> str:
    return f"M{n:06d}"


def card_number(n: int) -> str:
    return f"2000{n:09d}"


def ean13(body: str) -> str:
    """A 12-digit body plus its EAN-13 check digit."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def line_amount(price: int, quantity: int) -> int:
    """price x quantity / 1000, rounded half up to a minor unit."""
    return (price * quantity + 500) // 1000


# --- catalogue ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoProduct:
    product: Product
    price: int  # shelf price, minor units per unit
    brand: str


@dataclass(frozen=True, slots=True)
class DemoCatalogue:
    categories: tuple[Category, ...]
    products: tuple[DemoProduct, ...]
    groups: tuple[ProductGroup, ...]
    product_lists: tuple[ProductList, ...]
    stores: tuple[Store, ...]

    def named(self, name: str) -> DemoProduct:
        return next(p for p in self.products if p.product.name == name)

    def in_category(self, category_id: str) -> list[DemoProduct]:
        return [p for p in self.products if category_id in p.product.category_ids]


def _price(rng: Random, low: int, high: int) -> int:
    """A shelf price ending in .90."""
    return rng.randrange(low // 100, high // 100) * 100 + 90


def _products(rng: Random) -> tuple[DemoProduct, ...]:
    products: list[DemoProduct] = []
    for assortment in ASSORTMENT:
        for item in assortment.items:
            for brand in assortment.brands:
                sku = ean13(f"460{len(products) + 1:09d}")
                products.append(_product(rng, assortment, sku, item, brand))
    return tuple(products)


def _product(rng: Random, a: Assortment, sku: str, item: str, brand: str) -> DemoProduct:
    price = _price(rng, *a.price_range)
    min_price = None
    if a.legal_min_price:
        min_price = price * 8 // 1000 * 100  # a legal minimum retail price
    elif rng.random() < 0.05:
        min_price = price * 7 // 1000 * 100  # the chain never sells below 70 %
    name = f"{item}, {brand}" if brand else item
    product = Product(sku, name, (a.category_id,), a.unit, min_price, a.excluded)
    return DemoProduct(product, price, brand)


def _groups(products: tuple[DemoProduct, ...]) -> tuple[ProductGroup, ...]:
    names = {c[0]: c[1] for c in CATEGORIES}
    by_name = {p.product.name: p.product.sku for p in products}
    roots = [
        ProductGroup(f"G-{root.upper()}", names[root], category_ids=frozenset({root}))
        for root in (*FOOD_ROOTS, "household")
    ]
    return (
        *roots,
        ProductGroup("G-FRUIT", "Fruit", category_ids=frozenset({"fruit"})),
        ProductGroup("G-CHEESE", "Cheese", category_ids=frozenset({"cheese"})),
        ProductGroup(
            "G-YELLOW-PRICE",
            "Yellow price tags",
            skus=frozenset({by_name[SHOWCASE["yellow_price"]]}),
        ),
        ProductGroup(
            "G-FOOD",
            "Food except coffee and gift candies",
            category_ids=frozenset(FOOD_ROOTS),
            excluded_category_ids=frozenset({"coffee"}),
            excluded_skus=frozenset({by_name["Chocolate candies 200 g, Babaevsky"]}),
        ),
        ProductGroup(
            "G-CHIPS-REWARD",
            "Chips rewards",
            skus=frozenset(sku for name, sku in by_name.items() if name.startswith(CHIPS_REWARD)),
        ),
    )


def _product_lists(products: tuple[DemoProduct, ...]) -> tuple[ProductList, ...]:
    first_brand = {a.category_id: a.brands[0] for a in ASSORTMENT}
    favorite_categories = ("milk", "yogurt", "kefir", "butter", "bread", "cereals", "pasta")
    favorites = tuple(
        p.product.sku
        for category in (*favorite_categories, "juice", "tea", "chocolate")
        for p in products
        if p.product.category_ids == (category,) and p.brand == first_brand[category]
    )
    healthy_words = ("Lactose-free", "Greek", "Whole grain", "Buckwheat", "Oat", "Broccoli")
    healthy = tuple(p.product.sku for p in products if p.product.name.startswith(healthy_words))
    return (
        ProductList(FAVORITES_LIST, "Favorite products to choose from", favorites),
        ProductList("L-HEALTHY", "Healthy choice", healthy),
    )


def demo_catalogue() -> DemoCatalogue:
    """The chain's catalogue; the same on every call (it does not depend on time)."""
    products = _products(Random(SEED))
    return DemoCatalogue(
        categories=tuple(Category(*c) for c in CATEGORIES),
        products=products,
        groups=_groups(products),
        product_lists=_product_lists(products),
        stores=(
            Store("S001", "Moscow, Tverskaya 12", "Europe/Moscow"),
            Store("S002", "Moscow, Profsoyuznaya 56"),  # the program's zone
            Store("S003", "Yekaterinburg, Lenina 25", "Asia/Yekaterinburg"),
        ),
    )


# --- offers ---------------------------------------------------------------------------------------


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), PROGRAM_ZONE).astimezone(UTC)


def today_in_program_zone(now: datetime) -> date:
    return now.astimezone(PROGRAM_ZONE).date()


def previous_month(now: datetime) -> str:
    """'YYYY-MM' of the calendar month before `now`, in the program's zone."""
    last_day = today_in_program_zone(now).replace(day=1) - timedelta(days=1)
    return f"{last_day.year:04d}-{last_day.month:02d}"


def demo_offers(
    catalogue: DemoCatalogue, now: datetime
) -> tuple[tuple[Offer, ...], tuple[FavoriteProductsOffer, ...]]:
    """Offers of every level and benefit kind, valid from 30 days ago for a year and more."""
    start = _local_midnight(today_in_program_zone(now) - timedelta(days=30))
    valid = {"valid_from": start, "valid_to": start + timedelta(days=400)}
    yellow = catalogue.named(SHOWCASE["yellow_price"])

    def offer(
        offer_id: str, name: str, level: Level, kind: BenefitKind, value: int, **kw: Any
    ) -> Offer:
        return Offer(offer_id, name, level, Benefit(kind, value), **{**valid, **kw})

    pct, per_unit = BenefitKind.PERCENT, BenefitKind.AMOUNT_PER_UNIT
    fixed, bonus = BenefitKind.FIXED_PRICE, BenefitKind.BONUS_PERCENT
    everyone, members, audience = Level.ALL_BUYERS, Level.MEMBERS_ONLY, Level.TARGET_AUDIENCE
    offers = (
        offer("A-BAKERY-EVENING", "Evening bakery", everyone, pct, 2000,
              scope_group_id="G-BAKERY", priority=10,
              schedule=Schedule(time_ranges=(TimeRange(20 * 60, 23 * 60),)),
              text="Evening bakery -20 %"),
        offer("A-FRUIT-PER-KG", "Fruit for less", everyone, per_unit, 3000,
              scope_group_id="G-FRUIT", priority=20, text="Fruit -30 RUB/kg"),
        offer("A-EKB-OPENING", "New store in Yekaterinburg", everyone, pct, 500,
              scope_group_id="G-FOOD", store_ids=frozenset({"S003"}),
              channels=frozenset({Channel.POS}), stacking=Stacking.EXCLUSIVE, priority=5,
              valid_from=start, valid_to=start + timedelta(days=44), text="New store -5 %"),
        offer("A-ONLINE-HOUSEHOLD", "Household online", everyone, pct, 700,
              scope_group_id="G-HOUSEHOLD", channels=frozenset({Channel.ONLINE})),
        offer("M-YELLOW-MILK", "Yellow price tag: milk", members, fixed, yellow.price - 2000,
              scope_group_id="G-YELLOW-PRICE", stacking=Stacking.EXCLUSIVE, priority=50,
              text="Card price"),
        offer("M-BONUS-2", "Member points", members, bonus, 200, text="Points 2 %"),
        offer("M-CHEESE-LIMIT", "Cheese for members", members, per_unit, 10000,
              scope_group_id="G-CHEESE", priority=15,
              usage_limit=UsageLimit(LimitUnit.UNITS, 2000, LimitPeriod.WEEK),
              text="Cheese -100 RUB/kg, up to 2 kg a week"),
        offer("T-PENSIONER-MORNING", "Pensioner mornings", audience, pct, 1000,
              stacking=Stacking.EXCLUSIVE, priority=30,
              schedule=Schedule(time_ranges=(TimeRange(8 * 60, 12 * 60),)),
              audience=Audience(segment_tags=frozenset({"pensioner"})),
              text="Pensioner morning -10 %"),
        offer("T-BIRTHDAY", "Happy birthday", audience, pct, 1500,
              stacking=Stacking.EXCLUSIVE, priority=40,
              audience=Audience(birthday_within_days=3),
              usage_limit=UsageLimit(LimitUnit.RECEIPTS, 1, LimitPeriod.OFFER),
              text="Happy birthday -15 %"),
        offer("T-STUDENT-WEEKDAYS", "Students on weekdays", audience, pct, 700,
              scope_group_id="G-BEVERAGES",
              schedule=Schedule(days_of_week=frozenset({1, 2, 3, 4, 5})),
              audience=Audience(segment_tags=frozenset({"student"}), min_age=18, max_age=25),
              text="Student -7 %"),
        offer("T-VIP-BONUS", "VIP points", audience, bonus, 500,
              audience=Audience(segment_tags=frozenset({"vip"})), text="VIP points 5 %"),
        offer("T-WOMEN-HOUSEHOLD", "Household for her", audience, pct, 1000,
              scope_group_id="G-HOUSEHOLD", store_ids=frozenset({"S001", "S002"}),
              audience=Audience(gender=Gender.FEMALE)),
        offer("C-CHIPS-FOOD", "Chips for food", everyone, BenefitKind.CHIPS, 1,
              scope_group_id="G-FOOD", chips_threshold=50000,
              text="1 chip per 500.00 on food"),
        offer("C-REWARD-TOWELS", "Towels for chips", members, fixed, 100,
              scope_group_id="G-CHIPS-REWARD", chips_price=10, priority=60,
              text="Paper towels 1.00 for 10 chips"),
        offer(WELCOME_OFFER, "Welcome coupon: household", everyone, pct, 1000,
              scope_group_id="G-HOUSEHOLD", text=f"Coupon {WELCOME_CODE} -10 %"),
    )  # fmt: skip
    favorites = (
        FavoriteProductsOffer(
            offer(FAVORITE_PRODUCTS, "Favorite products", Level.INDIVIDUAL, pct, 1500,
                  priority=25, text="Favorite product -15 %"),
            slot_count=3,
            list_source=ListSource.PREDEFINED,
            product_list_id=FAVORITES_LIST,
            frequency=Frequency.WEEKLY,
        ),
        FavoriteProductsOffer(
            offer(FAVORITE_HISTORY, "Your products of last month", Level.INDIVIDUAL, pct, 1000,
                  priority=24, text="Your product -10 %"),
            slot_count=5,
            list_source=ListSource.PURCHASE_HISTORY,
            frequency=Frequency.MONTHLY,
            autofill=True,
        ),
    )  # fmt: skip
    return offers, favorites


def demo_coupon_campaigns(now: datetime) -> tuple[CouponCampaign, ...]:
    """The campaign of the demo coupon, valid as long as the demo offers; its offer applies
    only to a receipt carrying the code."""
    start = _local_midnight(today_in_program_zone(now) - timedelta(days=30))
    welcome = CouponCampaign(
        "WELCOME10",
        WELCOME_OFFER,
        CampaignKind.SHARED,
        shared_code=WELCOME_CODE,
        valid_from=start,
        valid_to=start + timedelta(days=400),
    )
    return (welcome,)
