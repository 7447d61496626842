"""Runs the member jobs (service/app/jobs.py: the list switch on the 1st, "selection allowed
again", points expiry) inside the server, every `interval_s`. The jobs are idempotent, so a
second replica running them too writes nothing twice; a multi-process server runs them in
one worker only."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from service.app.jobs import run_member_jobs
from service.app.unit_of_work import UnitOfWork
from service.cache.state import BenefitCache
from service.clock import utc_now

log = logging.getLogger(__name__)


class JobScheduler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        cache: BenefitCache,
        interval_s: float,
        points_expiring_soon: timedelta | None = None,
    ) -> None:
        self._points_expiring_soon = points_expiring_soon
        self._sessions = sessions
        self._cache = cache
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        if self._interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="member-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_once(self) -> int:
        """Both jobs now, each in a unit of work that tells this replica's cache."""
        now = utc_now()

        def unit_of_work() -> UnitOfWork:
            return UnitOfWork(self._sessions, self._cache.members_changed, now=now)

        return run_member_jobs(unit_of_work, self._cache.snapshot, self._points_expiring_soon)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                events = self.run_once()
                self.runs += 1
                if events:
                    log.info("member jobs wrote %d events", events)
            except Exception:  # the store may be down; try again next time
                log.warning("member jobs failed", exc_info=True)
            self._stop.wait(self._interval_s)
