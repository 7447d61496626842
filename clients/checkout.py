"""`loyalty-checkout`: an online shop's checkout talking to the loyalty service, as an example
to copy.

A cart (channel ONLINE) is calculated again after every change - items added, a quantity
changed, an item removed, the customer signing in, a coupon code entered - and shows the
running total, and what became of the code. On payment it
is confirmed once with the token of the last calculation; the confirm is then sent again, as a
checkout does when the answer to the first one was lost, and the service must give the same
result with `replayed` set. Later part of the order is returned: a partial refund, also sent
twice with the same refund id.

  loyalty-checkout --token "$LOYALTY_TOKEN"                    # the demo cart, card 2000000000001
  loyalty-checkout --item 4600000000015:2 --item 4600000002378 --card 2000000000001
  loyalty-checkout --coupon ""                                 # the demo cart without WELCOME10
  loyalty-checkout --json                                      # a report for machines

--item SKU[:QTY]: QTY in units (2; 0.5 kg), default 1; prices from --prices (see loyalty-till).
--coupon CODE: the code the customer enters last (default WELCOME10, the demo data's shared
code: household goods -10 %).
Exit status 0 when every step behaved as the contract says, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from clients.catalogue import Item, demo_shop, load_price_file
from clients.client import LoyaltyClient, LoyaltyError, add_connection_arguments, client_from_args
from clients.receipt_format import (
    COUPON_OUTCOMES,
    format_receipt,
    format_refund,
    line_amount,
    money,
    parse_quantity,
    quantity_text,
)
from loyalty.v1 import common_pb2, coupons_pb2, receipt_pb2
from service.cli import ToolError, tool
from service.logs import configure_tool_logging

DEMO_CARD = "2000000000001"
MILK, CHOCOLATE, COFFEE = "4600000000015", "4600000001715", "4600000002187"
DISHWASHING, TOILET_PAPER = "4600000002378", "4600000002491"
DEMO_COUPON = "WELCOME10"  # the demo data's shared code (service/demo_data/generate.py)


@dataclass
class Cart:
    """An online cart: SKU -> quantity (thousandths), line ids stable per SKU."""

    cart_id: str
    store_id: str
    prices: Mapping[str, Item]
    card: str = ""
    coupons: list[str] = field(default_factory=list)
    quantities: dict[str, int] = field(default_factory=dict)
    line_ids: dict[str, str] = field(default_factory=dict)

    def set(self, sku: str, quantity: int) -> None:
        if sku not in self.prices:
            raise KeyError(f"no price for {sku}")
        if quantity <= 0:
            self.quantities.pop(sku, None)
            return
        self.line_ids.setdefault(sku, str(len(self.line_ids) + 1))
        self.quantities[sku] = quantity

    def receipt(self) -> receipt_pb2.Receipt:
        receipt = receipt_pb2.Receipt(
            receipt_id=self.cart_id,
            store_id=self.store_id,
            channel=common_pb2.CHANNEL_ONLINE,
        )
        if self.card:
            receipt.member.card_number = self.card
        receipt.coupon_codes.extend(self.coupons)
        for sku, quantity in self.quantities.items():
            price = self.prices[sku].price
            receipt.lines.add(
                line_id=self.line_ids[sku],
                sku=sku,
                quantity=quantity,
                price=price,
                amount=line_amount(price, quantity),
            )
        return receipt


@dataclass
class Step:
    what: str
    lines: int
    total_amount: int
    total_discount: int
    total_paid: int
    total_points: int


@dataclass
class CouponReport:
    code: str
    outcome: str  # CouponStatus without its prefix: APPLIED, UNKNOWN, ...
    discount: int  # what its offer took off the cart


@dataclass
class CheckoutReport:
    cart_id: str
    steps: list[Step] = field(default_factory=list)
    confirmed_paid: int = 0
    confirm_replayed: list[bool] = field(default_factory=list)
    confirm_same_result: bool = False
    points_balance: int = 0
    points_spent: int = 0
    coupons: list[CouponReport] = field(default_factory=list)
    refund_id: str = ""
    refund_lines: dict[str, int] = field(default_factory=dict)
    refund_paid_back: int = 0
    refund_replayed: list[bool] = field(default_factory=list)
    refund_same_result: bool = False
    retries: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.confirm_replayed == [False, True]
            and self.confirm_same_result
            and self.refund_replayed == [False, True]
            and self.refund_same_result
        )


Change = tuple[str, Callable[[Cart], None]]


def demo_changes(card: str, coupon: str = DEMO_COUPON) -> list[Change]:
    """A customer filling a cart: add, change a quantity, sign in, remove, add, and a coupon
    code last (none when `coupon` is empty)."""
    changes: list[Change] = [
        ("add milk", lambda c: c.set(MILK, 1000)),
        ("add chocolate x2", lambda c: c.set(CHOCOLATE, 2000)),
        ("add dishwashing liquid", lambda c: c.set(DISHWASHING, 1000)),
        ("milk: 2 instead of 1", lambda c: c.set(MILK, 2000)),
        (f"sign in (card {card})", lambda c: setattr(c, "card", card)),
        ("add toilet paper", lambda c: c.set(TOILET_PAPER, 1000)),
        ("remove toilet paper", lambda c: c.set(TOILET_PAPER, 0)),
        ("add coffee", lambda c: c.set(COFFEE, 1000)),
    ]
    return changes + coupon_change(coupon)


def coupon_change(code: str) -> list[Change]:
    """The customer entering a coupon code (nothing for no code)."""
    return [(f"enter coupon {code}", lambda c: c.coupons.append(code))] if code else []


def _put(sku: str, quantity: int) -> Callable[[Cart], None]:
    return lambda cart: cart.set(sku, quantity)


def item_changes(items: Sequence[tuple[str, int]], card: str, coupon: str = "") -> list[Change]:
    """Add each item in turn, then sign in, then enter the coupon code (if any)."""
    changes: list[Change] = [(f"add {sku} x{quantity_text(q)}", _put(sku, q)) for sku, q in items]
    if card:
        changes.append((f"sign in (card {card})", lambda c: setattr(c, "card", card)))
    return changes + coupon_change(coupon)


def coupon_reports(result: receipt_pb2.ReceiptResult) -> list[CouponReport]:
    """Each code on the cart, what became of it and what its offer took off."""
    reports = []
    for coupon in result.coupons:
        discount = sum(
            benefit.discount
            for line in result.lines
            for benefit in line.benefits
            if coupon.offer_id and benefit.offer_id == coupon.offer_id
        )
        outcome = coupons_pb2.CouponStatus.Name(coupon.status).removeprefix("COUPON_STATUS_")
        reports.append(CouponReport(coupon.code, outcome, discount))
    return reports


def _print_coupons(result: receipt_pb2.ReceiptResult, out: TextIO) -> None:
    for coupon, report in zip(result.coupons, coupon_reports(result), strict=True):
        said = COUPON_OUTCOMES.get(coupon.status, report.outcome.lower())
        saved = f", -{money(report.discount)} {result.currency}" if report.discount else ""
        print(f"    coupon {coupon.code}: {said}{saved}", file=out)


def _refund_of(receipt: receipt_pb2.Receipt, prices: Mapping[str, Item]) -> dict[str, int]:
    """Give back part of the first line: one piece, or half of a weighed line (the whole line
    when only one piece was bought and there are other lines)."""
    first = receipt.lines[0]
    item = prices[first.sku]
    if item.weighed:
        return {first.line_id: max(first.quantity // 2, 1)}
    if first.quantity > 1000 or len(receipt.lines) > 1:
        return {first.line_id: 1000}
    raise ValueError("a partial refund needs more than one piece or line")


def _same(a: Any, b: Any) -> bool:
    return bool(a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True))


def run_checkout(
    client: LoyaltyClient,
    prices: Mapping[str, Item],
    changes: Sequence[Change],
    *,
    store_id: str = "S001",
    spend_points: bool = True,
    out: TextIO = sys.stdout,
) -> CheckoutReport:
    """The whole story; raises LoyaltyError when the service refuses a step. With
    `spend_points`, a signed-in customer pays with as many bonus points as allowed."""
    cart = Cart(f"WEB-{uuid.uuid4().hex[:12]}", store_id, prices)
    report = CheckoutReport(cart.cart_id)
    names = {sku: item.name for sku, item in prices.items()}
    print(f"Cart {cart.cart_id}, store {store_id}, channel ONLINE", file=out)
    calculated: receipt_pb2.CalculateResponse | None = None
    receipt = cart.receipt()
    for number, (what, change) in enumerate(changes, start=1):
        codes = list(cart.coupons)
        change(cart)
        receipt = cart.receipt()
        if not receipt.lines:
            continue
        calculated = client.calculate(receipt)
        r = calculated.result
        step = Step(
            what, len(r.lines), r.total_amount, r.total_discount, r.total_paid, r.total_points
        )
        report.steps.append(step)
        print(
            f"{number:>2}. {what:<34} {step.lines} lines  total {money(r.total_paid):>9}"
            f"  discount {money(r.total_discount):>8}  points {r.total_points}",
            file=out,
        )
        if cart.coupons != codes:  # a code entered: what became of it
            _print_coupons(r, out)
    if calculated is None:
        raise ValueError("the cart is empty: nothing to pay")
    if spend_points and receipt.HasField("member"):
        # at payment the customer ticks "pay with my points": as many as the rules allow
        calculated = client.calculate(receipt, spend_max_points=True)
        r = calculated.result
        report.points_spent = r.total_points_spent
        if r.points_available:
            said = (
                f"{r.total_points_spent} of {r.points_available} available"
                f" = {money(r.total_points_value)} {r.currency}"
            )
        else:  # a new member: the points of this order may be spent on the next
            said = "none available yet"
        print(f"\nPay with points: {said}", file=out)
    report.coupons = coupon_reports(calculated.result)
    print("\n" + format_receipt(receipt, calculated.result, names, title="ORDER"), file=out)

    token = calculated.confirmation_token
    first = client.confirm(receipt, token)
    print(
        f"\nPaid: confirm -> {money(first.result.total_paid)}, replayed={first.replayed}", file=out
    )
    again = client.confirm(receipt, token)  # the answer to the first was "lost": send it again
    paid = money(again.result.total_paid)
    print(f"Sent again:      {paid}, replayed={again.replayed}", file=out)
    report.confirmed_paid = first.result.total_paid
    report.confirm_replayed = [first.replayed, again.replayed]
    report.confirm_same_result = _same(first.result, again.result)
    report.points_balance = again.points_balance

    lines = _refund_of(receipt, prices)
    refund_id = f"{cart.cart_id}-RET1"
    refunded = client.refund(refund_id, cart.cart_id, lines=lines, store_id=store_id)
    repeated = client.refund(refund_id, cart.cart_id, lines=lines, store_id=store_id)
    skus = {line.line_id: line.sku for line in receipt.lines}
    print(
        "\nLater, part of the order comes back:\n" + format_refund(refunded, skus, names), file=out
    )
    print(f"Refund sent again: replayed={repeated.replayed}", file=out)
    report.refund_id = refund_id
    report.refund_lines = lines
    report.refund_paid_back = refunded.total_paid
    report.refund_replayed = [refunded.replayed, repeated.replayed]
    refunded.replayed = repeated.replayed  # compare everything but the flag
    report.refund_same_result = _same(refunded, repeated)
    report.retries = sum(client.stats.retries.values())
    verdict = "as the contract says" if report.ok else "NOT as the contract says"
    print(f"\nConfirm and refund are safe to repeat: {verdict}.", file=out)
    return report


def _parse_item(text: str) -> tuple[str, int]:
    sku, _, quantity = text.partition(":")
    try:
        return sku, parse_quantity(quantity) if quantity else 1000
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-checkout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    parser.add_argument("--store", default="S001", help="store id of the online shop")
    parser.add_argument("--card", default=DEMO_CARD, help="the customer's loyalty card")
    parser.add_argument("--item", action="append", type=_parse_item, default=[], help="SKU[:QTY]")
    parser.add_argument("--prices", default="demo", help="`demo` or a JSON price file")
    parser.add_argument(
        "--coupon",
        default=DEMO_COUPON,
        help=f"coupon code the customer enters last (default {DEMO_COUPON}; '' for none)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    parser.add_argument(
        "--no-points", action="store_true", help="pay in money only (default: with points)"
    )
    return parser


@tool("loyalty-checkout")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tool_logging("WARNING")
    items = demo_shop().items if args.prices == "demo" else load_price_file(Path(args.prices))
    prices = {item.sku: item for item in items}
    code = args.coupon.strip()
    if args.item:
        changes = item_changes(args.item, args.card, code)
    else:
        changes = demo_changes(args.card, code)
    out = io.StringIO() if args.json else sys.stdout
    try:
        with client_from_args(args) as client:
            report = run_checkout(
                client,
                prices,
                changes,
                store_id=args.store,
                spend_points=not args.no_points,
                out=out,
            )
    except (LoyaltyError, KeyError, ValueError) as err:
        raise ToolError(err.describe() if isinstance(err, LoyaltyError) else str(err)) from None
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
