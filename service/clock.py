"""The one clock of the service: aware UTC datetimes. Use cases and servicers take a `Clock`
so tests can set the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
