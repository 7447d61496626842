"""Scheduled jobs that produce member events (SPEC 10). Run them from cron or any scheduler:

    python -m service.jobs --database-url postgresql://... [--time-zone Europe/Moscow]

at 00:00 on the 1st (and again a little later, to be safe) and every few minutes. Each job
works in the caller's transaction and never commits; both are idempotent: running one twice,
on one replica or on several at once, writes no duplicate events.

- switch_month: from 00:00 on the 1st a PURCHASE_HISTORY member's list is last month's
  purchases. A member whose list changed (a different set of SKUs than the month before, and
  not empty) gets NEW_FAVORITE_LIST per PURCHASE_HISTORY offer valid now. Each offer's cursor
  remembers the last month announced ("job:list:<offer>" in outbox_acks, position = YYYYMM).
- announce_selection_allowed: a member whose next change time (SPEC 7.1, after their own
  replacement) passed since the last run gets SELECTION_ALLOWED_AGAIN, for favorite products
  and for favorite categories with acceptance on. The cursor "job:selection-allowed" holds the
  last run's time (microseconds since the epoch); the first run looks back one day.

Both jobs take the outbox lock first (service/store/outbox.py): concurrent runs queue, and
the second finds the cursor already moved.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.clock import utc_now
from service.engine.model import Frequency, ListSource
from service.engine.rules import to_epoch_us
from service.engine.selection import month_key, next_change_allowed, previous_month_window
from service.engine.snapshot import Snapshot, build_snapshot
from service.store import loader
from service.store.favorites_repo import (
    batched,
    favorite_list,
    list_month,
    members_who_bought,
    offer_valid_at,
    purchases_by_member,
)
from service.store.models import KEY, FavoriteCategoryAttributeRow, FavoriteSelectionRow
from service.store.outbox import (
    JOB_CONSUMER_PREFIX,
    EventType,
    ack_events,
    acked_position,
    add_events,
    lock_outbox,
)
from service.store.sql import table_of

log = logging.getLogger(__name__)

SELECTION_CURSOR = JOB_CONSUMER_PREFIX + "selection-allowed"
FIRST_RUN_LOOKBACK = timedelta(days=1)
BATCH = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class JobOutcome:
    events: int = 0
    member_ids: list[str] = field(default_factory=list)  # members who got an event


def list_cursor(offer_id: str) -> str:
    """The month-switch cursor of one offer (a digest when the id is too long)."""
    name = f"{JOB_CONSUMER_PREFIX}list:{offer_id}"
    if len(name) <= KEY:
        return name
    return f"{JOB_CONSUMER_PREFIX}list#" + hashlib.sha256(offer_id.encode()).hexdigest()[:40]


# --- new list on the 1st ------------------------------------------------------------------------


def switch_month(session: Session, snapshot: Snapshot, now: datetime) -> JobOutcome:
    """Announce members' new PURCHASE_HISTORY lists for the month containing `now`."""
    lock_outbox(session)
    tz = snapshot.program_time_zone
    month = month_key(now, tz)
    number = int(month.replace("-", ""))
    offers = [
        f
        for f in snapshot.favorite_products_offers
        if f.list_source is ListSource.PURCHASE_HISTORY
        and offer_valid_at(f.offer, now)
        and acked_position(session, list_cursor(f.offer.id)) < number
    ]
    outcome = JobOutcome()
    if not offers:
        return outcome
    bought = list_month(now, tz)  # last month: the new list
    before = list_month(previous_month_window(now, tz)[0], tz)  # the month before: the old one
    for batch in batched(members_who_bought(session, bought), BATCH):
        new = purchases_by_member(session, batch, bought)
        old = purchases_by_member(session, batch, before)
        events = []
        for member_id in batch:
            for favorite in offers:
                skus = favorite_list(snapshot, favorite, new.get(member_id, ()))
                previous = favorite_list(snapshot, favorite, old.get(member_id, ()))
                if skus and set(skus) != set(previous):
                    payload = {
                        "offer_id": favorite.offer.id,
                        "list_month": month,
                        "purchases_month": bought,
                        "skus": list(skus),
                    }
                    events.append((member_id, EventType.NEW_FAVORITE_LIST, payload))
        _record(session, events, now, outcome)
    for favorite in offers:
        ack_events(session, list_cursor(favorite.offer.id), number, now, job=True)
    return outcome


# --- selection allowed again --------------------------------------------------------------------


def announce_selection_allowed(
    session: Session,
    snapshot: Snapshot,
    now: datetime,
    *,
    first_run_lookback: timedelta = FIRST_RUN_LOOKBACK,
) -> JobOutcome:
    """Announce every replacement that became allowed in (last run, now]."""
    lock_outbox(session)
    tz = snapshot.program_time_zone
    cursor = acked_position(session, SELECTION_CURSOR)
    since = _EPOCH + timedelta(microseconds=cursor) if cursor else now - first_run_lookback
    outcome = JobOutcome()
    if now <= since:
        return outcome
    events: list[tuple[str, EventType, dict[str, Any]]] = []
    selections = table_of(FavoriteSelectionRow)
    for favorite in snapshot.favorite_products_offers:
        if favorite.frequency is Frequency.ONE_TIME or not offer_valid_at(favorite.offer, now):
            continue
        earliest = since - _longest_period(favorite.frequency, favorite.every_n_days)
        rows = session.execute(
            select(selections.c.member_id, selections.c.last_change_at)
            .where(
                selections.c.offer_id == favorite.offer.id,
                selections.c.last_change_at >= earliest,
                selections.c.last_change_at < now,
            )
            .order_by(selections.c.member_id)
        )
        for member_id, last_change_at in rows:
            allowed_from = next_change_allowed(
                favorite.frequency, favorite.every_n_days, last_change_at, tz
            )
            if allowed_from is not None and since < allowed_from <= now:
                payload = _allowed_payload(
                    favorite.offer.id, "FAVORITE_PRODUCTS", last_change_at, allowed_from
                )
                events.append((member_id, EventType.SELECTION_ALLOWED_AGAIN, payload))
    events += _categories_allowed(session, since, now, tz)
    for part in batched_events(events, BATCH):
        _record(session, part, now, outcome)
    ack_events(session, SELECTION_CURSOR, to_epoch_us(now), now, job=True)
    return outcome


def _categories_allowed(
    session: Session, since: datetime, now: datetime, tz: ZoneInfo
) -> list[tuple[str, EventType, dict[str, Any]]]:
    attributes = table_of(FavoriteCategoryAttributeRow)
    rows = session.execute(
        select(attributes)
        .where(
            attributes.c.acceptance_required.is_(True),
            attributes.c.frequency != Frequency.ONE_TIME,
            attributes.c.last_change_at.is_not(None),
            attributes.c.last_change_at < now,
        )
        .order_by(attributes.c.member_id, attributes.c.offer_id)
    )
    events = []
    for r in rows:
        if r.valid_to is not None and now >= r.valid_to:
            continue
        allowed_from = next_change_allowed(r.frequency, r.every_n_days, r.last_change_at, tz)
        if allowed_from is not None and since < allowed_from <= now:
            payload = _allowed_payload(
                r.offer_id, "FAVORITE_CATEGORIES", r.last_change_at, allowed_from
            )
            events.append((r.member_id, EventType.SELECTION_ALLOWED_AGAIN, payload))
    return events


def _allowed_payload(
    offer_id: str, kind: str, last_change_at: datetime, allowed_from: datetime
) -> dict[str, Any]:
    return {
        "offer_id": offer_id,
        "kind": kind,
        "last_change_at": last_change_at.isoformat(),
        "allowed_from": allowed_from.isoformat(),
    }


def _longest_period(frequency: Frequency, every_n_days: int) -> timedelta:
    """At least the longest time from a change to the next allowed one (a day may be 25 h)."""
    days = {Frequency.DAILY: 2, Frequency.WEEKLY: 8, Frequency.MONTHLY: 32}
    return timedelta(days=days.get(frequency, max(every_n_days, 1) + 1))


def batched_events(
    events: Sequence[tuple[str, EventType, dict[str, Any]]], size: int
) -> list[Sequence[tuple[str, EventType, dict[str, Any]]]]:
    return [events[start : start + size] for start in range(0, len(events), size)]


def _record(
    session: Session,
    events: Sequence[tuple[str, EventType, dict[str, Any]]],
    now: datetime,
    outcome: JobOutcome,
) -> None:
    outcome.events += add_events(session, events, now)
    outcome.member_ids += [member_id for member_id, _type, _payload in events]


# --- running them -------------------------------------------------------------------------------


def run_jobs(session_factory: sessionmaker[Session], snapshot: Snapshot, now: datetime) -> int:
    """Both jobs, each in its own transaction, committed; returns the events written."""
    written = 0
    for job in (switch_month, announce_selection_allowed):
        with session_factory() as session:
            outcome = job(session, snapshot, now)
            session.commit()
        log.info("%s: %d events", job.__name__, outcome.events)
        written += outcome.events
    return written


def main(argv: list[str] | None = None) -> None:
    from service.store.db import make_engine, make_session_factory

    parser = argparse.ArgumentParser(description="Run the member-event jobs once.")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--time-zone", default="Europe/Moscow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    engine = make_engine(args.database_url)
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            catalogue = loader.load_catalogue(session)
        snapshot = build_snapshot(**catalogue.as_kwargs(), program_time_zone=args.time_zone)
        print(run_jobs(sessions, snapshot, utc_now()))
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
