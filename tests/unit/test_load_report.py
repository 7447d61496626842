"""The load report counts every call: failed ones in the percentiles, histograms that add up
across client processes, a log-scale time chart, a progress rate of now, and connections
spread over the server's processes."""

from __future__ import annotations

import io
import math
import re
from random import Random

import grpc

from clients import loadgen
from clients.load_report import (
    DROPPED,
    LatencyHistogram,
    Samples,
    latency_chart,
    summarize,
)

DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_histogram_percentiles_are_within_its_resolution_of_the_exact_ones() -> None:
    rng = Random(7)
    values = [rng.lognormvariate(-6, 1.5) for _ in range(20_000)]
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    for q in (0.5, 0.9, 0.99, 0.999):
        assert abs(histogram.percentile(q) / exact(values, q) - 1) < 0.011
    assert histogram.percentile(1.0) == max(values)


def test_samples_of_several_processes_add_up_to_the_samples_of_one() -> None:
    rng = Random(3)
    codes = (0, 0, 0, DEADLINE)
    calls = [(rng.uniform(0, 10), rng.expovariate(200), rng.choice(codes)) for _ in range(3000)]
    one, parts = Samples(slot_s=1.0), [Samples(slot_s=1.0) for _ in range(3)]
    for number, (offset, latency, code) in enumerate(calls):
        one.add(offset, latency, code)
        parts[number % 3].add(offset, latency, code)
    together = Samples(slot_s=1.0)
    for part in parts:
        together.extend(part)
    assert summarize(together, 10.0) == summarize(one, 10.0)


def test_failed_calls_count_in_the_latency_figures_and_dropped_ones_as_errors() -> None:
    """The overload run that showed p99 1 ms while one call in ten timed out after 2 s."""
    samples = Samples(slot_s=1.0)
    for i in range(90):
        samples.add(i / 10, 0.001, 0)
    for i in range(10):
        samples.add(i / 10, 2.0, DEADLINE)
    samples.add(5.0, 0.0, DROPPED)
    report = summarize(samples, 10.0)
    assert report["calls"] == 101 and report["ok"] == 90
    assert report["errors"] == {"DEADLINE_EXCEEDED": 10, "DROPPED_BY_CLIENT": 1}
    assert report["latency_ms"]["calls"] == 100, "the dropped call was never sent"
    assert report["latency_ms"]["p50"] < 1.1
    assert 1990 < report["latency_ms"]["p99"] <= 2000
    assert report["latency_by_status_ms"]["OK"]["p99"] < 1.1
    assert report["latency_by_status_ms"]["DEADLINE_EXCEEDED"]["calls"] == 10
    assert sum(b["count"] for b in report["histogram"]) == 100
    assert sum(b["by_status"].get("DEADLINE_EXCEEDED", 0) for b in report["histogram"]) == 10
    assert report["timeline"][0]["errors_per_s"] == 10.0


def test_the_time_chart_is_log_scale_so_p50_is_not_squashed_under_the_maximum() -> None:
    samples = Samples(slot_s=1.0)
    for second in range(10):
        for _ in range(99):
            samples.add(second + 0.5, 0.001, 0)
        samples.add(second + 0.5, 2.0, DEADLINE)
    svg = latency_chart(summarize(samples, 10.0))
    bottom, top = 280 - 44, 30  # the plot area of every chart (HEIGHT - BOTTOM, TOP)
    p50_line = re.findall(r'<polyline[^>]*stroke="#1f77b4"[^>]*points="([^"]+)"', svg)[0]
    heights = [(bottom - float(p.split(",")[1])) / (bottom - top) for p in p50_line.split()]
    # On a linear axis up to 2000 ms, 1 ms would sit 0.05 % above the axis.
    assert min(heights) > 0.1


def test_the_progress_rate_is_of_the_last_seconds_not_the_whole_run() -> None:
    config = loadgen.LoadConfig(target="127.0.0.1:1", token="", duration_s=30, concurrency=4)
    stream = io.StringIO()
    progress = loadgen.Progress(config, stream)
    for tenth in range(101):  # 10 s at 1,000 calls a second
        progress.rate(tenth / 10, tenth * 100, final=False)
    for tenth in range(101, 131):  # then 3 s with no answers
        rate = progress.rate(tenth / 10, 10_000, final=False)
    assert rate == 0.0
    assert progress.rate(13.0, 10_000, final=True) == 10_000 / 13.0


def test_by_default_each_client_process_opens_several_connections() -> None:
    args = loadgen.build_parser().parse_args(["--concurrency", "4"])
    assert loadgen.config_from_args(args).channels >= 4
    args = loadgen.build_parser().parse_args(["--concurrency", "4", "--channels", "1"])
    assert loadgen.config_from_args(args).channels == 1
