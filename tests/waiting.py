"""Waiting on a condition, never on a sleep: a test polls what it waits for, with a bound."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(check: Callable[[], object], within_s: float = 15.0, *, what: str = "condition") -> float:
    """Poll `check` until it is true; the seconds it took. AssertionError after `within_s`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within_s:
            raise AssertionError(f"{what} not reached within {within_s} s")
        time.sleep(0.02)
    return time.monotonic() - started
