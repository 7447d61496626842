"""The demo data scaled up for `make bench`: 10,000 products, 1,000 offers, 100,000 members
with individual offers, in an SQLite file (kept between runs; rebuilt when this file changes).

    python -m bench.scale_data --out bench/var/scaled.db [--members 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from alembic.script import ScriptDirectory

from bench.engine_bench import (
    FAR_PAST,
    Catalogue,
    make_catalogue,
    make_favorites,
    make_offers,
)
from service.engine.model import (
    Audience,
    Benefit,
    BenefitKind,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Gender,
    Level,
    LimitPeriod,
    LimitUnit,
    Member,
    Offer,
    PersonalOffer,
    Product,
    ProductGroup,
    ProductList,
    Schedule,
    Stacking,
    Store,
    TimeRange,
    UsageLimit,
)
from service.store import db
from service.store.catalog_repo import (
    save_categories,
    save_favorite_products_offers,
    save_offers,
    save_product_groups,
    save_product_lists,
    save_products,
    save_stores,
)
from service.store.codec import MEMBER_DOCUMENT_FORMAT
from service.store.member_repo import save_members

STORES = [Store(f"S{i:03d}", f"Store {i}") for i in range(1, 21)]
TAGS = ("pensioner", "student", "vip", "family", "")
STOREWIDE = (  # the demo's storewide offers
    Offer(
        "M-BONUS-2",
        "Member points",
        Level.MEMBERS_ONLY,
        Benefit(BenefitKind.BONUS_PERCENT, 200),
        valid_from=FAR_PAST,
        text="Points 2 %",
    ),
    Offer(
        "T-VIP-BONUS",
        "VIP points",
        Level.TARGET_AUDIENCE,
        Benefit(BenefitKind.BONUS_PERCENT, 500),
        valid_from=FAR_PAST,
        audience=Audience(segment_tags=frozenset({"vip"})),
        text="VIP points 5 %",
    ),
    Offer(
        "T-PENSIONER-MORNING",
        "Pensioner mornings",
        Level.TARGET_AUDIENCE,
        Benefit(BenefitKind.PERCENT, 1000),
        stacking=Stacking.EXCLUSIVE,
        priority=30,
        valid_from=FAR_PAST,
        schedule=Schedule(time_ranges=(TimeRange(8 * 60, 12 * 60),)),
        audience=Audience(segment_tags=frozenset({"pensioner"})),
    ),
    Offer(
        "T-BIRTHDAY",
        "Happy birthday",
        Level.TARGET_AUDIENCE,
        Benefit(BenefitKind.PERCENT, 1500),
        stacking=Stacking.EXCLUSIVE,
        priority=40,
        valid_from=FAR_PAST,
        audience=Audience(birthday_within_days=3),
        usage_limit=UsageLimit(LimitUnit.RECEIPTS, 1, LimitPeriod.OFFER),
    ),
)
SEED = 20261123


@dataclass(frozen=True)
class ScaledData:
    path: Path
    members: int
    showcase_card: str
    showcase_skus: tuple[str, ...]  # SKUs that hit the showcase member's individual offers
    other_skus: tuple[str, ...]


def card_of(index: int) -> str:
    return f"3{index:012d}"


def _member(
    index: int,
    rng: random.Random,
    favorites_pool: list[str],
    groups: list[str],
    products: list[Product],
) -> Member:
    slots = frozenset(rng.sample(favorites_pool, 5))
    terms = FavoriteCategoryTerms(
        offer_id="FC1",
        name="Favorite category",
        group_ids=tuple(rng.sample(groups, 4)),
        benefit=Benefit(BenefitKind.PERCENT, rng.choice([500, 700, 1000])),
        max_count=2,
        acceptance_required=False,
        valid_from=FAR_PAST,
        stacking=Stacking.COMBINABLE,
    )
    personal = tuple(
        PersonalOffer(
            offer_id=f"PO{k}",
            name=f"Personal offer {k}",
            benefit=Benefit(BenefitKind.PERCENT, rng.choice([1000, 1500, 2500])),
            skus=frozenset(p.sku for p in rng.sample(products, 2)),
            valid_from=FAR_PAST,
        )
        for k in range(2)
    )
    tag = rng.choice(TAGS)
    return Member(
        id=f"B{index:07d}",
        birth_date=None if index % 5 == 0 else FAR_PAST.date().replace(year=1940 + index % 60),
        gender=rng.choice(list(Gender)),
        segment_tags=frozenset({tag}) if tag else frozenset(),
        favorite_slots={"FAV0": slots},
        favorite_categories=(terms,),
        personal_offers=personal,
    )


def fingerprint(members: int) -> str:
    source = (
        Path(__file__).read_bytes()
        + Path(sys.modules["bench.engine_bench"].__file__ or "").read_bytes()
    )
    # A store written by older code (another schema, another member document format) is rebuilt.
    layout = f"{members} {_head_revision()} {MEMBER_DOCUMENT_FORMAT}"
    return hashlib.sha256(source + layout.encode()).hexdigest()[:16]


def _head_revision() -> str:
    scripts = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    return str(scripts.get_current_head())


@dataclass(frozen=True)
class ScaledWorld:
    """The catalogue, offers and showcase member of the scaled data, in memory: what build()
    stores, and what bench.engine_bench calculates on without a store."""

    catalogue: Catalogue
    offers: list[Offer]
    groups: list[ProductGroup]  # category groups and the offers' own groups
    favorites: list[FavoriteProductsOffer]
    lists: list[ProductList]
    showcase: Member
    showcase_skus: tuple[str, ...]
    other_skus: tuple[str, ...]


def scaled_world(rng: random.Random) -> ScaledWorld:
    catalogue = make_catalogue(10_000, rng)
    offers, offer_groups = make_offers(1_000, catalogue, rng)
    # As in the demo data, a program has a handful of storewide offers (the demo's four) while
    # scoped offers grow with the catalogue: the generator's storewide ones become scoped.
    offers = [
        replace(o, scope_group_id=rng.choice(catalogue.category_groups).id)
        if o.scope_group_id is None
        else o
        for o in offers[: 1_000 - len(STOREWIDE)]
    ] + list(STOREWIDE)
    # Offers stay valid whenever the benchmark runs (the engine benchmark pins its own time).
    offers = [
        replace(o, valid_to=None) if o.valid_to and o.valid_to.year > 2025 else o for o in offers
    ]
    favorites, lists = make_favorites(catalogue)
    favorites = [replace(f, offer=replace(f.offer, valid_to=None)) for f in favorites]
    pool = list(lists[0].skus)
    group_ids = [g.id for g in catalogue.category_groups]
    showcase = replace(
        _member(1, random.Random(SEED + 1), pool, group_ids, catalogue.products),
        segment_tags=frozenset({"vip"}),
    )
    showcase_skus = tuple(sorted(showcase.favorite_slots["FAV0"])) + tuple(
        sorted(s for p in showcase.personal_offers for s in p.skus)
    )
    others = tuple(p.sku for p in catalogue.products[5000:5040] if not p.excluded)
    groups = catalogue.category_groups + offer_groups
    return ScaledWorld(catalogue, offers, groups, favorites, lists, showcase, showcase_skus, others)


def build(out: Path, members: int) -> ScaledData:
    rng = random.Random(SEED)
    world = scaled_world(rng)
    catalogue, lists = world.catalogue, world.lists
    pool = list(lists[0].skus)
    group_ids = [g.id for g in catalogue.category_groups]
    showcase = world.showcase
    stamp = out.with_suffix(".stamp")
    data = ScaledData(out, members, card_of(1), world.showcase_skus, world.other_skus)
    if out.exists() and stamp.exists() and stamp.read_text() == fingerprint(members):
        return data
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    url = f"sqlite:///{out}"
    db.migrate(url)
    engine = db.make_engine(url)
    sessions = db.make_session_factory(engine)
    started = time.perf_counter()
    with sessions.begin() as session:
        save_categories(session, catalogue.categories)
        save_products(session, catalogue.products)
        save_product_groups(session, world.groups)
        save_product_lists(session, lists)
        save_stores(session, STORES)
        save_offers(session, world.offers)
        save_favorite_products_offers(session, world.favorites)
    batch = 2000
    for start in range(1, members + 1, batch):
        chunk = [
            showcase if i == 1 else _member(i, rng, pool, group_ids, catalogue.products)
            for i in range(start, min(start + batch, members + 1))
        ]
        with sessions.begin() as session:
            save_members(session, chunk, {m.id: [card_of(int(m.id[1:]))] for m in chunk})
        done = min(start + batch - 1, members)
        print(
            f"\rscaled data: {done:,}/{members:,} members ({time.perf_counter() - started:.0f} s)",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)
    engine.dispose()
    stamp.write_text(fingerprint(members))
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/var/scaled.db"))
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()
    data = build(args.out, args.members)
    print(f"{data.path}: {data.members:,} members; showcase card {data.showcase_card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
