"""Benchmark of the call interceptor's own cost: microseconds a unary call spends in it.

    python -m bench.interceptor_bench [--out FILE]

Wraps a handler that does nothing with the real CallInterceptor (metrics, and the call log
on or off) and calls it with a stand-in servicer context, so that only the interceptor's work
is timed: no network, no protobuf. Compared: the bare handler; the interceptor with tracing
off (call log off, then on: the log's handler formats JSON into a null stream); and with
tracing on (a span per call into an SDK provider that exports nothing). Medians over rounds,
time.perf_counter_ns; numbers are only comparable on the same machine.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.sdk.trace import TracerProvider

from service.api.auth import DEV_TOKENS, CredentialBook, Principal, Role
from service.api.interceptors import Budgets, CallInterceptor
from service.api.metrics import CallMetrics
from service.logs import formatter

METHOD = "/loyalty.v1.ReceiptService/Calculate"
METADATA = (("authorization", f"Bearer {DEV_TOKENS[Role.REGISTER]}"),)


class Book(CredentialBook):
    """Every caller is the development register: no store behind the credential check."""

    def __init__(self) -> None:
        self._principal = Principal(
            credential_id="dev", name="dev-register", role=Role.REGISTER, store_ids=frozenset()
        )

    def authenticate(self, header: str | None) -> Principal:
        return self._principal


class Context:
    """The parts of grpc.ServicerContext the interceptor touches."""

    def time_remaining(self) -> float | None:
        return 5.0

    def invocation_metadata(self) -> Any:
        return METADATA

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def code(self) -> Any:
        return None

    def is_active(self) -> bool:
        return True


class Details:
    method = METHOD
    invocation_metadata = METADATA


def wrapped(log_calls: bool, tracing: bool) -> Callable[[Any, Any], Any]:
    interceptor = CallInterceptor(
        Book(),
        CallMetrics(),
        log_calls=log_calls,
        budgets=Budgets(8, 4, 8),
        tracer=TracerProvider().get_tracer("bench") if tracing else None,
    )
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    rewrapped: Any = interceptor.intercept_service(lambda _details: handler, Details())
    return rewrapped.unary_unary  # type: ignore[no-any-return]


def per_call_us(call: Callable[[Any, Any], Any], calls: int, rounds: int) -> float:
    context, request = Context(), object()
    timings = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call(request, context)
        timings.append((time.perf_counter_ns() - started) / calls / 1000)
    return round(statistics.median(timings), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter("json"))
    calls_log = logging.getLogger("service.calls")
    calls_log.addHandler(handler)
    calls_log.setLevel(logging.INFO)
    calls_log.propagate = False
    variants = {
        "bare handler": lambda request, context: request,
        "interceptor, tracing off, call log off": wrapped(False, False),
        "interceptor, tracing off, call log on": wrapped(True, False),
        "interceptor, tracing on, call log off": wrapped(False, True),
    }
    results = {name: per_call_us(call, args.calls, args.rounds) for name, call in variants.items()}
    for name, us in results.items():
        print(f"{name:<42} {us:8.2f} µs/call")
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
