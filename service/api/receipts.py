"""ReceiptService: Calculate answers from memory; Confirm and Refund commit through the store.

Calculate returns a signed confirmation token (service.api.tokens) carrying the result shown
and the usage it would count, so Confirm on any replica commits exactly that, with nothing
kept in one process's memory. Confirm and Refund run one transaction each in the store
(service.store.receipt_repo), then drop the member from this replica's cache so it reads its
own write at once. See docs/receipts.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy.orm import Session

from loyalty.v1 import receipt_pb2, receipt_pb2_grpc, token_pb2
from service import limits
from service.api import convert
from service.api.auth import current_principal
from service.api.lookup import MemberLookup, check_identity
from service.api.tokens import signer_from_settings
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.config import Settings
from service.engine.calculate import calculate
from service.engine.model import Member, Unit, UsageLimit
from service.engine.validation import validate_receipt
from service.errors import FailedPrecondition, InvalidArgument
from service.limits import check_length
from service.store.receipt_repo import (
    MEMBER_NOT_FOUND,
    Confirmation,
    UsageClaim,
    confirm_fingerprint,
    confirm_receipt,
    refund_receipt,
)


def check_receipt_ids(receipt: receipt_pb2.Receipt) -> None:
    """The receipt's ids and its buyer, before a store or member is looked up by them; the
    engine checks the lines (validation.validate_receipt)."""
    check_length(receipt.receipt_id, limits.ID, "receipt.receipt_id")
    check_length(receipt.store_id, limits.ID, "receipt.store_id")
    check_identity(receipt.member, "receipt.member")


def check_receipt_lines(receipt: receipt_pb2.Receipt) -> None:
    for index, line in enumerate(receipt.lines):
        check_length(line.line_id, limits.ID, f"receipt.lines[{index}].line_id")
        check_length(line.sku, limits.ID, f"receipt.lines[{index}].sku")


class ReceiptServicer(receipt_pb2_grpc.ReceiptServiceServicer):
    def __init__(
        self,
        settings: Settings,
        cache: BenefitCache,
        clock: Clock = utc_now,
        *,
        sessions: Callable[[], Session],
        store_available: Callable[[], bool] = lambda: True,
        members: MemberLookup | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._members = members or MemberLookup.from_settings(cache, settings)
        self._clock = clock
        self._signer = signer_from_settings(settings, clock)
        self._time_zone = ZoneInfo(settings.time_zone)
        self._sessions = sessions  # the store the cache reads is the one receipts go to
        self._store_available = store_available
        self._max_sale_time_age = timedelta(seconds=settings.max_sale_time_age_s)

    def Calculate(  # noqa: N802 - gRPC method name
        self, request: receipt_pb2.CalculateRequest, context: grpc.ServicerContext
    ) -> receipt_pb2.CalculateResponse:
        now = self._clock()
        receipt_pb = request.receipt
        check_receipt_ids(receipt_pb)
        current_principal().check_store(receipt_pb.store_id)
        member = self._members.resolve(receipt_pb.member, "receipt.member")
        receipt = convert.receipt_to_model(receipt_pb, member, now)
        snapshot = self._cache.snapshot
        try:
            validate_receipt(
                snapshot,
                receipt,
                now,
                max_lines=self._settings.max_receipt_lines,
                max_sale_time_age=self._max_sale_time_age,
            )
        except InvalidArgument as error:  # the engine names fields of the receipt itself
            raise InvalidArgument(f"receipt.{error.field}", error.description) from None
        result = calculate(snapshot, receipt, explain=request.explain)
        response = receipt_pb2.CalculateResponse()
        convert.fill_result(
            response.result,
            result,
            member_id=member.id if member is not None else "",
            currency=self._settings.currency,
            sale_time=receipt.sale_time,
            degraded=not self._store_available(),
        )
        response.confirmation_token = self._signer.sign(receipt_pb, response.result, result.usage)
        return response

    def Confirm(  # noqa: N802 - gRPC method name
        self, request: receipt_pb2.ConfirmRequest, context: grpc.ServicerContext
    ) -> receipt_pb2.ConfirmResponse:
        receipt_pb = request.receipt
        if not receipt_pb.receipt_id:
            raise InvalidArgument("receipt.receipt_id", "required to confirm a receipt")
        check_receipt_ids(receipt_pb)
        check_receipt_lines(receipt_pb)
        convert.optional_datetime(receipt_pb, "sale_time", "receipt.sale_time")  # in range
        current_principal().check_store(receipt_pb.store_id)
        payload, stale = self._signer.open(receipt_pb, request.confirmation_token)
        result = payload.result
        confirmation = Confirmation(
            receipt=receipt_pb,
            result=result,
            usage=self._usage_claims(result.member_id, payload.usage),
            fingerprint=confirm_fingerprint(receipt_pb),
        )
        now = self._clock()

        def admit_new() -> None:
            """What only a replay may skip: the token's age and the window for late sales."""
            if stale is not None:
                raise stale
            if result.sale_time.ToDatetime(UTC) < now - self._max_sale_time_age:
                raise InvalidArgument(
                    "receipt.sale_time", "older than the window for late receipts: not confirmed"
                )

        try:
            response = confirm_receipt(
                self._sessions,
                confirmation,
                time_zone=self._time_zone,
                now=now,
                admit_new=admit_new,
            )
        except FailedPrecondition as refused:
            if refused.reason == MEMBER_NOT_FOUND:  # deleted: the recalculation must see it
                # forgotten, not dropped: their cards stay linked, so a lookup by card
                # reads the member again and says MEMBER_NOT_FOUND, not CARD_NOT_FOUND
                self._cache.members_changed([result.member_id])
            raise
        if not response.replayed and result.member_id:
            self._cache.members_changed([result.member_id])
        return response

    def Refund(  # noqa: N802 - gRPC method name
        self, request: receipt_pb2.RefundRequest, context: grpc.ServicerContext
    ) -> receipt_pb2.RefundResponse:
        validate_refund(request)
        current_principal().check_store(request.store_id)
        snapshot = self._cache.snapshot

        def is_piece(sku: str) -> bool:
            product = snapshot.product(sku)
            return product is not None and product.unit is Unit.PIECE

        refunded = refund_receipt(
            self._sessions,
            request,
            time_zone=self._time_zone,
            is_piece=is_piece,
            now=self._clock(),
        )
        if refunded.member_id:
            self._cache.members_changed([refunded.member_id])
        return refunded.response

    def _usage_claims(
        self, member_id: str, charges: Sequence[token_pb2.UsageCharge]
    ) -> tuple[UsageClaim, ...]:
        """The token's usage charges with each offer's current limit: the member's
        personalized offers first, then the offers of the snapshot. If an offer is missing
        from the cached member (imported on another replica since), the member is read
        again once. A charge whose offer has no limit any more counts nothing."""
        if not charges or not member_id:
            return ()
        member = self._cache.member(member_id)
        limits = [self._limit_of(charge.offer_id, member) for charge in charges]
        if None in limits and member is not None:
            self._cache.members_changed([member_id])
            member = self._cache.member(member_id)
            limits = [self._limit_of(charge.offer_id, member) for charge in charges]
        return tuple(
            UsageClaim(c.offer_id, c.period_key, c.used, found[0].limit, found[0].unit, found[1])
            for c, found in zip(charges, limits, strict=True)
            if found is not None
        )

    def _limit_of(self, offer_id: str, member: Member | None) -> tuple[UsageLimit, str] | None:
        if member is not None:
            for personal in member.personal_offers:
                if personal.offer_id == offer_id:
                    limit = personal.usage_limit
                    return None if limit is None else (limit, personal.name)
        snapshot = self._cache.snapshot
        offer = snapshot.offer(offer_id)
        if offer is None:
            favorite = snapshot.favorite_products_offer(offer_id)
            offer = None if favorite is None else favorite.offer
        if offer is None or offer.usage_limit is None:
            return None
        return offer.usage_limit, offer.name


def validate_refund(request: receipt_pb2.RefundRequest) -> None:
    """What can be checked without the receipt; the store checks the rest (known lines,
    whole pieces, at most what is left)."""
    if not request.refund_id:
        raise InvalidArgument("refund_id", "required: the idempotency key of this refund")
    if not request.receipt_id:
        raise InvalidArgument("receipt_id", "required")
    for field in ("refund_id", "receipt_id", "store_id"):
        check_length(getattr(request, field), limits.ID, field)
    if request.full:
        if request.lines:
            raise InvalidArgument("lines", "must be empty for a full refund")
        return
    if not request.lines:
        raise InvalidArgument("lines", "name the lines to refund, or set full")
    seen: set[str] = set()
    for index, line in enumerate(request.lines):
        if not line.line_id:
            raise InvalidArgument(f"lines[{index}].line_id", "must not be empty")
        check_length(line.line_id, limits.ID, f"lines[{index}].line_id")
        if line.line_id in seen:
            raise InvalidArgument(
                f"lines[{index}].line_id", f"duplicate line {limits.quote(line.line_id)}"
            )
        seen.add(line.line_id)
        if line.quantity <= 0:
            raise InvalidArgument(f"lines[{index}].quantity", "must be positive")
