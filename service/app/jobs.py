"""The member jobs (spec §7.1 auto-fill, §10 events; docs/notifications.md): auto-fill of empty
slots (the back office's "personal offer update"), the list switch on the 1st, and
"selection allowed again". Each runs in units of work and commits through them.

- run_autofill: fills the empty slots of an offer, one transaction per AUTOFILL_BATCH
  members, so a run over millions of members holds no long transaction.
- switch_month: from 00:00 on the 1st a PURCHASE_HISTORY member's list is last month's
  purchases. A member whose list changed (a different set of SKUs than the month before, and
  not empty) gets NEW_FAVORITE_LIST per PURCHASE_HISTORY offer valid now. Each offer's cursor
  remembers the last month announced ("job:list:<offer>" in outbox_acks, position = YYYYMM).
- announce_selection_allowed: a member whose next change time (after their own replacement)
  passed since the last run gets SELECTION_ALLOWED_AGAIN, for favorite products and for
  favorite categories with acceptance on. The cursor "job:selection-allowed" holds the last
  run's time (microseconds since the epoch); the first run looks back one day.

The two event jobs take the outbox lock first: concurrent runs queue, and the second finds
the cursor already moved, so running them twice, on one replica or on several at once, writes
no duplicate events.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.app.points_jobs import run_points_expiry
from service.app.unit_of_work import UnitOfWork
from service.batching import batched
from service.engine.favorites import (
    autofill_offer,
    autofilled,
    favorite_list,
    filled_skus,
    list_changed,
    list_month,
)
from service.engine.model import FavoriteProductsOffer, Frequency, ListSource
from service.engine.rules import to_epoch_us
from service.engine.selection import (
    allowed_again_between,
    longest_period,
    month_key,
    previous_month_window,
)
from service.engine.snapshot import Snapshot
from service.engine.validity import has_ended, valid_at
from service.store import favorites_repo
from service.store.category_choice_repo import replacements_before
from service.store.favorites_repo import (
    add_slots,
    bump_versions,
    claim_selections,
    load_slots,
    members_who_bought,
    purchases_by_member,
    replacements_since,
)
from service.store.loader import iter_member_ids
from service.store.models import KEY
from service.store.outbox import (
    JOB_CONSUMER_PREFIX,
    EventType,
    ack_events,
    acked_position,
    lock_outbox,
)
from service.store.sql import chunks

log = logging.getLogger(__name__)

SELECTION_CURSOR = JOB_CONSUMER_PREFIX + "selection-allowed"
FIRST_RUN_LOOKBACK = timedelta(days=1)
BATCH = 500  # members read together by the event jobs
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

UnitsOfWork = Callable[[], UnitOfWork]  # a fresh unit of work for each transaction


@dataclass
class AutofillOutcome:
    members_updated: int = 0
    slots_filled: int = 0
    member_ids: list[str] = field(default_factory=list)  # the members whose slots changed


@dataclass
class JobOutcome:
    events: int = 0
    member_ids: list[str] = field(default_factory=list)  # members who got an event


# --- auto-fill ----------------------------------------------------------------------------------


def run_autofill(
    uows: UnitsOfWork,
    snapshot: Snapshot,
    offer_id: str,
    member_ids: Sequence[str] | None,
) -> AutofillOutcome:
    """The "personal offer update" action: fill the empty slots of the offer for the given
    members (unknown ids skipped), or for None every member who can have a list: all members
    for a PREDEFINED list, those who bought something last month for a PURCHASE_HISTORY list.
    NOT_FOUND for an unknown offer, FAILED_PRECONDITION AUTOFILL_OFF or OFFER_ENDED.

    Candidates: the member's list in its order (engine.favorites.autofilled). Filled slots
    are marked auto_filled and do not use up the member's change; each member changed gets a
    FAVORITES_CHANGED event. One transaction per batch of members, each committed."""
    reader = uows()
    favorite = autofill_offer(snapshot, offer_id, reader.now)
    outcome = AutofillOutcome()
    with reader:
        for batch in _autofill_candidates(reader, snapshot, favorite, member_ids):
            autofill_batch(uows(), snapshot, favorite, batch, outcome)
    return outcome


def autofill_batch(
    uow: UnitOfWork,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_ids: Sequence[str],
    outcome: AutofillOutcome,
) -> None:
    """Auto-fill for a batch of member ids (those that are no members are skipped), in one
    transaction, committed; adds to `outcome`."""
    offer_id, now = favorite.offer.id, uow.now
    changed: list[str] = []
    added_slots: list[tuple[str, int, str]] = []  # (member, position, SKU)
    with uow:
        session = uow.session
        uow.lock_members(member_ids)  # before the selection rows, as every member writer
        members = sorted(claim_selections(session, offer_id, member_ids, members_only=True))
        stored = load_slots(session, offer_id, members)
        lists = _member_lists(session, snapshot, favorite, members, now)
        for member_id in members:
            filled, added = autofilled(favorite, stored.get(member_id, {}), lists[member_id])
            if not added:
                continue
            added_slots += [(member_id, index, sku) for index, sku in added]
            payload = {
                "offer_id": offer_id,
                "source": "AUTOFILL",
                "skus": filled_skus(filled),
                "added": [sku for _index, sku in added],
            }
            uow.add_event(member_id, EventType.FAVORITES_CHANGED, payload)
            changed.append(member_id)
        if changed:
            add_slots(session, offer_id, added_slots, now, auto_filled=True)
            bump_versions(session, offer_id, changed)
            uow.members_changed(changed)
        uow.commit()
    outcome.members_updated += len(changed)
    outcome.slots_filled += len(added_slots)
    outcome.member_ids += changed


def _autofill_candidates(
    reader: UnitOfWork,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_ids: Sequence[str] | None,
) -> Iterator[Sequence[str]]:
    """The ids asked for, or every member who can have a list, in batches."""
    size = favorites_repo.AUTOFILL_BATCH
    if member_ids is not None:
        yield from chunks(sorted(set(member_ids)), size)
        return
    if favorite.list_source is ListSource.PREDEFINED:
        candidates = iter_member_ids(reader.session)
    else:
        month = list_month(reader.now, snapshot.program_time_zone)
        candidates = members_who_bought(reader.session, month)
    yield from batched(candidates, size)


def _member_lists(
    session: Session,
    snapshot: Snapshot,
    favorite: FavoriteProductsOffer,
    member_ids: Sequence[str],
    now: datetime,
) -> dict[str, tuple[str, ...]]:
    """member id -> their list: the offer's product list, or each one's last month."""
    if favorite.list_source is ListSource.PREDEFINED:
        predefined = favorite_list(snapshot, favorite)
        return {member_id: predefined for member_id in member_ids}
    month = list_month(now, snapshot.program_time_zone)
    purchases = purchases_by_member(session, member_ids, month)
    return {m: favorite_list(snapshot, favorite, purchases.get(m, ())) for m in member_ids}


# --- new list on the 1st ------------------------------------------------------------------------


def list_cursor(offer_id: str) -> str:
    """The month-switch cursor of one offer (a digest when the id is too long)."""
    name = f"{JOB_CONSUMER_PREFIX}list:{offer_id}"
    if len(name) <= KEY:
        return name
    return f"{JOB_CONSUMER_PREFIX}list#" + hashlib.sha256(offer_id.encode()).hexdigest()[:40]


def switch_month(uow: UnitOfWork, snapshot: Snapshot) -> JobOutcome:
    """Announce members' new PURCHASE_HISTORY lists for the month containing `uow.now`."""
    now, tz = uow.now, snapshot.program_time_zone
    month = month_key(now, tz)
    number = int(month.replace("-", ""))
    outcome = JobOutcome()
    with uow:
        session = uow.session
        lock_outbox(session)
        offers = [
            f
            for f in snapshot.favorite_products_offers
            if f.list_source is ListSource.PURCHASE_HISTORY
            and valid_at(f.offer.valid_from, f.offer.valid_to, now)
            and acked_position(session, list_cursor(f.offer.id)) < number
        ]
        if not offers:
            return outcome
        bought = list_month(now, tz)  # last month: the new list
        before = list_month(previous_month_window(now, tz)[0], tz)  # the month before: the old one
        for batch in batched(members_who_bought(session, bought), BATCH):
            new = purchases_by_member(session, batch, bought)
            old = purchases_by_member(session, batch, before)
            for member_id in batch:
                for favorite in offers:
                    skus = favorite_list(snapshot, favorite, new.get(member_id, ()))
                    previous = favorite_list(snapshot, favorite, old.get(member_id, ()))
                    if list_changed(skus, previous):
                        payload = {
                            "offer_id": favorite.offer.id,
                            "list_month": month,
                            "purchases_month": bought,
                            "skus": list(skus),
                        }
                        _announce(uow, outcome, member_id, EventType.NEW_FAVORITE_LIST, payload)
        for favorite in offers:
            ack_events(session, list_cursor(favorite.offer.id), number, now, job=True)
        uow.commit()
    return outcome


# --- selection allowed again --------------------------------------------------------------------


def announce_selection_allowed(
    uow: UnitOfWork, snapshot: Snapshot, *, first_run_lookback: timedelta = FIRST_RUN_LOOKBACK
) -> JobOutcome:
    """Announce every replacement that became allowed in (last run, now]."""
    now, tz = uow.now, snapshot.program_time_zone
    outcome = JobOutcome()
    with uow:
        session = uow.session
        lock_outbox(session)
        cursor = acked_position(session, SELECTION_CURSOR)
        since = _EPOCH + timedelta(microseconds=cursor) if cursor else now - first_run_lookback
        if now <= since:
            return outcome
        kind = "FAVORITE_PRODUCTS"
        for favorite in snapshot.favorite_products_offers:
            offer = favorite.offer
            if favorite.frequency is Frequency.ONE_TIME or not valid_at(
                offer.valid_from, offer.valid_to, now
            ):
                continue
            earliest = since - longest_period(favorite.frequency, favorite.every_n_days)
            for member_id, last_change_at in replacements_since(session, offer.id, earliest, now):
                allowed_from = allowed_again_between(
                    favorite.frequency, favorite.every_n_days, last_change_at, since, now, tz
                )
                if allowed_from is not None:
                    payload = _allowed_payload(offer.id, kind, last_change_at, allowed_from)
                    _announce(uow, outcome, member_id, EventType.SELECTION_ALLOWED_AGAIN, payload)
        kind = "FAVORITE_CATEGORIES"
        for r in replacements_before(session, now):
            if has_ended(r.valid_to, now):
                continue
            allowed_from = allowed_again_between(
                r.frequency, r.every_n_days, r.last_change_at, since, now, tz
            )
            if allowed_from is not None:
                payload = _allowed_payload(r.offer_id, kind, r.last_change_at, allowed_from)
                _announce(uow, outcome, r.member_id, EventType.SELECTION_ALLOWED_AGAIN, payload)
        ack_events(session, SELECTION_CURSOR, to_epoch_us(now), now, job=True)
        uow.commit()
    return outcome


def _allowed_payload(
    offer_id: str, kind: str, last_change_at: datetime, allowed_from: datetime
) -> dict[str, Any]:
    return {
        "offer_id": offer_id,
        "kind": kind,
        "last_change_at": last_change_at.isoformat(),
        "allowed_from": allowed_from.isoformat(),
    }


def _announce(
    uow: UnitOfWork,
    outcome: JobOutcome,
    member_id: str,
    event_type: EventType,
    payload: dict[str, Any],
) -> None:
    uow.add_event(member_id, event_type, payload)
    outcome.events += 1
    outcome.member_ids.append(member_id)


# --- running them -------------------------------------------------------------------------------


def run_member_jobs(
    uows: UnitsOfWork, snapshot: Snapshot, points_expiring_soon: timedelta | None = None
) -> int:
    """The list switch and "selection allowed again", each in its own transaction, committed,
    and the points expiry (service.app.points_jobs) given its "expiring soon" window;
    returns the events written."""
    written = 0
    for job in (switch_month, announce_selection_allowed):
        outcome = job(uows(), snapshot)
        log.info("%s: %d events", job.__name__, outcome.events)
        written += outcome.events
    if points_expiring_soon is not None:
        events = run_points_expiry(uows, points_expiring_soon)
        log.info("run_points_expiry: %d events", events)
        written += events
    return written
