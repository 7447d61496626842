"""Member documents: each member's state kept as one row, so a cold member is one indexed read.

The per-member tables (profile, favorite slots, category terms and choices, personal offers,
usage) stay the source of truth. Every transaction that writes them ends by rewriting those
members' documents and appending them to the change feed: member_changed() rebuilds them from
the rows; a writer that knows exactly what it changed patches the current documents instead
(patch_documents: a bulk import; usage_changed: a confirm or refund), which is much cheaper.

Two writers of one member must not each write a document that misses the other's change. On
PostgreSQL (READ COMMITTED) the rewrite holds the member rows' locks, in id order: a second
writer waits for the first to commit, and its reads then see the first one's rows. Writers
take the lock at their start (lock_members), before any other row lock, so the order of locks
is the same everywhere. SQLite runs one writer at a time, so there is nothing to lock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.clock import utc_now
from service.engine.model import Member
from service.store.codec import MEMBER_DOCUMENT_FORMAT, member_document, member_from_document
from service.store.feed import EntityKind, append_changes
from service.store.loader import load_members_from_rows
from service.store.models import MemberDocumentRow, MemberRow
from service.store.pipeline import Batch, Later, Pending
from service.store.sql import chunks, keyset_pages, table_of

MEMBERS = table_of(MemberRow)
DOCUMENTS = table_of(MemberDocumentRow)


@dataclass(frozen=True, slots=True)
class _Statements:
    """Built once per dialect: a confirm runs them on every call, and building a statement
    costs more than running it (see service.store.receipt_sql)."""

    lock: Any  # :ids -> member ids, locked FOR NO KEY UPDATE on PostgreSQL
    read: Any  # :ids -> (member_id, body) of current-format documents
    write: Any  # upsert of (member_id, format, body, updated_at)
    # the same two for a batch (service.store.pipeline): :ids one array on PostgreSQL
    queued_lock: Any
    queued_read: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    ids: Any = bindparam("ids", expanding=True)
    lock = select(MEMBERS.c.id).where(MEMBERS.c.id.in_(ids)).order_by(MEMBERS.c.id)
    insert = postgresql.insert(DOCUMENTS) if dialect == "postgresql" else sqlite.insert(DOCUMENTS)
    new = insert.excluded
    current = DOCUMENTS.c.format == MEMBER_DOCUMENT_FORMAT
    read = select(DOCUMENTS.c.member_id, DOCUMENTS.c.body).where(DOCUMENTS.c.member_id.in_(ids))
    queued_lock, queued_read = lock, read
    if dialect == "postgresql":  # an array, not a list expanded per call: compiled once
        array: Any = bindparam("ids", type_=postgresql.ARRAY(String()))
        queued_lock = select(MEMBERS.c.id).where(MEMBERS.c.id == any_(array))
        queued_lock = queued_lock.order_by(MEMBERS.c.id)
        queued_read = select(DOCUMENTS.c.member_id, DOCUMENTS.c.body)
        queued_read = queued_read.where(DOCUMENTS.c.member_id == any_(array))
    # NO KEY UPDATE, the lock an UPDATE of the row takes: it does not conflict with the
    # KEY SHARE locks that inserting rows referring to the member (receipts, usage) take,
    # so two writers that both inserted such rows do not deadlock here.
    return _Statements(
        lock=lock.with_for_update(key_share=True),
        read=read.where(current),
        queued_lock=queued_lock.with_for_update(key_share=True),
        queued_read=queued_read.where(current),
        write=insert.on_conflict_do_update(
            index_elements=[DOCUMENTS.c.member_id],
            set_={"format": new.format, "body": new.body, "updated_at": new.updated_at},
        ),
    )


def _sql(session: Session) -> _Statements:
    return _statements(session.get_bind().dialect.name)


def _write(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(_sql(session).write, rows)


def lock_members(session: Session, member_ids: Iterable[str]) -> None:
    """Hold these members' row locks until the transaction ends (PostgreSQL), in id order."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for part in chunks(sorted(set(member_ids))):
        session.execute(_sql(session).lock, {"ids": list(part)}).all()


def queue_lock_members(batch: Batch, member_ids: Iterable[str]) -> None:
    """lock_members on a batch (the locks are taken when it is sent, in its order)."""
    if batch.dialect != "postgresql":
        return
    for part in chunks(sorted(set(member_ids))):
        batch.execute(_statements(batch.dialect).queued_lock, {"ids": list(part)})


Documents = Mapping[str, Member]  # member id -> their current document


def queue_document_read(batch: Batch, member_ids: Sequence[str]) -> Later[Documents]:
    """The members' current documents (a member without one is left out), read when the
    batch is sent: for a writer that will patch them (write_patched) under their locks."""
    pending = batch.execute(_statements(batch.dialect).queued_read, {"ids": list(member_ids)})
    return Later(pending, _documents)


def _documents(pending: Pending) -> Documents:
    return {row[0]: member_from_document(row[0], row[1]) for row in pending.rows}


def write_patched(
    batch: Batch,
    current: Documents,
    member_ids: Iterable[str],
    patch: Callable[[Member], Member],
    *,
    new_members: Container[str] = (),
    now: datetime,
) -> list[str]:
    """Queue the documents of patch_documents() from the `current` ones read under the
    members' locks; returns the members that have none, to rebuild from their rows."""
    rows, rebuild = _patched_rows(current, member_ids, patch, new_members, now)
    batch.execute_many(_statements(batch.dialect).write, rows)
    return rebuild


def _patched_rows(
    current: Documents,
    member_ids: Iterable[str],
    patch: Callable[[Member], Member],
    new_members: Container[str],
    at: datetime,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of the patched documents, and the members that have none to patch (to
    rebuild from their rows); a member in `new_members` starts from an empty state."""
    rows, rebuild = [], []
    for member_id in member_ids:
        base = current.get(member_id)
        if base is None and member_id in new_members:
            base = Member(member_id)
        if base is None:
            rebuild.append(member_id)
        else:
            rows.append(_document_row(patch(base), at))
    return rows, rebuild


def member_changed(
    session: Session, member_ids: Iterable[str], now: datetime | None = None
) -> None:
    """The last step of a write to members' state: rewrite their documents, then tell the
    replicas (change feed). Part of the caller's transaction."""
    ids = list(dict.fromkeys(member_ids))
    refresh_documents(session, ids, now)
    append_changes(session, EntityKind.MEMBER, ids, now)


def refresh_documents(
    session: Session, member_ids: Iterable[str], now: datetime | None = None
) -> int:
    """Rewrite these members' documents from their rows (ids of no member are ignored);
    returns how many were written."""
    at = now or utc_now()
    written = 0
    for part in chunks(sorted(set(member_ids))):
        lock_members(session, part)
        members = load_members_from_rows(session, part)
        _write(session, [_document_row(member, at) for member in members.values()])
        written += len(members)
    return written


def patch_documents(
    session: Session,
    member_ids: Iterable[str],
    patch: Callable[[Member], Member],
    *,
    new_members: Container[str] = (),
    now: datetime | None = None,
    locked: bool = False,
) -> None:
    """Rewrite these members' documents as `patch` applied to their current ones: for a writer
    that knows exactly what it changed (a bulk import), cheaper than reading all their rows
    again. A member in `new_members` (created by this transaction) starts from an empty state;
    any other member without a current document is rebuilt from their rows. `locked`: the
    caller already holds these members' locks (lock_members), which saves a round trip."""
    at = now or utc_now()
    for part in chunks(sorted(set(member_ids))):
        if not locked:
            lock_members(session, part)
        found = session.execute(_sql(session).read, {"ids": list(part)})
        current = {r.member_id: member_from_document(r.member_id, r.body) for r in found}
        rows, rebuild = _patched_rows(current, part, patch, new_members, at)
        _write(session, rows)
        refresh_documents(session, rebuild, at)


def usage_changed(
    session: Session,
    member_id: str,
    totals: Mapping[tuple[str, str], int],
    now: datetime | None = None,
) -> None:
    """The last step of a write that changed only a member's usage counters (a confirm, a
    refund), which holds the member's lock: `totals` are the counters' new values,
    (offer id, period key) -> used."""
    if totals:

        def with_totals(member: Member) -> Member:
            return replace(member, usage={**member.usage, **totals})

        patch_documents(session, [member_id], with_totals, now=now, locked=True)
    append_changes(session, EntityKind.MEMBER, [member_id], now)


def _document_row(member: Member, at: datetime) -> dict[str, Any]:
    return {
        "member_id": member.id,
        "format": MEMBER_DOCUMENT_FORMAT,
        "body": member_document(member),
        "updated_at": at,
    }


_WITHOUT_DOCUMENT = (
    select(MEMBERS.c.id)
    .outerjoin(DOCUMENTS, DOCUMENTS.c.member_id == MEMBERS.c.id)
    .where(or_(DOCUMENTS.c.member_id.is_(None), DOCUMENTS.c.format != MEMBER_DOCUMENT_FORMAT))
)


def members_without_document(session: Session, limit: int = 500) -> Sequence[str]:
    """The first ids (in order) of members with no document in the current format."""
    return list(session.scalars(_WITHOUT_DOCUMENT.order_by(MEMBERS.c.id).limit(limit)))


def backfill(session: Session, batch_size: int = 500) -> int:
    """Write the missing and outdated documents, committing each batch (live writers may run
    meanwhile: each batch locks its members like any writer). Returns how many were written."""
    written = 0
    for rows in keyset_pages(session, _WITHOUT_DOCUMENT, MEMBERS.c.id, batch_size):
        written += refresh_documents(session, [r.id for r in rows])
        session.commit()
    return written
