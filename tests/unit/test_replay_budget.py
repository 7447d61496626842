"""The campaign replay is a stream that reads the store all along: it takes the budget of
store-bound calls (beyond it: UNAVAILABLE STORE_BUSY at once, before any work), not a
stream's, so it cannot crowd out event streams."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from service.api.auth import Principal, roles_for
from service.api.interceptors import Budgets, CallInterceptor
from service.api.metrics import CallMetrics

REPLAY = "/loyalty.v1.CampaignReplayService/Replay"
EVENTS = "/loyalty.v1.NotificationService/StreamMemberEvents"


class Refused(Exception):
    pass


class FakeContext:
    """Just what the guard and the budget read before the call is refused."""

    def __init__(self) -> None:
        self.status: Any = None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def time_remaining(self) -> None:
        return None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", "Bearer a credential the book takes"),)

    def code(self) -> Any:
        return None if self.status is None else self.status.code

    def is_active(self) -> bool:
        return self.status is None

    def abort_with_status(self, status: Any) -> None:
        self.status = status
        raise Refused


class FakeBook:
    """A caller with a role the method allows: the budget is taken after the credential."""

    def __init__(self, method: str) -> None:
        self.role = min(roles_for(method) or (), key=lambda role: role.value)

    def authenticate(self, authorization: str | None) -> Principal:
        return Principal("bench", "a caller", self.role)


class Details:
    def __init__(self, method: str) -> None:
        self.method = method


def first_message(method: str, budgets: Budgets) -> FakeContext:
    def stream(request: Any, context: Any) -> Any:
        yield "never: refused before it runs"

    handler = grpc.unary_stream_rpc_method_handler(stream)
    interceptor = CallInterceptor(
        FakeBook(method),  # type: ignore[arg-type]
        CallMetrics(),
        log_calls=False,
        budgets=budgets,
    )
    wrapped: Any = interceptor.intercept_service(lambda details: handler, Details(method))
    context = FakeContext()
    with pytest.raises(Refused):
        next(wrapped.unary_stream(None, context))
    return context


def test_a_replay_beyond_the_store_budget_is_store_busy_while_streams_have_room() -> None:
    budgets = Budgets(streams=8, streams_per_connection=4, store_calls=1)
    assert budgets.store.enter("another caller")  # the one store-bound thread is taken
    refused = first_message(REPLAY, budgets)
    assert refused.status.code == grpc.StatusCode.UNAVAILABLE
    assert budgets.authenticated.open_streams == 0


def test_an_event_stream_is_not_held_to_the_store_budget() -> None:
    budgets = Budgets(streams=2, streams_per_connection=4, store_calls=1)
    assert budgets.authenticated.enter("another caller")  # the one credentialed stream
    refused = first_message(EVENTS, budgets)
    assert refused.status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert budgets.store.open_streams == 0
