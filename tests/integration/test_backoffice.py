"""The back-office servicer on a real store and cache: upserts validated in full before
anything is written (the field at fault named), written in one transaction and visible in
this replica's snapshot at once; import status; the import stream's first message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import common_pb2 as c
from service.api.backoffice import BackOfficeServicer
from service.cache.state import BenefitCache
from service.config import Settings
from service.engine.model import Level, ListSource, Member, Unit
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.store import favorites_repo
from service.store.member_repo import save_member
from service.store.models import CategoryRow, OfferRow, ProductListRow, ProductRow

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


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


def product(sku: str, **extra) -> bo.Product:
    fields = {"name": f"Product {sku}", "unit": c.UNIT_PIECE, "category_ids": ["dairy"]}
    fields.update(extra)
    return bo.Product(sku=sku, **fields)


def offer(**extra) -> bo.Offer:
    fields = dict(
        id="A-TEST",
        name="Everything -10 %",
        level=c.LEVEL_ALL_BUYERS,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=1000),
        stacking=c.STACKING_COMBINABLE,
        priority=5,
        state=bo.OFFER_STATE_ACTIVE,
    )
    fields.update(extra)
    return bo.Offer(**fields)


def favorite(**extra) -> bo.FavoriteProductsOffer:
    fields = dict(
        offer=offer(id="F-TEST", level=c.LEVEL_INDIVIDUAL),
        slot_count=3,
        list_source=c.LIST_SOURCE_PREDEFINED,
        product_list_id="L1",
        frequency=c.SELECTION_FREQUENCY_WEEKLY,
        autofill=True,
    )
    fields.update(extra)
    return bo.FavoriteProductsOffer(**fields)


def refused(call, request) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as raised:
        call(request, None)
    return raised.value


# --- catalogue -----------------------------------------------------------------------------------


def test_upserted_catalogue_is_in_this_replicas_snapshot_at_once(servicer, cache):
    servicer.UpsertCategories(
        bo.UpsertCategoriesRequest(
            categories=[
                bo.Category(id="food", name="Food"),
                bo.Category(id="dairy", name="Dairy", parent_id="food"),
            ]
        ),
        None,
    )
    answer = servicer.UpsertProducts(
        bo.UpsertProductsRequest(products=[product("S1", min_price=500), product("S2")]), None
    )
    servicer.UpsertProductGroups(
        bo.UpsertProductGroupsRequest(
            groups=[
                bo.ProductGroup(
                    id="G-FOOD", name="Food", category_ids=["food"], excluded_skus=["S2"]
                )
            ]
        ),
        None,
    )
    servicer.UpsertProductLists(
        bo.UpsertProductListsRequest(
            lists=[bo.ProductList(id="L1", name="Picks", skus=["S2", "S1"])]
        ),
        None,
    )
    servicer.UpsertStores(
        bo.UpsertStoresRequest(stores=[bo.Store(id="S9", name="Kazan", time_zone="Europe/Moscow")]),
        None,
    )
    assert answer.upserted == 2
    snapshot = cache.snapshot
    s1 = snapshot.product("S1")
    assert (s1.unit, s1.min_price, s1.category_ids) == (Unit.PIECE, 500, ("dairy",))
    assert snapshot.category_ancestors("dairy") == frozenset({"dairy", "food"})
    assert snapshot.group_contains("G-FOOD", "S1") and not snapshot.group_contains("G-FOOD", "S2")
    assert snapshot.product_list("L1").skus == ("S2", "S1")
    assert snapshot.store("S9").time_zone == "Europe/Moscow"


def test_a_product_with_an_unspecified_unit_is_named_and_no_product_is_written(servicer, db):
    request = bo.UpsertProductsRequest(
        products=[
            product("S1"),
            product("S2"),
            product("S3"),
            product("S4", unit=c.UNIT_UNSPECIFIED),
        ]
    )
    error = refused(servicer.UpsertProducts, request)
    assert error.field == "products[3].unit"
    assert count(db, ProductRow) == 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (bo.UpsertProductsRequest(products=[product("")]), "products[0].sku"),
        (bo.UpsertProductsRequest(products=[product("S1", name="")]), "products[0].name"),
        (bo.UpsertProductsRequest(products=[product("S1", min_price=-1)]), "products[0].min_price"),
        (
            bo.UpsertProductsRequest(products=[product("S1", category_ids=[""])]),
            "products[0].category_ids[0]",
        ),
        (bo.UpsertProductsRequest(products=[product("S1"), product("S1")]), "products[1].sku"),
        (bo.UpsertProductsRequest(products=[product("x" * 65)]), "products[0].sku"),
    ],
)
def test_each_bad_product_field_is_named(servicer, request_, field):
    assert refused(servicer.UpsertProducts, request_).field == field


def test_a_category_that_would_make_a_cycle_is_refused(servicer, db):
    servicer.UpsertCategories(
        bo.UpsertCategoriesRequest(
            categories=[bo.Category(id="a", name="A"), bo.Category(id="b", name="B", parent_id="a")]
        ),
        None,
    )
    request = bo.UpsertCategoriesRequest(
        categories=[bo.Category(id="c", name="C"), bo.Category(id="a", name="A", parent_id="b")]
    )
    error = refused(servicer.UpsertCategories, request)
    assert error.field == "categories[1].parent_id" and "cycle" in error.description
    assert count(db, CategoryRow) == 2
    own = bo.UpsertCategoriesRequest(categories=[bo.Category(id="z", name="Z", parent_id="z")])
    assert refused(servicer.UpsertCategories, own).field == "categories[0].parent_id"


def test_a_list_with_a_sku_twice_and_a_store_in_an_unknown_zone_are_refused(servicer, db):
    lists = bo.UpsertProductListsRequest(
        lists=[bo.ProductList(id="L1", name="x", skus=["A", "B", "A"])]
    )
    assert refused(servicer.UpsertProductLists, lists).field == "lists[0].skus[2]"
    stores = bo.UpsertStoresRequest(stores=[bo.Store(id="S1", name="x", time_zone="Mars/Olympus")])
    assert refused(servicer.UpsertStores, stores).field == "stores[0].time_zone"
    assert count(db, ProductListRow) == 0


# --- offers --------------------------------------------------------------------------------------


def test_an_offer_is_stored_returned_as_stored_and_used_at_once(servicer, cache):
    request = offer(
        validity=c.Validity(valid_from={"seconds": 1_700_000_000}),
        schedule=bo.Schedule(
            days_of_week=[5, 1], time_ranges=[bo.TimeRange(start_minute=480, end_minute=720)]
        ),
        store_ids=["S2", "S1"],
        channels=[c.CHANNEL_POS],
        usage_limit=c.UsageLimit(
            unit=c.USAGE_LIMIT_UNIT_RECEIPTS, limit=2, period=c.USAGE_LIMIT_PERIOD_DAY
        ),
    )
    answer = servicer.UpsertOffer(bo.UpsertOfferRequest(offer=request), None)
    assert list(answer.offer.store_ids) == ["S1", "S2"]
    assert list(answer.offer.schedule.days_of_week) == [1, 5]
    assert answer.offer.active and answer.offer.usage_limit.limit == 2
    stored = cache.snapshot.offer("A-TEST")
    assert stored.level is Level.ALL_BUYERS and stored.benefit.value == 1000
    assert stored.store_ids == frozenset({"S1", "S2"})


def test_an_inactive_offer_is_stored_but_not_used(servicer, cache, db):
    servicer.UpsertOffer(bo.UpsertOfferRequest(offer=offer(state=bo.OFFER_STATE_INACTIVE)), None)
    assert cache.snapshot.offer("A-TEST") is None
    assert count(db, OfferRow) == 1


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"level": c.LEVEL_INDIVIDUAL}, "offer.level", "UpsertFavoriteProductsOffer"),
        ({"level": c.LEVEL_UNSPECIFIED}, "offer.level", "known value"),
        ({"stacking": c.STACKING_UNSPECIFIED}, "offer.stacking", "known value"),
        ({"benefit": c.Benefit(value=10)}, "offer.benefit.kind", "known value"),
        (
            {"benefit": c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=10001)},
            "offer.benefit.value",
            "10000",
        ),
        ({"id": ""}, "offer.id", "empty"),
        ({"name": ""}, "offer.name", "empty"),
        ({"channels": [c.CHANNEL_POS, c.CHANNEL_UNSPECIFIED]}, "offer.channels[1]", "known value"),
        (
            {"validity": c.Validity(valid_from={"seconds": 20}, valid_to={"seconds": 10})},
            "offer.validity.valid_to",
            "after",
        ),
        ({"schedule": bo.Schedule(days_of_week=[8])}, "offer.schedule.days_of_week[0]", "ISO days"),
        (
            {"schedule": bo.Schedule(time_ranges=[bo.TimeRange(start_minute=60, end_minute=60)])},
            "offer.schedule.time_ranges[0]",
            "empty range",
        ),
        (
            {"schedule": bo.Schedule(time_ranges=[bo.TimeRange(start_minute=1440, end_minute=60)])},
            "offer.schedule.time_ranges[0].start_minute",
            "0 to 1439",
        ),
        (
            {"usage_limit": c.UsageLimit(unit=c.USAGE_LIMIT_UNIT_UNITS, limit=5)},
            "offer.usage_limit.period",
            "known value",
        ),
        (
            {
                "usage_limit": c.UsageLimit(
                    unit=c.USAGE_LIMIT_UNIT_UNITS, period=c.USAGE_LIMIT_PERIOD_DAY
                )
            },
            "offer.usage_limit.limit",
            "positive",
        ),
        (
            {"audience": bo.Audience(segment_tags=["vip"])},
            "offer.audience",
            "only for LEVEL_TARGET_AUDIENCE",
        ),
        ({"level": c.LEVEL_TARGET_AUDIENCE}, "offer.audience", "at least one criterion"),
        (
            {"level": c.LEVEL_TARGET_AUDIENCE, "audience": bo.Audience(min_age=70, max_age=60)},
            "offer.audience.max_age",
            "min_age",
        ),
        (
            {"level": c.LEVEL_TARGET_AUDIENCE, "audience": bo.Audience(gender=7)},
            "offer.audience.gender",
            "known value",
        ),
        ({"text": "x" * 201}, "offer.text", "200"),
    ],
)
def test_each_bad_offer_field_is_named_and_nothing_is_written(servicer, db, changes, field, reason):
    error = refused(servicer.UpsertOffer, bo.UpsertOfferRequest(offer=offer(**changes)))
    assert error.field == field and reason in error.description
    assert count(db, OfferRow) == 0


def test_a_target_audience_offer_with_criteria_is_stored(servicer, cache):
    audience = bo.Audience(segment_tags=["pensioner"], min_age=60, gender=c.GENDER_FEMALE)
    request = offer(level=c.LEVEL_TARGET_AUDIENCE, audience=audience)
    answer = servicer.UpsertOffer(bo.UpsertOfferRequest(offer=request), None)
    assert answer.offer.audience.min_age == 60 and not answer.offer.audience.HasField("max_age")
    assert cache.snapshot.offer("A-TEST").audience.segment_tags == frozenset({"pensioner"})


def test_a_favorite_products_offer_is_stored_with_its_slots_and_list(servicer, cache):
    answer = servicer.UpsertFavoriteProductsOffer(
        bo.UpsertFavoriteProductsOfferRequest(offer=favorite()), None
    )
    assert answer.offer.slot_count == 3 and answer.offer.offer.level == c.LEVEL_INDIVIDUAL
    stored = cache.snapshot.favorite_products_offer("F-TEST")
    assert (stored.slot_count, stored.list_source, stored.product_list_id) == (
        3,
        ListSource.PREDEFINED,
        "L1",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"offer": offer(id="F-TEST")}, "offer.offer.level"),
        ({"slot_count": 0}, "offer.slot_count"),
        ({"list_source": c.LIST_SOURCE_UNSPECIFIED}, "offer.list_source"),
        ({"product_list_id": ""}, "offer.product_list_id"),
        ({"list_source": c.LIST_SOURCE_PURCHASE_HISTORY}, "offer.product_list_id"),
        ({"frequency": c.SELECTION_FREQUENCY_EVERY_N_DAYS}, "offer.every_n_days"),
        ({"every_n_days": 3}, "offer.every_n_days"),
        ({"frequency": c.SELECTION_FREQUENCY_UNSPECIFIED}, "offer.frequency"),
        (
            {"offer": offer(id="F-TEST", level=c.LEVEL_INDIVIDUAL, scope_group_id="G1")},
            "offer.offer.scope_group_id",
        ),
    ],
)
def test_each_bad_favorite_products_field_is_named_and_nothing_is_written(
    servicer, db, changes, field
):
    request = bo.UpsertFavoriteProductsOfferRequest(offer=favorite(**changes))
    assert refused(servicer.UpsertFavoriteProductsOffer, request).field == field
    assert count(db, OfferRow) == 0


def test_an_offer_id_cannot_change_between_general_and_favorite_products(servicer, db):
    servicer.UpsertOffer(bo.UpsertOfferRequest(offer=offer(id="X")), None)
    servicer.UpsertFavoriteProductsOffer(
        bo.UpsertFavoriteProductsOfferRequest(
            offer=favorite(offer=offer(id="Y", level=c.LEVEL_INDIVIDUAL))
        ),
        None,
    )
    with pytest.raises(FailedPrecondition, match="use UpsertFavoriteProductsOffer"):
        servicer.UpsertOffer(bo.UpsertOfferRequest(offer=offer(id="Y")), None)
    with pytest.raises(FailedPrecondition, match="level ALL_BUYERS"):
        servicer.UpsertFavoriteProductsOffer(
            bo.UpsertFavoriteProductsOfferRequest(
                offer=favorite(offer=offer(id="X", level=c.LEVEL_INDIVIDUAL))
            ),
            None,
        )
    assert count(db, OfferRow) == 2


# --- imports -------------------------------------------------------------------------------------


def stream(*messages: bo.ImportCustomerAttributesRequest):
    return iter(messages)


def header(import_id: str = "I1") -> bo.ImportCustomerAttributesRequest:
    return bo.ImportCustomerAttributesRequest(header=bo.ImportHeader(import_id=import_id))


def row(number: int, **record) -> bo.ImportCustomerAttributesRequest:
    return bo.ImportCustomerAttributesRequest(row=bo.AttributeRow(line_number=number, **record))


def test_the_import_stream_must_start_with_a_header_with_an_id(servicer):
    profile = row(1, member_profile=bo.MemberProfileRow(member_id="M1"))
    with pytest.raises(InvalidArgument) as raised:
        servicer.ImportCustomerAttributes(stream(profile), None)
    assert raised.value.field == "header"
    with pytest.raises(InvalidArgument) as raised:
        servicer.ImportCustomerAttributes(stream(header("")), None)
    assert raised.value.field == "header.import_id"


def test_an_import_through_the_servicer_forgets_the_members_it_changed(servicer, cache, db):
    with db() as session:
        save_member(session, Member("M1"), now=NOW)
        session.commit()
    assert cache.member("M1").segment_tags == frozenset()  # now cached
    answer = servicer.ImportCustomerAttributes(
        stream(
            header(),
            row(1, member_profile=bo.MemberProfileRow(member_id="M1", segment_tags=["vip"])),
            row(2, member_profile=bo.MemberProfileRow(member_id="")),
        ),
        None,
    )
    assert (answer.status.rows_applied, answer.status.rows_rejected) == (1, 1)
    assert [(e.line_number, e.field) for e in answer.errors] == [(2, "member_id")]
    assert cache.member("M1").segment_tags == frozenset({"vip"})
    again = servicer.ImportCustomerAttributes(stream(header()), None)
    assert again.replayed and again.status.rows_applied == 1


def test_the_status_of_an_import_is_found_by_id_and_an_unknown_id_is_not_found(servicer):
    servicer.ImportCustomerAttributes(stream(header("I7")), None)
    status = servicer.GetImportStatus(bo.GetImportStatusRequest(import_id="I7"), None).status
    assert (status.state, status.rows_total) == ("DONE", 0)
    assert status.finished_at.ToDatetime(UTC) == NOW
    with pytest.raises(NotFound):
        servicer.GetImportStatus(bo.GetImportStatusRequest(import_id="nope"), None)


# --- auto-fill -----------------------------------------------------------------------------------


def test_auto_fill_fills_the_empty_slots_of_the_members_asked_for_then_of_everyone(
    servicer, db, cache, monkeypatch
):
    servicer.UpsertProducts(
        bo.UpsertProductsRequest(products=[product("S1"), product("S2"), product("S3")]), None
    )
    servicer.UpsertProductLists(
        bo.UpsertProductListsRequest(
            lists=[bo.ProductList(id="L1", name="Picks", skus=["S1", "S2", "S3"])]
        ),
        None,
    )
    servicer.UpsertFavoriteProductsOffer(
        bo.UpsertFavoriteProductsOfferRequest(offer=favorite(slot_count=2)), None
    )
    with db() as session:
        for member_id in ("M1", "M2", "M3"):
            save_member(session, Member(member_id), now=NOW)
        session.commit()
    assert cache.member("M1").favorite_slots == {}  # cached before the run
    monkeypatch.setattr(favorites_repo, "AUTOFILL_BATCH", 1)  # a transaction per member

    request = bo.RunFavoriteAutofillRequest(offer_id="F-TEST", member_ids=["M1"])
    answer = servicer.RunFavoriteAutofill(request, None)
    assert (answer.members_updated, answer.slots_filled) == (1, 2)
    assert cache.member("M1").favorite_slots == {"F-TEST": frozenset({"S1", "S2"})}
    everyone = servicer.RunFavoriteAutofill(bo.RunFavoriteAutofillRequest(offer_id="F-TEST"), None)
    assert (everyone.members_updated, everyone.slots_filled) == (2, 4)
    again = servicer.RunFavoriteAutofill(bo.RunFavoriteAutofillRequest(offer_id="F-TEST"), None)
    assert (again.members_updated, again.slots_filled) == (0, 0)


def test_auto_fill_is_refused_for_an_unknown_offer_or_one_without_auto_fill(servicer):
    with pytest.raises(NotFound):
        servicer.RunFavoriteAutofill(bo.RunFavoriteAutofillRequest(offer_id="NOPE"), None)
    servicer.UpsertFavoriteProductsOffer(
        bo.UpsertFavoriteProductsOfferRequest(offer=favorite(autofill=False)), None
    )
    with pytest.raises(FailedPrecondition, match="auto-fill is off"):
        servicer.RunFavoriteAutofill(bo.RunFavoriteAutofillRequest(offer_id="F-TEST"), None)
    request = bo.RunFavoriteAutofillRequest(offer_id="F-TEST", member_ids=[""])
    assert refused(servicer.RunFavoriteAutofill, request).field == "member_ids[0]"


def test_an_import_stream_broken_off_resumes_when_the_same_id_is_sent_again(db, cache):
    servicer = BackOfficeServicer(Settings(), cache, db, clock=lambda: NOW, import_batch_size=2)
    rows = [
        row(n, member_profile=bo.MemberProfileRow(member_id=f"M{n}", segment_tags=["x"]))
        for n in range(1, 8)
    ]

    def broken_off():
        yield header("I9")
        yield from rows[:5]
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        servicer.ImportCustomerAttributes(broken_off(), None)
    halfway = servicer.GetImportStatus(bo.GetImportStatusRequest(import_id="I9"), None).status
    assert halfway.state == "RUNNING" and 0 < halfway.rows_applied < 7
    assert cache.member("M7") is None

    answer = servicer.ImportCustomerAttributes(stream(header("I9"), *rows), None)
    assert (answer.status.state, answer.status.rows_total, answer.status.rows_applied) == (
        "DONE",
        7,
        7,
    )
    assert all(cache.member(f"M{n}").segment_tags == frozenset({"x"}) for n in range(1, 8))
