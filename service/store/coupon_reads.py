"""The back office's reads of coupon campaigns (docs/coupons.md): a page of campaigns in id
order with, in the same statement, how many unique codes each has and how many are redeemed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service.engine.coupons import CampaignKind, CouponCampaign
from service.store.catalog_reads import Keys
from service.store.coupon_repo import CAMPAIGNS, CODES, campaign_from_row


@dataclass(frozen=True, slots=True)
class StoredCampaign:
    campaign: CouponCampaign
    codes_issued: int = 0  # UNIQUE campaigns only
    codes_redeemed: int = 0


def read_campaigns(
    session: Session,
    keys: Keys,
    *,
    offer_id: str | None = None,
    valid_at: datetime | None = None,
) -> list[StoredCampaign]:
    """The page of campaigns is chosen first (keyset, with the filters), then joined to the
    codes and counted: one query, which counts only the codes of that page's campaigns."""
    page = select(CAMPAIGNS)
    if keys.after is not None:
        page = page.where(CAMPAIGNS.c.id > keys.after)
    if keys.only is not None:
        page = page.where(CAMPAIGNS.c.id.in_(list(keys.only)))
    if offer_id is not None:
        page = page.where(CAMPAIGNS.c.offer_id == offer_id)
    if valid_at is not None:  # [valid_from, valid_to), as a sale time is judged
        page = page.where(
            or_(CAMPAIGNS.c.valid_from.is_(None), CAMPAIGNS.c.valid_from <= valid_at),
            or_(CAMPAIGNS.c.valid_to.is_(None), CAMPAIGNS.c.valid_to > valid_at),
        )
    chosen = page.order_by(CAMPAIGNS.c.id).limit(keys.limit).subquery()
    query = (
        select(
            chosen,
            func.count(CODES.c.code).label("codes_issued"),
            func.count(CODES.c.receipt_id).label("codes_redeemed"),
        )
        .select_from(chosen.outerjoin(CODES, CODES.c.campaign_id == chosen.c.id))
        .group_by(*chosen.c)
        .order_by(chosen.c.id)
    )
    return [_stored(row) for row in session.execute(query)]


def _stored(row: Any) -> StoredCampaign:
    campaign = campaign_from_row(row)
    if campaign.kind is not CampaignKind.UNIQUE:
        return StoredCampaign(campaign)
    return StoredCampaign(campaign, int(row.codes_issued), int(row.codes_redeemed))
