from datetime import datetime, timedelta

import pytest

from service.engine.model import Line, Receipt
from service.engine.validation import validate_receipt
from service.errors import InvalidArgument
from tests.unit.engine.builders import MONDAY_NOON, snapshot

NOW = MONDAY_NOON
SNAP = snapshot()


def good_line(**fields: object) -> Line:
    values: dict[str, object] = dict(
        line_id="1", sku="milk-1", quantity=2000, price=150, amount=300
    )
    values.update(fields)
    return Line(**values)  # type: ignore[arg-type]


def check(
    *lines: Line,
    sale_time: datetime = NOW,
    max_lines: int = 1000,
    max_sale_time_age: timedelta = timedelta(hours=72),
) -> None:
    receipt = Receipt("r", sale_time, tuple(lines))
    validate_receipt(SNAP, receipt, NOW, max_lines=max_lines, max_sale_time_age=max_sale_time_age)


def refused_field(*lines: Line, **kwargs: object) -> str:
    with pytest.raises(InvalidArgument) as caught:
        check(*lines, **kwargs)  # type: ignore[arg-type]
    return caught.value.field


def test_a_good_receipt_passes() -> None:
    check(good_line(), good_line(line_id="2", sku="apple", quantity=753, price=29900, amount=22515))
    check(good_line(sku="unknown", quantity=753, amount=113))  # unknown SKU: any quantity


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"line_id": ""}, "lines[1].line_id"),
        ({"line_id": "1"}, "lines[1].line_id"),  # duplicate
        ({"sku": ""}, "lines[1].sku"),
        ({"sku": "S" * 65}, "lines[1].sku"),
        ({"line_id": "L" * 65}, "lines[1].line_id"),
        ({"quantity": 0}, "lines[1].quantity"),
        ({"quantity": -1000}, "lines[1].quantity"),
        ({"quantity": 10**9 + 1000}, "lines[1].quantity"),
        ({"quantity": 1500, "amount": 225}, "lines[1].quantity"),  # half a piece
        ({"price": -1}, "lines[1].price"),
        ({"price": 10**12 + 1, "amount": 0}, "lines[1].price"),
        ({"amount": -1}, "lines[1].amount"),
        ({"amount": 301}, "lines[1].amount"),  # above price x quantity
    ],
)
def test_a_bad_line_is_refused_with_the_field_at_fault(
    fields: dict[str, object], field: str
) -> None:
    first = good_line()
    second = good_line(line_id="2", **{k: v for k, v in fields.items() if k != "line_id"})
    if "line_id" in fields:
        second = good_line(
            line_id=fields["line_id"], **{k: v for k, v in fields.items() if k != "line_id"}
        )
    assert refused_field(first, second) == field


def test_an_amount_may_be_below_price_times_quantity_or_above_it_by_rounding_only() -> None:
    check(good_line(amount=1))  # the register gave its own discount
    # 0.753 kg at 299.00 = 225.147: 225.15 and 225.15 (rounded up) pass, 225.16 does not
    check(good_line(sku="apple", quantity=753, price=29900, amount=22515))
    with pytest.raises(InvalidArgument):
        check(good_line(sku="apple", quantity=753, price=29900, amount=22516))


def test_a_receipt_without_lines_or_with_too_many_is_refused() -> None:
    assert refused_field() == "lines"
    assert refused_field(good_line(), good_line(line_id="2"), max_lines=1) == "lines"


def test_a_sale_time_more_than_24_hours_ahead_is_refused() -> None:
    check(good_line(), sale_time=NOW + timedelta(hours=24))
    assert refused_field(good_line(), sale_time=NOW + timedelta(hours=24, seconds=1)) == "sale_time"
    # late receipts are fine, within the window for late receipts
    check(good_line(), sale_time=NOW - timedelta(days=30), max_sale_time_age=timedelta(days=30))


def test_a_sale_time_older_than_the_window_is_refused() -> None:
    check(good_line(), sale_time=NOW - timedelta(hours=72))
    assert refused_field(good_line(), sale_time=NOW - timedelta(hours=72, seconds=1)) == (
        "sale_time"
    )
    short = timedelta(minutes=5)
    check(good_line(), sale_time=NOW - short, max_sale_time_age=short)
    old = NOW - short - timedelta(microseconds=1)
    assert refused_field(good_line(), sale_time=old, max_sale_time_age=short) == "sale_time"


def test_a_naive_sale_time_is_refused() -> None:
    assert refused_field(good_line(), sale_time=datetime(2026, 11, 23, 12)) == "sale_time"


def test_the_error_message_names_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check(good_line(quantity=0))
    assert caught.value.message.startswith("lines[0].quantity: ")
    assert caught.value.reason == "INVALID_ARGUMENT"
