"""Member events through a real server (spec §10): a subscriber replays stored events, gets new
ones as they happen, resumes after a reconnect without missing any, and acknowledges."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import pytest

from loyalty.v1 import (
    common_pb2,
    member_pb2,
    member_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from service.api.auth import Role
from service.api.server import LoyaltyServer, create_server
from service.demo_data.generate import FAVORITE_PRODUCTS, FAVORITES_LIST
from tests.e2e.conftest import auth, demo_settings
from tests.waiting import until

CHANGED = notification_pb2.MEMBER_EVENT_TYPE_FAVORITES_CHANGED


@pytest.fixture(autouse=True)
def streams_of_earlier_tests_closed(request: pytest.FixtureRequest) -> None:
    """The module's tests share one server, whose stream budget (4) counts a cancelled
    stream until the server notices it, at its next poll: each test starts once the streams
    of the ones before it have closed, so none meets RESOURCE_EXHAUSTED by chance."""
    if "demo_server" in request.fixturenames or "channel" in request.fixturenames:
        server = request.getfixturevalue("demo_server")
        until(lambda: server.notifications.open_streams == 0, what="earlier streams closed")


def events(channel: grpc.Channel) -> notification_pb2_grpc.NotificationServiceStub:
    return notification_pb2_grpc.NotificationServiceStub(channel)


def subscribe(channel: grpc.Channel, role: Role = Role.BACK_OFFICE, **fields):
    request = notification_pb2.StreamMemberEventsRequest(**fields)
    return events(channel).StreamMemberEvents(request, timeout=30, metadata=auth(role))


def take(stream, count: int) -> list[notification_pb2.StreamMemberEventsResponse]:
    got = [next(stream) for _ in range(count)]
    stream.cancel()
    return got


def operator_edits(server: LoyaltyServer, channel: grpc.Channel, member_id: str, times: int):
    """Each edit changes the member's slots, so each writes one FAVORITES_CHANGED event."""
    skus = server.cache.snapshot.product_list(FAVORITES_LIST).skus  # type: ignore[union-attr]
    stub = member_pb2_grpc.MemberServiceStub(channel)
    for n in range(times):
        request = member_pb2.OperatorSetFavoriteProductsRequest(
            member=common_pb2.MemberIdentity(member_id=member_id),
            offer_id=FAVORITE_PRODUCTS,
            skus=[skus[n % len(skus)], skus[(n + 1) % len(skus)]],
            comment=f"edit {n}",
        )
        stub.OperatorSetFavoriteProducts(request, timeout=10, metadata=auth(Role.OPERATOR))


def test_a_subscriber_that_reconnects_from_its_last_position_misses_nothing(channel, demo_server):
    member = "M000500"
    operator_edits(demo_server, channel, member, 3)
    first = take(subscribe(channel, member_id=member), 2)
    operator_edits(demo_server, channel, member, 2)  # while disconnected
    rest = take(subscribe(channel, member_id=member, after_position=first[-1].position), 3)
    received = first + rest
    positions = [e.position for e in received]
    assert positions == sorted(set(positions))
    assert {e.member_id for e in received} == {member}
    assert {e.type for e in received} == {CHANGED}
    assert all(e.offer_id == FAVORITE_PRODUCTS for e in received)
    payload = json.loads(received[-1].payload_json)
    assert payload["source"] == "OPERATOR" and len(payload["skus"]) == 2
    assert received[0].created_at.seconds > 0


def test_a_subscriber_gets_an_event_that_happens_while_it_listens(channel, demo_server):
    member = "M000501"
    stream = subscribe(channel, member_id=member)
    got: list[notification_pb2.StreamMemberEventsResponse] = []
    listening = threading.Thread(target=lambda: got.append(next(stream)))
    listening.start()
    # the stream is open (earlier tests' are closed): the edit comes while it listens
    until(lambda: demo_server.notifications.open_streams == 1, what="the stream open")
    operator_edits(demo_server, channel, member, 1)
    listening.join(timeout=10)
    stream.cancel()
    assert [e.member_id for e in got] == [member]


def test_a_consumer_resumes_from_its_acknowledged_position_which_never_moves_back(
    channel, demo_server
):
    member = "M000502"
    operator_edits(demo_server, channel, member, 3)
    first, second, third = take(subscribe(channel, member_id=member), 3)
    stub = events(channel)
    ack = notification_pb2.AckMemberEventsRequest(consumer="push-adapter", position=second.position)
    assert (
        stub.AckMemberEvents(ack, timeout=10, metadata=auth(Role.BACK_OFFICE)).acked_position
        == second.position
    )
    older = notification_pb2.AckMemberEventsRequest(
        consumer="push-adapter", position=first.position
    )
    assert (
        stub.AckMemberEvents(older, timeout=10, metadata=auth(Role.BACK_OFFICE)).acked_position
        == second.position
    )
    (resumed,) = take(subscribe(channel, member_id=member, consumer="push-adapter"), 1)
    assert resumed.position == third.position


@pytest.mark.parametrize("role", [Role.REGISTER, Role.OPERATOR])
def test_registers_and_operators_may_not_read_member_events(channel, role):
    with pytest.raises(grpc.RpcError) as caught:
        next(subscribe(channel, role=role))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_bad_position_or_a_reserved_consumer_name_is_invalid(channel):
    for fields in ({"after_position": -1}, {"consumer": "job:mine"}):
        with pytest.raises(grpc.RpcError) as caught:
            next(subscribe(channel, **fields))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stopping_the_server_ends_open_streams_at_once(tmp_path: Path):
    server, port = create_server(demo_settings(tmp_path, grace_period_s=10.0))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = subscribe(channel, member_id="M000001")
            ended = threading.Event()

            def drain() -> None:
                try:
                    for _ in stream:
                        pass
                except grpc.RpcError:
                    pass
                ended.set()

            threading.Thread(target=drain, daemon=True).start()
            until(lambda: server.notifications.open_streams >= 1, what="the stream open")
            began = time.monotonic()
            server.stop()
            took = time.monotonic() - began
    finally:
        server.stop(grace=0.5)
    assert ended.wait(5)
    assert took < 3.0  # not the 10 s grace period


def test_one_app_cannot_move_or_read_another_apps_consumer(channel, demo_server):
    operator_edits(demo_server, channel, "M000501", 1)
    newest = take(subscribe(channel, member_id="M000501"), 1)[-1].position
    stub = events(channel)
    ack = notification_pb2.AckMemberEventsRequest(consumer="crm-sync", position=newest)
    stub.AckMemberEvents(ack, timeout=10, metadata=auth(Role.BACK_OFFICE))
    with pytest.raises(grpc.RpcError) as moved:
        stub.AckMemberEvents(ack, timeout=10, metadata=auth(Role.CUSTOMER_SERVICES))
    assert moved.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as read:
        next(iter(subscribe(channel, Role.CUSTOMER_SERVICES, consumer="crm-sync")))
    assert read.value.code() == grpc.StatusCode.PERMISSION_DENIED
