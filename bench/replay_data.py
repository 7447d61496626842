"""A store of confirmed receipts for campaign replays, generated with bulk inserts (not
through Confirm): 200 products in 5 categories, one live offer (10 % on category C1),
members, and `receipts` receipts of two lines each spread over 30 days from 2026-10-01.

Every receipt and line follows from its number (`sale()`), so a test can work out what a
draft gives without the engine. Used by tests/integration/test_replay.py (100,000 receipts)
and bench/replay_bench.py (a million).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from service.engine.model import (
    Benefit,
    BenefitKind,
    Category,
    Level,
    Line,
    Member,
    Offer,
    Product,
    ProductGroup,
    Stacking,
    Store,
)
from service.engine.money import percent_of
from service.store.catalog_repo import (
    save_categories,
    save_offers,
    save_product_groups,
    save_products,
    save_stores,
)
from service.store.member_repo import save_members
from service.store.models import ReceiptLineRow, ReceiptRow
from service.store.sql import insert_rows

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
PRODUCTS = 200
CATEGORIES = 5
STORES = ("S1", "S2")
LIVE_OFFER = Offer(
    id="A-LIVE",
    name="Ten percent on C1",
    level=Level.ALL_BUYERS,
    benefit=Benefit(BenefitKind.PERCENT, 1000),
    scope_group_id="G-C1",
    priority=10,
    stacking=Stacking.EXCLUSIVE,
)


def sku_of(number: int) -> str:
    return f"P{number % PRODUCTS:04d}"


def category_of(sku: str) -> str:
    return f"C{int(sku[1:]) % CATEGORIES + 1}"


def member_of(receipt_no: int, members: int) -> str | None:
    """Every other receipt is anonymous."""
    return None if receipt_no % 2 else f"M{receipt_no // 2 % members:06d}"


@dataclass(frozen=True, slots=True)
class Sale:
    receipt_id: str
    store_id: str
    member_id: str | None
    sale_time: datetime
    lines: tuple[Line, ...]


def sale(receipt_no: int, members: int, total: int) -> Sale:
    """Receipt number `receipt_no` of `total`: its time, store, member and two lines."""
    offset = timedelta(seconds=DAYS * 86_400 * receipt_no // total)
    lines = []
    for index in range(2):
        sku = sku_of(receipt_no * 7 + index * 3)
        price = 1000 + (receipt_no + index) % 7 * 150
        quantity = 1000 * (1 + (receipt_no + index) % 3)
        lines.append(Line(str(index + 1), sku, quantity, price, price * quantity // 1000))
    return Sale(
        receipt_id=f"R{receipt_no:08d}",
        store_id=STORES[receipt_no % len(STORES)],
        member_id=member_of(receipt_no, members),
        sale_time=START + offset,
        lines=tuple(lines),
    )


def sales(total: int, members: int) -> Iterator[Sale]:
    for receipt_no in range(total):
        yield sale(receipt_no, members, total)


def write_catalogue(session: Session) -> None:
    save_stores(session, [Store(s, s, None) for s in STORES])
    categories = [Category(f"C{i}", f"Category {i}") for i in range(1, CATEGORIES + 1)]
    save_categories(session, categories)
    save_products(
        session,
        [Product(sku_of(n), f"Product {n}", (category_of(sku_of(n)),)) for n in range(PRODUCTS)],
    )
    save_product_groups(
        session,
        [ProductGroup(f"G-{c.id}", c.name, category_ids=frozenset({c.id})) for c in categories],
    )
    save_offers(session, [LIVE_OFFER])


def write_store(
    sessions: Callable[[], Session],
    receipts: int,
    members: int,
    batch: int = 5000,
    on_batch: Callable[[int], None] = lambda done: None,
) -> None:
    """Catalogue, members and receipts with their lines, `batch` receipts per transaction.
    Receipts carry what the live offer gave them as their confirmed totals."""
    with sessions() as session:
        write_catalogue(session)
        save_members(session, [Member(f"M{i:06d}") for i in range(members)])
        session.commit()
    confirmed_at = START + timedelta(days=DAYS)
    receipt_rows: list[dict[str, object]] = []
    line_rows: list[dict[str, object]] = []
    for number, s in enumerate(sales(receipts, members), start=1):
        amount = sum(line.amount for line in s.lines)
        discount = sum(live_discount(line) for line in s.lines)
        receipt_rows.append(
            {
                "receipt_id": s.receipt_id,
                "store_id": s.store_id,
                "channel": "POS",
                "member_id": s.member_id,
                "sale_time": s.sale_time,
                "fingerprint": s.receipt_id,
                "response": b"",
                "total_amount": amount,
                "total_discount": discount,
                "total_paid": amount - discount,
                "total_points": 0,
                "confirmed_at": confirmed_at,
            }
        )
        for line_no, line in enumerate(s.lines):
            given = live_discount(line)
            line_rows.append(
                {
                    "receipt_id": s.receipt_id,
                    "line_no": line_no,
                    "line_id": line.line_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "price": line.price,
                    "amount": line.amount,
                    "discount": given,
                    "paid": line.amount - given,
                    "points": 0,
                }
            )
        if len(receipt_rows) >= batch or number == receipts:
            with sessions() as session:
                insert_rows(session, ReceiptRow, receipt_rows)
                insert_rows(session, ReceiptLineRow, line_rows)
                session.commit()
            receipt_rows, line_rows = [], []
            on_batch(number)


def live_discount(line: Line) -> int:
    return percent_of(line.amount, 1000) if category_of(line.sku) == "C1" else 0
