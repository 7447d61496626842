"""What one batch of an attribute import reads of the store and writes to it.

`load_attributes` reads, for the members, cards and offers a batch names, a few columns of
each table in one query per table (in chunks of ids): which members exist, who owns the cards,
the current favorite-category terms and choices, and the personalized offers. What the batch
decides from that (service.imports.batch) comes back as `AttributeWrites`, which
`write_attributes` writes with a few bulk statements per table: INSERT ... ON CONFLICT as one
driver-level executemany (service.store.bulk_sql), no ORM objects, no per-row SELECTs.

Member documents, the change feed and the outbox are not written here: the unit of work the
batch runs in writes them (service.app.unit_of_work). The caller commits.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service.engine.attributes import MemberProfile
from service.engine.model import FavoriteCategoryTerms, PersonalOffer
from service.store.bulk_sql import IDS_PER_READ, BulkSql, in_ids, is_postgres
from service.store.models import (
    CardRow,
    FavoriteCategoryAttributeRow,
    FavoriteCategoryChoiceRow,
    MemberRow,
    PersonalOfferRow,
)
from service.store.sql import chunks, table_of

Key = tuple[str, str]  # (member id, offer id)


@dataclass(frozen=True, slots=True)
class StoredTerms:
    """A member's stored terms for one favorite-categories offer, as far as a re-import
    cares: what is offered, whether acceptance is needed, what is chosen."""

    group_ids: tuple[str, ...]
    acceptance_required: bool
    chosen: frozenset[str] = frozenset()


@dataclass(slots=True)
class StoredAttributes:
    members: set[str] = field(default_factory=set)  # of the members asked for, those stored
    cards: dict[str, tuple[str, bool]] = field(default_factory=dict)  # number -> owner, active
    categories: dict[Key, StoredTerms] = field(default_factory=dict)
    personal: dict[Key, bool] = field(default_factory=dict)  # -> revoked


@dataclass(frozen=True, slots=True)
class AttributeWrites:
    """A batch's net changes, each key once."""

    profiles: Sequence[MemberProfile] = ()
    cards: Sequence[tuple[str, str, bool]] = ()  # (number, member id, active)
    categories: Sequence[tuple[str, FavoriteCategoryTerms]] = ()  # (member id, new terms)
    dropped_choices: Sequence[tuple[str, str, str]] = ()  # (member id, offer id, group id)
    personal_offers: Sequence[tuple[str, PersonalOffer, bool]] = ()  # (member id, offer, revoked)
    revoked: Sequence[Key] = ()  # stored personalized offers now revoked


# --- reading ------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = is_postgres(session)

    def parts(self, ids: Sequence[str]) -> Iterable[Sequence[str]]:
        """PostgreSQL takes every id as one array parameter; SQLite an IN list per chunk."""
        return [ids] if self.postgres else chunks(ids, IDS_PER_READ)

    def among(self, column: Any, ids: Sequence[str]) -> Any:
        return in_ids(column, ids, self.postgres)


def load_attributes(
    session: Session,
    *,
    member_ids: Collection[str],
    card_numbers: Collection[str] = (),
    card_owners: Collection[str] = (),
    category_keys: Collection[Key] = (),
    personal_keys: Collection[Key] = (),
) -> StoredAttributes:
    """What the store holds of these: the members that exist; the cards with these numbers
    and every card of `card_owners`; the stored terms and choices of these (member, offer)
    keys (locked on PostgreSQL: a member's choice waits for the batch); the personalized
    offers of these keys. One query per table and chunk of ids."""
    reader = _Reader(session)
    if reader.postgres:
        # Every read below is a lookup by key. Tables that grow during an import have stale
        # planner statistics, and PostgreSQL then scans them whole for `= ANY(ids)`: the
        # import would slow down as it goes. For this batch's transaction only, use indexes.
        session.execute(text("SET LOCAL enable_seqscan = off"))
    stored = StoredAttributes()
    members = table_of(MemberRow)
    for part in reader.parts(list(member_ids)):
        stored.members.update(
            session.scalars(select(members.c.id).where(reader.among(members.c.id, part)))
        )
    _load_cards(reader, stored, list(card_numbers), list(card_owners))
    _load_categories(reader, stored, category_keys)
    _load_personal(reader, stored, personal_keys)
    return stored


def _load_cards(
    reader: _Reader, stored: StoredAttributes, numbers: list[str], owners: list[str]
) -> None:
    cards = table_of(CardRow)
    columns = (cards.c.card_number, cards.c.member_id, cards.c.active)
    for part in reader.parts(numbers):
        query = select(*columns).where(reader.among(cards.c.card_number, part))
        stored.cards.update((n, (m, a)) for n, m, a in reader.session.execute(query))
    for part in reader.parts(owners):
        query = select(*columns).where(reader.among(cards.c.member_id, part))
        stored.cards.update((n, (m, a)) for n, m, a in reader.session.execute(query))


def _load_categories(reader: _Reader, stored: StoredAttributes, keys: Collection[Key]) -> None:
    if not keys:
        return
    attributes = table_of(FavoriteCategoryAttributeRow)
    choices = table_of(FavoriteCategoryChoiceRow)
    offer_ids = list(dict.fromkeys(offer_id for _m, offer_id in keys))
    chosen: dict[Key, set[str]] = {}
    for part in reader.parts(list(dict.fromkeys(member_id for member_id, _o in keys))):
        query = select(
            attributes.c.member_id,
            attributes.c.offer_id,
            attributes.c.group_ids,
            attributes.c.acceptance_required,
        ).where(
            reader.among(attributes.c.member_id, part),
            reader.among(attributes.c.offer_id, offer_ids),
        )
        if reader.postgres:  # member choices wait for this batch (they update the attribute row)
            query = query.with_for_update()
        for member_id, offer_id, group_ids, acceptance in reader.session.execute(query):
            if (member_id, offer_id) in keys:
                stored.categories[(member_id, offer_id)] = StoredTerms(tuple(group_ids), acceptance)
        query = select(choices.c.member_id, choices.c.offer_id, choices.c.group_id).where(
            reader.among(choices.c.member_id, part), reader.among(choices.c.offer_id, offer_ids)
        )
        for choice in reader.session.execute(query):
            chosen.setdefault((choice.member_id, choice.offer_id), set()).add(choice.group_id)
    for key, groups in chosen.items():
        terms = stored.categories.get(key)
        if terms is not None:
            stored.categories[key] = StoredTerms(
                terms.group_ids, terms.acceptance_required, frozenset(groups)
            )


def _load_personal(reader: _Reader, stored: StoredAttributes, keys: Collection[Key]) -> None:
    if not keys:
        return
    offers = table_of(PersonalOfferRow)
    offer_ids = list(dict.fromkeys(offer_id for _m, offer_id in keys))
    for part in reader.parts(list(dict.fromkeys(member_id for member_id, _o in keys))):
        query = select(offers.c.member_id, offers.c.offer_id, offers.c.revoked).where(
            reader.among(offers.c.member_id, part), reader.among(offers.c.offer_id, offer_ids)
        )
        for member_id, offer_id, revoked in reader.session.execute(query):
            if (member_id, offer_id) in keys:
                stored.personal[(member_id, offer_id)] = revoked


# --- writing ------------------------------------------------------------------------------------

MEMBERS = table_of(MemberRow).name
CARDS = table_of(CardRow).name
ATTRIBUTES = table_of(FavoriteCategoryAttributeRow).name
CHOICES = table_of(FavoriteCategoryChoiceRow).name
PERSONAL_OFFERS = table_of(PersonalOfferRow).name

MEMBER_COLUMNS = (
    "id",
    "active",
    "birth_date",
    "gender",
    "segment_tags",
    "created_at",
    "updated_at",
)
CARD_COLUMNS = ("card_number", "member_id", "active", "created_at")
ATTRIBUTE_COLUMNS = (
    "member_id", "offer_id", "name", "group_ids", "benefit_kind", "benefit_value",
    "valid_from", "valid_to", "max_count", "acceptance_required", "frequency", "every_n_days",
    "priority", "stacking", "import_id", "last_change_at", "version", "updated_at",
)  # fmt: skip
PERSONAL_OFFER_COLUMNS = (
    "member_id", "offer_id", "name", "skus", "group_id", "benefit_kind", "benefit_value",
    "valid_from", "valid_to", "limit_unit", "limit_value", "limit_period", "priority",
    "stacking", "revoked", "import_id", "updated_at",
)  # fmt: skip


def write_attributes(
    session: Session, writes: AttributeWrites, *, import_id: str, now: datetime
) -> None:
    """Write a batch's changes: profiles, cards, favorite-category terms (a re-import keeps
    the member's last change and bumps the terms' version), dropped choices, personalized
    offers and revocations."""
    sql = BulkSql(session)
    stamp = sql.time(now)
    _write_profiles(sql, writes.profiles, stamp)
    rows = [(number, owner, active, stamp) for number, owner, active in writes.cards]
    sql.upsert(CARDS, CARD_COLUMNS, ("card_number",), rows, keep=("created_at",))
    _write_categories(sql, writes, import_id, stamp)
    _write_personal_offers(sql, writes, import_id, stamp)


def _name(value: enum.Enum | None) -> str | None:
    return None if value is None else value.name


def _write_profiles(sql: BulkSql, profiles: Sequence[MemberProfile], stamp: Any) -> None:
    rows = [
        (
            p.member_id,
            p.active,
            sql.day(p.birth_date),
            _name(p.gender),
            sql.json_strings(sorted(p.segment_tags)),
            stamp,
            stamp,
        )
        for p in profiles
    ]
    sql.upsert(MEMBERS, MEMBER_COLUMNS, ("id",), rows, keep=("created_at",))


def _write_categories(sql: BulkSql, writes: AttributeWrites, import_id: str, stamp: Any) -> None:
    rows = [
        (
            member_id,
            t.offer_id,
            t.name,
            sql.json_strings(t.group_ids),
            t.benefit.kind.name,
            t.benefit.value,
            sql.time(t.valid_from),
            sql.time(t.valid_to),
            t.max_count,
            t.acceptance_required,
            t.frequency.name,
            t.every_n_days,
            t.priority,
            t.stacking.name,
            import_id,
            None,
            1,
            stamp,
        )  # fmt: skip
        for member_id, t in writes.categories
    ]
    sql.upsert(
        ATTRIBUTES,
        ATTRIBUTE_COLUMNS,
        ("member_id", "offer_id"),
        rows,
        keep=("last_change_at",),
        bump="version",
    )
    sql.delete(CHOICES, ("member_id", "offer_id", "group_id"), writes.dropped_choices)


def _write_personal_offers(
    sql: BulkSql, writes: AttributeWrites, import_id: str, stamp: Any
) -> None:
    rows = []
    for member_id, o, revoked in writes.personal_offers:
        limit = o.usage_limit
        rows.append(
            (
                member_id,
                o.offer_id,
                o.name,
                sql.json_strings(sorted(o.skus)),
                o.group_id,
                o.benefit.kind.name,
                o.benefit.value,
                sql.time(o.valid_from),
                sql.time(o.valid_to),
                _name(limit.unit) if limit else None,
                limit.limit if limit else None,
                _name(limit.period) if limit else None,
                o.priority,
                o.stacking.name,
                revoked,
                import_id,
                stamp,
            )  # fmt: skip
        )
    sql.upsert(PERSONAL_OFFERS, PERSONAL_OFFER_COLUMNS, ("member_id", "offer_id"), rows)
    sql.update(
        PERSONAL_OFFERS,
        ("revoked", "import_id", "updated_at"),
        ("member_id", "offer_id"),
        [(True, import_id, stamp, member_id, offer_id) for member_id, offer_id in writes.revoked],
    )
