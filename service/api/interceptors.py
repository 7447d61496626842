"""The call interceptor: authentication, roles, the error table, metrics and the call log,
around every handler.

It wraps each method's handler once and caches the wrapper, so the per-call cost is a dict
lookup plus the wrapper's own work (no new handler objects per call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

import grpc

from service.api.auth import (
    CredentialBook,
    Principal,
    authorize,
    call_store,
    roles_for,
    set_current_principal,
)
from service.api.errors import status_for
from service.api.metrics import CallMetrics, log_call
from service.deadline import set_call_deadline

Behavior = Callable[..., Any]
if TYPE_CHECKING:
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
    exception becomes, and the call's metrics and log line."""

    def __init__(
        self, method: str, book: CredentialBook, metrics: CallMetrics, log_calls: bool
    ) -> None:
        self.method = method
        self.book = book
        self.allowed = roles_for(method)
        self.record = metrics.recorder(method)
        self.log_calls = log_calls

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
        return status_for(exc, self.method)

    def done(self, code: grpc.StatusCode, started: float, caller: str) -> None:
        seconds = perf_counter() - started
        self.record(code, seconds)
        if self.log_calls:
            log_call(self.method, code, seconds, caller, call_store())


def _unary(guard: _Guard, behavior: Behavior) -> Behavior:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        started, code, caller = perf_counter(), grpc.StatusCode.OK, "-"
        try:
            caller = guard.admit(context)
            return behavior(request, context)
        except Exception as exc:
            status = guard.status(exc, context)
            code = status.code
            context.abort_with_status(status)
        finally:
            guard.done(code, started, caller)

    return handle


def _streaming(guard: _Guard, behavior: Behavior) -> Behavior:
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started, code, caller = perf_counter(), grpc.StatusCode.OK, "-"
        try:
            caller = guard.admit(context)
            yield from behavior(request, context)
        except Exception as exc:
            status = guard.status(exc, context)
            code = status.code
            context.abort_with_status(status)
        finally:
            guard.done(code, started, caller)

    return handle


def _rewrap(handler: Handler, guard: _Guard) -> Handler:
    h: Any = handler
    codec = (h.request_deserializer, h.response_serializer)
    if h.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_unary(guard, h.unary_unary), *codec)
    if h.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_streaming(guard, h.unary_stream), *codec)
    if h.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_unary(guard, h.stream_unary), *codec)
    return grpc.stream_stream_rpc_method_handler(_streaming(guard, h.stream_stream), *codec)


class CallInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, book: CredentialBook, metrics: CallMetrics, *, log_calls: bool) -> None:
        self._book = book
        self._metrics = metrics
        self._log_calls = log_calls
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
        wrapped = _rewrap(handler, _Guard(method, self._book, self._metrics, self._log_calls))
        with self._lock:
            self._wrapped[method] = wrapped
        return wrapped
