"""Prometheus metrics on their own port, and one structured log line per call.

Each process exports its own registry; a multi-process server gives worker i the port
metrics_port + i, which is how Prometheus scrapes per-process targets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

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


class CallMetrics:
    """Counters and latency histograms per method and status."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.calls = Counter(
            "loyalty_calls",
            "Calls by method and status",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loyalty_call_seconds",
            "Call latency by method and status",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "loyalty_store_errors",
            "Calls that failed because the store was unavailable",
            registry=self.registry,
        )
        self.sync_delay = Histogram(
            "loyalty_sync_delay_seconds",
            "Change written -> applied on this replica",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def recorder(self, method: str) -> Callable[[grpc.StatusCode, float], None]:
        """A cheap per-method recorder: the labelled children are looked up once per code."""
        children: dict[grpc.StatusCode, tuple[object, object]] = {}
        calls, latency = self.calls, self.latency

        def record(code: grpc.StatusCode, seconds: float) -> None:
            pair = children.get(code)
            if pair is None:
                pair = (calls.labels(method, code.name), latency.labels(method, code.name))
                children[code] = pair
            pair[0].inc()  # type: ignore[attr-defined]
            pair[1].observe(seconds)  # type: ignore[attr-defined]
            if code is grpc.StatusCode.UNAVAILABLE:
                self.store_errors.inc()

        return record

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def serve(self, address: str, port: int) -> None:
        start_http_server(port, addr=address, registry=self.registry)


class StatsCollector(Collector):
    """Exports counters kept by the cache and the follower without touching their hot paths."""

    def __init__(self, read: Callable[[], dict[str, tuple[str, float]]]) -> None:
        self._read = read

    def collect(self):  # type: ignore[no-untyped-def]
        for name, (kind, value) in self._read().items():
            if kind == "counter":
                yield CounterMetricFamily(name, name.replace("_", " "), value=value)
            else:
                yield GaugeMetricFamily(name, name.replace("_", " "), value=value)


def log_call(method: str, code: grpc.StatusCode, seconds: float, caller: str, store: str) -> None:
    """One JSON line per call: what, outcome, how long, who (a credential name, never a
    secret) and for which store (receipt calls; empty otherwise), at most a short prefix of
    it: the store id is the caller's, and a long one must not make every line long."""
    record = {
        "method": method,
        "code": code.name,
        "ms": round(seconds * 1000, 3),
        "caller": caller,
        "store": shorten(store, QUOTE),
    }
    call_log.info(json.dumps(record, separators=(",", ":")))
