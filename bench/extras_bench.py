"""Calculate with points and a coupon against Calculate without (issue #16's aim: at most 10 %
over plain Calculate).

    python -m bench.extras_bench --out bench/extras_results.json
    python -m bench.extras_bench --rounds 5 --calls 200 --note "machine loaded"

A real server in a process of its own (`python -m service.main`, the demo data, a fresh SQLite
file, loopback, call log and member jobs off, one process), so the client does not share its
interpreter. The demo card's member earns points from `--earning-receipts` confirmed demo
receipts; the tea, its gated offer and the shared-code campaign SUMMER (code SUMMER10) are set
up as the e2e coupon tests set them up (tests/e2e/coupon_support.py). Then one receipt (the
demo lines plus the tea, for that member) is calculated, one Python gRPC client, concurrency 1,
four variants:

- `plain`: no points, no code;
- `points`: points_to_spend;
- `coupon`: the shared code;
- `both`: points_to_spend and the shared code.

The variants take turns in `--rounds` rounds of `--calls` calls each, each round starting one
variant further on (plain, points, coupon, both; points, coupon, both, plain; …), so drift in
the machine's load falls on all of them alike. Figures: median
and p90 per variant over all its calls, each variant's per-round medians, and the ratio of its
median (and p90) to plain's from the same run. With `--runs N` that is done N times, each
with a fresh server process, and the figure is the median of the runs' ratios: one run's ratio
moves by several per cent from run to run on a shared machine. Numbers are only comparable on
the same machine.

    python -m bench.extras_bench --runs 7 --rounds 16 --calls 200 --out bench/extras_results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from clients import register_cli
from clients.client import LoyaltyClient
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.auth import DEV_TOKENS, Role
from tests.e2e.coupon_support import SKU, set_up_campaigns

REPO = Path(__file__).resolve().parents[1]
REGISTER = (("authorization", f"Bearer {DEV_TOKENS[Role.REGISTER]}"),)
SHARED_CODE = "SUMMER10"
VARIANTS = ("plain", "points", "coupon", "both")
DEADLINE_S = 170.0  # each run stays under three minutes; rounds past this are not run


@contextmanager
def server_process(database_url: str) -> Iterator[str]:
    """The target of a server started for the benchmark on a free loopback port; stopped with
    SIGTERM (killed if it does not stop) at the end."""
    command = [
        sys.executable, "-m", "service.main",
        "--address", "127.0.0.1:0",
        "--database-url", database_url,
        "--demo-data", "on",
        "--log-calls", "false",
        "--processes", "1",
        "--jobs-interval-s", "0",  # the member jobs write at start; they would lock SQLite
    ]  # fmt: skip
    env = {**os.environ, "LOYALTY_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("loyalty server listening on"):
            raise RuntimeError(f"the server did not start: {line!r}")
        target = f"127.0.0.1:{int(line.strip().rsplit(':', 1)[1])}"
        with LoyaltyClient(target, DEV_TOKENS[Role.REGISTER]) as client:
            client.wait_until_serving(timeout=60)
        yield target
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def demo_receipt(receipt_id: str) -> receipt_pb2.Receipt:
    """The demo receipt (8 lines, the demo card's member)."""
    receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
    receipt.receipt_id = receipt_id
    return receipt


def earn_points(client: LoyaltyClient, receipts: int) -> None:
    """Confirm `receipts` demo receipts, so the demo card's member holds points to spend."""
    for n in range(receipts):
        receipt = demo_receipt(f"BENCH-EARN-{n}")
        client.confirm(receipt, client.calculate(receipt).confirmation_token)


def measured_receipt() -> receipt_pb2.Receipt:
    """The demo receipt plus one tea at 100.00 (the line the shared code discounts)."""
    receipt = demo_receipt("BENCH-EXTRAS")
    receipt.lines.add(
        line_id=str(len(receipt.lines) + 1), sku=SKU, quantity=1000, price=10000, amount=10000
    )
    return receipt


def requests(points: int) -> dict[str, receipt_pb2.CalculateRequest]:
    plain = measured_receipt()
    coded = measured_receipt()
    coded.coupon_codes.append(SHARED_CODE)
    return {
        "plain": receipt_pb2.CalculateRequest(receipt=plain),
        "points": receipt_pb2.CalculateRequest(receipt=plain, points_to_spend=points),
        "coupon": receipt_pb2.CalculateRequest(receipt=coded),
        "both": receipt_pb2.CalculateRequest(receipt=coded, points_to_spend=points),
    }


def check(answers: dict[str, receipt_pb2.CalculateResponse]) -> dict[str, Any]:
    """What each variant's answer holds, and a refusal to measure if the extras do nothing."""
    seen: dict[str, dict[str, Any]] = {
        name: {
            "total_discount": answer.result.total_discount,
            "total_points_spent": answer.result.total_points_spent,
            "points_available": answer.result.points_available,
            "coupons": [o.code for o in answer.result.coupons],
        }
        for name, answer in answers.items()
    }
    for name in ("points", "both"):
        if seen[name]["total_points_spent"] <= 0:
            raise RuntimeError(f"{name}: no points spent, nothing to measure: {seen[name]}")
    if seen["coupon"]["total_discount"] <= seen["plain"]["total_discount"]:
        raise RuntimeError(f"the shared code unlocked nothing: {seen}")
    return seen


def figures(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "count": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 3),
    }


def measure(target: str, rounds: int, calls: int, points: int, began: float) -> dict[str, Any]:
    chosen = requests(points)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    round_medians: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with grpc.insecure_channel(target) as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        answers = {n: stub.Calculate(r, metadata=REGISTER, timeout=10) for n, r in chosen.items()}
        seen = check(answers)
        for name in VARIANTS:  # warm: connection, caches, the store's pages
            for _ in range(min(calls, 50)):
                stub.Calculate(chosen[name], metadata=REGISTER, timeout=10)
        done = 0
        for turn in range(rounds):
            if time.monotonic() - began > DEADLINE_S:
                break
            # each round starts one variant further on, so none always follows the same one
            for name in VARIANTS[turn % len(VARIANTS) :] + VARIANTS[: turn % len(VARIANTS)]:
                this_round = []
                for _ in range(calls):
                    start = time.perf_counter()
                    stub.Calculate(chosen[name], metadata=REGISTER, timeout=10)
                    this_round.append((time.perf_counter() - start) * 1000)
                samples[name] += this_round
                round_medians[name].append(round(statistics.median(this_round), 3))
            done += 1
    per_variant = {name: figures(samples[name]) for name in VARIANTS}
    base = per_variant["plain"]
    ratios = {
        name: {
            "median": round(per_variant[name]["median_ms"] / base["median_ms"], 3),
            "p90": round(per_variant[name]["p90_ms"] / base["p90_ms"], 3),
        }
        for name in VARIANTS
    }
    return {
        "rounds_done": done,
        "answers": seen,
        "latency": per_variant,
        "ratio_to_plain": ratios,
        "round_medians_ms": round_medians,
    }


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    """One server process, set up and measured (`measure`)."""
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as tmp,
        server_process(f"sqlite:///{Path(tmp) / 'extras.db'}") as target,
    ):
        with LoyaltyClient(target, DEV_TOKENS[Role.BACK_OFFICE], timeout=60) as office:
            set_up_campaigns(office.channel)
        with LoyaltyClient(target, DEV_TOKENS[Role.REGISTER], timeout=10) as register:
            earn_points(register, args.earning_receipts)
        measured = measure(target, args.rounds, args.calls, args.points, began)
    return {"wall_s": round(time.monotonic() - began, 1), **measured}


def over_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each variant's median ratio to plain in every run, and their median: the figure. One
    run's ratio moves by several per cent from one run to the next on a shared machine (the
    same hash seed twice gave 1.06 and 1.12), so the aim is judged on the median of runs."""
    per_run = {
        name: [run["ratio_to_plain"][name]["median"] for run in runs]
        for name in VARIANTS
        if name != "plain"
    }
    median = {name: round(statistics.median(ratios), 3) for name, ratios in per_run.items()}
    return {
        "ratio_to_plain_per_run": per_run,
        "ratio_to_plain_median_of_runs": median,
        "aim_10_percent_holds": {name: ratio <= 1.10 for name, ratio in median.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds of every variant (>= 5)")
    parser.add_argument("--calls", type=int, default=300, help="calls per variant per round")
    parser.add_argument("--points", type=int, default=100, help="points_to_spend")
    parser.add_argument("--earning-receipts", type=int, default=5)
    parser.add_argument(
        "--runs", type=int, default=1, help="fresh server processes, measured one after another"
    )
    parser.add_argument("--note", default="", help="free text kept in the JSON (e.g. the load)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.rounds < 5 or args.calls < 1 or args.runs < 1:
        parser.error("at least 5 rounds of at least 1 call, in at least 1 run")
    began = time.monotonic()
    runs = [one_run(args) for _ in range(args.runs)]
    results = {
        "command": shlex.join(["python", "-m", "bench.extras_bench", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "note": args.note,
        "settings": {
            "rounds": args.rounds,
            "calls_per_round": args.calls,
            "points_to_spend": args.points,
            "earning_receipts": args.earning_receipts,
            "store": "sqlite (fresh file, demo data)",
            "concurrency": 1,
            "runs": args.runs,
        },
        "wall_s": round(time.monotonic() - began, 1),
        **over_runs(runs),
        "runs": runs,
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
