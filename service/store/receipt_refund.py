"""Refunding a confirmed receipt, fully or partly, once per refund id.

One transaction, committed explicitly. Its first statement locks the receipt row (a no-op
UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so refunds of one receipt run one
after another and never give back more than was bought; it also says whether the receipt
exists. Then: a repeat of a stored refund id is answered from the stored response; otherwise
the refund takes back, per line, its share of amount, discount and each offer's points
(receipt_shares), reverses the ledger and the usage counters by those shares, and takes the
goods out of the purchase history of the month of the original sale.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.v1 import receipt_pb2
from service.clock import utc_now
from service.engine.model import PIECE_QUANTITY
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.limits import quote
from service.store.member_documents import lock_members, usage_changed
from service.store.models import (
    ReceiptBenefitRow,
    ReceiptLineRow,
    ReceiptRow,
    RefundLineRow,
    RefundRow,
)
from service.store.receipt_records import (
    decode_record,
    points_balance,
    refund_fingerprint,
    replay_refund,
    stored_refund,
)
from service.store.receipt_shares import (
    ConfirmedLine,
    CountedUsage,
    LineRefund,
    points_by_offer,
    refund_line,
    usage_given_back,
)
from service.store.receipt_sql import add_to_history, statements_for
from service.store.sql import insert_rows, table_of

Sessions = Callable[[], Session]
IsPiece = Callable[[str], bool]  # sku -> sold by the piece (refunded in whole pieces)

RECEIPT_NOT_FOUND = "RECEIPT_NOT_FOUND"
NOTHING_LEFT_TO_REFUND = "NOTHING_LEFT_TO_REFUND"
REFUND_EXCEEDS_PURCHASE = "REFUND_EXCEEDS_PURCHASE"


@dataclass(frozen=True, slots=True)
class Refunded:
    """A refund's response, and whose state it changed (None: nobody's, e.g. a repeat)."""

    response: receipt_pb2.RefundResponse
    member_id: str | None = None


def refund_receipt(
    sessions: Sessions,
    request: receipt_pb2.RefundRequest,
    *,
    time_zone: ZoneInfo,
    is_piece: IsPiece,
    now: datetime | None = None,
) -> Refunded:
    """Refund once and return the response; a repeat returns the stored one.

    The request's own fields are validated by the caller (ids present, positive quantities,
    no duplicate lines, `full` xor lines). Raises NotFound (no such confirmed receipt),
    InvalidArgument (a line the receipt does not have, part of a piece), FailedPrecondition
    (more than is left of a line, nothing left at all) and AlreadyExists (refund id reused
    with other content)."""
    fingerprint = refund_fingerprint(request)
    with sessions() as session:  # most repeats are answered by one read
        stored = stored_refund(session, request.refund_id)
    if stored is not None:
        return Refunded(replay_refund(stored, fingerprint))
    at = now or utc_now()
    with sessions() as session:
        try:
            refunded = _refund(session, request, fingerprint, time_zone, is_piece, at)
            if refunded.response.replayed:
                session.rollback()
            else:
                session.commit()
        except IntegrityError:
            # the same refund id was stored meanwhile, for another receipt
            session.rollback()
            stored = stored_refund(session, request.refund_id)
            if stored is None:
                raise
            return Refunded(replay_refund(stored, fingerprint))
        except BaseException:
            session.rollback()
            raise
    return refunded


def _refund(
    session: Session,
    request: receipt_pb2.RefundRequest,
    fingerprint: str,
    time_zone: ZoneInfo,
    is_piece: IsPiece,
    at: datetime,
) -> Refunded:
    receipt_id = request.receipt_id
    if not _lock_receipt(session, receipt_id):
        raise NotFound(f"no confirmed receipt {quote(receipt_id)}", reason=RECEIPT_NOT_FOUND)
    stored = stored_refund(session, request.refund_id)
    if stored is not None:  # committed while this one waited for the lock
        return Refunded(replay_refund(stored, fingerprint))
    receipts = table_of(ReceiptRow)
    receipt = session.execute(
        select(receipts.c.member_id, receipts.c.sale_time, receipts.c.response).where(
            receipts.c.receipt_id == receipt_id
        )
    ).one()
    lines = _confirmed_lines(session, receipt_id)
    refunds = [refund_line(line, quantity) for line, quantity in _wanted(request, lines, is_piece)]
    points = points_by_offer(refunds)
    member_id: str | None = receipt.member_id
    balance = 0
    if member_id:
        balance = points_balance(session, member_id) - sum(points.values())
    response = _response(request, refunds, balance)
    insert_rows(
        session,
        RefundRow,
        [
            {
                "refund_id": request.refund_id,
                "receipt_id": receipt_id,
                "fingerprint": fingerprint,
                "response": response.SerializeToString(),
                "created_at": at,
            }
        ],
    )
    insert_rows(
        session,
        RefundLineRow,
        [
            {
                "refund_id": request.refund_id,
                "line_no": r.line_no,
                "quantity": r.quantity,
                "amount": r.amount,
                "discount": r.discount,
                "points": r.points,
            }
            for r in refunds
        ],
    )
    if member_id:
        lock_members(session, [member_id])
        _, usage = decode_record(receipt.response)
        refunded_now = {r.line_no: r.quantity for r in refunds}
        totals = _give_back_usage(session, member_id, usage, lines, refunded_now, at)
        _reverse_points(session, member_id, receipt_id, request.refund_id, points, at)
        month = receipt.sale_time.astimezone(time_zone).strftime("%Y-%m")
        returned: dict[tuple[str, str], tuple[int, int]] = {}
        for r in refunds:
            quantity, paid = returned.get((r.sku, month), (0, 0))
            returned[(r.sku, month)] = (quantity - r.quantity, paid - r.paid)
        add_to_history(session.connection(), statements_for(session), member_id, returned)
        usage_changed(session, member_id, totals, at)
    return Refunded(response, member_id)


def _lock_receipt(session: Session, receipt_id: str) -> bool:
    """Lock the receipt row for this transaction; False when there is no such receipt."""
    lock = statements_for(session).lock_receipt
    done = session.connection().execute(lock, {"b_receipt_id": receipt_id})
    return bool(done.rowcount)


def _confirmed_lines(session: Session, receipt_id: str) -> list[ConfirmedLine]:
    """The receipt's lines in line_no order, with their points per offer and what earlier
    refunds took back."""
    lines_t, benefits_t = table_of(ReceiptLineRow), table_of(ReceiptBenefitRow)
    refunds_t, refund_lines_t = table_of(RefundRow), table_of(RefundLineRow)
    offers: dict[int, set[str]] = defaultdict(set)
    points: dict[int, dict[str, int]] = defaultdict(dict)
    for b in session.execute(
        select(benefits_t.c.line_no, benefits_t.c.offer_id, benefits_t.c.points).where(
            benefits_t.c.receipt_id == receipt_id
        )
    ):
        offers[b.line_no].add(b.offer_id)
        if b.points:
            by_offer = points[b.line_no]
            by_offer[b.offer_id] = by_offer.get(b.offer_id, 0) + b.points
    refunded_query = (
        select(refund_lines_t.c.line_no, func.sum(refund_lines_t.c.quantity).label("quantity"))
        .join(refunds_t, refunds_t.c.refund_id == refund_lines_t.c.refund_id)
        .where(refunds_t.c.receipt_id == receipt_id)
        .group_by(refund_lines_t.c.line_no)
    )
    refunded = {r.line_no: int(r.quantity) for r in session.execute(refunded_query)}
    rows = session.execute(
        select(lines_t).where(lines_t.c.receipt_id == receipt_id).order_by(lines_t.c.line_no)
    )
    return [
        ConfirmedLine(
            line_no=r.line_no,
            line_id=r.line_id,
            sku=r.sku,
            quantity=r.quantity,
            amount=r.amount,
            discount=r.discount,
            points_by_offer=tuple(sorted(points[r.line_no].items())),
            offer_ids=frozenset(offers[r.line_no]),
            refunded=refunded.get(r.line_no, 0),
        )
        for r in rows
    ]


def _wanted(
    request: receipt_pb2.RefundRequest, lines: Sequence[ConfirmedLine], is_piece: IsPiece
) -> list[tuple[ConfirmedLine, int]]:
    """Which lines, and how much of each, the request refunds; refused if it asks for a line
    the receipt does not have, part of a piece, or more than is left."""
    if request.full:
        wanted = [(line, line.left) for line in lines if line.left > 0]
        if not wanted:
            raise FailedPrecondition(
                f"receipt {quote(request.receipt_id)} is already refunded in full",
                reason=NOTHING_LEFT_TO_REFUND,
            )
        return wanted
    by_id = {line.line_id: line for line in lines}
    wanted = []
    for index, asked in enumerate(request.lines):
        line = by_id.get(asked.line_id)
        if line is None:
            raise InvalidArgument(
                f"lines[{index}].line_id",
                f"receipt {quote(request.receipt_id)} has no line {quote(asked.line_id)}",
            )
        quantity = asked.quantity
        if quantity > line.left:
            raise FailedPrecondition(
                f"line {quote(line.line_id)}: {_units(line.left)} left to refund, "
                f"{_units(quantity)} asked",
                reason=REFUND_EXCEEDS_PURCHASE,
            )
        if quantity % PIECE_QUANTITY and quantity != line.left and is_piece(line.sku):
            raise InvalidArgument(
                f"lines[{index}].quantity",
                "a product sold by the piece is refunded in whole pieces (x1000)",
            )
        wanted.append((line, quantity))
    return wanted


def _units(quantity: int) -> str:
    return f"{quantity // PIECE_QUANTITY}.{quantity % PIECE_QUANTITY:03d}"


def _response(
    request: receipt_pb2.RefundRequest, refunds: Sequence[LineRefund], balance: int
) -> receipt_pb2.RefundResponse:
    response = receipt_pb2.RefundResponse(
        refund_id=request.refund_id, receipt_id=request.receipt_id, points_balance=balance
    )
    for r in refunds:
        response.lines.add(
            line_id=r.line_id,
            quantity=r.quantity,
            amount=r.amount,
            discount=r.discount,
            paid=r.paid,
            points=r.points,
        )
    response.total_paid = sum(r.paid for r in refunds)
    response.total_points = sum(r.points for r in refunds)
    return response


def _give_back_usage(
    session: Session,
    member_id: str,
    usage: Sequence[CountedUsage],
    lines: Sequence[ConfirmedLine],
    refunded_now: dict[int, int],
    at: datetime,
) -> dict[tuple[str, str], int]:
    """Lower the member's counters by what the refund gives back (never below zero), in one
    order (offer, period) like the confirm; returns the new values of those it lowered."""
    sql = statements_for(session)
    connection = session.connection()
    totals: dict[tuple[str, str], int] = {}
    for counted in sorted(usage, key=lambda u: (u.offer_id, u.period_key)):
        back = usage_given_back(counted, lines, refunded_now)
        if back > 0:
            key = {
                "b_member_id": member_id,
                "b_offer_id": counted.offer_id,
                "b_period_key": counted.period_key,
            }
            lowered = connection.execute(
                sql.take_back_usage, {**key, "back": back, "b_updated_at": at}
            ).first()
            if lowered is not None:
                totals[(counted.offer_id, counted.period_key)] = lowered.used
    return totals


def _reverse_points(
    session: Session,
    member_id: str,
    receipt_id: str,
    refund_id: str,
    points: dict[str, int],
    at: datetime,
) -> None:
    """One negative ledger row per offer whose points the refund takes back."""
    rows = [
        {
            "member_id": member_id,
            "receipt_id": receipt_id,
            "refund_id": refund_id,
            "offer_id": offer_id,
            "points": -taken,
            "created_at": at,
        }
        for offer_id, taken in points.items()
    ]
    if rows:
        session.connection().execute(statements_for(session).insert_ledger, rows)
