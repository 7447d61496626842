"""Benchmark of coupon codes: a million unique codes imported over ImportCouponCodes (the
streaming RPC, batches of 10,000, one transaction each), and what a code costs Calculate.

    python -m bench.coupon_bench --out bench/coupon_results.json
    python -m bench.coupon_bench --codes 200000 --calculations 200 --backends sqlite

A one-process server with the demo data per backend (a fresh SQLite file; a throwaway
PostgreSQL cluster started as the tests start theirs, tests/pg.py, fsync off) and the
campaigns of tests/e2e/coupon_support.py. Measured: the import's wall time and codes per
second, a rerun of its first 100,000 codes (all skipped), and the median Calculate latency
of one receipt with no code, the shared code and a unique code (the only one that reads the
store).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from clients.client import LoyaltyClient
from service.api.auth import DEV_TOKENS, Role
from service.api.server import create_server
from service.config import Settings
from tests.e2e.coupon_support import set_up_campaigns, tea_receipt


def rows(count: int) -> Iterator[tuple[str, str]]:
    return ((f"BENCH-{n:09d}", "") for n in range(count))


def timed_import(client: LoyaltyClient, count: int) -> dict[str, Any]:
    began = time.perf_counter()
    *_, last = client.import_coupon_codes("U1", rows(count), timeout=3600)
    seconds = time.perf_counter() - began
    return {
        "codes": count,
        "seconds": round(seconds, 2),
        "codes_per_s": round(count / seconds),
        "added": last.added,
        "skipped": last.skipped,
    }


def median_ms(call: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(samples), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--calculations", type=int, default=500)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'coupons.db'}"
            results["sqlite"] = on_server(url, args.codes, args.calculations)
    if "postgres" in backends:
        from tests.pg import PostgresCluster

        with PostgresCluster() as cluster:
            url = cluster.create_database()
            results["postgres"] = on_server(url, args.codes, args.calculations)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


def on_server(url: str, codes: int, calculations: int) -> dict[str, Any]:
    settings = Settings(address="127.0.0.1:0", database_url=url, demo_data=True, jobs_interval_s=0)
    server, port = create_server(replace(settings, log_calls=False))
    server.start()
    try:
        return run(port, codes, calculations)
    finally:
        server.stop(grace=1.0)


def run(port: int, codes: int, calculations: int) -> dict[str, Any]:
    target = f"127.0.0.1:{port}"
    with LoyaltyClient(target, DEV_TOKENS[Role.BACK_OFFICE], timeout=60) as office:
        set_up_campaigns(office.channel)
        imported = timed_import(office, codes)
        rerun = timed_import(office, min(codes, 100_000))
    with LoyaltyClient(target, DEV_TOKENS[Role.REGISTER], timeout=10) as register:
        plain, shared = tea_receipt("B-1"), tea_receipt("B-2", "SUMMER10")
        unique = tea_receipt("B-3", f"BENCH-{codes - 1:09d}")
        latency = {
            "no code": median_ms(lambda: register.calculate(plain), calculations),
            "shared code": median_ms(lambda: register.calculate(shared), calculations),
            "unique code": median_ms(lambda: register.calculate(unique), calculations),
        }
    return {"import": imported, "rerun": rerun, "calculate_median_ms": latency}


if __name__ == "__main__":
    raise SystemExit(main())
