"""The rows a confirm writes: the receipt, its lines (with their benefits), usage counters (its
ledger rows: service.store.points_repo). Repository functions on the caller's transaction
(service.app.receipts runs it, in the order docs/receipts.md gives: the claim of the receipt
id first, then the member's lock); domain values in (service.engine.lifecycle), nothing
committed here. They queue their statements on the transaction's batch
(service.store.pipeline): a confirm sends them in two round trips.
"""

from __future__ import annotations

from datetime import datetime

from service.engine.lifecycle import ConfirmedReceipt, UsageClaim
from service.store.codec import line_benefits
from service.store.pipeline import Batch, Later, Pending
from service.store.receipt_sql import statements_of


def claim_receipt(
    batch: Batch, receipt: ConfirmedReceipt, fingerprint: str, at: datetime
) -> Later[bool]:
    """INSERT the receipt row unless the id exists (ON CONFLICT DO NOTHING: the primary key
    decides a race); True when this transaction owns it. Its record is written at the end of
    the transaction (receipt_records.set_record)."""
    row = {
        "receipt_id": receipt.receipt_id,
        "store_id": receipt.store_id,
        "channel": receipt.channel,
        "member_id": receipt.member_id or None,
        "sale_time": receipt.sale_time,
        "fingerprint": fingerprint,
        "response": b"",
        "total_amount": receipt.total_amount,
        "total_discount": receipt.total_discount,
        "total_paid": receipt.total_paid,
        "total_points": receipt.total_points,
        "confirmed_at": at,
    }
    claim = statements_of(batch).claim_receipt
    return Later(batch.execute(claim, row), Pending.found)


def write_lines(batch: Batch, receipt: ConfirmedReceipt) -> None:
    """The lines in the order the result shows them (line_no from 0), each with its
    benefits."""
    receipt_id = receipt.receipt_id
    lines = [
        {
            "receipt_id": receipt_id,
            "line_no": line_no,
            "line_id": line.line_id,
            "sku": line.sku,
            "quantity": line.quantity,
            "price": line.price,
            "amount": line.amount,
            "discount": line.discount,
            "paid": line.paid,
            "points": line.points,
            "chips": line.chips,
            "chips_spent": line.chips_spent,
            "points_spent": line.points_spent,
            "benefits": line_benefits(line.benefits),
        }
        for line_no, line in enumerate(receipt.lines)
    ]
    batch.execute_many(statements_of(batch).insert_lines, lines)


def add_usage(batch: Batch, member_id: str, claim: UsageClaim, at: datetime) -> Later[int | None]:
    """Add the claim to the member's counter, only while used + claim <= limit: one
    statement, INSERT the counter or add to it, the row locked while the condition is
    checked (PostgreSQL and SQLite alike). The counter's new value; None: the limit would be
    passed, nothing added."""
    row = {
        "member_id": member_id,
        "offer_id": claim.offer_id,
        "period_key": claim.period_key,
        "used": claim.used,
        "updated_at": at,
        "usage_limit": claim.limit,
    }
    return Later(batch.execute(statements_of(batch).add_usage_within_limit, row), Pending.integer)
