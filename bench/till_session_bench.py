"""Till sessions: the latency of one scan, and Calculate's latency with 1,000 sessions open.

    python -m bench.till_session_bench --out bench/till_session_results.json

A real server in a process of its own (the demo data, SQLite, loopback; call log off), so
the benchmark's clients do not share its interpreter. Phases:

- `scan`: registers one after another, each a session of `--lines` scans (the demo
  receipt's products, the card given at the start); the time from writing a scan to reading
  its answer, through the client library (clients/client.py TillSession). Beside it, the
  same receipts the way a till without sessions works: one Calculate of the whole receipt so
  far per scan.
- `calculate`: unary Calculate of the 8-line demo receipt, one client, back to back: with no
  session open; with 1,000 sessions open and idle (each opened with one line, held by a
  second process); with the 1,000 sessions scanning `--scan-rate` scans per second in all.

Figures: median and p99 in milliseconds. Numbers are only comparable on the same machine;
the JSON keeps its description.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from clients import register_cli
from clients.client import LoyaltyClient
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc, till_session_pb2
from loyalty.v1 import till_session_pb2_grpc as session_grpc
from service.api.auth import DEV_TOKENS, Role

TOKEN = DEV_TOKENS[Role.REGISTER]
AUTH = (("authorization", f"Bearer {TOKEN}"),)
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server_process() -> Iterator[tuple[str, str]]:
    """(unary target, session target) of a server started for the benchmark."""
    unary, sessions = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "service.main", "--address", unary]
        command += ["--till-session-address", sessions, "--demo-data", "--log-calls", "false"]
        command += ["--database-url", f"sqlite:///{tmp}/bench.db", "--processes", "1"]
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            with LoyaltyClient(unary, TOKEN) as client:
                client.wait_until_serving(timeout=60)
            yield unary, sessions
        finally:
            process.terminate()
            process.wait(timeout=30)


def demo_receipt(receipt_id: str) -> receipt_pb2.Receipt:
    receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
    receipt.receipt_id = receipt_id
    return receipt


def scanned_lines(count: int) -> list[receipt_pb2.ReceiptLine]:
    """`count` lines cycling over the demo receipt's products."""
    products = list(demo_receipt("X").lines)
    lines = []
    for n in range(count):
        line = receipt_pb2.ReceiptLine()
        line.CopyFrom(products[n % len(products)])
        line.line_id = str(n + 1)
        lines.append(line)
    return lines


def figures(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "count": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
    }


def header(receipt: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    opened = receipt_pb2.Receipt()
    opened.CopyFrom(receipt)
    opened.ClearField("lines")
    return opened


def scan_phase(unary: str, sessions: str, registers: int, lines: int) -> dict[str, Any]:
    over_session, over_calculate = [], []
    to_scan = scanned_lines(lines)
    with LoyaltyClient(unary, TOKEN, session_target=sessions) as client:
        for n in range(registers):
            session = client.till_session(header(demo_receipt(f"BENCH-S{n}")))
            for line in to_scan:
                began = time.perf_counter()
                session.scan(line)
                over_session.append(time.perf_counter() - began)
            session.close()
            so_far = header(demo_receipt(f"BENCH-C{n}"))
            for line in to_scan:
                so_far.lines.append(line)
                began = time.perf_counter()
                client.calculate(so_far)
                over_calculate.append(time.perf_counter() - began)
    return {"session_scan": figures(over_session), "calculate_per_scan": figures(over_calculate)}


def calculate_latency(unary: str, calls: int) -> dict[str, float]:
    request = receipt_pb2.CalculateRequest(receipt=demo_receipt("BENCH-U"))
    seconds = []
    with grpc.insecure_channel(unary) as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        stub.Calculate(request, metadata=AUTH, timeout=10)  # connected, warm
        for _ in range(calls):
            began = time.perf_counter()
            stub.Calculate(request, metadata=AUTH, timeout=10)
            seconds.append(time.perf_counter() - began)
    return figures(seconds)


# --- the process holding the sessions -------------------------------------------------------


def hold_sessions(
    target: str, count: int, rate: float, ready: Any, stop: Any, achieved: Any
) -> None:
    """Open `count` sessions (10 connections), tell `ready`, then until `stop`: scan about
    `rate` scans per second in all, on sessions drawn at random (0: stay idle); the rate
    reached goes to `achieved`."""
    asyncio.run(_hold(target, count, rate, ready, stop, achieved))


async def _hold(target: str, count: int, rate: float, ready: Any, stop: Any, achieved: Any) -> None:
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(10)]
    first = demo_receipt("HOLD")
    del first.lines[1:]
    calls = []
    for n in range(count):
        call: Any = session_grpc.TillSessionServiceStub(channels[n % 10]).Session(metadata=AUTH)
        first.receipt_id = f"HOLD-{n}"
        await call.write(till_session_pb2.SessionRequest(start={"receipt": first}))
        await call.read()
        calls.append(call)
    ready.set()
    began = next_at = time.perf_counter()
    lines = scanned_lines(8)
    scanned = [1] * count
    rng = random.Random(7)
    while not stop.is_set():
        if rate <= 0:
            await asyncio.sleep(0.1)
            continue
        n = rng.randrange(count)
        line = till_session_pb2.SessionScan(line=lines[scanned[n] % 8])
        scanned[n] += 1
        line.line.line_id = str(scanned[n])
        await calls[n].write(till_session_pb2.SessionRequest(scan=line))
        await calls[n].read()
        next_at += 1 / rate  # on a schedule: a slow answer does not lower the rate
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    achieved.value = (sum(scanned) - count) / (time.perf_counter() - began)
    for call in calls:
        await call.done_writing()
    await asyncio.gather(*(ch.close() for ch in channels))


@contextmanager
def sessions_held(target: str, count: int, rate: float) -> Iterator[Any]:
    """While open: `count` sessions held by another process; yields the scan rate it
    reached (its value is set once the block is left)."""
    context = multiprocessing.get_context("spawn")
    ready, stop, achieved = context.Event(), context.Event(), context.Value("d", 0.0)
    holder = context.Process(
        target=hold_sessions, args=(target, count, rate, ready, stop, achieved)
    )
    holder.start()
    try:
        if not ready.wait(timeout=300):
            raise RuntimeError("the sessions did not open within 300 s")
        yield achieved
    finally:
        stop.set()
        holder.join(timeout=60)


def calculate_phase(unary: str, sessions: str, count: int, calls: int, rate: float) -> Any:
    results = {"no_sessions": calculate_latency(unary, calls)}
    with sessions_held(sessions, count, 0):
        results[f"{count}_idle_sessions"] = calculate_latency(unary, calls)
    with sessions_held(sessions, count, rate) as achieved:
        scanning = calculate_latency(unary, calls)
    scanning["scans_per_s"] = round(achieved.value, 1)
    results[f"{count}_sessions_scanning"] = scanning
    results["no_sessions_after"] = calculate_latency(unary, calls)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--registers", type=int, default=50, help="sessions in the scan phase")
    parser.add_argument("--lines", type=int, default=20, help="scans per session")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions held open")
    parser.add_argument("--calls", type=int, default=1000, help="Calculates per measurement")
    parser.add_argument("--scan-rate", type=float, default=200.0, help="scans/s while held")
    args = parser.parse_args(argv)
    with server_process() as (unary, sessions):
        scan = scan_phase(unary, sessions, args.registers, args.lines)
        calculate = calculate_phase(unary, sessions, args.sessions, args.calls, args.scan_rate)
    results = {
        "command": "python -m bench.till_session_bench " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scan": scan,
        "calculate": calculate,
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
