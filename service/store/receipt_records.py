"""What the store keeps to answer a repeated confirm or refund, and the points balance.

A confirmed receipt keeps its request fingerprint and a ConfirmationRecord (token.proto): the
first ConfirmResponse, returned unchanged to a repeat (Stripe's idempotency keys), and the
usage the confirm counted, which refunds give back. A refund keeps its fingerprint and its
first RefundResponse. These are wire messages on purpose: a replay must answer byte for byte
what the first call answered. The receipt_* store modules are the only ones in the store that
read or write protobuf.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from sqlalchemy.orm import Session

from loyalty.v1 import common_pb2, receipt_pb2, token_pb2
from service.engine.model import BenefitKind, Channel, LimitUnit, Mechanic
from service.errors import AlreadyExists
from service.limits import quote
from service.store.receipt_shares import CountedUsage
from service.store.receipt_sql import statements_for

E = TypeVar("E", bound=enum.Enum)


def _by_number(proto_enum: EnumTypeWrapper, model_enum: type[E], prefix: str) -> dict[int, E]:
    return {proto_enum.Value(f"{prefix}_{m.name}"): m for m in model_enum}


CHANNELS = _by_number(common_pb2.Channel, Channel, "CHANNEL")
MECHANICS = _by_number(common_pb2.Mechanic, Mechanic, "MECHANIC")
BENEFIT_KINDS = _by_number(common_pb2.BenefitKind, BenefitKind, "BENEFIT_KIND")
LIMIT_UNITS = _by_number(common_pb2.UsageLimitUnit, LimitUnit, "USAGE_LIMIT_UNIT")
LIMIT_UNIT_NUMBERS: dict[LimitUnit, Any] = {unit: n for n, unit in LIMIT_UNITS.items()}


# --- fingerprints -----------------------------------------------------------------------------


def confirm_fingerprint(receipt: receipt_pb2.Receipt) -> str:
    """Hex SHA-256 of a receipt as the register sent it, lines in line_id order. The sale time
    counts as sent (unset stays unset), so a confirm repeated with the token of a new
    calculation of the same receipt is still the same request."""
    canonical = receipt_pb2.Receipt()
    canonical.CopyFrom(receipt)
    lines = sorted(canonical.lines, key=lambda line: line.line_id)
    del canonical.lines[:]
    canonical.lines.extend(lines)
    return hashlib.sha256(canonical.SerializeToString(deterministic=True)).hexdigest()


def refund_fingerprint(request: receipt_pb2.RefundRequest) -> str:
    """Hex SHA-256 of a refund request but its refund id, lines in line_id order."""
    canonical = receipt_pb2.RefundRequest()
    canonical.CopyFrom(request)
    canonical.refund_id = ""
    lines = sorted(canonical.lines, key=lambda line: (line.line_id, line.quantity))
    del canonical.lines[:]
    canonical.lines.extend(lines)
    return hashlib.sha256(canonical.SerializeToString(deterministic=True)).hexdigest()


# --- stored confirms --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    receipt_id: str
    fingerprint: str
    record: bytes


def stored_receipt(session: Session, receipt_id: str) -> StoredReceipt | None:
    query = statements_for(session).stored_receipt
    row = session.connection().execute(query, {"b_receipt_id": receipt_id}).first()
    return None if row is None else StoredReceipt(receipt_id, row.fingerprint, row.response)


def encode_record(response: receipt_pb2.ConfirmResponse, usage: tuple[CountedUsage, ...]) -> bytes:
    record = token_pb2.ConfirmationRecord()
    record.response.CopyFrom(response)
    for counted in usage:
        entry = record.usage.add()
        entry.offer_id = counted.offer_id
        entry.period_key = counted.period_key
        entry.used = counted.used
        entry.unit = LIMIT_UNIT_NUMBERS[counted.unit]
    return record.SerializeToString()


def decode_record(blob: bytes) -> tuple[receipt_pb2.ConfirmResponse, tuple[CountedUsage, ...]]:
    record = token_pb2.ConfirmationRecord.FromString(blob)
    usage = tuple(
        CountedUsage(u.offer_id, u.period_key, u.used, LIMIT_UNITS[u.unit]) for u in record.usage
    )
    return record.response, usage


def replay_confirm(stored: StoredReceipt, fingerprint: str) -> receipt_pb2.ConfirmResponse:
    """The first response to this receipt id, if the request is the same; else refused."""
    if stored.fingerprint != fingerprint:
        raise AlreadyExists(
            f"receipt {quote(stored.receipt_id)} was already confirmed with other content; "
            "a new receipt needs a new receipt id",
            reason="RECEIPT_ID_REUSED",
        )
    response, _usage = decode_record(stored.record)
    response.replayed = True
    return response


# --- stored refunds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRefund:
    refund_id: str
    fingerprint: str
    response: bytes


def stored_refund(session: Session, refund_id: str) -> StoredRefund | None:
    query = statements_for(session).stored_refund
    row = session.connection().execute(query, {"b_refund_id": refund_id}).first()
    return None if row is None else StoredRefund(refund_id, row.fingerprint, row.response)


def replay_refund(stored: StoredRefund, fingerprint: str) -> receipt_pb2.RefundResponse:
    if stored.fingerprint != fingerprint:
        raise AlreadyExists(
            f"refund {quote(stored.refund_id)} was already made with other content; "
            "a new refund needs a new refund id",
            reason="REFUND_ID_REUSED",
        )
    response = receipt_pb2.RefundResponse.FromString(stored.response)
    response.replayed = True
    return response


# --- points -----------------------------------------------------------------------------------


def points_balance(session: Session, member_id: str) -> int:
    """A member's points: the sum of their ledger (accruals and reversals)."""
    query = statements_for(session).balance
    return int(session.connection().execute(query, {"b_member_id": member_id}).scalar() or 0)
