"""The back office end to end: catalogue and offers written through a real server are used
by the next Calculate on the same server; a bad request names the field and writes nothing;
only the BACK_OFFICE role may call it."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import backoffice_pb2_grpc, receipt_pb2, receipt_pb2_grpc
from loyalty.v1 import common_pb2 as c
from service.api.auth import Role
from tests.e2e.conftest import auth


def back_office(channel: grpc.Channel) -> backoffice_pb2_grpc.BackOfficeServiceStub:
    return backoffice_pb2_grpc.BackOfficeServiceStub(channel)


def call(channel: grpc.Channel, method: str, request, role: Role = Role.BACK_OFFICE):
    return getattr(back_office(channel), method)(request, timeout=10, metadata=auth(role))


def calculate(channel: grpc.Channel, sku: str, receipt_id: str) -> receipt_pb2.ReceiptResult:
    receipt = receipt_pb2.Receipt(
        receipt_id=receipt_id,
        store_id="S001",
        channel=c.CHANNEL_POS,
        lines=[
            receipt_pb2.ReceiptLine(line_id="1", sku=sku, quantity=1000, price=10000, amount=10000)
        ],
    )
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    return stub.Calculate(
        receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
    ).result


def violation(error: grpc.RpcError) -> str:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return bad_request.field_violations[0].field
    raise AssertionError("no BadRequest detail")


def test_a_new_all_buyers_offer_gives_its_discount_in_the_next_calculate(channel):
    call(
        channel,
        "UpsertCategories",
        bo.UpsertCategoriesRequest(categories=[bo.Category(id="e2e", name="E2E")]),
    )
    call(
        channel,
        "UpsertProducts",
        bo.UpsertProductsRequest(
            products=[
                bo.Product(sku="E2E-1", name="Test tea", unit=c.UNIT_PIECE, category_ids=["e2e"])
            ]
        ),
    )
    call(
        channel,
        "UpsertProductGroups",
        bo.UpsertProductGroupsRequest(
            groups=[bo.ProductGroup(id="G-E2E", name="E2E", category_ids=["e2e"])]
        ),
    )
    before = calculate(channel, "E2E-1", "E2E-B1")
    assert before.lines[0].known_sku and not before.lines[0].benefits
    offer = bo.Offer(
        id="A-E2E",
        name="Test tea half price",
        level=c.LEVEL_ALL_BUYERS,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=5000),
        scope_group_id="G-E2E",
        priority=1000,
        stacking=c.STACKING_EXCLUSIVE,
        active=True,
    )
    answer = call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=offer))
    # the deprecated `active = true` alone still means active; the answer says so both ways
    expected = bo.Offer()
    expected.CopyFrom(offer)
    expected.state = bo.OFFER_STATE_ACTIVE
    assert answer.offer == expected
    after = calculate(channel, "E2E-1", "E2E-B2")
    assert [(b.offer_id, b.discount) for b in after.lines[0].benefits] == [("A-E2E", 5000)]
    offer.active = False
    offer.state = bo.OFFER_STATE_INACTIVE
    call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=offer))
    assert not calculate(channel, "E2E-1", "E2E-B3").lines[0].benefits


def test_a_bad_product_is_invalid_argument_naming_the_field_and_nothing_is_written(channel):
    request = bo.UpsertProductsRequest(
        products=[
            bo.Product(sku="E2E-2", name="Fine", unit=c.UNIT_PIECE),
            bo.Product(sku="E2E-3", name="No unit"),
        ]
    )
    with pytest.raises(grpc.RpcError) as raised:
        call(channel, "UpsertProducts", request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(raised.value) == "products[1].unit"
    assert not calculate(channel, "E2E-2", "E2E-B4").lines[0].known_sku


def test_upsert_offer_refuses_an_individual_offer(channel):
    offer = bo.Offer(
        id="I-E2E",
        name="Mine",
        level=c.LEVEL_INDIVIDUAL,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=100),
        stacking=c.STACKING_EXCLUSIVE,
    )
    with pytest.raises(grpc.RpcError) as raised:
        call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=offer))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(raised.value) == "offer.level"


def test_a_favorite_products_offer_needs_at_least_one_slot(channel):
    offer = bo.FavoriteProductsOffer(
        offer=bo.Offer(
            id="F-E2E",
            name="Pick yours",
            level=c.LEVEL_INDIVIDUAL,
            benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=1500),
            stacking=c.STACKING_EXCLUSIVE,
            active=True,
            state=bo.OFFER_STATE_ACTIVE,
        ),
        list_source=c.LIST_SOURCE_PURCHASE_HISTORY,
        frequency=c.SELECTION_FREQUENCY_MONTHLY,
    )
    with pytest.raises(grpc.RpcError) as raised:
        call(
            channel,
            "UpsertFavoriteProductsOffer",
            bo.UpsertFavoriteProductsOfferRequest(offer=offer),
        )
    assert violation(raised.value) == "offer.slot_count"
    offer.slot_count = 2
    answer = call(
        channel, "UpsertFavoriteProductsOffer", bo.UpsertFavoriteProductsOfferRequest(offer=offer)
    )
    assert answer.offer == offer


def test_a_register_credential_may_not_change_the_catalogue(channel):
    request = bo.UpsertStoresRequest(stores=[bo.Store(id="S-E2E", name="Nope")])
    with pytest.raises(grpc.RpcError) as raised:
        call(channel, "UpsertStores", request, role=Role.REGISTER)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_auto_fill_fills_last_months_buyers_once_and_refuses_an_offer_without_it(channel):
    from service.demo_data.generate import FAVORITE_HISTORY, FAVORITE_PRODUCTS

    request = bo.RunFavoriteAutofillRequest(offer_id=FAVORITE_HISTORY)
    first = call(channel, "RunFavoriteAutofill", request)
    assert first.slots_filled >= first.members_updated > 0
    again = call(channel, "RunFavoriteAutofill", request)
    assert (again.members_updated, again.slots_filled) == (0, 0)
    with pytest.raises(grpc.RpcError) as raised:
        call(
            channel,
            "RunFavoriteAutofill",
            bo.RunFavoriteAutofillRequest(offer_id=FAVORITE_PRODUCTS),
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as raised:
        call(channel, "RunFavoriteAutofill", bo.RunFavoriteAutofillRequest(offer_id="NOPE"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


# --- reads and the offer switch (spec §17) ------------------------------------------------------


def test_every_offer_of_the_demo_is_listed_once_across_pages_in_id_order(channel):
    seen: list[str] = []
    token = ""
    while True:
        request = bo.ListOffersRequest(page=bo.PageRequest(page_size=3, page_token=token))
        answer = call(channel, "ListOffers", request)
        assert len(answer.offers) <= 3
        seen += [o.id for o in answer.offers]
        token = answer.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) > 3
    one_page = call(
        channel, "ListOffers", bo.ListOffersRequest(page=bo.PageRequest(page_size=1000))
    )
    assert [o.id for o in one_page.offers] == seen and not one_page.next_page_token
    levels = {o.level for o in one_page.offers}
    assert c.LEVEL_INDIVIDUAL in levels and c.LEVEL_ALL_BUYERS in levels


def test_a_switched_off_offer_gives_nothing_until_it_is_switched_on_again(channel):
    call(
        channel,
        "UpsertProducts",
        bo.UpsertProductsRequest(
            products=[bo.Product(sku="E2E-SW", name="Switch", unit=c.UNIT_PIECE)]
        ),
    )
    offer = bo.Offer(
        id="A-E2E-SWITCH",
        name="Everything -1 %",
        level=c.LEVEL_ALL_BUYERS,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=100),
        priority=1,
        stacking=c.STACKING_COMBINABLE,
        state=bo.OFFER_STATE_ACTIVE,
    )
    call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=offer))

    def applied() -> bool:
        result = calculate(channel, "E2E-SW", "E2E-SW")
        return "A-E2E-SWITCH" in {b.offer_id for b in result.lines[0].benefits}

    assert applied()
    off = call(channel, "DeactivateOffer", bo.DeactivateOfferRequest(id="A-E2E-SWITCH"))
    assert off.offer.state == bo.OFFER_STATE_INACTIVE and off.offer.name == offer.name
    assert not applied()
    listed = call(
        channel,
        "ListOffers",
        bo.ListOffersRequest(filter=bo.OfferFilter(state=bo.OFFER_STATE_INACTIVE)),
    )
    assert "A-E2E-SWITCH" in {o.id for o in listed.offers}
    call(channel, "ReactivateOffer", bo.ReactivateOfferRequest(id="A-E2E-SWITCH"))
    assert applied()
    got = call(channel, "GetOffer", bo.GetOfferRequest(id="A-E2E-SWITCH"))
    assert got.offer.state == bo.OFFER_STATE_ACTIVE


def test_reads_are_for_the_back_office_role_only(channel):
    for role in (Role.REGISTER, Role.CUSTOMER_SERVICES, Role.OPERATOR):
        with pytest.raises(grpc.RpcError) as raised:
            call(channel, "ListProducts", bo.ListProductsRequest(), role=role)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as raised:
            call(channel, "DeactivateOffer", bo.DeactivateOfferRequest(id="X"), role=role)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    group = call(
        channel, "ListProductGroups", bo.ListProductGroupsRequest(page=bo.PageRequest(page_size=1))
    )
    assert len(group.groups) == 1 and group.next_page_token
