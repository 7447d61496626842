"""Migration 0009 fills the open lots from a ledger written under 0008: the store's position
afterwards is the replay of the ledger, expiry not yet recorded is recorded once, and the
member documents carry the lots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from service.engine.points_balance import ACCRUAL, EXPIRY, RETURN, REVERSAL, SPEND, Movement
from service.engine.points_balance import points_position as replay_position
from service.store.db import make_engine, migrate
from service.store.loader import load_member
from service.store.models import MemberRow, PointsLedgerRow, PointsLotRow
from service.store.points_repo import points_position
from service.store.sql import table_of

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
A, B, C = "M-A", "M-B", "M-C"


def movement(
    member_id: str, kind: str, points: int, days_ago: float, **lot: object
) -> dict[str, object]:
    return {
        "member_id": member_id,
        "offer_id": "B1",
        "kind": kind,
        "points": points,
        "created_at": NOW - days_ago * DAY,
        "receipt_id": None,
        "refund_id": None,
        "available_at": lot.get("available_at"),
        "expires_at": lot.get("expires_at"),
    }


LEDGER = [
    # A: spends from the lot expiring first; 70 of it expired unrecorded; one lot still pending
    movement(A, ACCRUAL, 100, 20, expires_at=NOW - 10 * DAY),
    movement(A, ACCRUAL, 50, 19),
    movement(A, SPEND, -30, 18),
    movement(A, ACCRUAL, 40, 1, available_at=NOW + DAY, expires_at=NOW + 30 * DAY),
    movement(A, RETURN, 10, 0.5, expires_at=NOW + 2 * DAY),
    # B: earned points taken back after they were spent: a debt the next points pay in part
    movement(B, ACCRUAL, 100, 5),
    movement(B, SPEND, -100, 4),
    movement(B, REVERSAL, -60, 3),
    movement(B, ACCRUAL, 20, 2),
    # C: an expiry the job recorded already, nothing left open
    movement(C, ACCRUAL, 25, 9, expires_at=NOW - DAY),
    movement(C, EXPIRY, -25, 0.9),
]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_lots_are_filled_from_the_ledger(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    migrate(url, "0008")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                table_of(MemberRow).insert(),
                [{"id": m, "active": True, "segment_tags": [], "created_at": NOW,
                  "updated_at": NOW} for m in (A, B, C)],
            )  # fmt: skip
            connection.execute(table_of(PointsLedgerRow).insert(), LEDGER)
        before = {m: _ledger(engine, m) for m in (A, B, C)}
        migrate(url)
        with Session(engine) as session:
            for member_id, movements in before.items():
                for at in (NOW + timedelta(minutes=1), NOW + 2 * DAY, NOW + 40 * DAY):
                    stored = points_position(session, member_id, at, 3 * DAY)
                    replayed = replay_position(movements, at, 3 * DAY)
                    assert (stored.available, stored.pending, stored.expiring_soon) == (
                        replayed.available, replayed.pending, replayed.expiring_soon,
                    ), member_id  # fmt: skip
                member = load_member(session, member_id)
                assert member is not None
                at = NOW + timedelta(minutes=1)
                assert member.points.position(at).balance == stored_balance(session, member_id)
            expiries = dict(
                session.execute(
                    select(PointsLedgerRow.member_id, func.sum(PointsLedgerRow.points))
                    .where(PointsLedgerRow.kind == EXPIRY)
                    .group_by(PointsLedgerRow.member_id)
                ).all()
            )
            lots = session.execute(
                select(
                    PointsLotRow.member_id, PointsLotRow.kind, PointsLotRow.points_left
                ).order_by(PointsLotRow.member_id, PointsLotRow.id)
            ).all()
    finally:
        engine.dispose()
    assert expiries == {A: -70, C: -25}, "A's expiry recorded now, C's not twice"
    assert [tuple(row) for row in lots] == [
        (A, ACCRUAL, 50),
        (A, ACCRUAL, 40),
        (A, RETURN, 10),
        (B, "debt", 40),
    ]


def stored_balance(session: Session, member_id: str) -> int:
    return points_position(session, member_id, NOW + timedelta(minutes=1)).balance


def _ledger(engine: Engine, member_id: str) -> list[Movement]:
    with Session(engine) as session:
        rows = session.execute(
            select(
                PointsLedgerRow.kind,
                PointsLedgerRow.points,
                PointsLedgerRow.created_at,
                PointsLedgerRow.available_at,
                PointsLedgerRow.expires_at,
                PointsLedgerRow.receipt_id,
            )
            .where(PointsLedgerRow.member_id == member_id)
            .order_by(PointsLedgerRow.id)
        )
        return [Movement(*row) for row in rows]
