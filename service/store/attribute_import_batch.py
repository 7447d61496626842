"""Applying one batch of an attribute import inside the caller's transaction.

Each row is validated fully - by its builder when it was read, then against the store's state
(service.store.attribute_import_state) - before anything of it is written; a rejected row
changes nothing. Then the batch's net changes are written with a few bulk statements per
table (INSERT ... ON CONFLICT as one driver-level executemany, see attribute_import_sql; no
ORM objects, no per-row SELECTs), with its outbox events and one change-feed row per changed
member. The caller commits.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.engine.model import Member
from service.errors import InvalidArgument
from service.imports.records import ParsedRow, RowError
from service.store.attribute_import_sql import BulkSql
from service.store.attribute_import_state import BatchState, CategoryTerms, PersonalOfferState
from service.store.feed import EntityKind
from service.store.member_documents import lock_members, patch_documents
from service.store.models import (
    CardRow,
    ChangeFeedRow,
    FavoriteCategoryAttributeRow,
    FavoriteCategoryChoiceRow,
    MemberRow,
    OutboxRow,
    PersonalOfferRow,
)
from service.store.outbox import EventType
from service.store.sql import table_of


@dataclass(frozen=True, slots=True)
class BatchApplied:
    """What a batch did: rows applied, rows rejected (in line order), members and cards whose
    cached state is now stale, events written."""

    applied: int
    errors: tuple[RowError, ...]
    member_ids: tuple[str, ...]
    card_numbers: tuple[str, ...]
    events: int


def apply_batch(
    session: Session, rows: Sequence[ParsedRow], *, import_id: str, now: datetime
) -> BatchApplied:
    errors = [row.error for row in rows if row.error is not None]
    valid = [row for row in rows if row.record is not None]
    # Member locks before the row locks BatchState.load takes, in the order every writer of
    # member state takes them (service.store.member_documents).
    lock_members(session, [row.record.member_id for row in valid if row.record is not None])
    state = BatchState.load(session, [row.record for row in valid if row.record is not None])
    applied = 0
    for row in valid:
        assert row.record is not None
        try:
            state.apply(row.record, import_id)
        except InvalidArgument as error:
            errors.append(RowError(row.line_number, error.field, error.description))
        else:
            applied += 1
    events = write_changes(session, state, import_id=import_id, now=now)
    errors.sort(key=lambda e: e.line_number)
    return BatchApplied(
        applied=applied,
        errors=tuple(errors),
        member_ids=tuple(state.touched_members),
        card_numbers=tuple(state.changed_cards),
        events=events,
    )


def write_changes(session: Session, state: BatchState, *, import_id: str, now: datetime) -> int:
    """Write what the state says changed; returns the number of outbox events."""
    sql = BulkSql(session)
    stamp = sql.time(now)
    _write_profiles(sql, state, stamp)
    _write_cards(sql, state, stamp)
    _write_categories(sql, state, import_id, stamp)
    _write_personal_offers(sql, state, import_id, stamp)
    events = _write_events(sql, state, stamp)
    feed = [(str(EntityKind.MEMBER), member_id, stamp) for member_id in state.touched_members]
    sql.insert(CHANGE_FEED, ("entity_kind", "entity_key", "created_at"), feed)
    _write_documents(session, state, now)
    return events


MEMBERS = table_of(MemberRow).name
CARDS = table_of(CardRow).name
ATTRIBUTES = table_of(FavoriteCategoryAttributeRow).name
CHOICES = table_of(FavoriteCategoryChoiceRow).name
PERSONAL_OFFERS = table_of(PersonalOfferRow).name
OUTBOX = table_of(OutboxRow).name
CHANGE_FEED = table_of(ChangeFeedRow).name

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
OUTBOX_COLUMNS = ("member_id", "event_type", "payload", "created_at")


def _name(value: enum.Enum | None) -> str | None:
    return None if value is None else value.name


def _write_profiles(sql: BulkSql, state: BatchState, stamp: Any) -> None:
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
        for p in state.profiles.values()
    ]
    sql.upsert(MEMBERS, MEMBER_COLUMNS, ("id",), rows, keep=("created_at",))


def _write_cards(sql: BulkSql, state: BatchState, stamp: Any) -> None:
    rows = [
        (number, state.card_owner[number], state.card_active[number], stamp)
        for number in state.changed_cards
    ]
    sql.upsert(CARDS, CARD_COLUMNS, ("card_number",), rows, keep=("created_at",))


def _write_categories(sql: BulkSql, state: BatchState, import_id: str, stamp: Any) -> None:
    rows: list[tuple[Any, ...]] = []
    dropped: list[tuple[str, str, str]] = []
    for key in state.changed_categories:
        current = state.categories[key]
        t = current.terms
        assert t is not None
        member_id, offer_id = key
        rows.append(
            (
                member_id,
                offer_id,
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
        )
        for group_id in state.stored_choices.get(key, frozenset()) - current.chosen:
            dropped.append((member_id, offer_id, group_id))
    sql.upsert(
        ATTRIBUTES,
        ATTRIBUTE_COLUMNS,
        ("member_id", "offer_id"),
        rows,
        keep=("last_change_at",),
        bump="version",
    )
    sql.delete(CHOICES, ("member_id", "offer_id", "group_id"), dropped)


def _write_personal_offers(sql: BulkSql, state: BatchState, import_id: str, stamp: Any) -> None:
    rows: list[tuple[Any, ...]] = []
    revoked: list[tuple[Any, ...]] = []
    for key in state.changed_personal:
        current = state.personal[key]
        member_id, offer_id = key
        o = current.offer
        if o is None:  # a stored offer, revoked
            revoked.append((True, import_id, stamp, member_id, offer_id))
            continue
        limit = o.usage_limit
        rows.append(
            (
                member_id,
                offer_id,
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
                current.revoked,
                import_id,
                stamp,
            )  # fmt: skip
        )
    sql.upsert(PERSONAL_OFFERS, PERSONAL_OFFER_COLUMNS, ("member_id", "offer_id"), rows)
    sql.update(
        PERSONAL_OFFERS,
        ("revoked", "import_id", "updated_at"),
        ("member_id", "offer_id"),
        revoked,
    )


def _write_documents(session: Session, state: BatchState, now: datetime) -> None:
    """The touched members' documents: each one's current document with what this batch
    wrote applied, the same as reading their rows again (the test suite checks that)."""
    categories: dict[str, list[CategoryTerms]] = defaultdict(list)
    for key in state.changed_categories:
        categories[key[0]].append(state.categories[key])
    personal: dict[str, list[tuple[str, PersonalOfferState]]] = defaultdict(list)
    for key in state.changed_personal:
        personal[key[0]].append((key[1], state.personal[key]))

    def patch(member: Member) -> Member:
        profile = state.profiles.get(member.id)
        if profile is not None:
            member = replace(
                member,
                active=profile.active,
                birth_date=profile.birth_date,
                gender=profile.gender,
                segment_tags=profile.segment_tags,
            )
        if member.id in categories:
            terms = {t.offer_id: t for t in member.favorite_categories}
            for current in categories[member.id]:
                assert current.terms is not None
                terms[current.terms.offer_id] = replace(
                    current.terms, chosen_group_ids=current.chosen
                )
            member = replace(member, favorite_categories=tuple(terms[o] for o in sorted(terms)))
        if member.id in personal:
            offers = {o.offer_id: o for o in member.personal_offers}
            for offer_id, grant in personal[member.id]:
                if grant.offer is None or grant.revoked:
                    offers.pop(offer_id, None)
                else:
                    offers[offer_id] = grant.offer
            member = replace(member, personal_offers=tuple(offers[o] for o in sorted(offers)))
        return member

    # apply_batch locked the members that existed; the ones it created are its own rows.
    patch_documents(
        session,
        state.touched_members,
        patch,
        new_members=state.created_members,
        now=now,
        locked=True,
    )


def _write_events(sql: BulkSql, state: BatchState, stamp: Any) -> int:
    rows = [
        (event.member_id, str(event.event_type), sql.json(event.payload), stamp)
        for event in state.events
        if not _revoked_since(state, event.member_id, event.event_type, event.payload)
    ]
    sql.insert(OUTBOX, OUTBOX_COLUMNS, rows)
    return len(rows)


def _revoked_since(
    state: BatchState, member_id: str, event_type: EventType, payload: dict[str, Any]
) -> bool:
    """A new personalized offer revoked later in the same batch is not announced."""
    if event_type is not EventType.NEW_PERSONAL_OFFER:
        return False
    current = state.personal.get((member_id, payload["offer_id"]))
    return current is not None and current.revoked
