"""Pure rules of a member's selections (spec §7.1, 7.2): slots, change frequency, auto-fill,
purchase-history months, favorite-category choices. The use cases (service/app/) apply them
through engine/favorites.py; nothing here reads a clock or a database.

Time: every calendar notion ("day", ISO "week" from Monday 00:00, "month", "00:00") is in
the program's time zone `tz`; instants given and returned are aware datetimes, returned in
UTC. A local midnight that does not exist (a DST jump at 00:00) is the first instant of
that local day.

Slots: a member's slots for one offer are positions 0..N-1, each a SKU or None (empty).
A new selection is given as a full list of positions (shorter lists are padded with None).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.engine.model import FavoriteCategoryTerms, Frequency
from service.errors import InvalidArgument
from service.limits import quote

# --- change frequency -------------------------------------------------------------------------


def next_change_allowed(
    frequency: Frequency, every_n_days: int, last_change: datetime | None, tz: ZoneInfo
) -> datetime | None:
    """The instant (UTC) from which a filled slot may be replaced again.

    Convention: None means there is no such instant, for one of two reasons:
    - last_change is None: nothing was ever replaced, so a replacement is allowed now;
    - ONE_TIME after a change: never again during the offer.
    Use change_allowed() for the yes/no answer; this function says "when".

    DAILY, WEEKLY, MONTHLY are calendar periods: allowed from the start of the next day,
    ISO week (Monday 00:00) or month after the local date of the last change.
    EVERY_N_DAYS: allowed when the local date reaches last change's local date + N, at 00:00.
    """
    if last_change is None or frequency is Frequency.ONE_TIME:
        return None
    last_date = _local_date(last_change, tz)
    if frequency is Frequency.DAILY:
        next_date = last_date + timedelta(days=1)
    elif frequency is Frequency.WEEKLY:
        next_date = last_date + timedelta(days=7 - last_date.weekday())
    elif frequency is Frequency.MONTHLY:
        next_date = _first_of_next_month(last_date)
    elif frequency is Frequency.EVERY_N_DAYS:
        if every_n_days < 1:
            raise ValueError("EVERY_N_DAYS needs every_n_days >= 1")
        next_date = last_date + timedelta(days=every_n_days)
    else:
        raise ValueError(f"unknown frequency {frequency!r}")
    return local_midnight(next_date, tz)


def change_allowed(
    frequency: Frequency,
    every_n_days: int,
    last_change: datetime | None,
    now: datetime,
    tz: ZoneInfo,
) -> bool:
    """Whether a filled slot (or a chosen category) may be replaced at `now`."""
    if last_change is None:
        return True
    if frequency is Frequency.ONE_TIME:
        return False
    next_allowed = next_change_allowed(frequency, every_n_days, last_change, tz)
    assert next_allowed is not None
    return now >= next_allowed


def allowed_again_between(
    frequency: Frequency,
    every_n_days: int,
    last_change: datetime,
    since: datetime,
    now: datetime,
    tz: ZoneInfo,
) -> datetime | None:
    """The instant a replacement became allowed again, when it lies in (since, now]."""
    allowed_from = next_change_allowed(frequency, every_n_days, last_change, tz)
    if allowed_from is not None and since < allowed_from <= now:
        return allowed_from
    return None


def longest_period(frequency: Frequency, every_n_days: int) -> timedelta:
    """At least the longest time from a change to the next allowed one (a day may be 25 h):
    changes older than this before `since` cannot become allowed after it."""
    days = {Frequency.DAILY: 2, Frequency.WEEKLY: 8, Frequency.MONTHLY: 32}
    return timedelta(days=days.get(frequency, max(every_n_days, 1) + 1))


# --- favorite-product slots -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlotSelection:
    """A validated new selection: every position 0..N-1, and whether it replaces a filled
    slot (which needs the frequency check) or only fills empty ones (always allowed)."""

    slots: tuple[str | None, ...]
    replaces_filled_slot: bool


def validate_favorite_selection(
    new_slots: Sequence[str | None],
    allowed_list: Collection[str],
    slot_count: int,
    current_slots: Sequence[str | None],
    *,
    autofilled_positions: Collection[int] = (),
    field: str = "slots",
) -> SlotSelection:
    """Check a member's new selection: each SKU on the member's current list, no duplicates,
    at most `slot_count` positions. Raises InvalidArgument naming `field` ("slots[i]" ...).

    "Replacement": a position that held a SKU in `current_slots` and now holds another SKU
    or nothing. A position the system auto-filled (`autofilled_positions`) counts as empty:
    the member has not chosen it, so changing it is only filling.
    """
    if len(new_slots) > slot_count:
        raise InvalidArgument(field, f"at most {slot_count} slots")
    allowed = allowed_list if isinstance(allowed_list, set | frozenset) else set(allowed_list)
    seen: set[str] = set()
    for index, sku in enumerate(new_slots):
        if sku is None:
            continue
        if not sku:
            raise InvalidArgument(
                f"{field}[{index}]", "an empty SKU; use no value for an empty slot"
            )
        if sku not in allowed:
            raise InvalidArgument(f"{field}[{index}]", f"{quote(sku)} is not on the member's list")
        if sku in seen:
            raise InvalidArgument(f"{field}[{index}]", f"{quote(sku)} is already in another slot")
        seen.add(sku)
    slots = tuple(new_slots) + (None,) * (slot_count - len(new_slots))
    replaces = False
    for index, old in enumerate(current_slots):
        if old is None or index in autofilled_positions:
            continue
        new = slots[index] if index < slot_count else None
        if new != old:
            replaces = True
            break
    return SlotSelection(slots, replaces)


def autofill_order_from_history(purchases: Iterable[tuple[str, int, int]]) -> list[str]:
    """Candidates from last month's purchases (sku, quantity, amount), one row or more per
    SKU: most quantity first, ties by larger amount, then SKU."""
    totals: dict[str, list[int]] = {}
    for sku, quantity, amount in purchases:
        total = totals.setdefault(sku, [0, 0])
        total[0] += quantity
        total[1] += amount
    return sorted(totals, key=lambda sku: (-totals[sku][0], -totals[sku][1], sku))


def autofill_order_from_list(skus: Iterable[str]) -> list[str]:
    """Candidates from a predefined list: list order, each SKU once."""
    return list(dict.fromkeys(skus))


def autofill(
    current_slots: Sequence[str | None], candidates: Iterable[str], slot_count: int | None = None
) -> tuple[str | None, ...]:
    """Fill the empty slots, lowest position first, with candidates not already in a slot.
    Filled slots are never touched. `slot_count` pads `current_slots` to N positions."""
    count = len(current_slots) if slot_count is None else max(slot_count, len(current_slots))
    slots = list(current_slots) + [None] * (count - len(current_slots))
    present = {sku for sku in slots if sku is not None}
    empty = (index for index, sku in enumerate(slots) if sku is None)
    position = next(empty, None)
    for sku in candidates:
        if position is None:
            break
        if sku in present:
            continue
        slots[position] = sku
        present.add(sku)
        position = next(empty, None)
    return tuple(slots)


# --- purchase-history months ------------------------------------------------------------------


def month_key(moment: datetime, tz: ZoneInfo) -> str:
    """The local month of an instant: "YYYY-MM"."""
    local = _local_date(moment, tz)
    return f"{local.year:04d}-{local.month:02d}"


def previous_month_window(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local calendar month before the one containing `now`: the
    purchases that form a PURCHASE_HISTORY list. From August 1 00:00 local, July."""
    this_month = _local_date(now, tz).replace(day=1)
    previous_month = (this_month - timedelta(days=1)).replace(day=1)
    return local_midnight(previous_month, tz), local_midnight(this_month, tz)


# --- favorite categories ----------------------------------------------------------------------


def validate_category_choice(
    chosen: Sequence[str],
    offered: Collection[str],
    max_count: int,
    *,
    field: str = "chosen_group_ids",
) -> frozenset[str]:
    """A member's choice of categories (spec §7.2): each offered, no duplicates, at most
    max_count. Raises InvalidArgument naming `field` ("chosen_group_ids[i]" ...)."""
    if len(chosen) > max_count:
        raise InvalidArgument(field, f"at most {max_count} categories")
    seen: set[str] = set()
    for index, group_id in enumerate(chosen):
        if group_id not in offered:
            raise InvalidArgument(f"{field}[{index}]", f"{quote(group_id)} is not offered")
        if group_id in seen:
            raise InvalidArgument(f"{field}[{index}]", f"{quote(group_id)} chosen twice")
        seen.add(group_id)
    return frozenset(seen)


def effective_groups(terms: FavoriteCategoryTerms) -> tuple[str, ...]:
    """The groups whose terms apply, in offered order: acceptance on, the chosen groups still
    offered, at most max_count of them (each group counted once); acceptance off, every
    offered group. The one rule for the calculation (individual.py) and the lookup."""
    offered = dict.fromkeys(terms.group_ids)
    if not terms.acceptance_required:
        return tuple(offered)
    chosen = [group_id for group_id in offered if group_id in terms.chosen_group_ids]
    return tuple(chosen[: max(terms.max_count, 0)])


def carry_over_choice(
    previous_chosen: Collection[str], offered: Sequence[str], max_count: int
) -> frozenset[str]:
    """On re-import: earlier choices still offered are kept, at most max_count of them, the
    first ones in the new offered order."""
    kept = [group_id for group_id in dict.fromkeys(offered) if group_id in previous_chosen]
    return frozenset(kept[: max(max_count, 0)])


# --- local calendar ---------------------------------------------------------------------------


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """00:00 local on `day`, as a UTC instant."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _local_date(moment: datetime, tz: ZoneInfo) -> date:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(tz).date()


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)
