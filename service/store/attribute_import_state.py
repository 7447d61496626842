"""What one batch of an attribute import needs to know of the store, and the row-by-row rules
that change it (SPEC 7.2, 7.3).

`BatchState.load` reads, for the members, cards and offers a batch names, a few columns of
each table in one query per table (in chunks of ids): which members exist, who owns the
cards, the current favorite-category terms and choices, and the personalized offers. Then
`apply` takes the batch's records in order and changes that state in memory, raising
InvalidArgument for a row that the store makes invalid (an unknown member, a card of another
member) before changing anything of it. What is left to write is read off the state by
service.store.attribute_import_batch.

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
  have changes nothing;
- favorite categories and personalized offers need the member to exist (in the store, or
  created by an earlier row).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service.engine.model import FavoriteCategoryTerms, PersonalOffer
from service.engine.selection import carry_over_choice
from service.errors import InvalidArgument
from service.imports.records import (
    AttributeRecord,
    FavoriteCategories,
    MemberProfile,
    PersonalOfferGrant,
    quoted,
)
from service.store.attribute_import_sql import IDS_PER_READ, in_ids, is_postgres
from service.store.models import (
    CardRow,
    FavoriteCategoryAttributeRow,
    FavoriteCategoryChoiceRow,
    MemberRow,
    PersonalOfferRow,
)
from service.store.outbox import EventType
from service.store.sql import chunks, table_of

Key = tuple[str, str]  # (member id, offer id)


@dataclass(slots=True)
class CategoryTerms:
    """A member's current terms for one favorite-categories offer, as far as a re-import
    cares: what is offered, whether acceptance is needed, what is chosen."""

    group_ids: tuple[str, ...]
    acceptance_required: bool
    chosen: frozenset[str]
    terms: FavoriteCategoryTerms | None = None  # set when this batch writes new terms


@dataclass(slots=True)
class PersonalOfferState:
    revoked: bool
    offer: PersonalOffer | None = None  # set when this batch writes the offer
    stored: bool = True  # a row exists in the store


@dataclass(frozen=True, slots=True)
class Event:
    member_id: str
    event_type: EventType
    payload: dict[str, Any]


@dataclass
class BatchState:
    postgres: bool = False
    members: set[str] = field(default_factory=set)
    stored_members: frozenset[str] = frozenset()  # the members that existed before the batch
    card_owner: dict[str, str] = field(default_factory=dict)
    card_active: dict[str, bool] = field(default_factory=dict)
    cards_of: dict[str, set[str]] = field(default_factory=dict)
    categories: dict[Key, CategoryTerms] = field(default_factory=dict)
    stored_choices: dict[Key, frozenset[str]] = field(default_factory=dict)
    personal: dict[Key, PersonalOfferState] = field(default_factory=dict)
    # what the batch changed, in first-change order
    profiles: dict[str, MemberProfile] = field(default_factory=dict)
    changed_cards: dict[str, None] = field(default_factory=dict)
    changed_categories: dict[Key, None] = field(default_factory=dict)
    changed_personal: dict[Key, None] = field(default_factory=dict)
    touched_members: dict[str, None] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def created_members(self) -> set[str]:
        """Members this batch created (by a profile row)."""
        return self.members - self.stored_members

    # --- loading ----------------------------------------------------------------------------

    def _parts(self, ids: Sequence[str]) -> Iterable[Sequence[str]]:
        """PostgreSQL takes every id as one array parameter; SQLite an IN list per chunk."""
        return [ids] if self.postgres else chunks(ids, IDS_PER_READ)

    def _in(self, column: Any, ids: Sequence[str]) -> Any:
        return in_ids(column, ids, self.postgres)

    @classmethod
    def load(cls, session: Session, batch: Sequence[AttributeRecord]) -> BatchState:
        """The store's state for these records: one query per table and chunk of ids."""
        state = cls(postgres=is_postgres(session))
        if state.postgres:
            # Every read below is a lookup by key. Tables that grow during an import have stale
            # planner statistics, and PostgreSQL then scans them whole for `= ANY(ids)`: the
            # import would slow down as it goes. For this batch's transaction only, use indexes.
            session.execute(text("SET LOCAL enable_seqscan = off"))
        member_ids = list(dict.fromkeys(r.member_id for r in batch))
        members = table_of(MemberRow)
        for part in state._parts(member_ids):
            query = select(members.c.id).where(state._in(members.c.id, part))
            state.members.update(session.scalars(query))
        state.stored_members = frozenset(state.members)
        state._load_cards(session, [r for r in batch if isinstance(r, MemberProfile)])
        state._load_categories(session, [r for r in batch if isinstance(r, FavoriteCategories)])
        state._load_personal(session, [r for r in batch if isinstance(r, PersonalOfferGrant)])
        return state

    def _load_cards(self, session: Session, profiles: Sequence[MemberProfile]) -> None:
        if not profiles:
            return
        cards = table_of(CardRow)
        columns = (cards.c.card_number, cards.c.member_id, cards.c.active)
        numbers = list(dict.fromkeys(c for p in profiles for c in p.card_numbers))
        # a member's other cards matter only to a profile that lists cards
        owners = list(dict.fromkeys(p.member_id for p in profiles if p.card_numbers))
        rows: list[Any] = []
        for part in self._parts(numbers):
            query = select(*columns).where(self._in(cards.c.card_number, part))
            rows.extend(session.execute(query))
        for part in self._parts(owners):
            query = select(*columns).where(self._in(cards.c.member_id, part))
            rows.extend(session.execute(query))
        for owner in owners:
            self.cards_of.setdefault(owner, set())
        for number, member_id, active in rows:
            self.card_owner[number] = member_id
            self.card_active[number] = active
            self.cards_of.setdefault(member_id, set()).add(number)

    def _load_categories(self, session: Session, rows: Sequence[FavoriteCategories]) -> None:
        if not rows:
            return
        attributes = table_of(FavoriteCategoryAttributeRow)
        choices = table_of(FavoriteCategoryChoiceRow)
        offer_ids = list(dict.fromkeys(r.terms.offer_id for r in rows))
        wanted = {(r.member_id, r.terms.offer_id) for r in rows}
        chosen: dict[Key, set[str]] = {}
        for part in self._parts(_member_ids(rows)):
            query = select(
                attributes.c.member_id,
                attributes.c.offer_id,
                attributes.c.group_ids,
                attributes.c.acceptance_required,
            ).where(
                self._in(attributes.c.member_id, part), self._in(attributes.c.offer_id, offer_ids)
            )
            if self.postgres:  # member choices wait for this batch (they update the attribute row)
                query = query.with_for_update()
            for member_id, offer_id, group_ids, acceptance in session.execute(query):
                if (member_id, offer_id) in wanted:
                    self.categories[(member_id, offer_id)] = CategoryTerms(
                        tuple(group_ids), acceptance, frozenset()
                    )
            query = select(choices.c.member_id, choices.c.offer_id, choices.c.group_id).where(
                self._in(choices.c.member_id, part), self._in(choices.c.offer_id, offer_ids)
            )
            for choice in session.execute(query):
                chosen.setdefault((choice.member_id, choice.offer_id), set()).add(choice.group_id)
        for key, groups in chosen.items():
            terms = self.categories.get(key)
            if terms is not None:
                terms.chosen = frozenset(groups)
                self.stored_choices[key] = terms.chosen

    def _load_personal(self, session: Session, rows: Sequence[PersonalOfferGrant]) -> None:
        if not rows:
            return
        offers = table_of(PersonalOfferRow)
        offer_ids = list(dict.fromkeys(r.offer_id for r in rows))
        wanted = {(r.member_id, r.offer_id) for r in rows}
        for part in self._parts(_member_ids(rows)):
            query = select(offers.c.member_id, offers.c.offer_id, offers.c.revoked).where(
                self._in(offers.c.member_id, part), self._in(offers.c.offer_id, offer_ids)
            )
            for member_id, offer_id, revoked in session.execute(query):
                if (member_id, offer_id) in wanted:
                    self.personal[(member_id, offer_id)] = PersonalOfferState(revoked)

    # --- applying ---------------------------------------------------------------------------

    def apply(self, record: AttributeRecord, import_id: str) -> None:
        """Change the state by one record; InvalidArgument (and no change) if it cannot be."""
        if isinstance(record, MemberProfile):
            self._apply_profile(record)
        elif isinstance(record, FavoriteCategories):
            self._require_member(record.member_id)
            self._apply_categories(record, import_id)
        else:
            self._require_member(record.member_id)
            self._apply_personal_offer(record, import_id)
        self.touched_members[record.member_id] = None

    def _require_member(self, member_id: str) -> None:
        if member_id not in self.members:
            raise InvalidArgument(
                "member_id",
                f"unknown member {quoted(member_id)}: import a member_profile row first",
            )

    def _apply_profile(self, profile: MemberProfile) -> None:
        member_id = profile.member_id
        for index, number in enumerate(profile.card_numbers):
            owner = self.card_owner.get(number)
            if owner is not None and owner != member_id:
                raise InvalidArgument(
                    f"card_numbers[{index}]", f"card {number} belongs to member {owner!r}"
                )
        self.members.add(member_id)
        self.profiles[member_id] = profile
        if not profile.card_numbers:
            return
        own = self.cards_of.setdefault(member_id, set())
        listed = set(profile.card_numbers)
        for number in own - listed:
            self._set_card(number, member_id, active=False)
        for number in profile.card_numbers:
            self._set_card(number, member_id, active=True)
            own.add(number)

    def _set_card(self, number: str, member_id: str, *, active: bool) -> None:
        if self.card_owner.get(number) == member_id and self.card_active.get(number) == active:
            return
        self.card_owner[number] = member_id
        self.card_active[number] = active
        self.changed_cards[number] = None

    def _apply_categories(self, row: FavoriteCategories, import_id: str) -> None:
        key = (row.member_id, row.terms.offer_id)
        terms = row.terms
        before = self.categories.get(key)
        chosen = (
            carry_over_choice(before.chosen, terms.group_ids, terms.max_count)
            if before is not None
            else frozenset()
        )
        self.categories[key] = CategoryTerms(
            terms.group_ids, terms.acceptance_required, chosen, terms
        )
        self.changed_categories[key] = None
        newly_offered = (
            before is None or not before.acceptance_required or before.group_ids != terms.group_ids
        )
        if terms.acceptance_required and not chosen and newly_offered:
            payload = {
                "offer_id": terms.offer_id,
                "name": terms.name,
                "group_ids": list(terms.group_ids),
                "max_count": terms.max_count,
                "import_id": import_id,
            }
            self.events.append(Event(row.member_id, EventType.CATEGORIES_TO_CHOOSE, payload))

    def _apply_personal_offer(self, row: PersonalOfferGrant, import_id: str) -> None:
        key = (row.member_id, row.offer_id)
        before = self.personal.get(key)
        if row.offer is None:  # revoke
            if before is None or before.revoked:
                return
            before.revoked = True
            self.changed_personal[key] = None
            return
        stored = before.stored if before is not None else False
        self.personal[key] = PersonalOfferState(False, row.offer, stored)
        self.changed_personal[key] = None
        if before is None or before.revoked:
            payload = {"offer_id": row.offer_id, "name": row.offer.name, "import_id": import_id}
            self.events.append(Event(row.member_id, EventType.NEW_PERSONAL_OFFER, payload))


def _member_ids(rows: Iterable[FavoriteCategories | PersonalOfferGrant]) -> list[str]:
    return list(dict.fromkeys(r.member_id for r in rows))
