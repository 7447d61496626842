"""`loyalty-till` driven by a script on stdin, as a person at a register would type it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc

from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer
from tests.e2e.coupon_support import set_up_campaigns

REPO = Path(__file__).resolve().parents[2]
MILK, YOGURT, BANANAS = "4600000000015", "4600000000329", "4600000000787"


def till(server: LoyaltyServer, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "clients.till",
        "--target",
        f"127.0.0.1:{server.port}",
        "--token",
        DEV_TOKENS[Role.REGISTER],
        *args,
    ]
    return subprocess.run(
        command, input=script, capture_output=True, text=True, cwd=REPO, timeout=30
    )


def receipts_printed(output: str) -> int:
    return output.count("TOTAL RUB")


def test_the_till_recalculates_after_every_scan_and_shows_benefits_line_by_line(
    demo_server: LoyaltyServer,
) -> None:
    done = till(
        demo_server,
        f"""{MILK} 2
card 2000000000001
{BANANAS} 0.753
{YOGURT}
show
quit
""",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert receipts_printed(out) == 5, "one receipt per scan, card and show"
    first, *_, last = out.split("till> ")[1:-1]  # the last one is `quit`
    assert "no loyalty card" in first and "Card price" not in first
    assert "member M000001" in last
    assert "Card price" in last  # the yellow price tag on milk
    assert "Fruit -30 RUB/kg" in last
    assert "Favorite product -15 %" in last
    assert "0.753 x 222.90" in last
    assert "  3  Greek yogurt" in last, "each line shows the id that void and refund take"


def test_the_till_takes_a_typed_price_and_refuses_a_half_piece_without_losing_the_receipt(
    demo_server: LoyaltyServer,
) -> None:
    done = till(demo_server, f"{MILK}\n9999999 1 12.50\n{MILK} 0.5\nshow\n")
    assert done.returncode == 1, "a command failed, so the script's status says so"
    out = done.stdout
    assert "9999999 (unknown SKU)" in out and "12.50" in out
    assert "! INVALID_ARGUMENT" in out and "whole pieces" in out
    last = out.split("till> show")[1]
    assert "  2  9999999" in last and "  3 " not in last, "the refused scan was taken back"


def test_the_till_says_when_a_card_is_not_recognised_and_keeps_the_receipt(
    demo_server: LoyaltyServer,
) -> None:
    done = till(demo_server, f"{MILK}\ncard 2000999999999\nshow\n")
    assert done.returncode == 1
    assert "card 2000999999999 not recognised" in done.stdout
    assert "no loyalty card" in done.stdout.split("till> show")[1]


def test_the_till_pays_with_the_last_token_and_refunds_part_of_a_line(
    demo_server: LoyaltyServer,
) -> None:
    done = till(
        demo_server,
        f"""card 2000000000001
{MILK} 3
{YOGURT}
void 2
{YOGURT} 2
pay
refund 1 1
refund 1
refund 1
""",
    )
    out = done.stdout
    assert "PAID " in out, out + done.stderr
    assert "Member M000001: +" in out
    refunds = out.split("REFUND ")[1:]
    assert len(refunds) == 2
    assert "1 returned" in refunds[0] and "2 returned" in refunds[1]
    assert "PAID BACK" in refunds[0]
    assert "line 1: 0 left to refund" in out, "nothing is left of line 1"
    assert done.returncode == 1, "only the third refund failed"


def test_the_till_reads_prices_and_scans_from_files(
    demo_server: LoyaltyServer, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({MILK: {"price": 10000, "name": "House milk"}, "777": 500}))
    scans = tmp_path / "scans.txt"
    scans.write_text(f"{MILK} 2\n777 3  # three of the unknown thing\n\n")
    done = till(demo_server, f"load {scans}\n", "--prices", str(prices))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "House milk" in done.stdout
    assert "777 (unknown SKU)" in done.stdout
    assert "Subtotal                                                  215.00" in done.stdout


def test_the_till_explains_its_commands(demo_server: LoyaltyServer) -> None:
    done = till(demo_server, "help\nfrobnicate\n")
    assert "refund LINE [QTY]" in done.stdout
    assert "unknown command 'frobnicate'" in done.stdout


def test_the_till_shows_the_members_individual_offers(demo_server: LoyaltyServer) -> None:
    done = till(demo_server, "card 2000000000001\noffers\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Member M000001" in done.stdout
    assert "Greek yogurt 2 % 140 g, Green Meadow" in done.stdout  # a favorite-product slot
    assert "Your coffee -25 %" in done.stdout  # a personalized offer


def test_the_till_prints_chips_granted_and_spends_them_on_a_reward(
    demo_server: LoyaltyServer,
) -> None:
    food, towels = "4600000000022", "4600000002514"  # G-FOOD milk; the C-REWARD-TOWELS reward
    done = till(
        demo_server,
        f"""card 2000000000002
{food} 1 6000.00
pay
card 2000000000002
{towels} 1 50.00
chips 10
pay
offers 2000000000002
""",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    earned, rest = done.stdout.split("till> pay")[1:]
    spent, offers = rest.split("till> offers")
    granted = int(earned.split("Chips: +")[1].split()[0])
    assert granted >= 10, "at least 5 000.00 of food paid: 1 chip per 500.00"
    assert f"Chips: +{granted} granted, -0 spent, balance {granted}" in earned
    unlocked = done.stdout.split("till> chips 10")[1].split("till> pay")[0]
    assert "Paper towels 1.00 for 10 chips" in unlocked and "(10 chips)" in unlocked
    assert "Chips spent on rewards" in unlocked
    assert f"Chips: +0 granted, -10 spent, balance {granted - 10}" in spent
    assert f"chips {granted - 10}" in offers


def test_the_till_refuses_to_spend_chips_the_member_does_not_hold(
    demo_server: LoyaltyServer,
) -> None:
    done = till(demo_server, "card 2000000000003\n4600000002514\nchips 99\nshow\n")
    assert done.returncode == 1
    assert "not enough chips" in done.stdout
    assert "(99 chips)" not in done.stdout.split("till> show")[1], "the receipt stays as it was"


def test_the_till_pays_with_points_and_prints_them_with_their_value(
    demo_server: LoyaltyServer,
) -> None:
    # a first sale earns points (spendable at once in the demo), the second spends them
    done = till(
        demo_server,
        f"""card 2000000000001
{MILK} 2
{BANANAS} 0.753
{YOGURT}
pay
card 2000000000001
{MILK} 2
points max
pay
refund all
""",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "1 point = 0.01 RUB" in out, "the value of a point is printed"
    spending = out.split("till> points max")[1].split("till> pay")[0]
    assert "Paid with" in spending and "TO PAY RUB" in spending
    assert "Points: " in spending and "available spent" in spending
    paid = out.split("till> pay")[2]
    assert "Paid with" in paid and "points (" in paid
    assert "Spent points given back" in out.split("till> refund all")[1]


def test_the_till_refuses_points_without_a_card(demo_server: LoyaltyServer) -> None:
    done = till(demo_server, f"{MILK}\npoints 100\npoints lots\n")
    assert done.returncode == 1
    assert "points need a member" in done.stdout


def test_the_till_takes_coupon_codes_and_prints_each_codes_outcome(
    demo_server: LoyaltyServer, channel: grpc.Channel
) -> None:
    set_up_campaigns(channel)
    done = till(
        demo_server,
        "coupon summer10\ncoupon NOPE-1\nscan CPN-TEA 1 100.00\ncoupon BAD!CODE\npay\n",
    )
    assert done.returncode == 1, "the bad code is refused, the rest goes on"
    out = done.stdout
    receipt = out.split("till> pay")[0].split("till> scan")[1]
    assert "Coupon SUMMER10" in receipt and "applied" in receipt
    assert "Coupon NOPE-1" in receipt and "unknown code" in receipt
    assert "coupon_codes" in out.split("till> coupon BAD!CODE")[1]  # named, not taken
    assert "PAID 90.00" in out
