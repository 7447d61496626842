"""A member's bonus points: the ledger (points_ledger) and the open lots (points_lots); spec
§21, docs/points.md.

Every movement is a ledger row, on the transaction of the confirm, refund or job that makes it:

    accrual   +points an offer gave on a confirmed receipt; spendable from `available_at`
              (the confirm's time plus the activation delay; NULL: at once) until
              `expires_at` (NULL: never)
    reversal  -points a refund takes back of an accrual
    spend     -points a confirm spent on the receipt
    return    +spent points a refund gives back, spendable at once, expiring like new ones
    expiry    -points of lots that expired (written by the expiry job when it closes them)

The ledger is the audit trail. What a member holds is kept beside it, in the same transaction:
their lots with points left and their debt (engine.points_balance.PointsHolding), so a movement
reads and rewrites the member's few open lots, never the whole ledger; each write also folds
the lots no rule tells apart any more (PointsHolding.folded), so a member who never spends
keeps one lot per expiry, not one per receipt. Writers hold the
member's lock (use case) while they read and write them, so two confirms of one member never
both spend the same points. Each writer returns the holding after its movement: the use case
puts it in the member's document, from which calculations read it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from service.engine.points_balance import (
    ACCRUAL,
    EXPIRY,
    FOREVER,
    NO_POINTS,
    RETURN,
    REVERSAL,
    SPEND,
    Lifetime,
    Lot,
    Movement,
    PointsHolding,
    PointsPosition,
)
from service.store.models import PointsLedgerRow, PointsLotRow
from service.store.pipeline import Batch, Later, Pending
from service.store.sql import chunks, table_of

NO_OFFER = ""  # the offer id of a spend, return or expiry row: points, not an offer's
DEBT = "debt"  # the kind of the lot row holding a member's debt


@dataclass(frozen=True, slots=True)
class _Statements:
    lots: Any  # :b_member_id -> the member's open lots (and debt), in ledger order
    insert: Any  # a ledger row
    insert_lot: Any
    set_lot: Any  # :b_key, :b_left, :b_available_at, :b_receipt_id
    drop: Any  # :b_key
    drop_debt: Any  # :b_member_id
    expire: Any  # :b_member_id, :b_at -> delete the lots expired by then, returning their points
    accrual_expiry: Any  # :b_receipt_id -> when the receipt's accrued points expire


@functools.cache
def _statements() -> _Statements:
    ledger, lots = table_of(PointsLedgerRow), table_of(PointsLotRow)
    member = lots.c.member_id == bindparam("b_member_id")
    return _Statements(
        lots=select(*_lot_columns(lots)).where(member).order_by(lots.c.id),
        insert=ledger.insert(),
        insert_lot=lots.insert(),
        drop=delete(lots).where(lots.c.id == bindparam("b_key")),
        drop_debt=delete(lots).where(member, lots.c.kind == DEBT),
        set_lot=update(lots)
        .where(lots.c.id == bindparam("b_key"))
        .values(
            points_left=bindparam("b_left"),
            available_at=bindparam("b_available_at"),
            receipt_id=bindparam("b_receipt_id"),
        ),
        expire=delete(lots)
        .where(member, lots.c.kind != DEBT, lots.c.expires_at <= bindparam("b_at"))
        .returning(lots.c.points_left),
        accrual_expiry=select(ledger.c.expires_at)
        .where(ledger.c.receipt_id == bindparam("b_receipt_id"), ledger.c.kind == ACCRUAL)
        .limit(1),
    )


def _lot_columns(lots: Any) -> tuple[Any, ...]:
    return (
        lots.c.id,
        lots.c.kind,
        lots.c.points_left,
        lots.c.available_at,
        lots.c.expires_at,
        lots.c.receipt_id,
    )


# --- reading ----------------------------------------------------------------------------------


def points_holding(session: Session, member_id: str) -> PointsHolding:
    """The member's open lots and debt (one indexed read of their open lots)."""
    rows = session.connection().execute(_statements().lots, {"b_member_id": member_id})
    return _holding(rows)


def points_holdings(session: Session, member_ids: Sequence[str]) -> dict[str, PointsHolding]:
    """Many members' holdings as their documents hold them (no store keys); members without
    points are left out."""
    lots = table_of(PointsLotRow)
    found: dict[str, list[Any]] = {}
    for part in chunks(sorted(set(member_ids))):
        query = (
            select(lots.c.member_id, *_lot_columns(lots))
            .where(lots.c.member_id.in_(part))
            .order_by(lots.c.member_id, lots.c.id)
        )
        for row in session.execute(query):
            found.setdefault(row.member_id, []).append(row[1:])
    return {member_id: _holding(rows, keyed=False) for member_id, rows in found.items()}


def points_position(
    session: Session, member_id: str, at: datetime, soon: timedelta = timedelta(0)
) -> PointsPosition:
    """The member's points at `at`: available, pending, expiring within `soon` (one indexed
    read of their open lots)."""
    return points_holding(session, member_id).position(at, soon)


def members_with_lots_expiring(
    session: Session, after: datetime | None, until: datetime
) -> list[str]:
    """Members with points (accrued or given back) left that expire in (after, until], by id."""
    lots = table_of(PointsLotRow)
    query = select(lots.c.member_id).where(lots.c.kind != DEBT, lots.c.expires_at <= until)
    if after is not None:
        query = query.where(lots.c.expires_at > after)
    found = session.execute(query.group_by(lots.c.member_id).order_by(lots.c.member_id))
    return [row.member_id for row in found]


def _holding(rows: Iterable[Any], *, keyed: bool = True) -> PointsHolding:
    lots, debt = [], 0
    for key, kind, left, available_at, expires_at, receipt_id in rows:
        if kind == DEBT:
            debt += left
        else:
            lots.append(
                Lot(left, kind, available_at, expires_at, receipt_id, key if keyed else None)
            )
    return PointsHolding(tuple(lots), debt) if lots or debt else NO_POINTS


# --- movements --------------------------------------------------------------------------------


def accrue(
    session: Session,
    member_id: str,
    receipt_id: str | None,
    points: Mapping[str, int],
    at: datetime,
    lifetime: Lifetime = FOREVER,
) -> PointsHolding:
    """One accrual row per offer that gave points on the receipt (offer id -> points; no
    receipt: points given outside the receipts, a welcome bonus); the member's holding after
    them."""
    return _move(session, member_id, _accrual_rows(member_id, receipt_id, points, at, lifetime), at)


def _accrual_rows(
    member_id: str,
    receipt_id: str | None,
    points: Mapping[str, int],
    at: datetime,
    lifetime: Lifetime,
) -> list[dict[str, Any]]:
    available_at, expires_at = lifetime.available_at(at), lifetime.expires_at(at)
    return [
        _row(member_id, receipt_id, None, offer_id, given, ACCRUAL, at)
        | {"available_at": available_at, "expires_at": expires_at}
        for offer_id, given in points.items()
        if given
    ]


@dataclass(frozen=True, slots=True)
class Reversal:
    """A refund's points, read under the member's lock: the balance before the refund, the
    member's holding after it, and the statements that make it (write_reversal)."""

    balance_before: int
    after: PointsHolding
    writes: tuple[tuple[Any, list[dict[str, Any]]], ...]


def reverse(
    batch: Batch,
    member_id: str,
    receipt_id: str,
    refund_id: str,
    taken: Mapping[str, int],
    returned: int,
    at: datetime,
    lifetime: Lifetime = FOREVER,
) -> Later[Reversal]:
    """A refund's rows: earned points taken back per offer, and spent points given back
    (spendable at once, expiring like points earned now). The member's open lots (and when
    the receipt's points expire) are read when the batch is sent; the rows and the lots'
    writes are written by write_reversal, after the refund's own row they refer to. What is
    taken back comes from the receipt's own lot, or, once that is folded, from the lot of
    its expiry (engine.points_balance). The lots are read before the rows are written: a
    refund holds its receipt's lock, on SQLite the store's write lock (see _move)."""
    rows = [
        _row(member_id, receipt_id, refund_id, offer_id, -points, REVERSAL, at)
        for offer_id, points in taken.items()
        if points
    ]
    if returned:
        row = _row(member_id, receipt_id, refund_id, NO_OFFER, returned, RETURN, at)
        rows.append(row | {"expires_at": lifetime.given_back_expires_at(at)})
    statements = _statements()
    expiry = None
    if any(taken.values()):  # when the points the receipt earned expire (all share it)
        expiry = batch.execute(statements.accrual_expiry, {"b_receipt_id": receipt_id})
    read = batch.execute(statements.lots, {"b_member_id": member_id})

    def reversal(done: Pending) -> Reversal:
        before = _holding(done.rows)
        after = _after(before, rows, at, None if expiry is None else expiry.scalar())
        writes = ((statements.insert, rows), *_lot_writes(member_id, before, after, at))
        return Reversal(before.position(at).balance, after, writes)

    return Later(read, reversal)


def write_reversal(batch: Batch, reversal: Reversal) -> None:
    for statement, rows in reversal.writes:
        batch.execute_many(statement, rows)


def record_expiry(session: Session, member_id: str, points: int, at: datetime) -> None:
    """The ledger's record of `points` that expired by `at` (the lots count them out by time)."""
    if points:
        _insert(session, [_row(member_id, None, None, NO_OFFER, -points, EXPIRY, at)])


def expire_lots(session: Session, member_id: str, at: datetime) -> tuple[int, PointsHolding]:
    """Close the member's lots expired by `at`, record what they had left and fold what
    stays; those points and the member's holding after it. The delete goes first, as the
    rows of _move do."""
    found = session.connection().execute(
        _statements().expire, {"b_member_id": member_id, "b_at": at}
    )
    points = int(sum(row.points_left for row in found))
    record_expiry(session, member_id, points, at)
    before = points_holding(session, member_id)
    after = before.folded(at)
    _save_lots(session, member_id, before, after, at)
    return points, after


def _move(
    session: Session,
    member_id: str,
    rows: list[dict[str, Any]],
    at: datetime,
) -> PointsHolding:
    """Write the ledger rows and bring the member's open lots to what they leave. The rows
    go first: on SQLite a transaction that writes before it reads cannot lose its write to
    another's commit in between."""
    _insert(session, rows)
    before = points_holding(session, member_id)
    after = _after(before, rows, at)
    _save_lots(session, member_id, before, after, at)
    return after


def _after(
    before: PointsHolding,
    rows: list[dict[str, Any]],
    at: datetime,
    accrual_expiry: datetime | None = None,
) -> PointsHolding:
    """The holding once the rows are made, folded; a reversal takes from lots expiring at
    `accrual_expiry` (its receipt's accrual's) after its own."""
    after = before
    for row in rows:
        after = after.after(_movement(row, accrual_expiry))
    return after.folded(at)


def _movement(row: Mapping[str, Any], accrual_expiry: datetime | None = None) -> Movement:
    expires_at = accrual_expiry if row["kind"] == REVERSAL else row["expires_at"]
    return Movement(
        row["kind"], row["points"], row["created_at"], row["available_at"], expires_at,
        row["receipt_id"],
    )  # fmt: skip


def _save_lots(
    session: Session, member_id: str, before: PointsHolding, after: PointsHolding, at: datetime
) -> None:
    connection = session.connection()
    for statement, rows in _lot_writes(member_id, before, after, at):
        connection.execute(statement, rows)


def _lot_writes(
    member_id: str, before: PointsHolding, after: PointsHolding, at: datetime
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The statements from `before` (as read) to `after`, each with its rows: lots emptied
    or folded into another are deleted, lots taken from or folded into get what they have
    now, new lots are inserted; the debt row is rewritten if it changed."""
    statements = _statements()
    kept: dict[int | None, Lot] = {lot.key: lot for lot in after.lots if lot.key is not None}
    gone = [{"b_key": lot.key} for lot in before.lots if lot.key not in kept]
    changed = [
        {
            "b_key": lot.key,
            "b_left": now.left,
            "b_available_at": now.available_at,
            "b_receipt_id": now.receipt_id,
        }
        for lot in before.lots
        if (now := kept.get(lot.key)) is not None and now != lot
    ]
    new = [
        _lot_row(member_id, lot.kind, lot.left, at, lot) for lot in after.lots if lot.key is None
    ]
    writes: list[tuple[Any, list[dict[str, Any]]]] = [
        (statements.drop, gone),
        (statements.set_lot, changed),
    ]
    if after.debt != before.debt:
        writes.append((statements.drop_debt, [{"b_member_id": member_id}]))
        if after.debt:
            new.append(_lot_row(member_id, DEBT, after.debt, at))
    writes.append((statements.insert_lot, new))
    return [(statement, rows) for statement, rows in writes if rows]


# --- the same on a batch (service.store.pipeline: a confirm sends its statements together) ---


@dataclass(frozen=True, slots=True)
class ReceiptPoints:
    """A confirm's points, as queue_receipt_points left them: what was available before it
    (to check its spending against) and the member's holding after it."""

    available_before: int
    after: PointsHolding


def queue_receipt_points(
    batch: Batch,
    member_id: str,
    receipt_id: str,
    spent: int,
    earned: Mapping[str, int],
    at: datetime,
    lifetime: Lifetime = FOREVER,
) -> Later[ReceiptPoints]:
    """A confirm's points on the batch: its spending row (`spent`, may be 0) and one accrual
    row per offer that gave points, and the read of the open lots, queued; once the batch is
    sent, the lots before them and after them, whose writes that queues (sent with the
    commit; its value must be taken before). The caller checks the spending against
    `available_before` and rolls back when it does not hold; the rows go first (see _move)."""
    rows = [_row(member_id, receipt_id, None, NO_OFFER, -spent, SPEND, at)] if spent else []
    rows += _accrual_rows(member_id, receipt_id, earned, at, lifetime)
    batch.execute_many(_statements().insert, rows)
    read = batch.execute(_statements().lots, {"b_member_id": member_id})

    def settle(done: Pending) -> ReceiptPoints:
        before = _holding(done.rows)
        after = _after(before, rows, at)
        for statement, changes in _lot_writes(member_id, before, after, at):
            batch.execute_many(statement, changes)
        return ReceiptPoints(before.position(at).available, after)

    return Later(read, settle)


def _lot_row(
    member_id: str, kind: str, left: int, at: datetime, lot: Lot | None = None
) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "kind": kind,
        "points_left": left,
        "available_at": None if lot is None else lot.available_at,
        "expires_at": None if lot is None else lot.expires_at,
        "receipt_id": None if lot is None else lot.receipt_id,
        "created_at": at,
    }


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
