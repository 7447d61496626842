"""Two receipts of one member spend the same chips on two server processes at once, on one
PostgreSQL database (spec §20): one confirm wins, the other is refused CHIPS_INSUFFICIENT,
and the balance never goes below zero."""

from __future__ import annotations

import threading
from contextlib import ExitStack

import grpc
import pytest

from loyalty.v1 import common_pb2, receipt_pb2, receipt_pb2_grpc
from tests.e2e.conftest import auth
from tests.e2e.statuses import refusal
from tests.e2e.test_lifecycle_processes import server_process
from tests.waiting import until

MEMBER = "M000001"
MILK = "4600000000022"  # in G-FOOD, no other benefit for the member
TOWELS = "4600000002514"  # the demo reward C-REWARD-TOWELS: 1.00 for 10 chips


def sale(receipt_id: str, sku: str, amount: int) -> receipt_pb2.Receipt:
    receipt = receipt_pb2.Receipt(
        receipt_id=receipt_id, store_id="S001", channel=common_pb2.CHANNEL_POS
    )
    receipt.member.member_id = MEMBER
    receipt.lines.add(line_id="1", sku=sku, quantity=1000, price=amount, amount=amount)
    return receipt


def calculate(
    stub: receipt_pb2_grpc.ReceiptServiceStub, receipt: receipt_pb2.Receipt, chips: int = 0
) -> receipt_pb2.CalculateResponse:
    request = receipt_pb2.CalculateRequest(receipt=receipt, chips_to_spend=chips)
    return stub.Calculate(request, timeout=10, metadata=auth())


def can_spend(stub: receipt_pb2_grpc.ReceiptServiceStub, chips: int) -> bool:
    try:
        calculate(stub, sale("probe", TOWELS, 5000), chips)
    except grpc.RpcError as error:
        assert refusal(error)[1] == "CHIPS_INSUFFICIENT"
        return False
    return True


@pytest.mark.postgres
def test_racing_confirms_on_two_processes_never_overdraw_the_chips(pg_url: str) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(server_process(pg_url, "shared-secret"))
        second = stack.enter_context(server_process(pg_url, "shared-secret"))
        earned = sale("CHIPS-EARN", MILK, 500000)  # 5 000.00 of food: 10 chips
        shown = calculate(first, earned)
        assert shown.result.total_chips == 10
        confirm = receipt_pb2.ConfirmRequest(
            receipt=earned, confirmation_token=shown.confirmation_token
        )
        assert first.Confirm(confirm, timeout=10, metadata=auth()).chips_balance == 10
        until(lambda: can_spend(second, 10), what="the second process sees the chips")

        stubs = (first, second)
        receipts = [sale(f"CHIPS-SPEND-{n}", TOWELS, 5000) for n in (1, 2)]
        tokens = [
            calculate(s, r, 10).confirmation_token for s, r in zip(stubs, receipts, strict=True)
        ]
        start = threading.Barrier(2)
        outcomes: list[object] = [None, None]

        def spend(index: int) -> None:
            request = receipt_pb2.ConfirmRequest(
                receipt=receipts[index], confirmation_token=tokens[index]
            )
            start.wait()
            try:
                outcomes[index] = stubs[index].Confirm(request, timeout=20, metadata=auth())
            except grpc.RpcError as error:
                outcomes[index] = refusal(error)

        threads = [threading.Thread(target=spend, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        won = [o for o in outcomes if isinstance(o, receipt_pb2.ConfirmResponse)]
        lost = [o for o in outcomes if isinstance(o, tuple)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert won[0].chips_balance == 0
        assert won[0].result.total_chips_spent == 10
        assert lost[0][:2] == (grpc.StatusCode.FAILED_PRECONDITION, "CHIPS_INSUFFICIENT")
        for stub in stubs:  # both replicas come to see the empty balance
            until(lambda stub=stub: not can_spend(stub, 1), what="the balance reaches zero")
