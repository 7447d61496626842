"""A member's bonus points in the ledger (points_ledger; spec §12, docs/points.md).

Every movement is a row, on the transaction of the confirm or refund that makes it:

    accrual   +points an offer gave on a confirmed receipt; spendable from `available_at`
              (the confirm's time plus the activation delay; NULL: at once)
    reversal  -points a refund takes back of an accrual, spendable when that accrual was, so
              a pending accrual and its reversal net out before either counts as available
    spend     -points a confirm spent on the receipt
    return    +spent points a refund gives back, spendable at once

The balance is the sum of all rows; what may be spent at an instant is the sum of the rows
available by then. A confirm reads that sum under the member's lock (use case), so two
confirms of one member never both spend the same points.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select
from sqlalchemy.orm import Session

from service.store.models import PointsLedgerRow
from service.store.sql import table_of

ACCRUAL = "accrual"
REVERSAL = "reversal"
SPEND = "spend"
RETURN = "return"
NO_OFFER = ""  # the offer id of a spend or return row: points, not an offer's


@dataclass(frozen=True, slots=True)
class PointsPosition:
    """A member's points at an instant: the ledger's sum, and how much of it may be spent now
    and how much is still waiting for its activation."""

    balance: int
    available: int

    @property
    def pending(self) -> int:
        return self.balance - self.available


@dataclass(frozen=True, slots=True)
class _Statements:
    position: Any  # :b_member_id, :b_at -> (balance, available)
    accrual_times: Any  # :b_receipt_id -> (offer_id, available_at) of its accruals
    insert: Any


@functools.cache
def _statements() -> _Statements:
    ledger = table_of(PointsLedgerRow)
    at: Any = bindparam("b_at")
    available = or_(ledger.c.available_at.is_(None), ledger.c.available_at <= at)
    return _Statements(
        position=select(
            func.coalesce(func.sum(ledger.c.points), 0),
            func.coalesce(func.sum(case((available, ledger.c.points), else_=0)), 0),
        ).where(ledger.c.member_id == bindparam("b_member_id")),
        accrual_times=select(ledger.c.offer_id, ledger.c.available_at).where(
            ledger.c.receipt_id == bindparam("b_receipt_id"), ledger.c.kind == ACCRUAL
        ),
        insert=ledger.insert(),
    )


def points_position(session: Session, member_id: str, at: datetime) -> PointsPosition:
    """The member's balance and what of it may be spent at `at` (one indexed read)."""
    row = (
        session.connection()
        .execute(_statements().position, {"b_member_id": member_id, "b_at": at})
        .one()
    )
    return PointsPosition(balance=int(row[0]), available=int(row[1]))


def accrue(
    session: Session,
    member_id: str,
    receipt_id: str,
    points: Mapping[str, int],
    at: datetime,
    available_at: datetime | None,
) -> None:
    """One accrual row per offer that gave points on the receipt (offer id -> points)."""
    _insert(
        session,
        [
            _row(member_id, receipt_id, None, offer_id, given, ACCRUAL, at, available_at)
            for offer_id, given in points.items()
            if given
        ],
    )


def spend(session: Session, member_id: str, receipt_id: str, points: int, at: datetime) -> None:
    """The spending row of a confirm (the caller checked the points are available)."""
    if points:
        _insert(session, [_row(member_id, receipt_id, None, NO_OFFER, -points, SPEND, at, None)])


def reverse(
    session: Session,
    member_id: str,
    receipt_id: str,
    refund_id: str,
    taken: Mapping[str, int],
    returned: int,
    at: datetime,
) -> None:
    """A refund's rows: accrued points taken back per offer (each spendable when its accrual
    was), and spent points given back."""
    times: dict[str, datetime | None] = {}
    if taken:
        found = session.connection().execute(
            _statements().accrual_times, {"b_receipt_id": receipt_id}
        )
        times = {r.offer_id: r.available_at for r in found}
    rows = [
        _row(member_id, receipt_id, refund_id, offer_id, -points, REVERSAL, at, times.get(offer_id))
        for offer_id, points in taken.items()
        if points
    ]
    if returned:
        rows.append(_row(member_id, receipt_id, refund_id, NO_OFFER, returned, RETURN, at, None))
    _insert(session, rows)


def _row(
    member_id: str,
    receipt_id: str,
    refund_id: str | None,
    offer_id: str,
    points: int,
    kind: str,
    at: datetime,
    available_at: datetime | None,
) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "receipt_id": receipt_id,
        "refund_id": refund_id,
        "offer_id": offer_id,
        "points": points,
        "created_at": at,
        "kind": kind,
        "available_at": available_at,
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.connection().execute(_statements().insert, rows)
