"""A member's favorite products and favorite categories as the service applies them (spec §7.1,
§7.2; docs/favorites.md): the list a member chooses from, the state of their slots, change
windows and refusals, how a change is judged, what auto-fill adds, which categories apply.

Pure, like the rest of the engine: the store reads and writes the rows, the use cases
(service/app/favorites.py, categories.py, jobs.py) load the state, apply these rules and
commit. The frequency, slot and month primitives are in selection.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from service.engine.model import FavoriteCategoryTerms, FavoriteProductsOffer, Frequency, ListSource
from service.engine.selection import (
    autofill,
    autofill_order_from_history,
    autofill_order_from_list,
    change_allowed,
    effective_groups,
    month_key,
    next_change_allowed,
    previous_month_window,
    validate_category_choice,
    validate_favorite_selection,
)
from service.engine.snapshot import Snapshot
from service.engine.validity import check_offer_open
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.limits import quote

# A member's purchases of one month: (sku, quantity in thousandths, amount in minor units).
Purchases = Iterable[tuple[str, int, int]]


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slot:
    index: int
    sku: str | None  # None: empty
    auto_filled: bool = False
    filled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    """When a member may replace a filled slot (or a chosen category) again."""

    allowed_now: bool
    next_allowed: datetime | None = None  # set only when not allowed now and not never
    never_again: bool = False  # ONE_TIME used, or the next period starts after the offer


@dataclass(frozen=True, slots=True)
class FavoriteState:
    """A member's selection for one favorite-products offer at an instant (a lookup's `at`, a
    write's `now`), as stored."""

    offer: FavoriteProductsOffer
    slots: tuple[Slot, ...]  # every position 0..N-1 (and any stored beyond N)
    choices: tuple[str, ...]  # the member's current list, in list (auto-fill) order
    last_change_at: datetime | None
    version: int
    window: ChangeWindow

    @property
    def skus(self) -> tuple[str | None, ...]:
        return tuple(slot.sku for slot in self.slots)


@dataclass(frozen=True, slots=True)
class CategoryState:
    """A member's terms for one favorite-categories offer with their choice, at an instant."""

    terms: FavoriteCategoryTerms
    last_change_at: datetime | None
    window: ChangeWindow
    version: int = 0

    @property
    def applying(self) -> tuple[str, ...]:
        """The groups that apply (the lookup's `chosen` marks)."""
        return effective_groups(self.terms)


@dataclass(frozen=True, slots=True)
class SelectionChange:
    """A judged change of a member's slots: the slots to store, and the start of the member's
    frequency period afterwards (moved to now by a member's own replacement only)."""

    slots: tuple[str | None, ...]
    last_change_at: datetime | None


@dataclass(frozen=True, slots=True)
class CategoryChange:
    chosen: frozenset[str]
    last_change_at: datetime | None


# --- change windows -----------------------------------------------------------------------------


def change_window(
    frequency: Frequency,
    every_n_days: int,
    last_change_at: datetime | None,
    at: datetime,
    tz: ZoneInfo,
    valid_to: datetime | None = None,
) -> ChangeWindow:
    """Whether a replacement is allowed at `at`, else when it will be (or never again)."""
    if change_allowed(frequency, every_n_days, last_change_at, at, tz):
        return ChangeWindow(allowed_now=True)
    next_allowed = next_change_allowed(frequency, every_n_days, last_change_at, tz)
    if next_allowed is None or (valid_to is not None and next_allowed >= valid_to):
        return ChangeWindow(allowed_now=False, never_again=True)
    return ChangeWindow(allowed_now=False, next_allowed=next_allowed)


def change_refused(window: ChangeWindow, what: str = "a filled slot") -> FailedPrecondition:
    """The FAILED_PRECONDITION for a replacement the frequency does not allow now."""
    if window.never_again:
        message = f"{what} may not be replaced again during this offer"
    else:
        assert window.next_allowed is not None
        message = f"{what} may be replaced again from {window.next_allowed.isoformat()}"
    return FailedPrecondition(
        message, reason="CHANGE_NOT_ALLOWED", next_allowed=window.next_allowed
    )


def _favorite_window(
    favorite: FavoriteProductsOffer, last_change_at: datetime | None, at: datetime, tz: ZoneInfo
) -> ChangeWindow:
    return change_window(
        favorite.frequency, favorite.every_n_days, last_change_at, at, tz, favorite.offer.valid_to
    )


def category_window(
    terms: FavoriteCategoryTerms, last_change_at: datetime | None, at: datetime, tz: ZoneInfo
) -> ChangeWindow:
    """Acceptance off: nothing to choose, so no change is allowed (and none is needed)."""
    if not terms.acceptance_required:
        return ChangeWindow(allowed_now=False)
    return change_window(
        terms.frequency, terms.every_n_days, last_change_at, at, tz, terms.valid_to
    )


# --- a member's list ----------------------------------------------------------------------------


def favorite_offer(snapshot: Snapshot, offer_id: str) -> FavoriteProductsOffer:
    """The favorite-products offer named; INVALID_ARGUMENT when empty, else NOT_FOUND
    OFFER_NOT_FOUND when unknown."""
    if not offer_id:
        raise InvalidArgument("offer_id", "must not be empty")
    favorite = snapshot.favorite_products_offer(offer_id)
    if favorite is None:
        raise NotFound(f"no favorite-products offer {quote(offer_id)}", reason="OFFER_NOT_FOUND")
    return favorite


def open_favorite_offer(snapshot: Snapshot, offer_id: str, now: datetime) -> FavoriteProductsOffer:
    """The offer a selection is made for: known, and not ended (FAILED_PRECONDITION
    OFFER_ENDED; a selection may be made before the offer starts)."""
    favorite = favorite_offer(snapshot, offer_id)
    check_offer_open(favorite.offer.valid_to, now)
    return favorite


def autofill_offer(snapshot: Snapshot, offer_id: str, now: datetime) -> FavoriteProductsOffer:
    """The offer an auto-fill runs for: known, with auto-fill on (FAILED_PRECONDITION
    AUTOFILL_OFF), not ended."""
    favorite = favorite_offer(snapshot, offer_id)
    if not favorite.autofill:
        raise FailedPrecondition("auto-fill is off for this offer", reason="AUTOFILL_OFF")
    check_offer_open(favorite.offer.valid_to, now)
    return favorite


def list_month(now: datetime, tz: ZoneInfo) -> str:
    """'YYYY-MM' of the purchases that form a PURCHASE_HISTORY list at `now`: last month."""
    start, _end = previous_month_window(now, tz)
    return month_key(start, tz)


def can_get_benefit(snapshot: Snapshot, sku: str) -> bool:
    product = snapshot.product(sku)
    return product is not None and not product.excluded


def favorite_list(
    snapshot: Snapshot, favorite: FavoriteProductsOffer, purchases: Purchases = ()
) -> tuple[str, ...]:
    """A member's list in auto-fill order: the product list (PREDEFINED), or last month's
    purchases still above 0 by quantity, amount, SKU (PURCHASE_HISTORY); only products that
    can get the benefit (known, not excluded)."""
    if favorite.list_source is ListSource.PREDEFINED:
        found = snapshot.product_list(favorite.product_list_id or "")
        ordered = autofill_order_from_list(found.skus if found is not None else ())
    else:
        ordered = autofill_order_from_history(p for p in purchases if p[1] > 0)
    return tuple(sku for sku in ordered if can_get_benefit(snapshot, sku))


def list_changed(new: Sequence[str], old: Sequence[str]) -> bool:
    """Whether a history list turned over into something to announce: not empty, and a
    different set of SKUs than the month before."""
    return bool(new) and set(new) != set(old)


# --- slots --------------------------------------------------------------------------------------


def positions(favorite: FavoriteProductsOffer, stored: Mapping[int, Slot]) -> tuple[Slot, ...]:
    """Every position 0..N-1 (and any stored beyond N), empty where nothing is stored."""
    count = max(favorite.slot_count, max(stored, default=-1) + 1)
    return tuple(stored.get(index, Slot(index, None)) for index in range(count))


def favorite_state(
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    stored: Mapping[int, Slot],
    choices: tuple[str, ...],
    last_change_at: datetime | None,
    version: int,
    at: datetime,
) -> FavoriteState:
    window = _favorite_window(favorite, last_change_at, at, snapshot.program_time_zone)
    slots = positions(favorite, stored)
    return FavoriteState(favorite, slots, choices, last_change_at, version, window)


def selection_change(
    favorite: FavoriteProductsOffer,
    stored: Mapping[int, Slot],
    choices: Iterable[str],
    skus: Sequence[str | None],
    last_change_at: datetime | None,
    now: datetime,
    tz: ZoneInfo,
    *,
    by_member: bool,
) -> SelectionChange:
    """Judge a new selection of the slots (one entry per slot, None: empty) against the stored
    ones: each SKU on the member's list or already in their slots (INVALID_ARGUMENT skus[i]);
    a member's replacement of a slot they filled once per period of the offer's frequency
    (FAILED_PRECONDITION CHANGE_NOT_ALLOWED with next_allowed). An operator (`by_member`
    False) is not held to the frequency and leaves the member's period alone."""
    before = positions(favorite, stored)
    allowed = set(choices) | {slot.sku for slot in before if slot.sku}
    selection = validate_favorite_selection(
        skus,
        allowed,
        favorite.slot_count,
        [slot.sku for slot in before],
        autofilled_positions=[slot.index for slot in before if slot.auto_filled],
        field="skus",
    )
    if by_member and selection.replaces_filled_slot:
        window = _favorite_window(favorite, last_change_at, now, tz)
        if not window.allowed_now:
            raise change_refused(window)
        last_change_at = now
    return SelectionChange(selection.slots, last_change_at)


def autofilled(
    favorite: FavoriteProductsOffer, stored: Mapping[int, Slot], choices: Iterable[str]
) -> tuple[tuple[str | None, ...], list[tuple[int, str]]]:
    """Auto-fill of one member's slots: the slots afterwards, and the (position, SKU) pairs it
    added (none when every position is filled or no candidate is left)."""
    count = favorite.slot_count
    skus = [stored[i].sku if i in stored else None for i in range(count)]
    if None not in skus:
        return tuple(skus), []
    present = {slot.sku for slot in stored.values()}
    filled = autofill(skus, [sku for sku in choices if sku not in present], count)
    added = [(i, sku) for i, sku in enumerate(filled) if sku is not None and skus[i] is None]
    return filled, added


def same_slots(a: Sequence[str | None], b: Sequence[str | None]) -> bool:
    """Equal selections, trailing empty positions aside."""
    return _trim(a) == _trim(b)


def filled_skus(skus: Iterable[str | None]) -> list[str]:
    return [sku for sku in skus if sku is not None]


def _trim(skus: Sequence[str | None]) -> tuple[str | None, ...]:
    trimmed = list(skus)
    while trimmed and trimmed[-1] is None:
        trimmed.pop()
    return tuple(trimmed)


# --- favorite categories ------------------------------------------------------------------------


def category_change(
    terms: FavoriteCategoryTerms,
    group_ids: Sequence[str],
    last_change_at: datetime | None,
    now: datetime,
    tz: ZoneInfo,
) -> CategoryChange:
    """Judge a member's choice of categories: FAILED_PRECONDITION ACCEPTANCE_OFF when every
    offered category applies anyway, OFFER_ENDED after the terms' validity; up to max_count
    offered groups, none twice (INVALID_ARGUMENT group_ids[i]). Adding a category below
    max_count is filling; dropping or swapping an applying one is a replacement, under the
    terms' frequency (CHANGE_NOT_ALLOWED with next_allowed)."""
    if not terms.acceptance_required:
        raise FailedPrecondition(
            "every offered category applies; there is nothing to choose", reason="ACCEPTANCE_OFF"
        )
    check_offer_open(terms.valid_to, now)
    chosen = validate_category_choice(
        group_ids, terms.group_ids, terms.max_count, field="group_ids"
    )
    if not set(effective_groups(terms)) <= chosen:  # dropped or swapped: a replacement
        window = change_window(
            terms.frequency, terms.every_n_days, last_change_at, now, tz, terms.valid_to
        )
        if not window.allowed_now:
            raise change_refused(window, "a chosen category")
        last_change_at = now
    return CategoryChange(chosen, last_change_at)
