"""Ends a database wait that outlives its deadline, even when the database does not answer.

PostgreSQL's statement_timeout is enforced by the server: a server that hangs (frozen, out of
memory, a stuck disk, a dead peer whose kernel still acknowledges) never sends the
cancellation, and the client waits on the socket for as long as the server hangs, holding a
thread and a pooled connection. So every connection checked out of the pool under a deadline
is armed here; if it is still checked out a short margin after its deadline, its socket is
shut down. The waiting call then fails at once with a disconnect error (which the pool
treats as such: the connection is discarded) and the call gets DEADLINE_EXCEEDED or
UNAVAILABLE. A transaction interrupted this way is rolled back by the server, or, if its
COMMIT had already reached the server, committed: the caller retries with the same id, which
every write of this service makes idempotent.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import socket
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

# After the deadline, the server's own statement_timeout gets this long to answer first.
MARGIN_S = 0.25


class Watchdog:
    def __init__(self, margin_s: float = MARGIN_S) -> None:
        self._margin_s = margin_s
        self._armed: dict[int, tuple[float, Any]] = {}  # key -> (deadline, DBAPI connection)
        self._due: list[tuple[float, int]] = []  # a heap of (deadline, key)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self.severed = 0
        self.notified = 0  # times arm() woke the thread

    def arm(self, key: int, dbapi_connection: Any, deadline: float) -> None:
        """Watch `dbapi_connection` until disarm(key); `deadline` is a time.monotonic()."""
        due = deadline + self._margin_s
        with self._wake:
            self._armed[key] = (due, dbapi_connection)
            entry = (due, key)
            heapq.heappush(self._due, entry)
            self._start()
            if self._due[0] == entry:  # sooner than what the thread waits for
                self.notified += 1
                self._wake.notify()

    def disarm(self, key: int) -> None:
        with self._wake:
            self._armed.pop(key, None)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                overdue = self._take_overdue()
                if not overdue:
                    self._wake.wait(self.next_wait())
                    continue
            for connection in overdue:
                self._sever(connection)

    def _is_live(self, due: float, key: int) -> bool:
        """Is this heap entry still armed (not disarmed, nor armed again since)?"""
        armed = self._armed.get(key)
        return armed is not None and armed[0] == due

    def _take_overdue(self) -> list[Any]:
        now, overdue = time.monotonic(), []
        while self._due and self._due[0][0] <= now:
            due, key = heapq.heappop(self._due)
            if self._is_live(due, key):
                overdue.append(self._armed.pop(key)[1])
        return overdue

    def next_wait(self) -> float | None:
        """Seconds until the soonest armed connection is due (None: none is armed); called
        with the lock held. Entries of connections disarmed since are dropped first: every
        checkin leaves one behind, and waking for each would wake this thread (and take the
        GIL) once per transaction."""
        due = self._due
        while due and not self._is_live(*due[0]):
            heapq.heappop(due)
        return max(due[0][0] - time.monotonic(), 0.0) if due else None

    def _sever(self, dbapi_connection: Any) -> None:
        """Shut the socket down under the waiting thread (shutdown acts on the socket, so a
        duplicate descriptor does it without racing the driver's own close)."""
        with contextlib.suppress(Exception):  # closed already: nothing to end
            duplicate = os.dup(dbapi_connection.pgconn.socket)
            with socket.socket(fileno=duplicate) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            self.severed += 1
            log.warning("database connection severed: no answer past the call's deadline")


WATCHDOG = Watchdog()  # one per process: its thread starts with the first armed connection
