"""Coupon use cases (docs/coupons.md, spec §22): campaigns and their codes for the back
office; the check of scanned codes before a calculation; redemption inside a confirm's
transaction and release inside a refund's.

What is in memory and what is not: campaigns (and so every shared code) are part of the
snapshot, so a shared code is judged without the store. Unique codes can be millions; they
stay in the store, and a receipt that carries a code no campaign shares costs one indexed
read of those codes (never a receipt without codes). Whether a code is still free is decided
only at confirm, by a conditional update (service.store.coupon_repo).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime

from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.clock import Clock, utc_now
from service.engine.coupons import (
    CampaignKind,
    CodeCheck,
    CouponCampaign,
    CouponIndex,
    Redemption,
    check_code,
)
from service.engine.snapshot import Snapshot
from service.errors import FailedPrecondition, NotFound
from service.limits import quote
from service.store import coupon_reads, coupon_repo
from service.store.catalog_reads import Keys
from service.store.coupon_reads import StoredCampaign
from service.store.pipeline import Batch, Later

COUPON_USED = "COUPON_USED"
COUPON_USED_UP = "COUPON_USED_UP"
CAMPAIGN_NOT_FOUND = "CAMPAIGN_NOT_FOUND"
MAX_GENERATED = 10_000  # codes per GenerateCouponCodes call

# 32 symbols without look-alikes (no 0/O, 1/I): 5 bits each; 16 of them are 80 random bits
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_GROUPS, _GROUP = 4, 4


def new_code() -> str:
    """A unique code, as "7KQ2-M9XD-P4TW-HC3N": 80 bits from the secrets module, so that
    codes cannot be guessed (an enumerator also meets the miss limit of the api)."""
    symbols = "".join(secrets.choice(_ALPHABET) for _ in range(_GROUPS * _GROUP))
    return "-".join(symbols[i : i + _GROUP] for i in range(0, len(symbols), _GROUP))


# --- in a calculation ---------------------------------------------------------------------------


def check_codes(
    sessions: Sessions,
    index: CouponIndex,
    codes: Sequence[str],
    member_id: str,
    sale_time: datetime,
) -> tuple[CodeCheck, ...]:
    """Judge each normalised code: shared codes from memory, the others with one read."""
    others = [code for code in codes if code not in index.shared]
    stored = {}
    if others:
        with sessions() as session:
            stored = coupon_repo.stored_codes(session, others)
    return tuple(check_code(code, index, stored.get(code), member_id, sale_time) for code in codes)


# --- in a confirm and a refund ------------------------------------------------------------------


def queue_redeem(
    batch: Batch,
    receipt_id: str,
    member_id: str,
    redeemed: Sequence[Redemption],
    at: datetime,
) -> Callable[[], None]:
    """Queue the redemption of the codes a confirm's token carries, in code order (so that
    concurrent confirms take row locks alike). The check it returns, once the batch is
    sent, raises FailedPrecondition COUPON_USED (a unique code taken since the calculation)
    or COUPON_USED_UP (a shared code's limit reached); the confirm's transaction then rolls
    back whole."""
    checks: list[Callable[[], None]] = []
    for item in sorted(redeemed, key=lambda r: r.code):
        if item.kind is CampaignKind.UNIQUE:
            taken = coupon_repo.queue_take_code(batch, item.code, receipt_id, member_id, at)
            checks.append(functools.partial(_check_taken, item, taken))
        else:
            checks.append(_queue_shared(batch, item, member_id))
    coupon_repo.queue_redemptions(batch, receipt_id, member_id, redeemed, at)

    def check() -> None:
        for one in checks:
            one()

    return check


def _check_taken(item: Redemption, taken: Later[bool]) -> None:
    if not taken.value():
        raise FailedPrecondition(
            f"coupon {quote(item.code)} was used by another receipt; calculate the receipt again",
            reason=COUPON_USED,
        )


def _queue_shared(batch: Batch, item: Redemption, member_id: str) -> Callable[[], None]:
    """One more use of a shared code within its total (the campaign's row lock), and within
    its per-member limit as the store has it now (not the snapshot's: another replica may
    have changed it); the check, once sent."""
    counted = coupon_repo.queue_shared_use(batch, item.campaign_id)
    stored = coupon_repo.queue_stored_campaign(batch, item.campaign_id)
    uses = coupon_repo.queue_member_uses(batch, item.campaign_id, member_id) if member_id else None

    def used_up() -> bool:
        if not counted.value():
            return True
        campaign = stored.value()
        if campaign is None or not campaign.per_member_limit:
            return False
        return uses is None or uses.value() >= campaign.per_member_limit  # (anonymous: none)

    def check() -> None:
        if used_up():
            raise FailedPrecondition(
                f"coupon {quote(item.code)} has no use left; calculate the receipt again",
                reason=COUPON_USED_UP,
            )

    return check


def held(batch: Batch, receipt_id: str) -> Later[tuple[coupon_repo.Held, ...]]:
    """The codes a receipt holds, read with a refund's other reads of it."""
    return coupon_repo.held_codes(batch, receipt_id)


def release(batch: Batch, receipt_id: str, held: Sequence[coupon_repo.Held]) -> None:
    """A receipt returned in full gives its codes back (spec §22)."""
    coupon_repo.release_codes(batch, receipt_id, held)


# --- the back office ----------------------------------------------------------------------------


class CouponCampaigns:
    """Campaigns and codes. A campaign change reloads this replica's snapshot after the
    commit; the others follow the change feed."""

    def __init__(
        self,
        sessions: Sessions,
        snapshot: Callable[[], Snapshot],
        reload_snapshot: Callable[[], object],
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._snapshot = snapshot
        self._reload_snapshot = reload_snapshot
        self._clock = clock

    def upsert(self, campaign: CouponCampaign) -> None:
        """Refused: an unknown offer (NOT_FOUND), a shared code another campaign holds or a
        campaign changing its kind (FAILED_PRECONDITION)."""
        snapshot = self._snapshot()
        if snapshot.offer(campaign.offer_id) is None and (
            snapshot.favorite_products_offer(campaign.offer_id) is None
        ):
            raise NotFound(f"no offer {quote(campaign.offer_id)}", reason="OFFER_NOT_FOUND")
        with UnitOfWork(self._sessions, now=self._clock()) as uow:
            session = uow.session
            known = coupon_repo.stored_campaign(session, campaign.id)
            if known is not None and known.kind is not campaign.kind:
                raise FailedPrecondition(
                    f"campaign {quote(campaign.id)} is {known.kind.value}; its kind is fixed",
                    reason="CAMPAIGN_KIND_FIXED",
                )
            if campaign.shared_code:
                holder = coupon_repo.campaign_holding(session, campaign.shared_code)
                if holder is not None and holder != campaign.id:
                    raise FailedPrecondition(
                        f"code {quote(campaign.shared_code)} belongs to campaign {quote(holder)}",
                        reason="COUPON_CODE_TAKEN",
                    )
            coupon_repo.save_campaign(session, campaign, uow.now)
            uow.commit()
        self._reload_snapshot()

    def _unique_campaign(self, campaign_id: str) -> CouponCampaign:
        campaign = self._snapshot().coupons.campaigns.get(campaign_id)
        if campaign is None:
            raise NotFound(f"no coupon campaign {quote(campaign_id)}", reason=CAMPAIGN_NOT_FOUND)
        if campaign.kind is not CampaignKind.UNIQUE:
            raise FailedPrecondition(
                f"campaign {quote(campaign_id)} has a shared code, not unique codes",
                reason="CAMPAIGN_NOT_UNIQUE",
            )
        return campaign

    def generate(self, campaign_id: str, count: int, member_id: str = "") -> tuple[str, ...]:
        """`count` new random codes for a UNIQUE campaign, stored in one transaction."""
        self._unique_campaign(campaign_id)
        codes: list[str] = []
        while len(codes) < count:  # a collision of 80-bit codes is only theoretical
            batch = [new_code() for _ in range(count - len(codes))]
            with UnitOfWork(self._sessions, now=self._clock()) as uow:
                before = coupon_repo.stored_codes(uow.session, batch)
                fresh = [code for code in dict.fromkeys(batch) if code not in before]
                coupon_repo.add_codes(uow.session, campaign_id, [(c, member_id) for c in fresh])
                uow.commit()
            codes.extend(fresh)
        return tuple(codes)

    def import_codes(self, campaign_id: str, rows: Sequence[tuple[str, str]]) -> int:
        """One batch of (code, member id) in one transaction; codes already stored are
        skipped. Returns how many were added."""
        self._unique_campaign(campaign_id)
        with UnitOfWork(self._sessions, now=self._clock()) as uow:
            added = coupon_repo.add_codes(uow.session, campaign_id, rows)
            uow.commit()
        return added

    def stored(
        self, keys: Keys, *, offer_id: str | None = None, valid_at: datetime | None = None
    ) -> list[StoredCampaign]:
        """Campaigns as the store holds them (not this replica's snapshot), with the counts
        of their unique codes."""
        with self._sessions() as session:
            return coupon_reads.read_campaigns(session, keys, offer_id=offer_id, valid_at=valid_at)

    def member_coupons(self, member_id: str, at: datetime) -> list[tuple[str, CouponCampaign]]:
        """The free codes assigned to the member whose campaign is valid at `at` or later:
        (code, campaign), by code."""
        campaigns = self._snapshot().coupons.campaigns
        with self._sessions() as session:
            rows = coupon_repo.member_codes(session, member_id)
        found = [(code, campaigns.get(cid)) for code, cid in rows]
        return [
            (code, c)
            for code, c in found
            if c is not None and (c.valid_to is None or at < c.valid_to)
        ]
