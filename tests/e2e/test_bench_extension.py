"""The benchmarks' empty, echo and parsed services are served by bench/server.py only: a
server started by the service itself has no such methods (and no credential-free prefix for
them)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from bench.services import ECHO_METHOD, EMPTY_METHOD, RESPONSES_ENV, parsed_method
from loyalty.v1 import receipt_pb2
from service.api.server import LoyaltyServer


def test_a_loyalty_server_has_no_bench_methods(demo_server: LoyaltyServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{demo_server.port}") as channel:
        try:
            channel.unary_unary(EMPTY_METHOD)(b"", timeout=5)
        except grpc.RpcError as refused:
            code = refused.code()
    assert code == grpc.StatusCode.UNIMPLEMENTED


@contextmanager
def bench_server(tmp_path: Path) -> Iterator[int]:
    """bench/server.py in a process of its own, its saved responses in tmp_path; its port."""
    command = [
        sys.executable, "-m", "bench.server",
        "--address", "127.0.0.1:0", "--development", "--log-level", "WARNING",
        "--database-url", f"sqlite:///{tmp_path / 'bench.db'}",
    ]  # fmt: skip
    env = {**os.environ, RESPONSES_ENV: str(tmp_path)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        yield int(line.strip().rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_the_bench_server_adds_them_without_a_credential(tmp_path: Path) -> None:
    with bench_server(tmp_path) as port:
        body = receipt_pb2.CalculateRequest().SerializeToString() + b"\x0a\x00"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert channel.unary_unary(EMPTY_METHOD)(body, timeout=5) == b""
            assert channel.unary_unary(ECHO_METHOD)(body, timeout=5) == body


def test_the_parsed_service_parses_a_calculate_request_and_sends_the_saved_response(
    tmp_path: Path,
) -> None:
    """Calculate's gRPC work without its handler: a request that is no CalculateRequest is
    refused as Calculate refuses it, a good one answered with the response saved for it."""
    saved = receipt_pb2.CalculateResponse(confirmation_token=b"t" * 100)
    saved.result.lines.add(line_id="1", sku="P0000001", amount=1000, paid=900)
    (tmp_path / "Member.bin").write_bytes(saved.SerializeToString())
    request = receipt_pb2.CalculateRequest()
    request.receipt.lines.add(line_id="1", sku="P0000001", quantity=1000)
    with bench_server(tmp_path) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(parsed_method("Member"))
        answer = call(request.SerializeToString(), timeout=5)
        assert receipt_pb2.CalculateResponse.FromString(answer) == saved
        try:
            call(b"\xff\xff\xff", timeout=5)
        except grpc.RpcError as refused:
            code = refused.code()
        assert code == grpc.StatusCode.INVALID_ARGUMENT
