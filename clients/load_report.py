"""What a load run measured: per-call samples, the summary (throughput, latency percentiles,
errors by status, a timeline and a histogram) as JSON, and a self-contained HTML page with
inline SVG charts (no scripts, no external files) that a person can open in any browser."""

from __future__ import annotations

import html
import math
from array import array
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


@dataclass
class Samples:
    """One entry per call: when it was sent (seconds from the start; the intended send time in
    an open loop), how long it took (seconds), its status code number and its method."""

    offsets: array[float] = field(default_factory=lambda: array("d"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    codes: array[int] = field(default_factory=lambda: array("b"))
    methods: array[int] = field(default_factory=lambda: array("B"))

    def add(self, offset: float, latency: float, code: int, method: int = 0) -> None:
        self.offsets.append(offset)
        self.latencies.append(latency)
        self.codes.append(code)
        self.methods.append(method)

    def extend(self, other: Samples) -> None:
        self.offsets.extend(other.offsets)
        self.latencies.extend(other.latencies)
        self.codes.extend(other.codes)
        self.methods.extend(other.methods)

    def __len__(self) -> int:
        return len(self.latencies)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies_s: Iterable[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)
    out = {name: _ms(percentile(ordered, q)) for name, q in PERCENTILES}
    out["max"] = _ms(ordered[-1]) if ordered else 0.0
    out["mean"] = _ms(sum(ordered) / len(ordered)) if ordered else 0.0
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def bucket_size(duration_s: float) -> float:
    """The smallest of BUCKET_SIZES_S that cuts the run into at most 60 buckets."""
    return next((b for b in BUCKET_SIZES_S if duration_s / b <= 60), BUCKET_SIZES_S[-1])


def timeline(samples: Samples, duration_s: float) -> list[dict[str, float]]:
    """Per bucket of time: calls per second (ok, errors) and the latency of the ok calls."""
    size = bucket_size(duration_s)
    count = max(1, math.ceil(duration_s / size - 1e-9))
    ok: list[list[float]] = [[] for _ in range(count)]
    errors = [0] * count
    for offset, latency, code in zip(
        samples.offsets, samples.latencies, samples.codes, strict=True
    ):
        index = min(max(int(offset / size), 0), count - 1)
        if code == 0:
            ok[index].append(latency)
        else:
            errors[index] += 1
    rows = []
    for index in range(count):
        ordered = sorted(ok[index])
        rows.append(
            {
                "t_s": round(index * size, 3),
                "ok_per_s": round(len(ordered) / size, 2),
                "errors_per_s": round(errors[index] / size, 2),
                "p50_ms": _ms(percentile(ordered, 0.5)),
                "p99_ms": _ms(percentile(ordered, 0.99)),
                "max_ms": _ms(ordered[-1]) if ordered else 0.0,
            }
        )
    return rows


def histogram(latencies_s: Sequence[float], bins: int = HISTOGRAM_BINS) -> list[dict[str, float]]:
    """Counts of latencies in log-spaced bins from the fastest to the slowest call."""
    if not latencies_s:
        return []
    low, high = min(latencies_s), max(latencies_s)
    low = max(low, 1e-6)
    high = max(high, low * 1.01)
    log_low, log_high = math.log10(low), math.log10(high)
    width = (log_high - log_low) / bins
    counts = [0] * bins
    for value in latencies_s:
        index = int((math.log10(max(value, low)) - log_low) / width)
        counts[min(max(index, 0), bins - 1)] += 1
    return [
        {
            "from_ms": _ms(10 ** (log_low + i * width)),
            "to_ms": _ms(10 ** (log_low + (i + 1) * width)),
            "count": counts[i],
        }
        for i in range(bins)
    ]


def summarize(samples: Samples, duration_s: float, **extra: Any) -> dict[str, Any]:
    """The report: throughput, latency percentiles (ok calls), errors by status, per method,
    a timeline and a histogram; `extra` (configuration, times) is put at the top."""
    by_status = Counter(STATUS_NAMES.get(code, str(code)) for code in samples.codes)
    ok_latencies = [lat for lat, c in zip(samples.latencies, samples.codes, strict=True) if c == 0]
    ok = len(ok_latencies)
    methods: dict[str, Any] = {}
    for number, name in enumerate(METHODS):
        mine = [i for i, m in enumerate(samples.methods) if m == number]
        if not mine:
            continue
        good = [samples.latencies[i] for i in mine if samples.codes[i] == 0]
        errors = Counter(STATUS_NAMES[samples.codes[i]] for i in mine if samples.codes[i] != 0)
        methods[name] = {
            "calls": len(mine),
            "ok": len(good),
            "throughput_per_s": round(len(good) / duration_s, 2) if duration_s else 0.0,
            "errors": dict(sorted(errors.items())),
            "latency_ms": latency_summary(good),
        }
    return {
        **extra,
        "duration_s": round(duration_s, 3),
        "calls": len(samples),
        "ok": ok,
        "errors": {name: n for name, n in sorted(by_status.items()) if name != "OK"},
        "throughput_per_s": round(ok / duration_s, 2) if duration_s else 0.0,
        "latency_ms": latency_summary(ok_latencies),
        "methods": methods,
        "timeline": timeline(samples, duration_s),
        "histogram": histogram(ok_latencies),
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
    ) -> None:
        self.title, self.x_label, self.y_label, self.x_log = title, x_label, y_label, x_log
        x0, x1 = (math.log10(v) for v in x_range) if x_log else x_range
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1.0
        self.y_ticks = _ticks_covering(y_max)
        self.y1 = self.y_ticks[-1]
        self.parts: list[str] = []
        self.legend: list[tuple[str, str]] = []

    def px(self, x: float) -> float:
        value = math.log10(x) if self.x_log else x
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return HEIGHT - BOTTOM - y / self.y1 * (HEIGHT - TOP - BOTTOM)

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
    rows = report["timeline"]
    size = bucket_size(report["duration_s"])
    top = max((r["max_ms"] for r in rows), default=0.0)
    chart = _Chart(
        "Latency over time (ok calls)",
        (0.0, report["duration_s"]),
        top,
        "seconds since start",
        "milliseconds",
    )
    mid = [(r["t_s"] + size / 2, r) for r in rows if r["ok_per_s"] > 0]
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
        return "<p>No successful calls: no histogram.</p>"
    top = max(b["count"] for b in bins)
    low, high = bins[0]["from_ms"], bins[-1]["to_ms"]
    chart = _Chart(
        "Latency histogram (ok calls, log scale)",
        (max(low, 1e-3), max(high, low * 1.01, 1e-3)),
        top,
        "milliseconds",
        "calls",
        x_log=True,
    )
    for b in bins:
        if b["count"]:
            tip = f"{b['from_ms']:g}-{b['to_ms']:g} ms: {b['count']} calls"
            chart.bar(max(b["from_ms"], 1e-3), max(b["to_ms"], 1e-3), 0, b["count"], "#7f7fbf", tip)
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
loop) to its answer; percentiles are of successful calls.</p>
<h2>Summary</h2>
{_table(summary)}
<h2>Errors by status</h2>
{_table(errors.items())}
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
