"""The statements of the receipt lifecycle, built once per dialect.

A confirm runs about ten statements; building a SQLAlchemy statement costs more than running
it on a warm connection (and its cache key is computed anew for every new object), so each is
built once, with bind parameters, and reused. They run on the transaction's connection.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store.models import (
    OfferUsageRow,
    PurchaseRow,
    ReceiptLineRow,
    ReceiptRow,
    RefundLineRow,
    RefundRow,
)
from service.store.pipeline import Batch
from service.store.sql import table_of


@dataclass(frozen=True, slots=True)
class ReceiptStatements:
    # confirm
    claim_receipt: Any  # INSERT receipt ON CONFLICT DO NOTHING RETURNING receipt_id
    insert_lines: Any  # ON CONFLICT DO NOTHING: a repeat sends them with its claim
    add_usage_within_limit: Any  # upsert used += :used WHERE used + :used <= :usage_limit;
    # RETURNING used
    add_history: Any  # upsert quantity += :quantity, amount += :amount
    set_response: Any  # :b_receipt_id, :b_response
    # refund
    lock_receipt: Any  # no-op UPDATE of :b_receipt_id RETURNING member, sale time, record
    take_back_usage: Any  # used -= :back, never below zero; RETURNING used
    insert_refund: Any
    insert_refund_lines: Any
    # reads
    stored_receipt: Any  # :b_receipt_id
    stored_refund: Any  # :b_refund_id
    refunded_quantities: Any  # :b_receipt_id -> (line_no, quantity taken back so far)
    confirmed_lines: Any  # :b_receipt_id, CONFIRMED_LINE_COLUMNS in line_no order


CONFIRMED_LINE_COLUMNS = (
    "line_no", "line_id", "sku", "quantity", "amount", "discount", "points_spent", "chips",
    "chips_spent", "benefits",
)  # fmt: skip


@functools.cache
def statements(dialect: str) -> ReceiptStatements:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    receipts = table_of(ReceiptRow)
    usage = table_of(OfferUsageRow)
    history = table_of(PurchaseRow)
    refunds = table_of(RefundRow)
    lines, refund_lines = table_of(ReceiptLineRow), table_of(RefundLineRow)
    of_receipt: Any = bindparam("b_receipt_id")

    claim = insert(receipts).on_conflict_do_nothing(index_elements=["receipt_id"])
    add_usage = insert(usage)
    new = add_usage.excluded
    add_usage = add_usage.on_conflict_do_update(
        index_elements=["member_id", "offer_id", "period_key"],
        set_={"used": usage.c.used + new.used, "updated_at": new.updated_at},
        where=usage.c.used + new.used <= bindparam("usage_limit"),
    )
    add_history = insert(history)
    add_history = add_history.on_conflict_do_update(
        index_elements=["member_id", "month", "sku"],
        set_={
            "quantity": history.c.quantity + add_history.excluded.quantity,
            "amount": history.c.amount + add_history.excluded.amount,
        },
    )
    usage_key = (
        usage.c.member_id == bindparam("b_member_id"),
        usage.c.offer_id == bindparam("b_offer_id"),
        usage.c.period_key == bindparam("b_period_key"),
    )
    back: Any = bindparam("back")
    return ReceiptStatements(
        claim_receipt=claim.returning(receipts.c.receipt_id),
        insert_lines=insert(lines).on_conflict_do_nothing(),
        add_usage_within_limit=add_usage.returning(usage.c.used),
        add_history=add_history,
        set_response=update(receipts)
        .where(receipts.c.receipt_id == bindparam("b_receipt_id"))
        .values(response=bindparam("b_response")),
        lock_receipt=update(receipts)
        .where(receipts.c.receipt_id == bindparam("b_receipt_id"))
        .values(store_id=receipts.c.store_id)
        .returning(receipts.c.member_id, receipts.c.sale_time, receipts.c.response),
        take_back_usage=update(usage)
        .where(*usage_key)
        .values(
            used=case((usage.c.used > back, usage.c.used - back), else_=0),
            updated_at=bindparam("b_updated_at"),
        )
        .returning(usage.c.used),
        stored_receipt=select(receipts.c.fingerprint, receipts.c.response).where(
            receipts.c.receipt_id == bindparam("b_receipt_id")
        ),
        stored_refund=select(refunds.c.fingerprint, refunds.c.response).where(
            refunds.c.refund_id == bindparam("b_refund_id")
        ),
        insert_refund=insert(refunds),
        insert_refund_lines=insert(refund_lines),
        refunded_quantities=select(refund_lines.c.line_no, func.sum(refund_lines.c.quantity))
        .join(refunds, refunds.c.refund_id == refund_lines.c.refund_id)
        .where(refunds.c.receipt_id == of_receipt)
        .group_by(refund_lines.c.line_no),
        confirmed_lines=select(*(lines.c[name] for name in CONFIRMED_LINE_COLUMNS))
        .where(lines.c.receipt_id == of_receipt)
        .order_by(lines.c.line_no),
    )


def statements_for(session: Session) -> ReceiptStatements:
    return statements(session.get_bind().dialect.name)


def statements_of(batch: Batch) -> ReceiptStatements:
    return statements(batch.dialect)


def add_to_history(
    batch: Batch, member_id: str, bought: Mapping[tuple[str, str], tuple[int, int]]
) -> None:
    """Add (sku, month) -> (quantity, amount) to a member's purchase history, like
    member_repo.add_purchases, in SKU order so concurrent writers lock rows in one order."""
    rows = [
        {"member_id": member_id, "month": month, "sku": sku, "quantity": q, "amount": a}
        for (sku, month), (q, a) in sorted(bought.items())
    ]
    batch.execute_many(statements_of(batch).add_history, rows)
