from datetime import date
from zoneinfo import ZoneInfo

import pytest

from service.engine.model import LimitPeriod
from service.engine.usage import local_date, period_key
from tests.unit.engine.builders import utc


@pytest.mark.parametrize(
    ("period", "day", "key"),
    [
        (LimitPeriod.OFFER, date(2026, 11, 23), "OFFER"),
        (LimitPeriod.DAY, date(2026, 11, 23), "2026-11-23"),
        (LimitPeriod.WEEK, date(2026, 11, 23), "2026-W48"),
        (LimitPeriod.WEEK, date(2026, 11, 22), "2026-W47"),  # Sunday ends the ISO week
        (LimitPeriod.WEEK, date(2027, 1, 1), "2026-W53"),  # ISO year differs from the date's
        (LimitPeriod.WEEK, date(2024, 12, 30), "2025-W01"),
        (LimitPeriod.MONTH, date(2026, 11, 30), "2026-11"),
    ],
)
def test_usage_period_keys(period: LimitPeriod, day: date, key: str) -> None:
    assert period_key(period, day) == key


def test_the_local_date_is_the_program_zones() -> None:
    # 23:30 UTC on Nov 30 is already December 1 in Berlin
    assert local_date(utc(2026, 11, 30, 23, 30), ZoneInfo("Europe/Berlin")) == date(2026, 12, 1)
    assert local_date(utc(2026, 11, 30, 23, 30), ZoneInfo("America/New_York")) == date(2026, 11, 30)
