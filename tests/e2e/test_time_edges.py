"""Instants at the ends of what a google.protobuf.Timestamp holds (0001-01-01 to 9999-12-31):
an offer may run from the first to the last of them, and a lookup at any instant in range is
answered or refused by name - never INTERNAL, even where a store's local time would fall
outside the calendar."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from loyalty.v1 import (
    backoffice_pb2,
    backoffice_pb2_grpc,
    common_pb2,
    member_pb2,
    member_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
)
from service.api.auth import Role
from service.api.server import LoyaltyServer
from tests.e2e.conftest import auth
from tests.e2e.test_bad_input import bad_request_fields, receipt

FIRST = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST = 253_402_300_799  # 9999-12-31T23:59:59Z
DAY = 86_400
CARD = "2000000000001"
EDGE_STORES = {"S-WEST": "Etc/GMT+12", "S-EAST": "Pacific/Kiritimati"}  # UTC-12, UTC+14


@pytest.fixture(scope="module")
def forever_offer(channel: grpc.Channel) -> Iterator[backoffice_pb2.Offer]:
    """Stores at both ends of the zones, and an offer of every day from the first instant to
    the last (a schedule: its open hours are read on each store's clock)."""
    back_office = backoffice_pb2_grpc.BackOfficeServiceStub(channel)
    stores = [backoffice_pb2.Store(id=i, name=i, time_zone=z) for i, z in EDGE_STORES.items()]
    back_office.UpsertStores(
        backoffice_pb2.UpsertStoresRequest(stores=stores), metadata=auth(Role.BACK_OFFICE)
    )
    offer = backoffice_pb2.Offer(
        id="O-FOREVER",
        name="Forever",
        level=common_pb2.LEVEL_MEMBERS_ONLY,
        benefit=common_pb2.Benefit(kind=common_pb2.BENEFIT_KIND_BONUS_PERCENT, value=100),
        stacking=common_pb2.STACKING_COMBINABLE,
        schedule=backoffice_pb2.Schedule(days_of_week=[1, 2, 3, 4, 5, 6, 7]),
        active=True,
    )
    offer.validity.valid_from.seconds = FIRST
    offer.validity.valid_to.seconds, offer.validity.valid_to.nanos = LAST, 999_999_000  # µs
    request = backoffice_pb2.UpsertOfferRequest(offer=offer)
    back_office.UpsertOffer(request, timeout=10, metadata=auth(Role.BACK_OFFICE))
    yield offer


def test_an_offer_from_the_first_instant_to_the_last_applies_and_reads_back(
    channel: grpc.Channel, forever_offer: backoffice_pb2.Offer
) -> None:
    receipts = receipt_pb2_grpc.ReceiptServiceStub(channel)
    for store in ("S001", *EDGE_STORES):
        result = receipts.Calculate(
            receipt_pb2.CalculateRequest(receipt=receipt(store_id=store)),
            timeout=10,
            metadata=auth(),
        ).result
        offers = {b.offer_id for line in result.lines for b in line.benefits}
        assert "O-FOREVER" in offers, store
    lookup = member_pb2_grpc.MemberServiceStub(channel).GetMemberOffers(
        member_pb2.GetMemberOffersRequest(member=common_pb2.MemberIdentity(card_number=CARD)),
        timeout=10,
        metadata=auth(Role.CUSTOMER_SERVICES),
    )
    [shown] = [o for o in lookup.general_offers if o.offer_id == "O-FOREVER"]
    assert shown.validity == forever_offer.validity


# A lookup's moment keeps a day clear of each end: 0001-01-02 to 9999-12-30, whole days.
INSIDE = [FIRST + DAY, LAST - DAY]
OUTSIDE = [FIRST, FIRST + DAY - 1, LAST - DAY + 1, LAST]


@pytest.mark.parametrize("store", ["", "S001", *EDGE_STORES])
@pytest.mark.parametrize("seconds", INSIDE + OUTSIDE)
def test_a_lookup_at_any_instant_is_answered_or_refused_by_name(
    channel: grpc.Channel, forever_offer: backoffice_pb2.Offer, store: str, seconds: int
) -> None:
    request = member_pb2.GetMemberOffersRequest(
        member=common_pb2.MemberIdentity(card_number=CARD), store_id=store
    )
    request.at.seconds, request.at.nanos = seconds, 999_999_999 if seconds == LAST else 0
    stub = member_pb2_grpc.MemberServiceStub(channel)
    if seconds in INSIDE:
        found = stub.GetMemberOffers(request, timeout=10, metadata=auth(Role.REGISTER))
        assert "O-FOREVER" in {o.offer_id for o in found.general_offers}
        return
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetMemberOffers(request, timeout=10, metadata=auth(Role.REGISTER))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert bad_request_fields(caught.value) == ["at"]


def test_the_demo_server_keeps_serving(demo_server: LoyaltyServer) -> None:
    assert demo_server.port
