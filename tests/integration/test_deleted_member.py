"""A member deleted from the store (by hand: no change feed) while a replica still caches
them, on SQLite and PostgreSQL: a confirm or a favorites write is a clear status, and the
foreign keys that refused it leave nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from loyalty.v1 import common_pb2, member_pb2
from service.api.auth import Principal, Role, set_current_principal
from service.api.members import MemberServicer
from service.errors import FailedPrecondition, NotFound
from service.store.models import MemberRow
from tests.integration.receipt_support import (
    SETTINGS,
    SHOWCASE_MEMBER,
    Register,
    row_counts,
    showcase_receipt,
)

SERVICES = Principal("test-services", "test services", Role.CUSTOMER_SERVICES)


def delete_member(register: Register, member_id: str) -> None:
    with register.sessions() as session:
        session.execute(delete(MemberRow).where(MemberRow.id == member_id))
        session.commit()


def test_a_confirm_for_a_member_deleted_since_the_calculation_writes_nothing(
    register: Register,
) -> None:
    receipt = showcase_receipt("R-GONE")
    token = register.calculate(receipt).confirmation_token
    delete_member(register, SHOWCASE_MEMBER)
    before = row_counts(register.sessions)
    with pytest.raises(FailedPrecondition) as refused:
        register.confirm(receipt, token)
    assert refused.value.reason == "MEMBER_NOT_FOUND"
    assert "calculate the receipt again" in refused.value.message
    assert row_counts(register.sessions) == before
    with pytest.raises(NotFound):  # the replica forgot them: a new calculation says so
        register.calculate(receipt)


def test_a_favorites_write_for_a_member_deleted_since_cached_is_not_found(
    register: Register,
) -> None:
    members = MemberServicer(SETTINGS, register.cache, register.sessions)  # type: ignore[arg-type]
    who = common_pb2.MemberIdentity(member_id=SHOWCASE_MEMBER)
    set_current_principal(SERVICES)
    seen = members.GetMemberOffers(member_pb2.GetMemberOffersRequest(member=who), None)  # type: ignore[arg-type]
    [favorites] = [f for f in seen.favorite_products if f.offer_id == "I-FAV-PRODUCTS"]
    delete_member(register, SHOWCASE_MEMBER)
    before = row_counts(register.sessions)
    request = member_pb2.SelectFavoriteProductsRequest(
        member=who, offer_id="I-FAV-PRODUCTS", skus=[favorites.list[0].sku]
    )
    with pytest.raises(NotFound) as refused:
        members.SelectFavoriteProducts(request, None)  # type: ignore[arg-type]
    assert refused.value.reason == "MEMBER_NOT_FOUND"
    assert row_counts(register.sessions) == before
    with pytest.raises(NotFound):
        members.GetMemberOffers(member_pb2.GetMemberOffersRequest(member=who), None)  # type: ignore[arg-type]
