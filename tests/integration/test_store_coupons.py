"""Coupon rows on SQLite and PostgreSQL: campaigns load into the catalogue, codes import
once, a code is taken once (and not by another member), a shared code's total is kept."""

from __future__ import annotations

from datetime import UTC, datetime

from service.engine.coupons import CampaignKind, CouponCampaign
from service.store import coupon_repo
from service.store.loader import load_catalogue

AT = datetime(2026, 12, 1, 12, tzinfo=UTC)
SHARED = CouponCampaign("S", "O-1", CampaignKind.SHARED, shared_code="ONE", total_limit=1)
UNIQUE = CouponCampaign("U", "O-2", CampaignKind.UNIQUE, valid_to=AT)


def test_codes_are_stored_once_and_taken_once(db) -> None:  # type: ignore[no-untyped-def]
    with db() as session:
        coupon_repo.save_campaign(session, SHARED, AT)
        coupon_repo.save_campaign(session, UNIQUE, AT)
        rows = [("A-1", ""), ("A-2", "M1"), ("A-1", "")]
        assert coupon_repo.add_codes(session, "U", rows) == 2
        assert coupon_repo.add_codes(session, "U", [("A-2", ""), ("A-3", "")]) == 1
        session.commit()
        assert load_catalogue(session).coupon_campaigns == (SHARED, UNIQUE)
        stored = coupon_repo.stored_codes(session, ["A-1", "A-2", "NOPE"])
        assert sorted(stored) == ["A-1", "A-2"] and stored["A-2"].member_id == "M1"
        assert coupon_repo.member_codes(session, "M1") == [("A-2", "U")]

        assert not coupon_repo.take_code(session, "A-2", "R-1", "M9", AT)  # another member's
        assert coupon_repo.take_code(session, "A-1", "R-1", "", AT)
        assert not coupon_repo.take_code(session, "A-1", "R-2", "", AT)
        assert coupon_repo.count_shared_use(session, "S")
        assert not coupon_repo.count_shared_use(session, "S")  # total limit 1
        session.commit()
        assert coupon_repo.stored_codes(session, ["A-1"])["A-1"].used
        assert coupon_repo.stored_campaign(session, "S") == SHARED
