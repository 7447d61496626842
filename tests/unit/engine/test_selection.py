"""spec §7.1 / 7.2 selection rules at their boundaries (program zone Europe/Berlin)."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.engine.model import Frequency
from service.engine.selection import (
    SlotSelection,
    autofill,
    autofill_order_from_history,
    autofill_order_from_list,
    carry_over_choice,
    change_allowed,
    local_midnight,
    month_key,
    next_change_allowed,
    previous_month_window,
    validate_category_choice,
    validate_favorite_selection,
)
from service.errors import InvalidArgument
from tests.unit.engine.builders import utc

BERLIN = ZoneInfo("Europe/Berlin")
SECOND = timedelta(seconds=1)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(ZoneInfo("UTC"))  # type: ignore[misc]


# --- change frequency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "n", "last_change", "next_allowed"),
    [
        (Frequency.DAILY, 0, berlin(2026, 11, 23, 23, 59, 59), berlin(2026, 11, 24)),
        (Frequency.DAILY, 0, berlin(2026, 11, 23, 0, 0), berlin(2026, 11, 24)),
        # ISO weeks start on Monday 00:00
        (Frequency.WEEKLY, 0, berlin(2026, 11, 22, 23, 59, 59), berlin(2026, 11, 23)),  # Sunday
        (Frequency.WEEKLY, 0, berlin(2026, 11, 23, 0, 0), berlin(2026, 11, 30)),  # Monday
        (Frequency.WEEKLY, 0, berlin(2026, 11, 25, 12, 0), berlin(2026, 11, 30)),
        (Frequency.MONTHLY, 0, berlin(2026, 11, 30, 23, 59, 59), berlin(2026, 12, 1)),
        (Frequency.MONTHLY, 0, berlin(2026, 12, 1, 0, 0), berlin(2027, 1, 1)),
        # EVERY_N_DAYS: the local date of the last change + N, at 00:00
        (Frequency.EVERY_N_DAYS, 3, berlin(2026, 11, 23, 23, 59), berlin(2026, 11, 26)),
        (Frequency.EVERY_N_DAYS, 1, berlin(2026, 11, 23, 0, 1), berlin(2026, 11, 24)),
        (Frequency.EVERY_N_DAYS, 30, berlin(2026, 3, 1, 12), berlin(2026, 3, 31)),  # across DST
    ],
)
def test_the_next_change_is_allowed_at_the_start_of_the_next_period(
    frequency: Frequency, n: int, last_change: datetime, next_allowed: datetime
) -> None:
    assert next_change_allowed(frequency, n, last_change, BERLIN) == next_allowed
    assert not change_allowed(frequency, n, last_change, next_allowed - SECOND, BERLIN)
    assert change_allowed(frequency, n, last_change, next_allowed, BERLIN)


def test_periods_are_calendar_periods_of_the_program_zone_not_utc() -> None:
    # 23:30 UTC on Nov 30 is 00:30 on Dec 1 in Berlin: a new month there already
    last = utc(2026, 11, 30, 23, 30)
    assert next_change_allowed(Frequency.MONTHLY, 0, last, BERLIN) == berlin(2027, 1, 1)
    assert next_change_allowed(Frequency.DAILY, 0, last, BERLIN) == utc(2026, 12, 1, 23, 0)


def test_without_a_previous_change_a_replacement_is_allowed_now() -> None:
    for frequency in Frequency:
        assert change_allowed(frequency, 1, None, utc(2026, 1, 1), BERLIN)
        assert next_change_allowed(frequency, 1, None, BERLIN) is None


def test_one_time_never_allows_a_second_change() -> None:
    last = utc(2026, 1, 1)
    assert next_change_allowed(Frequency.ONE_TIME, 0, last, BERLIN) is None
    assert not change_allowed(Frequency.ONE_TIME, 0, last, utc(2036, 1, 1), BERLIN)


def test_every_n_days_needs_a_positive_n() -> None:
    with pytest.raises(ValueError):
        next_change_allowed(Frequency.EVERY_N_DAYS, 0, utc(2026, 1, 1), BERLIN)


def test_a_missing_local_midnight_is_the_first_instant_of_the_day() -> None:
    # Havana jumps from 00:00 to 01:00 on 2026-03-08 (UTC-5 -> UTC-4)
    havana = ZoneInfo("America/Havana")
    assert local_midnight(datetime(2026, 3, 8).date(), havana) == utc(2026, 3, 8, 5, 0)


# --- favorite-product slots --------------------------------------------------------------------

LIST = ["a", "b", "c", "d", "e"]


def test_filling_empty_slots_is_not_a_replacement() -> None:
    selection = validate_favorite_selection(["a", "b"], LIST, 3, [None, None, None])
    assert selection == SlotSelection(("a", "b", None), replaces_filled_slot=False)
    assert not validate_favorite_selection(
        ["a", "b", "c"], LIST, 3, ["a", None]
    ).replaces_filled_slot


def test_changing_or_emptying_a_filled_slot_is_a_replacement() -> None:
    assert validate_favorite_selection(["a", "c"], LIST, 3, ["a", "b"]).replaces_filled_slot
    assert validate_favorite_selection(["a", None], LIST, 3, ["a", "b"]).replaces_filled_slot
    assert validate_favorite_selection(
        ["b", "a"], LIST, 3, ["a", "b"]
    ).replaces_filled_slot  # positions


def test_changing_an_auto_filled_slot_is_only_filling() -> None:
    selection = validate_favorite_selection(
        ["a", "c"], LIST, 3, ["a", "b"], autofilled_positions={1}
    )
    assert not selection.replaces_filled_slot


def test_a_smaller_slot_count_drops_slots_beyond_it_as_a_replacement() -> None:
    assert validate_favorite_selection(["a"], LIST, 1, ["a", "b"]).replaces_filled_slot


@pytest.mark.parametrize(
    ("slots", "field"),
    [
        (["a", "x"], "slots[1]"),  # not on the list
        (["a", "a"], "slots[1]"),  # twice
        (["a", ""], "slots[1]"),
        (["a", "b", "c", "d"], "slots"),  # more than N
    ],
)
def test_a_bad_selection_is_refused(slots: list[str | None], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_favorite_selection(slots, LIST, 3, [])
    assert caught.value.field == field


def test_autofill_from_history_orders_by_quantity_then_amount_then_sku() -> None:
    purchases = [("b", 2000, 100), ("a", 2000, 100), ("c", 3000, 50), ("d", 2000, 200), ("a", 0, 1)]
    assert autofill_order_from_history(purchases) == ["c", "d", "a", "b"]


def test_autofill_from_a_list_keeps_the_list_order() -> None:
    assert autofill_order_from_list(["c", "a", "c", "b"]) == ["c", "a", "b"]


def test_autofill_fills_only_empty_slots_with_skus_not_already_there() -> None:
    assert autofill(["b", None, "d", None], ["a", "b", "c", "e"]) == ("b", "a", "d", "c")
    assert autofill([None], []) == (None,)
    assert autofill(["a"], ["b"], slot_count=3) == ("a", "b", None)


# --- purchase-history months -------------------------------------------------------------------


def test_on_august_1_at_00_00_local_july_becomes_the_list() -> None:
    july_last_second = berlin(2026, 7, 31, 23, 59, 59)
    august_first = berlin(2026, 8, 1)
    assert month_key(july_last_second, BERLIN) == "2026-07"
    assert month_key(august_first, BERLIN) == "2026-08"
    assert previous_month_window(july_last_second, BERLIN) == (
        berlin(2026, 6, 1),
        berlin(2026, 7, 1),
    )
    assert previous_month_window(august_first, BERLIN) == (berlin(2026, 7, 1), berlin(2026, 8, 1))
    # in UTC the switch is at 22:00 on July 31 (CEST = UTC+2)
    assert august_first == utc(2026, 7, 31, 22, 0)


def test_the_previous_month_of_january_is_last_december() -> None:
    assert previous_month_window(berlin(2027, 1, 15), BERLIN) == (
        berlin(2026, 12, 1),
        berlin(2027, 1, 1),
    )


# --- favorite categories -----------------------------------------------------------------------


def test_a_member_chooses_up_to_max_count_offered_categories() -> None:
    assert validate_category_choice(["x", "y"], ["x", "y", "z"], 2) == {"x", "y"}
    assert validate_category_choice([], ["x"], 2) == frozenset()


@pytest.mark.parametrize(
    ("chosen", "field"),
    [
        (["x", "q"], "chosen_group_ids[1]"),
        (["x", "x"], "chosen_group_ids[1]"),
        (["x", "y", "z"], "chosen_group_ids"),
    ],
)
def test_a_bad_category_choice_is_refused(chosen: list[str], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_category_choice(chosen, ["x", "y", "z"], 2)
    assert caught.value.field == field


def test_a_reimport_keeps_earlier_choices_still_offered_trimmed_to_max_count() -> None:
    assert carry_over_choice({"a", "b", "gone"}, ["c", "b", "a"], 1) == {"b"}
    assert carry_over_choice({"a", "b", "gone"}, ["c", "b", "a"], 5) == {"a", "b"}
