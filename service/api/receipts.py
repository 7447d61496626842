"""ReceiptService: translation only. Calculate answers from memory with a signed confirmation
token (service.api.tokens) carrying the result shown and the usage it would count, so Confirm
on any replica commits exactly that; the use cases are service.app.receipts. See
docs/receipts.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc

from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service import limits
from service.api import convert, coupon_convert
from service.api.auth import current_principal
from service.api.lookup import MemberLookup, MissLimiter, check_identity
from service.api.tokens import signer_from_settings
from service.app.receipts import ReceiptLifecycle, RefundCodec, SpendAsk
from service.app.sessions import Sessions
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.config import Settings
from service.engine.coupons import CouponStatus, redemptions
from service.engine.model import Member, Receipt
from service.engine.points_balance import Lifetime
from service.engine.points_spend import PointsPolicy
from service.errors import InvalidArgument
from service.limits import check_length

REFUND_CODEC = RefundCodec(counted_usage=convert.counted_usage, encode=convert.refund_record)


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
        sessions: Sessions,
        store_available: Callable[[], bool] = lambda: True,
        members: MemberLookup | None = None,
    ) -> None:
        self._settings = settings
        self._members = members or MemberLookup.from_settings(cache, settings)
        self._clock = clock
        self._signer = signer_from_settings(settings, clock)
        self._store_available = store_available
        self._receipts = ReceiptLifecycle(
            cache,
            sessions,  # the store the cache reads is the one receipts go to
            time_zone=ZoneInfo(settings.time_zone),
            max_sale_time_age=timedelta(seconds=settings.max_sale_time_age_s),
            max_receipt_lines=settings.max_receipt_lines,
            points_policy=points_policy(settings),
            points_lifetime=points_lifetime(settings),
            clock=clock,
            release_coupons_on_refund=settings.coupon_release_on_refund,
        )
        self._coupon_misses = MissLimiter(
            settings.coupon_miss_rate_per_s,
            settings.coupon_miss_burst,
            what="unknown coupon codes",
            reason="COUPON_LOOKUPS_LIMITED",
        )

    def Calculate(  # noqa: N802 - gRPC method name
        self, request: receipt_pb2.CalculateRequest, context: grpc.ServicerContext
    ) -> receipt_pb2.CalculateResponse:
        return self.calculate(request)

    def calculate(
        self, request: receipt_pb2.CalculateRequest, *, sign: bool = True
    ) -> receipt_pb2.CalculateResponse:
        """Calculate's one path, for the unary call and the till sessions alike: the receipt
        checked, its member resolved, its result; and the confirmation token unless `sign`
        is off (a till session signs only the receipt it finishes)."""
        now = self._clock()
        receipt_pb = request.receipt
        member, receipt, spend, codes = self._checked(request, now)
        caller = current_principal().credential_id if codes else ""
        if codes:  # a credential out of misses may not try codes at all, known ones too
            self._coupon_misses.admit(caller)
        try:
            result, coupons = self._receipts.calculate(
                receipt, now, explain=request.explain, spend=spend, codes=codes
            )
        except InvalidArgument as error:  # the engine names fields of the receipt itself
            raise InvalidArgument(f"receipt.{error.field}", error.description) from None
        unknown = sum(c.status is CouponStatus.UNKNOWN for c in coupons)
        if unknown:
            self._coupon_misses.miss(caller, unknown)
        response = receipt_pb2.CalculateResponse()
        convert.fill_result(
            response.result,
            result,
            member_id=member.id if member is not None else "",
            currency=self._settings.currency,
            sale_time=receipt.sale_time,
            degraded=not self._store_available(),
        )
        response.result.point_value = self._settings.point_value  # what the till prints
        coupon_convert.fill_coupons(response.result, coupons)
        if sign:
            response.confirmation_token = self._signer.sign(
                receipt_pb, response.result, result.usage, redemptions(coupons)
            )
        return response

    def check_receipt_header(self, request: receipt_pb2.CalculateRequest) -> None:
        """What Calculate checks before the lines: ids, the store, the member, channel and
        sale time, the points and chips to spend, coupon codes (a till session opened
        before its first scan)."""
        self._checked(request, self._clock())

    def _checked(
        self, request: receipt_pb2.CalculateRequest, now: datetime
    ) -> tuple[Member | None, Receipt, SpendAsk | None, tuple[str, ...]]:
        """The request checked up to the engine: its member, the receipt's model, the points
        to spend and the coupon codes."""
        check_chips_range(request)
        receipt_pb = request.receipt
        check_receipt_ids(receipt_pb)
        current_principal().check_store(receipt_pb.store_id, receipt_pb.receipt_id)
        member = self._members.resolve(receipt_pb.member, "receipt.member")
        receipt = convert.receipt_to_model(
            receipt_pb, member, now, chips_to_spend=request.chips_to_spend
        )
        spend = points_to_spend(request, member)
        return member, receipt, spend, coupon_convert.receipt_codes(receipt_pb)

    def Confirm(  # noqa: N802 - gRPC method name
        self, request: receipt_pb2.ConfirmRequest, context: grpc.ServicerContext
    ) -> receipt_pb2.ConfirmResponse:
        receipt_pb = request.receipt
        if not receipt_pb.receipt_id:
            raise InvalidArgument("receipt.receipt_id", "required to confirm a receipt")
        check_receipt_ids(receipt_pb)
        check_receipt_lines(receipt_pb)
        coupon_convert.receipt_codes(receipt_pb)  # in form; the token says what to redeem
        convert.optional_datetime(receipt_pb, "sale_time", "receipt.sale_time")  # in range
        current_principal().check_store(receipt_pb.store_id, receipt_pb.receipt_id)
        payload, stale = self._signer.open(receipt_pb, request.confirmation_token)
        confirmed = self._receipts.confirm(
            convert.confirmed_receipt(receipt_pb, payload.result),
            convert.usage_charges(payload.usage),
            convert.confirm_fingerprint(receipt_pb),
            encode=functools.partial(convert.confirmation_record, payload.result),
            token_refusal=stale,
            redeemed=coupon_convert.redeemed_of(payload),
            resent=request.resent,
        )
        return convert.confirm_response(confirmed.record, replayed=confirmed.replayed)

    def Refund(  # noqa: N802 - gRPC method name
        self, request: receipt_pb2.RefundRequest, context: grpc.ServicerContext
    ) -> receipt_pb2.RefundResponse:
        validate_refund(request)
        current_principal().check_store(request.store_id, request.receipt_id)
        refunded = self._receipts.refund(convert.refund_request(request), codec=REFUND_CODEC)
        return convert.refund_response(refunded.record, replayed=refunded.replayed)


def points_policy(settings: Settings) -> PointsPolicy:
    return PointsPolicy(
        point_value=settings.point_value,
        max_share_bp=settings.points_max_share_bp,
        min_money_per_line=settings.points_min_money_per_line,
        accrue_on_money_only=settings.points_accrue_on_money_only,
    )


def points_lifetime(settings: Settings) -> Lifetime:
    expiry = settings.points_expiry_days
    return Lifetime(
        activation=timedelta(seconds=settings.points_activation_delay_s),
        expiry=timedelta(days=expiry) if expiry else None,
    )


def check_chips_range(request: receipt_pb2.CalculateRequest) -> None:
    if not 0 <= request.chips_to_spend <= limits.CHIPS:
        raise InvalidArgument("chips_to_spend", "from 0 to 10^12 chips")


def points_to_spend(
    request: receipt_pb2.CalculateRequest, member: Member | None
) -> SpendAsk | None:
    """What the calculation is asked to spend (spec §21); None: no points."""
    wanted = request.points_to_spend
    if not 0 <= wanted <= limits.POINTS:
        raise InvalidArgument("points_to_spend", f"must be from 0 to {limits.POINTS}")
    if request.spend_max_points and wanted:
        raise InvalidArgument("points_to_spend", "must be 0 with spend_max_points")
    if not wanted and not request.spend_max_points:
        return None
    if member is None:
        field = "spend_max_points" if request.spend_max_points else "points_to_spend"
        raise InvalidArgument(field, "spending points needs a member (receipt.member)")
    return SpendAsk(None if request.spend_max_points else wanted)


def validate_refund(request: receipt_pb2.RefundRequest) -> None:
    """What can be checked without the receipt; the use case checks the rest (known lines,
    whole pieces, at most what is left: engine.lifecycle.lines_to_refund)."""
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
