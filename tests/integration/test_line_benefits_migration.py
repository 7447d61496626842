"""Migration 0010 moves the rows of receipt_benefits into their lines' `benefits` column, in
the order applied, and its downgrade gives the same rows back: a refund after the upgrade
takes back exactly the points and offers the receipt's confirm recorded under 0009."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, select
from sqlalchemy.orm import Session

from service.engine.lifecycle import ConfirmedLine
from service.engine.model import AppliedBenefit, BenefitKind, Mechanic
from service.store.codec import line_benefits_from_json
from service.store.db import alembic_config, make_engine, migrate
from service.store.pipeline import Batch
from service.store.receipt_refund import confirmed_lines

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RECEIPT = "R-0009"

LINES = [  # line_no: line_id, sku, discount, points
    (0, "1", "MILK", 150, 30),
    (1, "2", "BREAD", 0, 0),  # no benefit
    (2, "3", "COFFEE", 400, 55),
]
BENEFITS = [  # line_no, benefit_no, offer_id, mechanic, kind, discount, points, text
    (0, 0, "Y-MILK", "MEMBERS_ONLY", "FIXED_PRICE", 100, 0, "Жёлтый ценник"),
    (0, 1, "P-BONUS", "PERSONALIZED_OFFER", "BONUS_PERCENT", 0, 20, '+20 "points"'),
    (0, 2, "B-ALL", "ALL_BUYERS", "PERCENT", 50, 10, "5 % back"),
    (2, 0, "B-ALL", "ALL_BUYERS", "BONUS_PERCENT", 0, 25, "5 % back"),
    (2, 1, "F-FAV", "FAVORITE_PRODUCTS", "PERCENT", 400, 30, "Favorite -20 %"),
]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_benefits_move_into_their_lines_and_back(backend: str, request: pytest.FixtureRequest):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    migrate(url, "0009")
    engine = make_engine(url)
    try:
        _write_receipt_under_0009(engine)
        before = _benefit_rows(engine)
        migrate(url)
        with Session(engine) as session:
            lines = confirmed_lines(Batch(session), RECEIPT).value()
        assert [line.line_id for line in lines] == ["1", "2", "3"]
        assert _points_and_offers(lines) == [
            ((("B-ALL", 10), ("P-BONUS", 20)), {"Y-MILK", "P-BONUS", "B-ALL"}),
            ((), set()),
            ((("B-ALL", 25), ("F-FAV", 30)), {"B-ALL", "F-FAV"}),
        ]
        assert _stored_benefits(engine) == {
            line_no: [_applied(row) for row in before if row[0] == line_no] for line_no in (0, 1, 2)
        }, "each line's benefits in the order applied, texts intact"
        command.downgrade(alembic_config(url), "0009")
        assert _benefit_rows(engine) == before
    finally:
        engine.dispose()


def _write_receipt_under_0009(engine: Engine) -> None:
    tables = _tables(engine)
    with engine.begin() as connection:
        connection.execute(
            tables["receipts"].insert(),
            {"receipt_id": RECEIPT, "store_id": "S1", "channel": "POS", "member_id": None,
             "sale_time": NOW, "fingerprint": "f", "response": b"", "total_amount": 0,
             "total_discount": 0, "total_paid": 0, "total_points": 0, "confirmed_at": NOW},
        )  # fmt: skip
        connection.execute(
            tables["receipt_lines"].insert(),
            [
                {"receipt_id": RECEIPT, "line_no": n, "line_id": line_id, "sku": sku,
                 "quantity": 1000, "price": 1000, "amount": 1000, "discount": discount,
                 "paid": 1000 - discount, "points": points}
                for n, line_id, sku, discount, points in LINES
            ],
        )  # fmt: skip
        connection.execute(
            tables["receipt_benefits"].insert(),
            [dict(zip(_BENEFIT_COLUMNS, (RECEIPT, *row), strict=True)) for row in BENEFITS],
        )


_BENEFIT_COLUMNS = (
    "receipt_id", "line_no", "benefit_no", "offer_id", "mechanic", "kind", "discount",
    "points", "text",
)  # fmt: skip


def _tables(engine: Engine) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(engine)
    return dict(metadata.tables)


def _benefit_rows(engine: Engine) -> list[tuple[Any, ...]]:
    benefits = _tables(engine)["receipt_benefits"]
    with engine.connect() as connection:
        rows = connection.execute(
            select(*(benefits.c[name] for name in _BENEFIT_COLUMNS[1:])).order_by(
                benefits.c.line_no, benefits.c.benefit_no
            )
        )
        return [tuple(row) for row in rows]


def _stored_benefits(engine: Engine) -> dict[int, list[AppliedBenefit]]:
    lines = _tables(engine)["receipt_lines"]
    with engine.connect() as connection:
        rows = connection.execute(select(lines.c.line_no, lines.c.benefits))
        return {row.line_no: list(line_benefits_from_json(row.benefits)) for row in rows}


def _applied(row: tuple[Any, ...]) -> AppliedBenefit:
    _, _, offer_id, mechanic, kind, discount, points, text = row
    return AppliedBenefit(offer_id, Mechanic[mechanic], BenefitKind[kind], discount, points, text)


def _points_and_offers(
    lines: list[ConfirmedLine],
) -> list[tuple[tuple[tuple[str, int], ...], set[str]]]:
    return [(line.points_by_offer, set(line.offer_ids)) for line in lines]
