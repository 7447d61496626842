"""The unit of work: one transaction, and the write protocol of every change to members.

A use case opens a unit of work, writes through the store's repositories with its `session`,
says what it changed, and commits. The unit of work does what every writer of members owes
the rest of the system, so a writer cannot forget a step:

1. **Member locks first.** `lock_members` takes the members' row locks (PostgreSQL, in id
   order) before any other row lock of their state, the one lock order everywhere. A member
   named by `members_changed` or `patch_members` is locked then if it was not yet.
2. **Member documents.** At commit, each changed member's document is rebuilt from their
   rows, or patched where the use case knows exactly what it changed (cheaper).
3. **Change feed and outbox.** Each changed member gets a feed row, so every replica follows;
   events go to the outbox under its lock, in the same transaction.
4. **The cache, after the commit**: `on_committed` (this replica's cache) hears which members
   changed, so the next read here sees the write.

Nothing happens at all unless `commit()` is called: leaving the block without it rolls back.

A use case may queue its statements on the unit of work's `batch` (service.store.pipeline)
instead of running them one by one: then the member locks and the reads of documents to
patch are queued too, and the commit sends the last statements with the COMMIT, in one round
trip on PostgreSQL. Whatever is queued is sent before `session` is handed out, so statements
run in the order they were written either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session

from service.app.sessions import Sessions
from service.clock import utc_now
from service.engine.model import Member
from service.store.feed import EntityKind, append_changes, queue_changes
from service.store.member_documents import (
    Documents,
    lock_members,
    patch_documents,
    queue_document_read,
    queue_lock_members,
    refresh_documents,
    write_patched,
)
from service.store.outbox import EventType, add_events
from service.store.pipeline import Batch, Later

Patch = Callable[[Member], Member]


class UnitOfWork:
    def __init__(
        self,
        sessions: Sessions,
        on_committed: Callable[[list[str]], None] = lambda member_ids: None,
        *,
        now: datetime | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_committed = on_committed
        self.now = now or utc_now()
        self._session: Session | None = None
        self._locked: set[str] = set()
        self._rebuild: dict[str, None] = {}  # ordered sets
        self._patches: dict[str, list[Patch]] = {}
        self._new_members: set[str] = set()
        self._touched: dict[str, None] = {}
        self._events: list[tuple[str, EventType, Mapping[str, Any]]] = []
        self._batch: Batch | None = None
        self._documents: dict[str, Later[Documents]] = {}  # read in the batch, to patch
        self.committed = False

    # --- the transaction ------------------------------------------------------------------------

    def __enter__(self) -> UnitOfWork:
        self._session = self._sessions()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        session = self._session
        assert session is not None
        try:
            if not self.committed:
                session.rollback()  # what is still queued is never sent
        finally:
            session.close()

    @property
    def session(self) -> Session:
        """The transaction's session, once what is queued on `batch` is sent."""
        if self._session is None:
            raise RuntimeError("a unit of work is used inside its `with` block")
        if self._batch is not None and self._batch.queued:
            self._batch.send()
        return self._session

    @property
    def batch(self) -> Batch:
        """Statements queued on this transaction, sent together (service.store.pipeline)."""
        if self._batch is None:
            if self._session is None:
                raise RuntimeError("a unit of work is used inside its `with` block")
            self._batch = Batch(self._session)
        return self._batch

    def commit(self) -> None:
        """Write what the members' changes owe (documents, feed, events), commit, then tell
        the cache."""
        changed = self._write_protocol()
        if self._batch is None:
            self.session.commit()
        else:  # the COMMIT goes with what is queued
            assert self._session is not None
            self._batch.send(commit=True)
            self._session.commit()
        self.committed = True
        if changed:
            self._on_committed(changed)

    def rollback(self) -> None:
        """Undo everything so far (what is still queued is dropped); the session stays
        usable for reads."""
        if self._batch is not None:
            self._batch.discard()
            self._batch = None  # the next transaction gets its own connection and batch
        self._locked.clear()  # the locks went with the transaction
        self._documents.clear()
        assert self._session is not None
        self._session.rollback()

    # --- what a use case says -------------------------------------------------------------------

    def lock_members(self, member_ids: Iterable[str]) -> None:
        """Hold these members' locks from now until the end of the transaction."""
        fresh = sorted(set(member_ids) - self._locked)
        if fresh:
            if self._batch is None:
                lock_members(self.session, fresh)
            else:
                queue_lock_members(self._batch, fresh)
            self._locked.update(fresh)

    def members_changed(self, member_ids: Iterable[str]) -> None:
        """These members' rows changed: their documents are rebuilt from the rows at commit."""
        ids = list(member_ids)
        self.lock_members(ids)
        self._rebuild.update(dict.fromkeys(ids))

    def patch_members(
        self, member_ids: Iterable[str], patch: Patch, *, new: Iterable[str] = ()
    ) -> None:
        """These members changed exactly as `patch` says: their documents are patched at
        commit instead of rebuilt. `new`: members this transaction created."""
        ids = list(member_ids)
        self.lock_members(ids)
        self._new_members.update(new)
        for member_id in ids:
            self._patches.setdefault(member_id, []).append(patch)
        if self._batch is not None:  # read now, under the lock, with the rest
            self._queue_document_reads(ids)

    def will_patch(self, member_ids: Iterable[str]) -> None:
        """These members' documents will be patched later in this transaction: lock them and
        read their documents with what is queued now (one round trip less than reading them
        when the patch is known)."""
        ids = list(member_ids)
        self.lock_members(ids)
        self._queue_document_reads(ids)

    def members_touched(self, member_ids: Iterable[str]) -> None:
        """These members changed in rows their document does not hold (a receipt that
        counted no usage): the feed and the cache hear of them, the document stays."""
        ids = list(member_ids)
        self.lock_members(ids)
        self._touched.update(dict.fromkeys(ids))

    def add_event(
        self, member_id: str, event_type: EventType, payload: Mapping[str, Any] | None = None
    ) -> None:
        """An event for the member's channels, written to the outbox at commit."""
        self._events.append((member_id, event_type, payload or {}))

    # --- at commit ------------------------------------------------------------------------------

    def _write_protocol(self) -> list[str]:
        now = self.now
        if self._rebuild:  # rows changed beyond any patch: a rebuild wins over a patch
            refresh_documents(self.session, list(self._rebuild), now)
        groups: dict[tuple[Patch, ...], list[str]] = {}  # members patched alike, together
        for member_id, patches in self._patches.items():
            if member_id not in self._rebuild:
                groups.setdefault(tuple(patches), []).append(member_id)
        for chain, member_ids in groups.items():
            self._patch(member_ids, _chain(list(chain)))
        changed = list(dict.fromkeys([*self._rebuild, *self._patches, *self._touched]))
        if changed and self._batch is not None:
            queue_changes(self._batch, EntityKind.MEMBER, changed, now)
        elif changed:
            append_changes(self.session, EntityKind.MEMBER, changed, now)
        if self._events or self._batch is None:  # (no events: nothing to send for a batch)
            add_events(self.session, self._events, now)  # under the outbox lock
        return changed

    def _patch(self, member_ids: list[str], patch: Patch) -> None:
        if self._batch is None:
            patch_documents(
                self.session,
                member_ids,
                patch,
                new_members=self._new_members,
                now=self.now,
                locked=True,
            )
            return
        self._queue_document_reads(member_ids)  # those patched before the batch was made
        current: dict[str, Member] = {}
        for member_id in member_ids:
            current.update(self._documents[member_id].value())
        rebuild = write_patched(
            self._batch, current, member_ids, patch, new_members=self._new_members, now=self.now
        )
        if rebuild:  # no current document: from their rows
            refresh_documents(self.session, rebuild, self.now)

    def _queue_document_reads(self, member_ids: Iterable[str]) -> None:
        unread = [m for m in member_ids if m not in self._documents]
        if unread:
            documents = queue_document_read(self.batch, unread)
            self._documents.update(dict.fromkeys(unread, documents))


def _chain(patches: list[Patch]) -> Patch:
    def apply(member: Member) -> Member:
        for patch in patches:
            member = patch(member)
        return member

    return apply
