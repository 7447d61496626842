"""Receipts as people write them (JSON) and as a cashier reads them (text)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from loyalty.v1 import common_pb2, coupons_pb2, receipt_pb2

WIDTH = 64


def line_amount(price: int, quantity: int) -> int:
    """price x quantity / 1000, rounded half up to a minor unit."""
    return (price * quantity + 500) // 1000


def receipt_from_dict(data: Mapping[str, Any]) -> receipt_pb2.Receipt:
    """A Receipt from a JSON-like dict. Keys: receipt_id, store_id, channel (POS/ONLINE),
    card_number or member_id, sale_time (ISO 8601), lines: [{line_id, sku, quantity, price,
    amount}]. quantity is in thousandths; a missing line_id is numbered, a missing amount is
    price x quantity."""
    receipt = receipt_pb2.Receipt()
    receipt.receipt_id = str(data.get("receipt_id") or f"R-{datetime.now(UTC):%Y%m%d%H%M%S%f}")
    receipt.store_id = str(data.get("store_id", ""))
    receipt.channel = common_pb2.Channel.Value(  # type: ignore[assignment]
        "CHANNEL_" + str(data.get("channel", "POS"))
    )
    card = data.get("card_number") or data.get("card")
    if card:
        receipt.member.card_number = str(card)
    elif data.get("member_id"):
        receipt.member.member_id = str(data["member_id"])
    if data.get("sale_time"):
        receipt.sale_time.FromDatetime(datetime.fromisoformat(str(data["sale_time"])))
    lines = data.get("lines", ())
    if not isinstance(lines, list):
        raise ValueError("`lines` must be a list of lines")
    for number, item in enumerate(lines, start=1):
        _add_line(receipt, number, item)
    return receipt


def _add_line(receipt: receipt_pb2.Receipt, number: int, item: Any) -> None:
    """One line of the JSON; a ValueError names the line and what is wrong with it."""
    if not isinstance(item, Mapping):
        raise ValueError(f"line {number} must be an object with sku, quantity and price")
    for key in ("sku", "price"):
        if key not in item:
            raise ValueError(f"line {number} has no {key}")
    line = receipt.lines.add()
    line.line_id = str(item.get("line_id", number))
    line.sku = str(item["sku"])
    try:
        line.quantity = int(item.get("quantity", 1000))
        line.price = int(item["price"])
        line.amount = int(item.get("amount", line_amount(line.price, line.quantity)))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"line {number}: quantity (thousandths), price and amount (minor units) are"
            " whole numbers"
        ) from None


def load_receipt(path: Path) -> tuple[receipt_pb2.Receipt, dict[str, str]]:
    """The receipt in a JSON file, and the product names it gives (sku -> name). OSError for a
    file that cannot be read, ValueError (JSONDecodeError among them) for one that is not a
    receipt."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("a receipt is a JSON object with store_id and lines")
    names = {
        str(item["sku"]): str(item["name"])
        for item in data.get("lines", ())
        if isinstance(item, Mapping) and "name" in item and "sku" in item
    }
    return receipt_from_dict(data), names


def money(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def quantity_text(quantity: int) -> str:
    if quantity % 1000 == 0:
        return f"{quantity // 1000}"
    return f"{quantity / 1000:.3f}"


def _scaled(text: str, places: int, what: str) -> int:
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    scaled = value.scaleb(places)
    if not value.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"{what} takes at most {places} decimals, got {text!r}")
    return int(scaled)


def parse_quantity(text: str) -> int:
    """A quantity as a person types it, in thousandths: "2" -> 2000, "0.753" -> 753."""
    return _scaled(text, 3, "quantity")


def parse_money(text: str) -> int:
    """Money as a person types it, in minor units: "87.90" -> 8790, "88" -> 8800."""
    return _scaled(text, 2, "price")


def _row(left: str, right: str) -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


# What a printed receipt says about each coupon code (coupons.proto CouponStatus).
COUPON_OUTCOMES = {
    coupons_pb2.COUPON_STATUS_APPLIED: "applied",
    coupons_pb2.COUPON_STATUS_UNKNOWN: "unknown code",
    coupons_pb2.COUPON_STATUS_EXPIRED: "expired",
    coupons_pb2.COUPON_STATUS_USED_UP: "used up",
    coupons_pb2.COUPON_STATUS_NOT_FOR_MEMBER: "not for this member",
    coupons_pb2.COUPON_STATUS_NOTHING_TO_APPLY: "nothing to apply to",
}


def format_receipt(
    receipt: receipt_pb2.Receipt,
    result: receipt_pb2.ReceiptResult,
    names: Mapping[str, str] | None = None,
    title: str = "RECEIPT",
    *,
    show_line_ids: bool = False,
) -> str:
    """The receipt as a cashier reads it: each line, its benefits beneath it, then totals.
    With `show_line_ids` each line starts with its id (what `void` and `refund` take)."""
    names = names or {}
    requested = {line.line_id: line for line in receipt.lines}
    out: list[str] = [title.center(WIDTH), "=" * WIDTH]
    member = f"member {result.member_id}" if result.member_id else "no loyalty card"
    out.append(_row(f"store {receipt.store_id or '-'}", member))
    out.append("-" * WIDTH)
    for line in result.lines:
        asked = requested.get(line.line_id)
        name = names.get(line.sku, line.sku)
        if not line.known_sku:
            name += " (unknown SKU)"
        if show_line_ids:
            name = f"{line.line_id:>3}  {name}"
        out.append(_row(name, money(line.amount)))
        if asked is not None:
            out.append(f"    {quantity_text(asked.quantity)} x {money(asked.price)}")
        for benefit in line.benefits:
            out.append(_row(f"    {benefit.text}", _benefit_value(benefit)))
        if line.points_spent:
            out.append(_row(f"    Paid with {line.points_spent} pts", money(-line.points_value)))
        for rejected in line.rejected:
            out.append(f"    (not applied: {rejected.offer_id}: {rejected.reason})")
    out.append("-" * WIDTH)
    out.append(_row("Subtotal", money(result.total_amount)))
    out.append(_row("Loyalty discount", money(-result.total_discount)))
    out.append(_row(f"TOTAL {result.currency}", money(result.total_paid)))
    if result.total_points_spent:
        out.append(
            _row(f"Paid with {result.total_points_spent} points", money(-result.total_points_value))
        )
        out.append(
            _row(f"TO PAY {result.currency}", money(result.total_paid - result.total_points_value))
        )
    if result.total_points:
        out.append(_row("Bonus points earned", points_text(result.total_points, result)))
    if result.total_chips:  # an anonymous buyer gets them as physical chips
        out.append(
            _row("CHIPS TO HAND OUT" if not result.member_id else "Chips", str(result.total_chips))
        )
    if result.total_chips_spent:
        out.append(_row("Chips spent on rewards", str(result.total_chips_spent)))
    if result.point_value:
        value = f"1 point = {money(result.point_value)} {result.currency}"
        out.append(_row("Points", value))
    for coupon in result.coupons:
        out.append(_row(f"Coupon {coupon.code}", COUPON_OUTCOMES.get(coupon.status, "?")))
    if result.degraded:
        out.append("(calculated offline: member data may be stale)")
    return "\n".join(out)


def points_text(points: int, result: receipt_pb2.ReceiptResult) -> str:
    """Points with what they are worth: "246 pts = 2.46"."""
    if not result.point_value:
        return f"{points} pts"
    return f"{points} pts = {money(points * result.point_value)}"


def format_refund(
    refund: receipt_pb2.RefundResponse,
    skus: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """A refund slip: each refunded line (line id -> SKU in `skus`), what goes back, totals."""
    skus, names = skus or {}, names or {}
    again = " (already done: same result)" if refund.replayed else ""
    out = [f"REFUND {refund.refund_id} of receipt {refund.receipt_id}{again}".center(WIDTH)]
    out.append("=" * WIDTH)
    for line in refund.lines:
        sku = skus.get(line.line_id, "")
        label = names.get(sku, sku) or f"line {line.line_id}"
        out.append(_row(f"{line.line_id:>3}  {label}", money(line.paid)))
        detail = f"    {quantity_text(line.quantity)} returned, amount {money(line.amount)}"
        if line.discount:
            detail += f", discount {money(line.discount)}"
        out.append(detail)
        if line.points:
            out.append(_row("    Bonus points taken back", str(line.points)))
        if line.chips:
            out.append(_row("    Chips taken back", str(line.chips)))
        if line.chips_spent:
            out.append(_row("    Chips given back", str(line.chips_spent)))
        if line.points_returned:
            out.append(_row("    Spent points given back", str(line.points_returned)))
    out.append("-" * WIDTH)
    out.append(_row("PAID BACK", money(refund.total_paid)))
    if refund.total_points:
        out.append(_row("Bonus points taken back", str(refund.total_points)))
    if refund.total_points_returned:
        out.append(_row("Spent points given back", str(refund.total_points_returned)))
    out.append(_row("Points balance", str(refund.points_balance)))
    if refund.total_chips or refund.total_chips_spent:
        out.append(_row("Chips taken back", str(refund.total_chips)))
        out.append(_row("Chips given back", str(refund.total_chips_spent)))
        out.append(_row("Chips balance", str(refund.chips_balance)))
    return "\n".join(out)


def _benefit_value(benefit: receipt_pb2.AppliedBenefit) -> str:
    if benefit.chips:
        return f"+{benefit.chips} chips"
    if benefit.points:
        return f"+{benefit.points} pts"
    value = money(-benefit.discount)
    return f"{value} ({benefit.chips_spent} chips)" if benefit.chips_spent else value


def benefit_mechanics(result: receipt_pb2.ReceiptResult) -> Sequence[str]:
    """Names of the mechanics that gave something on this receipt."""
    found = {b.mechanic for line in result.lines for b in line.benefits}
    return sorted(common_pb2.Mechanic.Name(m) for m in found)
