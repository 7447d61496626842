"""Coupons between protobuf and the engine (loyalty/v1/coupons.proto, engine.coupons): the
codes a receipt carries (INVALID_ARGUMENT naming the code at fault), each code's outcome, the
redeemed codes a confirmation token carries, and campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loyalty.v1 import coupons_pb2, receipt_pb2
from service import limits
from service.api.convert import EnumMap, optional_datetime, set_timestamp
from service.engine.coupons import (
    MAX_CODES,
    CampaignKind,
    CouponCampaign,
    CouponOutcome,
    CouponStatus,
    Redemption,
    code_problem,
    normalise_code,
)
from service.errors import InvalidArgument
from service.limits import check_length, quote
from service.store.coupon_reads import StoredCampaign

KIND = EnumMap(coupons_pb2.CouponCampaignKind, CampaignKind, "COUPON_CAMPAIGN_KIND")
STATUS = EnumMap(coupons_pb2.CouponStatus, CouponStatus, "COUPON_STATUS")
FIELD = "receipt.coupon_codes"


def receipt_codes(receipt: receipt_pb2.Receipt) -> tuple[str, ...]:
    """The receipt's codes, normalised (upper case); refused: too many, a code too long or
    of other characters, a code twice."""
    sent = receipt.coupon_codes
    if not sent:
        return ()
    if len(sent) > MAX_CODES:
        raise InvalidArgument(FIELD, f"at most {MAX_CODES} codes on a receipt")
    codes: list[str] = []
    for index, raw in enumerate(sent):
        code = normalise_code(raw)
        problem = code_problem(code)
        if problem is not None:
            raise InvalidArgument(f"{FIELD}[{index}]", f"{problem}: {quote(raw)}")
        if code in codes:
            raise InvalidArgument(f"{FIELD}[{index}]", f"code {quote(raw)} sent twice")
        codes.append(code)
    return tuple(codes)


def fill_coupons(out: receipt_pb2.ReceiptResult, outcomes: Sequence[CouponOutcome]) -> None:
    for outcome in outcomes:
        entry = out.coupons.add()
        entry.code = outcome.code
        entry.status = STATUS.to_proto[outcome.status]
        entry.campaign_id = outcome.campaign_id
        entry.offer_id = outcome.offer_id


def add_redeemed(payload: Any, redeemed: Sequence[Redemption]) -> None:
    """Into a ConfirmationTokenPayload: the codes a confirm will redeem."""
    for item in redeemed:
        entry = payload.coupons.add()
        entry.code = item.code
        entry.campaign_id = item.campaign_id
        entry.kind = KIND.to_proto[item.kind]


def redeemed_of(payload: Any) -> tuple[Redemption, ...]:
    """Out of a verified token's payload (signed by us: the values are ours)."""
    return tuple(Redemption(c.code, c.campaign_id, KIND.to_model[c.kind]) for c in payload.coupons)


def campaign_to_model(pb: coupons_pb2.CouponCampaign, field: str = "campaign") -> CouponCampaign:
    if not pb.id:
        raise InvalidArgument(f"{field}.id", "required")
    check_length(pb.id, limits.ID, f"{field}.id")
    if not pb.offer_id:
        raise InvalidArgument(f"{field}.offer_id", "required")
    check_length(pb.offer_id, limits.ID, f"{field}.offer_id")
    kind = KIND.parse(pb.kind, f"{field}.kind")
    code = normalise_code(pb.shared_code)
    for name in ("per_member_limit", "total_limit"):
        if getattr(pb, name) < 0:
            raise InvalidArgument(f"{field}.{name}", "must not be negative")
    if kind is CampaignKind.SHARED:
        problem = code_problem(code)
        if problem is not None:
            raise InvalidArgument(f"{field}.shared_code", f"{problem}: {quote(pb.shared_code)}")
    else:
        for name in ("shared_code", "per_member_limit", "total_limit"):
            if getattr(pb, name):
                raise InvalidArgument(f"{field}.{name}", "only for a SHARED campaign")
    valid_from = optional_datetime(pb, "valid_from", f"{field}.valid_from")
    valid_to = optional_datetime(pb, "valid_to", f"{field}.valid_to")
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise InvalidArgument(f"{field}.valid_to", "must be after valid_from")
    return CouponCampaign(
        id=pb.id,
        offer_id=pb.offer_id,
        kind=kind,
        shared_code=code if kind is CampaignKind.SHARED else "",
        per_member_limit=pb.per_member_limit,
        total_limit=pb.total_limit,
        valid_from=valid_from,
        valid_to=valid_to,
    )


def fill_campaign_view(out: coupons_pb2.CouponCampaignView, stored: StoredCampaign) -> None:
    campaign = stored.campaign
    out.campaign.id = campaign.id
    out.campaign.offer_id = campaign.offer_id
    out.campaign.kind = KIND.to_proto[campaign.kind]
    out.campaign.shared_code = campaign.shared_code
    out.campaign.per_member_limit = campaign.per_member_limit
    out.campaign.total_limit = campaign.total_limit
    if campaign.valid_from is not None:
        set_timestamp(out.campaign.valid_from, campaign.valid_from)
    if campaign.valid_to is not None:
        set_timestamp(out.campaign.valid_to, campaign.valid_to)
    out.codes_issued = stored.codes_issued
    out.codes_redeemed = stored.codes_redeemed
