from zoneinfo import ZoneInfo

import pytest

from service.engine.model import Category, Product, ProductGroup, Store
from service.engine.snapshot import build_snapshot
from tests.unit.engine.builders import CATEGORIES, offer, snapshot


def test_a_product_in_milk_is_also_in_dairy_and_food() -> None:
    snap = snapshot()
    assert snap.category_ancestors("milk") == {"milk", "dairy", "food"}
    assert {"milk", "dairy", "everything-food"} <= snap.groups_of("milk-1")
    assert snap.group_contains("dairy", "gouda")
    assert not snap.group_contains("milk", "gouda")


def test_a_group_is_listed_skus_plus_categories_minus_excluded_skus_and_categories() -> None:
    group = ProductGroup(
        "promo",
        "Promo",
        skus=frozenset({"bread", "apple"}),
        category_ids=frozenset({"dairy"}),
        excluded_skus=frozenset({"milk-2", "apple"}),
        excluded_category_ids=frozenset({"cheese"}),
    )
    snap = snapshot(groups=[group])
    members = {
        p
        for p in ("milk-1", "milk-2", "gouda", "apple", "bread", "banana")
        if snap.group_contains("promo", p)
    }
    assert members == {"milk-1", "bread"}


def test_an_unknown_sku_belongs_to_no_group_even_if_a_group_lists_it() -> None:
    snap = snapshot(groups=[ProductGroup("g", "G", skus=frozenset({"ghost"}))])
    assert snap.product("ghost") is None
    assert snap.groups_of("ghost") == frozenset()


def test_products_with_the_same_categories_share_their_group_set() -> None:
    snap = snapshot()
    assert snap.groups_of("milk-1") is snap.groups_of("milk-2")


def test_offers_are_indexed_by_the_groups_they_can_apply_to() -> None:
    snap = snapshot(
        [
            offer("all"),
            offer("on-milk", scope="milk"),
            offer("on-fruit", scope="fruit"),
            offer("ghost-group", scope="nope"),
        ]
    )
    assert [r.offer_id for r in snap.candidates_for("milk-1")] == ["all", "on-milk"]
    assert [r.offer_id for r in snap.candidates_for("apple")] == ["all", "on-fruit"]
    assert [r.offer_id for r in snap.candidates_for("unknown")] == ["all"]


def test_candidates_are_sorted_by_priority_then_offer_id() -> None:
    snap = snapshot(
        [offer("b"), offer("a"), offer("z", priority=5), offer("c", scope="milk", priority=1)]
    )
    assert [r.offer_id for r in snap.candidates_for("milk-1")] == ["z", "c", "a", "b"]


def test_a_category_cycle_does_not_hang_the_build() -> None:
    cats = [Category("a", "A", "b"), Category("b", "B", "a")]
    snap = build_snapshot(
        categories=cats,
        products=[Product("p", "P", ("a",))],
        groups=[ProductGroup("gb", "B", category_ids=frozenset({"b"}))],
        product_lists=[],
        offers=[],
        favorite_product_offers=[],
        stores=[],
        program_time_zone="UTC",
    )
    assert snap.category_ancestors("a") == {"a", "b"}
    assert snap.group_contains("gb", "p")


def test_the_store_zone_is_used_when_set_else_the_programs() -> None:
    snap = snapshot(stores=[Store("ny", "New York", "America/New_York"), Store("b", "Berlin")])
    assert snap.time_zone_for("ny") == ZoneInfo("America/New_York")
    assert snap.time_zone_for("b") == ZoneInfo("Europe/Berlin")
    assert snap.time_zone_for("unknown") == ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"offers": [offer("x"), offer("x")]},
        {"products": [Product("p", "P"), Product("p", "Q")]},
        {"zone": "Mars/Olympus"},
        {"stores": [Store("s", "S", "Not/AZone")]},
    ],
)
def test_a_broken_catalogue_is_refused_at_build(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        snapshot(**kwargs)  # type: ignore[arg-type]


def test_the_snapshot_exposes_what_callers_need() -> None:
    snap = snapshot([offer("o1")])
    assert snap.product("milk-1") is not None
    assert snap.product_list("list") is not None
    assert snap.offer("o1") is not None and snap.offer("o2") is None
    assert snap.category("milk") == CATEGORIES[2]
    assert snap.group("dairy") is not None
    assert snap.product_count == 8
