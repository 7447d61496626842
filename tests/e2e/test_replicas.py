"""Replicas agree: a write made anywhere reaches every server's cache within a bounded delay."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.server import LoyaltyServer
from service.engine.model import Benefit, BenefitKind, Level, Offer
from service.store import db
from service.store.catalog_repo import save_offer
from tests.e2e.conftest import auth
from tests.waiting import until

SYNC_BOUND_S = 5.0  # generous for a loaded test machine; the benchmark measures the real delay


def one_line(sku: str = "NOT-IN-CATALOGUE") -> receipt_pb2.CalculateRequest:
    request = receipt_pb2.CalculateRequest()
    receipt = request.receipt
    receipt.receipt_id, receipt.store_id, receipt.channel = "SYNC-1", "S001", 1
    receipt.lines.add(line_id="1", sku=sku, quantity=1000, price=10_000, amount=10_000)
    return request


def eventually(check: Callable[[], bool], within_s: float) -> float:
    return until(check, within_s)


def test_an_offer_written_by_another_replica_applies_here_within_the_sync_bound(
    demo_server: LoyaltyServer, channel: grpc.Channel
) -> None:
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)

    def offer_applies() -> bool:
        result = stub.Calculate(one_line(), timeout=5, metadata=auth()).result
        return any(b.offer_id == "SYNC-TEST" for b in result.lines[0].benefits)

    assert not offer_applies()
    # Another replica's write: straight into the shared store, as its servicer would do.
    with db.make_session_factory(demo_server.store).begin() as session:
        offer = Offer("SYNC-TEST", "Sync test", Level.ALL_BUYERS, Benefit(BenefitKind.PERCENT, 1))
        save_offer(session, offer)
    eventually(offer_applies, SYNC_BOUND_S)
    assert demo_server.follower.stats.snapshot_reloads >= 1
