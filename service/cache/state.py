"""What the engine reads, held in memory: the catalogue-and-offers snapshot and members.

The snapshot is rebuilt whole and swapped in one reference assignment, so readers never see
half of a change and never lock. Members are loaded on first use (one indexed read) into a
bounded LRU cache; card numbers map to member ids in a second bounded cache, checked when
their member changes (service/cache/cards.py).

A member who changed is refreshed, never just dropped: a replica must go on answering with
the last state it knew when the store goes down. A change from the feed reloads the member
and replaces the cached state (refresh_members); this replica's own write makes the next
read load them (read-your-writes), and keeps the old state for that read to fall back on if
the store cannot be read (members_changed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, TTLCache
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from service.cache.cards import CardMap, active_cards
from service.engine.model import Member
from service.engine.snapshot import Snapshot, build_snapshot
from service.store import loader
from service.store.db import read_snapshot
from service.store.sql import chunks

log = logging.getLogger(__name__)

_ABSENT = object()  # cached "no such member id": asking again does not hit the store


@dataclass
class CacheStats:
    member_hits: int = 0
    member_misses: int = 0
    snapshot_builds: int = 0


class BenefitCache:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        time_zone: str,
        member_capacity: int = 200_000,
        clock: Callable[[], float] = time.monotonic,  # seconds, for unknown cards' TTL
    ) -> None:
        self._session_factory = session_factory
        self._time_zone = time_zone
        self._members: LRUCache[str, Any] = LRUCache(maxsize=member_capacity)
        # What was cached before this replica's own write to a member, until a fresh read:
        # the answer if the store cannot be read then.
        self._before_write: LRUCache[str, Any] = LRUCache(maxsize=member_capacity)
        # No TTL: a mapping is kept, through an outage too, until its member changes.
        self._cards = CardMap(maxsize=member_capacity)
        # Unknown cards are remembered briefly: a card issued by an import elsewhere is seen
        # within seconds, and a register scanning an unknown card does not hit the store each time.
        self._unknown_cards: TTLCache[str, bool] = TTLCache(maxsize=10_000, ttl=5.0, timer=clock)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._snapshot_build = 0  # the number of the build in use (see reload_snapshot)
        self._builds_begun = 0
        self._loads = _Loads(self._lock)
        self.stats = CacheStats()

    # --- catalogue and offers ---------------------------------------------------------------

    def reload_snapshot(self) -> Snapshot:
        """Rebuild the snapshot from the store and swap it in; returns the one in use.

        Builds are numbered when they begin reading, and one swaps in only if no build that
        began later has: the sync's build may begin before a back-office write and end after
        the writer's own build, and must not put the old catalogue back. A build that began
        later has read everything committed before it began."""
        with self._lock:
            self._builds_begun += 1
            build = self._builds_begun
        with read_snapshot(self._session_factory) as session:  # version and catalogue alike
            catalogue = loader.load_catalogue(session)
        snapshot = build_snapshot(**catalogue.as_kwargs(), program_time_zone=self._time_zone)
        with self._lock:
            if build > self._snapshot_build:
                self._snapshot, self._snapshot_build = snapshot, build
        self.stats.snapshot_builds += 1
        return self.snapshot

    @property
    def snapshot(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise RuntimeError("cache not loaded: call reload_snapshot() first")
        return snapshot

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    # --- members ------------------------------------------------------------------------------
    #
    # A member read from the store while a change to them is being applied must not be cached
    # with the state from before the change. Every change advances a generation and notes it
    # per member while loads are in flight; a load (first use, preload, refresh) caches only
    # members not changed since it began (see _Loads). A refresh that began before a later
    # change therefore loses to it, and the later change's own refresh follows.

    def member(self, member_id: str) -> Member | None:
        with self._lock:  # an LRU read reorders entries: not safe without the lock
            cached = self._members.get(member_id, None)
        if cached is not None:
            self.stats.member_hits += 1
            return None if cached is _ABSENT else cached
        self.stats.member_misses += 1
        try:
            with self._loads.loading() as began:
                with self._session_factory() as session:
                    member = loader.load_member(session, member_id)
                with self._lock:
                    self._keep(member_id, member, began)
        except SQLAlchemyError as error:
            return self._state_before_write(member_id, error)
        return member

    def _state_before_write(self, member_id: str, error: SQLAlchemyError) -> Member | None:
        """The store cannot be read right after this replica wrote the member: what it held
        before the write is the last state it knew. Any other failure is raised."""
        with self._lock:
            kept = self._before_write.get(member_id, None)
        if kept is None or not store_unreachable(error):
            raise error
        return None if kept is _ABSENT else kept

    def member_for_card(self, card_number: str) -> tuple[str, Member | None] | None:
        """The member an active card belongs to, with their state (None: no such member);
        None for an unknown card. A card and member both cold cost one indexed read."""
        with self._lock:
            member_id = self._cards.get(card_number)
            if member_id is None and card_number in self._unknown_cards:
                return None
        if member_id is not None:
            return member_id, self.member(member_id)
        with self._loads.loading() as began:
            with self._session_factory() as session:
                found = loader.load_member_by_card(session, card_number)
            with self._lock:
                if found is None:
                    self._unknown_cards[card_number] = True
                    return None
                member_id, member = found
                if self._loads.changed_since(member_id, began):
                    return found  # the card may have changed with them: neither is kept
                self._cards.link(card_number, member_id)
                cached = self._members.get(member_id, None)
                if cached is None:
                    self.stats.member_misses += 1
                    self._keep(member_id, member, began)
                    return found
        # The member was warm already: the cached state, which sync keeps current, wins.
        self.stats.member_hits += 1
        return member_id, None if cached is _ABSENT else cached

    def _keep(self, member_id: str, member: Member | None, began: int) -> None:
        """Cache what a load read, unless the member changed since it began. Called under
        the lock, while the load still counts as in flight."""
        if not self._loads.changed_since(member_id, began):
            self._members[member_id] = _ABSENT if member is None else member
            self._before_write.pop(member_id, None)

    def preload_members(self, batch_size: int = 2000) -> int:
        """Load members into the cache up to its capacity (--preload-members), one query per
        batch; returns how many were loaded. Calls are served meanwhile: a member not yet
        preloaded is loaded on first use as usual."""
        loaded = 0
        capacity = int(self._members.maxsize)
        with self._loads.loading() as began, self._session_factory() as session:
            for batch in loader.iter_members(session, batch_size):
                kept = batch[: capacity - loaded]
                with self._lock:
                    for member in kept:
                        self._keep(member.id, member, began)
                loaded += len(kept)
                if loaded >= capacity:
                    break
        return loaded

    def members_changed(self, member_ids: Iterable[str]) -> None:
        """This replica wrote these members: the next read loads them (read-your-writes).
        What was cached answers that read only if the store cannot be read; the change feed
        brings the write back and refreshes them anyway (refresh_members)."""
        with self._lock:
            for member_id in member_ids:
                cached = self._members.pop(member_id, None)
                if cached is not None:
                    self._before_write[member_id] = cached
                self._loads.changed(member_id)

    def refresh_members(self, member_ids: Iterable[str]) -> None:
        """These members changed in the store (change feed): reload the ones this replica
        holds and replace them, and check the cards it holds of them; one query per 500
        members each. The old state answers until then, and stays if the store cannot be
        read (the error is raised: the caller tries again)."""
        ids = list(dict.fromkeys(member_ids))
        with self._lock:
            for member_id in ids:
                self._loads.changed(member_id)
            held = [m for m in ids if self._holds(m)]
            carded = [m for m in ids if self._cards.has_cards(m)]
        if not held and not carded:
            return
        with self._loads.loading() as began, self._session_factory() as session:
            for part in chunks(held):
                fresh = loader.load_members(session, part)
                with self._lock:
                    for member_id in part:
                        if self._holds(member_id):  # not evicted meanwhile
                            self._keep(member_id, fresh.get(member_id), began)
            if carded:
                active = active_cards(session, carded)
                with self._lock:  # recheck only unlinks: an older read cannot do harm
                    for card_number in self._cards.recheck(active, carded):
                        self._unknown_cards.pop(card_number, None)  # issued meanwhile

    def drop_members(self, member_ids: Iterable[str]) -> None:
        """Forget these members and their cards, so their next read loads them: for when a
        refresh failed for a reason other than the store being down."""
        with self._lock:
            for member_id in member_ids:
                self._members.pop(member_id, None)
                self._before_write.pop(member_id, None)
                for card_number in self._cards.cards_of(member_id):
                    self._cards.unlink(card_number)
                self._loads.changed(member_id)

    def _holds(self, member_id: str) -> bool:
        return member_id in self._members or member_id in self._before_write

    def forget_card(self, card_number: str) -> None:
        """This replica changed the card (an import): the next lookup reads it."""
        with self._lock:
            self._cards.unlink(card_number)
            self._unknown_cards.pop(card_number, None)

    def cached_member_count(self) -> int:
        return len(self._members)


class _Loads:
    """Which members changed while store reads were in flight, by generation.

    Only what a read still in flight could need is kept: when none is, nothing is.
    Every method but loading() runs under the cache's lock."""

    PRUNE_AT = 10_000

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._generation = 0
        self._in_flight: Counter[int] = Counter()  # generation a read began at -> reads
        self._changed: dict[str, int] = {}  # member id -> generation of the last change

    @contextmanager
    def loading(self) -> Iterator[int]:
        """Brackets a store read; yields the generation it began at."""
        with self._lock:
            began = self._generation
            self._in_flight[began] += 1
        try:
            yield began
        finally:
            with self._lock:
                self._in_flight[began] -= 1
                if not self._in_flight[began]:
                    del self._in_flight[began]
                if not self._in_flight:
                    self._changed.clear()

    def changed(self, member_id: str) -> None:
        if not self._in_flight:
            return
        self._generation += 1
        self._changed[member_id] = self._generation
        if len(self._changed) > self.PRUNE_AT:
            oldest = min(self._in_flight)
            self._changed = {m: g for m, g in self._changed.items() if g > oldest}

    def changed_since(self, member_id: str, began: int) -> bool:
        return self._changed.get(member_id, -1) > began


def store_unreachable(error: SQLAlchemyError) -> bool:
    """The store could not be reached (down, restarting, no connection to be had), as
    opposed to a statement it refused."""
    if isinstance(error, OperationalError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated
