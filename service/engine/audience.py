"""Target-audience criteria (spec §4, level 3): tags, age, gender, birthday window.

Dates are local dates in the program's time zone. A birthday on February 29 falls on
February 28 in years that are not leap years, both for the age and for the birthday window.
"""

from __future__ import annotations

import calendar
from datetime import date

from service.engine.model import Audience, Member


def birthday_in_year(birth_date: date, year: int) -> date:
    """The date a birthday falls on in `year` (Feb 29 -> Feb 28 in a common year)."""
    if birth_date.month == 2 and birth_date.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birth_date.replace(year=year)


def age_on(birth_date: date, on: date) -> int:
    """Whole years completed on `on` (the birthday itself counts)."""
    years = on.year - birth_date.year
    if on < birthday_in_year(birth_date, on.year):
        years -= 1
    return years


def birthday_within(birth_date: date, on: date, days: int) -> bool:
    """Whether a birthday falls within `days` days before or after `on`, inclusive; looks at
    the previous, the current and the next year, so windows cross the year end."""
    for year in (on.year - 1, on.year, on.year + 1):
        if year < 1 or year > 9999:
            continue
        if abs((birthday_in_year(birth_date, year) - on).days) <= days:
            return True
    return False


def audience_matches(audience: Audience, member: Member, on: date) -> bool:
    """Every criterion that is set must match; tags match when the member has any of them.
    A criterion about age or birthday never matches a member without a birth date."""
    if audience.segment_tags and audience.segment_tags.isdisjoint(member.segment_tags):
        return False
    if audience.gender is not None and member.gender is not audience.gender:
        return False
    if (
        audience.min_age is None
        and audience.max_age is None
        and audience.birthday_within_days is None
    ):
        return True
    birth_date = member.birth_date
    if birth_date is None:
        return False
    if audience.min_age is not None or audience.max_age is not None:
        age = age_on(birth_date, on)
        if audience.min_age is not None and age < audience.min_age:
            return False
        if audience.max_age is not None and age > audience.max_age:
            return False
    days = audience.birthday_within_days
    return days is None or birthday_within(birth_date, on, days)
