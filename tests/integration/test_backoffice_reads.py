"""The back office reads what it wrote (spec §17), on SQLite and PostgreSQL: Get and List of
every catalogue kind and of offers in any state, paged in key order with filters; an offer
switched off and on by id; an upsert must say whether the offer is active."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import common_pb2 as c
from service.api.backoffice import BackOfficeServicer
from service.cache.state import BenefitCache
from service.config import Settings
from service.errors import InvalidArgument, NotFound
from service.store.models import ChangeFeedRow, OfferRow

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
MARCH = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
APRIL = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def cache(db) -> BenefitCache:
    cache = BenefitCache(db, time_zone="Europe/Moscow")
    cache.reload_snapshot()
    return cache


@pytest.fixture
def servicer(db, cache) -> BackOfficeServicer:
    return BackOfficeServicer(Settings(), cache, db, clock=lambda: NOW)


def count(db, model) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(model))


def page(size: int = 0, token: str = "") -> bo.PageRequest:
    return bo.PageRequest(page_size=size, page_token=token)


def every_page(call, request, items: str, size: int) -> list[list]:
    """Every page of a List call, following the tokens."""
    pages, token = [], ""
    while True:
        request.page.CopyFrom(page(size, token))
        answer = call(request, None)
        pages.append(list(getattr(answer, items)))
        token = answer.next_page_token
        if not token:
            return pages


def offer(offer_id: str, **extra) -> bo.Offer:
    fields = dict(
        id=offer_id,
        name=f"Offer {offer_id}",
        level=c.LEVEL_ALL_BUYERS,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=1000),
        stacking=c.STACKING_COMBINABLE,
        state=bo.OFFER_STATE_ACTIVE,
    )
    fields.update(extra)
    return bo.Offer(**fields)


@pytest.fixture
def catalogue(servicer) -> None:
    """food > dairy > cheese, food > bread; five products; two groups; a list; two stores."""
    servicer.UpsertCategories(
        bo.UpsertCategoriesRequest(
            categories=[
                bo.Category(id="food", name="Food"),
                bo.Category(id="dairy", name="Dairy", parent_id="food"),
                bo.Category(id="cheese", name="Cheese", parent_id="dairy"),
                bo.Category(id="bread", name="Bread", parent_id="food"),
            ]
        ),
        None,
    )
    products = [
        bo.Product(sku="P1", name="Milk", unit=c.UNIT_PIECE, category_ids=["dairy"]),
        bo.Product(sku="P2", name="Brie", unit=c.UNIT_WEIGHT, category_ids=["cheese"]),
        bo.Product(sku="P3", name="Rye", unit=c.UNIT_PIECE, category_ids=["bread"], min_price=50),
        bo.Product(sku="P4", name="Kefir", unit=c.UNIT_PIECE, category_ids=["dairy", "bread"]),
        bo.Product(sku="P5", name="Cigars", unit=c.UNIT_PIECE, excluded=True),
    ]
    servicer.UpsertProducts(bo.UpsertProductsRequest(products=products), None)
    servicer.UpsertProductGroups(
        bo.UpsertProductGroupsRequest(
            groups=[
                bo.ProductGroup(
                    id="G-DAIRY", name="Dairy", category_ids=["dairy"], excluded_skus=["P4"]
                ),
                bo.ProductGroup(id="G-MIX", name="Mix", skus=["P5", "P1"]),
            ]
        ),
        None,
    )
    servicer.UpsertProductLists(
        bo.UpsertProductListsRequest(
            lists=[bo.ProductList(id="L1", name="Picks", skus=["P3", "P1"])]
        ),
        None,
    )
    servicer.UpsertStores(
        bo.UpsertStoresRequest(
            stores=[
                bo.Store(id="S2", name="Kazan", time_zone="Europe/Moscow"),
                bo.Store(id="S1", name="Omsk"),
            ]
        ),
        None,
    )


# --- catalogue -----------------------------------------------------------------------------------


def test_categories_page_in_id_order_and_filter_by_parent(servicer, catalogue):
    pages = every_page(servicer.ListCategories, bo.ListCategoriesRequest(), "categories", 3)
    assert [[x.id for x in p] for p in pages] == [["bread", "cheese", "dairy"], ["food"]]
    children = servicer.ListCategories(bo.ListCategoriesRequest(parent_id="food"), None)
    assert [x.id for x in children.categories] == ["bread", "dairy"]
    assert not children.next_page_token
    got = servicer.GetCategory(bo.GetCategoryRequest(id="cheese"), None).category
    assert got == bo.Category(id="cheese", name="Cheese", parent_id="dairy")


def test_products_filter_by_category_subtree_and_by_resolved_group(servicer, catalogue):
    def skus(**filters) -> list[str]:
        answer = servicer.ListProducts(bo.ListProductsRequest(**filters), None)
        return [p.sku for p in answer.products]

    assert skus() == ["P1", "P2", "P3", "P4", "P5"]
    assert skus(category_id="dairy") == ["P1", "P2", "P4"]
    assert skus(category_id="bread") == ["P3", "P4"]
    assert skus(group_id="G-DAIRY") == ["P1", "P2"]
    assert skus(group_id="G-DAIRY", category_id="cheese") == ["P2"]
    assert skus(category_id="nowhere") == [] and skus(group_id="G-NONE") == []
    pages = every_page(
        servicer.ListProducts, bo.ListProductsRequest(group_id="G-MIX"), "products", 1
    )
    assert [[p.sku for p in x] for x in pages] == [["P1"], ["P5"]]
    rye = servicer.GetProduct(bo.GetProductRequest(sku="P3"), None).product
    assert rye == bo.Product(
        sku="P3", name="Rye", unit=c.UNIT_PIECE, category_ids=["bread"], min_price=50
    )
    kefir = servicer.GetProduct(bo.GetProductRequest(sku="P4"), None).product
    assert list(kefir.category_ids) == ["dairy", "bread"] and not kefir.HasField("min_price")


def test_groups_carry_their_resolved_members_and_filter_by_sku(servicer, catalogue):
    dairy = servicer.GetProductGroup(bo.GetProductGroupRequest(id="G-DAIRY"), None).group
    assert list(dairy.member_skus) == ["P1", "P2"]  # P4 excluded, cheese below dairy
    assert list(dairy.group.excluded_skus) == ["P4"]
    answer = servicer.ListProductGroups(bo.ListProductGroupsRequest(sku="P1"), None)
    assert [g.group.id for g in answer.groups] == ["G-DAIRY", "G-MIX"]
    answer = servicer.ListProductGroups(bo.ListProductGroupsRequest(sku="P5"), None)
    assert [(g.group.id, list(g.member_skus)) for g in answer.groups] == [("G-MIX", ["P1", "P5"])]


def test_lists_and_stores_read_back_as_written(servicer, catalogue):
    got = servicer.GetProductList(bo.GetProductListRequest(id="L1"), None).list
    assert list(got.skus) == ["P3", "P1"]
    assert [x.id for x in servicer.ListProductLists(bo.ListProductListsRequest(), None).lists] == [
        "L1"
    ]
    stores = servicer.ListStores(bo.ListStoresRequest(), None).stores
    assert [(s.id, s.time_zone) for s in stores] == [("S1", ""), ("S2", "Europe/Moscow")]
    assert servicer.GetStore(bo.GetStoreRequest(id="S2"), None).store.name == "Kazan"


@pytest.mark.parametrize(
    ("method", "request_", "reason"),
    [
        ("GetCategory", bo.GetCategoryRequest(id="nope"), "CATEGORY_NOT_FOUND"),
        ("GetProduct", bo.GetProductRequest(sku="nope"), "PRODUCT_NOT_FOUND"),
        ("GetProductGroup", bo.GetProductGroupRequest(id="nope"), "PRODUCT_GROUP_NOT_FOUND"),
        ("GetProductList", bo.GetProductListRequest(id="nope"), "PRODUCT_LIST_NOT_FOUND"),
        ("GetStore", bo.GetStoreRequest(id="nope"), "STORE_NOT_FOUND"),
        ("GetOffer", bo.GetOfferRequest(id="nope"), "OFFER_NOT_FOUND"),
        (
            "GetFavoriteProductsOffer",
            bo.GetFavoriteProductsOfferRequest(id="nope"),
            "OFFER_NOT_FOUND",
        ),
        ("DeactivateOffer", bo.DeactivateOfferRequest(id="nope"), "OFFER_NOT_FOUND"),
    ],
)
def test_an_unknown_key_is_not_found_with_its_reason(servicer, catalogue, method, request_, reason):
    with pytest.raises(NotFound) as raised:
        getattr(servicer, method)(request_, None)
    assert raised.value.reason == reason


# --- paging --------------------------------------------------------------------------------------


def test_a_page_continues_after_its_key_even_when_items_are_written_in_between(servicer, catalogue):
    first = servicer.ListProducts(bo.ListProductsRequest(page=page(2)), None)
    assert [p.sku for p in first.products] == ["P1", "P2"]
    servicer.UpsertProducts(
        bo.UpsertProductsRequest(
            products=[
                bo.Product(sku="P0", name="Before", unit=c.UNIT_PIECE),
                bo.Product(sku="P35", name="After", unit=c.UNIT_PIECE),
            ]
        ),
        None,
    )
    rest = servicer.ListProducts(bo.ListProductsRequest(page=page(10, first.next_page_token)), None)
    assert [p.sku for p in rest.products] == ["P3", "P35", "P4", "P5"]
    assert not rest.next_page_token


def test_a_token_of_other_filters_or_made_up_and_a_bad_size_are_refused(servicer, catalogue):
    first = servicer.ListProducts(bo.ListProductsRequest(page=page(1)), None)
    cases = [
        (
            bo.ListProductsRequest(page=page(1, first.next_page_token), category_id="dairy"),
            "page.page_token",
        ),
        (bo.ListProductsRequest(page=page(1, "not-a-token")), "page.page_token"),
        (bo.ListProductsRequest(page=page(1, "W10=")), "page.page_token"),  # base64 of []
        (bo.ListProductsRequest(page=page(-1)), "page.page_size"),
        (bo.ListProductsRequest(page=page(1001)), "page.page_size"),
    ]
    for request, field in cases:
        with pytest.raises(InvalidArgument) as raised:
            servicer.ListProducts(request, None)
        assert raised.value.field == field
    stores_token = servicer.ListStores(bo.ListStoresRequest(page=page(1)), None).next_page_token
    # the same filters (none) on another kind: the cursor is only a key, so it is accepted
    assert stores_token


# --- offers --------------------------------------------------------------------------------------


@pytest.fixture
def offers(servicer, catalogue) -> None:
    march = c.Validity(valid_from={"seconds": MARCH}, valid_to={"seconds": APRIL})
    for request in (
        offer("A-ALL"),
        offer("A-DAIRY", scope_group_id="G-DAIRY", store_ids=["S1"]),
        offer("A-MARCH", validity=march, state=bo.OFFER_STATE_INACTIVE),
        offer("M-MEMBERS", level=c.LEVEL_MEMBERS_ONLY, store_ids=["S2"]),
    ):
        servicer.UpsertOffer(bo.UpsertOfferRequest(offer=request), None)
    servicer.UpsertFavoriteProductsOffer(
        bo.UpsertFavoriteProductsOfferRequest(
            offer=bo.FavoriteProductsOffer(
                offer=offer("F-PICKS", level=c.LEVEL_INDIVIDUAL),
                slot_count=2,
                list_source=c.LIST_SOURCE_PREDEFINED,
                product_list_id="L1",
                frequency=c.SELECTION_FREQUENCY_MONTHLY,
            )
        ),
        None,
    )


def offer_ids(servicer, **filters) -> list[str]:
    request = bo.ListOffersRequest(filter=bo.OfferFilter(**filters))
    return [o.id for o in servicer.ListOffers(request, None).offers]


def test_offers_of_every_level_and_state_filter_as_a_back_office_asks(servicer, offers):
    assert offer_ids(servicer) == ["A-ALL", "A-DAIRY", "A-MARCH", "F-PICKS", "M-MEMBERS"]
    assert offer_ids(servicer, level=c.LEVEL_ALL_BUYERS) == ["A-ALL", "A-DAIRY", "A-MARCH"]
    assert offer_ids(servicer, level=c.LEVEL_INDIVIDUAL) == ["F-PICKS"]
    assert offer_ids(servicer, state=bo.OFFER_STATE_INACTIVE) == ["A-MARCH"]
    assert "A-MARCH" not in offer_ids(servicer, state=bo.OFFER_STATE_ACTIVE)
    assert offer_ids(servicer, scope_group_id="G-DAIRY") == ["A-DAIRY"]
    assert offer_ids(servicer, store_id="S2") == ["A-ALL", "A-MARCH", "F-PICKS", "M-MEMBERS"]
    april = {"seconds": APRIL}  # valid_to is exclusive
    assert "A-MARCH" not in offer_ids(servicer, valid_at=april)
    assert "A-MARCH" in offer_ids(servicer, valid_at={"seconds": APRIL - 1})
    got = servicer.GetOffer(bo.GetOfferRequest(id="A-MARCH"), None).offer
    assert got.state == bo.OFFER_STATE_INACTIVE and not got.active
    assert got.validity.valid_to.seconds == APRIL


def test_the_store_filter_fills_whole_pages(servicer, offers):
    request = bo.ListOffersRequest(filter=bo.OfferFilter(store_id="S1"))
    pages = every_page(servicer.ListOffers, request, "offers", 2)
    assert [[o.id for o in p] for p in pages] == [["A-ALL", "A-DAIRY"], ["A-MARCH", "F-PICKS"]]


def test_favorite_products_offers_read_back_with_their_slots(servicer, offers):
    answer = servicer.ListFavoriteProductsOffers(bo.ListFavoriteProductsOffersRequest(), None)
    assert [(f.offer.id, f.slot_count, f.product_list_id) for f in answer.offers] == [
        ("F-PICKS", 2, "L1")
    ]
    got = servicer.GetFavoriteProductsOffer(bo.GetFavoriteProductsOfferRequest(id="F-PICKS"), None)
    assert got.offer.frequency == c.SELECTION_FREQUENCY_MONTHLY
    with pytest.raises(NotFound):
        servicer.GetFavoriteProductsOffer(bo.GetFavoriteProductsOfferRequest(id="A-ALL"), None)
    with pytest.raises(InvalidArgument) as raised:
        servicer.ListFavoriteProductsOffers(
            bo.ListFavoriteProductsOffersRequest(filter=bo.OfferFilter(level=c.LEVEL_ALL_BUYERS)),
            None,
        )
    assert raised.value.field == "filter.level"


def test_an_offer_is_switched_off_and_on_by_id_and_calculate_follows(servicer, cache, offers, db):
    assert cache.snapshot.offer("A-DAIRY") is not None
    feed_before = count(db, ChangeFeedRow)
    off = servicer.DeactivateOffer(bo.DeactivateOfferRequest(id="A-DAIRY"), None).offer
    assert off.state == bo.OFFER_STATE_INACTIVE and off.scope_group_id == "G-DAIRY"
    assert cache.snapshot.offer("A-DAIRY") is None
    assert count(db, ChangeFeedRow) == feed_before + 1  # the other replicas hear of it
    on = servicer.ReactivateOffer(bo.ReactivateOfferRequest(id="A-DAIRY"), None).offer
    assert on.state == bo.OFFER_STATE_ACTIVE and on.active
    assert cache.snapshot.offer("A-DAIRY").scope_group_id == "G-DAIRY"
    servicer.DeactivateOffer(bo.DeactivateOfferRequest(id="F-PICKS"), None)
    assert cache.snapshot.favorite_products_offer("F-PICKS") is None


# --- an upsert says whether the offer is active ----------------------------------------------


def test_an_upsert_without_a_state_is_refused_unless_the_old_active_flag_says_true(servicer, db):
    with pytest.raises(InvalidArgument) as raised:
        servicer.UpsertOffer(bo.UpsertOfferRequest(offer=offer("X", state=None)), None)
    assert raised.value.field == "offer.state"
    assert count(db, OfferRow) == 0
    legacy = servicer.UpsertOffer(
        bo.UpsertOfferRequest(offer=offer("X", state=None, active=True)), None
    )
    assert legacy.offer.state == bo.OFFER_STATE_ACTIVE and legacy.offer.active
    with pytest.raises(InvalidArgument) as raised:
        servicer.UpsertOffer(
            bo.UpsertOfferRequest(offer=offer("X", state=bo.OFFER_STATE_INACTIVE, active=True)),
            None,
        )
    assert raised.value.field == "offer.active"
    with pytest.raises(InvalidArgument) as raised:
        servicer.UpsertOffer(bo.UpsertOfferRequest(offer=offer("X", state=7)), None)
    assert raised.value.field == "offer.state"
    favorite = bo.FavoriteProductsOffer(
        offer=offer("F-X", level=c.LEVEL_INDIVIDUAL, state=None),
        slot_count=1,
        list_source=c.LIST_SOURCE_PURCHASE_HISTORY,
        frequency=c.SELECTION_FREQUENCY_MONTHLY,
    )
    with pytest.raises(InvalidArgument) as raised:
        servicer.UpsertFavoriteProductsOffer(
            bo.UpsertFavoriteProductsOfferRequest(offer=favorite), None
        )
    assert raised.value.field == "offer.offer.state"
    assert count(db, OfferRow) == 1
