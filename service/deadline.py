"""The deadline of the call this thread is serving, for layers that know nothing of gRPC.

The call interceptor sets it from the caller's deadline; the store bounds its waits by what
remains (statement and lock timeouts on PostgreSQL, the busy timeout on SQLite) and refuses
to commit once it has passed, so a call past its deadline writes nothing. Threads that serve
no call (the change follower, jobs) have none.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from service.errors import DeadlineExceeded

_deadline: ContextVar[float | None] = ContextVar("call_deadline", default=None)


def set_call_deadline(seconds_remaining: float | None) -> None:
    """From the call's remaining time (None: the caller set no deadline)."""
    _deadline.set(None if seconds_remaining is None else time.monotonic() + seconds_remaining)


def remaining_seconds() -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def check_deadline(doing: str) -> None:
    left = remaining_seconds()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"the call's deadline passed before {doing}; nothing was written")
