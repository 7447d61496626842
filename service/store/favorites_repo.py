"""Favorite products in the store (spec §7.1): the rows of members' selections, slots, purchase
history months and the operator's audit trail, read and written as domain values. The rules
are the engine's (service/engine/favorites.py, selection.py); the use cases
(service/app/favorites.py, jobs.py) apply them and commit through a unit of work.

One change at a time per member and offer, on every replica: a change first claims the
member's favorite_selections row for the offer (claim_selections: inserted if absent, then
SELECT ... FOR UPDATE on PostgreSQL; on SQLite the insert, a write, takes the database write
lock) and reads the slots only then, so a second change waits for the first to commit and is
judged on what it wrote. save_selection then bumps the row's version with a conditional UPDATE
(WHERE version = seen) as a second guard. Claim first in a transaction (after the member
locks): on SQLite a write that follows reads of an older snapshot fails instead of waiting.

Slots are positions 0..N-1; an empty slot has no row. Nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, delete, insert, literal, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.engine.favorites import Slot
from service.errors import FailedPrecondition
from service.store.models import (
    AuditLogRow,
    FavoriteSelectionRow,
    FavoriteSlotRow,
    MemberRow,
    PurchaseRow,
)
from service.store.sql import chunks, insert_rows, keyset_pages, table_of, upsert

if TYPE_CHECKING:
    pass

OPERATOR_EDIT = "OPERATOR_SET_FAVORITE_PRODUCTS"  # audit_log.action
AUTOFILL_BATCH = 500  # members locked, read and written together by one auto-fill transaction

SELECTIONS = table_of(FavoriteSelectionRow)
SLOTS = table_of(FavoriteSlotRow)
HISTORY = table_of(PurchaseRow)
AUDIT = table_of(AuditLogRow)


@dataclass(frozen=True, slots=True)
class Selection:
    """A member's favorite_selections row of one offer: its version (bumped by every change)
    and the start of the member's frequency period."""

    version: int = 0
    last_change_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    actor: str
    member_id: str
    offer_id: str
    at: datetime
    skus_before: tuple[str | None, ...]
    skus_after: tuple[str | None, ...]
    comment: str


# --- reading ------------------------------------------------------------------------------------


def load_selections(
    session: Session, member_id: str, offer_ids: Sequence[str]
) -> dict[str, Selection]:
    """offer id -> the member's selection row, for the offers that have one."""
    query = select(SELECTIONS).where(
        SELECTIONS.c.member_id == member_id, SELECTIONS.c.offer_id.in_(offer_ids)
    )
    return {r.offer_id: Selection(r.version, r.last_change_at) for r in session.execute(query)}


def load_member_slots(
    session: Session, member_id: str, offer_ids: Sequence[str]
) -> dict[str, dict[int, Slot]]:
    """offer id -> position -> the member's stored slot, for these offers (one query)."""
    found: dict[str, dict[int, Slot]] = defaultdict(dict)
    query = select(SLOTS).where(SLOTS.c.member_id == member_id, SLOTS.c.offer_id.in_(offer_ids))
    for r in session.execute(query):
        found[r.offer_id][r.slot_index] = _slot(r)
    return found


def load_slots(
    session: Session, offer_id: str, member_ids: Sequence[str]
) -> dict[str, dict[int, Slot]]:
    """member id -> position -> stored slot of one offer, for many members."""
    found: dict[str, dict[int, Slot]] = defaultdict(dict)
    for part in chunks(list(member_ids)):
        query = select(SLOTS).where(SLOTS.c.offer_id == offer_id, SLOTS.c.member_id.in_(part))
        for r in session.execute(query):
            found[r.member_id][r.slot_index] = _slot(r)
    return found


def purchases_by_member(
    session: Session, member_ids: Sequence[str], month: str
) -> dict[str, list[tuple[str, int, int]]]:
    """Members' purchases of `month` still not refunded: (sku, quantity, amount) per SKU."""
    found: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for part in chunks(list(member_ids)):
        query = select(HISTORY).where(
            HISTORY.c.member_id.in_(part), HISTORY.c.month == month, HISTORY.c.quantity > 0
        )
        for r in session.execute(query):
            found[r.member_id].append((r.sku, r.quantity, r.amount))
    return found


def members_who_bought(session: Session, month: str, batch_size: int = 1000) -> Iterator[str]:
    """Every member with a purchase (quantity > 0) in `month`, in id order, read by key."""
    query = (
        select(HISTORY.c.member_id)
        .where(HISTORY.c.month == month, HISTORY.c.quantity > 0)
        .group_by(HISTORY.c.member_id)
    )
    for rows in keyset_pages(session, query, HISTORY.c.member_id, batch_size):
        yield from (r.member_id for r in rows)


def replacements_since(
    session: Session, offer_id: str, earliest: datetime, before: datetime
) -> list[tuple[str, datetime]]:
    """(member id, last change) of the members whose own replacement in the offer happened in
    [earliest, before), in member order."""
    query = (
        select(SELECTIONS.c.member_id, SELECTIONS.c.last_change_at)
        .where(
            SELECTIONS.c.offer_id == offer_id,
            SELECTIONS.c.last_change_at >= earliest,
            SELECTIONS.c.last_change_at < before,
        )
        .order_by(SELECTIONS.c.member_id)
    )
    return [(r.member_id, r.last_change_at) for r in session.execute(query)]


def list_favorite_audit(
    session: Session, member_id: str, offer_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Operator edits of the member's favorite products, newest first."""
    query = select(AUDIT).where(AUDIT.c.member_id == member_id, AUDIT.c.action == OPERATOR_EDIT)
    if offer_id:
        query = query.where(AUDIT.c.offer_id == offer_id)
    query = query.order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit)
    return [_audit_entry(r) for r in session.execute(query)]


# --- writing ------------------------------------------------------------------------------------


def claim_selections(
    session: Session, offer_id: str, member_ids: Sequence[str], *, members_only: bool = False
) -> dict[str, Selection]:
    """Take the members' selection rows of the offer for this transaction (inserting absent
    ones): the first statement is a write, so SQLite takes its write lock before any read;
    PostgreSQL locks the rows (FOR UPDATE, in member order). `members_only`: ids that are no
    members are skipped (absent from the result) instead of failing the insert."""
    ids = sorted(set(member_ids))
    if members_only:
        _claim_for_members(session, offer_id, ids)
    else:
        upsert(
            session,
            FavoriteSelectionRow,
            [
                {"member_id": m, "offer_id": offer_id, "last_change_at": None, "version": 0}
                for m in ids
            ],
            keep=["last_change_at", "version"],
        )
    query = (
        select(SELECTIONS.c.member_id, SELECTIONS.c.version, SELECTIONS.c.last_change_at)
        .where(SELECTIONS.c.offer_id == offer_id, SELECTIONS.c.member_id.in_(ids))
        .order_by(SELECTIONS.c.member_id)
        .with_for_update()
    )
    return {r.member_id: Selection(r.version, r.last_change_at) for r in session.execute(query)}


def _claim_for_members(session: Session, offer_id: str, member_ids: Sequence[str]) -> None:
    """INSERT ... SELECT of the absent selection rows of those ids that are members."""
    members = table_of(MemberRow)
    dialect = session.get_bind().dialect.name
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = select(
        members.c.id,
        literal(offer_id, SELECTIONS.c.offer_id.type),
        null(),
        literal(0, SELECTIONS.c.version.type),
    ).where(members.c.id.in_(member_ids))
    columns = ["member_id", "offer_id", "last_change_at", "version"]
    session.execute(insert_into(SELECTIONS).from_select(columns, rows).on_conflict_do_nothing())


def save_selection(
    session: Session, member_id: str, offer_id: str, seen: int, last_change_at: datetime | None
) -> None:
    """The conditional UPDATE: only from the version the change was judged on, else
    FAILED_PRECONDITION CONCURRENT_CHANGE."""
    save_version(session, SELECTIONS, member_id, offer_id, seen, last_change_at, "selection")


def save_version(
    session: Session,
    table: Table,
    member_id: str,
    offer_id: str,
    seen: int,
    last_change_at: datetime | None,
    what: str,
) -> None:
    """A member's (member_id, offer_id) row of `table` to version seen + 1 with
    `last_change_at`, only from version `seen`: the second guard of one change at a time."""
    result = session.execute(
        update(table)
        .where(
            table.c.member_id == member_id,
            table.c.offer_id == offer_id,
            table.c.version == seen,
        )
        .values(version=seen + 1, last_change_at=last_change_at)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise FailedPrecondition(
            f"the {what} was changed at the same time; try again", reason="CONCURRENT_CHANGE"
        )


def bump_versions(session: Session, offer_id: str, member_ids: Sequence[str]) -> None:
    """A new version of these members' selections (rows claimed by this transaction)."""
    for part in chunks(list(member_ids)):
        session.execute(
            update(SELECTIONS)
            .where(SELECTIONS.c.offer_id == offer_id, SELECTIONS.c.member_id.in_(part))
            .values(version=SELECTIONS.c.version + 1)
        )


def write_slots(
    session: Session,
    member_id: str,
    offer_id: str,
    current: Mapping[int, Slot],
    wanted: Sequence[str | None],
    now: datetime,
) -> bool:
    """Make the stored slots (`current`) equal to `wanted`: rows of positions that keep their
    SKU stay (auto-fill flag, fill time); changed positions are deleted, then the new SKUs
    inserted, not auto-filled. Returns whether anything changed."""
    count = max(len(wanted), max(current, default=-1) + 1)
    padded = list(wanted) + [None] * (count - len(wanted))
    changed = [i for i in range(count) if (current[i].sku if i in current else None) != padded[i]]
    if not changed:
        return False
    stale = [i for i in changed if i in current]
    if stale:
        session.execute(
            delete(SLOTS).where(
                and_(
                    SLOTS.c.member_id == member_id,
                    SLOTS.c.offer_id == offer_id,
                    SLOTS.c.slot_index.in_(stale),
                )
            )
        )
    added = [(member_id, i, sku) for i in changed if (sku := padded[i]) is not None]
    add_slots(session, offer_id, added, now, auto_filled=False)
    return True


def add_slots(
    session: Session,
    offer_id: str,
    slots: Iterable[tuple[str, int, str]],
    now: datetime,
    *,
    auto_filled: bool,
) -> None:
    """Fill empty positions: (member id, position, SKU)."""
    rows = [
        {
            "member_id": member_id,
            "offer_id": offer_id,
            "slot_index": index,
            "sku": sku,
            "auto_filled": auto_filled,
            "filled_at": now,
        }
        for member_id, index, sku in slots
    ]
    insert_rows(session, FavoriteSlotRow, rows)


def add_audit_entry(
    session: Session,
    *,
    actor: str,
    member_id: str,
    offer_id: str,
    at: datetime,
    skus_before: tuple[str | None, ...],
    skus_after: tuple[str | None, ...],
    comment: str,
) -> AuditEntry:
    """Record an operator's edit: before {"skus": [...]}, after {"skus": [...], "comment"}."""
    entry_id = session.execute(
        insert(AUDIT)
        .values(
            actor=actor,
            action=OPERATOR_EDIT,
            member_id=member_id,
            offer_id=offer_id,
            before={"skus": list(skus_before)},
            after={"skus": list(skus_after), "comment": comment},
            at=at,
        )
        .returning(AUDIT.c.id)
    ).scalar_one()
    return AuditEntry(entry_id, actor, member_id, offer_id, at, skus_before, skus_after, comment)


# --- transitional ------------------------------------------------------------------------------


# --- rows ---------------------------------------------------------------------------------------


def _slot(row: Any) -> Slot:
    return Slot(row.slot_index, row.sku, row.auto_filled, row.filled_at)


def _audit_entry(row: Any) -> AuditEntry:
    before = row.before or {}
    after = row.after or {}
    return AuditEntry(
        id=row.id,
        actor=row.actor,
        member_id=row.member_id or "",
        offer_id=row.offer_id or "",
        at=row.at,
        skus_before=tuple(before.get("skus", ())),
        skus_after=tuple(after.get("skus", ())),
        comment=str(after.get("comment", "")),
    )
