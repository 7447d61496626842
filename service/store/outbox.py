"""The outbox: events a member should hear about (spec §10), written in the same transaction as
the change that causes them; channel adapters and stream subscribers read them by position.

Positions in commit order. A position is handed out when a row is inserted, not when its
transaction commits; a reader asking for "position > last seen" could skip a slow
transaction that took a lower position and committed later. So every writer takes the
outbox lock before its first event (lock_outbox(): a transaction-scoped advisory lock on
PostgreSQL, the database write lock on SQLite) and holds it until it commits or rolls
back. A position is therefore only handed out once every lower one is committed or gone,
and "position > last seen" never misses an event. Positions of rolled-back transactions
leave permanent gaps (PostgreSQL), which a reader simply never sees.

Keep it short: add events late in a transaction, since other event writers wait from the
first add_event() to the commit.

Consumers record how far they have handled events (ack_events, monotonic). Consumer names
starting with "job:" are reserved for the jobs' own cursors (service/jobs.py).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from service import limits
from service.clock import utc_now
from service.errors import InvalidArgument, PermissionDenied
from service.limits import check_length, quote
from service.store.bulk_sql import BulkSql
from service.store.models import OutboxAckRow, OutboxRow
from service.store.sql import table_of, upsert

# pg_advisory_xact_lock key of the outbox ("loyalty outbox" in a signed 64-bit integer).
OUTBOX_LOCK_KEY = 0x4C4F59_4F5554
JOB_CONSUMER_PREFIX = "job:"
_LOCKED = "outbox_locked_transaction"
OUTBOX = table_of(OutboxRow).name
_COLUMNS = ("member_id", "event_type", "payload", "created_at")


class EventType(enum.StrEnum):
    """Names match loyalty.v1.MemberEventType without its prefix."""

    NEW_FAVORITE_LIST = "NEW_FAVORITE_LIST"
    SELECTION_ALLOWED_AGAIN = "SELECTION_ALLOWED_AGAIN"
    NEW_PERSONAL_OFFER = "NEW_PERSONAL_OFFER"
    CATEGORIES_TO_CHOOSE = "CATEGORIES_TO_CHOOSE"
    FAVORITES_CHANGED = "FAVORITES_CHANGED"
    POINTS_EXPIRING_SOON = "POINTS_EXPIRING_SOON"


@dataclass(frozen=True, slots=True)
class Event:
    position: int
    member_id: str | None
    event_type: str
    payload: Mapping[str, Any]
    created_at: datetime

    @property
    def offer_id(self) -> str:
        return str(self.payload.get("offer_id") or "")


# --- writing --------------------------------------------------------------------------------


def lock_outbox(session: Session) -> None:
    """Take the outbox lock for the rest of the session's transaction (once per transaction).

    PostgreSQL: pg_advisory_xact_lock, released at commit or rollback. SQLite: a write that
    changes nothing, which takes the database write lock (writers are serialized anyway)."""
    session.connection()  # begins the transaction if none is open
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_LOCKED) is transaction:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK_KEY})
    else:
        session.execute(text("UPDATE outbox_acks SET position = position WHERE 1 = 0"))
    session.info[_LOCKED] = transaction


def add_event(
    session: Session,
    member_id: str,
    event_type: EventType,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Record an event; part of the caller's transaction (never commits)."""
    add_events(session, [(member_id, event_type, payload or {})], now)


def add_events(
    session: Session,
    events: Iterable[tuple[str, EventType, Mapping[str, Any]]],
    now: datetime | None = None,
) -> int:
    """Record many events (member id, type, payload) in a few statements; returns how many.

    Values go to the driver as they are stored (service.store.bulk_sql): a bulk import
    writes thousands of events per batch."""
    at = now or utc_now()
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store keeps aware UTC datetimes")
    rows = [
        (member_id, str(event_type), BulkSql.json(dict(payload)))
        for member_id, event_type, payload in events
    ]
    if rows:
        lock_outbox(session)
        sql = BulkSql(session)
        stamp = sql.time(at)
        sql.insert(OUTBOX, _COLUMNS, [(*row, stamp) for row in rows])
    return len(rows)


# --- reading ----------------------------------------------------------------------------------


def events_after(
    session: Session, position: int, *, member_id: str | None = None, limit: int = 500
) -> list[Event]:
    """Events with a position above `position`, oldest first; optionally of one member."""
    outbox = table_of(OutboxRow)
    query = select(outbox).where(outbox.c.position > position)
    if member_id:
        query = query.where(outbox.c.member_id == member_id)
    query = query.order_by(outbox.c.position).limit(limit)
    return [
        Event(r.position, r.member_id, r.event_type, r.payload or {}, r.created_at)
        for r in session.execute(query)
    ]


def last_event_position(session: Session) -> int:
    """The highest position in the outbox, 0 when it is empty."""
    return session.scalar(select(func.coalesce(func.max(OutboxRow.position), 0))) or 0


# --- consumers' acknowledgements --------------------------------------------------------------


def check_consumer(consumer: str, field: str = "consumer", *, job: bool = False) -> None:
    if not consumer:
        raise InvalidArgument(field, "must not be empty")
    check_length(consumer, limits.ID, field)
    if not job and consumer.startswith(JOB_CONSUMER_PREFIX):
        raise InvalidArgument(field, f"names starting with {JOB_CONSUMER_PREFIX!r} are reserved")


def acked_position(session: Session, consumer: str, owner: str | None = None) -> int:
    """The position a consumer has acknowledged; 0 when it never did. With `owner`, only
    the credential that owns the consumer may read it."""
    found = session.execute(
        select(OutboxAckRow.position, OutboxAckRow.owner).where(OutboxAckRow.consumer == consumer)
    ).first()
    if found is None:
        return 0
    if owner is not None and found.owner not in ("", owner):
        raise PermissionDenied(
            f"consumer {quote(consumer)} belongs to another credential", reason="NOT_YOUR_CONSUMER"
        )
    return int(found.position)


def ack_events(
    session: Session,
    consumer: str,
    position: int,
    now: datetime | None = None,
    *,
    job: bool = False,
    owner: str = "",
) -> int:
    """Record that `consumer` handled every event up to and including `position`; returns the
    consumer's position now. Monotonic: an older position leaves the stored one unchanged
    (acks may arrive out of order or be repeated). A position beyond the last event is refused
    unless `job` (a job's cursor, which is not an outbox position). The first ack makes
    `owner` (a credential id) the consumer's owner; another owner's ack is PermissionDenied.
    On a refusal the caller rolls back."""
    check_consumer(consumer, job=job)
    if position < 0:
        raise InvalidArgument("position", "must not be negative")
    acks = table_of(OutboxAckRow)
    owned_by_caller = acks.c.owner.in_(("", owner))
    upsert(
        session,
        OutboxAckRow,
        [
            {
                "consumer": consumer,
                "position": position,
                "updated_at": now or utc_now(),
                "owner": owner,
            }
        ],
        on_conflict=lambda excluded: {
            "position": case(
                (owned_by_caller & (excluded.position > acks.c.position), excluded.position),
                else_=acks.c.position,
            ),
            "owner": case((acks.c.owner == "", excluded.owner), else_=acks.c.owner),
        },
    )  # the write comes first: on SQLite it takes the write lock before any read
    if not job and position > last_event_position(session):
        raise InvalidArgument("position", "is beyond the last event")
    return acked_position(session, consumer, owner)
