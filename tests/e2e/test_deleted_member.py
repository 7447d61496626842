"""A member deleted from the store after a register or an operator last saw them (removed by
hand, or by a data-protection request): a write for them is a clear status the caller can act
on, not INTERNAL from a foreign key, and nothing is written."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import delete

from loyalty.v1 import common_pb2, member_pb2, member_pb2_grpc, receipt_pb2, receipt_pb2_grpc
from service.api.auth import Role
from service.api.server import LoyaltyServer
from service.store import db
from service.store.models import MemberRow
from tests.e2e.conftest import auth
from tests.e2e.test_bad_input import receipt, store_fingerprint


def delete_member(server: LoyaltyServer, member_id: str) -> None:
    """Straight in the store, as an operator would: no change feed, so the server's cache
    still holds the member."""
    with db.make_session_factory(server.store)() as session:
        session.execute(delete(MemberRow).where(MemberRow.id == member_id))
        session.commit()


def reason_of(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def refused(call: object, request: object, role: Role = Role.REGISTER) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, metadata=auth(role))  # type: ignore[operator]
    return caught.value


def test_a_confirm_for_a_member_deleted_since_the_calculation_says_calculate_again(
    demo_server: LoyaltyServer, channel: grpc.Channel
) -> None:
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    sale = receipt(receipt_id="R-GONE")
    token = stub.Calculate(
        receipt_pb2.CalculateRequest(receipt=sale), timeout=10, metadata=auth()
    ).confirmation_token
    delete_member(demo_server, "M000001")
    before = store_fingerprint(demo_server)

    confirm = receipt_pb2.ConfirmRequest(receipt=sale, confirmation_token=token)
    err = refused(stub.Confirm, confirm)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert reason_of(err) == "MEMBER_NOT_FOUND"
    assert "calculate the receipt again" in (err.details() or "")
    assert store_fingerprint(demo_server) == before

    again = refused(stub.Calculate, receipt_pb2.CalculateRequest(receipt=sale))
    assert again.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(again) == "MEMBER_NOT_FOUND"


def test_favorite_writes_for_a_member_deleted_since_cached_are_not_found(
    demo_server: LoyaltyServer, channel: grpc.Channel
) -> None:
    stub = member_pb2_grpc.MemberServiceStub(channel)
    who = common_pb2.MemberIdentity(member_id="M000002")
    seen = stub.GetMemberOffers(
        member_pb2.GetMemberOffersRequest(member=who),
        timeout=10,
        metadata=auth(Role.CUSTOMER_SERVICES),
    )  # the server caches the member
    [favorites] = [f for f in seen.favorite_products if f.offer_id == "I-FAV-PRODUCTS"]
    sku = favorites.list[0].sku
    delete_member(demo_server, "M000002")
    before = store_fingerprint(demo_server)

    for call, request, role in (
        (
            stub.SelectFavoriteProducts,
            member_pb2.SelectFavoriteProductsRequest(
                member=who, offer_id="I-FAV-PRODUCTS", skus=[sku]
            ),
            Role.CUSTOMER_SERVICES,
        ),
        (
            stub.OperatorSetFavoriteProducts,
            member_pb2.OperatorSetFavoriteProductsRequest(
                member=who, offer_id="I-FAV-PRODUCTS", skus=[sku], comment="asked by phone"
            ),
            Role.OPERATOR,
        ),
        (
            stub.SelectFavoriteCategories,
            member_pb2.SelectFavoriteCategoriesRequest(
                member=who, offer_id="I-FAV-CATEGORIES", group_ids=["G-SWEETS"]
            ),
            Role.CUSTOMER_SERVICES,
        ),
    ):
        err = refused(call, request, role)
        assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
        assert store_fingerprint(demo_server) == before
    lookup = refused(stub.GetMemberOffers, member_pb2.GetMemberOffersRequest(member=who))
    assert lookup.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(lookup) == "MEMBER_NOT_FOUND"
