"""Customer attributes as they are imported (spec §7.2-7.4): one record per row of a file or of
the ImportCustomerAttributes stream. Built and checked by service.imports.records; applied by
service.imports.batch; written by service.store.attributes_repo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from service.engine.model import FavoriteCategoryTerms, Gender, PersonalOffer


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """A member's profile; a non-empty card list is the member's whole set of active cards."""

    member_id: str
    card_numbers: tuple[str, ...] = ()
    birth_date: date | None = None
    gender: Gender | None = None
    segment_tags: frozenset[str] = frozenset()
    active: bool = True


@dataclass(frozen=True, slots=True)
class FavoriteCategories:
    """A member's terms for one favorite-categories offer; replaces earlier terms."""

    member_id: str
    terms: FavoriteCategoryTerms


@dataclass(frozen=True, slots=True)
class PersonalOfferGrant:
    """A member's personalized offer, upserted by (member, offer id); `offer` None revokes."""

    member_id: str
    offer_id: str
    offer: PersonalOffer | None


@dataclass(frozen=True, slots=True)
class CardChange:
    """One card of a member switched on (given, or unblocked) or off (blocked); the member's
    other cards stay as they are. Not a row of a file: the single-member API (spec §18)."""

    member_id: str
    card_number: str
    active: bool


AttributeRecord = MemberProfile | FavoriteCategories | PersonalOfferGrant | CardChange
