"""Small builders for engine tests: a catalogue, offers and receipts in a few words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from service.engine.calculate import calculate
from service.engine.model import (
    Benefit,
    BenefitKind,
    Category,
    FavoriteProductsOffer,
    Level,
    Line,
    LineResult,
    ListSource,
    Member,
    Offer,
    Product,
    ProductGroup,
    ProductList,
    Receipt,
    ReceiptResult,
    Stacking,
    Store,
    Unit,
)
from service.engine.snapshot import Snapshot, build_snapshot

PROGRAM_ZONE = "Europe/Berlin"
MONDAY_NOON = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # Monday 12:00 in Berlin


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


CATEGORIES = (
    Category("food", "Food"),
    Category("dairy", "Dairy", "food"),
    Category("milk", "Milk", "dairy"),
    Category("cheese", "Cheese", "dairy"),
    Category("fruit", "Fruit", "food"),
    Category("tobacco", "Tobacco"),
)

PRODUCTS = (
    Product("milk-1", "Milk 1 l", ("milk",)),
    Product("milk-2", "Milk 2 l", ("milk",)),
    Product("gouda", "Gouda", ("cheese",), unit=Unit.WEIGHT),
    Product("apple", "Apples", ("fruit",), unit=Unit.WEIGHT),
    Product("banana", "Bananas", ("fruit",), unit=Unit.WEIGHT),
    Product("bread", "Bread", ()),
    Product("cigarettes", "Cigarettes", ("tobacco",), excluded=True),
    Product("caviar", "Caviar", ("food",), min_price=9000),
)

GROUPS = (
    ProductGroup("dairy", "Dairy", category_ids=frozenset({"dairy"})),
    ProductGroup("fruit", "Fruit", category_ids=frozenset({"fruit"})),
    ProductGroup("milk", "Milk", category_ids=frozenset({"milk"})),
    ProductGroup("bread", "Bread", skus=frozenset({"bread"})),
    ProductGroup("everything-food", "Food", category_ids=frozenset({"food"})),
    ProductGroup("tobacco", "Tobacco", category_ids=frozenset({"tobacco"})),
)


def offer(
    offer_id: str,
    kind: BenefitKind = BenefitKind.PERCENT,
    value: int = 1000,
    *,
    level: Level = Level.ALL_BUYERS,
    scope: str | None = None,
    stacking: Stacking = Stacking.COMBINABLE,
    priority: int = 0,
    **fields: object,
) -> Offer:
    return Offer(
        id=offer_id,
        name=fields.pop("name", f"Offer {offer_id}"),  # type: ignore[arg-type]
        level=level,
        benefit=Benefit(kind, value),
        scope_group_id=scope,
        stacking=stacking,
        priority=priority,
        **fields,  # type: ignore[arg-type]
    )


def exclusive(
    offer_id: str, kind: BenefitKind = BenefitKind.PERCENT, value: int = 1000, **f: object
) -> Offer:
    return offer(offer_id, kind, value, stacking=Stacking.EXCLUSIVE, **f)  # type: ignore[arg-type]


def favorite_products(
    offer_id: str, kind: BenefitKind = BenefitKind.PERCENT, value: int = 1500, **f: object
) -> FavoriteProductsOffer:
    return FavoriteProductsOffer(
        offer=offer(offer_id, kind, value, level=Level.INDIVIDUAL, name="Favorite", **f),  # type: ignore[arg-type]
        slot_count=5,
        list_source=ListSource.PREDEFINED,
        product_list_id="list",
    )


def snapshot(
    offers: Iterable[Offer] = (),
    *,
    favorites: Iterable[FavoriteProductsOffer] = (),
    products: Sequence[Product] = PRODUCTS,
    groups: Sequence[ProductGroup] = GROUPS,
    stores: Sequence[Store] = (),
    zone: str = PROGRAM_ZONE,
) -> Snapshot:
    return build_snapshot(
        categories=CATEGORIES,
        products=products,
        groups=groups,
        product_lists=[ProductList("list", "Favorites", tuple(p.sku for p in products))],
        offers=offers,
        favorite_product_offers=favorites,
        stores=stores,
        program_time_zone=zone,
    )


def line(
    sku: str,
    amount: int = 10000,
    quantity: int = 1000,
    line_id: str | None = None,
    price: int | None = None,
) -> Line:
    if price is None:
        price = amount * 1000 // quantity
    return Line(line_id or sku, sku, quantity, price, amount)


def receipt(
    *lines: Line,
    at: datetime = MONDAY_NOON,
    member: Member | None = None,
    store_id: str = "",
    **fields: object,
) -> Receipt:
    return Receipt("r1", at, tuple(lines), store_id=store_id, member=member, **fields)  # type: ignore[arg-type]


def run(snap: Snapshot, *lines: Line, explain: bool = False, **fields: object) -> ReceiptResult:
    return calculate(snap, receipt(*lines, **fields), explain=explain)  # type: ignore[arg-type]


def one_line(snap: Snapshot, ln: Line, *, explain: bool = False, **fields: object) -> LineResult:
    return run(snap, ln, explain=explain, **fields).lines[0]


def applied(result: LineResult) -> list[tuple[str, int, int]]:
    """(offer id, discount, points) of each applied benefit, in order."""
    return [(b.offer_id, b.discount, b.points) for b in result.benefits]


def member(member_id: str = "m1", **fields: object) -> Member:
    return Member(member_id, **fields)  # type: ignore[arg-type]
