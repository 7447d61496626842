"""What the store keeps to answer a repeated confirm or refund, and the points balance.

A confirmed receipt keeps its request fingerprint and the record the api encoded for it (the
first response, returned unchanged to a repeat, and the usage the confirm counted, which
refunds give back); a refund keeps its fingerprint and its encoded first response. The store
keeps these as bytes: what they say is the api's (service.api.convert), so that a replay
answers byte for byte what the first call answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.store.pipeline import Batch, Later
from service.store.receipt_sql import statements_of


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    receipt_id: str
    fingerprint: str
    record: bytes


def stored_receipt(batch: Batch, receipt_id: str) -> Later[StoredReceipt | None]:
    query = statements_of(batch).stored_receipt
    pending = batch.execute(query, {"b_receipt_id": receipt_id})

    def stored(_: object) -> StoredReceipt | None:
        row = pending.first()
        return None if row is None else StoredReceipt(receipt_id, row[0], bytes(row[1]))

    return Later(pending, stored)


def set_record(batch: Batch, receipt_id: str, record: bytes) -> None:
    """The record of a receipt claimed in this transaction (written last: it carries the
    balance after the confirm)."""
    statement = statements_of(batch).set_response
    batch.execute(statement, {"b_receipt_id": receipt_id, "b_response": record})


@dataclass(frozen=True, slots=True)
class StoredRefund:
    refund_id: str
    fingerprint: str
    response: bytes


def stored_refund(batch: Batch, refund_id: str) -> Later[StoredRefund | None]:
    pending = batch.execute(statements_of(batch).stored_refund, {"b_refund_id": refund_id})

    def stored(_: object) -> StoredRefund | None:
        row = pending.first()
        return None if row is None else StoredRefund(refund_id, row[0], bytes(row[1]))

    return Later(pending, stored)
