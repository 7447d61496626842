"""The rows a refund reads and writes: the receipt's lock and lines, the refund and the usage
it gives back (its ledger rows: service.store.points_repo). Repository functions on the
caller's transaction (service.app.receipts runs it: the receipt's lock first, then the
member's); domain values
in and out (service.engine.lifecycle), nothing committed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.engine.lifecycle import ConfirmedLine, CountedUsage, Refund
from service.store.codec import line_benefits_from_json
from service.store.models import (
    ReceiptLineRow,
    ReceiptRow,
    RefundLineRow,
    RefundRow,
)
from service.store.receipt_sql import statements_for
from service.store.sql import insert_rows, table_of


@dataclass(frozen=True, slots=True)
class SoldReceipt:
    """What a refund reads of the receipt it refunds: whose it is, when it was sold, and the
    record its confirm kept (the usage counted)."""

    member_id: str | None
    sale_time: datetime
    record: bytes


def lock_receipt(session: Session, receipt_id: str) -> bool:
    """Lock the receipt row for this transaction (a no-op UPDATE: a row lock on PostgreSQL,
    the write lock on SQLite); False when there is no such receipt."""
    lock = statements_for(session).lock_receipt
    done = session.connection().execute(lock, {"b_receipt_id": receipt_id})
    return bool(done.rowcount)


def sold_receipt(session: Session, receipt_id: str) -> SoldReceipt:
    receipts = table_of(ReceiptRow)
    row = session.execute(
        select(receipts.c.member_id, receipts.c.sale_time, receipts.c.response).where(
            receipts.c.receipt_id == receipt_id
        )
    ).one()
    return SoldReceipt(row.member_id, row.sale_time, row.response)


def confirmed_lines(session: Session, receipt_id: str) -> list[ConfirmedLine]:
    """The receipt's lines in line_no order, with their points per offer and what earlier
    refunds took back."""
    lines_t = table_of(ReceiptLineRow)
    refunds_t, refund_lines_t = table_of(RefundRow), table_of(RefundLineRow)
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
    return [_confirmed_line(r, refunded.get(r.line_no, 0)) for r in rows]


def _confirmed_line(row: Any, refunded: int) -> ConfirmedLine:
    benefits = line_benefits_from_json(row.benefits)
    points: dict[str, int] = {}
    for b in benefits:
        if b.points:
            points[b.offer_id] = points.get(b.offer_id, 0) + b.points
    return ConfirmedLine(
        line_no=row.line_no,
        line_id=row.line_id,
        sku=row.sku,
        quantity=row.quantity,
        amount=row.amount,
        discount=row.discount,
        points_by_offer=tuple(sorted(points.items())),
        points_spent=row.points_spent,
        offer_ids=frozenset(b.offer_id for b in benefits),
        refunded=refunded,
        chips=row.chips,
        chips_spent=row.chips_spent,
    )


def save_refund(
    session: Session, refund: Refund, fingerprint: str, response: bytes, at: datetime
) -> None:
    """The refund (its fingerprint and encoded response, for repeats) and its lines."""
    insert_rows(
        session,
        RefundRow,
        [
            {
                "refund_id": refund.refund_id,
                "receipt_id": refund.receipt_id,
                "fingerprint": fingerprint,
                "response": response,
                "created_at": at,
            }
        ],
    )
    insert_rows(
        session,
        RefundLineRow,
        [
            {
                "refund_id": refund.refund_id,
                "line_no": r.line_no,
                "quantity": r.quantity,
                "amount": r.amount,
                "discount": r.discount,
                "points": r.points,
                "chips": r.chips,
                "chips_spent": r.chips_spent,
            }
            for r in refund.lines
        ],
    )


def take_back_usage(
    session: Session, member_id: str, counted: CountedUsage, back: int, at: datetime
) -> int | None:
    """Lower the member's counter by `back`, never below zero; its new value, None when the
    member has no such counter."""
    values = {
        "b_member_id": member_id,
        "b_offer_id": counted.offer_id,
        "b_period_key": counted.period_key,
        "back": back,
        "b_updated_at": at,
    }
    lowered = session.connection().execute(statements_for(session).take_back_usage, values)
    found = lowered.first()
    return None if found is None else int(found.used)
