"""The points expiry job (spec §21, docs/points.md), run with the member jobs.

A run has two steps, each its own transaction:

1. Closing: the lots expired by now are deleted from the members' open lots and recorded in
   the ledger (an expiry row each member), what stays is folded as by every write of points,
   their documents get the result and the change feed tells every replica. Expired points
   counted for nothing already (a lot's expiry is its time), so this changes no figure; it
   keeps lots and documents small. Members are locked first, as by
   every writer of members, in batches; what a run closes is gone for the next, so concurrent
   runs never record an expiry twice.
2. Announcing: members whose points entered the "expiring soon" window in (last run, now] get
   POINTS_EXPIRING_SOON. The cursor "job:points-expiry" holds the last run's time
   (microseconds since the epoch); the first run announces what enters the window in the last
   day. Like the other event jobs it takes the outbox lock first, so concurrent runs queue and
   the second finds the cursor moved: no event twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from service.app.unit_of_work import UnitOfWork
from service.engine.model import Member
from service.engine.points_balance import PointsHolding
from service.engine.rules import to_epoch_us
from service.store.outbox import (
    JOB_CONSUMER_PREFIX,
    EventType,
    ack_events,
    acked_position,
    lock_outbox,
)
from service.store.points_repo import expire_lots, members_with_lots_expiring, points_position
from service.store.sql import chunks

POINTS_CURSOR = JOB_CONSUMER_PREFIX + "points-expiry"
FIRST_RUN_LOOKBACK = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Units = Callable[[], UnitOfWork]


def run_points_expiry(units: Units, expiring_soon: timedelta) -> int:
    """One run at the time of the first unit of work, committed; returns the events written."""
    uow = units()
    now = uow.now
    close_expired_lots(units, now)
    events = 0
    with uow:
        session = uow.session
        lock_outbox(session)
        cursor = acked_position(session, POINTS_CURSOR)
        since = _EPOCH + timedelta(microseconds=cursor) if cursor else None
        if since is not None and now <= since:
            return 0
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


def close_expired_lots(units: Units, now: datetime) -> int:
    """Step 1: close and record every lot expired by `now`, a batch of members per
    transaction; returns the points closed."""
    with units() as uow:
        member_ids = members_with_lots_expiring(uow.session, None, now)
    closed = 0
    for batch in chunks(member_ids):
        with units() as uow:
            uow.lock_members(batch)  # before their lots, as every writer of members
            for member_id in batch:
                expired, holding = expire_lots(uow.session, member_id, now)
                closed += expired
                uow.patch_members([member_id], _holding_now(holding))
            uow.commit()
    return closed


def _holding_now(holding: PointsHolding) -> Callable[[Member], Member]:
    def patch(member: Member) -> Member:
        return replace(member, points=holding)

    return patch
