"""The rules of one batch of an attribute import (spec §7.2, 7.3): records applied in order to
what the store holds, in memory, before anything is written.

`Batch(stored, import_id)` starts from what service.store.attributes_repo read for the batch;
`apply` takes the batch's records in order and raises InvalidArgument for a record that the
store makes invalid (an unknown member, a card of another member) before changing anything
of it. Then the batch says what to write (`writes`), which members changed and how their
documents change (`touched_members`, `created_members`, `document_patch`), and what they should hear
(`events`).

Rules:
- a profile replaces the member's profile; a non-empty card list becomes the member's active
  cards (cards listed before and not now are blocked, not deleted); a card that belongs to
  another member rejects the row;
- favorite categories replace the member's terms for that offer; earlier choices still
  offered are kept, trimmed to max_count (engine.selection.carry_over_choice); with
  acceptance on and nothing chosen, the member hears CATEGORIES_TO_CHOOSE when the terms are
  new, newly need acceptance, or offer other groups than before;
- a personalized offer upserts by (member, offer id); it is NEW_PERSONAL_OFFER when the
  member did not have it (or had it revoked); a revocation of an offer the member does not
  have changes nothing; an offer granted and revoked within one batch is not announced;
- favorite categories and personalized offers need the member to exist (in the store, or
  created by an earlier row).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from service.engine.attributes import (
    AttributeRecord,
    CardChange,
    FavoriteCategories,
    MemberProfile,
    PersonalOfferGrant,
)
from service.engine.model import FavoriteCategoryTerms, Member, PersonalOffer
from service.engine.selection import carry_over_choice
from service.errors import InvalidArgument
from service.imports.records import quoted
from service.store.attributes_repo import AttributeWrites, Key, StoredAttributes
from service.store.outbox import EventType

Event = tuple[str, EventType, dict[str, Any]]  # (member id, type, payload)


@dataclass(slots=True)
class _Terms:
    """A member's terms for one offer as the batch goes: offered, acceptance, chosen."""

    group_ids: tuple[str, ...]
    acceptance_required: bool
    chosen: frozenset[str]
    terms: FavoriteCategoryTerms | None = None  # set when this batch writes new terms


@dataclass(slots=True)
class _Grant:
    revoked: bool
    offer: PersonalOffer | None = None  # set when this batch writes the offer


def wanted(records: Sequence[AttributeRecord]) -> dict[str, Any]:
    """What of the store a batch of these records reads (service.store.attributes_repo)."""
    profiles = [r for r in records if isinstance(r, MemberProfile)]
    changes = [r for r in records if isinstance(r, CardChange)]
    return {
        "member_ids": list(dict.fromkeys(r.member_id for r in records)),
        "card_numbers": list(
            dict.fromkeys(
                [*(c for p in profiles for c in p.card_numbers), *(c.card_number for c in changes)]
            )
        ),
        # a member's other cards matter only to a profile that lists cards
        "card_owners": list(dict.fromkeys(p.member_id for p in profiles if p.card_numbers)),
        "category_keys": {
            (r.member_id, r.terms.offer_id) for r in records if isinstance(r, FavoriteCategories)
        },
        "personal_keys": {
            (r.member_id, r.offer_id) for r in records if isinstance(r, PersonalOfferGrant)
        },
    }


class Batch:
    def __init__(self, stored: StoredAttributes, import_id: str) -> None:
        self.import_id = import_id
        self.members = set(stored.members)
        self._stored_members = frozenset(stored.members)
        self._card_owner = {number: owner for number, (owner, _a) in stored.cards.items()}
        self._card_active = {number: active for number, (_o, active) in stored.cards.items()}
        self._cards_of: dict[str, set[str]] = defaultdict(set)
        for number, (owner, _active) in stored.cards.items():
            self._cards_of[owner].add(number)
        self._categories = {
            key: _Terms(t.group_ids, t.acceptance_required, t.chosen)
            for key, t in stored.categories.items()
        }
        self._stored_choices = {key: t.chosen for key, t in stored.categories.items()}
        self._personal = {key: _Grant(revoked) for key, revoked in stored.personal.items()}
        # what the batch changed, in first-change order
        self._profiles: dict[str, MemberProfile] = {}
        self._changed_cards: dict[str, None] = {}
        self._changed_categories: dict[Key, None] = {}
        self._changed_personal: dict[Key, None] = {}
        self._touched: dict[str, None] = {}
        self._events: list[Event] = []

    # --- applying ---------------------------------------------------------------------------

    def apply(self, record: AttributeRecord) -> None:
        """Change the state by one record; InvalidArgument (and no change) if it cannot be."""
        if isinstance(record, MemberProfile):
            self._apply_profile(record)
        elif isinstance(record, CardChange):
            self._require_member(record.member_id)
            self._apply_card_change(record)
        elif isinstance(record, FavoriteCategories):
            self._require_member(record.member_id)
            self._apply_categories(record)
        else:
            self._require_member(record.member_id)
            self._apply_personal_offer(record)
        self._touched[record.member_id] = None

    def _require_member(self, member_id: str) -> None:
        if member_id not in self.members:
            raise InvalidArgument(
                "member_id",
                f"unknown member {quoted(member_id)}: import a member_profile row first",
            )

    def _apply_profile(self, profile: MemberProfile) -> None:
        member_id = profile.member_id
        for index, number in enumerate(profile.card_numbers):
            owner = self._card_owner.get(number)
            if owner is not None and owner != member_id:
                raise InvalidArgument(
                    f"card_numbers[{index}]", f"card {number} belongs to member {owner!r}"
                )
        self.members.add(member_id)
        self._profiles[member_id] = profile
        if not profile.card_numbers:
            return
        own = self._cards_of[member_id]
        for number in own - set(profile.card_numbers):
            self._set_card(number, member_id, active=False)
        for number in profile.card_numbers:
            self._set_card(number, member_id, active=True)
            own.add(number)

    def _apply_card_change(self, change: CardChange) -> None:
        """A card given to (or blocked for) one member: another member's card is refused as
        in a profile; only the member's own card can be blocked."""
        number, member_id = change.card_number, change.member_id
        owner = self._card_owner.get(number)
        if owner is not None and owner != member_id:
            raise InvalidArgument("card_number", f"card {number} belongs to member {quoted(owner)}")
        if owner is None and not change.active:
            raise InvalidArgument("card_number", f"member {quoted(member_id)} has no card {number}")
        self._set_card(number, member_id, active=change.active)
        self._cards_of[member_id].add(number)

    def _set_card(self, number: str, member_id: str, *, active: bool) -> None:
        if self._card_owner.get(number) == member_id and self._card_active.get(number) == active:
            return
        self._card_owner[number] = member_id
        self._card_active[number] = active
        self._changed_cards[number] = None

    def _apply_categories(self, row: FavoriteCategories) -> None:
        terms = row.terms
        key = (row.member_id, terms.offer_id)
        before = self._categories.get(key)
        chosen = (
            carry_over_choice(before.chosen, terms.group_ids, terms.max_count)
            if before is not None
            else frozenset()
        )
        self._categories[key] = _Terms(terms.group_ids, terms.acceptance_required, chosen, terms)
        self._changed_categories[key] = None
        newly_offered = (
            before is None or not before.acceptance_required or before.group_ids != terms.group_ids
        )
        if terms.acceptance_required and not chosen and newly_offered:
            payload = {
                "offer_id": terms.offer_id,
                "name": terms.name,
                "group_ids": list(terms.group_ids),
                "max_count": terms.max_count,
                "import_id": self.import_id,
            }
            self._events.append((row.member_id, EventType.CATEGORIES_TO_CHOOSE, payload))

    def _apply_personal_offer(self, row: PersonalOfferGrant) -> None:
        key = (row.member_id, row.offer_id)
        before = self._personal.get(key)
        if row.offer is None:  # revoke
            if before is None or before.revoked:
                return
            before.revoked = True
            self._changed_personal[key] = None
            return
        self._personal[key] = _Grant(False, row.offer)
        self._changed_personal[key] = None
        if before is None or before.revoked:
            payload = {
                "offer_id": row.offer_id,
                "name": row.offer.name,
                "import_id": self.import_id,
            }
            self._events.append((row.member_id, EventType.NEW_PERSONAL_OFFER, payload))

    # --- what the batch did -----------------------------------------------------------------

    @property
    def touched_members(self) -> list[str]:
        """Members a record applied to, in first-change order: their state is now stale."""
        return list(self._touched)

    @property
    def created_members(self) -> set[str]:
        """Members this batch created (by a profile row)."""
        return self.members - self._stored_members

    @property
    def changed_cards(self) -> list[str]:
        return list(self._changed_cards)

    def writes(self) -> AttributeWrites:
        categories, dropped = [], []
        for key in self._changed_categories:
            current = self._categories[key]
            assert current.terms is not None
            categories.append((key[0], current.terms))
            for group_id in self._stored_choices.get(key, frozenset()) - current.chosen:
                dropped.append((key[0], key[1], group_id))
        personal, revoked = [], []
        for key in self._changed_personal:
            grant = self._personal[key]
            if grant.offer is None:  # a stored offer, revoked
                revoked.append(key)
            else:
                personal.append((key[0], grant.offer, grant.revoked))
        return AttributeWrites(
            profiles=list(self._profiles.values()),
            cards=[(n, self._card_owner[n], self._card_active[n]) for n in self._changed_cards],
            categories=categories,
            dropped_choices=dropped,
            personal_offers=personal,
            revoked=revoked,
        )

    def events(self) -> list[Event]:
        """What the members hear; a new personalized offer revoked later in the same batch is
        not announced."""
        return [
            event
            for event in self._events
            if not (
                event[1] is EventType.NEW_PERSONAL_OFFER
                and self._personal[(event[0], event[2]["offer_id"])].revoked
            )
        ]

    def document_patch(self) -> Callable[[Member], Member]:
        """A touched member's document with what this batch wrote applied: the same as
        reading their rows again (the test suite checks that)."""
        categories: dict[str, list[_Terms]] = defaultdict(list)
        for key in self._changed_categories:
            categories[key[0]].append(self._categories[key])
        personal: dict[str, list[tuple[str, _Grant]]] = defaultdict(list)
        for key in self._changed_personal:
            personal[key[0]].append((key[1], self._personal[key]))
        profiles = self._profiles

        def patch(member: Member) -> Member:
            profile = profiles.get(member.id)
            if profile is not None:
                member = replace(
                    member,
                    active=profile.active,
                    birth_date=profile.birth_date,
                    gender=profile.gender,
                    segment_tags=profile.segment_tags,
                )
            if member.id in categories:
                member = _with_terms(member, categories[member.id])
            if member.id in personal:
                member = _with_offers(member, personal[member.id])
            return member

        return patch


def _with_terms(member: Member, changed: list[_Terms]) -> Member:
    terms = {t.offer_id: t for t in member.favorite_categories}
    for current in changed:
        assert current.terms is not None
        terms[current.terms.offer_id] = replace(current.terms, chosen_group_ids=current.chosen)
    return replace(member, favorite_categories=tuple(terms[o] for o in sorted(terms)))


def _with_offers(member: Member, changed: list[tuple[str, _Grant]]) -> Member:
    offers = {o.offer_id: o for o in member.personal_offers}
    for offer_id, grant in changed:
        if grant.offer is None or grant.revoked:
            offers.pop(offer_id, None)
        else:
            offers[offer_id] = grant.offer
    return replace(member, personal_offers=tuple(offers[o] for o in sorted(offers)))
