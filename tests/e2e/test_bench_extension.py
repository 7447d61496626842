"""The benchmarks' empty and echo services are served by bench/server.py only: a server
started by the service itself has no such methods (and no credential-free prefix for them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc

from bench.services import ECHO_METHOD, EMPTY_METHOD
from loyalty.v1 import receipt_pb2
from service.api.server import LoyaltyServer


def test_a_loyalty_server_has_no_bench_methods(demo_server: LoyaltyServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{demo_server.port}") as channel:
        try:
            channel.unary_unary(EMPTY_METHOD)(b"", timeout=5)
        except grpc.RpcError as refused:
            code = refused.code()
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_the_bench_server_adds_them_without_a_credential(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "bench.server",
        "--address", "127.0.0.1:0", "--development", "--log-level", "WARNING",
        "--database-url", f"sqlite:///{tmp_path / 'bench.db'}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        port = int(line.strip().rsplit(":", 1)[1])
        body = receipt_pb2.CalculateRequest().SerializeToString() + b"\x0a\x00"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert channel.unary_unary(EMPTY_METHOD)(body, timeout=5) == b""
            assert channel.unary_unary(ECHO_METHOD)(body, timeout=5) == body
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
