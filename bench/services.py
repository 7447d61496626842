"""The physical limit beside us: an empty service, an echo service and a "parsed" service on
the very same server (same processes, pinning, interceptor), so `make bench` can compare
Calculate with them in one run. Only bench/server.py serves them; they need no credential.

- Empty and echo see and return raw bytes (identity serializers): the bare cost of a call.
- Parsed is Calculate's gRPC work without its handler: the request is parsed as a
  CalculateRequest, and a CalculateResponse is serialized and sent. That response is a real
  Calculate's, which bench/run.py saves as `<name>.bin` in the directory named by
  LOYALTY_BENCH_RESPONSES before it drives `/loyalty.bench.Parsed/<name>`; it is read once.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import grpc

from loyalty.v1 import receipt_pb2

PUBLIC_PREFIX = "/loyalty.bench."
EMPTY_METHOD = "/loyalty.bench.Empty/Call"
ECHO_METHOD = "/loyalty.bench.Echo/Call"
PARSED_SERVICE = "loyalty.bench.Parsed"
PARSED_NAMES = ("Member", "Anonymous")  # the typical receipt, with and without a member
RESPONSES_ENV = "LOYALTY_BENCH_RESPONSES"


def parsed_method(name: str) -> str:
    return f"/{PARSED_SERVICE}/{name}"


def _empty(_request: bytes, _context: Any) -> bytes:
    return b""


def _echo(request: bytes, _context: Any) -> bytes:
    return request


@functools.cache
def _saved_response(name: str) -> receipt_pb2.CalculateResponse:
    folder = Path(os.environ.get(RESPONSES_ENV, "."))
    return receipt_pb2.CalculateResponse.FromString((folder / f"{name}.bin").read_bytes())


def _parsed(name: str) -> Any:
    def answer(_request: receipt_pb2.CalculateRequest, _context: Any) -> Any:
        return _saved_response(name)

    return grpc.unary_unary_rpc_method_handler(
        answer,
        request_deserializer=receipt_pb2.CalculateRequest.FromString,
        response_serializer=receipt_pb2.CalculateResponse.SerializeToString,
    )


def bench_handlers() -> tuple[Any, ...]:
    return (
        grpc.method_handlers_generic_handler(
            "loyalty.bench.Empty", {"Call": grpc.unary_unary_rpc_method_handler(_empty)}
        ),
        grpc.method_handlers_generic_handler(
            "loyalty.bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(_echo)}
        ),
        grpc.method_handlers_generic_handler(
            PARSED_SERVICE, {name: _parsed(name) for name in PARSED_NAMES}
        ),
    )
