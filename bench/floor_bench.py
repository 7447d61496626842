"""What Calculate's handler costs without its engine: the floor under issue 19's ratios.

    python -m bench.floor_bench [--rounds 15] [--calls 400] [--out bench/floor_results.json]

`make bench` measures Calculate against services that do the same gRPC work without a
handler (its `*_to_empty_ratio` figures). This bench splits the handler itself, in one
process, on the receipts `make bench` sends (the heavy 20-line one, the typical member's and
the anonymous buyer's), into what the servicer does around the engine and the engine:

- `full`: the servicer's calculate, as a call runs it (checks, member, engine, response,
  token);
- `no_engine`: the same, with the use case answering the result it computed for this very
  receipt beforehand (a lookup): the request's checks, the response and the token remain;
- `no_engine_unsigned`: that, without the token (`sign=False`, as a till session's scans);
- `engine`: the use case's calculate alone.

Variants take turns within each round (the order rotates) and the figures are medians over
rounds, so the machine's drifts fall on all of them alike. From a ratio r that `make bench`
measured with the full handler (bench/results.json), the gRPC work costs r / (1 - r) of the
handler's time, and a handler of time h would give the ratio g / (g + h) with g that cost:
`best_ratio_*` is that bound for `no_engine` (an engine that costs nothing) and for
`no_engine_unsigned`. It assumes the handler's time under h2load keeps its proportion to
these in-process times. Loopback only; bounded by rounds x calls.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import run as bench_run
from bench.scale_data import build
from loyalty.v1 import receipt_pb2
from service.api.auth import Principal, Role, set_current_principal
from service.api.lookup import MemberLookup
from service.api.receipts import ReceiptServicer
from service.api.server import create_server
from service.config import Settings
from service.store import db

VARIANTS = ("full", "no_engine", "no_engine_unsigned", "engine")


def _timed_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


class _Answering:
    """A use case whose calculate answers one result it was given: the engine at no cost."""

    def __init__(self, answer: Any) -> None:
        self._answer = answer

    def calculate(self, *args: object, **kwargs: object) -> Any:
        return self._answer


def _variants(
    servicer: ReceiptServicer, request: receipt_pb2.CalculateRequest
) -> dict[str, Callable[[], object]]:
    """The four ways to run this request (module docstring)."""
    lifecycle = servicer._receipts  # noqa: SLF001 - a bench takes the servicer apart
    now = servicer._clock()  # noqa: SLF001
    _member, receipt, spend, codes = servicer._checked(request, now)  # noqa: SLF001
    real = lifecycle.calculate
    answer = real(receipt, now, spend=spend, codes=codes)
    answering = copy.copy(servicer)  # the same servicer, but its use case only looks up
    answering._receipts = _Answering(answer)  # type: ignore[assignment]  # noqa: SLF001

    return {
        "full": lambda: servicer.calculate(request),
        "no_engine": lambda: answering.calculate(request),
        "no_engine_unsigned": lambda: answering.calculate(request, sign=False),
        "engine": lambda: real(receipt, now, spend=spend, codes=codes),
    }


def measure(
    servicer: ReceiptServicer, request: receipt_pb2.CalculateRequest, rounds: int, calls: int
) -> dict[str, float]:
    variants = _variants(servicer, request)
    for call in variants.values():  # warm every path (the member's memo, the caches)
        _timed_us(call, calls)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for number in range(rounds):
        order = VARIANTS[number % len(VARIANTS) :] + VARIANTS[: number % len(VARIANTS)]
        for name in order:
            times[name].append(_timed_us(variants[name], calls))
    return {name: round(statistics.median(values), 1) for name, values in times.items()}


def best_ratio(measured_ratio: float, full_us: float, handler_us: float) -> float:
    """The ratio a handler of `handler_us` would give, where one of `full_us` gave
    `measured_ratio` (module docstring)."""
    grpc_us = measured_ratio / (1 - measured_ratio) * full_us
    return round(grpc_us / (grpc_us + handler_us), 3)


def _servicer(data: Any) -> tuple[Any, ReceiptServicer, int]:
    settings = Settings(
        address="127.0.0.1:0",
        database_url=f"sqlite:///{data.path}",
        jobs_interval_s=0,
        token_secret="floor-bench-" + "s" * 32,
    )
    server, port = create_server(settings)
    server.start()
    servicer = ReceiptServicer(
        settings,
        server.cache,
        sessions=db.make_session_factory(server.store),
        members=MemberLookup.from_settings(server.cache, settings),
    )
    return server, servicer, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--out", default=str(bench_run.ROOT / "bench" / "floor_results.json"))
    args = parser.parse_args(argv)
    data = build(bench_run.ROOT / "bench" / "var" / "scaled.db", args.members)
    bench_run.ensure_token(data)
    server, servicer, port = _servicer(data)
    try:
        member, anonymous = bench_run.typical_requests(port, data)
        set_current_principal(Principal("floor-bench", "floor-bench", Role.REGISTER))
        receipts = {
            "heavy": bench_run.calculate_request(data),
            "typical_member": member,
            "typical_anonymous": anonymous,
        }
        figures = {
            name: measure(servicer, request, args.rounds, args.calls)
            for name, request in receipts.items()
        }
    finally:
        server.stop(grace=0)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.floor_bench "
        f"--rounds {args.rounds} --calls {args.calls} --members {args.members}",
        "handler_us": figures,
        **_bounds(figures),
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


def _bounds(figures: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The best ratios `make bench`'s kept run (bench/results.json) allows (module docstring);
    the typical one mixes members and anonymous buyers as make bench does (time per call)."""
    kept = json.loads(bench_run.RESULTS.read_text())
    out: dict[str, Any] = {"ratios_from": "bench/results.json of " + kept["date"]}
    heavy = figures["heavy"]
    ratio = kept["calculate_to_empty_ratio"]
    out["heavy_measured_ratio"] = ratio
    for variant in ("no_engine", "no_engine_unsigned"):
        out[f"heavy_best_ratio_{variant}"] = best_ratio(ratio, heavy["full"], heavy[variant])
    share = float(kept["typical_member_share"])

    def mixed(variant: str) -> float:
        member, anonymous = figures["typical_member"], figures["typical_anonymous"]
        return share * member[variant] + (1 - share) * anonymous[variant]

    ratio = kept["typical_calculate_to_empty_ratio"]
    out["typical_measured_ratio"] = ratio
    for variant in ("no_engine", "no_engine_unsigned"):
        out[f"typical_best_ratio_{variant}"] = best_ratio(ratio, mixed("full"), mixed(variant))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
