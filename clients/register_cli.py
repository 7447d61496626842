"""`loyalty-register`: send a receipt to the service and print it as a cashier reads it.

loyalty-register --demo                      # the demo receipt shipped with the demo data
loyalty-register --file receipt.json         # a receipt in JSON (see receipt_format)
loyalty-register --card 2000000000001 --line SKU:QTY:PRICE --line ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clients.client import LoyaltyError, add_connection_arguments, client_from_args
from clients.receipt_format import format_receipt, load_receipt, receipt_from_dict
from loyalty.v1 import receipt_pb2
from service.cli import EXIT_USAGE, ToolError, describe, tool
from service.logs import configure_tool_logging

DEMO_RECEIPT = (
    Path(__file__).resolve().parent.parent / "service" / "demo_data" / "demo_receipt.json"
)


def _parse_line(text: str) -> dict[str, object]:
    try:
        sku, quantity, price = text.split(":")
        return {"sku": sku, "quantity": int(quantity), "price": int(price)}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SKU:QUANTITY:PRICE (thousandths, minor units), got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-register",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--demo", action="store_true", help="send the demo receipt")
    source.add_argument("--file", type=Path, help="a receipt in JSON")
    parser.add_argument("--card", help="loyalty card number")
    parser.add_argument("--store", default="S001", help="store id (with --line)")
    parser.add_argument(
        "--line",
        action="append",
        type=_parse_line,
        default=[],
        help="SKU:QUANTITY:PRICE, repeatable",
    )
    parser.add_argument("--explain", action="store_true", help="show offers that lost")
    parser.add_argument("--confirm", action="store_true", help="confirm (pay) after calculating")
    return parser


def _receipt_from_args(args: argparse.Namespace) -> tuple[receipt_pb2.Receipt, dict[str, str]]:
    if args.file or args.demo or not args.line:
        path = args.file or DEMO_RECEIPT
        try:
            receipt, names = load_receipt(path)
        except (OSError, ValueError) as bad:
            message = f"cannot read the receipt {path}: {describe(bad)}"
            raise ToolError(message, EXIT_USAGE) from None
        if args.card:
            receipt.member.card_number = args.card
        return receipt, names
    data = {"store_id": args.store, "card_number": args.card, "lines": args.line}
    return receipt_from_dict(data), {}


@tool("loyalty-register")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tool_logging("WARNING")
    receipt, names = _receipt_from_args(args)
    with client_from_args(args) as client:
        try:
            response = client.calculate(receipt, explain=args.explain)
            print(format_receipt(receipt, response.result, names))
            if args.confirm:
                confirmed = client.confirm(receipt, response.confirmation_token)
                print(
                    f"\nPAID. Receipt {receipt.receipt_id} confirmed"
                    f"{' (already confirmed)' if confirmed.replayed else ''};"
                    f" points balance {confirmed.points_balance}."
                )
        except LoyaltyError as err:
            raise ToolError(err.describe()) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
