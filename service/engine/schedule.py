"""Offer schedules (spec §4): days of week and local time ranges, in the store's local time."""

from __future__ import annotations

from datetime import datetime

from service.engine.model import Schedule

MINUTES_PER_DAY = 24 * 60


class LocalClock:
    """A sale instant read on a local wall clock: ISO weekday (1 = Monday), the weekday before,
    and minutes since local midnight. Computed once per receipt and zone."""

    __slots__ = ("weekday", "previous_weekday", "minute")

    def __init__(self, local_time: datetime) -> None:
        self.weekday = local_time.isoweekday()
        self.previous_weekday = 7 if self.weekday == 1 else self.weekday - 1
        self.minute = local_time.hour * 60 + local_time.minute


def schedule_open(schedule: Schedule, clock: LocalClock) -> bool:
    """Whether the schedule is open at the clock's local time.

    Empty days mean every day; empty ranges mean all day. A range [start, end) with
    end <= start crosses midnight and belongs to the day it starts on: 22:00-02:00 on Friday
    covers Friday 22:00-24:00 and Saturday 00:00-02:00. Wall-clock minutes are used, so on a
    DST change day a range covers what the local clocks show (a range inside a skipped hour
    never opens that day).
    """
    days = schedule.days_of_week
    ranges = schedule.time_ranges
    today_listed = not days or clock.weekday in days
    if not ranges:
        return today_listed
    yesterday_listed = not days or clock.previous_weekday in days
    minute = clock.minute
    for time_range in ranges:
        start = time_range.start_minute
        end = time_range.end_minute
        if start < end:
            if today_listed and start <= minute < end:
                return True
        else:  # crosses midnight: today's evening part, or yesterday's night part
            if today_listed and minute >= start:
                return True
            if yesterday_listed and minute < end:
                return True
    return False
