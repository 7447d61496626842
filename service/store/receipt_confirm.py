"""Confirming a receipt: commit exactly the result the customer was shown, once.

One transaction, committed explicitly, whose first statement claims the receipt id:
INSERT INTO receipts ... ON CONFLICT DO NOTHING. The primary key decides a race: on
PostgreSQL a concurrent insert of the same id waits for the first transaction and then finds
the row; on SQLite the write lock serialises them (and because the first statement writes,
a transaction never has to upgrade a stale read snapshot, which SQLite would refuse). The
loser rolls back and answers from the stored row: the same request gets the stored response
(replayed), other content under the same id is refused.

Then, in the same transaction: lines and benefits; usage of limited offers, each counted by a
conditional upsert that fails when the limit would be passed (checked in the database, so it
holds across replicas); one ledger row per offer that gave points; the purchase history of
the sale's month; the change feed. A limit used up since the calculation refuses the confirm
with FAILED_PRECONDITION and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.v1 import receipt_pb2
from service.clock import utc_now
from service.engine.model import LimitUnit
from service.errors import FailedPrecondition
from service.limits import NAME, quote
from service.store.member_documents import lock_members, usage_changed
from service.store.member_repo import member_exists
from service.store.receipt_records import (
    BENEFIT_KINDS,
    CHANNELS,
    MECHANICS,
    encode_record,
    points_balance,
    replay_confirm,
    stored_receipt,
)
from service.store.receipt_shares import CountedUsage
from service.store.receipt_sql import ReceiptStatements, add_to_history, statements_for

Sessions = Callable[[], Session]

USAGE_LIMIT_REACHED = "USAGE_LIMIT_REACHED"
MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"


@dataclass(frozen=True, slots=True)
class UsageClaim:
    """What a confirm uses up of a member's limit on an offer in one period. `limit` and
    `unit` are the offer's current limit; `name` is what the register may show."""

    offer_id: str
    period_key: str
    used: int
    limit: int
    unit: LimitUnit
    name: str = ""


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A verified confirm: the receipt as sent, the result shown (from the token), the usage
    it claims and the request's fingerprint (receipt_records.confirm_fingerprint)."""

    receipt: receipt_pb2.Receipt
    result: receipt_pb2.ReceiptResult
    usage: tuple[UsageClaim, ...]
    fingerprint: str


def confirm_receipt(
    sessions: Sessions,
    confirmation: Confirmation,
    *,
    time_zone: ZoneInfo,
    now: datetime | None = None,
    admit_new: Callable[[], None] = lambda: None,
) -> receipt_pb2.ConfirmResponse:
    """Commit the receipt once and return the response; a repeat returns the stored one.

    `admit_new` runs once the receipt id is claimed, before anything new is written: it
    raises to refuse a confirm that would commit (a token too old, a sale time out of the
    window), while a repeat of a committed one is still answered. Raises AlreadyExists (same
    id, other content) and FailedPrecondition (a usage limit used up since the calculation;
    MEMBER_NOT_FOUND, the member deleted since); database errors propagate after a
    rollback."""
    receipt_id = confirmation.result.receipt_id
    at = now or utc_now()
    with sessions() as session:
        try:
            if not _claim_receipt(session, confirmation, at):
                # the id is taken by a committed receipt (a concurrent claim was waited for)
                stored = stored_receipt(session, receipt_id)
                session.rollback()
                if stored is None:
                    raise RuntimeError(f"receipt {receipt_id!r} is claimed but not stored")
                return replay_confirm(stored, confirmation.fingerprint)
            admit_new()
            response = _commit(session, confirmation, time_zone, at)
            session.commit()
        except IntegrityError:
            session.rollback()
            _refuse_if_member_gone(session, confirmation.result.member_id)
            raise
        except BaseException:
            session.rollback()
            raise
    return response


def _refuse_if_member_gone(session: Session, member_id: str) -> None:
    """A member deleted from the store since the calculation: the receipt's foreign key
    refused the claim. The register must calculate again (and hears there is no member)."""
    if member_id and not member_exists(session, member_id):
        raise FailedPrecondition(
            "the member of this receipt no longer exists; calculate the receipt again",
            reason=MEMBER_NOT_FOUND,
        )


def _claim_receipt(session: Session, confirmation: Confirmation, at: datetime) -> bool:
    """INSERT the receipt row unless the id exists; True when this transaction owns it.
    The response is filled in at the end of the transaction (it carries the new balance)."""
    result, receipt = confirmation.result, confirmation.receipt
    row = {
        "receipt_id": result.receipt_id,
        "store_id": receipt.store_id,
        "channel": CHANNELS[receipt.channel],
        "member_id": result.member_id or None,
        "sale_time": result.sale_time.ToDatetime(UTC),
        "fingerprint": confirmation.fingerprint,
        "response": b"",
        "total_amount": result.total_amount,
        "total_discount": result.total_discount,
        "total_paid": result.total_paid,
        "total_points": result.total_points,
        "confirmed_at": at,
    }
    claim = statements_for(session).claim_receipt
    return session.connection().execute(claim, row).first() is not None


def _commit(
    session: Session, confirmation: Confirmation, time_zone: ZoneInfo, at: datetime
) -> receipt_pb2.ConfirmResponse:
    sql = statements_for(session)
    connection = session.connection()
    result = confirmation.result
    receipt_id = result.receipt_id
    sent = {line.line_id: line for line in confirmation.receipt.lines}
    _write_lines(connection, sql, receipt_id, result, sent)
    member_id = result.member_id
    balance = 0
    usage: tuple[CountedUsage, ...] = ()
    if member_id:
        lock_members(session, [member_id])
        usage, totals = _count_usage(connection, sql, member_id, confirmation.usage, at)
        _accrue_points(connection, sql, member_id, receipt_id, result, at)
        month = result.sale_time.ToDatetime(UTC).astimezone(time_zone).strftime("%Y-%m")
        bought: dict[tuple[str, str], tuple[int, int]] = {}
        for line in result.lines:
            key = (line.sku, month)
            quantity, paid = bought.get(key, (0, 0))
            bought[key] = (quantity + sent[line.line_id].quantity, paid + line.paid)
        add_to_history(connection, sql, member_id, bought)
        usage_changed(session, member_id, totals, at)
        balance = points_balance(session, member_id)
    response = receipt_pb2.ConfirmResponse(points_balance=balance)
    response.result.CopyFrom(result)
    record = encode_record(response, usage)
    connection.execute(sql.set_response, {"b_receipt_id": receipt_id, "b_response": record})
    return response


def _write_lines(
    connection: Connection,
    sql: ReceiptStatements,
    receipt_id: str,
    result: receipt_pb2.ReceiptResult,
    sent: Mapping[str, receipt_pb2.ReceiptLine],
) -> None:
    """The lines in the order the result shows them (line_no from 0) and their benefits."""
    lines: list[dict[str, Any]] = []
    benefits: list[dict[str, Any]] = []
    for line_no, line in enumerate(result.lines):
        source = sent[line.line_id]
        lines.append(
            {
                "receipt_id": receipt_id,
                "line_no": line_no,
                "line_id": line.line_id,
                "sku": line.sku,
                "quantity": source.quantity,
                "price": source.price,
                "amount": line.amount,
                "discount": line.discount,
                "paid": line.paid,
                "points": line.points,
            }
        )
        benefits.extend(
            {
                "receipt_id": receipt_id,
                "line_no": line_no,
                "benefit_no": benefit_no,
                "offer_id": b.offer_id,
                "mechanic": MECHANICS[b.mechanic],
                "kind": BENEFIT_KINDS[b.kind],
                "discount": b.discount,
                "points": b.points,
                "text": b.text,
            }
            for benefit_no, b in enumerate(line.benefits)
        )
    if lines:
        connection.execute(sql.insert_lines, lines)
    if benefits:
        connection.execute(sql.insert_benefits, benefits)


def _count_usage(
    connection: Connection,
    sql: ReceiptStatements,
    member_id: str,
    claims: Sequence[UsageClaim],
    at: datetime,
) -> tuple[tuple[CountedUsage, ...], dict[tuple[str, str], int]]:
    """Add each claim to the member's counter, in one order (offer, period) so concurrent
    confirms lock counters alike; refuse if any would pass its limit. Each is one statement:
    INSERT the counter, or add to it only while used + claim <= limit; the row is locked
    while the condition is checked, on PostgreSQL and SQLite alike. Returns what was counted
    and the counters' new values."""
    counted = []
    totals: dict[tuple[str, str], int] = {}
    for claim in sorted(claims, key=lambda c: (c.offer_id, c.period_key)):
        row = {
            "member_id": member_id,
            "offer_id": claim.offer_id,
            "period_key": claim.period_key,
            "used": claim.used,
            "updated_at": at,
            "usage_limit": claim.limit,
        }
        added = (
            None
            if claim.used > claim.limit
            else connection.execute(sql.add_usage_within_limit, row).first()
        )
        if added is None:
            name = claim.name or claim.offer_id
            raise FailedPrecondition(
                f"the usage limit of {quote(name, NAME)} was reached since the receipt was "
                "calculated; calculate the receipt again",
                reason=USAGE_LIMIT_REACHED,
            )
        counted.append(CountedUsage(claim.offer_id, claim.period_key, claim.used, claim.unit))
        totals[(claim.offer_id, claim.period_key)] = added.used
    return tuple(counted), totals


def _accrue_points(
    connection: Connection,
    sql: ReceiptStatements,
    member_id: str,
    receipt_id: str,
    result: receipt_pb2.ReceiptResult,
    at: datetime,
) -> None:
    """One ledger row per offer that gave points on the receipt."""
    by_offer: dict[str, int] = {}
    for line in result.lines:
        for benefit in line.benefits:
            if benefit.points:
                by_offer[benefit.offer_id] = by_offer.get(benefit.offer_id, 0) + benefit.points
    rows = [
        {
            "member_id": member_id,
            "receipt_id": receipt_id,
            "refund_id": None,
            "offer_id": offer_id,
            "points": points,
            "created_at": at,
        }
        for offer_id, points in sorted(by_offer.items())
    ]
    if rows:
        connection.execute(sql.insert_ledger, rows)
