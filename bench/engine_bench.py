"""Benchmark of the benefit engine: microseconds per calculate().

    python -m bench.engine_bench --out bench/engine_results.json

Builds a catalogue (category tree, products, groups), offers of every level and kind, and a
member with full individual offers (favorite-product slots, favorite categories,
personalized offers with usage limits), then measures the median time of calculate() for
receipts of 5, 20 and 100 lines, and the serving bench's 20-line receipt on the scaled
data (bench/scale_data.py). Two scaling checks use one fixed 20-line receipt and the
offers that can apply to it, then add offers or products that cannot apply to it:
10 / 1,000 / 10,000 offers, and 1,000 / 1,000,000 products.

Timings are medians over rounds; each round runs every receipt of a set many times with
time.perf_counter_ns. Numbers are only comparable on the same machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from service.engine.calculate import calculate
from service.engine.model import (
    Audience,
    Benefit,
    BenefitKind,
    Category,
    Channel,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Frequency,
    Gender,
    Level,
    LimitPeriod,
    LimitUnit,
    Line,
    ListSource,
    Member,
    Offer,
    PersonalOffer,
    Product,
    ProductGroup,
    ProductList,
    Receipt,
    Schedule,
    Stacking,
    Store,
    TimeRange,
    Unit,
    UsageLimit,
)
from service.engine.snapshot import Snapshot, build_snapshot
from service.engine.usage import period_key

SALE_TIME = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # a Monday, 10:30 in Berlin
ZONE = "Europe/Berlin"
STORES = [Store(f"S{i}", f"Store {i}") for i in range(20)] + [
    Store("S-NY", "New York", "America/New_York")
]
FAR_PAST = datetime(2020, 1, 1, tzinfo=UTC)


# --- catalogue ---------------------------------------------------------------------------------


@dataclass
class Catalogue:
    categories: list[Category]
    products: list[Product]
    category_groups: list[ProductGroup]  # one per top and middle category
    leaf_ids: list[str]


def make_catalogue(product_count: int, rng: random.Random) -> Catalogue:
    """A three-level tree: 10 departments x 10 categories x 10 leaves; products in leaves."""
    categories: list[Category] = []
    leaves: list[str] = []
    groups: list[ProductGroup] = []
    for d in range(10):
        dep = f"D{d}"
        categories.append(Category(dep, f"Department {d}"))
        groups.append(ProductGroup(f"G-{dep}", dep, category_ids=frozenset({dep})))
        for c in range(10):
            cat = f"{dep}C{c}"
            categories.append(Category(cat, f"Category {cat}", dep))
            groups.append(ProductGroup(f"G-{cat}", cat, category_ids=frozenset({cat})))
            for leaf in range(10):
                leaf_id = f"{cat}L{leaf}"
                categories.append(Category(leaf_id, f"Leaf {leaf_id}", cat))
                leaves.append(leaf_id)
    products = []
    for i in range(product_count):
        weighed = i % 10 == 0
        products.append(
            Product(
                sku=f"P{i:07d}",
                name=f"Product {i}",
                category_ids=(leaves[i % len(leaves)],),
                unit=Unit.WEIGHT if weighed else Unit.PIECE,
                min_price=(500 + i % 300) if i % 7 == 0 else None,
                excluded=i % 97 == 0,
            )
        )
    return Catalogue(categories, products, groups, leaves)


# --- offers --------------------------------------------------------------------------------------

KINDS = [
    BenefitKind.PERCENT,
    BenefitKind.PERCENT,
    BenefitKind.AMOUNT_PER_UNIT,
    BenefitKind.FIXED_PRICE,
    BenefitKind.BONUS_PERCENT,
]
WIDE_KINDS = [BenefitKind.PERCENT, BenefitKind.PERCENT, BenefitKind.BONUS_PERCENT]
LEVELS = [Level.ALL_BUYERS, Level.MEMBERS_ONLY, Level.TARGET_AUDIENCE]


def benefit_for(kind: BenefitKind, rng: random.Random) -> Benefit:
    if kind is BenefitKind.PERCENT:
        return Benefit(kind, rng.choice([500, 1000, 1500, 2000, 3000]))
    if kind is BenefitKind.AMOUNT_PER_UNIT:
        return Benefit(kind, rng.choice([100, 500, 1000]))
    if kind is BenefitKind.FIXED_PRICE:
        return Benefit(kind, rng.choice([1990, 4990, 8990]))
    return Benefit(kind, rng.choice([100, 300, 500]))


def make_offer(
    offer_id: str, scope: str | None, rng: random.Random, *, valid: bool = True
) -> Offer:
    # a fixed price is for a few SKUs only, never for a whole category or everything
    kinds = KINDS if scope is not None and scope.startswith("GS") else WIDE_KINDS
    kind = rng.choice(kinds)
    level = rng.choice(LEVELS)
    roll = rng.random()
    return Offer(
        id=offer_id,
        name=f"Offer {offer_id}",
        level=level,
        benefit=benefit_for(kind, rng),
        scope_group_id=scope,
        priority=rng.randrange(10),
        stacking=rng.choice([Stacking.EXCLUSIVE, Stacking.COMBINABLE]),
        valid_from=FAR_PAST,
        valid_to=SALE_TIME + timedelta(days=30) if valid else FAR_PAST + timedelta(days=30),
        schedule=(
            Schedule(frozenset({1, 2, 3, 4, 5}), (TimeRange(8 * 60, 12 * 60),))
            if roll < 0.2
            else None
        ),
        store_ids=frozenset({"S1", "S2", "S3"}) if 0.2 <= roll < 0.35 else frozenset(),
        channels=frozenset({Channel.ONLINE}) if 0.35 <= roll < 0.45 else frozenset(),
        audience=(
            Audience(segment_tags=frozenset({"pensioner", "student"}), min_age=18)
            if level is Level.TARGET_AUDIENCE
            else None
        ),
        usage_limit=(
            UsageLimit(LimitUnit.RECEIPTS, 3, LimitPeriod.WEEK) if 0.45 <= roll < 0.5 else None
        ),
    )


def make_offers(
    count: int, catalogue: Catalogue, rng: random.Random
) -> tuple[list[Offer], list[ProductGroup]]:
    """Offers as a chain has them: a few on all products, some on categories, most on a few
    SKUs each ("yellow price tags"); 5 % already expired."""
    offers: list[Offer] = []
    groups: list[ProductGroup] = []
    skus = [p.sku for p in catalogue.products]
    for i in range(count):
        roll = i % 100
        if roll < 1 and sum(1 for o in offers if o.scope_group_id is None) < 10:
            scope = None
        elif roll < 8:
            scope = rng.choice(catalogue.category_groups).id
        else:
            group = ProductGroup(
                f"GS{i}", f"Tag {i}", skus=frozenset(rng.sample(skus, rng.randint(1, 3)))
            )
            groups.append(group)
            scope = group.id
        offers.append(make_offer(f"O{i:05d}", scope, rng, valid=i % 20 != 10))
    return offers, groups


# --- member ------------------------------------------------------------------------------------


def make_favorites(catalogue: Catalogue) -> tuple[list[FavoriteProductsOffer], list[ProductList]]:
    lists = [ProductList("PL1", "Favorites", tuple(p.sku for p in catalogue.products[:200]))]
    favorites = []
    for i, (kind, value) in enumerate(
        [(BenefitKind.PERCENT, 1500), (BenefitKind.PERCENT, 2000), (BenefitKind.BONUS_PERCENT, 500)]
    ):
        offer = Offer(
            id=f"FAV{i}",
            name="Favorite product",
            level=Level.INDIVIDUAL,
            benefit=Benefit(kind, value),
            priority=5,
            stacking=Stacking.EXCLUSIVE if i == 0 else Stacking.COMBINABLE,
            valid_from=FAR_PAST,
            usage_limit=UsageLimit(LimitUnit.UNITS, 10_000, LimitPeriod.MONTH) if i == 1 else None,
        )
        favorites.append(
            FavoriteProductsOffer(
                offer=offer,
                slot_count=10,
                list_source=ListSource.PREDEFINED if i != 1 else ListSource.PURCHASE_HISTORY,
                product_list_id="PL1" if i != 1 else None,
                frequency=Frequency.MONTHLY,
            )
        )
    return favorites, lists


def make_member(catalogue: Catalogue, receipt_skus: Sequence[str], rng: random.Random) -> Member:
    """Slots, favorite categories and personalized offers that touch the receipts' products."""
    pool = list(dict.fromkeys(receipt_skus))
    slots = {f"FAV{i}": frozenset(rng.sample(pool, min(10, len(pool)))) for i in range(3)}
    category_terms = tuple(
        FavoriteCategoryTerms(
            offer_id=f"FC{i}",
            name="Favorite category",
            group_ids=tuple(g.id for g in rng.sample(catalogue.category_groups, 6)),
            benefit=Benefit(BenefitKind.PERCENT, 700 + 100 * i),
            max_count=3,
            acceptance_required=i % 2 == 0,
            chosen_group_ids=frozenset(),
            valid_from=FAR_PAST,
            stacking=Stacking.COMBINABLE if i else Stacking.EXCLUSIVE,
        )
        for i in range(3)
    )
    # acceptance on: choose three of the offered groups
    category_terms = tuple(
        replace(t, chosen_group_ids=frozenset(t.group_ids[:3])) if t.acceptance_required else t
        for t in category_terms
    )
    personal = []
    for i in range(20):
        kind = [BenefitKind.PERCENT, BenefitKind.AMOUNT_PER_UNIT, BenefitKind.FIXED_PRICE][i % 3]
        limit = None
        if i % 5 == 0:
            limit = UsageLimit(LimitUnit.UNITS, 2000, LimitPeriod.OFFER)
        elif i % 5 == 1:
            limit = UsageLimit(LimitUnit.RECEIPTS, 2, LimitPeriod.MONTH)
        personal.append(
            PersonalOffer(
                offer_id=f"PO{i}",
                name=f"Personal {i}",
                benefit=benefit_for(kind, rng),
                skus=frozenset(rng.sample(pool, 2)),
                group_id=rng.choice(catalogue.category_groups).id if i % 4 == 0 else None,
                valid_from=FAR_PAST,
                valid_to=SALE_TIME + timedelta(days=10),
                usage_limit=limit,
                priority=rng.randrange(10),
                stacking=Stacking.EXCLUSIVE if i % 2 else Stacking.COMBINABLE,
            )
        )
    month = period_key(LimitPeriod.MONTH, SALE_TIME.date())
    return Member(
        id="M1",
        birth_date=datetime(1950, 3, 1).date(),
        gender=Gender.FEMALE,
        segment_tags=frozenset({"pensioner"}),
        favorite_slots=slots,
        favorite_categories=category_terms,
        personal_offers=tuple(personal),
        usage={("PO1", month): 1, ("PO0", "OFFER"): 500, ("FAV1", month): 3000},
    )


# --- receipts ------------------------------------------------------------------------------------


def make_receipt(
    receipt_id: str,
    products: Sequence[Product],
    line_count: int,
    rng: random.Random,
    favorites: Sequence[Product] = (),
) -> Receipt:
    """Random lines; about a quarter of them from `favorites` (the member's products)."""
    from_favorites = rng.sample(list(favorites), min(len(favorites), line_count // 4))
    chosen = {p.sku: p for p in from_favorites}
    while len(chosen) < line_count:
        product = rng.choice(products)
        chosen.setdefault(product.sku, product)
    picked = list(chosen.values())
    rng.shuffle(picked)
    lines = []
    for i, product in enumerate(picked):
        quantity = (
            rng.randint(100, 2500) if product.unit is Unit.WEIGHT else rng.randint(1, 3) * 1000
        )
        price = rng.randint(50, 50_000)
        amount = (price * quantity + 500) // 1000
        lines.append(Line(f"{i + 1:03d}", product.sku, quantity, price, amount))
    return Receipt(receipt_id, SALE_TIME, tuple(lines), store_id="S1")


def with_member(receipts: list[Receipt], member: Member | None) -> list[Receipt]:
    return [replace(r, member=member) for r in receipts]


# --- timing --------------------------------------------------------------------------------------


ROUNDS = 11


def timed_us(call: Callable[[], object], calls_per_round: int) -> tuple[float, float]:
    """(median, best) over rounds of the mean time per call, in microseconds. On a shared
    machine the best round is the steadier figure; the median is the one reported."""
    call()  # warm memos
    samples = []
    gc.collect()
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(calls_per_round):
            call()
        samples.append((time.perf_counter_ns() - start) / calls_per_round / 1000)
    return statistics.median(samples), min(samples)


def time_receipts(
    snapshot: Snapshot, receipts: list[Receipt], *, repeat: int = 10, explain: bool = False
) -> tuple[float, float]:
    """(median, best) microseconds per calculate() over a set of receipts."""

    def run_all() -> None:
        for receipt in receipts:
            calculate(snapshot, receipt, explain=explain)

    median, best = timed_us(run_all, repeat)
    return round(median / len(receipts), 1), round(best / len(receipts), 1)


def fresh_member_each_call(snapshot: Snapshot, receipts: list[Receipt], repeat: int = 10) -> float:
    """Like time_receipts, but each call gets a new Member object (its individual index is
    built on the call, as for the first calculation of a member)."""
    copies = [
        [replace(r, member=replace(r.member)) if r.member else r for r in receipts]
        for _ in range(repeat + 1)
    ]
    rounds = iter(copies)

    def run_all() -> None:
        for receipt in next(rounds):
            calculate(snapshot, receipt)

    samples = []
    run_all()
    gc.collect()
    for _ in range(repeat):
        start = time.perf_counter_ns()
        run_all()
        samples.append((time.perf_counter_ns() - start) / len(receipts) / 1000)
    return statistics.median(samples)


# --- scenarios -----------------------------------------------------------------------------------


def main_scenario(results: dict[str, float], rng: random.Random) -> None:
    catalogue = make_catalogue(10_000, rng)
    offers, offer_groups = make_offers(1_000, catalogue, rng)
    favorites, lists = make_favorites(catalogue)
    pool = rng.sample(catalogue.products, 40)
    member = make_member(catalogue, [p.sku for p in pool], rng)
    receipts = {
        n: [make_receipt(f"R{n}-{i}", catalogue.products, n, rng, pool) for i in range(30)]
        for n in (5, 20, 100)
    }
    start = time.perf_counter()
    snapshot = build_snapshot(
        categories=catalogue.categories,
        products=catalogue.products,
        groups=catalogue.category_groups + offer_groups,
        product_lists=lists,
        offers=offers,
        favorite_product_offers=favorites,
        stores=STORES,
        program_time_zone=ZONE,
    )
    results["build_snapshot_s_10k_products_1k_offers"] = round(time.perf_counter() - start, 3)
    for n in (5, 20, 100):
        with_m = with_member(receipts[n], member)
        median, best = time_receipts(snapshot, with_m)
        results[f"engine_us_{n}_lines"] = median
        results[f"engine_us_{n}_lines_best_round"] = best
        results[f"engine_us_{n}_lines_anonymous"] = time_receipts(snapshot, receipts[n])[0]
    with_m = with_member(receipts[20], member)
    results["engine_us_20_lines_explain"] = time_receipts(snapshot, with_m, explain=True)[0]
    results["engine_us_20_lines_new_member_object"] = round(
        fresh_member_each_call(snapshot, with_m), 1
    )
    candidates = [len(snapshot.candidates_for(line.sku)) for r in receipts[20] for line in r.lines]
    results["general_candidates_per_line_mean"] = round(statistics.mean(candidates), 1)
    applied = [len(line.benefits) for r in with_m for line in calculate(snapshot, r).lines]
    results["applied_benefits_per_line_mean"] = round(statistics.mean(applied), 2)


def scaled_scenario(results: dict[str, float]) -> None:
    """The receipt of the serving bench (bench/run.py calculate_request) on the data of
    bench/scale_data.py, in memory: 20 lines, the showcase member's 10 SKUs with individual
    offers and 10 others, quantity 1, prices 1,137 + 137 per line; 1,000 offers, 10,000
    products; store S001, the engine bench's sale time."""
    from bench.scale_data import SEED, scaled_world
    from bench.scale_data import STORES as SCALED_STORES

    world = scaled_world(random.Random(SEED))
    snapshot = build_snapshot(
        categories=world.catalogue.categories,
        products=world.catalogue.products,
        groups=world.groups,
        product_lists=world.lists,
        offers=world.offers,
        favorite_product_offers=world.favorites,
        stores=SCALED_STORES,
        program_time_zone=ZONE,
    )
    skus = [*world.showcase_skus[:10], *world.other_skus][:20]
    lines = tuple(
        Line(str(number), sku, 1000, 1000 + 137 * number, 1000 + 137 * number)
        for number, sku in enumerate(skus, start=1)
    )
    receipt = Receipt("BENCH-1", SALE_TIME, lines, store_id="S001", member=world.showcase)
    results["engine_us_scaled_20_lines"] = time_receipts(snapshot, [receipt], repeat=300)[0]
    benefits = [len(line.benefits) for line in calculate(snapshot, receipt).lines]
    results["scaled_benefits_per_line_mean"] = round(statistics.mean(benefits), 2)


def scaling_scenario(results: dict[str, float], rng: random.Random, max_products: int) -> None:
    """One 20-line receipt; only offers and products that cannot apply to it vary."""
    small = make_catalogue(1_000, rng)
    receipt_products = small.products[:200]
    pool = receipt_products[:40]
    member = make_member(small, [p.sku for p in pool], rng)
    receipts = [make_receipt(f"S-{i}", receipt_products, 20, rng, pool) for i in range(10)]
    favorites, lists = make_favorites(small)
    base_offers, base_groups = make_offers(10, small, random.Random(7))

    def snapshot_with(products: list[Product], extra_offers: int) -> Snapshot:
        # extra offers target products outside the receipts (or are expired)
        others = small.products[200:]
        extra: list[Offer] = []
        extra_groups: list[ProductGroup] = []
        extra_rng = random.Random(11)
        for i in range(extra_offers):
            group = ProductGroup(
                f"GX{i}", f"X{i}", skus=frozenset(p.sku for p in extra_rng.sample(others, 2))
            )
            extra_groups.append(group)
            extra.append(make_offer(f"X{i:05d}", group.id, extra_rng, valid=i % 3 != 0))
        return build_snapshot(
            categories=small.categories,
            products=products,
            groups=small.category_groups + base_groups + extra_groups,
            product_lists=lists,
            offers=base_offers + extra,
            favorite_product_offers=favorites,
            stores=STORES,
            program_time_zone=ZONE,
        )

    with_m = with_member(receipts, member)
    for total in (10, 1_000, 10_000):
        snap = snapshot_with(small.products, total - len(base_offers))
        results[f"engine_us_20_lines_{total}_offers"] = time_receipts(snap, with_m)[0]

    snap = snapshot_with(small.products, 0)
    results["engine_us_20_lines_1000_products"] = time_receipts(snap, with_m)[0]
    start = time.perf_counter()
    many = list(small.products)
    for i in range(len(many), max_products):
        many.append(Product(f"Q{i:07d}", "Filler", (small.leaf_ids[i % len(small.leaf_ids)],)))
    snap = snapshot_with(many, 0)
    results[f"build_snapshot_s_{max_products}_products"] = round(time.perf_counter() - start, 1)
    results[f"engine_us_20_lines_{max_products}_products"] = time_receipts(snap, with_m)[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/engine_results.json")
    parser.add_argument("--max-products", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: dict[str, float] = {}
    main_scenario(results, random.Random(1))
    scaled_scenario(results)
    scaling_scenario(results, random.Random(2), args.max_products)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:>10}")
    report = {
        **results,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2, sort_keys=True)
        out.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
