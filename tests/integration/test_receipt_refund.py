"""Refunding confirmed receipts against a real SQLite file and a real PostgreSQL server: full or
partial, once per refund id, never more than was bought, points, usage and purchase history
given back in exact proportion."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from loyalty.v1 import receipt_pb2
from service.api.auth import Principal, Role, set_current_principal
from service.api.receipts import validate_refund
from service.engine.lifecycle import UsageClaim
from service.engine.model import LimitUnit
from service.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from tests.integration.receipt_support import (
    SETTINGS,
    SHOWCASE_MEMBER,
    LineSpec,
    Register,
    confirm_receipt,
    history_of,
    ledger_sum,
    open_register,
    refund_receipt,
    refund_request,
    row_counts,
    showcase_receipt,
    synthetic_confirmation,
    usage_of,
)

MOSCOW = ZoneInfo("Europe/Moscow")


def confirmed(register: Register, receipt_id: str, **kw: bool) -> receipt_pb2.ConfirmResponse:
    return register.confirm(showcase_receipt(receipt_id, **kw))


def test_a_full_refund_gives_back_everything_the_confirm_added(register: Register) -> None:
    history_before = history_of(register.sessions, SHOWCASE_MEMBER)
    sale = confirmed(register, "R-FULL")

    refund = register.refund("F-FULL", "R-FULL", full=True)

    assert not refund.replayed
    assert refund.total_paid == sale.result.total_paid
    assert refund.total_points == sale.result.total_points
    assert refund.points_balance == 0 == ledger_sum(register.sessions, SHOWCASE_MEMBER)
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 0
    history = history_of(register.sessions, SHOWCASE_MEMBER)
    assert {k: v for k, v in history.items() if v != (0, 0)} == history_before
    for line, given in zip(sale.result.lines, refund.lines, strict=True):
        assert (given.line_id, given.amount, given.discount, given.paid, given.points) == (
            line.line_id,
            line.amount,
            line.discount,
            line.paid,
            line.points,
        )


def test_partial_refunds_in_several_steps_add_up_exactly_to_the_whole(
    register: Register,
) -> None:
    sale = confirmed(register, "R-STEPS")
    steps = [
        {"1": 100, "2": 1000},  # 0.1 kg of bananas (of 0.753), one of two milks
        {"1": 251, "6": 1000},
        {"1": 401, "2": 1000, "5": 1000},
        {"1": 1},
    ]
    refunds = [register.refund(f"F-STEP-{n}", "R-STEPS", lines) for n, lines in enumerate(steps)]
    refunds.append(register.refund("F-STEP-REST", "R-STEPS", full=True))

    given: dict[str, list[int]] = {}
    for refund in refunds:
        for line in refund.lines:
            total = given.setdefault(line.line_id, [0, 0, 0, 0, 0])
            for i, value in enumerate(
                (line.quantity, line.amount, line.discount, line.paid, line.points)
            ):
                total[i] += value
    quantities = {line.line_id: line.quantity for line in showcase_receipt("x").lines}
    for line in sale.result.lines:
        assert given[line.line_id] == [
            quantities[line.line_id],
            line.amount,
            line.discount,
            line.paid,
            line.points,
        ]
    assert sum(r.total_points for r in refunds) == sale.result.total_points
    assert sum(r.total_paid for r in refunds) == sale.result.total_paid
    assert refunds[-1].points_balance == 0 == ledger_sum(register.sessions, SHOWCASE_MEMBER)
    assert [r.points_balance for r in refunds] == sorted(
        (r.points_balance for r in refunds), reverse=True
    )


def test_refunding_more_than_was_bought_is_refused_and_changes_nothing(
    register: Register,
) -> None:
    confirmed(register, "R-MORE")
    before = row_counts(register.sessions)
    with pytest.raises(FailedPrecondition) as refused:
        register.refund("F-MORE", "R-MORE", {"2": 3000})  # two were bought
    assert refused.value.reason == "REFUND_EXCEEDS_PURCHASE"
    assert "2.000 left" in refused.value.message
    assert row_counts(register.sessions) == before

    register.refund("F-ONE", "R-MORE", {"2": 1000})
    with pytest.raises(FailedPrecondition, match="1.000 left"):
        register.refund("F-TWO-MORE", "R-MORE", {"2": 2000})


def test_a_receipt_refunded_in_full_has_nothing_left_to_refund(register: Register) -> None:
    confirmed(register, "R-TWICE")
    register.refund("F-ALL", "R-TWICE", full=True)
    with pytest.raises(FailedPrecondition) as refused:
        register.refund("F-ALL-AGAIN", "R-TWICE", full=True)
    assert refused.value.reason == "NOTHING_LEFT_TO_REFUND"


def test_a_repeated_refund_returns_the_stored_response_and_changes_nothing(
    register: Register,
) -> None:
    confirmed(register, "R-REPEAT")
    first = register.refund("F-REPEAT", "R-REPEAT", {"6": 1000, "1": 300})
    before = row_counts(register.sessions)
    again = register.refund("F-REPEAT", "R-REPEAT", {"1": 300, "6": 1000})  # other order
    assert again.replayed
    again.replayed = False
    assert again == first
    assert row_counts(register.sessions) == before


def test_a_refund_id_reused_with_other_content_is_refused(register: Register) -> None:
    confirmed(register, "R-REUSE")
    register.refund("F-REUSE", "R-REUSE", {"6": 1000})
    with pytest.raises(AlreadyExists) as refused:
        register.refund("F-REUSE", "R-REUSE", {"2": 1000})
    assert refused.value.reason == "REFUND_ID_REUSED"
    confirmed(register, "R-REUSE-OTHER")
    with pytest.raises(AlreadyExists):
        register.refund("F-REUSE", "R-REUSE-OTHER", {"6": 1000})


def test_a_refund_of_an_unknown_receipt_is_not_found(register: Register) -> None:
    with pytest.raises(NotFound) as missing:
        register.refund("F-NONE", "R-NEVER-CONFIRMED", full=True)
    assert missing.value.reason == "RECEIPT_NOT_FOUND"


def test_a_refund_names_the_line_at_fault(register: Register) -> None:
    confirmed(register, "R-FAULT")
    with pytest.raises(InvalidArgument) as unknown:
        register.refund("F-FAULT-1", "R-FAULT", {"2": 1000, "99": 1000})
    assert unknown.value.field == "lines[1].line_id"
    with pytest.raises(InvalidArgument) as part_of_a_piece:
        register.refund("F-FAULT-2", "R-FAULT", {"2": 500})
    assert part_of_a_piece.value.field == "lines[0].quantity"
    weighed = register.refund("F-FAULT-3", "R-FAULT", {"1": 500})  # bananas by weight
    assert weighed.lines[0].quantity == 500


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"receipt_id": "R", "full": True}, "refund_id"),
        ({"refund_id": "F", "full": True}, "receipt_id"),
        ({"refund_id": "F", "receipt_id": "R"}, "lines"),
        ({"refund_id": "F", "receipt_id": "R", "full": True, "lines": [("1", 1000)]}, "lines"),
        ({"refund_id": "F", "receipt_id": "R", "lines": [("1", 0)]}, "lines[0].quantity"),
        ({"refund_id": "F", "receipt_id": "R", "lines": [("", 1000)]}, "lines[0].line_id"),
        (
            {"refund_id": "F", "receipt_id": "R", "lines": [("1", 1000), ("1", 1000)]},
            "lines[1].line_id",
        ),
    ],
)
def test_a_malformed_refund_request_is_refused_naming_the_field(
    request_fields: dict, field: str
) -> None:
    request = receipt_pb2.RefundRequest(
        refund_id=request_fields.get("refund_id", ""),
        receipt_id=request_fields.get("receipt_id", ""),
        full=request_fields.get("full", False),
    )
    for line_id, quantity in request_fields.get("lines", []):
        request.lines.add(line_id=line_id, quantity=quantity)
    with pytest.raises(InvalidArgument) as refused:
        validate_refund(request)  # before anything is read or written
    assert refused.value.field == field


def test_a_register_may_refund_only_for_its_own_stores(register: Register) -> None:
    confirmed(register, "R-AUTH")
    set_current_principal(Principal("s2", "s2", Role.REGISTER, frozenset({"S002"})))
    request = receipt_pb2.RefundRequest(
        refund_id="F-AUTH", receipt_id="R-AUTH", full=True, store_id="S001"
    )
    with pytest.raises(PermissionDenied):
        register.servicer.Refund(request, None)  # type: ignore[arg-type]
    request.store_id = "S002"  # a return in another store of the chain
    assert register.servicer.Refund(request, None).total_paid > 0  # type: ignore[arg-type]


def test_refunded_goods_leave_the_history_of_the_month_of_the_sale(register: Register) -> None:
    sale_time = datetime.now(UTC) - timedelta(days=40)
    sale_month = sale_time.astimezone(MOSCOW).strftime("%Y-%m")
    this_month = datetime.now(UTC).astimezone(MOSCOW).strftime("%Y-%m")
    receipt = showcase_receipt("R-OLD", coffee=False)
    receipt.sale_time.FromDatetime(sale_time)
    late = replace(SETTINGS, max_sale_time_age_s=timedelta(days=41).total_seconds())
    open_register(register.sessions, late).confirm(receipt)  # a deployment taking late ones
    milk = receipt.lines[1]
    before = history_of(register.sessions, SHOWCASE_MEMBER)

    register.refund("F-OLD", "R-OLD", {milk.line_id: 1000})

    after = history_of(register.sessions, SHOWCASE_MEMBER)
    assert after[(sale_month, milk.sku)][0] == before[(sale_month, milk.sku)][0] - 1000
    assert after[(sale_month, milk.sku)][1] < before[(sale_month, milk.sku)][1]
    assert after.get((this_month, milk.sku)) == before.get((this_month, milk.sku))


def test_an_anonymous_receipt_is_refunded_without_points(register: Register) -> None:
    receipt = showcase_receipt("R-ANON-REFUND", coffee=False)
    receipt.ClearField("member")
    register.confirm(receipt)
    refund = register.refund("F-ANON", "R-ANON-REFUND", full=True)
    assert refund.points_balance == 0
    assert row_counts(register.sessions)["points_ledger"] == 0


def test_concurrent_refunds_of_one_line_never_give_back_more_than_was_bought(
    register: Register,
) -> None:
    confirmed(register, "R-RACE")
    start = threading.Barrier(10)

    def refund(n: int) -> str:
        start.wait()
        try:
            register.refund(f"F-RACE-{n}", "R-RACE", {"6": 1000})
        except FailedPrecondition as refused:
            return refused.reason
        return "refunded"

    with ThreadPoolExecutor(10) as pool:
        outcomes = Counter(pool.map(refund, range(10)))
    assert outcomes == {"refunded": 1, "REFUND_EXCEEDS_PURCHASE": 9}
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 0


def test_concurrent_repeats_of_one_refund_commit_it_once(register: Register) -> None:
    confirmed(register, "R-RACE-SAME")
    start = threading.Barrier(10)

    def refund(_: int) -> receipt_pb2.RefundResponse:
        start.wait()
        return register.refund("F-SAME", "R-RACE-SAME", {"1": 753})

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(refund, range(10)))
    assert sum(not a.replayed for a in answers) == 1
    assert len({a.lines[0].paid for a in answers}) == 1
    assert row_counts(register.sessions)["refunds"] == 1


def test_one_refund_id_sent_for_several_receipts_at_once_is_made_once(
    register: Register,
) -> None:
    """Each refund holds its own receipt's lock, so they look for the id at once and find
    none; the member's lock then lines them up, and those after the first meet its row
    (the unique key) and answer as a reused id, with nothing of theirs written."""
    receipts = [f"R-ONE-ID-{n}" for n in range(6)]
    for receipt_id in receipts:
        confirmed(register, receipt_id)
    before = row_counts(register.sessions)
    start = threading.Barrier(len(receipts))

    def refund(receipt_id: str) -> str:
        start.wait()
        try:
            register.refund("F-ONE-ID", receipt_id, {"6": 1000})
        except AlreadyExists as refused:
            return refused.reason
        return "refunded"

    with ThreadPoolExecutor(len(receipts)) as pool:
        outcomes = Counter(pool.map(refund, receipts))
    assert outcomes == {"refunded": 1, "REFUND_ID_REUSED": len(receipts) - 1}
    after = row_counts(register.sessions)
    assert after["refunds"] == before["refunds"] + 1
    assert after["refund_lines"] == before["refund_lines"] + 1


# --- usage given back, on made-up receipts ----------------------------------------------------


def test_a_receipts_limit_is_given_back_when_its_lines_are_refunded_in_full(
    register: Register,
) -> None:
    claim = UsageClaim("R-LIMIT", "OFFER", 1, 5, LimitUnit.RECEIPTS)
    lines = [
        LineSpec("1", "SKU-A", 2000, 1000, 100, discount_offer="R-LIMIT"),
        LineSpec("2", "SKU-B", 1000, 500),
    ]
    confirm_receipt(
        register.sessions,
        synthetic_confirmation("R-REC", SHOWCASE_MEMBER, lines, [claim]),
        time_zone=MOSCOW,
    )

    def refund(refund_id: str, lines: dict[str, int]) -> int:
        refund_receipt(
            register.sessions,
            refund_request(refund_id, "R-REC", lines),
            time_zone=MOSCOW,
            is_piece=lambda _sku: True,
        )
        return usage_of(register.sessions, SHOWCASE_MEMBER, "R-LIMIT")

    assert usage_of(register.sessions, SHOWCASE_MEMBER, "R-LIMIT") == 1
    assert refund("F-REC-1", {"2": 1000}) == 1  # the offer's line is untouched
    assert refund("F-REC-2", {"1": 1000}) == 1  # half of it
    assert refund("F-REC-3", {"1": 1000}) == 0  # all of it


def test_a_units_limit_is_given_back_as_the_engine_covered_the_lines(
    register: Register,
) -> None:
    """1.5 units counted over lines 1 (1 unit) and 2 (2 units): line 1 is covered fully,
    line 2 by half."""
    claim = UsageClaim("U-LIMIT", "OFFER", 1500, 10_000, LimitUnit.UNITS)
    lines = [
        LineSpec("1", "SKU-A", 1000, 1000, 100, discount_offer="U-LIMIT"),
        LineSpec("2", "SKU-B", 2000, 2000, 100, discount_offer="U-LIMIT"),
    ]
    confirm_receipt(
        register.sessions,
        synthetic_confirmation("R-UNITS", SHOWCASE_MEMBER, lines, [claim]),
        time_zone=MOSCOW,
    )
    used = []
    for n, step in enumerate(({"1": 1000}, {"2": 1000}, {"2": 1000})):
        refund_receipt(
            register.sessions,
            refund_request(f"F-UNITS-{n}", "R-UNITS", step),
            time_zone=MOSCOW,
            is_piece=lambda _sku: True,
        )
        used.append(usage_of(register.sessions, SHOWCASE_MEMBER, "U-LIMIT"))
    assert used == [500, 250, 0]
