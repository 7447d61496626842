"""The rows a refund reads and writes: the receipt's lock and lines, the refund and the usage
it gives back (its ledger rows: service.store.points_repo). Repository functions on the
caller's transaction (service.app.receipts runs it: the receipt's lock first, then the
member's); domain values in and out (service.engine.lifecycle), nothing committed here.
They queue their statements on the transaction's batch (service.store.pipeline) and read
their results once it is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.engine.lifecycle import ConfirmedLine, CountedUsage, Refund
from service.store.codec import line_benefits_from_json
from service.store.pipeline import Batch, Later, Pending
from service.store.receipt_sql import statements_of


@dataclass(frozen=True, slots=True)
class SoldReceipt:
    """What a refund reads of the receipt it refunds: whose it is, when it was sold, and the
    record its confirm kept (the usage counted)."""

    member_id: str | None
    sale_time: datetime
    record: bytes


def lock_receipt(batch: Batch, receipt_id: str) -> Later[SoldReceipt | None]:
    """Lock the receipt row for this transaction (a no-op UPDATE: a row lock on PostgreSQL,
    the write lock on SQLite) and read what a refund needs of it; None when there is no such
    receipt."""
    locked = batch.execute(statements_of(batch).lock_receipt, {"b_receipt_id": receipt_id})

    def sold(_: object) -> SoldReceipt | None:
        row = locked.first()
        return None if row is None else SoldReceipt(row[0], row[1], bytes(row[2]))

    return Later(locked, sold)


def confirmed_lines(batch: Batch, receipt_id: str) -> Later[list[ConfirmedLine]]:
    """The receipt's lines in line_no order, with their points per offer and what earlier
    refunds took back."""
    sql, key = statements_of(batch), {"b_receipt_id": receipt_id}
    refunded = batch.execute(sql.refunded_quantities, key)
    lines = batch.execute(sql.confirmed_lines, key)

    def confirmed(_: object) -> list[ConfirmedLine]:
        taken_back = {line_no: int(quantity) for line_no, quantity in refunded.rows}
        return [_confirmed_line(row, taken_back) for row in lines.rows]

    return Later(lines, confirmed)


def _confirmed_line(row: Sequence[Any], refunded: Mapping[int, int]) -> ConfirmedLine:
    # CONFIRMED_LINE_COLUMNS
    line_no, line_id, sku, quantity, amount, discount, points_spent, chips, chips_spent, text = row
    benefits = line_benefits_from_json(text)
    points: dict[str, int] = {}
    for b in benefits:
        if b.points:
            points[b.offer_id] = points.get(b.offer_id, 0) + b.points
    return ConfirmedLine(
        line_no=line_no,
        line_id=line_id,
        sku=sku,
        quantity=quantity,
        amount=amount,
        discount=discount,
        points_by_offer=tuple(sorted(points.items())),
        points_spent=points_spent,
        offer_ids=frozenset(b.offer_id for b in benefits),
        refunded=refunded.get(line_no, 0),
        chips=chips,
        chips_spent=chips_spent,
    )


def save_refund(
    batch: Batch, refund: Refund, fingerprint: str, response: bytes, at: datetime
) -> None:
    """The refund (its fingerprint and encoded response, for repeats) and its lines."""
    row = {
        "refund_id": refund.refund_id,
        "receipt_id": refund.receipt_id,
        "fingerprint": fingerprint,
        "response": response,
        "created_at": at,
    }
    lines = [
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
    ]
    sql = statements_of(batch)
    batch.execute_many(sql.insert_refund, [row])
    batch.execute_many(sql.insert_refund_lines, lines)


def take_back_usage(
    batch: Batch, member_id: str, counted: CountedUsage, back: int, at: datetime
) -> Later[int | None]:
    """Lower the member's counter by `back`, never below zero; its new value, None when the
    member has no such counter."""
    values = {
        "b_member_id": member_id,
        "b_offer_id": counted.offer_id,
        "b_period_key": counted.period_key,
        "back": back,
        "b_updated_at": at,
    }
    lowered = batch.execute(statements_of(batch).take_back_usage, values)
    return Later(lowered, Pending.integer)
