"""Favorite products (spec §7.1; docs/favorites.md): a member's selection, the operator's
audited edit, the audit trail, and the reads the member lookup and the jobs share.

Each use case takes plain values and a unit of work it runs in: the member's lock first, then
the selection row claimed (service/store/favorites_repo.py: one change at a time), the rules of
service/engine/favorites.py judged on what is stored, the rows written, and the commit, which
rewrites the member's document, tells the change feed, the outbox and this replica's cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from service import limits
from service.app.unit_of_work import UnitOfWork
from service.engine.favorites import (
    FavoriteState,
    favorite_list,
    favorite_state,
    filled_skus,
    list_month,
    open_favorite_offer,
    positions,
    same_slots,
    selection_change,
)
from service.engine.model import FavoriteProductsOffer, ListSource
from service.engine.snapshot import Snapshot
from service.engine.validity import valid_at
from service.errors import InvalidArgument
from service.store.favorites_repo import (
    AuditEntry,
    Selection,
    add_audit_entry,
    claim_selections,
    list_favorite_audit,
    load_member_slots,
    load_selections,
    load_slots,
    purchases_by_member,
    save_selection,
    write_slots,
)
from service.store.outbox import EventType

MAX_COMMENT = limits.COMMENT
DEFAULT_AUDIT_LIMIT = 100
MAX_AUDIT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class OperatorEdit:
    state: FavoriteState
    audit: AuditEntry


# --- changes ------------------------------------------------------------------------------------


def select_favorite_products(
    uow: UnitOfWork,
    snapshot: Snapshot,
    member_id: str,
    offer_id: str,
    skus: Sequence[str | None],
) -> FavoriteState:
    """The member puts SKUs into the slots (one entry per slot, None: empty). Filling empty
    (or auto-filled) slots is always allowed; replacing a slot the member filled is allowed
    once per period of the offer's frequency, else FAILED_PRECONDITION CHANGE_NOT_ALLOWED
    with next_allowed. An identical selection changes nothing."""
    favorite = open_favorite_offer(snapshot, offer_id, uow.now)
    with uow:
        _before, state = _change(uow, snapshot, favorite, member_id, skus, by_member=True)
        uow.commit()
    return state


def operator_set_favorite_products(
    uow: UnitOfWork,
    snapshot: Snapshot,
    member_id: str,
    offer_id: str,
    skus: Sequence[str | None],
    *,
    actor: str,
    comment: str = "",
) -> OperatorEdit:
    """An operator sets the member's slots: validated against the member's list, outside the
    frequency limit (the member's own change stays available), audited (actor, when, before,
    after, comment), and announced to the member (FAVORITES_CHANGED) when the slots changed."""
    if len(comment) > MAX_COMMENT:
        raise InvalidArgument("comment", f"at most {MAX_COMMENT} characters")
    favorite = open_favorite_offer(snapshot, offer_id, uow.now)
    with uow:
        before, state = _change(uow, snapshot, favorite, member_id, skus, by_member=False)
        audit = add_audit_entry(
            uow.session,
            actor=actor,
            member_id=member_id,
            offer_id=favorite.offer.id,
            at=uow.now,
            skus_before=before,
            skus_after=state.skus,
            comment=comment,
        )
        if not same_slots(before, state.skus):
            payload = {
                "offer_id": favorite.offer.id,
                "source": "OPERATOR",
                "skus": filled_skus(state.skus),
            }
            uow.add_event(member_id, EventType.FAVORITES_CHANGED, payload)
        uow.commit()
    return OperatorEdit(state, audit)


def _change(
    uow: UnitOfWork,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_id: str,
    skus: Sequence[str | None],
    *,
    by_member: bool,
) -> tuple[tuple[str | None, ...], FavoriteState]:
    """Judge and write a change of the member's slots; the slots before, and the state after."""
    session, now, offer_id = uow.session, uow.now, favorite.offer.id
    uow.lock_members([member_id])
    selection = claim_selections(session, offer_id, [member_id])[member_id]
    stored = load_slots(session, offer_id, [member_id]).get(member_id, {})
    choices = member_list(session, snapshot, favorite, member_id, now)
    change = selection_change(
        favorite,
        stored,
        choices,
        skus,
        selection.last_change_at,
        now,
        snapshot.program_time_zone,
        by_member=by_member,
    )
    if write_slots(session, member_id, offer_id, stored, change.slots, now):
        uow.members_changed([member_id])
    save_selection(session, member_id, offer_id, selection.version, change.last_change_at)
    after = load_slots(session, offer_id, [member_id]).get(member_id, {})
    state = favorite_state(
        snapshot, favorite, after, choices, change.last_change_at, selection.version + 1, now
    )
    return tuple(slot.sku for slot in positions(favorite, stored)), state


# --- reads --------------------------------------------------------------------------------------


def audit_limit(limit: int) -> int:
    """How many audit entries a listing returns: 0 is 100, at most 1000."""
    if limit < 0:
        raise InvalidArgument("limit", "must not be negative")
    return min(limit or DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT)


def favorite_audit(
    uow: UnitOfWork, member_id: str, offer_id: str = "", limit: int = 0
) -> list[AuditEntry]:
    """Operator edits of the member's favorite products, newest first; optionally of one
    offer; at most audit_limit(limit)."""
    count = audit_limit(limit)
    with uow:
        return list_favorite_audit(uow.session, member_id, offer_id or None, count)


def favorite_states(
    session: Session, snapshot: Snapshot, member_id: str, at: datetime
) -> list[FavoriteState]:
    """The member's state for every favorite-products offer valid at `at`, in a use case's
    transaction (3 queries at most: selections, slots, and last month's purchases when a
    PURCHASE_HISTORY offer is valid)."""
    favorites = [
        f
        for f in snapshot.favorite_products_offers
        if valid_at(f.offer.valid_from, f.offer.valid_to, at)
    ]
    if not favorites:
        return []
    offer_ids = [f.offer.id for f in favorites]
    selections = load_selections(session, member_id, offer_ids)
    slots = load_member_slots(session, member_id, offer_ids)
    purchases: list[tuple[str, int, int]] = []
    if any(f.list_source is ListSource.PURCHASE_HISTORY for f in favorites):
        month = list_month(at, snapshot.program_time_zone)
        purchases = purchases_by_member(session, [member_id], month).get(member_id, [])
    states = []
    for favorite in favorites:
        offer_id = favorite.offer.id
        stored = selections.get(offer_id, Selection())
        choices = favorite_list(snapshot, favorite, purchases)
        states.append(
            favorite_state(
                snapshot,
                favorite,
                slots.get(offer_id, {}),
                choices,
                stored.last_change_at,
                stored.version,
                at,
            )
        )
    return states


def member_list(
    session: Session,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_id: str,
    at: datetime,
) -> tuple[str, ...]:
    """The member's current list for one offer, in a use case's transaction."""
    if favorite.list_source is ListSource.PREDEFINED:
        return favorite_list(snapshot, favorite)
    month = list_month(at, snapshot.program_time_zone)
    purchases = purchases_by_member(session, [member_id], month).get(member_id, [])
    return favorite_list(snapshot, favorite, purchases)
