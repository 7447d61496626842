"""Fuzzing every RPC with generated protobuf messages: whatever comes in, the answer is a
clear status (never UNKNOWN, never INTERNAL) and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.v1 import backoffice_pb2, member_pb2, notification_pb2, receipt_pb2, replay_pb2
from service import limits
from service.api.auth import Role
from service.api.server import LoyaltyServer
from tests.e2e.conftest import auth

SERVICES = {
    receipt_pb2.DESCRIPTOR.services_by_name["ReceiptService"]: Role.REGISTER,
    member_pb2.DESCRIPTOR.services_by_name["MemberService"]: Role.CUSTOMER_SERVICES,
    backoffice_pb2.DESCRIPTOR.services_by_name["BackOfficeService"]: Role.BACK_OFFICE,
    notification_pb2.DESCRIPTOR.services_by_name["NotificationService"]: Role.CUSTOMER_SERVICES,
    replay_pb2.DESCRIPTOR.services_by_name["CampaignReplayService"]: Role.BACK_OFFICE,
}
OPERATOR_METHODS = {"OperatorSetFavoriteProducts", "ListFavoriteProductsAudit"}
# RESOURCE_EXHAUSTED: what a client sees for a status whose trailer is too long.
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.RESOURCE_EXHAUSTED}

# Values that break naive code: empty, huge, negative, unicode, the demo's real ids.
TEXT = st.one_of(
    st.sampled_from(["", "S001", "M000001", "2000000000001", "MILK-001", "FAV-PREDEFINED"]),
    st.text(max_size=12),
    st.text(min_size=300, max_size=400),
    st.just("9" * 20_000),  # far above every limit: refused, not stored, logged or echoed
)
INTS = st.one_of(
    st.integers(-3, 3000), st.sampled_from([-(2**63), 2**63 - 1, 10**12, 999, 1000, 753])
)

# Timestamps in and out of google.protobuf.Timestamp's range (0001-01-01 to 9999-12-31).
FIRST, LAST = -62_135_596_800, 253_402_300_799
SECONDS = st.one_of(
    st.integers(0, 4_000_000_000),
    st.sampled_from([FIRST - 1, FIRST, FIRST + 86_400, LAST - 86_400, LAST, LAST + 1, 2**62]),
    st.integers(-(2**63), 2**63 - 1),
)
NANOS = st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1))

SCALARS = {
    FieldDescriptor.TYPE_STRING: TEXT,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT64: INTS,
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1) | st.integers(-3, 40),
    FieldDescriptor.TYPE_ENUM: st.integers(0, 7),
}


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of this type with a random subset of fields set, nested up to 3 levels."""
    cls = GetMessageClass(descriptor)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for field in descriptor.fields:
            if not draw(st.booleans()):
                continue
            values = _values(field, depth)
            if values is None:
                continue
            if field.is_repeated:
                items = draw(st.lists(values, max_size=3))
                target = getattr(message, field.name)
                for item in items:
                    if field.type == FieldDescriptor.TYPE_MESSAGE:
                        target.add().CopyFrom(item)
                    else:
                        target.append(item)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(draw(values))
            else:
                setattr(message, field.name, draw(values))
        return message

    return build()


def _values(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return st.builds(
                lambda s, n: GetMessageClass(field.message_type)(seconds=s, nanos=n),
                SECONDS,
                NANOS,
            )
        return None if depth >= 3 else messages(field.message_type, depth + 1)
    return SCALARS.get(field.type)


def all_methods() -> Iterator[tuple[str, Any, Role]]:
    for service, role in SERVICES.items():
        for method in service.methods:
            method_role = Role.OPERATOR if method.name in OPERATOR_METHODS else role
            yield f"/{service.full_name}/{method.name}", method, method_role


def call(channel: grpc.Channel, path: str, method: Any, request: Message, role: Role) -> None:
    request_class = GetMessageClass(method.input_type)
    response_class = GetMessageClass(method.output_type)
    metadata = auth(role)
    if method.client_streaming:
        multi = channel.stream_unary(
            path, request_class.SerializeToString, response_class.FromString
        )
        multi(iter([request, request]), timeout=5, metadata=metadata)
    elif method.server_streaming:
        stream = channel.unary_stream(
            path, request_class.SerializeToString, response_class.FromString
        )
        for _ in stream(request, timeout=0.5, metadata=metadata):
            pass
    else:
        unary = channel.unary_unary(
            path, request_class.SerializeToString, response_class.FromString
        )
        unary(request, timeout=5, metadata=metadata)


METHODS = list(all_methods())


@pytest.mark.parametrize(("path", "method", "role"), METHODS, ids=[m[0] for m in METHODS])
def test_no_generated_request_gets_unknown_or_internal(
    demo_server: LoyaltyServer, channel: grpc.Channel, path: str, method: Any, role: Role
) -> None:
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(request=messages(method.input_type))
    def one_request(request: Message) -> None:
        try:
            call(channel, path, method, request, role)
        except grpc.RpcError as err:
            assert err.code() not in NEVER, f"{path}: {err.code()} {err.details()}"
            assert len(err.details() or "") <= limits.MESSAGE, path

    one_request()
