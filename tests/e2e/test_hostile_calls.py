"""What a stranger or a broken client sends cannot take the server down: streams opened and
never read leave unary calls and health checks their workers, streams beyond the budget are
refused at once, and a body protobuf cannot parse is INVALID_ARGUMENT (docs/security.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import (
    common_pb2,
    member_pb2,
    member_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
)
from service.api.auth import Role
from service.api.server import LoyaltyServer, create_server
from tests.e2e.conftest import auth, demo_settings
from tests.e2e.statuses import refusal
from tests.e2e.test_notifications import operator_edits
from tests.waiting import until

WORKERS = 4
DEMO_CARD = "2000000000001"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoyaltyServer]:
    loyalty, _ = create_server(
        demo_settings(tmp_path, max_workers=WORKERS, max_streams=12, max_streams_per_connection=4)
    )
    loyalty.start()
    try:
        yield loyalty
    finally:
        loyalty.stop(grace=0.5)


def open_watch(channel: grpc.Channel) -> grpc.Future:  # type: ignore[type-arg]
    """A health Watch stream, with no credential, that is never read."""
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Watch(health_pb2.HealthCheckRequest(), timeout=30)  # type: ignore[no-any-return]


def wait_until_refused(stream: grpc.Future) -> grpc.StatusCode:  # type: ignore[type-arg]
    with pytest.raises(grpc.RpcError) as refused:
        for _ in stream:  # the first answer is SERVING; a refused stream ends at once
            pass
    return refused.value.code()  # type: ignore[no-any-return]


def own_connection(target: str) -> grpc.Channel:
    """A channel with a TCP connection of its own (channels share them by default)."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def test_idle_streams_leave_unary_calls_and_health_checks_their_workers(
    server: LoyaltyServer,
) -> None:
    target = f"127.0.0.1:{server.port}"
    channels = [own_connection(target), own_connection(target)]
    held = [open_watch(channels[0]) for _ in range(WORKERS)]
    try:
        for stream in held:
            next(iter(stream))  # being served: each holds a thread now
        held += [open_watch(channels[1]) for _ in range(WORKERS)]  # beyond the budget
        with own_connection(target) as fresh:
            health = health_pb2_grpc.HealthStub(fresh)
            checked = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert checked.status == health_pb2.HealthCheckResponse.SERVING
            receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
            receipts = receipt_pb2_grpc.ReceiptServiceStub(fresh)
            for _ in range(3 * WORKERS):  # more calls than workers, one after another
                shown = receipts.Calculate(
                    receipt_pb2.CalculateRequest(receipt=receipt), timeout=5, metadata=auth()
                )
                assert shown.result.total_paid > 0
    finally:
        for stream in held:
            stream.cancel()
        for channel in channels:
            channel.close()


def test_streams_beyond_the_budget_are_resource_exhausted_at_once(server: LoyaltyServer) -> None:
    target = f"127.0.0.1:{server.port}"
    with own_connection(target) as one, own_connection(target) as other:
        first = [open_watch(one) for _ in range(4)]
        try:
            for stream in first:
                next(iter(stream))  # each open stream has its first answer: it is admitted
            beyond_connection = open_watch(one)
            assert wait_until_refused(beyond_connection) == grpc.StatusCode.RESOURCE_EXHAUSTED
            second = [open_watch(other) for _ in range(2)]
            for stream in second:
                next(iter(stream))
            beyond_total = open_watch(other)
            assert wait_until_refused(beyond_total) == grpc.StatusCode.RESOURCE_EXHAUSTED
            first[0].cancel()  # a closed stream gives its place back
            for stream in second:
                stream.cancel()
        finally:
            for stream in first:
                stream.cancel()


def test_strangers_streams_leave_credentialed_event_streams_their_share(
    server: LoyaltyServer,
) -> None:
    target = f"127.0.0.1:{server.port}"
    with own_connection(target) as one, own_connection(target) as other:
        public = [open_watch(one) for _ in range(4)] + [open_watch(other) for _ in range(2)]
        try:
            for stream in public:
                next(iter(stream))
            assert wait_until_refused(open_watch(other)) == grpc.StatusCode.RESOURCE_EXHAUSTED
            operator_edits(server, other, "M000500", 1)  # one event to receive
            events = notification_pb2_grpc.NotificationServiceStub(other).StreamMemberEvents(
                notification_pb2.StreamMemberEventsRequest(member_id="M000500"),
                timeout=10,
                metadata=auth(Role.BACK_OFFICE),
            )
            try:
                assert next(iter(events)).member_id == "M000500"
            finally:
                events.cancel()
        finally:
            for stream in public:
                stream.cancel()


def test_a_caller_without_a_credential_is_unauthenticated_even_when_the_budget_is_full(
    tmp_path: Path,
) -> None:
    """The budget is taken after the credential is checked: strangers never hold a place,
    and learn nothing about how busy the server is."""
    loyalty, port = create_server(demo_settings(tmp_path, max_streams=4))  # 2 credentialed
    loyalty.start()

    def open_events(channel: grpc.Channel, metadata: object) -> grpc.Future:  # type: ignore[type-arg]
        stub = notification_pb2_grpc.NotificationServiceStub(channel)
        return stub.StreamMemberEvents(  # type: ignore[no-any-return]
            notification_pb2.StreamMemberEventsRequest(), timeout=30, metadata=metadata
        )

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            held = [open_events(channel, auth(Role.CUSTOMER_SERVICES)) for _ in range(2)]
            try:
                until(lambda: loyalty.notifications.open_streams == 2, what="the budget taken")
                stranger = open_events(channel, None)
                assert wait_until_refused(stranger) == grpc.StatusCode.UNAUTHENTICATED
                beyond = open_events(channel, auth(Role.CUSTOMER_SERVICES))
                assert wait_until_refused(beyond) == grpc.StatusCode.RESOURCE_EXHAUSTED
            finally:
                for stream in held:
                    stream.cancel()
    finally:
        loyalty.stop(grace=0.5)


UNPARSABLE = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, a length far beyond the body


@pytest.mark.parametrize(
    ("method", "credential"),
    [
        ("/loyalty.v1.ReceiptService/Calculate", True),
        ("/loyalty.v1.ReceiptService/Calculate", False),
        ("/grpc.health.v1.Health/Check", False),
    ],
)
def test_an_undecodable_body_is_invalid_argument_without_a_traceback(
    server: LoyaltyServer, method: str, credential: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out: no serializer
        with pytest.raises(grpc.RpcError) as refused:
            call(UNPARSABLE, timeout=5, metadata=auth() if credential else None)
    code, _reason, field = refusal(refused.value)
    if credential or method.startswith("/grpc.health"):
        assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "request")
    else:
        assert code == grpc.StatusCode.UNAUTHENTICATED  # a stranger learns nothing more
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_undecodable_message_in_a_request_stream_is_invalid_argument(
    server: LoyaltyServer, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.stream_unary("/loyalty.v1.BackOfficeService/ImportCustomerAttributes")
        with pytest.raises(grpc.RpcError) as refused:
            call(iter([UNPARSABLE]), timeout=5, metadata=auth(Role.BACK_OFFICE))
    code, _reason, field = refusal(refused.value)
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "request")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_unknown_cards_tried_at_speed_are_resource_exhausted_with_retry_info(
    tmp_path: Path,
) -> None:
    loyalty, port = create_server(
        demo_settings(tmp_path, card_miss_burst=3, card_miss_rate_per_s=0.001)
    )
    loyalty.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            offers = member_pb2_grpc.MemberServiceStub(channel)

            def look_up(card: str, role: Role = Role.REGISTER) -> grpc.StatusCode:
                request = member_pb2.GetMemberOffersRequest(
                    member=common_pb2.MemberIdentity(card_number=card)
                )
                try:
                    offers.GetMemberOffers(request, timeout=5, metadata=auth(role))
                except grpc.RpcError as refused:
                    return refused.code()  # type: ignore[no-any-return]
                return grpc.StatusCode.OK

            misses = [look_up(f"99900000000{n:02d}") for n in range(3)]
            assert misses == [grpc.StatusCode.NOT_FOUND] * 3
            request = member_pb2.GetMemberOffersRequest(
                member=common_pb2.MemberIdentity(card_number=DEMO_CARD)
            )
            with pytest.raises(grpc.RpcError) as limited:  # a real card too: no oracle
                offers.GetMemberOffers(request, timeout=5, metadata=auth())
            assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            status = rpc_status.from_call(limited.value)
            assert status is not None
            retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
            assert len(retry) == 1
            assert look_up(DEMO_CARD, Role.CUSTOMER_SERVICES) == grpc.StatusCode.OK
    finally:
        loyalty.stop(grace=0.5)
