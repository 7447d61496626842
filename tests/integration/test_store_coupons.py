"""Coupon rows on SQLite and PostgreSQL: campaigns load into the catalogue, codes import
once, a code is taken once (and not by another member), a shared code's total is kept."""

from __future__ import annotations

from datetime import UTC, datetime

from service.engine.coupons import CampaignKind, CouponCampaign
from service.store import coupon_reads, coupon_repo
from service.store.catalog_reads import Keys
from service.store.coupon_reads import StoredCampaign
from service.store.loader import load_catalogue
from service.store.pipeline import Batch

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

        batch = Batch(session)  # as a confirm queues them: sent together
        others = coupon_repo.queue_take_code(batch, "A-2", "R-1", "M9", AT)  # another member's
        free = coupon_repo.queue_take_code(batch, "A-1", "R-1", "", AT)
        again = coupon_repo.queue_take_code(batch, "A-1", "R-2", "", AT)
        first = coupon_repo.queue_shared_use(batch, "S")
        second = coupon_repo.queue_shared_use(batch, "S")  # total limit 1
        stored = coupon_repo.queue_stored_campaign(batch, "S")
        batch.send()
        assert (others.value(), free.value(), again.value()) == (False, True, False)
        assert (first.value(), second.value()) == (True, False)
        assert stored.value() == SHARED
        session.commit()
        assert coupon_repo.stored_codes(session, ["A-1"])["A-1"].used
        assert coupon_repo.stored_campaign(session, "S") == SHARED


def test_campaigns_read_in_pages_with_their_code_counts(db) -> None:  # type: ignore[no-untyped-def]
    other = CouponCampaign("V", "O-2", CampaignKind.UNIQUE, valid_from=AT)
    with db() as session:
        for campaign in (SHARED, UNIQUE, other):
            coupon_repo.save_campaign(session, campaign, AT)
        coupon_repo.add_codes(session, "U", [("B-1", ""), ("B-2", ""), ("B-3", "")])
        coupon_repo.add_codes(session, "V", [("B-4", "")])
        batch = Batch(session)
        assert coupon_repo.queue_take_code(batch, "B-2", "R-1", "", AT).value()
        session.commit()
        counted = coupon_reads.read_campaigns(session, Keys(limit=10))
        assert counted == [
            StoredCampaign(SHARED),
            StoredCampaign(UNIQUE, codes_issued=3, codes_redeemed=1),
            StoredCampaign(other, codes_issued=1, codes_redeemed=0),
        ]
        page = coupon_reads.read_campaigns(session, Keys(limit=1, after="S"), offer_id="O-2")
        assert [s.campaign.id for s in page] == ["U"]
        valid = coupon_reads.read_campaigns(session, Keys(limit=10), valid_at=AT)
        assert [s.campaign.id for s in valid] == ["S", "V"]  # U ends at AT (half-open)
