"""Usage-limit period keys (spec §7.3): which bucket a receipt's use of a limit falls into.

Keys are computed from the local date in the program's time zone:
OFFER -> "OFFER", DAY -> "2026-11-23", WEEK (ISO) -> "2026-W47", MONTH -> "2026-11".
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from service.engine.model import LimitPeriod

OFFER_PERIOD_KEY = "OFFER"


def period_key(period: LimitPeriod, local_date: date) -> str:
    """The key of the usage period that contains `local_date` (a date in the program zone)."""
    if period is LimitPeriod.OFFER:
        return OFFER_PERIOD_KEY
    if period is LimitPeriod.DAY:
        return local_date.isoformat()
    if period is LimitPeriod.WEEK:
        iso_year, iso_week, _ = local_date.isocalendar()
        return f"{iso_year:04d}-W{iso_week:02d}"
    if period is LimitPeriod.MONTH:
        return f"{local_date.year:04d}-{local_date.month:02d}"
    raise ValueError(f"unknown limit period {period!r}")


def local_date(moment: datetime, time_zone: ZoneInfo) -> date:
    """The calendar date of an aware instant in `time_zone`."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(time_zone).date()
