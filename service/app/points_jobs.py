"""The points expiry job (spec §21, docs/points.md), run with the member jobs.

Each run covers (last run, now]: points whose expiry passed in it get their expiry row in the
ledger (what the replay of the ledger already leaves out, recorded), and members with points
whose expiry entered the "expiring soon" window in it get POINTS_EXPIRING_SOON. The cursor
"job:points-expiry" holds the last run's time (microseconds since the epoch); the first run
records every expiry before it and announces what enters the window in the last day.

Like the other event jobs it takes the outbox lock first, so concurrent runs (on one replica
or several) queue, and the second finds the cursor moved: no event twice, no expiry twice (an
expiry row is written for the difference between what expired and what is recorded).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.app.unit_of_work import UnitOfWork
from service.engine.rules import to_epoch_us
from service.store.outbox import (
    JOB_CONSUMER_PREFIX,
    EventType,
    ack_events,
    acked_position,
    lock_outbox,
)
from service.store.points_repo import members_with_lots_expiring, points_position, record_expiry

POINTS_CURSOR = JOB_CONSUMER_PREFIX + "points-expiry"
FIRST_RUN_LOOKBACK = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_points_expiry(uow: UnitOfWork, expiring_soon: timedelta) -> int:
    """One run, committed; returns the events written."""
    now = uow.now
    events = 0
    with uow:
        session = uow.session
        lock_outbox(session)
        cursor = acked_position(session, POINTS_CURSOR)
        since = _EPOCH + timedelta(microseconds=cursor) if cursor else None
        if since is not None and now <= since:
            return 0
        for member_id in members_with_lots_expiring(session, since, now):
            position = points_position(session, member_id, now)
            record_expiry(session, member_id, position.expiry_to_record, now)
        window_from = (since if since is not None else now - FIRST_RUN_LOOKBACK) + expiring_soon
        before = now + expiring_soon
        for member_id in members_with_lots_expiring(session, window_from, before):
            expiring = points_position(session, member_id, now, expiring_soon).expiring_soon
            if expiring > 0:
                payload = {"points": expiring, "before": before.isoformat()}
                uow.add_event(member_id, EventType.POINTS_EXPIRING_SOON, payload)
                events += 1
        ack_events(session, POINTS_CURSOR, to_epoch_us(now), now, job=True)
        uow.commit()
    return events
