"""Members one by one through a real server (spec §18): the call centre creates a member with a
card, the till knows them at once, a blocked card is unknown at the till at once, and only the
customer-services, operator and back-office roles may do it."""

from __future__ import annotations

import grpc
import pytest

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import (
    backoffice_pb2,
    common_pb2,
    member_pb2,
    member_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
)
from service.api.auth import Role
from tests.e2e.conftest import auth


def call(channel: grpc.Channel, method: str, request, role: Role = Role.CUSTOMER_SERVICES):
    stub = member_pb2_grpc.MemberServiceStub(channel)
    return getattr(stub, method)(request, timeout=10, metadata=auth(role))


def till_member(channel: grpc.Channel, card: str, receipt_id: str) -> str:
    """The member the till recognises by this card ("" for none)."""
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    receipt.receipt_id = receipt_id
    receipt.member.CopyFrom(common_pb2.MemberIdentity(card_number=card))
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    answer = stub.Calculate(
        receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
    )
    return answer.result.member_id


def test_a_member_made_by_the_call_centre_is_known_at_the_till_until_the_card_is_blocked(channel):
    profile = backoffice_pb2.MemberProfileRow(
        member_id="M-CALL-1", card_numbers=["7700000000001"], segment_tags=["vip"]
    )
    made = call(
        channel, "UpsertMemberProfile", member_pb2.UpsertMemberProfileRequest(profile=profile)
    )
    assert made.created and made.profile.cards[0].card_number == "7700000000001"
    assert till_member(channel, "7700000000001", "MP-1") == "M-CALL-1"
    call(
        channel,
        "AddMemberCard",
        member_pb2.AddMemberCardRequest(member_id="M-CALL-1", card_number="7700000000002"),
        Role.OPERATOR,
    )
    assert till_member(channel, "7700000000002", "MP-2") == "M-CALL-1"
    call(
        channel,
        "BlockMemberCard",
        member_pb2.BlockMemberCardRequest(member_id="M-CALL-1", card_number="7700000000001"),
        Role.BACK_OFFICE,
    )
    with pytest.raises(grpc.RpcError) as raised:
        till_member(channel, "7700000000001", "MP-3")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND  # as any unknown card
    got = call(
        channel,
        "GetMemberProfile",
        member_pb2.GetMemberProfileRequest(
            member=common_pb2.MemberIdentity(card_number="7700000000001")
        ),
    )
    assert [(c.card_number, c.blocked) for c in got.profile.cards] == [
        ("7700000000001", True),
        ("7700000000002", False),
    ]


def test_a_register_may_not_change_or_read_a_profile(channel):
    for method, request in (
        ("UpsertMemberProfile", member_pb2.UpsertMemberProfileRequest()),
        ("GetMemberProfile", member_pb2.GetMemberProfileRequest()),
        ("AddMemberCard", member_pb2.AddMemberCardRequest()),
        ("BlockMemberCard", member_pb2.BlockMemberCardRequest()),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(channel, method, request, Role.REGISTER)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
