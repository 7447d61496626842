"""What the engine reads, held in memory: the catalogue-and-offers snapshot and members.

The snapshot is rebuilt whole and swapped in one reference assignment, so readers never see
half of a change and never lock. Members are loaded on first use (one indexed read) into a
bounded LRU cache; card numbers map to member ids in a second bounded cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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
        self._forgotten_during_preload: set[str] | None = None
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

    def member(self, member_id: str) -> Member | None:
        with self._lock:  # an LRU read reorders entries: not safe without the lock
            cached = self._members.get(member_id, None)
        if cached is not None:
            self.stats.member_hits += 1
            return None if cached is _ABSENT else cached
        self.stats.member_misses += 1
        with self._session_factory() as session:
            member = loader.load_member(session, member_id)
        with self._lock:
            self._members[member_id] = _ABSENT if member is None else member
        return member

    def member_id_for_card(self, card_number: str) -> str | None:
        with self._lock:
            member_id = self._cards.get(card_number)
            if member_id is not None:
                return member_id
            if card_number in self._unknown_cards:
                return None
        with self._session_factory() as session:
            member_id = loader.member_id_for_card(session, card_number)
        with self._lock:
            if member_id is None:
                self._unknown_cards[card_number] = True
            else:
                self._cards[card_number] = member_id
        return member_id

    def preload_members(self, batch_size: int = 2000) -> int:
        """Load members into the cache up to its capacity (--preload-members), in batches of
        a few indexed queries each; returns how many were loaded. Calls are served meanwhile:
        a member not yet preloaded is loaded on first use as usual."""
        loaded = 0
        capacity = int(self._members.maxsize)
        # A member changed while its batch was being read must not be cached stale: forgets
        # during the preload are noted and applied again after each batch goes in.
        self._forgotten_during_preload = set()
        with self._session_factory() as session:
            ids = loader.iter_member_ids(session, batch_size)
            while loaded < capacity:
                batch = [member_id for _, member_id in zip(range(batch_size), ids, strict=False)]
                if not batch:
                    break
                members = loader.load_members(session, batch[: capacity - loaded])
                with self._lock:
                    for member_id, member in members.items():
                        if member_id not in self._forgotten_during_preload:
                            self._members[member_id] = member
                loaded += len(members)
        with self._lock:
            self._forgotten_during_preload = None
        return loaded

    def forget_member(self, member_id: str) -> None:
        """Drop a member so the next read loads fresh state (after a write or a change feed)."""
        with self._lock:
            self._members.pop(member_id, None)
            if self._forgotten_during_preload is not None:
                self._forgotten_during_preload.add(member_id)

    def forget_card(self, card_number: str) -> None:
        with self._lock:
            self._cards.pop(card_number, None)

    def cached_member_count(self) -> int:
        return len(self._members)
