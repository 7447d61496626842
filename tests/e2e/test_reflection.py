"""Reflection speaks v1 and v1alpha: buf curl (an independent client, Go) lists and describes
the services with either protocol, and a v1 client can describe the v1 service itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from service.api.reflection import V1_FILE, V1_SERVICE_NAME
from service.api.server import SERVICE_NAMES, LoyaltyServer

BUF = Path(__file__).resolve().parents[2] / "tools" / "node_modules" / ".bin" / "buf"
EVERY_SERVICE = {
    *SERVICE_NAMES,
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


def buf_curl(server: LoyaltyServer, *args: str) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        pytest.fail("buf is not installed: run `make tools`")
    command = [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args]
    command.append(f"http://127.0.0.1:{server.port}")
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
def test_buf_curl_lists_every_service_over_each_reflection_protocol(
    demo_server: LoyaltyServer, protocol: str
) -> None:
    listed = buf_curl(demo_server, "--reflect-protocol", protocol, "--list-services")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == EVERY_SERVICE


def test_buf_curl_describes_every_method_over_v1(demo_server: LoyaltyServer) -> None:
    """Listing methods needs each service's file: the loyalty protos and v1's own."""
    listed = buf_curl(demo_server, "--reflect-protocol", "grpc-v1", "--list-methods")
    assert listed.returncode == 0, listed.stderr
    methods = set(listed.stdout.split())
    assert "loyalty.v1.ReceiptService/Calculate" in methods
    assert f"{V1_SERVICE_NAME}/ServerReflectionInfo" in methods


def test_a_v1_client_gets_the_v1_reflection_file(channel: grpc.Channel) -> None:
    # v1's messages are v1alpha's under another package: the same bytes on the wire.
    info = channel.stream_stream(
        f"/{V1_SERVICE_NAME}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol=V1_SERVICE_NAME)
    (answer,) = list(info(iter([ask]), timeout=10))
    assert answer.WhichOneof("message_response") == "file_descriptor_response"
    file = descriptor_pb2.FileDescriptorProto.FromString(
        answer.file_descriptor_response.file_descriptor_proto[0]
    )
    assert (file.name, file.package) == (V1_FILE, "grpc.reflection.v1")
    (service,) = file.service
    (method,) = service.method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
