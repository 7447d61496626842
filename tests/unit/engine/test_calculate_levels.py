"""spec §4 by worked examples: offer levels, validity, schedules, stores, channels."""

from datetime import date, datetime, timedelta

import pytest

from service.engine.model import (
    Audience,
    BenefitKind,
    Channel,
    Gender,
    Level,
    LimitPeriod,
    LimitUnit,
    Mechanic,
    Schedule,
    Store,
    TimeRange,
    UsageLimit,
)
from tests.unit.engine.builders import (
    applied,
    line,
    member,
    offer,
    one_line,
    snapshot,
    utc,
)


def applies(snap, at: datetime | None = None, **fields) -> bool:
    if at is not None:
        fields["at"] = at
    return bool(one_line(snap, line("milk-1"), **fields).benefits)


# --- levels -----------------------------------------------------------------------------------


def test_an_all_buyers_offer_applies_to_anyone() -> None:
    snap = snapshot([offer("o")])
    assert applies(snap)
    assert applies(snap, member=member())


def test_a_members_only_offer_needs_an_identified_active_member() -> None:
    snap = snapshot([offer("o", level=Level.MEMBERS_ONLY)])
    assert not applies(snap)
    assert not applies(snap, member=member(active=False))
    assert applies(snap, member=member())


def test_a_yellow_price_tag_is_a_fixed_price_for_card_holders() -> None:
    snap = snapshot([offer("yellow", BenefitKind.FIXED_PRICE, 8990, level=Level.MEMBERS_ONLY)])
    (benefit,) = one_line(snap, line("milk-1", 9990), member=member()).benefits
    assert (benefit.discount, benefit.mechanic, benefit.text) == (
        1000,
        Mechanic.MEMBERS_ONLY,
        "Members price 89.90",
    )


def audience_offer(**criteria) -> list:
    return [offer("t", level=Level.TARGET_AUDIENCE, audience=Audience(**criteria))]


def test_a_target_audience_offer_needs_a_member_carrying_one_of_its_tags() -> None:
    snap = snapshot(audience_offer(segment_tags=frozenset({"pensioner", "student"})))
    assert not applies(snap)
    assert not applies(snap, member=member(segment_tags=frozenset({"vip"})))
    assert applies(snap, member=member(segment_tags=frozenset({"student", "vip"})))
    assert not applies(snap, member=member(active=False, segment_tags=frozenset({"student"})))


def test_a_target_audience_offer_without_criteria_needs_an_active_member_only() -> None:
    snap = snapshot([offer("t", level=Level.TARGET_AUDIENCE)])
    assert not applies(snap)
    assert applies(snap, member=member())


def test_age_is_counted_in_whole_years_at_the_local_sale_date() -> None:
    snap = snapshot(audience_offer(min_age=60))
    sixty_on_dec_1 = member(birth_date=date(1966, 12, 1))
    # 22:59 UTC Nov 30 is 23:59 in Berlin: still 59
    assert not applies(snap, at=utc(2026, 11, 30, 22, 59), member=sixty_on_dec_1)
    # 23:00 UTC Nov 30 is 00:00 on Dec 1 in Berlin: 60 today
    assert applies(snap, at=utc(2026, 11, 30, 23, 0), member=sixty_on_dec_1)


def test_an_age_range_is_inclusive_at_both_ends() -> None:
    snap = snapshot(audience_offer(min_age=18, max_age=25))
    at = utc(2026, 6, 1, 10)
    assert not applies(snap, at=at, member=member(birth_date=date(2008, 6, 2)))  # 17
    assert applies(snap, at=at, member=member(birth_date=date(2008, 6, 1)))  # 18 today
    assert applies(snap, at=at, member=member(birth_date=date(2000, 6, 2)))  # 25
    assert not applies(snap, at=at, member=member(birth_date=date(2000, 6, 1)))  # 26 today
    assert not applies(snap, at=at, member=member())  # no birth date: no match


def test_gender_must_match_when_the_audience_sets_it() -> None:
    snap = snapshot(audience_offer(gender=Gender.FEMALE))
    assert applies(snap, member=member(gender=Gender.FEMALE))
    assert not applies(snap, member=member(gender=Gender.MALE))
    assert not applies(snap, member=member())


@pytest.mark.parametrize(
    ("birthday", "sale_day", "days", "matches"),
    [
        (date(1980, 1, 2), date(2026, 12, 30), 3, True),  # across new year, forwards
        (date(1980, 1, 2), date(2026, 12, 30), 2, False),
        (date(1980, 12, 30), date(2027, 1, 2), 3, True),  # across new year, backwards
        (date(1980, 6, 10), date(2026, 6, 10), 0, True),  # on the day
        (date(1980, 6, 10), date(2026, 6, 17), 7, True),
        (date(1980, 6, 10), date(2026, 6, 18), 7, False),
        (date(1984, 2, 29), date(2026, 2, 28), 0, True),  # Feb 29 falls on Feb 28
        (date(1984, 2, 29), date(2026, 3, 1), 0, False),
        (date(1984, 2, 29), date(2028, 2, 29), 0, True),  # a leap year has the day
    ],
)
def test_a_birthday_window_is_plus_minus_n_days_around_the_sale_date(
    birthday: date, sale_day: date, days: int, matches: bool
) -> None:
    snap = snapshot(audience_offer(birthday_within_days=days))
    at = datetime.combine(sale_day, datetime.min.time()).replace(
        tzinfo=utc(2000, 1, 1).tzinfo
    ) + timedelta(hours=10)
    assert applies(snap, at=at, member=member(birth_date=birthday)) is matches


def test_a_feb_29_birthday_counts_a_year_older_on_feb_28_in_a_common_year() -> None:
    snap = snapshot(audience_offer(min_age=18))
    leapling = member(birth_date=date(2008, 2, 29))
    assert not applies(snap, at=utc(2026, 2, 27, 12), member=leapling)
    assert applies(snap, at=utc(2026, 2, 28, 12), member=leapling)


def test_an_audience_on_another_level_is_ignored() -> None:
    snap = snapshot([offer("o", audience=Audience(segment_tags=frozenset({"x"})))])
    assert applies(snap)


# --- validity ---------------------------------------------------------------------------------


def test_an_offer_is_valid_from_its_start_inclusive_to_its_end_exclusive() -> None:
    start, end = utc(2026, 11, 1), utc(2026, 12, 1)
    snap = snapshot([offer("o", valid_from=start, valid_to=end)])
    assert not applies(snap, at=start - timedelta(microseconds=1))
    assert applies(snap, at=start)
    assert applies(snap, at=end - timedelta(minutes=1))  # the last minute of the window
    assert applies(snap, at=end - timedelta(microseconds=1))
    assert not applies(snap, at=end)


def test_validity_compares_instants_whatever_the_zone_they_are_written_in() -> None:
    from zoneinfo import ZoneInfo

    end = datetime(2026, 12, 1, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 23:00 UTC Nov 30
    snap = snapshot([offer("o", valid_to=end)])
    assert applies(snap, at=utc(2026, 11, 30, 22, 59))
    assert not applies(snap, at=utc(2026, 11, 30, 23, 0))


# --- schedules --------------------------------------------------------------------------------


def scheduled(days=(), *ranges: tuple[int, int]) -> list:
    schedule = Schedule(frozenset(days), tuple(TimeRange(a * 60, b * 60) for a, b in ranges))
    return [offer("o", schedule=schedule)]


def test_a_schedule_range_includes_its_start_and_excludes_its_end() -> None:
    snap = snapshot(scheduled((), (8, 12)))  # Berlin is UTC+1 in November
    assert not applies(snap, at=utc(2026, 11, 23, 6, 59))
    assert applies(snap, at=utc(2026, 11, 23, 7, 0))
    assert applies(snap, at=utc(2026, 11, 23, 10, 59))
    assert not applies(snap, at=utc(2026, 11, 23, 11, 0))


def test_a_schedule_applies_only_on_its_days_of_week() -> None:
    snap = snapshot(scheduled({1, 3}))  # Monday and Wednesday, all day
    assert applies(snap, at=utc(2026, 11, 23, 12))  # Monday
    assert not applies(snap, at=utc(2026, 11, 24, 12))  # Tuesday
    assert applies(snap, at=utc(2026, 11, 25, 12))  # Wednesday
    # Sunday 23:30 UTC is already Monday 00:30 in Berlin
    assert applies(snap, at=utc(2026, 11, 22, 23, 30))


def test_a_range_across_midnight_belongs_to_the_day_it_starts_on() -> None:
    snap = snapshot(scheduled({5}, (22, 2)))  # Friday 22:00 - Saturday 02:00, Berlin = UTC+1
    assert not applies(snap, at=utc(2026, 11, 27, 20, 59))  # Friday 21:59
    assert applies(snap, at=utc(2026, 11, 27, 21, 0))  # Friday 22:00
    assert applies(snap, at=utc(2026, 11, 28, 0, 59))  # Saturday 01:59
    assert not applies(snap, at=utc(2026, 11, 28, 1, 0))  # Saturday 02:00
    assert not applies(snap, at=utc(2026, 11, 28, 22, 0))  # Saturday 23:00: not Friday
    assert not applies(snap, at=utc(2026, 11, 27, 0, 0))  # Friday 01:00: Thursday's night


def test_a_schedule_follows_the_local_clock_on_a_dst_change_day_in_berlin() -> None:
    # 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST (01:00 UTC)
    snap = snapshot(scheduled((), (8, 9)))
    assert applies(snap, at=utc(2026, 3, 28, 7, 30))  # Saturday 08:30 CET
    assert applies(snap, at=utc(2026, 3, 29, 6, 30))  # Sunday 08:30 CEST
    assert not applies(snap, at=utc(2026, 3, 29, 7, 30))  # Sunday 09:30 CEST
    # a range inside the skipped hour never opens that day
    night = snapshot(scheduled((), (2, 3)))
    assert not applies(night, at=utc(2026, 3, 29, 0, 59))  # 01:59 CET
    assert not applies(night, at=utc(2026, 3, 29, 1, 0))  # 03:00 CEST


def test_a_schedule_follows_the_local_clock_on_a_dst_change_day_in_new_york() -> None:
    # 2026-11-01: New York falls back from 02:00 EDT to 01:00 EST; 01:xx happens twice
    snap = snapshot(scheduled((), (1, 2)), zone="America/New_York")
    assert applies(snap, at=utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert applies(snap, at=utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert not applies(snap, at=utc(2026, 11, 1, 7, 0))  # 02:00 EST


def test_a_stores_own_time_zone_drives_its_schedules() -> None:
    stores = [Store("ny", "New York", "America/New_York"), Store("berlin", "Berlin")]
    snap = snapshot(scheduled((), (8, 12)), stores=stores)
    at = utc(2026, 11, 23, 14, 0)  # 09:00 in New York, 15:00 in Berlin
    assert applies(snap, at=at, store_id="ny")
    assert not applies(snap, at=at, store_id="berlin")
    assert not applies(snap, at=at, store_id="unknown-store")  # the program's zone


def test_pensioners_get_10_percent_from_8_to_12_store_time() -> None:
    pensioners = offer(
        "pensioners",
        level=Level.TARGET_AUDIENCE,
        audience=Audience(segment_tags=frozenset({"pensioner"})),
        schedule=Schedule(time_ranges=(TimeRange(8 * 60, 12 * 60),)),
    )
    snap = snapshot([pensioners])
    pensioner = member(segment_tags=frozenset({"pensioner"}))
    assert applies(snap, at=utc(2026, 11, 23, 8), member=pensioner)  # 09:00 Berlin
    assert not applies(snap, at=utc(2026, 11, 23, 12), member=pensioner)  # 13:00 Berlin
    assert not applies(snap, at=utc(2026, 11, 23, 8), member=member())


# --- stores, channels, limits -----------------------------------------------------------------


def test_a_store_filter_limits_an_offer_to_its_stores() -> None:
    snap = snapshot([offer("o", store_ids=frozenset({"s1", "s2"}))])
    assert applies(snap, store_id="s2")
    assert not applies(snap, store_id="s3")
    assert not applies(snap)


def test_a_channel_filter_limits_an_offer_to_its_channels() -> None:
    snap = snapshot([offer("o", channels=frozenset({Channel.ONLINE}))])
    assert applies(snap, channel=Channel.ONLINE)
    assert not applies(snap, channel=Channel.POS)


def test_an_offer_limited_in_receipts_applies_while_the_member_has_receipts_left() -> None:
    limit = UsageLimit(LimitUnit.RECEIPTS, 2, LimitPeriod.WEEK)
    snap = snapshot([offer("o", level=Level.MEMBERS_ONLY, usage_limit=limit)])
    at = utc(2026, 11, 23, 12)  # ISO week 2026-W48
    used_once = member(usage={("o", "2026-W48"): 1})
    used_twice = member(usage={("o", "2026-W48"): 2})
    used_last_week = member(usage={("o", "2026-W47"): 2})
    assert applies(snap, at=at, member=used_once)
    assert not applies(snap, at=at, member=used_twice)
    assert applies(snap, at=at, member=used_last_week)


def test_a_week_limit_period_follows_the_program_zone() -> None:
    limit = UsageLimit(LimitUnit.RECEIPTS, 1, LimitPeriod.WEEK)
    snap = snapshot([offer("o", level=Level.MEMBERS_ONLY, usage_limit=limit)])
    # Sunday 23:30 UTC is Monday 00:30 in Berlin: a new ISO week there
    result = one_line(
        snap,
        line("milk-1"),
        at=utc(2026, 11, 22, 23, 30),
        member=member(usage={("o", "2026-W47"): 1}),
    )
    assert applied(result) == [("o", 1000, 0)]
