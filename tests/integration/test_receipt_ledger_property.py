"""Nothing is lost: after any sequence of confirms, repeats and refunds, the points ledger, the
purchase history and the usage counters agree with the receipts, and refusals (a limit
reached, more than is left) change nothing. Random sequences on both backends, each on a
fresh member, checked against a plain model computed from the receipts alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from service.engine.lifecycle import UsageClaim
from service.engine.model import LimitUnit, Member
from service.engine.money import round_half_up
from service.errors import FailedPrecondition
from service.store.loader import load_member, load_members_from_rows
from service.store.member_repo import save_member
from tests.integration.receipt_support import (
    LineSpec,
    confirm_receipt,
    history_of,
    ledger_sum,
    refund_receipt,
    refund_request,
    row_counts,
    synthetic_confirmation,
    usage_of,
)

MOSCOW = ZoneInfo("Europe/Moscow")
SALE_TIME = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
MONTH = "2026-03"
UNITS_LIMIT = 3000  # offer U: thousandths of a unit, per member
RECEIPTS_LIMIT = 2  # offer R: receipts, per member
BONUS_OFFERS = ("B1", "B2")


def is_piece(sku: str) -> bool:
    return sku.startswith("P")


@dataclass
class Sold:
    """A confirmed receipt in the model, and how much of each line was refunded."""

    receipt_id: str
    lines: list[LineSpec]
    refunded: dict[str, int] = field(default_factory=dict)
    units: bool = False
    receipts: bool = False

    def left(self, line: LineSpec) -> int:
        return line.quantity - self.refunded.get(line.line_id, 0)


@dataclass
class Model:
    member_id: str
    sold: list[Sold] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)

    def units_used(self) -> int:
        return sum(s.left(line) for s in self.sold for line in s.lines if _offer(line) == "U")

    def receipts_used(self) -> int:
        return sum(
            1
            for s in self.sold
            if s.receipts and any(s.left(line) for line in s.lines if _offer(line) == "R")
        )

    def points(self) -> int:
        return sum(
            points - round_half_up(points * s.refunded.get(line.line_id, 0), line.quantity)
            for s in self.sold
            for line in s.lines
            for _, points in line.points
        )

    def history(self) -> dict[tuple[str, str], tuple[int, int]]:
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for s in self.sold:
            for line in s.lines:
                gone = s.refunded.get(line.line_id, 0)
                amount = line.amount - round_half_up(line.amount * gone, line.quantity)
                discount = line.discount - round_half_up(line.discount * gone, line.quantity)
                quantity, paid = totals.get((MONTH, line.sku), (0, 0))
                totals[(MONTH, line.sku)] = (
                    quantity + line.quantity - gone,
                    paid + amount - discount,
                )
        return totals


def _offer(line: LineSpec) -> str:
    return line.discount_offer if line.discount else ""


@st.composite
def line_specs(draw: st.DrawFn) -> list[LineSpec]:
    lines = []
    for n in range(draw(st.integers(1, 3))):
        piece = draw(st.booleans())
        sku = draw(st.sampled_from(["P1", "P2"] if piece else ["W1", "W2"]))
        quantity = 1000 * draw(st.integers(1, 3)) if piece else draw(st.integers(1, 2500))
        amount = draw(st.integers(0, 5000))
        discount = draw(st.integers(0, amount))
        points = tuple((offer, p) for offer in BONUS_OFFERS if (p := draw(st.integers(0, 400))) > 0)
        offer = draw(st.sampled_from(["D", "U", "R"]))
        lines.append(LineSpec(f"L{n}", sku, quantity, amount, discount, points, offer))
    return lines


def check(sessions: sessionmaker[Session], model: Model) -> None:
    member = model.member_id
    assert ledger_sum(sessions, member) == model.points()
    assert usage_of(sessions, member, "U") == model.units_used()
    assert usage_of(sessions, member, "R") == model.receipts_used()
    history = {k: v for k, v in history_of(sessions, member).items()}
    assert history == {k: v for k, v in model.history().items() if k in history or v != (0, 0)}
    with sessions() as session:  # the document a cold load reads says what the counters say
        assert load_member(session, member) == load_members_from_rows(session, [member])[member]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_ledger_history_and_counters_always_agree_with_the_receipts(
    shared_db: sessionmaker[Session], data: st.DataObject
) -> None:
    sessions = shared_db
    model = Model(member_id=f"M-{uuid.uuid4().hex[:12]}")
    with sessions() as session:
        save_member(session, Member(model.member_id))
        session.commit()

    for _step in range(data.draw(st.integers(1, 8), label="steps")):
        action = data.draw(st.sampled_from(["confirm", "confirm", "refund", "full", "repeat"]))
        if action == "confirm" or not model.sold:
            _confirm(sessions, model, data.draw(line_specs()))
        elif action == "repeat":
            _repeat(sessions, model, data.draw(st.sampled_from(model.sold)))
        else:
            sold = data.draw(st.sampled_from(model.sold))
            if not any(sold.left(line) for line in sold.lines):
                continue
            lines = None
            if action == "refund":
                line = data.draw(st.sampled_from(sold.lines))
                left = sold.left(line)
                if left == 0:
                    continue
                unit = 1000 if is_piece(line.sku) else 1
                quantity = unit * data.draw(st.integers(1, max(1, left // unit)))
                lines = {line.line_id: min(quantity, left)}
            _refund(sessions, model, sold, lines)
        check(sessions, model)

    for sold in model.sold:  # give everything back: nothing may remain anywhere
        if any(sold.left(line) for line in sold.lines):
            _refund(sessions, model, sold, None)
    check(sessions, model)
    assert model.points() == 0 and model.units_used() == 0 and model.receipts_used() == 0
    assert all(v == (0, 0) for v in history_of(sessions, model.member_id).values())


def _confirm(sessions: sessionmaker[Session], model: Model, lines: list[LineSpec]) -> None:
    receipt_id = f"R-{uuid.uuid4().hex[:12]}"
    sold = Sold(receipt_id, lines)
    claims = []
    units = sum(line.quantity for line in lines if _offer(line) == "U")
    if units:
        claims.append(UsageClaim("U", "OFFER", units, UNITS_LIMIT, LimitUnit.UNITS))
        sold.units = True
    if any(_offer(line) == "R" for line in lines):
        claims.append(UsageClaim("R", "OFFER", 1, RECEIPTS_LIMIT, LimitUnit.RECEIPTS))
        sold.receipts = True
    refused = (sold.units and model.units_used() + units > UNITS_LIMIT) or (
        sold.receipts and model.receipts_used() + 1 > RECEIPTS_LIMIT
    )
    confirmation = synthetic_confirmation(
        receipt_id, model.member_id, lines, claims, sale_time=SALE_TIME
    )
    before = row_counts(sessions)
    try:
        answer = confirm_receipt(sessions, confirmation, time_zone=MOSCOW)
    except FailedPrecondition as error:
        event("a confirm refused: usage limit")
        assert refused, error.message
        assert error.reason == "USAGE_LIMIT_REACHED"
        assert row_counts(sessions) == before
        return
    assert not refused
    model.sold.append(sold)
    assert answer.points_balance == model.points()


def _repeat(sessions: sessionmaker[Session], model: Model, sold: Sold) -> None:
    confirmation = synthetic_confirmation(
        sold.receipt_id, model.member_id, sold.lines, (), sale_time=SALE_TIME
    )
    before = row_counts(sessions)
    answer = confirm_receipt(sessions, confirmation, time_zone=MOSCOW)
    assert answer.replayed
    assert answer.result.total_points == sum(p for line in sold.lines for _, p in line.points)
    assert row_counts(sessions) == before


def _refund(
    sessions: sessionmaker[Session], model: Model, sold: Sold, lines: dict[str, int] | None
) -> None:
    refund_id = f"F-{uuid.uuid4().hex[:12]}"
    request = refund_request(refund_id, sold.receipt_id, lines, full=lines is None)
    answer = refund_receipt(sessions, request, time_zone=MOSCOW, is_piece=is_piece)
    event("a full refund" if lines is None else "a partial refund")
    for line in answer.lines:
        sold.refunded[line.line_id] = sold.refunded.get(line.line_id, 0) + line.quantity
    assert answer.points_balance == model.points()
    again = refund_receipt(sessions, request, time_zone=MOSCOW, is_piece=is_piece)
    assert again.replayed and again.lines == answer.lines
