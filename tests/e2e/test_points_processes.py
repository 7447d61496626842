"""Two server processes on one database spend one member's points at once (spec §21): the
balance never goes below zero, every loser hears FAILED_PRECONDITION POINTS_INSUFFICIENT, and a
replay changes nothing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2
from service.app.unit_of_work import UnitOfWork
from service.store.db import make_engine, make_session_factory
from service.store.models import PointsLedgerRow
from service.store.points_repo import accrue
from tests.e2e.conftest import auth
from tests.e2e.test_lifecycle_processes import server_process
from tests.waiting import until

MEMBER = "M000001"  # the demo card's member
SECRET = "shared-secret"
COFFEE_LINE = "6"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


def ledger(url: str, add: int = 0) -> tuple[int, int]:
    """(sum of the member's ledger, points spent), after adding `add` welcome points."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            if add:
                welcome(make_session_factory(engine), add)
            total = session.scalar(
                select(func.coalesce(func.sum(PointsLedgerRow.points), 0)).where(
                    PointsLedgerRow.member_id == MEMBER
                )
            )
            spent = session.scalar(
                select(func.coalesce(func.sum(PointsLedgerRow.points), 0)).where(
                    PointsLedgerRow.member_id == MEMBER, PointsLedgerRow.kind == "spend"
                )
            )
            return int(total or 0), -int(spent or 0)
    finally:
        engine.dispose()


def welcome(sessions: Callable[[], Session], points: int) -> None:
    """Welcome points from outside the receipts: ledger, lots and document; the change feed
    tells the servers."""
    with UnitOfWork(sessions) as uow:
        uow.lock_members([MEMBER])
        accrue(uow.session, MEMBER, None, {"WELCOME": points}, uow.now)
        uow.members_changed([MEMBER])
        uow.commit()


def reason_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def test_racing_confirms_on_two_processes_never_spend_more_than_the_balance(
    shared_database: str,
) -> None:
    url = shared_database
    # accruals wait a day, so only the welcome points can be spent
    env = {"LOYALTY_POINTS_ACTIVATION_DELAY_S": "86400"}
    with ExitStack() as stack:
        first = stack.enter_context(server_process(url, SECRET, env))
        second = stack.enter_context(server_process(url, SECRET, env))
        ledger(url, add=1000)
        probe = load_receipt(register_cli.DEMO_RECEIPT)[0]
        ask = receipt_pb2.CalculateRequest(receipt=probe, points_to_spend=300)

        def heard_of_the_points() -> bool:
            shown = first.Calculate(ask, timeout=10, metadata=auth())
            return bool(shown.result.points_available == 1000)

        until(heard_of_the_points, what="the welcome points in the first server's cache")
        receipts = []
        for n in range(6):
            receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
            receipt.receipt_id = f"POINTS-RACE-{n}"
            coffee = [line for line in receipt.lines if line.line_id == COFFEE_LINE]
            receipt.lines.remove(coffee[0])  # its offer's usage limit would race too
            receipts.append(receipt)
        requests = []
        for receipt in receipts:
            shown = first.Calculate(
                receipt_pb2.CalculateRequest(receipt=receipt, points_to_spend=300),
                timeout=10,
                metadata=auth(),
            )
            assert shown.result.total_points_spent == 300
            requests.append(
                receipt_pb2.ConfirmRequest(
                    receipt=receipt, confirmation_token=shown.confirmation_token
                )
            )
        start = threading.Barrier(len(requests))

        def confirm(index: int) -> str:
            replica = (first, second)[index % 2]
            start.wait()
            try:
                replica.Confirm(requests[index], timeout=30, metadata=auth())
            except grpc.RpcError as refused:
                assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
                return reason_of(refused)
            return "confirmed"

        with ThreadPoolExecutor(len(requests)) as pool:
            outcomes_in_order = list(pool.map(confirm, range(len(requests))))
        outcomes = Counter(outcomes_in_order)
        assert outcomes == {"confirmed": 3, "POINTS_INSUFFICIENT": 3}
        balance, spent = ledger(url)
        assert spent == 900

        # a replay of a confirmed receipt on the other process changes nothing
        won = next(i for i in range(len(requests)) if _confirmed(first, requests[i]) is not None)
        again = second.Confirm(requests[won], timeout=10, metadata=auth())
        assert again.replayed
        assert ledger(url) == (balance, spent)


def _confirmed(
    stub: object, request: receipt_pb2.ConfirmRequest
) -> receipt_pb2.ConfirmResponse | None:
    try:
        return stub.Confirm(request, timeout=10, metadata=auth())  # type: ignore[attr-defined, no-any-return]
    except grpc.RpcError:
        return None
