"""The member lookup, favorite selections and operator edits through a real server with the
demo data; every test uses its own member, so they can run in any order or in parallel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from loyalty.v1 import common_pb2, member_pb2, member_pb2_grpc, receipt_pb2, receipt_pb2_grpc
from service.api.auth import Role
from service.api.server import LoyaltyServer
from service.demo_data.generate import FAVORITE_HISTORY, FAVORITE_PRODUCTS, FAVORITES_LIST
from service.engine.model import Member
from tests.e2e.conftest import auth

SHOWCASE = "M000001"


def members(channel: grpc.Channel) -> member_pb2_grpc.MemberServiceStub:
    return member_pb2_grpc.MemberServiceStub(channel)


def identity(member_id: str) -> common_pb2.MemberIdentity:
    return common_pb2.MemberIdentity(member_id=member_id)


def lookup(
    grpc_channel: grpc.Channel, member_id: str, **fields
) -> member_pb2.GetMemberOffersResponse:
    request = member_pb2.GetMemberOffersRequest(member=identity(member_id), **fields)
    return members(grpc_channel).GetMemberOffers(
        request, timeout=10, metadata=auth(Role.CUSTOMER_SERVICES)
    )


def select_products(
    channel: grpc.Channel, member_id: str, skus: list[str], offer_id: str = FAVORITE_PRODUCTS
) -> member_pb2.SelectFavoriteProductsResponse:
    request = member_pb2.SelectFavoriteProductsRequest(
        member=identity(member_id), offer_id=offer_id, skus=skus
    )
    return members(channel).SelectFavoriteProducts(
        request, timeout=10, metadata=auth(Role.CUSTOMER_SERVICES)
    )


def favorite_view(
    answer: member_pb2.GetMemberOffersResponse, offer_id: str = FAVORITE_PRODUCTS
) -> member_pb2.FavoriteProductsView:
    (view,) = [v for v in answer.favorite_products if v.offer_id == offer_id]
    return view


def failure(call: Callable[[], object]) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    return caught.value.code(), info


def find_member(server: LoyaltyServer, wanted: Callable[[Member], bool], skip: int = 0) -> Member:
    """The first demo member (after `skip` matches) the predicate accepts."""
    for n in range(2, 1001):
        member = server.cache.member(f"M{n:06d}")
        if member is not None and wanted(member):
            if skip == 0:
                return member
            skip -= 1
    raise AssertionError("no such demo member")


def favorites_list(server: LoyaltyServer) -> tuple[str, ...]:
    found = server.cache.snapshot.product_list(FAVORITES_LIST)
    assert found is not None
    return found.skus


def plain_member(member: Member) -> bool:
    """Active, nothing that could beat a favorite product on a line: no category terms, no
    personalized offers, no pensioner mornings, no birthday nearby, fewer than 3 favorites."""
    today = datetime.now(UTC).date()
    birthday_near = member.birth_date is not None and any(
        abs((member.birth_date.replace(year=year) - today).days) <= 5
        for year in (today.year - 1, today.year, today.year + 1)
        if not (member.birth_date.month == 2 and member.birth_date.day == 29)
    )
    return (
        member.active
        and not member.favorite_categories
        and not member.personal_offers
        and "pensioner" not in member.segment_tags
        and not birthday_near
        and FAVORITE_PRODUCTS not in member.favorite_slots
    )


# --- the lookup ----------------------------------------------------------------------------------


def test_the_lookup_shows_the_showcase_members_slots_lists_categories_and_offers(channel):
    answer = lookup(channel, SHOWCASE)
    assert answer.member_id == SHOWCASE
    views = {view.offer_id: view for view in answer.favorite_products}
    assert set(views) == {FAVORITE_PRODUCTS, FAVORITE_HISTORY}
    products = views[FAVORITE_PRODUCTS]
    assert products.slot_count == 3 and len(products.slots) == 3
    assert all(slot.sku and slot.product_name for slot in products.slots)
    assert all(item.product_name for item in products.list)
    assert {slot.sku for slot in products.slots} <= {item.sku for item in products.list}
    assert products.frequency == common_pb2.SELECTION_FREQUENCY_WEEKLY
    assert products.change_window.change_allowed_now
    history = views[FAVORITE_HISTORY]
    assert history.list_source == common_pb2.LIST_SOURCE_PURCHASE_HISTORY
    assert len(history.list) == 7  # what the showcase member bought last month
    assert history.list[0].product_name == "Buckwheat 900 g, Mistral"  # most bought first
    (categories,) = answer.favorite_categories
    assert [(o.group_id, o.chosen) for o in categories.offered] == [
        ("G-SWEETS", True),
        ("G-BAKERY", False),
        ("G-DAIRY", False),
    ]
    assert all(o.name for o in categories.offered)
    assert (categories.max_count, categories.acceptance_required) == (1, True)
    personal = {offer.offer_id: offer for offer in answer.personal_offers}
    assert set(personal) == {"P-COFFEE", "P-FRUIT"}
    assert personal["P-COFFEE"].usage_limit.limit == 3000
    assert personal["P-COFFEE"].used == 0
    general = {offer.offer_id for offer in answer.general_offers}
    assert {"M-BONUS-2", "T-VIP-BONUS", "A-FRUIT-PER-KG", "M-YELLOW-MILK"} <= general
    assert "T-PENSIONER-MORNING" not in general  # not a pensioner
    assert answer.points_balance == 0


def test_the_lookup_restricts_general_offers_to_the_store_and_channel_asked(channel):
    anywhere = {o.offer_id for o in lookup(channel, SHOWCASE).general_offers}
    here = {
        o.offer_id
        for o in lookup(
            channel, SHOWCASE, store_id="S001", channel=common_pb2.CHANNEL_POS
        ).general_offers
    }
    assert {"A-EKB-OPENING", "A-ONLINE-HOUSEHOLD"} <= anywhere
    assert "A-EKB-OPENING" not in here  # Yekaterinburg only
    assert "A-ONLINE-HOUSEHOLD" not in here  # online only
    assert "A-FRUIT-PER-KG" in here


def test_the_lookup_by_card_gives_the_same_member_and_an_unknown_card_is_not_found(channel):
    request = member_pb2.GetMemberOffersRequest(
        member=common_pb2.MemberIdentity(card_number="2000000000001")
    )
    stub = members(channel)
    answer = stub.GetMemberOffers(request, timeout=10, metadata=auth(Role.REGISTER))
    assert answer.member_id == SHOWCASE
    request.member.card_number = "2999999999999"
    code, info = failure(
        lambda: stub.GetMemberOffers(request, timeout=10, metadata=auth(Role.REGISTER))
    )
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "CARD_NOT_FOUND")


def test_a_lookup_far_in_the_future_shows_no_offers_that_ended(channel):
    later = datetime.now(UTC) + timedelta(days=3650)
    answer = lookup(channel, SHOWCASE, at=_timestamp(later))
    assert not answer.favorite_products
    assert not answer.personal_offers
    assert not answer.general_offers


# --- a member's selection ------------------------------------------------------------------------


def test_a_favorite_chosen_in_customer_services_gets_its_benefit_at_the_register(
    channel, demo_server
):
    member = find_member(demo_server, plain_member)
    sku = favorites_list(demo_server)[3]
    chosen = select_products(channel, member.id, ["", sku])
    assert [slot.sku for slot in chosen.favorite_products.slots] == ["", sku, ""]
    receipt = receipt_pb2.Receipt(
        receipt_id=f"FAV-{member.id}",
        store_id="S001",
        channel=common_pb2.CHANNEL_POS,
        member=identity(member.id),
    )
    receipt.lines.add(line_id="1", sku=sku, quantity=1000, price=10000, amount=10000)
    result = (
        receipt_pb2_grpc.ReceiptServiceStub(channel)
        .Calculate(receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth())
        .result
    )
    benefits = {(b.offer_id, b.mechanic) for b in result.lines[0].benefits}
    assert (FAVORITE_PRODUCTS, common_pb2.MECHANIC_FAVORITE_PRODUCTS) in benefits
    assert result.lines[0].discount >= 1500


def test_a_second_replacement_in_the_same_week_is_refused_with_the_next_allowed_time(
    channel, demo_server
):
    member = find_member(demo_server, plain_member, skip=1)
    skus = favorites_list(demo_server)
    select_products(channel, member.id, [skus[0]])  # filling
    select_products(channel, member.id, [skus[1]])  # the week's replacement
    code, info = failure(lambda: select_products(channel, member.id, [skus[2]]))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "CHANGE_NOT_ALLOWED"
    next_allowed = datetime.fromisoformat(info.metadata["next_allowed"])
    assert next_allowed.astimezone(demo_server.cache.snapshot.program_time_zone).weekday() == 0
    window = favorite_view(lookup(channel, member.id)).change_window
    assert not window.change_allowed_now
    assert window.next_change_allowed.ToDatetime(UTC) == next_allowed


def test_a_product_off_the_list_is_invalid_and_names_the_slot(channel, demo_server):
    member = find_member(demo_server, plain_member, skip=2)
    code, info = failure(lambda: select_products(channel, member.id, ["", "NOT-ON-THE-LIST"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == "INVALID_ARGUMENT"


def test_the_register_may_not_select_favorites(channel):
    request = member_pb2.SelectFavoriteProductsRequest(
        member=identity(SHOWCASE), offer_id=FAVORITE_PRODUCTS, skus=[]
    )
    code, _ = failure(
        lambda: members(channel).SelectFavoriteProducts(
            request, timeout=10, metadata=auth(Role.REGISTER)
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


# --- operator edits ------------------------------------------------------------------------------


def operator_request(
    member_id: str, skus: list[str]
) -> member_pb2.OperatorSetFavoriteProductsRequest:
    return member_pb2.OperatorSetFavoriteProductsRequest(
        member=identity(member_id), offer_id=FAVORITE_PRODUCTS, skus=skus, comment="asked by phone"
    )


@pytest.mark.parametrize("role", [Role.CUSTOMER_SERVICES, Role.REGISTER, Role.BACK_OFFICE])
def test_an_operator_edit_without_the_operator_role_is_permission_denied(channel, role):
    request = operator_request(SHOWCASE, [])
    code, _ = failure(
        lambda: members(channel).OperatorSetFavoriteProducts(
            request, timeout=10, metadata=auth(role)
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    audit = member_pb2.ListFavoriteProductsAuditRequest(member=identity(SHOWCASE))
    code, _ = failure(
        lambda: members(channel).ListFavoriteProductsAudit(audit, timeout=10, metadata=auth(role))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_an_operator_edit_is_applied_at_once_and_audited(channel, demo_server):
    member = find_member(demo_server, plain_member, skip=3)
    skus = favorites_list(demo_server)
    stub = members(channel)
    first = stub.OperatorSetFavoriteProducts(
        operator_request(member.id, [skus[0], skus[1], skus[2]]),
        timeout=10,
        metadata=auth(Role.OPERATOR),
    )
    second = stub.OperatorSetFavoriteProducts(
        operator_request(member.id, [skus[4]]), timeout=10, metadata=auth(Role.OPERATOR)
    )
    assert [s.sku for s in second.favorite_products.slots] == [skus[4], "", ""]
    assert second.audit.actor == "dev-operator"
    assert list(second.audit.skus_before) == [skus[0], skus[1], skus[2]]
    assert [s.sku for s in favorite_view(lookup(channel, member.id)).slots] == [
        skus[4],
        "",
        "",
    ]
    trail = stub.ListFavoriteProductsAudit(
        member_pb2.ListFavoriteProductsAuditRequest(member=identity(member.id), limit=10),
        timeout=10,
        metadata=auth(Role.OPERATOR),
    )
    assert [e.id for e in trail.entries] == [second.audit.id, first.audit.id]
    assert trail.entries[1].comment == "asked by phone"
    assert list(trail.entries[1].skus_before) == ["", "", ""]


# --- favorite categories -------------------------------------------------------------------------


def select_categories(channel, member: Member, groups: list[str]):
    request = member_pb2.SelectFavoriteCategoriesRequest(
        member=identity(member.id),
        offer_id=member.favorite_categories[0].offer_id,
        group_ids=groups,
    )
    return members(channel).SelectFavoriteCategories(
        request, timeout=10, metadata=auth(Role.CUSTOMER_SERVICES)
    )


def test_a_member_chooses_categories_and_a_swap_the_same_month_is_refused(channel, demo_server):
    member = find_member(
        demo_server,
        lambda m: (
            bool(m.favorite_categories)
            and m.favorite_categories[0].acceptance_required
            and m.favorite_categories[0].max_count == 1
            and not m.favorite_categories[0].chosen_group_ids
            and m.id != SHOWCASE
        ),
    )
    offered = list(member.favorite_categories[0].group_ids)
    first = select_categories(channel, member, [offered[0]]).favorite_categories
    assert [o.group_id for o in first.offered if o.chosen] == [offered[0]]
    select_categories(channel, member, [offered[1]])  # the month's replacement
    code, info = failure(lambda: select_categories(channel, member, [offered[2]]))
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHANGE_NOT_ALLOWED")
    (view,) = lookup(channel, member.id).favorite_categories
    assert [o.group_id for o in view.offered if o.chosen] == [offered[1]]


def test_choosing_categories_with_the_acceptance_flag_off_is_a_failed_precondition(
    channel, demo_server
):
    member = find_member(
        demo_server,
        lambda m: bool(m.favorite_categories) and not m.favorite_categories[0].acceptance_required,
    )
    offered = list(member.favorite_categories[0].group_ids)
    code, info = failure(lambda: select_categories(channel, member, [offered[0]]))
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCEPTANCE_OFF")
    (view,) = lookup(channel, member.id).favorite_categories
    assert all(o.chosen for o in view.offered)  # every offered category applies


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp
