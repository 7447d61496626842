"""A member's game chips (spec §20): the balance row and its ledger, queued on the caller's
batch (service.app.receipts runs it, after the member's lock). The balance never goes below
zero: a debit is one conditional UPDATE that the database checks, on every replica alike; a
refund's take-back stops at zero.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store.models import ChipBalanceRow, ChipsLedgerRow
from service.store.pipeline import Batch, Later, Pending
from service.store.sql import table_of


@dataclass(frozen=True, slots=True)
class _Statements:
    balance: Any  # :b_member_id
    debit: Any  # balance -= :chips WHERE balance >= :chips; RETURNING balance
    credit: Any  # upsert balance += :balance; RETURNING balance
    ledger: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    balances = table_of(ChipBalanceRow)
    chips: Any = bindparam("chips")
    credit = insert(balances)
    credit = credit.on_conflict_do_update(
        index_elements=["member_id"],
        set_={
            "balance": balances.c.balance + credit.excluded.balance,
            "updated_at": credit.excluded.updated_at,
        },
    )
    return _Statements(
        balance=select(balances.c.balance).where(balances.c.member_id == bindparam("b_member_id")),
        debit=update(balances)
        .where(balances.c.member_id == bindparam("b_member_id"), balances.c.balance >= chips)
        .values(balance=balances.c.balance - chips, updated_at=bindparam("b_updated_at"))
        .returning(balances.c.balance),
        credit=credit.returning(balances.c.balance),
        ledger=table_of(ChipsLedgerRow).insert(),
    )


def _sql(session: Session) -> _Statements:
    return _statements(session.get_bind().dialect.name)


def chips_balance(session: Session, member_id: str) -> int:
    found = session.connection().execute(_sql(session).balance, {"b_member_id": member_id})
    return int(found.scalar() or 0)


def queue_chips_balance(batch: Batch, member_id: str) -> Later[int]:
    """chips_balance, read when the batch is sent."""
    pending = batch.execute(_statements(batch.dialect).balance, {"b_member_id": member_id})
    return Later(pending, _balance)


def _balance(pending: Pending) -> int:
    return int(pending.scalar() or 0)


def queue_debit(
    batch: Batch,
    member_id: str,
    chips: int,
    at: datetime,
    *,
    receipt_id: str,
    refund_id: str | None = None,
) -> Later[int | None]:
    """Take `chips` (> 0) off the balance if it holds them, with its ledger row, when the
    batch is sent: the new balance; None when it did not hold them (nothing taken; the
    caller refuses, and its rollback takes the ledger row back too)."""
    values = {"b_member_id": member_id, "chips": chips, "b_updated_at": at}
    debit = batch.execute(_statements(batch.dialect).debit, values)
    _queue_ledger(batch, member_id, -chips, at, receipt_id, refund_id)
    return Later(debit, Pending.integer)


def queue_credit(
    batch: Batch,
    member_id: str,
    chips: int,
    at: datetime,
    *,
    receipt_id: str,
    refund_id: str | None = None,
) -> Later[int]:
    """Add `chips` (> 0) to the balance (created at the first chips), with its ledger row,
    when the batch is sent: the new balance."""
    row = {"member_id": member_id, "balance": chips, "updated_at": at}
    credit = batch.execute(_statements(batch.dialect).credit, row)
    _queue_ledger(batch, member_id, chips, at, receipt_id, refund_id)
    return Later(credit, _balance)


def _queue_ledger(
    batch: Batch,
    member_id: str,
    chips: int,
    at: datetime,
    receipt_id: str,
    refund_id: str | None,
) -> None:
    row = {
        "member_id": member_id,
        "receipt_id": receipt_id,
        "refund_id": refund_id,
        "chips": chips,
        "created_at": at,
    }
    batch.execute_many(_statements(batch.dialect).ledger, [row])
