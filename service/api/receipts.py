"""ReceiptService: Calculate answers from memory; Confirm and Refund commit through the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from loyalty.v1 import common_pb2, receipt_pb2, receipt_pb2_grpc
from service.api import convert
from service.api.auth import current_principal
from service.cache.state import BenefitCache
from service.config import Settings
from service.engine.calculate import calculate
from service.engine.model import Member
from service.engine.validation import validate_receipt
from service.errors import InvalidArgument, NotFound

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def resolve_member(
    cache: BenefitCache, identity: common_pb2.MemberIdentity, field: str
) -> Member | None:
    """The member a card or member id names; None for an anonymous buyer (no identity)."""
    which = identity.WhichOneof("id")
    if which is None:
        return None
    if which == "card_number":
        if not identity.card_number:
            raise InvalidArgument(f"{field}.card_number", "must not be empty")
        member_id = cache.member_id_for_card(identity.card_number)
        if member_id is None:
            raise NotFound("no member has this card", reason="CARD_NOT_FOUND")
    else:
        member_id = identity.member_id
        if not member_id:
            raise InvalidArgument(f"{field}.member_id", "must not be empty")
    member = cache.member(member_id)
    if member is None:
        raise NotFound("member not found", reason="MEMBER_NOT_FOUND")
    return member


class ReceiptServicer(receipt_pb2_grpc.ReceiptServiceServicer):
    def __init__(self, settings: Settings, cache: BenefitCache, clock: Clock = utc_now) -> None:
        self._settings = settings
        self._cache = cache
        self._clock = clock

    def Calculate(  # noqa: N802 - gRPC method name
        self, request: receipt_pb2.CalculateRequest, context: grpc.ServicerContext
    ) -> receipt_pb2.CalculateResponse:
        now = self._clock()
        receipt_pb = request.receipt
        current_principal().check_store(receipt_pb.store_id)
        member = resolve_member(self._cache, receipt_pb.member, "receipt.member")
        receipt = convert.receipt_to_model(receipt_pb, member, now)
        snapshot = self._cache.snapshot
        validate_receipt(snapshot, receipt, now, max_lines=self._settings.max_receipt_lines)
        result = calculate(snapshot, receipt, explain=request.explain)
        response = receipt_pb2.CalculateResponse()
        convert.fill_result(
            response.result,
            result,
            member_id=member.id if member is not None else "",
            currency=self._settings.currency,
            sale_time=receipt.sale_time,
        )
        return response
