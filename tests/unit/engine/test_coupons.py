"""spec §22 by worked examples: coupon-gated offers, judging a code, each code's outcome."""

from __future__ import annotations

import pytest

from service.engine.calculate import calculate
from service.engine.coupons import (
    COUPON_REQUIRED,
    CampaignKind,
    CodeCheck,
    CouponCampaign,
    CouponStatus,
    StoredCode,
    check_code,
    code_problem,
    coupon_outcomes,
    normalise_code,
    redemptions,
    unlocked_offers,
)
from service.engine.model import BenefitKind
from service.engine.snapshot import build_snapshot
from tests.unit.engine.builders import (
    CATEGORIES,
    GROUPS,
    MONDAY_NOON,
    PRODUCTS,
    PROGRAM_ZONE,
    applied,
    exclusive,
    line,
    offer,
    receipt,
    utc,
)

SHARED = CouponCampaign("SUMMER", "C-10", CampaignKind.SHARED, shared_code="SUMMER10")
UNIQUE = CouponCampaign("U1", "C-20", CampaignKind.UNIQUE, valid_to=utc(2026, 12, 1))
OFFERS = (
    exclusive("C-10", BenefitKind.PERCENT, 1000, scope="dairy"),  # 10 % with SUMMER10
    exclusive("C-20", BenefitKind.PERCENT, 2000, scope="dairy"),  # 20 % with a unique code
    offer("A-5", BenefitKind.AMOUNT_PER_UNIT, 500, scope="dairy"),  # 5.00 a piece, no code
)


def coupon_snapshot():  # type: ignore[no-untyped-def]
    return build_snapshot(
        categories=CATEGORIES,
        products=PRODUCTS,
        groups=GROUPS,
        product_lists=(),
        offers=OFFERS,
        favorite_product_offers=(),
        stores=(),
        program_time_zone=PROGRAM_ZONE,
        coupon_campaigns=(SHARED, UNIQUE),
    )


def checks(*codes: str, stored: dict[str, StoredCode] | None = None, member_id: str = ""):  # type: ignore[no-untyped-def]
    index = coupon_snapshot().coupons
    found = stored or {}
    return tuple(check_code(code, index, found.get(code), member_id, MONDAY_NOON) for code in codes)


def calculated(*codes: str, stored: dict[str, StoredCode] | None = None, explain: bool = False):  # type: ignore[no-untyped-def]
    judged = checks(*codes, stored=stored)
    sent = receipt(line("milk-1", 10000), coupon_offers=unlocked_offers(judged))
    result = calculate(coupon_snapshot(), sent, explain=explain)
    return result, coupon_outcomes(judged, result)


def test_without_a_code_a_gated_offer_does_not_apply_and_explain_says_why() -> None:
    result, outcomes = calculated(explain=True)
    assert applied(result.lines[0]) == [("A-5", 500, 0)]
    reasons = {r.offer_id: r.reason for r in result.lines[0].rejected}
    assert reasons["C-10"] == reasons["C-20"] == COUPON_REQUIRED
    assert outcomes == ()


def test_the_worked_example_of_docs_coupons() -> None:
    """Milk at 100.00: 5.00 off a piece for everybody; SUMMER10 unlocks an exclusive 10 %
    (10.00, more than 5.00: it wins); a unique code unlocks 20 % (20.00), which beats both,
    and SUMMER10 then applies to nothing."""
    result, outcomes = calculated("SUMMER10")
    assert applied(result.lines[0]) == [("C-10", 1000, 0)]
    assert [o.status for o in outcomes] == [CouponStatus.APPLIED]

    code = StoredCode("K7QX-2M9D-P4TW-HC3N", "U1", "", used=False)
    result, outcomes = calculated("SUMMER10", code.code, stored={code.code: code})
    assert applied(result.lines[0]) == [("C-20", 2000, 0)]
    assert [o.status for o in outcomes] == [CouponStatus.NOTHING_TO_APPLY, CouponStatus.APPLIED]
    assert [r.code for r in redemptions(outcomes)] == [code.code]
    assert redemptions(outcomes)[0].kind is CampaignKind.UNIQUE


@pytest.mark.parametrize(
    ("stored", "member_id", "status"),
    [
        (None, "", CouponStatus.UNKNOWN),
        (StoredCode("X", "U1", "", used=True), "", CouponStatus.USED_UP),
        (StoredCode("X", "U1", "m7", used=False), "m1", CouponStatus.NOT_FOR_MEMBER),
        (StoredCode("X", "U1", "m7", used=False), "", CouponStatus.NOT_FOR_MEMBER),
        (StoredCode("X", "NO-CAMPAIGN", "", used=False), "", CouponStatus.UNKNOWN),
        (StoredCode("X", "U1", "m7", used=False), "m7", None),
    ],
)
def test_judging_a_unique_code(stored, member_id, status) -> None:  # type: ignore[no-untyped-def]
    (check,) = checks("X", stored={"X": stored} if stored else None, member_id=member_id)
    assert check.refusal is status


def test_a_campaign_is_valid_half_open_and_a_per_member_limit_needs_a_member() -> None:
    index = coupon_snapshot().coupons
    code = StoredCode("X", "U1", "", used=False)
    assert check_code("X", index, code, "", utc(2026, 11, 30, 23)).refusal is None
    assert check_code("X", index, code, "", utc(2026, 12, 1)).refusal is CouponStatus.EXPIRED
    limited = CouponCampaign("L", "C-10", CampaignKind.SHARED, "LIMIT1", per_member_limit=1)
    own = build_snapshot(
        categories=(), products=(), groups=(), product_lists=(), offers=(),
        favorite_product_offers=(), stores=(), program_time_zone=PROGRAM_ZONE,
        coupon_campaigns=(limited,),
    ).coupons  # fmt: skip
    assert check_code("LIMIT1", own, None, "", MONDAY_NOON).refusal is CouponStatus.NOT_FOR_MEMBER
    assert check_code("LIMIT1", own, None, "m1", MONDAY_NOON).refusal is None


def test_two_codes_of_one_offer_apply_once() -> None:
    twin = CouponCampaign("TWIN", "C-10", CampaignKind.SHARED, shared_code="TWIN10")
    checked = (CodeCheck("SUMMER10", SHARED, None), CodeCheck("TWIN10", twin, None))
    result = calculate(
        coupon_snapshot(), receipt(line("milk-1", 10000), coupon_offers=frozenset({"C-10"}))
    )
    assert [o.status for o in coupon_outcomes(checked, result)] == [
        CouponStatus.APPLIED,
        CouponStatus.NOTHING_TO_APPLY,
    ]


@pytest.mark.parametrize(
    ("sent", "problem"),
    [("", "must not be empty"), ("A" * 33, "at most 32 characters"), ("NO WAY", "letters")],
)
def test_the_form_of_a_code(sent: str, problem: str) -> None:
    found = code_problem(normalise_code(sent))
    assert found is not None and found.startswith(problem)
    assert code_problem(normalise_code(" summer-10 ")) is None


def test_a_snapshot_without_campaigns_gates_nothing() -> None:
    plain = build_snapshot(
        categories=CATEGORIES, products=PRODUCTS, groups=GROUPS, product_lists=(),
        offers=OFFERS, favorite_product_offers=(), stores=(), program_time_zone=PROGRAM_ZONE,
    )  # fmt: skip
    result = calculate(plain, receipt(line("milk-1", 10000)))
    assert applied(result.lines[0]) == [("C-20", 2000, 0)]
