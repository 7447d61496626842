"""Coupon codes (spec §22, docs/coupons.md): which scanned codes unlock which offers, and
what became of each code once the receipt is calculated.

A campaign ties an offer (of any level) to codes: one SHARED code with use limits, or UNIQUE
single-use codes. While a campaign names an offer, that offer is *gated*: it applies only to a
receipt that carries a valid code of it (the receipt's `coupon_offers`, filled before the
calculation; the filter is in engine.eligibility). Everything here is pure: the caller reads
unique codes from the store and counts uses at confirm.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from service.engine.model import ReceiptResult

CODE_LENGTH = 32  # characters of a code at most
MAX_CODES = 10  # codes on one receipt at most
_CODE = re.compile(r"[A-Z0-9-]+")

COUPON_REQUIRED = "coupon code required"  # explain-mode reason of a gated offer


class CampaignKind(enum.Enum):
    SHARED = "shared"
    UNIQUE = "unique"


class CouponStatus(enum.Enum):
    APPLIED = "applied"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED_UP = "used up"
    NOT_FOR_MEMBER = "not for member"
    NOTHING_TO_APPLY = "nothing to apply"


@dataclass(frozen=True, slots=True)
class CouponCampaign:
    id: str
    offer_id: str
    kind: CampaignKind
    shared_code: str = ""  # SHARED only, normalised (upper case)
    per_member_limit: int = 0  # SHARED only; 0: none
    total_limit: int = 0  # SHARED only; 0: none
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    def valid_at(self, moment: datetime) -> bool:
        """Half-open [valid_from, valid_to); open ends never close."""
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_to is None or moment < self.valid_to
        )


@dataclass(frozen=True, slots=True)
class StoredCode:
    """A unique code as the store holds it."""

    code: str
    campaign_id: str
    member_id: str  # "" when anyone may use it
    used: bool


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """One scanned code judged before the calculation: its campaign (None: unknown) and why
    it cannot apply (None: it unlocks its offer)."""

    code: str
    campaign: CouponCampaign | None
    refusal: CouponStatus | None


@dataclass(frozen=True, slots=True)
class CouponOutcome:
    code: str
    status: CouponStatus
    campaign_id: str = ""
    offer_id: str = ""
    kind: CampaignKind | None = None


@dataclass(frozen=True, slots=True)
class Redemption:
    """A code a confirm redeems: unique codes once ever, shared ones within their limits."""

    code: str
    campaign_id: str
    kind: CampaignKind


class CouponIndex:
    """The campaigns of a snapshot: by id, shared codes by code, and the gated offer ids."""

    __slots__ = ("campaigns", "shared", "gated")

    def __init__(self, campaigns: Iterable[CouponCampaign] = ()) -> None:
        self.campaigns: dict[str, CouponCampaign] = {c.id: c for c in campaigns}
        self.shared = {
            c.shared_code: c for c in self.campaigns.values() if c.kind is CampaignKind.SHARED
        }
        self.gated = frozenset(c.offer_id for c in self.campaigns.values())


NO_COUPONS = CouponIndex()


def normalise_code(code: str) -> str:
    return code.strip().upper()


def code_problem(code: str) -> str | None:
    """Why a code as sent (normalised) cannot be a code at all; None when it can."""
    if not code:
        return "must not be empty"
    if len(code) > CODE_LENGTH:
        return f"at most {CODE_LENGTH} characters"
    if not _CODE.fullmatch(code):
        return "letters, digits and '-' only"
    return None


def check_code(
    code: str,
    index: CouponIndex,
    stored: StoredCode | None,
    member_id: str,
    sale_time: datetime,
) -> CodeCheck:
    """Judge one normalised code: a shared code from the index, a unique one from its stored
    row (None: not stored). Limits of shared codes are counted at confirm (spec §22)."""
    campaign = index.shared.get(code)
    if campaign is None and stored is not None:
        campaign = index.campaigns.get(stored.campaign_id)
    if campaign is None:
        return CodeCheck(code, None, CouponStatus.UNKNOWN)
    if not campaign.valid_at(sale_time):
        return CodeCheck(code, campaign, CouponStatus.EXPIRED)
    if campaign.kind is CampaignKind.UNIQUE:
        assert stored is not None
        if stored.member_id and stored.member_id != member_id:
            return CodeCheck(code, campaign, CouponStatus.NOT_FOR_MEMBER)
        if stored.used:
            return CodeCheck(code, campaign, CouponStatus.USED_UP)
    elif campaign.per_member_limit and not member_id:
        return CodeCheck(code, campaign, CouponStatus.NOT_FOR_MEMBER)
    return CodeCheck(code, campaign, None)


def unlocked_offers(checks: Sequence[CodeCheck]) -> frozenset[str]:
    """The gated offers the receipt's valid codes unlock."""
    return frozenset(c.campaign.offer_id for c in checks if c.refusal is None and c.campaign)


def coupon_outcomes(
    checks: Sequence[CodeCheck], result: ReceiptResult
) -> tuple[CouponOutcome, ...]:
    """Each code's outcome, in the order sent: a valid code APPLIED when its offer gave a
    discount or points on some line, else NOTHING_TO_APPLY. When two valid codes unlock the
    same offer only the first is applied (one offer gives its benefit once)."""
    if not checks:
        return ()
    gave = {benefit.offer_id for line in result.lines for benefit in line.benefits}
    taken: set[str] = set()
    outcomes = []
    for check in checks:
        campaign = check.campaign
        if campaign is None:
            outcomes.append(CouponOutcome(check.code, check.refusal or CouponStatus.UNKNOWN))
            continue
        status = check.refusal
        if status is None:
            offer = campaign.offer_id
            status = (
                CouponStatus.APPLIED
                if offer in gave and offer not in taken
                else CouponStatus.NOTHING_TO_APPLY
            )
            taken.add(offer)
        outcomes.append(
            CouponOutcome(check.code, status, campaign.id, campaign.offer_id, campaign.kind)
        )
    return tuple(outcomes)


def redemptions(outcomes: Sequence[CouponOutcome]) -> tuple[Redemption, ...]:
    """What confirming the receipt redeems: the codes that applied."""
    return tuple(
        Redemption(o.code, o.campaign_id, o.kind)
        for o in outcomes
        if o.status is CouponStatus.APPLIED and o.kind is not None
    )
