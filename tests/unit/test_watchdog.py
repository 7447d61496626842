"""The database watchdog's thread wakes for connections still checked out, not once per
transaction (service/store/watchdog.py; severing a hung server's socket is tested end to end
in tests/e2e/test_hung_store.py)."""

from __future__ import annotations

import time

from service.store.watchdog import Watchdog


def test_a_connection_armed_again_after_its_checkin_does_not_wake_the_thread() -> None:
    watchdog = Watchdog()
    now = time.monotonic()
    with watchdog._wake:  # noqa: SLF001 - (reentrant) the thread looks only once we are done
        watchdog.arm(1, object(), now + 60)
        assert watchdog.notified == 1  # the first: the thread waits for it from now on
        for n in range(1, 200):  # one pooled connection, one transaction after another
            watchdog.disarm(1)
            watchdog.arm(1, object(), now + 60 + n / 1000)
        assert watchdog.notified == 1


def test_a_connection_due_sooner_than_any_other_wakes_the_thread() -> None:
    watchdog = Watchdog()
    now = time.monotonic()
    with watchdog._wake:  # noqa: SLF001 - as above
        watchdog.arm(1, object(), now + 60)
        watchdog.arm(2, object(), now + 30)
        assert watchdog.notified == 2


def test_the_thread_waits_for_the_soonest_connection_still_checked_out() -> None:
    watchdog = Watchdog(margin_s=0.0)
    now = time.monotonic()
    for key in range(50):  # checked in since: nothing to wait for
        watchdog.arm(key, object(), now + 1 + key / 100)
        watchdog.disarm(key)
    watchdog.arm(7, object(), now + 1000)  # armed again, later: its old entry is stale
    watchdog.arm(99, object(), now + 500)
    with watchdog._wake:  # noqa: SLF001 - called with the lock held, as the thread does
        wait = watchdog.next_wait()
        assert wait is not None and 499 < wait <= 500
        watchdog.disarm(99)
        wait = watchdog.next_wait()
        assert wait is not None and 999 < wait <= 1000
        watchdog.disarm(7)
        assert watchdog.next_wait() is None
