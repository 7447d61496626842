"""What is left of a per-member usage limit, said inline (spec §19): Calculate's benefit of a
limited offer and the member lookup tell the member how many uses remain, confirm by confirm,
through a real server with the demo data (a module of its own: its offer applies to every
receipt of the member)."""

from __future__ import annotations

import grpc

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import (
    backoffice_pb2_grpc,
    member_pb2,
    member_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
)
from loyalty.v1 import common_pb2 as c
from service.api.auth import Role
from tests.e2e.conftest import auth

CARD = "2000000000001"
OFFER = "M-TWICE"


def calculate(channel: grpc.Channel, receipt_id: str) -> receipt_pb2.CalculateResponse:
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    receipt.receipt_id = receipt_id
    receipt.member.CopyFrom(c.MemberIdentity(card_number=CARD))
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    return stub.Calculate(
        receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
    )


def confirm(channel: grpc.Channel, receipt_id: str) -> None:
    answer = calculate(channel, receipt_id)
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    receipt.receipt_id = receipt_id
    receipt.member.CopyFrom(c.MemberIdentity(card_number=CARD))
    receipt.sale_time.CopyFrom(answer.result.sale_time)
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    stub.Confirm(
        receipt_pb2.ConfirmRequest(receipt=receipt, confirmation_token=answer.confirmation_token),
        timeout=10,
        metadata=auth(),
    )


def left_on_receipt(answer: receipt_pb2.CalculateResponse) -> set[int | None]:
    """usage_left of the limited offer's benefits on the receipt (None: not said)."""
    return {
        b.usage_left if b.HasField("usage_left") else None
        for line in answer.result.lines
        for b in line.benefits
        if b.offer_id == OFFER
    }


def left_in_lookup(channel: grpc.Channel) -> int | None:
    stub = member_pb2_grpc.MemberServiceStub(channel)
    answer = stub.GetMemberOffers(
        member_pb2.GetMemberOffersRequest(member=c.MemberIdentity(card_number=CARD)),
        timeout=10,
        metadata=auth(Role.CUSTOMER_SERVICES),
    )
    for offer in answer.general_offers:
        if offer.offer_id == OFFER:
            assert offer.usage_limit.limit == 2
            return offer.usage_left
    return None


def test_the_uses_left_go_down_confirm_by_confirm_and_the_offer_stops_at_none(channel):
    offer = bo.Offer(
        id=OFFER,
        name="Twice -1 %",
        level=c.LEVEL_MEMBERS_ONLY,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=100),
        priority=1,
        stacking=c.STACKING_COMBINABLE,
        usage_limit=c.UsageLimit(
            unit=c.USAGE_LIMIT_UNIT_RECEIPTS, limit=2, period=c.USAGE_LIMIT_PERIOD_OFFER
        ),
        state=bo.OFFER_STATE_ACTIVE,
    )
    backoffice_pb2_grpc.BackOfficeServiceStub(channel).UpsertOffer(
        bo.UpsertOfferRequest(offer=offer), timeout=10, metadata=auth(Role.BACK_OFFICE)
    )
    assert left_in_lookup(channel) == 2
    assert left_on_receipt(calculate(channel, "UL-0")) == {1}  # a preview uses nothing
    confirm(channel, "UL-1")
    assert left_in_lookup(channel) == 1
    assert left_on_receipt(calculate(channel, "UL-2")) == {0}
    confirm(channel, "UL-2")
    assert left_on_receipt(calculate(channel, "UL-3")) == set()  # used up: not applied
    assert left_in_lookup(channel) is None  # and no longer an offer that applies


def test_an_unlimited_offer_says_nothing_of_uses(channel):
    answer = calculate(channel, "UL-UNLIMITED")
    limited = {OFFER}
    for line in answer.result.lines:
        for benefit in line.benefits:
            if (
                benefit.offer_id not in limited
                and benefit.mechanic != c.MECHANIC_PERSONALIZED_OFFER
            ):
                assert not benefit.HasField("usage_left"), benefit.offer_id
