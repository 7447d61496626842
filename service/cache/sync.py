"""Following the change feed, so every replica's cache converges to the store.

A position is handed out when a row is inserted, not when its transaction commits, so a
follower that only asks for "position > highest seen" would miss a slow transaction that took
a lower position and committed later. The follower remembers every position it skipped over
(a gap) and asks for those again on each poll, together with the positions above the highest
seen, until the gap fills in or `gap_timeout_s` passes (a rolled-back insert leaves a
permanent gap on PostgreSQL). Re-reading costs one indexed query for the few positions of
transactions in flight, not a window that grows.

Applying a change is idempotent: a member held in the cache is reloaded and replaced (never
dropped: the old state answers until the new one arrives, and through an outage), catalogue
and offer changes rebuild the snapshot once per poll, credential changes reload the
credential book. What a poll read is due until applied: if applying fails (the store went
down right after the read), the next poll tries it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.cache.state import BenefitCache, store_unreachable
from service.clock import utc_now
from service.deadline import set_call_deadline
from service.store.feed import Change, EntityKind, changes_after, changes_at, last_position

log = logging.getLogger(__name__)

CATALOGUE_KINDS = frozenset(
    {
        EntityKind.CATEGORY,
        EntityKind.PRODUCT,
        EntityKind.PRODUCT_GROUP,
        EntityKind.PRODUCT_LIST,
        EntityKind.STORE,
        EntityKind.OFFER,
    }
)


@dataclass
class SyncStats:
    polls: int = 0
    changes_applied: int = 0
    snapshot_reloads: int = 0
    gaps_given_up: int = 0
    errors: int = 0
    last_success: float = 0.0  # time.monotonic() of the last successful poll
    delays_s: list[float] = field(default_factory=list)  # created -> applied, recent changes


class ChangeFollower:
    """Polls the change feed and applies what changed to this replica's cache."""

    MAX_DELAYS_KEPT = 10_000

    def __init__(
        self,
        session_factory: Callable[[], Session],
        cache: BenefitCache,
        *,
        on_credentials_changed: Callable[[], None] = lambda: None,
        observe_delay: Callable[[float], None] = lambda seconds: None,
        on_store_state: Callable[[bool], None] = lambda available: None,
        poll_interval_s: float = 0.1,
        poll_timeout_s: float = 2.0,
        gap_timeout_s: float = 30.0,
        batch_size: int = 5000,
    ) -> None:
        self._session_factory = session_factory
        self._cache = cache
        self._on_credentials_changed = on_credentials_changed
        self._observe_delay = observe_delay
        self._on_store_state = on_store_state
        # False while polls fail: calculations then say they used cached state only.
        self.store_available = True
        self._poll_interval_s = poll_interval_s
        self._poll_timeout_s = poll_timeout_s
        self._gap_timeout_s = gap_timeout_s
        self._batch_size = batch_size
        self._highest = 0  # highest position applied
        self._gaps: dict[int, float] = {}  # skipped position -> monotonic time first skipped
        self._due = _Due()  # read from the feed, not yet applied to the cache
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = SyncStats()

    # --- life cycle -----------------------------------------------------------------------------

    def start_from_current(self) -> None:
        """Begin after everything already in the feed: the cache was just loaded whole."""
        with self._session_factory() as session:
            self._highest = last_position(session)
        self.stats.last_success = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="change-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def safe_position(self) -> int:
        """Every change at or below this position has been applied (or given up on)."""
        return min(self._gaps) - 1 if self._gaps else self._highest

    @property
    def open_gaps(self) -> int:
        return len(self._gaps)

    def seconds_since_success(self) -> float:
        return time.monotonic() - self.stats.last_success

    def _run(self) -> None:
        backoff = self._poll_interval_s
        while not self._stop.is_set():
            # A poll that gets no answer in time fails like one that cannot connect: a hung
            # store turns NOT_SERVING as fast as a stopped one (service/store/watchdog.py).
            set_call_deadline(self._poll_timeout_s)
            try:
                self.poll_once()
                backoff = self._poll_interval_s
                self._set_store_available(True)
            except Exception:  # the store may be down: keep serving from memory, retry
                self.stats.errors += 1
                self._set_store_available(False)
                log.warning("change feed poll failed; retrying in %.1f s", backoff, exc_info=True)
                backoff = min(backoff * 2, 5.0)
            self._stop.wait(backoff)

    def _set_store_available(self, available: bool) -> None:
        if available != self.store_available:
            self.store_available = available
            log.warning("store %s", "reachable again" if available else "unreachable")
            self._on_store_state(available)

    # --- one poll -------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Read and apply new changes and filled gaps; returns how many were applied."""
        with self._session_factory() as session:
            filled = changes_at(session, list(self._gaps)) if self._gaps else []
            fresh: list[Change] = []
            while True:  # page until a short page: a burst is applied in one poll
                page = changes_after(session, self._highest, self._batch_size)
                fresh += page
                if len(page) < self._batch_size:
                    break
                self._note_gaps(page)
        now = time.monotonic()
        for change in filled:
            self._gaps.pop(change.position, None)
        self._note_gaps(fresh, now)
        self._apply(filled + fresh)
        self._expire_gaps(now)
        self.stats.polls += 1
        self.stats.last_success = now
        return len(filled) + len(fresh)

    def _note_gaps(self, changes: list[Change], now: float | None = None) -> None:
        """Advance the highest position, remembering every position skipped on the way."""
        now = time.monotonic() if now is None else now
        for change in changes:
            if change.position <= self._highest:
                continue
            for skipped in range(self._highest + 1, change.position):
                self._gaps.setdefault(skipped, now)
            self._highest = change.position

    def _expire_gaps(self, now: float) -> None:
        expired = [p for p, since in self._gaps.items() if now - since >= self._gap_timeout_s]
        for position in expired:
            del self._gaps[position]
        self.stats.gaps_given_up += len(expired)

    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            if change.kind == EntityKind.MEMBER:
                self._due.members.add(change.key)
            elif change.kind == EntityKind.CREDENTIAL:
                self._due.credentials = True
            elif change.kind in CATALOGUE_KINDS:
                self._due.snapshot = True
        self.stats.changes_applied += len(changes)
        self._catch_up()
        self._observe_delays(changes)

    def _catch_up(self) -> None:
        """Apply what is due. If the store cannot be reached, what failed stays due and the
        error is raised (a failed poll; the next one tries again). Any other failure would
        fail every poll from then on: it is logged and given up, and members that could not
        be refreshed are dropped instead (their next read loads them)."""
        due = self._due
        if due.members:
            if not self._tried(lambda: self._cache.refresh_members(due.members)):
                self._cache.drop_members(due.members)
            due.members.clear()
        if due.snapshot:
            if self._tried(self._cache.reload_snapshot):
                self.stats.snapshot_reloads += 1
            due.snapshot = False
        if due.credentials:
            self._tried(self._on_credentials_changed)
            due.credentials = False

    def _tried(self, step: Callable[[], object]) -> bool:
        try:
            step()
        except Exception as error:
            if isinstance(error, SQLAlchemyError) and store_unreachable(error):
                raise
            self.stats.errors += 1
            log.exception("applying changes from the feed failed; given up")
            return False
        return True

    def _observe_delays(self, changes: list[Change]) -> None:
        if not changes:
            return
        applied_at = utc_now()
        delays = self.stats.delays_s
        for change in changes:
            delay = (applied_at - change.created_at).total_seconds()
            delays.append(delay)
            self._observe_delay(delay)
        if len(delays) > self.MAX_DELAYS_KEPT:
            del delays[: len(delays) - self.MAX_DELAYS_KEPT]


@dataclass
class _Due:
    """What the changes read so far ask of the cache and is not done yet."""

    members: set[str] = field(default_factory=set)
    snapshot: bool = False
    credentials: bool = False
