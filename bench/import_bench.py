"""Benchmark of customer-attribute imports: rows per second and peak memory, SQLite and
PostgreSQL, for two file sizes (memory must not grow with the file).

    python -m bench.import_bench --out bench/import_results.json
    python -m bench.import_bench --rows 200000 --small 20000 --backends sqlite

Generates CSV files with bench.gen_attributes (mixed kinds: profiles, favorite categories,
personalized offers, ~0.1 % broken rows), then runs `loyalty-import --database-url ...` as a
child process per (backend, size) on a fresh database, measuring the child's wall time and
its peak resident memory (os.wait4 rusage, so the parent's memory does not count).
PostgreSQL is a throwaway cluster started as the tests start theirs (tests/pg.py: fsync off,
so it measures the import, not the disk). Numbers go to --out as JSON and as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.gen_attributes import write as write_attributes
from service.store.db import migrate

BATCH_SIZE = 2000


def run_import(url: str, path: Path, import_id: str) -> dict[str, Any]:
    """One loyalty-import child process: wall seconds, peak RSS (MB) and its summary."""
    command = [
        sys.executable, "-m", "service.imports", "--database-url", url,
        "--import-id", import_id, "--batch-size", str(BATCH_SIZE), "--no-progress", str(path),
    ]  # fmt: skip
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout.read(), child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        raise RuntimeError(f"loyalty-import failed ({child.returncode}): {err or out}")
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "summary": out.strip().splitlines(),
    }


def bench_backend(
    name: str, make_url: Any, files: dict[int, Path], results: list[dict[str, Any]]
) -> None:
    for rows, path in files.items():
        url = make_url()
        migrate(url)
        run = run_import(url, path, f"bench-{rows}")
        run.update(
            backend=name,
            rows=rows,
            file_mb=round(path.stat().st_size / 1e6, 1),
            rows_per_second=round(rows / run["seconds"]),
        )
        results.append(run)
        print(
            f"{name:10} {rows:>9,} rows  {run['seconds']:7.1f} s  "
            f"{run['rows_per_second']:>7,} rows/s  peak RSS {run['peak_rss_mb']:6.1f} MB",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="the large file")
    parser.add_argument("--small", type=int, default=100_000, help="the small file")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--out", type=Path, default=Path("bench/import_results.json"))
    parser.add_argument("--work-dir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="import-bench-", dir=args.work_dir) as directory:
        work = Path(directory)
        files: dict[int, Path] = {}
        for rows in sorted({args.small, args.rows}):
            path = work / f"attributes-{rows}.csv"
            t = time.perf_counter()
            write_attributes(path, rows)
            print(f"generated {rows:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            files[rows] = path
        results: list[dict[str, Any]] = []
        counter = iter(range(1000))
        if "sqlite" in backends:
            bench_backend(
                "sqlite", lambda: f"sqlite:///{work / f'bench{next(counter)}.db'}", files, results
            )
        if "postgres" in backends:
            from tests.pg import PostgresCluster

            with PostgresCluster() as cluster:
                bench_backend("postgres", cluster.create_database, files, results)
    report = {
        "benchmark": "customer-attribute import (loyalty-import --database-url, CSV)",
        "batch_size": BATCH_SIZE,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()),
        },
        "results": results,
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(results))
    print(f"\nwritten to {args.out} ({report['total_seconds']} s in all)")
    return 0


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'backend':10} {'rows':>10} {'file MB':>8} {'seconds':>8} {'CPU s':>7} "
        f"{'rows/s':>8} {'peak RSS MB':>12}"
    ]
    for r in results:
        lines.append(
            f"{r['backend']:10} {r['rows']:>10,} {r['file_mb']:>8} {r['seconds']:>8} "
            f"{r['cpu_seconds']:>7} {r['rows_per_second']:>8,} {r['peak_rss_mb']:>12}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
