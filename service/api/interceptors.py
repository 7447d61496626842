"""The call interceptor: authentication, roles, the error table, metrics, the call log and
(when tracing is on) the call's span, around every handler; and two guards that keep the
server answering whatever it is sent.

It wraps each method's handler once and caches the wrapper, so the per-call cost is a dict
lookup plus the wrapper's own work (no new handler objects per call).

- A body protobuf cannot parse is INVALID_ARGUMENT on `request`: grpc's own answer would be
  INTERNAL with a traceback in the log for every bad body, even from a stranger.
- Streams hold a worker thread for as long as they are open, and a stranger can open health
  Watch streams without a credential and never read them. Streams therefore have a budget of
  their own (`Budget`: in total and per connection), and the server's pool has that
  many threads beyond `max_workers`, so unary calls always keep `max_workers` threads. A
  stream beyond the budget is RESOURCE_EXHAUSTED at once. Streams that need no credential
  have half of the budget. A budget is taken after the credential is checked, so a caller
  without a valid one is UNAUTHENTICATED and never holds a place.
- Unary calls that wait on the store (everything but Calculate and health) have a budget of
  their own too: when the store hangs, they pile up there, and beyond it are UNAVAILABLE at
  once, while Calculate keeps every one of `max_workers` threads (`Budgets`).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

import grpc

from service.api.auth import (
    CredentialBook,
    Principal,
    authorize,
    call_receipt,
    call_store,
    roles_for,
    set_current_principal,
)
from service.api.errors import status_for, store_busy_status, streams_exhausted_status
from service.api.metrics import CallMetrics, MethodMetrics, call_log, grpc_type, log_call
from service.api.tracing import end_call_span, incoming_trace_id, traced
from service.deadline import set_call_deadline
from service.errors import InvalidArgument

Behavior = Callable[..., Any]
if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == "authorization":
            return str(value)
    return None


def _already_aborted(context: grpc.ServicerContext) -> bool:
    code = context.code()  # type: ignore[attr-defined]
    return code is not None and code != grpc.StatusCode.OK


class _Guard:
    """What runs around every call of one method: who is calling and may they, the status an
    exception becomes, and the call's metrics, log line and span status."""

    def __init__(
        self,
        method: str,
        book: CredentialBook,
        metrics: MethodMetrics,
        log_calls: bool,
        public: bool = False,
        tracer: Tracer | None = None,
        request_streaming: bool = False,
    ) -> None:
        self.method = method
        self.book = book
        self.allowed = None if public else roles_for(method)
        self.metrics = metrics
        self.log_calls = log_calls
        self.tracer = tracer
        self.unary_request = not request_streaming

    def begin(self) -> float:
        """A call starts; a unary request is received with it (even one refused at once)."""
        self.metrics.started.inc()
        if self.unary_request:
            self.metrics.received.inc()
        return perf_counter()

    def admit(self, context: grpc.ServicerContext) -> str:
        """Authenticate and authorize; returns the caller's name for the log."""
        set_call_deadline(context.time_remaining())
        principal: Principal | None = None
        if self.allowed is not None:
            principal = self.book.authenticate(_authorization(context))
            authorize(principal, self.method, self.allowed)
        set_current_principal(principal)
        return principal.name if principal is not None else "-"

    def status(self, exc: Exception, context: grpc.ServicerContext) -> grpc.Status:
        if _already_aborted(context):
            raise exc
        if isinstance(exc, _OverBudget):
            return exc.refusal
        return status_for(exc, self.method)

    def done(
        self, code: grpc.StatusCode, started: float, caller: str, context: grpc.ServicerContext
    ) -> None:
        seconds = perf_counter() - started
        self.metrics.handled(code, seconds)
        trace_id = end_call_span(code) if self.tracer is not None else ""
        if self.log_calls and call_log.isEnabledFor(logging.INFO):  # else nothing to prepare
            log_call(
                self.method,
                code,
                seconds,
                caller,
                call_store(),
                receipt_id=call_receipt(),
                peer=context.peer(),
                trace_id=trace_id or incoming_trace_id(context),
            )


class Budget:
    """How many calls of one kind may hold a thread at once: in all, and on one connection
    (peer)."""

    def __init__(self, total: int, per_connection: int) -> None:
        self.total = total
        self.per_connection = per_connection
        self._open: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    def enter(self, peer: str) -> bool:
        with self._lock:
            on_peer = self._open.get(peer, 0)
            if self._count >= self.total or on_peer >= self.per_connection:
                return False
            self._count += 1
            self._open[peer] = on_peer + 1
            return True

    def leave(self, peer: str) -> None:
        with self._lock:
            self._count -= 1
            left = self._open[peer] - 1
            if left:
                self._open[peer] = left
            else:
                del self._open[peer]

    @property
    def open_streams(self) -> int:
        return self._count


# The loyalty methods that answer from memory; every other one may wait on the store.
FROM_MEMORY = frozenset({"/loyalty.v1.ReceiptService/Calculate"})
# Streams that read the store all along (a campaign replay reads a month of receipts): they
# take the budget of store-bound calls, not a stream's, so they cannot crowd out the event
# streams and a hung store holds no more threads than it would anyway.
STORE_BOUND_STREAMS = frozenset({"/loyalty.v1.CampaignReplayService/Replay"})


def waits_on_store(method: str) -> bool:
    return method.startswith("/loyalty.v1.") and method not in FROM_MEMORY


class Budgets:
    """The thread budgets beyond `max_workers`, which only calls from memory use:

    - unary calls that wait on the store: `store_calls`, so a hung store cannot take
      Calculate's threads;
    - streams anyone may open (health Watch, reflection): half of `streams`, so strangers
      cannot crowd out the event streams and imports of credentialed callers;
    - credentialed streams: the other half."""

    def __init__(self, streams: int, streams_per_connection: int, store_calls: int) -> None:
        public = max(1, streams // 2)
        self.public = Budget(public, streams_per_connection)
        self.authenticated = Budget(max(1, streams - public), streams_per_connection)
        self.store = Budget(store_calls, store_calls)
        self.threads = self.public.total + self.authenticated.total + self.store.total

    def refusal(self, budget: Budget) -> grpc.Status:
        if budget is self.store:
            return store_busy_status(budget.total)
        return streams_exhausted_status(budget.total, budget.per_connection)


class _Undecodable:
    """What the wrapped deserializer returns for a body protobuf cannot parse."""


UNDECODABLE = _Undecodable()


def tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(body: bytes) -> Any:
        try:
            return deserialize(body)
        except Exception:  # DecodeError, and whatever a malformed body makes protobuf raise
            return UNDECODABLE

    return parse


def checked(request: Any) -> Any:
    if request is UNDECODABLE:
        raise InvalidArgument("request", "the body is not a valid message of this method")
    return request


def _check(guard: _Guard, streamed_request: bool) -> Callable[[Any], Any]:
    """The request checked, or each message of a request stream counted and checked."""
    received = guard.metrics.received

    def checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
        for request in requests:
            received.inc()
            yield checked(request)

    return checked_stream if streamed_request else checked


def _counted(responses: Iterator[Any], sent: Any) -> Iterator[Any]:
    """The handler's responses, each counted; closing this closes the handler's generator
    at once (a cancelled stream releases what the handler holds)."""
    try:
        for response in responses:
            sent.inc()
            yield response
    finally:
        close = getattr(responses, "close", None)
        if close is not None:
            close()


def _unary(guard: _Guard, behavior: Behavior, streamed_request: bool) -> Behavior:
    check, sent = _check(guard, streamed_request), guard.metrics.sent

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        started, code, caller = guard.begin(), grpc.StatusCode.OK, "-"
        try:
            caller = guard.admit(context)
            response = behavior(check(request), context)
            sent.inc()
            return response
        except Exception as exc:
            status = guard.status(exc, context)
            code = status.code
            context.abort_with_status(status)
        finally:
            guard.done(code, started, caller, context)

    return handle


def _streaming(guard: _Guard, behavior: Behavior, streamed_request: bool) -> Behavior:
    check, sent = _check(guard, streamed_request), guard.metrics.sent

    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started, code, caller = guard.begin(), grpc.StatusCode.OK, "-"
        try:
            caller = guard.admit(context)
            yield from _counted(behavior(check(request), context), sent)
        except Exception as exc:
            status = guard.status(exc, context)
            code = status.code
            context.abort_with_status(status)
        finally:
            if code is grpc.StatusCode.OK and not context.is_active():
                code = grpc.StatusCode.CANCELLED  # the client went away before the end
            guard.done(code, started, caller, context)

    return handle


class _OverBudget(Exception):
    """A call beyond its budget: answered with the budget's refusal."""

    def __init__(self, refusal: grpc.Status) -> None:
        super().__init__(refusal.details)
        self.refusal = refusal


def _budgeted(
    budget: Budget, refusal: grpc.Status, behavior: Behavior, streaming: bool
) -> Behavior:
    """The method's behaviour within the budget, or refused before it runs. It runs inside
    the guard, after the credential: a caller without one is UNAUTHENTICATED and never
    takes a place another caller could use."""

    def enter(context: grpc.ServicerContext) -> str:
        peer = context.peer()
        if not budget.enter(peer):
            raise _OverBudget(refusal)
        return peer

    def admitted_call(request: Any, context: grpc.ServicerContext) -> Any:
        peer = enter(context)
        try:
            return behavior(request, context)
        finally:
            budget.leave(peer)

    def admitted_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        peer = enter(context)
        try:
            yield from behavior(request, context)
        finally:
            budget.leave(peer)

    return admitted_stream if streaming else admitted_call


def _handle(guard: _Guard, h: Any, budgets: Budgets) -> Behavior:
    """The method's behaviour, within its budget if it has one, with the guard around it."""
    behavior = h.unary_unary or h.unary_stream or h.stream_unary or h.stream_stream
    budget = _budget_of(guard, h, budgets)
    if budget is not None:
        behavior = _budgeted(budget, budgets.refusal(budget), behavior, h.response_streaming)
    if h.response_streaming:
        return _streaming(guard, behavior, h.request_streaming)
    return _unary(guard, behavior, h.request_streaming)


def _budget_of(guard: _Guard, h: Any, budgets: Budgets) -> Budget | None:
    if guard.method in STORE_BOUND_STREAMS:
        return budgets.store
    if h.request_streaming or h.response_streaming:
        return budgets.public if guard.allowed is None else budgets.authenticated
    return budgets.store if waits_on_store(guard.method) else None


def _rewrap(handler: Handler, guard: _Guard, budgets: Budgets) -> Handler:
    h: Any = handler
    handle = _handle(guard, h, budgets)
    if guard.tracer is not None:  # outermost: every refusal is traced too
        handle = traced(guard.tracer, guard.method, handle, inspect.isgeneratorfunction(handle))
    codec = (tolerant(h.request_deserializer), h.response_serializer)
    if h.unary_unary:
        return grpc.unary_unary_rpc_method_handler(handle, *codec)
    if h.unary_stream:
        return grpc.unary_stream_rpc_method_handler(handle, *codec)
    if h.stream_unary:
        return grpc.stream_unary_rpc_method_handler(handle, *codec)
    return grpc.stream_stream_rpc_method_handler(handle, *codec)


class CallInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self,
        book: CredentialBook,
        metrics: CallMetrics,
        *,
        log_calls: bool,
        budgets: Budgets,
        public_prefixes: tuple[str, ...] = (),
        tracer: Tracer | None = None,
    ) -> None:
        self._book = book
        self._metrics = metrics
        self._log_calls = log_calls
        self._budgets = budgets
        self._tracer = tracer  # None: tracing off, and no call pays for it
        self._public_prefixes = public_prefixes  # an extension's methods without credential
        self._wrapped: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def intercept_service(
        self, continuation: Callable[[Any], Handler | None], details: Any
    ) -> Handler | None:
        method = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = continuation(details)
        if handler is None:  # unknown method: not cached, so random names cannot grow the dict
            return None
        public = bool(self._public_prefixes) and method.startswith(self._public_prefixes)
        h: Any = handler
        metrics = self._metrics.method(method, grpc_type(h.request_streaming, h.response_streaming))
        guard = _Guard(
            method,
            self._book,
            metrics,
            self._log_calls,
            public,
            self._tracer,
            request_streaming=h.request_streaming,
        )
        wrapped = _rewrap(handler, guard, self._budgets)
        with self._lock:
            self._wrapped[method] = wrapped
        return wrapped
