"""What a load run measured: per-call samples, the summary (throughput, latency percentiles,
errors by status, a timeline and a histogram) as JSON, and a self-contained HTML page with
inline SVG charts (no scripts, no external files) that a person can open in any browser."""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

METHODS = ("Calculate", "Confirm")
DROPPED = -1  # open loop: the call was not sent, too many already in flight
STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
STATUS_NAMES[DROPPED] = "DROPPED_BY_CLIENT"
STATUS_CODES = {name: number for number, name in STATUS_NAMES.items()}
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))
BUCKET_SIZES_S = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)
HISTOGRAM_BINS = 40


SUB_BUCKETS = 64  # buckets per doubling: a recorded latency is off by under 1.1 %
LOWEST_S = 1e-6  # bucket 0 holds everything up to a microsecond


def bucket_of(seconds: float) -> int:
    """Bucket i > 0 holds (LOWEST_S x 2^((i-1)/SUB_BUCKETS), LOWEST_S x 2^(i/SUB_BUCKETS)]."""
    if seconds <= LOWEST_S:
        return 0
    return math.ceil(math.log2(seconds / LOWEST_S) * SUB_BUCKETS - 1e-9)


def bucket_top(index: int) -> float:
    return LOWEST_S * 2 ** (index / SUB_BUCKETS)


@dataclass
class LatencyHistogram:
    """Latencies in fixed log-spaced buckets (the same in every process, so histograms of
    several load processes add up exactly) with their count, sum and maximum."""

    counts: Counter[int] = field(default_factory=Counter)
    total: int = 0
    sum_s: float = 0.0
    max_s: float = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bucket_of(seconds)] += 1
        self.total += 1
        self.sum_s += seconds
        self.max_s = max(self.max_s, seconds)

    def merge(self, other: LatencyHistogram) -> None:
        self.counts.update(other.counts)
        self.total += other.total
        self.sum_s += other.sum_s
        self.max_s = max(self.max_s, other.max_s)

    def percentile(self, q: float) -> float:
        """Nearest rank: the top of the bucket holding it (never above the maximum seen)."""
        if not self.total:
            return 0.0
        rank, seen = max(1, math.ceil(q * self.total)), 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(bucket_top(index), self.max_s)
        return self.max_s

    def summary(self) -> dict[str, float]:
        out = {name: _ms(self.percentile(q)) for name, q in PERCENTILES}
        out["max"] = _ms(self.max_s)
        out["mean"] = _ms(self.sum_s / self.total) if self.total else 0.0
        out["calls"] = self.total
        return out


def merged(histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
    out = LatencyHistogram()
    for histogram in histograms:
        out.merge(histogram)
    return out


@dataclass
class Slot:
    """One bucket of time: the latency of every call sent in it, and how many failed."""

    latencies: LatencyHistogram = field(default_factory=LatencyHistogram)
    ok: int = 0
    errors: int = 0


@dataclass
class Samples:
    """What a load process measured, kept as histograms so that it stays small however long
    the run and adds up across processes: per (method, status) the latencies of the calls,
    and per time slot (`slot_s` wide, from the run's start) the latency of every call sent in
    it. A call counts from when it was sent (in an open loop, when it was due)."""

    slot_s: float = 1.0
    by_call: dict[tuple[int, int], LatencyHistogram] = field(default_factory=dict)
    slots: dict[int, Slot] = field(default_factory=dict)
    last_end_s: float = 0.0

    def add(self, offset: float, latency: float, code: int, method: int = 0) -> None:
        histogram = self.by_call.setdefault((method, code), LatencyHistogram())
        slot = self.slots.setdefault(max(int(offset / self.slot_s), 0), Slot())
        if code == 0:
            slot.ok += 1
        else:
            slot.errors += 1
        if code == DROPPED:  # never sent: a count, no latency
            histogram.total += 1
            return
        histogram.record(latency)
        slot.latencies.record(latency)
        self.last_end_s = max(self.last_end_s, offset + latency)

    def extend(self, other: Samples) -> None:
        for key, histogram in other.by_call.items():
            self.by_call.setdefault(key, LatencyHistogram()).merge(histogram)
        for index, theirs in other.slots.items():
            mine = self.slots.setdefault(index, Slot())
            mine.latencies.merge(theirs.latencies)
            mine.ok += theirs.ok
            mine.errors += theirs.errors
        self.last_end_s = max(self.last_end_s, other.last_end_s)

    def __len__(self) -> int:
        return sum(h.total for h in self.by_call.values())

    @property
    def errors(self) -> int:
        return sum(h.total for (_, code), h in self.by_call.items() if code != 0)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def bucket_size(duration_s: float) -> float:
    """The smallest of BUCKET_SIZES_S that cuts the run into at most 60 buckets."""
    return next((b for b in BUCKET_SIZES_S if duration_s / b <= 60), BUCKET_SIZES_S[-1])


def timeline(samples: Samples, duration_s: float) -> list[dict[str, float]]:
    """Per slot of time: calls per second (ok, failed) and the latency of every call sent."""
    size = samples.slot_s
    count = max(1, math.ceil(duration_s / size - 1e-9))
    rows = []
    last = count - 1  # calls due at the very end count in the last slot
    for index in range(count):
        mine = [s for i, s in samples.slots.items() if min(i, last) == index]
        slot = Slot(merged(s.latencies for s in mine), sum(s.ok for s in mine))
        slot.errors = sum(s.errors for s in mine)
        rows.append(
            {
                "t_s": round(index * size, 3),
                "ok_per_s": round(slot.ok / size, 2),
                "errors_per_s": round(slot.errors / size, 2),
                "p50_ms": _ms(slot.latencies.percentile(0.5)),
                "p99_ms": _ms(slot.latencies.percentile(0.99)),
                "max_ms": _ms(slot.latencies.max_s),
            }
        )
    return rows


def histogram(
    by_status: Mapping[str, LatencyHistogram], bins: int = HISTOGRAM_BINS
) -> list[dict[str, Any]]:
    """Counts by status in `bins` log-spaced bins from the fastest to the slowest call."""
    indices = [i for h in by_status.values() for i in h.counts]
    if not indices:
        return []
    low, high = bucket_top(min(indices) - 1), bucket_top(max(indices))
    log_low, log_high = math.log10(low), math.log10(max(high, low * 1.01))
    width = (log_high - log_low) / bins
    counts: list[Counter[str]] = [Counter() for _ in range(bins)]
    for status, histogram_of_status in by_status.items():
        for index, n in histogram_of_status.counts.items():
            middle = math.log10(bucket_top(index)) - math.log10(2) / SUB_BUCKETS / 2
            place = int((middle - log_low) / width)
            counts[min(max(place, 0), bins - 1)][status] += n
    return [
        {
            "from_ms": _ms(10 ** (log_low + i * width)),
            "to_ms": _ms(10 ** (log_low + (i + 1) * width)),
            "count": sum(counts[i].values()),
            "by_status": dict(sorted(counts[i].items())),
        }
        for i in range(bins)
    ]


def _by_status(samples: Samples, method: int | None = None) -> dict[str, LatencyHistogram]:
    """Latencies of the calls that were sent, by status name (of one method, or all)."""
    out: dict[str, LatencyHistogram] = {}
    for (number, code), histogram_of_call in sorted(samples.by_call.items()):
        if code == DROPPED or (method is not None and number != method):
            continue
        out.setdefault(STATUS_NAMES.get(code, str(code)), LatencyHistogram()).merge(
            histogram_of_call
        )
    return out


def _latency(by_status: Mapping[str, LatencyHistogram]) -> dict[str, Any]:
    return {
        "latency_ms": merged(by_status.values()).summary(),
        "latency_by_status_ms": {name: h.summary() for name, h in sorted(by_status.items())},
    }


def summarize(samples: Samples, duration_s: float, **extra: Any) -> dict[str, Any]:
    """The report: throughput, latency percentiles of every call sent whatever its status
    (and by status), errors by status, per method, a timeline and a histogram; `extra`
    (configuration, times) is put at the top. Calls the client dropped are counted among the
    errors; having never been sent, they have no latency."""
    calls_by_status: Counter[str] = Counter()
    for (_, code), histogram_of_call in samples.by_call.items():
        calls_by_status[STATUS_NAMES.get(code, str(code))] += histogram_of_call.total
    ok = calls_by_status["OK"]
    methods: dict[str, Any] = {}
    for number, name in enumerate(METHODS):
        mine = {code: h for (m, code), h in samples.by_call.items() if m == number}
        if not mine:
            continue
        good = mine[0].total if 0 in mine else 0
        errors = {STATUS_NAMES[c]: h.total for c, h in sorted(mine.items()) if c != 0}
        methods[name] = {
            "calls": sum(h.total for h in mine.values()),
            "ok": good,
            "throughput_per_s": round(good / duration_s, 2) if duration_s else 0.0,
            "errors": dict(sorted(errors.items())),
            **_latency(_by_status(samples, number)),
        }
    by_status = _by_status(samples)
    return {
        **extra,
        "duration_s": round(duration_s, 3),
        "calls": len(samples),
        "ok": ok,
        "errors": {name: n for name, n in sorted(calls_by_status.items()) if name != "OK"},
        "throughput_per_s": round(ok / duration_s, 2) if duration_s else 0.0,
        **_latency(by_status),
        "methods": methods,
        "timeline": timeline(samples, duration_s),
        "histogram": histogram(by_status),
    }


# --- HTML ----------------------------------------------------------------------------------------

WIDTH, HEIGHT = 820, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 30, 44
COLORS = {"p50": "#1f77b4", "p99": "#ff7f0e", "max": "#9a9a9a", "ok": "#2ca02c", "err": "#d62728"}


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks, value = [], math.ceil(low / step) * step
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _ticks_covering(high: float) -> list[float]:
    """Ticks from 0 whose last one is at or above `high`, so nothing is drawn off the chart."""
    ticks = _nice_ticks(0.0, high if high > 0 else 1.0)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    while ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.4g}"
    return f"{value:.3g}"


class _Chart:
    """An SVG plot area: maps data to pixels, draws axes, gridlines, legend and marks."""

    def __init__(
        self,
        title: str,
        x_range: tuple[float, float],
        y_max: float,
        x_label: str,
        y_label: str,
        *,
        x_log: bool = False,
        y_min: float = 0.0,
    ) -> None:
        """A log-scale y axis when `y_min` > 0 (from a power of ten below it)."""
        self.title, self.x_label, self.y_label, self.x_log = title, x_label, y_label, x_log
        x0, x1 = (math.log10(v) for v in x_range) if x_log else x_range
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1.0
        self.y_log = y_min > 0
        if self.y_log:
            low = math.floor(math.log10(y_min / 2))  # the lowest line clear of the axis
            high = max(math.ceil(math.log10(max(y_max, y_min))), low + 1)
            ticks = [m * 10.0**p for p in range(low, high + 1) for m in (1, 2, 5)]
            self.y_ticks = [t for t in ticks if math.log10(t) <= high + 1e-9]
            self.y0, self.y1 = float(low), float(high)
        else:
            self.y0 = 0.0
            self.y_ticks = _ticks_covering(y_max)
            self.y1 = self.y_ticks[-1]
        self.parts: list[str] = []
        self.legend: list[tuple[str, str]] = []

    def px(self, x: float) -> float:
        value = math.log10(x) if self.x_log else x
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        if self.y_log:
            share = (math.log10(max(y, 10.0**self.y0)) - self.y0) / (self.y1 - self.y0)
        else:
            share = y / self.y1
        return HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)

    def line(self, name: str, color: str, points: Sequence[tuple[float, float]], **kw: str) -> None:
        if not points:
            return
        path = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in points)
        dash = f' stroke-dasharray="{kw["dash"]}"' if "dash" in kw else ""
        self.parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{path}"/>'
        )
        self.legend.append((name, color))

    def bar(self, x0: float, x1: float, y0: float, y1: float, color: str, tip: str) -> None:
        left, right = self.px(x0), self.px(x1)
        top, bottom = self.py(y1), self.py(y0)
        self.parts.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(right - left - 1, 1):.1f}" '
            f'height="{max(bottom - top, 0):.1f}" fill="{color}"><title>{html.escape(tip)}'
            "</title></rect>"
        )

    def vline(self, x: float, name: str, color: str) -> None:
        left = self.px(x)
        self.parts.append(
            f'<line x1="{left:.1f}" x2="{left:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
            f'stroke="{color}" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        self.legend.append((name, color))

    def _x_ticks(self) -> list[float]:
        if not self.x_log:
            return _nice_ticks(self.x0, self.x1, 8)
        ticks = []
        for power in range(math.floor(self.x0), math.ceil(self.x1) + 1):
            for m in (1, 2, 5):
                value = m * 10.0**power
                if self.x0 <= math.log10(value) <= self.x1:
                    ticks.append(value)
        return ticks

    def svg(self) -> str:
        axis = []
        for y in self.y_ticks:
            py = self.py(y)
            axis.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" '
                'stroke="#e5e5e5"/>'
                f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_label(y)}</text>'
            )
        for x in self._x_ticks():
            px = self.px(x)
            axis.append(
                f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{HEIGHT - BOTTOM}" '
                f'y2="{HEIGHT - BOTTOM + 4}" stroke="#444"/>'
                f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 17}" text-anchor="middle">'
                f"{_label(x)}</text>"
            )
        first = WIDTH - RIGHT - 90 * len(self.legend)
        legend = "".join(
            f'<rect x="{first + 90 * i}" y="8" width="12" height="12" fill="{color}"/>'
            f'<text x="{first + 90 * i + 16}" y="18">{html.escape(name)}</text>'
            for i, (name, color) in enumerate(self.legend)
        )
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(self.title)}" '
            'font-family="sans-serif" font-size="11">'
            f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">'
            f"{html.escape(self.title)}</text>"
            + "".join(axis)
            + f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#444"/>'
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" '
            f'y2="{HEIGHT - BOTTOM}" stroke="#444"/>'
            + "".join(self.parts)
            + legend
            + f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
            f"{html.escape(self.x_label)}</text>"
            f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
            f'text-anchor="middle">{html.escape(self.y_label)}</text></svg>'
        )


def latency_chart(report: Mapping[str, Any]) -> str:
    rows = [r for r in report["timeline"] if r["max_ms"] > 0]
    size = bucket_size(report["duration_s"])
    top = max((r["max_ms"] for r in rows), default=1.0)
    bottom = min((r["p50_ms"] for r in rows if r["p50_ms"] > 0), default=0.1)
    chart = _Chart(
        "Latency over time (every call sent, log scale)",
        (0.0, report["duration_s"]),
        top,
        "seconds since start",
        "milliseconds",
        y_min=max(bottom, 1e-3),  # log scale: p50 is not squashed flat under the maximum
    )
    mid = [(r["t_s"] + size / 2, r) for r in rows]
    chart.line("max", COLORS["max"], [(t, r["max_ms"]) for t, r in mid], dash="3 3")
    chart.line("p99", COLORS["p99"], [(t, r["p99_ms"]) for t, r in mid])
    chart.line("p50", COLORS["p50"], [(t, r["p50_ms"]) for t, r in mid])
    return chart.svg()


def throughput_chart(report: Mapping[str, Any]) -> str:
    rows = report["timeline"]
    size = bucket_size(report["duration_s"])
    top = max((r["ok_per_s"] + r["errors_per_s"] for r in rows), default=0.0)
    chart = _Chart(
        "Throughput over time",
        (0.0, report["duration_s"]),
        top,
        "seconds since start",
        "calls per second",
    )
    for r in rows:
        t, ok, err = r["t_s"], r["ok_per_s"], r["errors_per_s"]
        end = min(t + size, report["duration_s"])
        chart.bar(t, end, 0, ok, COLORS["ok"], f"{t:g}-{end:g} s: {ok:g} ok/s")
        if err:
            chart.bar(t, end, ok, ok + err, COLORS["err"], f"{t:g}-{end:g} s: {err:g} errors/s")
    chart.legend += [("ok", COLORS["ok"]), ("errors", COLORS["err"])]
    return chart.svg()


def histogram_chart(report: Mapping[str, Any]) -> str:
    bins = report["histogram"]
    if not bins:
        return "<p>No call was sent: no histogram.</p>"
    top = max(b["count"] for b in bins)
    low, high = bins[0]["from_ms"], bins[-1]["to_ms"]
    chart = _Chart(
        "Latency histogram (every call sent, log scale; failed calls in red)",
        (max(low, 1e-3), max(high, low * 1.01, 1e-3)),
        top,
        "milliseconds",
        "calls",
        x_log=True,
    )
    for b in bins:
        ok = b["by_status"].get("OK", 0)
        left, right = max(b["from_ms"], 1e-3), max(b["to_ms"], 1e-3)
        if ok:
            chart.bar(left, right, 0, ok, "#7f7fbf", f"{b['from_ms']:g}-{b['to_ms']:g} ms: {ok} ok")
        if b["count"] > ok:
            failed = ", ".join(f"{n} {k}" for k, n in b["by_status"].items() if k != "OK")
            tip = f"{b['from_ms']:g}-{b['to_ms']:g} ms: {failed}"
            chart.bar(left, right, ok, b["count"], COLORS["err"], tip)
    latency = report["latency_ms"]
    chart.vline(max(latency["p50"], 1e-3), "p50", COLORS["p50"])
    chart.vline(max(latency["p99"], 1e-3), "p99", COLORS["p99"])
    return chart.svg()


def _table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one HTML page: summary, per-method and error tables, three SVG charts."""
    latency = report["latency_ms"]
    summary = [
        ("throughput", f"{report['throughput_per_s']:,.1f} ok calls/s"),
        ("calls", f"{report['calls']:,} ({report['ok']:,} ok)"),
        ("duration", f"{report['duration_s']:.1f} s"),
        *((f"latency {name}", f"{latency[name]:.2f} ms") for name, _ in PERCENTILES),
        ("latency max", f"{latency['max']:.2f} ms"),
        ("latency mean", f"{latency['mean']:.2f} ms"),
    ]
    errors = report["errors"] or {"none": 0}
    method_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m['calls']:,}</td><td>{m['ok']:,}</td>"
        f"<td>{m['throughput_per_s']:,.1f}</td>"
        + "".join(f"<td>{m['latency_ms'][p]:.2f}</td>" for p, _ in PERCENTILES)
        + f"<td>{m['latency_ms']['max']:.2f}</td></tr>"
        for name, m in report["methods"].items()
    )
    heads = "".join(f"<th>{p} ms</th>" for p, _ in PERCENTILES)
    status_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m['calls']:,}</td>"
        + "".join(f"<td>{m[p]:.2f}</td>" for p, _ in PERCENTILES)
        + f"<td>{m['max']:.2f}</td></tr>"
        for name, m in report["latency_by_status_ms"].items()
    )
    config = report.get("config", {})
    title = f"Load test of {report.get('target', 'the loyalty service')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 880px; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 10px; text-align: left; font-size: 14px; }}
th {{ background: #f5f5f5; }}
svg {{ display: block; margin: 12px 0 24px; border: 1px solid #eee; }}
.muted {{ color: #777; font-size: 13px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">Started {html.escape(str(report.get("started_at", "")))};
{html.escape(str(report.get("mode", "")))}; {report.get("processes", "?")} client processes.
Latency is measured from the moment a call was due to be sent (open loop) or sent (closed
loop) to its answer or its failure; the percentiles count every call that was sent, whatever
its status (by status below). Calls the client dropped were never sent: errors, no latency.</p>
<h2>Summary</h2>
{_table(summary)}
<h2>Errors by status</h2>
{_table(errors.items())}
<h2>Latency by status</h2>
<table><tr><th>status</th><th>calls</th>{heads}<th>max ms</th></tr>
{status_rows}</table>
<h2>By method</h2>
<table><tr><th>method</th><th>calls</th><th>ok</th><th>ok/s</th>{heads}<th>max ms</th></tr>
{method_rows}</table>
{latency_chart(report)}
{throughput_chart(report)}
{histogram_chart(report)}
<h2>Configuration</h2>
{_table(config.items())}
</body></html>
"""
