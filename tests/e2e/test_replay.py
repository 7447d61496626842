"""CampaignReplayService end to end on the demo server (spec §13): receipts confirmed through
the register API, a draft replayed against them over gRPC (progress, then the report), the
store unchanged; once the draft is made live, Calculate gives those receipts exactly what
the replay said it would. Only BACK_OFFICE may replay."""

from __future__ import annotations

import time

import grpc
import pytest

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import common_pb2 as c
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc, replay_pb2, replay_pb2_grpc
from service.api.auth import Role
from tests.e2e.conftest import auth
from tests.e2e.test_backoffice import call
from tests.e2e.test_bad_input import store_fingerprint

DRAFT = bo.Offer(
    id="A-REPLAY",
    name="Fifteen percent on everything",
    level=c.LEVEL_ALL_BUYERS,
    benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=1500),
    priority=1,
    stacking=c.STACKING_COMBINABLE,
    active=True,
)


def sold_receipts(count: int) -> list[receipt_pb2.Receipt]:
    """The demo receipt (with its member's card) under new ids, sold an hour ago."""
    sold = []
    for number in range(count):
        made = load_receipt(register_cli.DEMO_RECEIPT)[0]
        made.receipt_id = f"REPLAY-{number}"
        made.sale_time.seconds = int(time.time()) - 3600 + number
        sold.append(made)
    return sold


def calculated(
    receipts: receipt_pb2_grpc.ReceiptServiceStub, receipt: receipt_pb2.Receipt
) -> receipt_pb2.ReceiptResult:
    request = receipt_pb2.CalculateRequest(receipt=receipt)
    return receipts.Calculate(request, timeout=10, metadata=auth()).result


def replay(channel: grpc.Channel, request: replay_pb2.ReplayRequest, role: Role = Role.BACK_OFFICE):
    stub = replay_pb2_grpc.CampaignReplayServiceStub(channel)
    return list(stub.Replay(request, timeout=30, metadata=auth(role)))


def test_a_replay_predicts_what_the_draft_gives_once_live_and_writes_nothing(channel, demo_server):
    receipts = receipt_pb2_grpc.ReceiptServiceStub(channel)
    sold = sold_receipts(3)
    confirmed = []
    for receipt in sold:
        shown = receipts.Calculate(
            receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
        )
        confirmed.append(
            receipts.Confirm(
                receipt_pb2.ConfirmRequest(
                    receipt=receipt, confirmation_token=shown.confirmation_token
                ),
                timeout=10,
                metadata=auth(),
            ).result
        )
    request = replay_pb2.ReplayRequest(draft_offer=DRAFT, top_products=3)
    request.start.seconds = int(time.time()) - 7200
    request.end.seconds = int(time.time()) + 60

    before = store_fingerprint(demo_server)
    messages = replay(channel, request)
    assert store_fingerprint(demo_server) == before

    *progress, last = messages
    assert [m.WhichOneof("item") for m in progress] == ["progress"] * len(progress)
    assert progress[0].progress.receipts_done == 0
    assert progress[-1].progress.receipts_done == progress[-1].progress.receipts_total == 3
    report = last.report
    assert report.receipts == 3
    assert report.currency == demo_server.settings.currency
    assert report.configuration_version == confirmed[0].configuration_version
    assert report.confirmed.discount == sum(r.total_discount for r in confirmed)
    assert report.confirmed.points == sum(r.total_points for r in confirmed)
    # the live configuration on the members as they are now (their usage counters count
    # these confirms): what Calculate gives the same receipts now
    now = [calculated(receipts, receipt) for receipt in sold]
    assert report.live.discount == sum(r.total_discount for r in now)
    assert report.live.points == sum(r.total_points for r in now)
    assert report.added.discount == report.draft.discount - report.live.discount > 0
    assert report.receipts_affected == 3 and report.members_affected == 1
    assert 0 < len(report.top_products) <= 3
    assert len(report.days) in (1, 2)  # an hour ago may be yesterday

    call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=DRAFT))
    again = [calculated(receipts, receipt) for receipt in sold]
    assert sum(r.total_discount for r in again) == report.draft.discount
    assert sum(r.total_points for r in again) == report.draft.points
    assert again[0].configuration_version > report.configuration_version


def test_only_the_back_office_may_replay(channel):
    request = replay_pb2.ReplayRequest(draft_offer=DRAFT)
    request.start.seconds, request.end.seconds = 0, 86_400
    with pytest.raises(grpc.RpcError) as refused:
        replay(channel, request, Role.REGISTER)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
