"""Offers compiled for the hot path.

A `Rule` is one offer as the calculation sees it, whatever it came from: a configured offer
of levels 1-3, a favorite-products offer, or a member's imported favorite-category terms or
personalized offer. Everything a line needs is a plain attribute, computed once: the
mechanic, the benefit, the order key (priority, then offer id) and the printable text.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from service.engine.model import (
    Audience,
    BenefitKind,
    Channel,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Level,
    LimitUnit,
    Mechanic,
    Offer,
    PersonalOffer,
    Schedule,
    Stacking,
    UsageLimit,
)
from service.engine.texts import applied_benefit_text

_LEVEL_MECHANICS = {
    Level.ALL_BUYERS: Mechanic.ALL_BUYERS,
    Level.MEMBERS_ONLY: Mechanic.MEMBERS_ONLY,
    Level.TARGET_AUDIENCE: Mechanic.TARGET_AUDIENCE,
}


class Role(enum.Enum):
    """What a rule does on a line when it applies (Rule.role), and, per receipt, INELIGIBLE
    or UNITS_LIMITED (eligible, but its share of a units limit must be known first). The
    hot path compares members by identity."""

    INELIGIBLE = "ineligible"
    EXCLUSIVE = "exclusive"
    COMBINABLE = "combinable"
    BONUS = "bonus"
    UNITS_LIMITED = "units limited"


INELIGIBLE = Role.INELIGIBLE
EXCLUSIVE = Role.EXCLUSIVE
COMBINABLE = Role.COMBINABLE
BONUS = Role.BONUS
UNITS_LIMITED = Role.UNITS_LIMITED

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -(2**63)
MAX_US = 2**63 - 1


def to_epoch_us(moment: datetime) -> int:
    """An aware instant as integer microseconds since the Unix epoch (exact)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_NO_STORES: frozenset[str] = frozenset()
_NO_CHANNELS: frozenset[Channel] = frozenset()


class Rule:
    """One offer, compiled. Identity-hashed: a rule is a key of per-receipt memos."""

    __slots__ = (
        "offer_id",
        "mechanic",
        "kind",
        "value",
        "is_bonus",
        "exclusive",
        "priority",
        "order_key",
        "sort_key",
        "text",
        "valid_from",
        "valid_to",
        "schedule",
        "store_ids",
        "channels",
        "needs_member",
        "audience",
        "usage_limit",
        "units_limited",
        "has_filters",
        "role",
        "valid_from_us",
        "valid_to_us",
        "basis_points",
    )

    def __init__(
        self,
        *,
        offer_id: str,
        mechanic: Mechanic,
        kind: BenefitKind,
        value: int,
        stacking: Stacking,
        priority: int,
        text: str,
        valid_from: datetime | None,
        valid_to: datetime | None,
        schedule: Schedule | None = None,
        store_ids: frozenset[str] = _NO_STORES,
        channels: frozenset[Channel] = _NO_CHANNELS,
        needs_member: bool = False,
        audience: Audience | None = None,
        usage_limit: UsageLimit | None = None,
    ) -> None:
        self.offer_id = offer_id
        self.mechanic = mechanic
        self.kind = kind
        self.value = value
        self.is_bonus = kind is BenefitKind.BONUS_PERCENT
        self.exclusive = stacking is Stacking.EXCLUSIVE
        self.priority = priority
        self.order_key = (-priority, offer_id)
        self.sort_key = (-priority, offer_id, mechanic.value)  # total order of candidates
        self.text = text
        self.valid_from = valid_from
        self.valid_to = valid_to
        self.schedule = (
            schedule if schedule and (schedule.days_of_week or schedule.time_ranges) else None
        )
        self.store_ids = store_ids
        self.channels = channels
        self.needs_member = needs_member
        self.audience = audience
        self.usage_limit = usage_limit
        self.units_limited = usage_limit is not None and usage_limit.unit is LimitUnit.UNITS
        # a PERCENT or BONUS_PERCENT value the hot path may apply inline (None: call
        # engine.valuation; negative values give nothing and take that path)
        self.basis_points = (
            value
            if value >= 0 and kind in (BenefitKind.PERCENT, BenefitKind.BONUS_PERCENT)
            else None
        )
        self.role = BONUS if self.is_bonus else EXCLUSIVE if self.exclusive else COMBINABLE
        self.valid_from_us = MIN_US if valid_from is None else to_epoch_us(valid_from)
        self.valid_to_us = MAX_US if valid_to is None else to_epoch_us(valid_to)
        self.has_filters = bool(
            valid_from is not None
            or valid_to is not None
            or self.schedule is not None
            or store_ids
            or channels
            or needs_member
            or audience is not None
            or usage_limit is not None
        )

    def __repr__(self) -> str:
        return f"Rule({self.offer_id!r}, {self.mechanic.value}, {self.kind.value} {self.value})"


def rule_for_offer(offer: Offer) -> Rule | None:
    """A configured offer of levels 1-3; None for an INDIVIDUAL offer (it applies only through
    a favorite-products offer or a member's terms)."""
    mechanic = _LEVEL_MECHANICS.get(offer.level)
    if mechanic is None or is_chips_offer(offer):
        return None
    return _rule_for_general_offer(offer, mechanic)


def is_chips_offer(offer: Offer) -> bool:
    """A chips grant or reward: engine.chips applies it after the lines, never the hot path."""
    return offer.benefit.kind is BenefitKind.CHIPS or offer.chips_price > 0


def rule_for_chips_offer(offer: Offer) -> Rule:
    """A chips offer of level ALL_BUYERS or MEMBERS_ONLY compiled for its filters (validity,
    store, channel, schedule, member) and its order; engine.chips values it."""
    return _rule_for_general_offer(offer, _LEVEL_MECHANICS[offer.level])


def rule_for_favorite_products(favorite: FavoriteProductsOffer) -> Rule:
    """spec §7.1: the offer's benefit and filters, for the SKUs in a member's slots."""
    return _rule_for_general_offer(favorite.offer, Mechanic.FAVORITE_PRODUCTS, needs_member=True)


def _rule_for_general_offer(
    offer: Offer, mechanic: Mechanic, *, needs_member: bool = False
) -> Rule:
    targeted = offer.level is Level.TARGET_AUDIENCE
    return Rule(
        offer_id=offer.id,
        mechanic=mechanic,
        kind=offer.benefit.kind,
        value=offer.benefit.value,
        stacking=offer.stacking,
        priority=offer.priority,
        text=applied_benefit_text(mechanic, offer.name, offer.benefit, offer.text),
        valid_from=offer.valid_from,
        valid_to=offer.valid_to,
        schedule=offer.schedule,
        store_ids=offer.store_ids,
        channels=offer.channels,
        needs_member=needs_member or offer.level is not Level.ALL_BUYERS,
        audience=offer.audience if targeted else None,
        usage_limit=offer.usage_limit,
    )


def rule_for_category_terms(terms: FavoriteCategoryTerms) -> Rule:
    """spec §7.2: a member's favorite-category terms (their own benefit and validity)."""
    mechanic = Mechanic.FAVORITE_CATEGORIES
    return Rule(
        offer_id=terms.offer_id,
        mechanic=mechanic,
        kind=terms.benefit.kind,
        value=terms.benefit.value,
        stacking=terms.stacking,
        priority=terms.priority,
        text=applied_benefit_text(mechanic, terms.name, terms.benefit),
        valid_from=terms.valid_from,
        valid_to=terms.valid_to,
        needs_member=True,
    )


def rule_for_personal_offer(offer: PersonalOffer) -> Rule:
    """spec §7.3: a member's personalized offer (own benefit, validity and usage limit)."""
    mechanic = Mechanic.PERSONALIZED_OFFER
    return Rule(
        offer_id=offer.offer_id,
        mechanic=mechanic,
        kind=offer.benefit.kind,
        value=offer.benefit.value,
        stacking=offer.stacking,
        priority=offer.priority,
        text=applied_benefit_text(mechanic, offer.name, offer.benefit),
        valid_from=offer.valid_from,
        valid_to=offer.valid_to,
        needs_member=True,
        usage_limit=offer.usage_limit,
    )
