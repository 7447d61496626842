"""The physical limit beside us: an empty service and an echo service on the very same server
(same processes, pinning, interceptor), so `make bench` can compare Calculate with them in one
run. Only bench/server.py serves them; they carry no data and need no credential."""

from __future__ import annotations

from typing import Any

import grpc

PUBLIC_PREFIX = "/loyalty.bench."
EMPTY_METHOD = "/loyalty.bench.Empty/Call"
ECHO_METHOD = "/loyalty.bench.Echo/Call"


def _empty(_request: bytes, _context: Any) -> bytes:
    return b""


def _echo(request: bytes, _context: Any) -> bytes:
    return request


def bench_handlers() -> tuple[Any, ...]:
    """Identity serializers (None): the handlers see and return raw bytes."""
    return (
        grpc.method_handlers_generic_handler(
            "loyalty.bench.Empty", {"Call": grpc.unary_unary_rpc_method_handler(_empty)}
        ),
        grpc.method_handlers_generic_handler(
            "loyalty.bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(_echo)}
        ),
    )
