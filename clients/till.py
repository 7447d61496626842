"""`loyalty-till`: a cash register in the terminal, talking to the loyalty service.

Type a command and Enter. After every change the receipt is calculated again and printed,
line by line with the benefits under each line.

  SKU [QTY] [PRICE]    scan: QTY in units as on the scale (2, 0.753 kg; default 1),
                       PRICE per unit (per kg) in money, 87.90 (default: the price list)
  card NUMBER          identify the member by loyalty card (`card` alone: remove it)
  points N             pay N of the member's bonus points on this receipt (1 point pays
                       the value the receipt prints, 0.01 in the demo); `points 0`: none
  points max           pay as many points as the balance and the limits allow
  coupon CODE          add a coupon code to the receipt (`coupon` alone: remove them all)
  void LINE            take a line off the open receipt
  show                 print the open receipt again
  offers               the member's individual offers (favorites, personal offers)
  chips N              spend up to N of the member's chips on rewards (`chips` alone: none)
  pay                  the customer paid: confirm exactly what was shown
  refund LINE [QTY]    refund a line of the last paid receipt (default: all that is left)
  refund all           refund everything left of the last paid receipt
  cancel               drop the open receipt
  load FILE            scan every line of FILE (`SKU [QTY] [PRICE]` per line)
  help                 this text
  quit                 leave (Ctrl-D too)

Scans, voids, cards, points and chips go over a till session stream with `--session-target
HOST:PORT` (the server's --till-session-address): the receipt is calculated as each line is
scanned, without sending the whole receipt each time; without it, each change is one
Calculate.

Prices: `--prices demo` (default) uses the demo data set's shelf prices; `--prices FILE` a
JSON price file (see clients/catalogue.py); a PRICE typed on a scan is used for that line and
remembered for the SKU. Works with stdin not a terminal, for scripts:

  loyalty-till --token "$LOYALTY_TOKEN" <<'EOF'
  card 2000000000001
  4600000000015 2
  pay
  refund 1 1
  EOF

Exit status: 0 when every command worked, 1 when one failed (the till goes on after it).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from clients.catalogue import Item, demo_shop, load_price_file
from clients.client import (
    LoyaltyClient,
    LoyaltyError,
    SessionSpend,
    TillSession,
    add_connection_arguments,
    by_card,
)
from clients.client import client_from_args as _client_from_args
from clients.receipt_format import (
    format_receipt,
    format_refund,
    line_amount,
    money,
    parse_money,
    parse_quantity,
    quantity_text,
)
from loyalty.v1 import common_pb2, receipt_pb2
from service.cli import EXIT_USAGE, ToolError, describe, tool
from service.logs import configure_tool_logging

PROMPT = "till> "


class CommandError(Exception):
    """A command the till could not carry out; the message is for the cashier."""


@dataclass
class OpenLine:
    line_id: str
    sku: str
    quantity: int
    price: int

    @property
    def amount(self) -> int:
        return line_amount(self.price, self.quantity)


@dataclass
class Sale:
    """The receipt being scanned."""

    receipt_id: str
    lines: list[OpenLine] = field(default_factory=list)
    card: str = ""
    chips: int = 0  # chips the member may spend on rewards
    points: int = 0  # bonus points to spend
    points_max: bool = False  # as many as allowed
    coupons: list[str] = field(default_factory=list)
    next_line: int = 1
    calculated: receipt_pb2.CalculateResponse | None = None
    receipt: receipt_pb2.Receipt | None = None  # exactly what was calculated
    session: TillSession | None = None  # with --session-target

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


@dataclass
class PaidReceipt:
    """The last confirmed receipt, kept for refunds."""

    receipt: receipt_pb2.Receipt
    result: receipt_pb2.ReceiptResult
    refunded: dict[str, int] = field(default_factory=dict)  # line id -> quantity
    refunds: int = 0

    def left(self, line_id: str) -> int:
        line = next((x for x in self.receipt.lines if x.line_id == line_id), None)
        if line is None:
            raise CommandError(f"receipt {self.receipt.receipt_id} has no line {line_id}")
        return line.quantity - self.refunded.get(line_id, 0)


class Till:
    """One register: the open sale, the last paid receipt, and the commands on them."""

    def __init__(
        self,
        client: LoyaltyClient,
        *,
        prices: Iterable[Item] = (),
        store_id: str = "S001",
        register_id: str = "R01",
        channel: int = common_pb2.CHANNEL_POS,
        out: TextIO = sys.stdout,
    ) -> None:
        self.client = client
        self.items = {item.sku: item for item in prices}
        self.store_id = store_id
        self.register_id = register_id
        self.channel = channel
        self.out = out
        self.sale: Sale | None = None
        self.paid: PaidReceipt | None = None
        self.commands: dict[str, Callable[[list[str]], None]] = {
            "card": self.cmd_card,
            "points": self.cmd_points,
            "coupon": self.cmd_coupon,
            "void": self.cmd_void,
            "show": self.cmd_show,
            "offers": self.cmd_offers,
            "chips": self.cmd_chips,
            "pay": self.cmd_pay,
            "refund": self.cmd_refund,
            "cancel": self.cmd_cancel,
            "load": self.cmd_load,
            "help": self.cmd_help,
            "scan": self.cmd_scan,
        }

    # -- the loop --

    def handle(self, text: str) -> bool:
        """Carry out one command line; False when it failed. Raises EOFError on quit."""
        words = shlex.split(text.strip(), comments=True)
        if not words:
            return True
        name, args = words[0].lower(), words[1:]
        if name in ("quit", "exit", "q"):
            raise EOFError
        command = self.commands.get(name)
        try:
            if command is not None:
                command(args)
            elif name[0].isdigit() or words[0] in self.items:
                self.cmd_scan(words)
            else:
                raise CommandError(f"unknown command {name!r}: type `help`")
        except CommandError as err:
            self.say(f"! {err}")
            return False
        except LoyaltyError as err:
            self.say(f"! {err.describe()}")
            return False
        return True

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- scanning --

    def _open_sale(self) -> Sale:
        if self.sale is None:
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            receipt_id = f"{self.store_id}-{self.register_id}-{stamp}-{uuid.uuid4().hex[:6]}"
            self.sale = Sale(receipt_id)
        return self.sale

    def _scanned_line(self, sale: Sale, args: Sequence[str]) -> OpenLine:
        if not args or len(args) > 3:
            raise CommandError("scan takes SKU [QTY] [PRICE]")
        sku = args[0]
        try:
            quantity = parse_quantity(args[1]) if len(args) > 1 else 1000
            price = parse_money(args[2]) if len(args) > 2 else None
        except ValueError as err:
            raise CommandError(str(err)) from None
        if quantity <= 0:
            raise CommandError("quantity must be positive")
        if price is None:
            item = self.items.get(sku)
            if item is None:
                raise CommandError(f"no price for {sku}: type `{sku} QTY PRICE`")
            price = item.price
        elif price < 0:
            raise CommandError("price must not be negative")
        else:
            known = self.items.get(sku)
            self.items[sku] = Item(sku, known.name if known else sku, price)
        line = OpenLine(str(sale.next_line), sku, quantity, price)
        sale.next_line += 1
        return line

    def cmd_scan(self, args: list[str]) -> None:
        sale = self._open_sale()
        line = self._scanned_line(sale, args)
        sale.lines.append(line)

        def undo() -> None:
            sale.lines.remove(line)
            sale.next_line -= 1  # the id is free again

        self._recalculate(undo=undo)

    def cmd_load(self, args: list[str]) -> None:
        if len(args) != 1:
            raise CommandError("load takes a FILE")
        try:
            rows = Path(args[0]).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise CommandError(f"cannot read {args[0]}: {err.strerror}") from None
        sale = self._open_sale()
        added, first = [], sale.next_line
        try:
            for row in rows:
                words = shlex.split(row, comments=True)
                if words:
                    added.append(self._scanned_line(sale, words))
        except CommandError as err:
            sale.next_line = first
            raise CommandError(f"{args[0]}: {err}; nothing scanned") from None
        sale.lines.extend(added)

        def undo() -> None:
            for line in added:
                sale.lines.remove(line)
            sale.next_line -= len(added)

        self._recalculate(undo=undo)

    def cmd_void(self, args: list[str]) -> None:
        sale = self._require_sale()
        if len(args) != 1:
            raise CommandError("void takes a LINE id")
        line = next((x for x in sale.lines if x.line_id == args[0]), None)
        if line is None:
            raise CommandError(f"no line {args[0]} on the open receipt")
        position = sale.lines.index(line)
        sale.lines.remove(line)
        if not sale.lines:
            sale.close()
            self.sale = None
            self.say(f"Receipt {sale.receipt_id} is empty: nothing to pay.")
            return
        self._recalculate(undo=lambda: sale.lines.insert(position, line))

    def cmd_card(self, args: list[str]) -> None:
        if len(args) > 1:
            raise CommandError("card takes one NUMBER")
        sale = self._open_sale()
        before = (sale.card, sale.points, sale.points_max, sale.chips)
        sale.card = args[0] if args else ""
        if not sale.card:  # no member, no points or chips to spend
            sale.points, sale.points_max, sale.chips = 0, False, 0
        if not sale.lines:
            self.say(f"Card {sale.card} noted." if sale.card else "No card.")
            return

        def undo() -> None:
            sale.card, sale.points, sale.points_max, sale.chips = before

        self._recalculate(undo=undo)

    def cmd_chips(self, args: list[str]) -> None:
        if len(args) > 1 or (args and not args[0].isdigit()):
            raise CommandError("chips takes a whole NUMBER of chips to spend")
        sale = self._open_sale()
        before = sale.chips
        sale.chips = int(args[0]) if args else 0
        if not sale.lines:
            self.say(f"Up to {sale.chips} chips to spend." if sale.chips else "No chips spent.")
            return

        def undo() -> None:
            sale.chips = before

        self._recalculate(undo=undo)

    def cmd_points(self, args: list[str]) -> None:
        if len(args) != 1:
            raise CommandError("points takes N or `max`")
        sale = self._require_sale()
        if not sale.card:
            raise CommandError("points need a member: `card NUMBER` first")
        wanted = args[0].lower()
        if wanted != "max" and not (wanted.isdigit() and len(wanted) <= 12):
            raise CommandError("points takes a whole number of points or `max`")
        before = (sale.points, sale.points_max)
        sale.points, sale.points_max = (0, True) if wanted == "max" else (int(wanted), False)

        def undo() -> None:
            sale.points, sale.points_max = before

        self._recalculate(undo=undo)
        result = sale.calculated.result if sale.calculated else None
        if result is not None and (sale.points or sale.points_max):
            self.say(
                f"Points: {result.total_points_spent} of {result.points_available} available"
                f" spent (at most {result.points_allowed} on this receipt)"
            )

    def cmd_coupon(self, args: list[str]) -> None:
        if len(args) > 1:
            raise CommandError("coupon takes one CODE")
        sale = self._open_sale()
        before = list(sale.coupons)
        code = args[0].upper() if args else ""
        if code in sale.coupons:
            raise CommandError(f"coupon {code} is on the receipt already")
        sale.coupons = [*sale.coupons, code] if code else []
        if not sale.lines:
            self.say(f"Coupon {code} noted." if code else "No coupons.")
            return

        def undo() -> None:
            sale.coupons = before

        self._recalculate(undo=undo)

    def cmd_show(self, args: list[str]) -> None:
        sale = self._require_sale()
        if sale.calculated is None or sale.receipt is None:
            raise CommandError("nothing calculated yet")
        self._print_sale(sale)

    def cmd_cancel(self, args: list[str]) -> None:
        sale = self._require_sale()
        sale.close()
        self.sale = None
        self.say(f"Receipt {sale.receipt_id} cancelled.")

    def _require_sale(self) -> Sale:
        if self.sale is None or not (self.sale.lines or self.sale.card or self.sale.coupons):
            raise CommandError("no open receipt: scan something first")
        return self.sale

    def _receipt(self, sale: Sale) -> receipt_pb2.Receipt:
        receipt = receipt_pb2.Receipt(
            receipt_id=sale.receipt_id,
            store_id=self.store_id,
            channel=self.channel,  # type: ignore[arg-type]
        )
        if sale.card:
            receipt.member.card_number = sale.card
        receipt.coupon_codes.extend(sale.coupons)
        for x in sale.lines:
            receipt.lines.add(
                line_id=x.line_id, sku=x.sku, quantity=x.quantity, price=x.price, amount=x.amount
            )
        return receipt

    def _recalculate(self, undo: Callable[[], object]) -> None:
        """Calculate the open receipt and print it; on failure put things back as they were."""
        sale = self._require_sale()
        receipt = self._receipt(sale)
        try:
            receipt, calculated = self._calculated(sale, receipt)
        except LoyaltyError as err:
            card = sale.card
            undo()
            if err.reason == "CARD_NOT_FOUND":
                raise CommandError(f"card {card} not recognised: {err.message}") from None
            if err.reason == "CHIPS_INSUFFICIENT":
                raise CommandError(f"not enough chips: {err.message}") from None
            if err.fields:
                raise CommandError(f"{err.describe()}: not taken") from None
            raise
        sale.receipt, sale.calculated = receipt, calculated
        self._print_sale(sale)

    def _calculated(
        self, sale: Sale, receipt: receipt_pb2.Receipt
    ) -> tuple[receipt_pb2.Receipt, receipt_pb2.CalculateResponse]:
        """The receipt calculated: by one Calculate, or by the steps of the sale's session
        that bring it to this receipt (then the receipt is the session's)."""
        if self.client.session_target is None:
            return receipt, self.client.calculate(
                receipt,
                chips_to_spend=sale.chips,
                points_to_spend=sale.points,
                spend_max_points=sale.points_max,
            )
        if sale.session is None:
            sale.session = self.client.till_session(receipt_pb2.Receipt())
        spending = SessionSpend(
            points_to_spend=sale.points,
            spend_max_points=sale.points_max,
            chips_to_spend=sale.chips,
        )
        answer = sale.session.sync(receipt, spending)
        if answer is None and sale.calculated is not None:  # nothing changed
            return sale.session.receipt, sale.calculated
        result = answer.result if answer is not None else None
        return sale.session.receipt, receipt_pb2.CalculateResponse(result=result)

    def _token(self, sale: Sale) -> tuple[receipt_pb2.Receipt, bytes]:
        """The receipt to confirm and its token: Calculate's, or the session's finish."""
        assert sale.receipt is not None and sale.calculated is not None
        if sale.session is None:
            return sale.receipt, sale.calculated.confirmation_token
        finished = sale.session.finish()
        sale.calculated = receipt_pb2.CalculateResponse(
            result=finished.result, confirmation_token=finished.confirmation_token
        )
        return finished.receipt, finished.confirmation_token

    def _names(self) -> dict[str, str]:
        return {sku: item.name for sku, item in self.items.items()}

    def _print_sale(self, sale: Sale) -> None:
        assert sale.receipt is not None and sale.calculated is not None
        text = format_receipt(
            sale.receipt,
            sale.calculated.result,
            self._names(),
            title=f"RECEIPT {sale.receipt_id}",
            show_line_ids=True,
        )
        self.say(text)

    # -- member --

    def cmd_offers(self, args: list[str]) -> None:
        card = args[0] if args else (self.sale.card if self.sale else "")
        if not card:
            raise CommandError("no card: `card NUMBER` first, or `offers NUMBER`")
        offers = self.client.get_member_offers(
            by_card(card),
            store_id=self.store_id,
            channel=self.channel,  # type: ignore[arg-type]
        )
        names = self._names()
        self.say(
            f"Member {offers.member_id}, points balance {offers.points_balance}:"
            f" {offers.points_available} to spend, {offers.points_pending} pending,"
            f" chips {offers.chips_balance}"
        )
        if offers.points_expiring_soon:
            before = offers.points_expiring_before.ToDatetime(UTC).date().isoformat()
            self.say(f"  {offers.points_expiring_soon} points expire before {before}")
        for fav in offers.favorite_products:
            slots = "; ".join(names.get(x.sku, x.sku) if x.sku else "(empty)" for x in fav.slots)
            self.say(f"  {fav.name}: {slots or 'no slots'}")
        for cat in offers.favorite_categories:
            chosen = "; ".join(o.name for o in cat.offered if o.chosen) or "none chosen"
            self.say(f"  {cat.name}: {chosen}")
        for personal in offers.personal_offers:
            skus = "; ".join(names.get(s, s) for s in personal.skus) or personal.group_id
            self.say(f"  {personal.name}: {skus}")
        for coupon in offers.coupons:
            self.say(f"  Coupon {coupon.code} (offer {coupon.offer_id})")
        general = "; ".join(
            (g.text or g.name) + (" (with a coupon)" if g.coupon_required else "")
            for g in offers.general_offers
        )
        if general:
            self.say(f"  Also now: {general}")

    # -- paying and refunds --

    def cmd_pay(self, args: list[str]) -> None:
        sale = self._require_sale()
        if sale.calculated is None or sale.receipt is None or not sale.lines:
            raise CommandError("nothing to pay")
        try:
            receipt, token = self._token(sale)
            confirmed = self.client.confirm(receipt, token)
        except LoyaltyError as err:
            self.say(f"! not paid: {err.describe()}; calculating again")
            self._recalculate(undo=lambda: None)
            raise CommandError("check the receipt and `pay` again") from None
        result = confirmed.result
        again = " (already confirmed: same result)" if confirmed.replayed else ""
        in_money = result.total_paid - result.total_points_value
        self.say(f"PAID {money(in_money)} {result.currency}{again}")
        self.say(f"Receipt {sale.receipt_id} confirmed: discount {money(result.total_discount)}")
        if result.total_points_spent:
            self.say(
                f"Paid with {result.total_points_spent} points"
                f" ({money(result.total_points_value)} {result.currency})"
            )
        if result.member_id:
            self.say(
                f"Member {result.member_id}: +{result.total_points} points,"
                f" balance {confirmed.points_balance}"
            )
        if result.total_chips or result.total_chips_spent:
            whose = f"balance {confirmed.chips_balance}" if result.member_id else "hand them out"
            self.say(
                f"Chips: +{result.total_chips} granted, -{result.total_chips_spent} spent, {whose}"
            )
        self.paid = PaidReceipt(receipt, result)
        self.sale = None

    def cmd_refund(self, args: list[str]) -> None:
        paid = self.paid
        if paid is None:
            raise CommandError("no paid receipt to refund")
        if not args or len(args) > 2:
            raise CommandError("refund takes LINE [QTY], or `all`")
        full = args[0].lower() == "all"
        lines: dict[str, int] = {}
        if not full:
            left = paid.left(args[0])
            try:
                quantity = parse_quantity(args[1]) if len(args) > 1 else left
            except ValueError as err:
                raise CommandError(str(err)) from None
            if quantity <= 0 or quantity > left:
                raise CommandError(f"line {args[0]}: {quantity_text(left)} left to refund")
            lines[args[0]] = quantity
        refund_id = f"{paid.receipt.receipt_id}-RF{paid.refunds + 1}"
        refunded = self.client.refund(
            refund_id, paid.receipt.receipt_id, lines=lines, full=full, store_id=self.store_id
        )
        paid.refunds += 1
        for line in refunded.lines:
            paid.refunded[line.line_id] = paid.refunded.get(line.line_id, 0) + line.quantity
        skus = {x.line_id: x.sku for x in paid.receipt.lines}
        self.say(format_refund(refunded, skus, self._names()))

    def cmd_help(self, args: list[str]) -> None:
        doc = __doc__ or ""
        self.say(doc.split("\n\n", 2)[2].split("\n\nPrices:")[0])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-till",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    parser.add_argument("--store", default="S001", help="store id (default S001)")
    parser.add_argument("--register", default="R01", help="register id, part of receipt ids")
    parser.add_argument("--channel", choices=("POS", "ONLINE"), default="POS", help="sales channel")
    parser.add_argument(
        "--prices",
        default="demo",
        help="`demo` (the demo data's shelf prices) or a JSON price file",
    )
    parser.add_argument("--script", type=Path, help="read commands from this file, not stdin")
    parser.add_argument(
        "--session-target",
        help="host:port of the till sessions (the server's --till-session-address): stream "
        "scans over a session instead of one Calculate per change",
    )
    return parser


def _price_list(source: str) -> list[Item]:
    if source == "demo":
        return list(demo_shop().items)
    return load_price_file(Path(source))


def run(till: Till, lines: Iterable[str], *, echo: bool) -> int:
    """Feed command lines to the till (echoed after the prompt when `echo`: a transcript of a
    script reads like a session at the keyboard); the exit status."""
    failed = False
    for text in lines:
        if echo and text.strip():
            till.say(f"{PROMPT}{text.rstrip()}")
        try:
            failed = not till.handle(text) or failed
        except EOFError:
            break
    if till.sale is not None and till.sale.lines:
        till.say(f"(receipt {till.sale.receipt_id} left unpaid)")
    if till.sale is not None:
        till.sale.close()
    return 1 if failed else 0


def _keyboard_lines() -> Iterator[str]:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for a person at the keyboard
    while True:
        try:
            yield input(PROMPT)
        except EOFError:
            print()
            return


@tool("loyalty-till")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tool_logging("WARNING")
    try:
        prices = _price_list(args.prices)
    except (OSError, ValueError, KeyError) as err:
        message = f"cannot read prices from {args.prices}: {describe(err)}"
        raise ToolError(message, EXIT_USAGE) from None
    channel = common_pb2.Channel.Value(f"CHANNEL_{args.channel}")
    with _client_from_args(args, session_target=args.session_target) as client:
        till = Till(
            client,
            prices=prices,
            store_id=args.store,
            register_id=args.register,
            channel=channel,
        )
        if args.script:
            lines: Iterable[str] = args.script.read_text(encoding="utf-8").splitlines()
            return run(till, lines, echo=True)
        if sys.stdin.isatty():
            till.say(f"loyalty-till at {args.target}, store {args.store}. Type `help`.")
            return run(till, _keyboard_lines(), echo=False)
        return run(till, sys.stdin, echo=True)


if __name__ == "__main__":
    sys.exit(main())
