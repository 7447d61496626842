"""The call interceptor's log line: one per call while the calls logger is on, and nothing of
it prepared (peer, trace id, shortened ids) while the level leaves it off."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from service.api.auth import Principal, Role
from service.api.interceptors import Budgets, CallInterceptor
from service.api.metrics import CallMetrics, call_log

METHOD = "/loyalty.v1.ReceiptService/Calculate"
METADATA = (("authorization", "Bearer any.secret"),)


class Book:
    def authenticate(self, header: str | None) -> Principal:
        return Principal("c", "register", Role.REGISTER)


class Context:
    """The servicer context's parts the interceptor reads; counts the peer lookups."""

    peers = 0

    def time_remaining(self) -> float:
        return 5.0

    def invocation_metadata(self) -> Any:
        return METADATA

    def peer(self) -> str:
        self.peers += 1
        return "ipv4:127.0.0.1:50000"

    def code(self) -> None:
        return None


class Details:
    method = METHOD
    invocation_metadata = METADATA


def call_once(context: Context) -> None:
    interceptor = CallInterceptor(
        Book(),  # type: ignore[arg-type]
        CallMetrics(),
        log_calls=True,
        budgets=Budgets(8, 4, 8),
    )
    handler = grpc.unary_unary_rpc_method_handler(lambda request, _context: request)
    wrapped: Any = interceptor.intercept_service(lambda _details: handler, Details())
    assert wrapped.unary_unary(b"request", context) == b"request"


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    level = call_log.level
    call_log.addHandler(handler)
    try:
        yield records
    finally:
        call_log.removeHandler(handler)
        call_log.setLevel(level)


def test_a_call_makes_one_line_with_its_peer_while_the_calls_logger_is_on(
    lines: list[logging.LogRecord],
) -> None:
    call_log.setLevel(logging.INFO)
    context = Context()
    call_once(context)
    assert [(r.method, r.code, r.peer) for r in lines] == [  # type: ignore[attr-defined]
        (METHOD, "OK", "ipv4:127.0.0.1:50000")
    ]
    assert context.peers == 1


def test_nothing_of_the_line_is_prepared_when_the_level_leaves_it_off(
    lines: list[logging.LogRecord],
) -> None:
    call_log.setLevel(logging.WARNING)
    context = Context()
    call_once(context)
    assert lines == []
    assert context.peers == 0  # the peer is asked for the log line only
