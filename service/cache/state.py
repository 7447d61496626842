"""What the engine reads, held in memory: the catalogue-and-offers snapshot and members.

The snapshot is rebuilt whole and swapped in one reference assignment, so readers never see
half of a change and never lock. Members are loaded on first use (one indexed read) into a
bounded LRU cache; card numbers map to member ids in a second bounded cache.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, TTLCache
from sqlalchemy.orm import Session

from service.engine.model import Member
from service.engine.snapshot import Snapshot, build_snapshot
from service.store import loader

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
    ) -> None:
        self._session_factory = session_factory
        self._time_zone = time_zone
        self._members: LRUCache[str, Any] = LRUCache(maxsize=member_capacity)
        # A card moved to another member by an import is seen within the TTL on every replica.
        self._cards: TTLCache[str, str] = TTLCache(maxsize=member_capacity, ttl=60.0)
        # Unknown cards are remembered briefly: a card issued by an import elsewhere is seen
        # within seconds, and a register scanning an unknown card does not hit the store each time.
        self._unknown_cards: TTLCache[str, bool] = TTLCache(maxsize=10_000, ttl=5.0)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._loads = _Loads(self._lock)
        self.stats = CacheStats()

    # --- catalogue and offers ---------------------------------------------------------------

    def reload_snapshot(self) -> Snapshot:
        with self._session_factory() as session:
            catalogue = loader.load_catalogue(session)
        snapshot = build_snapshot(**catalogue.as_kwargs(), program_time_zone=self._time_zone)
        self._snapshot = snapshot
        self.stats.snapshot_builds += 1
        return snapshot

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
    # with the state from before the change. Every forget advances a generation and notes it
    # per member while loads are in flight; a load caches only members not forgotten since it
    # began (see _Loads).

    def member(self, member_id: str) -> Member | None:
        with self._lock:  # an LRU read reorders entries: not safe without the lock
            cached = self._members.get(member_id, None)
        if cached is not None:
            self.stats.member_hits += 1
            return None if cached is _ABSENT else cached
        self.stats.member_misses += 1
        with self._loads.loading() as began:
            with self._session_factory() as session:
                member = loader.load_member(session, member_id)
            with self._lock:
                self._keep(member_id, member, began)
        return member

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
                self._cards[card_number] = member_id
                cached = self._members.get(member_id, None)
                if cached is None:
                    self.stats.member_misses += 1
                    self._keep(member_id, member, began)
                    return found
        # The member was warm already: the cached state, which sync keeps current, wins.
        self.stats.member_hits += 1
        return member_id, None if cached is _ABSENT else cached

    def _keep(self, member_id: str, member: Member | None, began: int) -> None:
        """Cache what a load read, unless the member was forgotten since it began. Called
        under the lock, while the load still counts as in flight."""
        if not self._loads.forgotten_since(member_id, began):
            self._members[member_id] = _ABSENT if member is None else member

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
                        if not self._loads.forgotten_since(member.id, began):
                            self._members[member.id] = member
                loaded += len(kept)
                if loaded >= capacity:
                    break
        return loaded

    def forget_member(self, member_id: str) -> None:
        """Drop a member so the next read loads fresh state (after a write or a change feed)."""
        with self._lock:
            self._members.pop(member_id, None)
            self._loads.forget(member_id)

    def forget_card(self, card_number: str) -> None:
        with self._lock:
            self._cards.pop(card_number, None)

    def cached_member_count(self) -> int:
        return len(self._members)


class _Loads:
    """Which members were forgotten while store reads were in flight, by generation.

    Only what a read still in flight could need is kept: when none is, nothing is.
    Every method but loading() runs under the cache's lock."""

    PRUNE_AT = 10_000

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._generation = 0
        self._in_flight: Counter[int] = Counter()  # generation a read began at -> reads
        self._forgotten: dict[str, int] = {}  # member id -> generation of the last forget

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
                    self._forgotten.clear()

    def forget(self, member_id: str) -> None:
        if not self._in_flight:
            return
        self._generation += 1
        self._forgotten[member_id] = self._generation
        if len(self._forgotten) > self.PRUNE_AT:
            oldest = min(self._in_flight)
            self._forgotten = {m: g for m, g in self._forgotten.items() if g > oldest}

    def forgotten_since(self, member_id: str, began: int) -> bool:
        return self._forgotten.get(member_id, -1) > began
