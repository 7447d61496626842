"""Validating a receipt before it is calculated (spec §2, 11).

Raises service.errors.InvalidArgument with the path of the field at fault
("lines[2].quantity"). Checked, in this order: the receipt (lines present, not too many,
sale time aware, at most 24 h ahead of server time and at most `max_sale_time_age` behind
it), then each line in request order (line_id, sku, quantity, price, amount).

Amount against price: the amount may be below price x quantity (the register's own
discount); it may exceed the exact price x quantity / 1000 only by rounding, that is it may
not exceed that value rounded up to a whole minor unit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service import limits
from service.engine.model import PIECE_QUANTITY, Line, Product, Receipt, Unit
from service.engine.snapshot import Snapshot
from service.errors import InvalidArgument

MAX_SALE_TIME_AHEAD = timedelta(hours=24)
MAX_SALE_TIME_AGE = timedelta(hours=72)  # the default of Settings.max_sale_time_age_s
# Instants whose local dates the engine reads (a sale time, a lookup's moment) keep a day clear
# of each end of the calendar: every zone's local date (UTC-12 to UTC+14) then exists.
EARLIEST_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
LATEST_INSTANT = datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC)
MAX_MONEY = 10**12  # minor units; anything above is absurd for one line
MAX_QUANTITY = 10**9  # thousandths of a unit (a million units)
MAX_ID_LENGTH = limits.ID  # receipt, store, line ids and SKUs


def validate_receipt(
    snapshot: Snapshot,
    receipt: Receipt,
    now: datetime,
    *,
    max_lines: int = 1000,
    max_sale_time_age: timedelta = MAX_SALE_TIME_AGE,
) -> None:
    """Raise InvalidArgument for the first thing wrong with the receipt; return if valid."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not receipt.lines:
        raise InvalidArgument("lines", "a receipt needs at least one line")
    if len(receipt.lines) > max_lines:
        raise InvalidArgument("lines", f"at most {max_lines} lines per receipt")
    check_sale_time(receipt.sale_time, now, max_sale_time_age)
    for name, value in (("receipt_id", receipt.receipt_id), ("store_id", receipt.store_id)):
        if len(value) > MAX_ID_LENGTH:
            raise InvalidArgument(name, f"at most {MAX_ID_LENGTH} characters")

    seen: set[str] = set()
    product_of = snapshot.product
    for index, line in enumerate(receipt.lines):
        # One combined test on the hot path; the detailed check runs only for a bad line.
        quantity, price, amount = line.quantity, line.price, line.amount
        product = product_of(line.sku)
        if (
            not line.line_id
            or line.line_id in seen
            or not line.sku
            or len(line.line_id) > MAX_ID_LENGTH
            or len(line.sku) > MAX_ID_LENGTH
            or not 0 < quantity <= MAX_QUANTITY
            or not 0 <= price <= MAX_MONEY
            or not 0 <= amount <= MAX_MONEY
            or amount > -(-price * quantity // PIECE_QUANTITY)
            or (
                product is not None
                and product.unit is Unit.PIECE
                and quantity % PIECE_QUANTITY != 0
            )
        ):
            _raise_line_error(f"lines[{index}]", line, product, seen)
        seen.add(line.line_id)


def check_sale_time(sale_time: datetime, now: datetime, max_age: timedelta) -> None:
    """An aware sale time from `max_age` before `now` to 24 h after it. A late receipt would
    otherwise get benefits (and limits, points) of a past that is over."""
    if sale_time.tzinfo is None or sale_time.utcoffset() is None:
        raise InvalidArgument("sale_time", "must carry a time zone (UTC)")
    check_instant(sale_time, "sale_time")
    if sale_time - now > MAX_SALE_TIME_AHEAD:
        raise InvalidArgument("sale_time", "more than 24 h ahead of server time")
    if now - sale_time > max_age:
        raise InvalidArgument("sale_time", f"more than {hours(max_age)} before server time")


def check_instant(moment: datetime, field: str) -> None:
    """An aware instant the engine can read local dates from (see EARLIEST_INSTANT)."""
    if not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
        raise InvalidArgument(field, "must be from 0001-01-02 to 9999-12-30 (UTC)")


def hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def _raise_line_error(path: str, line: Line, product: Product | None, seen: set[str]) -> None:
    if not line.line_id:
        raise InvalidArgument(f"{path}.line_id", "must not be empty")
    if line.line_id in seen:
        raise InvalidArgument(f"{path}.line_id", f"duplicate line id {limits.quote(line.line_id)}")
    if not line.sku:
        raise InvalidArgument(f"{path}.sku", "must not be empty")
    for name, value in (("line_id", line.line_id), ("sku", line.sku)):
        if len(value) > MAX_ID_LENGTH:
            raise InvalidArgument(f"{path}.{name}", f"at most {MAX_ID_LENGTH} characters")
    if line.quantity <= 0:
        raise InvalidArgument(f"{path}.quantity", "must be positive")
    if line.quantity > MAX_QUANTITY:
        raise InvalidArgument(f"{path}.quantity", f"must not exceed {MAX_QUANTITY}")
    if product is not None and product.unit is Unit.PIECE and line.quantity % PIECE_QUANTITY:
        raise InvalidArgument(
            f"{path}.quantity", "a product sold by the piece needs whole pieces (x1000)"
        )
    if line.price < 0:
        raise InvalidArgument(f"{path}.price", "must not be negative")
    if line.price > MAX_MONEY:
        raise InvalidArgument(f"{path}.price", f"must not exceed {MAX_MONEY}")
    if line.amount < 0:
        raise InvalidArgument(f"{path}.amount", "must not be negative")
    if line.amount > MAX_MONEY:
        raise InvalidArgument(f"{path}.amount", f"must not exceed {MAX_MONEY}")
    raise InvalidArgument(
        f"{path}.amount", "must not exceed price x quantity (rounded up to a minor unit)"
    )
