"""Favorite products in the store (SPEC 7.1): a member's list, selection, auto-fill and the
operator's audited edit. The rules themselves are the pure functions of
service.engine.selection; this module applies them inside the caller's transaction and never
commits.

One change at a time per member and offer, on every replica: each change first takes the
member's favorite_selections row for the offer (inserted if absent, then SELECT ... FOR UPDATE
on PostgreSQL; on SQLite the insert, a write, takes the database write lock) and reads the
slots only then, so a second change waits for the first to commit and is judged on what it
wrote. The row's version is then bumped with a conditional UPDATE (WHERE version = seen) as a
second guard. Call these functions first in a transaction: on SQLite a write that follows
reads of an older snapshot fails instead of waiting.

Slots are positions 0..N-1; an empty slot has no row. Auto-filled slots carry auto_filled and
count as empty for the member (filling them is not a replacement). Only a member's own
replacement of a filled slot sets last_change_at (the start of the frequency period);
auto-fill and operator edits leave it alone.

A member's list holds only products that can get the benefit: known to the catalogue and not
excluded. SKUs already in the member's slots stay valid for the member even when they have
left the list (a PURCHASE_HISTORY list changes every month; selections stay until changed).

Every write appends a MEMBER row to the change feed; auto-fill and operator edits add a
FAVORITES_CHANGED event to the outbox, all in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session

from service import limits
from service.engine.model import FavoriteProductsOffer, Frequency, ListSource, Offer
from service.engine.selection import (
    SlotSelection,
    autofill,
    autofill_order_from_history,
    autofill_order_from_list,
    change_allowed,
    month_key,
    next_change_allowed,
    previous_month_window,
    validate_favorite_selection,
)
from service.engine.snapshot import Snapshot
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.limits import quote
from service.store.loader import iter_member_ids
from service.store.member_documents import lock_members, member_changed
from service.store.models import (
    AuditLogRow,
    FavoriteSelectionRow,
    FavoriteSlotRow,
    MemberRow,
    PurchaseRow,
)
from service.store.outbox import EventType, add_events, lock_outbox
from service.store.sql import chunks, insert_rows, keyset_pages, table_of, upsert

OPERATOR_EDIT = "OPERATOR_SET_FAVORITE_PRODUCTS"  # audit_log.action
MAX_COMMENT = limits.COMMENT
AUTOFILL_BATCH = 500  # members locked, read and written together


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
    """A member's selection for one favorite-products offer, as stored after a read or write."""

    offer: FavoriteProductsOffer
    slots: tuple[Slot, ...]  # every position 0..N-1 (and any stored beyond N)
    choices: tuple[str, ...]  # the member's current list, in list (auto-fill) order
    last_change_at: datetime | None
    version: int

    @property
    def skus(self) -> tuple[str | None, ...]:
        return tuple(slot.sku for slot in self.slots)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    actor: str
    member_id: str
    offer_id: str
    at: datetime
    skus_before: tuple[str | None, ...]
    skus_after: tuple[str | None, ...]
    comment: str


@dataclass(frozen=True, slots=True)
class OperatorEdit:
    state: FavoriteState
    audit: AuditEntry


@dataclass
class AutofillOutcome:
    members_updated: int = 0
    slots_filled: int = 0
    member_ids: list[str] = field(default_factory=list)  # the members whose slots changed


# --- pure helpers -------------------------------------------------------------------------------


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


def refusal(window: ChangeWindow, what: str = "a filled slot") -> FailedPrecondition:
    """The FAILED_PRECONDITION for a replacement the frequency does not allow now."""
    if window.never_again:
        message = f"{what} may not be replaced again during this offer"
    else:
        assert window.next_allowed is not None
        message = f"{what} may be replaced again from {window.next_allowed.isoformat()}"
    return FailedPrecondition(
        message, reason="CHANGE_NOT_ALLOWED", next_allowed=window.next_allowed
    )


def list_month(now: datetime, tz: ZoneInfo) -> str:
    """'YYYY-MM' of the purchases that form a PURCHASE_HISTORY list at `now`: last month."""
    start, _end = previous_month_window(now, tz)
    return month_key(start, tz)


def can_get_benefit(snapshot: Snapshot, sku: str) -> bool:
    product = snapshot.product(sku)
    return product is not None and not product.excluded


def favorite_list(
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    purchases: Iterable[tuple[str, int, int]] = (),
) -> tuple[str, ...]:
    """A member's list in auto-fill order: the product list (PREDEFINED), or last month's
    purchases (sku, quantity, amount) by quantity, amount, SKU (PURCHASE_HISTORY)."""
    if favorite.list_source is ListSource.PREDEFINED:
        found = snapshot.product_list(favorite.product_list_id or "")
        ordered = autofill_order_from_list(found.skus if found is not None else ())
    else:
        ordered = autofill_order_from_history(p for p in purchases if p[1] > 0)
    return tuple(sku for sku in ordered if can_get_benefit(snapshot, sku))


def favorite_offer(snapshot: Snapshot, offer_id: str) -> FavoriteProductsOffer:
    if not offer_id:
        raise InvalidArgument("offer_id", "must not be empty")
    favorite = snapshot.favorite_products_offer(offer_id)
    if favorite is None:
        raise NotFound(f"no favorite-products offer {quote(offer_id)}", reason="OFFER_NOT_FOUND")
    return favorite


def check_offer_open(valid_to: datetime | None, now: datetime) -> None:
    """Selections may be made until the offer ends (also before it starts)."""
    if valid_to is not None and now >= valid_to:
        raise FailedPrecondition("the offer has ended", reason="OFFER_ENDED")


# --- reading ------------------------------------------------------------------------------------


def load_favorite_states(
    session: Session, snapshot: Snapshot, member_id: str, at: datetime
) -> list[FavoriteState]:
    """The member's state for every favorite-products offer valid at `at` (3 queries at most:
    selections, slots, and last month's purchases when a PURCHASE_HISTORY offer is valid)."""
    favorites = [f for f in snapshot.favorite_products_offers if offer_valid_at(f.offer, at)]
    if not favorites:
        return []
    offer_ids = [f.offer.id for f in favorites]
    selections = table_of(FavoriteSelectionRow)
    stored = {
        r.offer_id: (r.version, r.last_change_at)
        for r in session.execute(
            select(selections).where(
                selections.c.member_id == member_id, selections.c.offer_id.in_(offer_ids)
            )
        )
    }
    slots = table_of(FavoriteSlotRow)
    by_offer: dict[str, dict[int, Slot]] = defaultdict(dict)
    for r in session.execute(
        select(slots).where(slots.c.member_id == member_id, slots.c.offer_id.in_(offer_ids))
    ):
        by_offer[r.offer_id][r.slot_index] = Slot(r.slot_index, r.sku, r.auto_filled, r.filled_at)
    purchases: list[tuple[str, int, int]] = []
    if any(f.list_source is ListSource.PURCHASE_HISTORY for f in favorites):
        month = list_month(at, snapshot.program_time_zone)
        purchases = purchases_by_member(session, [member_id], month).get(member_id, [])
    states = []
    for favorite in favorites:
        version, last_change_at = stored.get(favorite.offer.id, (0, None))
        states.append(
            FavoriteState(
                offer=favorite,
                slots=_positions(favorite, by_offer.get(favorite.offer.id, {})),
                choices=favorite_list(snapshot, favorite, purchases),
                last_change_at=last_change_at,
                version=version,
            )
        )
    return states


def load_member_list(
    session: Session,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_id: str,
    at: datetime,
) -> tuple[str, ...]:
    """The member's current list for one offer."""
    if favorite.list_source is ListSource.PREDEFINED:
        return favorite_list(snapshot, favorite)
    month = list_month(at, snapshot.program_time_zone)
    return favorite_list(
        snapshot, favorite, purchases_by_member(session, [member_id], month).get(member_id, [])
    )


def list_favorite_audit(
    session: Session, member_id: str, offer_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Operator edits of the member's favorite products, newest first."""
    audit = table_of(AuditLogRow)
    query = select(audit).where(audit.c.member_id == member_id, audit.c.action == OPERATOR_EDIT)
    if offer_id:
        query = query.where(audit.c.offer_id == offer_id)
    query = query.order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
    return [_audit_entry(r) for r in session.execute(query)]


# --- a member's selection -----------------------------------------------------------------------


def select_favorite_products(
    session: Session,
    snapshot: Snapshot,
    member_id: str,
    offer_id: str,
    skus: Sequence[str | None],
    now: datetime,
) -> FavoriteState:
    """The member puts SKUs into the slots (one entry per slot, None: empty). Filling empty
    (or auto-filled) slots is always allowed; replacing a slot the member filled is allowed
    once per period of the offer's frequency, else FAILED_PRECONDITION CHANGE_NOT_ALLOWED
    with next_allowed."""
    favorite = favorite_offer(snapshot, offer_id)
    return _change(session, snapshot, favorite, member_id, skus, now, by_member=True)[1]


def operator_set_favorite_products(
    session: Session,
    snapshot: Snapshot,
    member_id: str,
    offer_id: str,
    skus: Sequence[str | None],
    now: datetime,
    *,
    actor: str,
    comment: str = "",
) -> OperatorEdit:
    """An operator sets the member's slots: validated against the member's list, outside the
    frequency limit, audited (actor, when, before, after, comment), and announced to the
    member (FAVORITES_CHANGED) when the slots changed."""
    if len(comment) > MAX_COMMENT:
        raise InvalidArgument("comment", f"at most {MAX_COMMENT} characters")
    favorite = favorite_offer(snapshot, offer_id)
    before, state = _change(session, snapshot, favorite, member_id, skus, now, by_member=False)
    after = state.skus
    entry_id = session.execute(
        insert(table_of(AuditLogRow))
        .values(
            actor=actor,
            action=OPERATOR_EDIT,
            member_id=member_id,
            offer_id=offer_id,
            before={"skus": list(before)},
            after={"skus": list(after), "comment": comment},
            at=now,
        )
        .returning(AuditLogRow.id)
    ).scalar_one()
    if _trim(before) != _trim(after):
        payload = {"offer_id": offer_id, "source": "OPERATOR", "skus": _filled(after)}
        add_events(session, [(member_id, EventType.FAVORITES_CHANGED, payload)], now)
    audit = AuditEntry(entry_id, actor, member_id, offer_id, now, before, after, comment)
    return OperatorEdit(state, audit)


def _change(
    session: Session,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_id: str,
    skus: Sequence[str | None],
    now: datetime,
    *,
    by_member: bool,
) -> tuple[tuple[str | None, ...], FavoriteState]:
    check_offer_open(favorite.offer.valid_to, now)
    offer_id = favorite.offer.id
    lock_members(session, [member_id])
    version, last_change_at = _lock_selections(session, offer_id, [member_id])[member_id]
    current = _slots(session, offer_id, [member_id]).get(member_id, {})
    before = _positions(favorite, current)
    choices = load_member_list(session, snapshot, favorite, member_id, now)
    allowed = set(choices) | {slot.sku for slot in current.values() if slot.sku}
    selection = _validated(
        skus,
        allowed,
        favorite.slot_count,
        [slot.sku for slot in before],
        [slot.index for slot in before if slot.auto_filled],
    )
    tz = snapshot.program_time_zone
    if by_member and selection.replaces_filled_slot:
        window = change_window(
            favorite.frequency, favorite.every_n_days, last_change_at, now, tz,
            favorite.offer.valid_to,
        )  # fmt: skip
        if not window.allowed_now:
            raise refusal(window)
        last_change_at = now
    changed = _write_slots(
        session, member_id, offer_id, current, selection.slots, now, auto_filled=False
    )
    _bump_version(session, member_id, offer_id, version, last_change_at)
    if changed:
        member_changed(session, [member_id], now)
    after = _slots(session, offer_id, [member_id]).get(member_id, {})
    state = FavoriteState(
        favorite, _positions(favorite, after), choices, last_change_at, version + 1
    )
    return tuple(slot.sku for slot in before), state


def _validated(
    skus: Sequence[str | None],
    allowed: set[str],
    slot_count: int,
    current: Sequence[str | None],
    autofilled: Sequence[int],
) -> SlotSelection:
    """validate_favorite_selection, naming the request's field (skus[i])."""
    try:
        return validate_favorite_selection(
            skus, allowed, slot_count, current, autofilled_positions=autofilled
        )
    except InvalidArgument as error:
        raise InvalidArgument(
            "skus" + error.field.removeprefix("slots"), error.description
        ) from None


# --- auto-fill ----------------------------------------------------------------------------------


def run_autofill(
    session: Session,
    snapshot: Snapshot,
    offer_id: str,
    member_ids: Sequence[str] | None,
    now: datetime,
) -> AutofillOutcome:
    """The "personal offer update" action (SPEC 7.1): fill the empty slots of the offer for
    the given members (None: every member who can have a list: all members for a PREDEFINED
    list, those who bought something last month for a PURCHASE_HISTORY list). Candidates:
    last month's purchases by quantity, then amount, then SKU; or the product list in order.

    Filled slots are marked auto_filled and do not use up the member's change. Writes a
    FAVORITES_CHANGED event and a change-feed row per member changed. Never commits; the
    caller commits (for millions of members, call it per batch of ids and commit each)."""
    favorite = favorite_offer(snapshot, offer_id)
    if not favorite.autofill:
        raise FailedPrecondition("auto-fill is off for this offer", reason="AUTOFILL_OFF")
    check_offer_open(favorite.offer.valid_to, now)
    if session.get_bind().dialect.name == "sqlite":
        lock_outbox(session)  # SQLite: the write lock before the first read (see the top)
    outcome = AutofillOutcome()
    if member_ids is None:
        batches = batched(_autofill_members(session, snapshot, favorite, now), AUTOFILL_BATCH)
    else:
        wanted = sorted(set(member_ids))
        batches = (_existing_members(session, part) for part in chunks(wanted, AUTOFILL_BATCH))
    for batch in batches:
        if batch:
            _autofill_batch(session, snapshot, favorite, batch, now, outcome)
    return outcome


def _autofill_batch(
    session: Session,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_ids: Sequence[str],
    now: datetime,
    outcome: AutofillOutcome,
) -> None:
    offer_id = favorite.offer.id
    count = favorite.slot_count
    lock_members(session, member_ids)  # before the selection rows, as every member writer
    _lock_selections(session, offer_id, member_ids)
    stored = _slots(session, offer_id, member_ids)
    purchases: Mapping[str, list[tuple[str, int, int]]] = {}
    if favorite.list_source is ListSource.PURCHASE_HISTORY:
        purchases = purchases_by_member(
            session, member_ids, list_month(now, snapshot.program_time_zone)
        )
    predefined: tuple[str, ...] = ()
    if favorite.list_source is ListSource.PREDEFINED:
        predefined = favorite_list(snapshot, favorite)
    new_rows: list[dict[str, Any]] = []
    events = []
    changed: list[str] = []
    for member_id in member_ids:
        current = stored.get(member_id, {})
        skus = [current[i].sku if i in current else None for i in range(count)]
        if None not in skus:
            continue
        present = {slot.sku for slot in current.values()}
        if favorite.list_source is ListSource.PURCHASE_HISTORY:
            choices = favorite_list(snapshot, favorite, purchases.get(member_id, ()))
        else:
            choices = predefined
        filled = autofill(skus, [sku for sku in choices if sku not in present], count)
        added = [(i, sku) for i, sku in enumerate(filled) if sku is not None and skus[i] is None]
        if not added:
            continue
        new_rows += [_slot_row(member_id, offer_id, i, sku, now, True) for i, sku in added]
        payload = {
            "offer_id": offer_id,
            "source": "AUTOFILL",
            "skus": _filled(filled),
            "added": [sku for _i, sku in added],
        }
        events.append((member_id, EventType.FAVORITES_CHANGED, payload))
        changed.append(member_id)
        outcome.slots_filled += len(added)
    if not changed:
        return
    insert_rows(session, FavoriteSlotRow, new_rows)
    selections = table_of(FavoriteSelectionRow)
    session.execute(
        update(selections)
        .where(selections.c.offer_id == offer_id, selections.c.member_id.in_(changed))
        .values(version=selections.c.version + 1)
    )
    member_changed(session, changed, now)
    add_events(session, events, now)
    outcome.members_updated += len(changed)
    outcome.member_ids += changed


def _autofill_members(
    session: Session, snapshot: Snapshot, favorite: FavoriteProductsOffer, now: datetime
) -> Iterator[str]:
    if favorite.list_source is ListSource.PREDEFINED:
        yield from iter_member_ids(session)
        return
    yield from members_who_bought(session, list_month(now, snapshot.program_time_zone))


def members_who_bought(session: Session, month: str, batch_size: int = 1000) -> Iterator[str]:
    """Every member with a purchase (quantity > 0) in `month`, in id order, read by key."""
    history = table_of(PurchaseRow)
    query = (
        select(history.c.member_id)
        .where(history.c.month == month, history.c.quantity > 0)
        .group_by(history.c.member_id)
    )
    for rows in keyset_pages(session, query, history.c.member_id, batch_size):
        yield from (r.member_id for r in rows)


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _existing_members(session: Session, member_ids: Sequence[str]) -> list[str]:
    found = session.scalars(select(MemberRow.id).where(MemberRow.id.in_(member_ids)))
    return sorted(found)


# --- rows ---------------------------------------------------------------------------------------


def _lock_selections(
    session: Session, offer_id: str, member_ids: Sequence[str]
) -> dict[str, tuple[int, datetime | None]]:
    """Take the members' selection rows of the offer for this transaction (inserting absent
    ones): the first statement is a write, so SQLite takes its write lock before any read;
    PostgreSQL locks the rows (FOR UPDATE, in member order). Returns version, last change."""
    ids = sorted(set(member_ids))
    upsert(
        session,
        FavoriteSelectionRow,
        [{"member_id": m, "offer_id": offer_id, "last_change_at": None, "version": 0} for m in ids],
        keep=["last_change_at", "version"],
    )
    selections = table_of(FavoriteSelectionRow)
    query = (
        select(selections.c.member_id, selections.c.version, selections.c.last_change_at)
        .where(selections.c.offer_id == offer_id, selections.c.member_id.in_(ids))
        .order_by(selections.c.member_id)
        .with_for_update()
    )
    return {r.member_id: (r.version, r.last_change_at) for r in session.execute(query)}


def _bump_version(
    session: Session, member_id: str, offer_id: str, seen: int, last_change_at: datetime | None
) -> None:
    """The conditional UPDATE: only from the version this change was judged on."""
    selections = table_of(FavoriteSelectionRow)
    result = session.execute(
        update(selections)
        .where(
            selections.c.member_id == member_id,
            selections.c.offer_id == offer_id,
            selections.c.version == seen,
        )
        .values(version=seen + 1, last_change_at=last_change_at)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise FailedPrecondition(
            "the selection was changed at the same time; try again", reason="CONCURRENT_CHANGE"
        )


def _slots(
    session: Session, offer_id: str, member_ids: Sequence[str]
) -> dict[str, dict[int, Slot]]:
    slots = table_of(FavoriteSlotRow)
    found: dict[str, dict[int, Slot]] = defaultdict(dict)
    for part in chunks(list(member_ids)):
        query = select(slots).where(slots.c.offer_id == offer_id, slots.c.member_id.in_(part))
        for r in session.execute(query):
            found[r.member_id][r.slot_index] = Slot(r.slot_index, r.sku, r.auto_filled, r.filled_at)
    return found


def _positions(favorite: FavoriteProductsOffer, stored: Mapping[int, Slot]) -> tuple[Slot, ...]:
    count = max(favorite.slot_count, max(stored, default=-1) + 1)
    return tuple(stored.get(index, Slot(index, None)) for index in range(count))


def _write_slots(
    session: Session,
    member_id: str,
    offer_id: str,
    current: Mapping[int, Slot],
    wanted: Sequence[str | None],
    now: datetime,
    *,
    auto_filled: bool,
) -> bool:
    """Make the stored slots equal to `wanted`: rows of positions that keep their SKU stay
    (auto-fill flag, fill time); changed positions are deleted, then the new SKUs inserted.
    Returns whether anything changed."""
    count = max(len(wanted), max(current, default=-1) + 1)
    padded = list(wanted) + [None] * (count - len(wanted))
    changed = [i for i in range(count) if (current[i].sku if i in current else None) != padded[i]]
    if not changed:
        return False
    slots = table_of(FavoriteSlotRow)
    stale = [i for i in changed if i in current]
    if stale:
        session.execute(
            delete(slots).where(
                and_(
                    slots.c.member_id == member_id,
                    slots.c.offer_id == offer_id,
                    slots.c.slot_index.in_(stale),
                )
            )
        )
    rows = [
        _slot_row(member_id, offer_id, i, sku, now, auto_filled)
        for i in changed
        if (sku := padded[i]) is not None
    ]
    insert_rows(session, FavoriteSlotRow, rows)
    return True


def _slot_row(
    member_id: str, offer_id: str, index: int, sku: str, now: datetime, auto_filled: bool
) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "offer_id": offer_id,
        "slot_index": index,
        "sku": sku,
        "auto_filled": auto_filled,
        "filled_at": now,
    }


def purchases_by_member(
    session: Session, member_ids: Sequence[str], month: str
) -> dict[str, list[tuple[str, int, int]]]:
    """Members' purchases of `month` still not refunded: (sku, quantity, amount) per SKU."""
    history = table_of(PurchaseRow)
    found: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for part in chunks(list(member_ids)):
        query = select(history).where(
            history.c.member_id.in_(part), history.c.month == month, history.c.quantity > 0
        )
        for r in session.execute(query):
            found[r.member_id].append((r.sku, r.quantity, r.amount))
    return found


def offer_valid_at(offer: Offer, at: datetime) -> bool:
    """valid_from <= at < valid_to, an unset end being open."""
    return (offer.valid_from is None or offer.valid_from <= at) and (
        offer.valid_to is None or at < offer.valid_to
    )


def _audit_entry(row: Any) -> AuditEntry:
    before = row.before or {}
    after = row.after or {}
    return AuditEntry(
        id=row.id,
        actor=row.actor,
        member_id=row.member_id or "",
        offer_id=row.offer_id or "",
        at=row.at,
        skus_before=tuple(before.get("skus", ())),
        skus_after=tuple(after.get("skus", ())),
        comment=str(after.get("comment", "")),
    )


def _filled(skus: Iterable[str | None]) -> list[str]:
    return [sku for sku in skus if sku is not None]


def _trim(skus: Sequence[str | None]) -> tuple[str | None, ...]:
    """Slots without trailing empty positions (equal selections compare equal)."""
    trimmed = list(skus)
    while trimmed and trimmed[-1] is None:
        trimmed.pop()
    return tuple(trimmed)
