"""The receipt lifecycle in the store (SPEC 8): confirm once, refund once per refund id, the
points ledger, usage counters and purchase history they keep. See docs/receipts.md.

    confirm_receipt(sessions, Confirmation(...), time_zone=...)  -> ConfirmResponse
    refund_receipt(sessions, RefundRequest, time_zone=..., is_piece=...) -> Refunded
    points_balance(session, member_id) -> int

Each takes a session factory and runs its own transaction, committed explicitly: nothing is
half-written when the database fails midway. The modules behind it:
receipt_confirm (confirm), receipt_refund (refund), receipt_shares (refund arithmetic),
receipt_records (stored responses, fingerprints, balance).
"""

from __future__ import annotations

from service.store.receipt_confirm import (
    MEMBER_NOT_FOUND,
    USAGE_LIMIT_REACHED,
    Confirmation,
    UsageClaim,
    confirm_receipt,
)
from service.store.receipt_records import (
    confirm_fingerprint,
    points_balance,
    refund_fingerprint,
)
from service.store.receipt_refund import (
    NOTHING_LEFT_TO_REFUND,
    RECEIPT_NOT_FOUND,
    REFUND_EXCEEDS_PURCHASE,
    Refunded,
    refund_receipt,
)

__all__ = [
    "MEMBER_NOT_FOUND",
    "NOTHING_LEFT_TO_REFUND",
    "RECEIPT_NOT_FOUND",
    "REFUND_EXCEEDS_PURCHASE",
    "USAGE_LIMIT_REACHED",
    "Confirmation",
    "Refunded",
    "UsageClaim",
    "confirm_fingerprint",
    "confirm_receipt",
    "points_balance",
    "refund_fingerprint",
    "refund_receipt",
]
