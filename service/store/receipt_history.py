"""Confirmed receipts read back for a campaign replay (spec §13): a period's receipts in
(sale_time, receipt_id) order, a page per statement starting after the last key of the page
before (the index ix_receipts_sale_time_receipt_id), each with its lines as the register
sent them. No cursor or transaction is held between pages, so a replay of a month holds no
lock and no snapshot open, and its memory is one page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from service.engine.model import Channel, Line
from service.store.models import ReceiptLineRow, ReceiptRow
from service.store.sql import chunks, table_of

_RECEIPTS = table_of(ReceiptRow)
_LINES = table_of(ReceiptLineRow)


@dataclass(frozen=True, slots=True)
class ConfirmedSale:
    """A confirmed receipt as sold: enough to calculate it again, and what it was given."""

    receipt_id: str
    store_id: str
    channel: Channel
    member_id: str | None
    sale_time: datetime
    lines: tuple[Line, ...]  # request order (line_no)
    discount: int  # what the confirm committed
    points: int


def _in_period(start: datetime, end: datetime, store_ids: Collection[str]) -> list[Any]:
    where = [_RECEIPTS.c.sale_time >= start, _RECEIPTS.c.sale_time < end]
    if store_ids:
        where.append(_RECEIPTS.c.store_id.in_(sorted(store_ids)))
    return where


def count_sales(
    session: Session, start: datetime, end: datetime, store_ids: Collection[str] = ()
) -> int:
    """How many confirmed receipts have a sale time in [start, end) (one indexed count)."""
    query = select(func.count()).select_from(_RECEIPTS).where(*_in_period(start, end, store_ids))
    return int(session.execute(query).scalar() or 0)


def sale_pages(
    sessions: Callable[[], Session],
    start: datetime,
    end: datetime,
    store_ids: Collection[str] = (),
    page_size: int = 2000,
) -> Iterator[list[ConfirmedSale]]:
    """The confirmed receipts of [start, end), oldest first, `page_size` per page; each page
    is read in a session of its own (two statements, the lines one per 500 receipts)."""
    columns = (
        _RECEIPTS.c.sale_time,
        _RECEIPTS.c.receipt_id,
        _RECEIPTS.c.store_id,
        _RECEIPTS.c.channel,
        _RECEIPTS.c.member_id,
        _RECEIPTS.c.total_discount,
        _RECEIPTS.c.total_points,
    )
    query = (
        select(*columns)
        .where(*_in_period(start, end, store_ids))
        .order_by(_RECEIPTS.c.sale_time, _RECEIPTS.c.receipt_id)
        .limit(page_size)
    )
    after: tuple[datetime, str] | None = None
    while True:
        page = query
        if after is not None:
            page = page.where(tuple_(_RECEIPTS.c.sale_time, _RECEIPTS.c.receipt_id) > after)
        with sessions() as session:
            rows = session.execute(page).all()
            lines = _lines_of(session, [r.receipt_id for r in rows])
        if rows:
            yield [
                ConfirmedSale(
                    r.receipt_id,
                    r.store_id,
                    r.channel,
                    r.member_id,
                    r.sale_time,
                    tuple(lines.get(r.receipt_id, ())),
                    r.total_discount,
                    r.total_points,
                )
                for r in rows
            ]
        if len(rows) < page_size:
            return
        after = (rows[-1].sale_time, rows[-1].receipt_id)


def _lines_of(session: Session, receipt_ids: list[str]) -> dict[str, list[Line]]:
    found: dict[str, list[Line]] = defaultdict(list)
    query = select(
        _LINES.c.receipt_id,
        _LINES.c.line_id,
        _LINES.c.sku,
        _LINES.c.quantity,
        _LINES.c.price,
        _LINES.c.amount,
    ).order_by(_LINES.c.receipt_id, _LINES.c.line_no)
    for part in chunks(receipt_ids):
        for r in session.execute(query.where(_LINES.c.receipt_id.in_(part))):
            found[r.receipt_id].append(Line(r.line_id, r.sku, r.quantity, r.price, r.amount))
    return found
