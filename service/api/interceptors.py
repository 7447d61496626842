"""Server interceptors. Each wraps a method's handler once and caches the wrapper, so the
per-call cost is a dictionary lookup and the wrapper's own work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from service.api.errors import status_for

Behavior = Callable[..., Any]


def _already_aborted(context: grpc.ServicerContext) -> bool:
    code = context.code()  # type: ignore[attr-defined]
    return code is not None and code != grpc.StatusCode.OK


def _map_errors_unary(method: str, behavior: Behavior) -> Behavior:
    def wrapper(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request_or_iterator, context)
        except Exception as exc:
            if _already_aborted(context):
                raise
            context.abort_with_status(status_for(exc, method))

    return wrapper


def _map_errors_stream(method: str, behavior: Behavior) -> Behavior:
    def wrapper(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from behavior(request_or_iterator, context)
        except Exception as exc:
            if _already_aborted(context):
                raise
            context.abort_with_status(status_for(exc, method))

    return wrapper


def _rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    wrap_unary: Callable[[str, Behavior], Behavior],
    wrap_stream: Callable[[str, Behavior], Behavior],
) -> grpc.RpcMethodHandler[Any, Any]:
    h: Any = handler
    if h.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary(method, h.unary_unary), h.request_deserializer, h.response_serializer
        )
    if h.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream(method, h.unary_stream), h.request_deserializer, h.response_serializer
        )
    if h.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap_unary(method, h.stream_unary), h.request_deserializer, h.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap_stream(method, h.stream_stream), h.request_deserializer, h.response_serializer
    )


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Turns every exception a handler raises into a status from the one error table."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._lock = threading.Lock()

    def intercept_service(
        self, continuation: Callable[[Any], grpc.RpcMethodHandler[Any, Any] | None], details: Any
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = details.method
        try:
            return self._wrapped[method]
        except KeyError:
            pass
        handler = continuation(details)
        if handler is None:  # unknown method: not cached, so random names cannot grow the dict
            return None
        wrapped = _rewrap(handler, method, _map_errors_unary, _map_errors_stream)
        with self._lock:
            self._wrapped[method] = wrapped
        return wrapped
