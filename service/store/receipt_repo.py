"""The receipt lifecycle in the store (docs/receipts.md): what a confirm and a refund persist,
repository functions on the caller's transaction, domain values and bytes in and out.

    claim_receipt, write_lines, add_usage                       (receipt_confirm)
    lock_receipt, confirmed_lines, save_refund, take_back_usage (receipt_refund)
    add_to_history                                              (receipt_sql)
    stored_receipt, set_record, stored_refund   (receipt_records)

The transactions themselves, their order of statements and their refusals are the use
cases' (service.app.receipts); every statement is built once per dialect (receipt_sql).
"""

from __future__ import annotations

from service.store.receipt_confirm import add_usage, claim_receipt, write_lines
from service.store.receipt_records import (
    StoredReceipt,
    StoredRefund,
    set_record,
    stored_receipt,
    stored_refund,
)
from service.store.receipt_refund import (
    SoldReceipt,
    confirmed_lines,
    lock_receipt,
    save_refund,
    take_back_usage,
)
from service.store.receipt_sql import add_to_history

__all__ = [
    "SoldReceipt",
    "StoredReceipt",
    "StoredRefund",
    "add_to_history",
    "add_usage",
    "claim_receipt",
    "confirmed_lines",
    "lock_receipt",
    "save_refund",
    "set_record",
    "stored_receipt",
    "stored_refund",
    "take_back_usage",
    "write_lines",
]
