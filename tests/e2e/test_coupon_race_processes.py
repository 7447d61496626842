"""Racing confirms of one coupon code on two server processes sharing PostgreSQL: whichever
commits first wins, the other gets FAILED_PRECONDITION with the reason, and nothing of it is
written (docs/coupons.md, "Redeeming")."""

from __future__ import annotations

import threading

import grpc
import pytest

from loyalty.v1 import coupons_pb2, receipt_pb2
from tests.e2e.coupon_support import (
    calculate,
    confirm,
    generate,
    set_up_campaigns,
    statuses,
    tea_receipt,
    upsert_campaign,
)
from tests.e2e.statuses import refusal
from tests.e2e.test_replica_processes import replica, store_url  # noqa: F401 - a fixture
from tests.waiting import until

pytestmark = pytest.mark.postgres

RACES = 4


Confirmation = tuple[grpc.Channel, receipt_pb2.Receipt, bytes]  # replica, receipt, token


def race(*confirms: Confirmation) -> list[object]:
    """Confirm at once (a barrier releases the threads together); each response or error."""
    barrier = threading.Barrier(len(confirms))
    outcomes: list[object] = [None] * len(confirms)

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = confirm(*confirms[index])
        except grpc.RpcError as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(confirms))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def shown_on(channel: grpc.Channel, sent: receipt_pb2.Receipt) -> bytes:
    """The token, once this replica applies the receipt's codes (it follows the feed)."""
    found: list[bytes] = []

    def applied() -> bool:
        response = calculate(channel, sent)
        found[:] = [response.confirmation_token]
        return all(status == "COUPON_STATUS_APPLIED" for _, status in statuses(response.result))

    until(applied, 10.0, what="the replica applying the code")
    return found[0]


def one_wins(outcomes: list[object], reason: str) -> None:
    won = [o for o in outcomes if isinstance(o, receipt_pb2.ConfirmResponse)]
    lost = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert refusal(lost[0])[:2] == (grpc.StatusCode.FAILED_PRECONDITION, reason)


def test_one_unique_code_confirmed_on_two_replicas_at_once_is_redeemed_once(
    store_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    with replica(store_url) as first, replica(store_url) as second:
        set_up_campaigns(first)
        for n in range(RACES):
            (code,) = generate(first)
            a, b = tea_receipt(f"RACE-A{n}", code), tea_receipt(f"RACE-B{n}", code)
            token_a, token_b = shown_on(first, a), shown_on(second, b)
            outcomes = race((first, a, token_a), (second, b, token_b))
            one_wins(outcomes, "COUPON_USED")
            loser = b if isinstance(outcomes[1], grpc.RpcError) else a
            assert statuses(calculate(first, loser).result) == [(code, "COUPON_STATUS_USED_UP")]

        last_use = coupons_pb2.CouponCampaign(
            id="ONCE", offer_id="CPN-10", kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
            shared_code="ONCE1", total_limit=1,
        )  # fmt: skip
        upsert_campaign(first, last_use)
        a, b = tea_receipt("RACE-SA", "ONCE1"), tea_receipt("RACE-SB", "ONCE1")
        token_a, token_b = shown_on(first, a), shown_on(second, b)
        outcomes = race((first, a, token_a), (second, b, token_b))
        one_wins(outcomes, "COUPON_USED_UP")
