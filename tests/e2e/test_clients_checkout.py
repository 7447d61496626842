"""`loyalty-checkout`: an online cart calculated many times, confirmed once (and again, safely),
partly refunded (and again, safely)."""

from __future__ import annotations

import io
import json

import pytest

from clients import checkout
from clients.catalogue import demo_shop
from clients.client import LoyaltyClient
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer

REGISTER = DEV_TOKENS[Role.REGISTER]


def test_the_checkout_confirms_once_and_a_repeated_confirm_and_refund_are_replayed(
    demo_server: LoyaltyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = checkout.main(
        ["--target", f"127.0.0.1:{demo_server.port}", "--token", REGISTER, "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["ok"] is True
    assert len(report["steps"]) == 9, "the cart was calculated after every change"
    totals = [step["total_paid"] for step in report["steps"]]
    assert len(set(totals)) >= 5
    signed_in = report["steps"][4]
    assert signed_in["total_discount"] > report["steps"][3]["total_discount"]
    assert signed_in["total_points"] > 0
    coupon, before = report["steps"][-1], report["steps"][-2]
    assert coupon["what"] == "enter coupon WELCOME10"
    [welcome] = report["coupons"]
    assert welcome["code"] == "WELCOME10" and welcome["outcome"] == "APPLIED"
    assert welcome["discount"] > 0
    assert coupon["total_discount"] == before["total_discount"] + welcome["discount"]
    assert report["confirmed_paid"] == coupon["total_paid"]
    assert report["confirm_replayed"] == [False, True]
    assert report["confirm_same_result"] is True
    assert report["refund_replayed"] == [False, True]
    assert report["refund_same_result"] is True
    assert report["refund_lines"] == {"1": 1000}
    assert 0 < report["refund_paid_back"] < report["confirmed_paid"]


def test_the_checkout_story_reads_as_a_log_a_person_can_follow(
    demo_server: LoyaltyServer,
) -> None:
    out = io.StringIO()
    prices = {item.sku: item for item in demo_shop().items}
    with LoyaltyClient(f"127.0.0.1:{demo_server.port}", REGISTER) as client:
        report = checkout.run_checkout(
            client,
            prices,
            checkout.item_changes(
                [(checkout.MILK, 2000), (checkout.COFFEE, 1000)], "2000000000001"
            ),
            out=out,
        )
    text = out.getvalue()
    assert report.ok
    assert "channel ONLINE" in text
    assert "replayed=True" in text
    assert "Personal offer" in text, "the member's coffee offer shows in the order"
    assert "safe to repeat: as the contract says" in text


@pytest.mark.parametrize(
    ("code", "said"),
    [
        # 10 % of 2 x 493.90 = 987.80 less the online household -7 % (69.15) before it
        ("WELCOME10", "coupon WELCOME10: applied, -91.87 RUB"),
        ("welcome10", "coupon WELCOME10: applied, -91.87 RUB"),  # codes ignore case
        ("NO-SUCH-CODE", "coupon NO-SUCH-CODE: unknown code"),
    ],
)
def test_the_checkout_prints_what_became_of_the_coupon_code(
    demo_server: LoyaltyServer, code: str, said: str
) -> None:
    """The demo coupon takes 10 % off household goods (the dishwashing liquid here)."""
    out = io.StringIO()
    prices = {item.sku: item for item in demo_shop().items}
    changes = checkout.item_changes([(checkout.DISHWASHING, 2000)], "", code)
    with LoyaltyClient(f"127.0.0.1:{demo_server.port}", REGISTER) as client:
        report = checkout.run_checkout(client, prices, changes, out=out)
    assert said in [line.strip() for line in out.getvalue().splitlines()[2:4]], out.getvalue()
    assert report.ok
    [coupon] = report.coupons
    assert coupon.outcome == ("UNKNOWN" if "NO-SUCH" in code else "APPLIED")
