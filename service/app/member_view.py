"""The member lookup (spec §9; docs/favorites.md#the-member-lookup-getmemberoffers): what a
member is offered at an instant, composed from the cache (the member's terms, catalogue and
offers) and four indexed reads on the member's key: favorite selections, favorite slots, last
month's purchases (only with a PURCHASE_HISTORY offer) and the points ledger (balance and
what of it is available at the instant), plus one for the favorite-category change times
when the member has such terms. Nothing is written."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from service.app.favorites import favorite_states
from service.app.unit_of_work import UnitOfWork
from service.engine.favorites import CategoryState, FavoriteState, category_window
from service.engine.member_offers import (
    GeneralOffer,
    general_offers,
    limit_left,
    offers_applying,
    personal_offer_used,
)
from service.engine.model import Channel, Member, PersonalOffer
from service.engine.points_balance import PointsPosition
from service.engine.snapshot import Snapshot
from service.engine.validity import valid_at
from service.store.category_choice_repo import last_category_changes
from service.store.chips_repo import chips_balance
from service.store.points_repo import points_position


@dataclass(frozen=True, slots=True)
class PersonalOfferView:
    offer: PersonalOffer
    used: int  # in the current period of the offer's usage limit (0 without a limit)
    left: int | None = None  # of that limit in that period; None without a limit


@dataclass(frozen=True, slots=True)
class MemberOffers:
    member_id: str
    favorite_products: list[FavoriteState]
    favorite_categories: list[CategoryState]
    personal_offers: list[PersonalOfferView]
    general_offers: list[GeneralOffer]
    points: PointsPosition  # available now, pending, expiring soon (spec §21)
    # offer id -> what is left of a general offer's per-member limit in its current period
    general_left: dict[str, int] = field(default_factory=dict)
    chips_balance: int = 0


class GeneralOffers:
    """The general offers compiled once per snapshot (the cache swaps the snapshot whole on a
    change), shared by the lookups of one servicer."""

    def __init__(self) -> None:
        self._memo: tuple[Snapshot, list[GeneralOffer]] | None = None
        self._lock = threading.Lock()

    def of(self, snapshot: Snapshot) -> list[GeneralOffer]:
        memo = self._memo
        if memo is not None and memo[0] is snapshot:
            return memo[1]
        offers = general_offers(snapshot)
        with self._lock:
            self._memo = (snapshot, offers)
        return offers


def member_offers(
    uow: UnitOfWork,
    snapshot: Snapshot,
    member: Member,
    at: datetime,
    general: list[GeneralOffer],
    store_id: str = "",
    channel: Channel | None = None,
    expiring_soon: timedelta = timedelta(0),
) -> MemberOffers:
    """Favorite products, favorite categories and personalized offers valid at `at`, the
    general and audience offers that apply to the member then (for the store and channel when
    given), the member's points (available, pending, expiring within `expiring_soon`) and
    chips balance."""
    tz = snapshot.program_time_zone
    terms = [t for t in member.favorite_categories if valid_at(t.valid_from, t.valid_to, at)]
    with uow:
        session = uow.session
        favorites = favorite_states(session, snapshot, member.id, at)
        changes = last_category_changes(session, member.id) if terms else {}
        points = points_position(session, member.id, at, expiring_soon)
        chips = chips_balance(session, member.id)
    categories = []
    for t in terms:
        last_change_at = changes.get(t.offer_id)
        categories.append(
            CategoryState(t, last_change_at, category_window(t, last_change_at, at, tz))
        )
    personal = [
        _personal_view(offer, member, at, tz)
        for offer in member.personal_offers
        if valid_at(offer.valid_from, offer.valid_to, at)
    ]
    applying = offers_applying(snapshot, general, member, at, store_id, channel)
    left = {  # usage periods run on the program's clock, as in Calculate
        g.offer.id: limit_left(g.offer.id, g.offer.usage_limit, member, at, tz)
        for g in applying
        if g.offer.usage_limit is not None
    }
    return MemberOffers(member.id, favorites, categories, personal, applying, points, left, chips)


def _personal_view(
    offer: PersonalOffer, member: Member, at: datetime, tz: ZoneInfo
) -> PersonalOfferView:
    used = personal_offer_used(offer, member, at, tz)
    if offer.usage_limit is None:
        return PersonalOfferView(offer, used)
    return PersonalOfferView(offer, used, max(offer.usage_limit.limit - used, 0))
