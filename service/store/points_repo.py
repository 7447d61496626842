"""A member's bonus points in the ledger (points_ledger; spec §21, docs/points.md).

Every movement is a row, on the transaction of the confirm, refund or job that makes it:

    accrual   +points an offer gave on a confirmed receipt; spendable from `available_at`
              (the confirm's time plus the activation delay; NULL: at once) until
              `expires_at` (NULL: never)
    reversal  -points a refund takes back of an accrual
    spend     -points a confirm spent on the receipt
    return    +spent points a refund gives back, spendable at once, expiring like new ones
    expiry    -points of lots that expired (written by the expiry job, a record only)

What a member has at an instant is the replay of their rows (engine.points_balance). A confirm
reads it under the member's lock (use case), so two confirms of one member never both spend
the same points.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from service.engine.points_balance import (
    ACCRUAL,
    EXPIRY,
    FOREVER,
    RETURN,
    REVERSAL,
    SPEND,
    Lifetime,
    Movement,
    PointsPosition,
)
from service.engine.points_balance import (
    points_position as replay,
)
from service.store.models import PointsLedgerRow
from service.store.pipeline import Batch, Later
from service.store.sql import table_of

NO_OFFER = ""  # the offer id of a spend, return or expiry row: points, not an offer's


@dataclass(frozen=True, slots=True)
class _Statements:
    movements: Any  # :b_member_id -> the member's rows in ledger order
    insert: Any


@functools.cache
def _statements() -> _Statements:
    ledger = table_of(PointsLedgerRow)
    return _Statements(
        movements=select(
            ledger.c.kind,
            ledger.c.points,
            ledger.c.created_at,
            ledger.c.available_at,
            ledger.c.expires_at,
            ledger.c.receipt_id,
        )
        .where(ledger.c.member_id == bindparam("b_member_id"))
        .order_by(ledger.c.id),
        insert=ledger.insert(),
    )


def points_position(
    session: Session, member_id: str, at: datetime, soon: timedelta = timedelta(0)
) -> PointsPosition:
    """The member's points at `at`: available, pending, expiring within `soon` (one indexed
    read of their ledger)."""
    rows = session.connection().execute(_statements().movements, {"b_member_id": member_id})
    return replay((Movement(*row) for row in rows), at, soon)


def members_with_lots_expiring(
    session: Session, after: datetime | None, until: datetime
) -> list[str]:
    """Members with points (accrued or given back) expiring in (after, until], by id."""
    ledger = table_of(PointsLedgerRow)
    query = select(ledger.c.member_id).where(
        ledger.c.kind.in_((ACCRUAL, RETURN)), ledger.c.expires_at <= until
    )
    if after is not None:
        query = query.where(ledger.c.expires_at > after)
    found = session.execute(query.group_by(ledger.c.member_id).order_by(ledger.c.member_id))
    return [row.member_id for row in found]


def accrue(
    session: Session,
    member_id: str,
    receipt_id: str,
    points: Mapping[str, int],
    at: datetime,
    lifetime: Lifetime = FOREVER,
) -> None:
    """One accrual row per offer that gave points on the receipt (offer id -> points)."""
    _insert(session, _accrual_rows(member_id, receipt_id, points, at, lifetime))


def _accrual_rows(
    member_id: str, receipt_id: str, points: Mapping[str, int], at: datetime, lifetime: Lifetime
) -> list[dict[str, Any]]:
    available_at, expires_at = lifetime.available_at(at), lifetime.expires_at(at)
    return [
        _row(member_id, receipt_id, None, offer_id, given, ACCRUAL, at)
        | {"available_at": available_at, "expires_at": expires_at}
        for offer_id, given in points.items()
        if given
    ]


def spend(session: Session, member_id: str, receipt_id: str, points: int, at: datetime) -> None:
    """The spending row of a confirm (the caller checked the points are available)."""
    if points:
        _insert(session, [_row(member_id, receipt_id, None, NO_OFFER, -points, SPEND, at)])


def reverse(
    session: Session,
    member_id: str,
    receipt_id: str,
    refund_id: str,
    taken: Mapping[str, int],
    returned: int,
    at: datetime,
    lifetime: Lifetime = FOREVER,
) -> None:
    """A refund's rows: earned points taken back per offer, and spent points given back
    (spendable at once, expiring like points earned now)."""
    rows = [
        _row(member_id, receipt_id, refund_id, offer_id, -points, REVERSAL, at)
        for offer_id, points in taken.items()
        if points
    ]
    if returned:
        row = _row(member_id, receipt_id, refund_id, NO_OFFER, returned, RETURN, at)
        rows.append(row | {"expires_at": lifetime.given_back_expires_at(at)})
    _insert(session, rows)


def record_expiry(session: Session, member_id: str, points: int, at: datetime) -> None:
    """The record of `points` that expired by `at` (the replay already leaves them out)."""
    if points:
        _insert(session, [_row(member_id, None, None, NO_OFFER, -points, EXPIRY, at)])


def _row(
    member_id: str,
    receipt_id: str | None,
    refund_id: str | None,
    offer_id: str,
    points: int,
    kind: str,
    at: datetime,
) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "receipt_id": receipt_id,
        "refund_id": refund_id,
        "offer_id": offer_id,
        "points": points,
        "created_at": at,
        "kind": kind,
        "available_at": None,
        "expires_at": None,
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.connection().execute(_statements().insert, rows)


# --- the same on a batch (service.store.pipeline: a confirm sends its statements together) ---


def queue_accrual(
    batch: Batch,
    member_id: str,
    receipt_id: str,
    points: Mapping[str, int],
    at: datetime,
    lifetime: Lifetime = FOREVER,
) -> None:
    """accrue(), the rows written when the batch is sent."""
    batch.execute_many(
        _statements().insert, _accrual_rows(member_id, receipt_id, points, at, lifetime)
    )


def queue_points_position(
    batch: Batch, member_id: str, at: datetime, soon: timedelta = timedelta(0)
) -> Later[PointsPosition]:
    """points_position(), read when the batch is sent (after what was queued before it)."""
    pending = batch.execute(_statements().movements, {"b_member_id": member_id})
    return Later(pending, lambda done: replay((Movement(*row) for row in done.rows), at, soon))
