"""What a member is offered at an instant (spec §9; docs/favorites.md#the-member-lookup): the
general and audience offers that apply to them, and what they used of a personalized offer.
Pure; the member lookup (service/app/member_view.py) composes it with the stored state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from service.engine.eligibility import ReceiptContext, ineligibility_reason
from service.engine.model import Channel, Member, Offer, PersonalOffer, Receipt, UsageLimit
from service.engine.rules import Rule, rule_for_offer
from service.engine.snapshot import Snapshot
from service.engine.usage import local_date, period_key


@dataclass(frozen=True, slots=True)
class GeneralOffer:
    offer: Offer
    rule: Rule
    coupon_required: bool = False  # gated: applies only with a valid code (engine.coupons)


def general_offers(snapshot: Snapshot) -> list[GeneralOffer]:
    """The offers of levels 1-3, compiled as the calculation compiles them, in candidate
    order (higher priority first, then offer id); those a coupon campaign gates say so."""
    gated = snapshot.coupons.gated
    found = [
        GeneralOffer(o, r, o.id in gated)
        for o in snapshot.offers
        if (r := rule_for_offer(o)) is not None
    ]
    found.sort(key=lambda g: g.rule.sort_key)
    return found


def offers_applying(
    snapshot: Snapshot,
    offers: Iterable[GeneralOffer],
    member: Member,
    at: datetime,
    store_id: str = "",
    channel: Channel | None = None,
) -> list[GeneralOffer]:
    """The general and audience offers that apply to the member at `at`: the calculation's
    own filters (engine.eligibility: validity, member, audience, schedule, usage limit) on an
    empty receipt of the member. Without a store (or channel), an offer limited to some stores
    (channels) applies when it applies in one of them; its schedule then runs on that store's
    clock."""
    contexts: dict[tuple[str, Channel], ReceiptContext] = {}

    def context(store: str, on: Channel) -> ReceiptContext:
        found = contexts.get((store, on))
        if found is None:
            receipt = Receipt("", at, (), store_id=store, channel=on, member=member)
            found = contexts[(store, on)] = ReceiptContext(snapshot, receipt)
        return found

    applying = []
    for general in offers:
        rule = general.rule
        stores = [store_id] if store_id or not rule.store_ids else sorted(rule.store_ids)
        if channel is not None or not rule.channels:
            channels = [channel or Channel.POS]
        else:
            channels = sorted(rule.channels, key=lambda c: c.value)
        if any(
            ineligibility_reason(rule, context(store, on)) is None
            for store in stores
            for on in channels
        ):
            applying.append(general)
    return applying


def personal_offer_used(offer: PersonalOffer, member: Member, at: datetime, tz: ZoneInfo) -> int:
    """What the member used of the offer in the current period of its usage limit (0 without
    a limit)."""
    if offer.usage_limit is None:
        return 0
    return limit_used(offer.offer_id, offer.usage_limit, member, at, tz)


def limit_used(offer_id: str, limit: UsageLimit, member: Member, at: datetime, tz: ZoneInfo) -> int:
    """What the member used of an offer's limit in its period at `at` (local dates in `tz`)."""
    return member.usage.get((offer_id, period_key(limit.period, local_date(at, tz))), 0)


def limit_left(offer_id: str, limit: UsageLimit, member: Member, at: datetime, tz: ZoneInfo) -> int:
    """What is left of an offer's per-member limit in its period at `at` (spec §19)."""
    return max(limit.limit - limit_used(offer_id, limit, member, at, tz), 0)
