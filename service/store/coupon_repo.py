"""Coupon campaigns, unique codes and redemptions (docs/coupons.md): rows in and out, and the
conditional updates that make a redemption atomic across replicas. The caller commits.

- a unique code is taken by `UPDATE coupon_codes SET receipt_id = ... WHERE code = ... AND
  receipt_id IS NULL`: of two racing confirms the second waits for the first's row lock and
  then updates nothing;
- a shared code's total is `UPDATE coupon_campaigns SET used = used + 1 WHERE ... used <
  total_limit`, whose row lock also orders the per-member count of that campaign's confirms.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.engine.coupons import CampaignKind, CouponCampaign, Redemption, StoredCode
from service.store.bulk_sql import IDS_PER_READ, BulkSql, in_ids
from service.store.feed import EntityKind, append_changes
from service.store.models import CouponCampaignRow, CouponCodeRow, CouponRedemptionRow
from service.store.pipeline import Batch, Later, Pending
from service.store.sql import chunks, table_of, upsert

CAMPAIGNS = table_of(CouponCampaignRow)
CODES = table_of(CouponCodeRow)
REDEMPTIONS = table_of(CouponRedemptionRow)


# --- campaigns ----------------------------------------------------------------------------------


def save_campaign(session: Session, campaign: CouponCampaign, at: datetime) -> None:
    """Upsert the campaign (its use counter kept); replicas reload their snapshot, as for a
    change of the offer it gates."""
    row = {
        "id": campaign.id,
        "offer_id": campaign.offer_id,
        "kind": campaign.kind,
        "shared_code": campaign.shared_code or None,
        "per_member_limit": campaign.per_member_limit,
        "total_limit": campaign.total_limit,
        "used": 0,
        "valid_from": campaign.valid_from,
        "valid_to": campaign.valid_to,
        "updated_at": at,
    }
    upsert(session, CouponCampaignRow, [row], keep=("used",))
    append_changes(session, EntityKind.OFFER, [campaign.offer_id], at)


def load_campaigns(session: Session) -> tuple[CouponCampaign, ...]:
    rows = session.execute(select(CAMPAIGNS).order_by(CAMPAIGNS.c.id))
    return tuple(campaign_from_row(r) for r in rows)


def stored_campaign(session: Session, campaign_id: str) -> CouponCampaign | None:
    row = session.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
    return None if row is None else campaign_from_row(row)


def campaign_from_row(r: Any) -> CouponCampaign:
    return CouponCampaign(
        id=r.id,
        offer_id=r.offer_id,
        kind=r.kind,
        shared_code=r.shared_code or "",
        per_member_limit=r.per_member_limit,
        total_limit=r.total_limit,
        valid_from=r.valid_from,
        valid_to=r.valid_to,
    )


def campaign_holding(session: Session, shared_code: str) -> str | None:
    """The id of the campaign whose shared code this is, if any."""
    query = select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.shared_code == shared_code)
    return session.execute(query).scalar()


# --- unique codes -------------------------------------------------------------------------------


def stored_codes(session: Session, codes: Sequence[str]) -> dict[str, StoredCode]:
    """The stored unique codes among `codes` (one indexed read)."""
    if not codes:
        return {}
    query = select(CODES.c.code, CODES.c.campaign_id, CODES.c.member_id, CODES.c.receipt_id)
    found = session.execute(query.where(CODES.c.code.in_(list(codes))))
    return {
        r.code: StoredCode(r.code, r.campaign_id, r.member_id or "", r.receipt_id is not None)
        for r in found
    }


def add_codes(session: Session, campaign_id: str, rows: Sequence[tuple[str, str]]) -> int:
    """Insert the (code, member id) rows not stored yet (the first of a code repeated in the
    batch wins), with the import's bulk statements; returns how many were added."""
    wanted = dict(rows)
    bulk = BulkSql(session)
    existing: set[str] = set()
    # PostgreSQL takes the batch's codes as one array parameter, SQLite as IN lists
    for part in chunks(list(wanted), 10_000 if bulk.postgres else IDS_PER_READ):
        query = select(CODES.c.code).where(in_ids(CODES.c.code, part, bulk.postgres))
        existing.update(session.execute(query).scalars())
    new = [
        (code, campaign_id, member or None)
        for code, member in wanted.items()
        if code not in existing
    ]
    bulk.insert_absent("coupon_codes", ("code", "campaign_id", "member_id"), ("code",), new)
    return len(new)


def queue_take_code(
    batch: Batch, code: str, receipt_id: str, member_id: str, at: datetime
) -> Later[bool]:
    """Mark a free unique code used by the receipt, when the batch is sent; False if it was
    taken (or is another member's)."""
    sql = _statements(batch.dialect)
    values = {"b_code": code, "b_receipt_id": receipt_id, "b_used_at": at}
    if member_id:
        values["b_member_id"] = member_id
    taken = batch.execute(sql.take_members_code if member_id else sql.take_code, values)
    return Later(taken, Pending.found)


def member_codes(session: Session, member_id: str) -> list[tuple[str, str]]:
    """The free unique codes assigned to the member: (code, campaign id), by code."""
    query = (
        select(CODES.c.code, CODES.c.campaign_id)
        .where(CODES.c.member_id == member_id, CODES.c.receipt_id.is_(None))
        .order_by(CODES.c.code)
    )
    return [(r.code, r.campaign_id) for r in session.execute(query)]


# --- shared codes -------------------------------------------------------------------------------


def queue_shared_use(batch: Batch, campaign_id: str) -> Later[bool]:
    """One more use of the campaign's shared code, unless its total limit is reached, when
    the batch is sent (it locks the campaign's row until the transaction ends)."""
    counted = batch.execute(_statements(batch.dialect).count_shared, {"b_id": campaign_id})
    return Later(counted, Pending.found)


def queue_stored_campaign(batch: Batch, campaign_id: str) -> Later[CouponCampaign | None]:
    """stored_campaign, read when the batch is sent."""
    read = batch.execute(_statements(batch.dialect).campaign, {"b_id": campaign_id})
    return Later(read, _campaign)


def _campaign(pending: Pending) -> CouponCampaign | None:
    row = pending.first()
    if row is None:
        return None
    return campaign_from_row(SimpleNamespace(**dict(zip(CAMPAIGNS.c.keys(), row, strict=True))))


def queue_member_uses(batch: Batch, campaign_id: str, member_id: str) -> Later[int]:
    """The member's redemptions of the campaign that no refund released, when the batch is
    sent (after its shared use was counted: that row lock orders them)."""
    values = {"b_id": campaign_id, "b_member_id": member_id}
    return Later(batch.execute(_statements(batch.dialect).member_uses, values), _count)


def _count(pending: Pending) -> int:
    return int(pending.scalar() or 0)


# --- redemptions --------------------------------------------------------------------------------


def queue_redemptions(
    batch: Batch,
    receipt_id: str,
    member_id: str,
    redeemed: Iterable[Redemption],
    at: datetime,
) -> None:
    """The receipt's redemptions; those a repeat sends again are left as they are."""
    batch.execute_many(
        _statements(batch.dialect).redeem,
        [
            {"receipt_id": receipt_id, "code": r.code, "campaign_id": r.campaign_id,
             "kind": r.kind, "member_id": member_id or None, "released": False,
             "redeemed_at": at}
            for r in redeemed
        ],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Statements:
    """A confirm's statements, built once per dialect (service.store.receipt_sql says why)."""

    take_code: Any  # :b_code, :b_receipt_id, :b_used_at; RETURNING the code
    take_members_code: Any  # the same for a code that is free or :b_member_id's
    count_shared: Any  # :b_id; used += 1 within the total limit; RETURNING the id
    campaign: Any  # :b_id
    member_uses: Any  # :b_id, :b_member_id
    redeem: Any  # ON CONFLICT DO NOTHING
    # a refund that returns the receipt in full
    held: Any  # :b_receipt_id -> its redemptions not released yet (code, campaign, kind)
    free_code: Any  # :b_code, :b_receipt_id
    uncount_shared: Any  # :b_id; used -= 1, never below zero
    released: Any  # :b_receipt_id


@functools.cache
def _statements(dialect: str) -> _Statements:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    free = CODES.c.receipt_id.is_(None)
    take = (
        update(CODES)
        .values(receipt_id=bindparam("b_receipt_id"), used_at=bindparam("b_used_at"))
        .returning(CODES.c.code)
    )
    code = CODES.c.code == bindparam("b_code")
    anyones = CODES.c.member_id.is_(None)
    campaign = CAMPAIGNS.c.id == bindparam("b_id")
    within = (CAMPAIGNS.c.total_limit == 0) | (CAMPAIGNS.c.used < CAMPAIGNS.c.total_limit)
    of_receipt = REDEMPTIONS.c.receipt_id == bindparam("b_receipt_id")
    return _Statements(
        take_code=take.where(code, free, anyones),
        take_members_code=take.where(
            code, free, or_(anyones, CODES.c.member_id == bindparam("b_member_id"))
        ),
        count_shared=update(CAMPAIGNS)
        .where(campaign, within)
        .values(used=CAMPAIGNS.c.used + 1)
        .returning(CAMPAIGNS.c.id),
        campaign=select(CAMPAIGNS).where(campaign),
        member_uses=select(func.count()).where(
            REDEMPTIONS.c.campaign_id == bindparam("b_id"),
            REDEMPTIONS.c.member_id == bindparam("b_member_id"),
            REDEMPTIONS.c.released.is_(False),
        ),
        redeem=insert(REDEMPTIONS).on_conflict_do_nothing(),
        held=select(REDEMPTIONS.c.code, REDEMPTIONS.c.campaign_id, REDEMPTIONS.c.kind)
        .where(of_receipt, REDEMPTIONS.c.released.is_(False))
        .order_by(REDEMPTIONS.c.code),
        free_code=update(CODES)
        .where(code, CODES.c.receipt_id == bindparam("b_receipt_id"))
        .values(receipt_id=None, used_at=None),
        uncount_shared=update(CAMPAIGNS)
        .where(campaign, CAMPAIGNS.c.used > 0)
        .values(used=CAMPAIGNS.c.used - 1),
        released=update(REDEMPTIONS).where(of_receipt).values(released=True),
    )


@dataclass(frozen=True, slots=True)
class Held:
    """A code a receipt redeemed and still holds."""

    code: str
    campaign_id: str
    kind: CampaignKind


def held_codes(batch: Batch, receipt_id: str) -> Later[tuple[Held, ...]]:
    """The codes the receipt redeemed that no refund released yet, read when the batch is
    sent (a refund reads them under the receipt's lock)."""
    pending = batch.execute(_statements(batch.dialect).held, {"b_receipt_id": receipt_id})

    def held(_: object) -> tuple[Held, ...]:
        return tuple(Held(code, campaign_id, kind) for code, campaign_id, kind in pending.rows)

    return Later(pending, held)


def release_codes(batch: Batch, receipt_id: str, held: Sequence[Held]) -> None:
    """Give back the codes `held` of the receipt (held_codes): a unique code is free again, a
    shared code's use uncounted."""
    if not held:
        return
    sql = _statements(batch.dialect)
    for h in held:
        if h.kind is CampaignKind.UNIQUE:
            batch.execute(sql.free_code, {"b_code": h.code, "b_receipt_id": receipt_id})
        else:
            batch.execute(sql.uncount_shared, {"b_id": h.campaign_id})
    batch.execute(sql.released, {"b_receipt_id": receipt_id})
