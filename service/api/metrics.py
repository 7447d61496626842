"""Prometheus metrics on their own port, and one structured log line per call.

The call metrics carry the names and labels of go-grpc-prometheus and py-grpc-prometheus
(grpc_server_started_total, grpc_server_handled_total, grpc_server_handling_seconds,
grpc_server_msg_received_total, grpc_server_msg_sent_total; labels grpc_type, grpc_service,
grpc_method, grpc_code), so any gRPC dashboard reads them as they are. Each method's labelled
children are bound once, when the interceptor first wraps the method: a call costs a few
counter increments and one histogram observation.

Each process exports its own registry; a multi-process server gives worker i the port
metrics_port + i, and Prometheus scrapes each worker as a target of its own (why, and the
scrape configuration: docs/operations.md, "Metrics").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service.limits import QUOTE, shorten

call_log = logging.getLogger("service.calls")

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
)
METHOD_LABELS = ("grpc_type", "grpc_service", "grpc_method")


def grpc_type(request_streaming: bool, response_streaming: bool) -> str:
    """The grpc_type label: unary, client_stream, server_stream or bidi_stream."""
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


def split_method(method: str) -> tuple[str, str]:
    """'/loyalty.v1.ReceiptService/Calculate' -> ('loyalty.v1.ReceiptService', 'Calculate')."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class CallMetrics:
    """The standard gRPC server metrics, and the service's own beside them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.started = Counter(
            "grpc_server_started",
            "RPCs started on the server",
            METHOD_LABELS,
            registry=self.registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status (grpc_code)",
            (*METHOD_LABELS, "grpc_code"),
            registry=self.registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Seconds from the start of an RPC to its status, as the server sees it",
            METHOD_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.received = Counter(
            "grpc_server_msg_received",
            "Messages received from clients (one per unary request, one per stream message)",
            METHOD_LABELS,
            registry=self.registry,
        )
        self.sent = Counter(
            "grpc_server_msg_sent",
            "Messages sent to clients (one per unary response, one per stream message)",
            METHOD_LABELS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "loyalty_store_errors",
            "Calls that ended UNAVAILABLE because the store could not be reached",
            registry=self.registry,
        )
        self.sync_delay = Histogram(
            "loyalty_sync_delay_seconds",
            "Seconds from a change written to the store to its being applied on this replica",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def method(self, method: str, kind: str) -> MethodMetrics:
        """The pre-bound metrics of one method of type `kind` (grpc_type())."""
        return MethodMetrics(self, (kind, *split_method(method)))

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def serve(self, address: str, port: int) -> None:
        start_http_server(port, addr=address, registry=self.registry)


class MethodMetrics:
    """One method's labelled children, bound once; the handled counter per status code is
    bound the first time that code is seen."""

    __slots__ = ("_handled", "_labels", "_metrics", "handling", "received", "sent", "started")

    def __init__(self, metrics: CallMetrics, labels: tuple[str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        self.started: Any = metrics.started.labels(*labels)
        self.handling: Any = metrics.handling.labels(*labels)
        self.received: Any = metrics.received.labels(*labels)
        self.sent: Any = metrics.sent.labels(*labels)
        self._handled: dict[grpc.StatusCode, Any] = {}

    def handled(self, code: grpc.StatusCode, seconds: float) -> None:
        child = self._handled.get(code)
        if child is None:
            child = self._metrics.handled.labels(*self._labels, code.name)
            self._handled[code] = child
        child.inc()
        self.handling.observe(seconds)
        if code is grpc.StatusCode.UNAVAILABLE:
            self._metrics.store_errors.inc()


class StatsCollector(Collector):
    """Exports counters and gauges kept by the cache and the follower without touching their
    hot paths. `read` gives name -> (kind, help text, value)."""

    def __init__(self, read: Callable[[], dict[str, tuple[str, str, float]]]) -> None:
        self._read = read

    def collect(self):  # type: ignore[no-untyped-def]
        for name, (kind, help_text, value) in self._read().items():
            if kind == "counter":
                yield CounterMetricFamily(name, help_text, value=value)
            else:
                yield GaugeMetricFamily(name, help_text, value=value)


def log_call(
    method: str,
    code: grpc.StatusCode,
    seconds: float,
    caller: str,
    store: str,
    *,
    receipt_id: str = "",
    peer: str = "",
    trace_id: str = "",
) -> None:
    """One log line per call: what, outcome, how long, who (a credential name, never a
    secret), from where, for which store and receipt (receipt calls; empty otherwise), and
    the trace it belongs to. Of the store and receipt ids, which are the caller's, at most a
    short prefix: a long one must not make every line long."""
    call_log.info(
        "%s %s",
        method,
        code.name,
        extra={
            "method": method,
            "code": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "caller": caller,
            "store": shorten(store, QUOTE),
            "receipt_id": shorten(receipt_id, QUOTE),
            "peer": peer,
            "trace_id": trace_id,
        },
    )
