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
from service.store.feed import EntityKind, append_changes
from service.store.member_documents import lock_members, patch_documents, refresh_documents
from service.store.outbox import EventType, add_events

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
        session = self.session
        try:
            if not self.committed:
                session.rollback()
        finally:
            session.close()

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("a unit of work is used inside its `with` block")
        return self._session

    def commit(self) -> None:
        """Write what the members' changes owe (documents, feed, events), commit, then tell
        the cache."""
        changed = self._write_protocol()
        self.session.commit()
        self.committed = True
        if changed:
            self._on_committed(changed)

    # --- what a use case says -------------------------------------------------------------------

    def lock_members(self, member_ids: Iterable[str]) -> None:
        """Hold these members' locks from now until the end of the transaction."""
        fresh = sorted(set(member_ids) - self._locked)
        if fresh:
            lock_members(self.session, fresh)
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
        session, now = self.session, self.now
        if self._rebuild:  # rows changed beyond any patch: a rebuild wins over a patch
            refresh_documents(session, list(self._rebuild), now)
        groups: dict[tuple[Patch, ...], list[str]] = {}  # members patched alike, together
        for member_id, patches in self._patches.items():
            if member_id not in self._rebuild:
                groups.setdefault(tuple(patches), []).append(member_id)
        for chain, member_ids in groups.items():
            patch_documents(
                session,
                member_ids,
                _chain(list(chain)),
                new_members=self._new_members,
                now=now,
                locked=True,
            )
        changed = list(dict.fromkeys([*self._rebuild, *self._patches, *self._touched]))
        if changed:
            append_changes(session, EntityKind.MEMBER, changed, now)
        add_events(session, self._events, now)  # under the outbox lock
        return changed


def _chain(patches: list[Patch]) -> Patch:
    def apply(member: Member) -> Member:
        for patch in patches:
            member = patch(member)
        return member

    return apply
