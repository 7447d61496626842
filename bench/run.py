"""`make bench`: the service against the physical limit beside it, in one run.

    python -m bench.run [--rounds 5] [--seconds 5] [--members 100000]

1. Scaled data (bench/scale_data.py): 10,000 products, 1,000 offers, 100,000 members.
2. One server as `make run` starts it: one process per core sharing the port (SO_REUSEPORT),
   each pinned to a core, with the bench's empty and echo services beside the real ones.
3. Server-bound throughput with h2load (C, so the client does not eat the server's CPU):
   64 calls in flight over 32 connections, in alternating rounds empty, calculate, echo, ...
   The echo call carries Calculate's request bytes. gRPC statuses are counted on the server
   (its metrics), since h2load only sees HTTP status 200.
4. Client's-eye latency with a Python client: concurrency 1 (p50, p99) and 64 (p50, p99).
5. The engine alone (bench/engine_bench.py).

Writes bench/results.json and docs/benchmarks.md. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench.scale_data import ScaledData, build
from bench.services import ECHO_METHOD, EMPTY_METHOD, RESPONSES_ENV, parsed_method
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.store import db
from service.store.credentials_repo import create_credential, credential_exists

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
REPORT = ROOT / "docs" / "benchmarks.md"
TOKEN = "bench-register.bench-secret"
CALCULATE = "/loyalty.v1.ReceiptService/Calculate"
ECHO, EMPTY = ECHO_METHOD, EMPTY_METHOD


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports_in_a_row(count: int, avoid: int) -> int:
    """A base port such that base .. base + count - 1 are all free (one per worker)."""
    for _ in range(100):
        base = free_port()
        ports = range(base, base + count)
        if avoid in ports or base + count > 65535:
            continue
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free run of ports")


def ensure_token(data: ScaledData) -> None:
    engine = db.make_engine(f"sqlite:///{data.path}")
    try:
        with db.make_session_factory(engine).begin() as session:
            credential_id, _, secret = TOKEN.partition(".")
            if not credential_exists(session, credential_id):
                create_credential(
                    session,
                    name=credential_id,
                    role="REGISTER",
                    all_stores=True,
                    credential_id=credential_id,
                    secret=secret,
                )
    finally:
        engine.dispose()


def calculate_request(data: ScaledData, lines: int = 20) -> receipt_pb2.CalculateRequest:
    request = receipt_pb2.CalculateRequest()
    receipt = request.receipt
    receipt.receipt_id, receipt.store_id, receipt.channel = "BENCH-1", "S001", 1
    receipt.member.card_number = data.showcase_card
    skus = list(data.showcase_skus[: lines // 2]) + list(data.other_skus)
    for number, sku in enumerate(skus[:lines], start=1):
        price = 1000 + 137 * number
        receipt.lines.add(line_id=str(number), sku=sku, quantity=1000, price=price, amount=price)
    return request


# A typical receipt (issue 19): a grocery basket of 12 lines, one benefit on each for a member
# (the program's storewide member points; anonymous buyers get the all-buyers offers that
# happen to cover them), and 70 % of receipts from identified members, the rest anonymous.
TYPICAL_LINES = 12
TYPICAL_MEMBER_SHARE = 0.7
TYPICAL_CARD_INDEX = 777  # an ordinary member: no favorites or personal offers of the showcase


def typical_requests(
    port: int, data: ScaledData
) -> tuple[receipt_pb2.CalculateRequest, receipt_pb2.CalculateRequest]:
    """(member's, anonymous) typical receipts: the first SKUs, in catalogue order, on which an
    ordinary member gets exactly one benefit, asked of the server itself."""
    from bench.scale_data import card_of

    skus = [f"P{n:07d}" for n in range(1, 201)]  # bench/engine_bench.py names them so
    probe = _receipt_of(card_of(TYPICAL_CARD_INDEX), skus)
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = receipt_pb2_grpc.ReceiptServiceStub(channel).Calculate(
            probe, timeout=10, metadata=metadata
        )
    skus = [line.sku for line in answer.result.lines if len(line.benefits) == 1 and line.known_sku]
    if len(skus) < TYPICAL_LINES:
        raise RuntimeError(f"only {len(skus)} SKUs with one member benefit in the probe")
    chosen = skus[:TYPICAL_LINES]
    return _receipt_of(card_of(TYPICAL_CARD_INDEX), chosen), _receipt_of("", chosen)


def _receipt_of(card: str, skus: list[str]) -> receipt_pb2.CalculateRequest:
    request = receipt_pb2.CalculateRequest()
    receipt = request.receipt
    receipt.receipt_id, receipt.store_id, receipt.channel = "BENCH-T", "S001", 1
    if card:
        receipt.member.card_number = card
    for number, sku in enumerate(skus, start=1):
        price = 500 + 89 * number
        receipt.lines.add(line_id=str(number), sku=sku, quantity=1000, price=price, amount=price)
    return request


def mixed_rps(member_rps: float, anonymous_rps: float) -> float:
    """Calls/s of a mix of 70 % member and 30 % anonymous receipts: the time per call is the
    weighted mean of the two."""
    share = TYPICAL_MEMBER_SHARE
    return 1 / (share / member_rps + (1 - share) / anonymous_rps)


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


class Server:
    """`loyalty-server` with one process per core, as `make run` starts it."""

    def __init__(
        self, data: ScaledData, processes: int, *extra: str, responses: Path | None = None
    ) -> None:
        self.port = free_port()
        self.metrics_port = free_ports_in_a_row(processes, avoid=self.port)
        self.processes = processes
        command = [
            sys.executable,
            "-m",
            "bench.server",
            "--address",
            f"127.0.0.1:{self.port}",
            "--database-url",
            f"sqlite:///{data.path}",
            "--processes",
            str(processes),
            "--log-calls",
            "off",
            "--log-level",
            "WARNING",
            "--metrics-port",
            str(self.metrics_port),
            "--reflection",
            "off",
            *extra,  # more loyalty-server flags
        ]
        env = {**os.environ, "LOYALTY_TOKEN_SECRET": secrets.token_hex(32)}  # not development
        if responses is not None:
            env[RESPONSES_ENV] = str(responses)
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, start_new_session=True, env=env
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}")

    def status_counts(self, method: str) -> dict[str, float]:
        """grpc-status counts of a method, summed over the worker processes."""
        service, name = method.lstrip("/").split("/")
        pattern = re.compile(  # labels come sorted: grpc_code, grpc_method, grpc_service, ...
            r'^grpc_server_handled_total\{grpc_code="(\w+)",grpc_method="'
            + re.escape(name)
            + r'",grpc_service="'
            + re.escape(service)
            + r'",grpc_type="unary"\} (\S+)$'
        )
        counts: dict[str, float] = {}
        for index in range(self.processes):
            url = f"http://127.0.0.1:{self.metrics_port + index}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                for line in answer.read().decode().splitlines():
                    found = pattern.match(line)
                    if found:
                        counts[found[1]] = counts.get(found[1], 0) + float(found[2])
        return counts

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def h2load(port: int, method: str, body: Path, seconds: float) -> dict[str, float]:
    """Server-bound throughput: 64 calls in flight over 32 connections."""
    command = [
        "h2load",
        "-D",
        str(int(seconds)),
        "--warm-up-time=1",
        "-c",
        "32",
        "-m",
        "2",
        "-t",
        "1",
        "-d",
        str(body),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        f"authorization: Bearer {TOKEN}",
        f"http://127.0.0.1:{port}{method}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out
    )
    if not rps or not done:
        raise RuntimeError(f"cannot read h2load output:\n{out}")
    return {"rps": float(rps[1]), "succeeded": int(done[1]), "failed": int(done[2])}


def server_rounds(
    server: Server, bodies: dict[str, tuple[str, Path]], rounds: int, seconds: float
) -> dict[str, Any]:
    """h2load on each (method, body) in turn, `rounds` times: alternating rounds."""
    runs: dict[str, list[float]] = {name: [] for name in bodies}
    statuses: dict[str, dict[str, float]] = {}
    methods = {name: method for name, (method, _body) in bodies.items()}
    before = {method: server.status_counts(method) for method in set(methods.values())}
    for number in range(rounds):
        for name, (method, body) in bodies.items():  # alternating: empty, calculate, ...
            result = h2load(server.port, method, body, seconds)
            runs[name].append(result["rps"])
            print(
                f"  round {number + 1}/{rounds} {name:>9}: {result['rps']:8.0f} calls/s",
                file=sys.stderr,
                flush=True,
            )
    for method, counts in before.items():  # per method: the typical receipts are Calculates
        after = server.status_counts(method)
        statuses[method] = {code: after.get(code, 0) - counts.get(code, 0) for code in after}
    return {
        "runs": runs,
        "medians": {k: statistics.median(v) for k, v in runs.items()},
        "server_statuses": statuses,
    }


def histogram_quantiles(server: Server, name: str) -> dict[str, float]:
    """p50 and p99 of a Prometheus histogram summed over the workers (bucket upper bounds)."""
    pattern = re.compile(r"^" + name + r'_bucket\{le="([^"]+)"\} (\S+)$')
    buckets: dict[float, float] = {}
    for index in range(server.processes):
        url = f"http://127.0.0.1:{server.metrics_port + index}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            for line in answer.read().decode().splitlines():
                found = pattern.match(line)
                if found:
                    bound = float("inf") if found[1] == "+Inf" else float(found[1])
                    buckets[bound] = buckets.get(bound, 0) + float(found[2])
    total = buckets.get(float("inf"), 0)
    result = {"count": total}
    for label, q in (("p50_s", 0.5), ("p99_s", 0.99)):
        result[label] = next((b for b in sorted(buckets) if buckets[b] >= q * total), 0.0)
    return result


def write_member_changes(data: ScaledData, seconds: float, every_s: float = 0.02) -> int:
    """Another replica's writes: member changes appended to the feed while load runs."""
    from service.store.feed import EntityKind, append_changes

    engine = db.make_engine(f"sqlite:///{data.path}")
    sessions = db.make_session_factory(engine)
    written, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        with sessions.begin() as session:
            append_changes(session, EntityKind.MEMBER, [f"B{1 + written % 1000 + 1000:07d}"])
        written += 1
        time.sleep(every_s)
    engine.dispose()
    return written


def sync_delay_under_load(
    server: Server, data: ScaledData, body: Path, seconds: int
) -> dict[str, float]:
    import threading

    result: dict[str, float] = {}
    writer = threading.Thread(
        target=lambda: result.update(written=write_member_changes(data, seconds))
    )
    writer.start()
    load = h2load(server.port, CALCULATE, body, seconds)
    writer.join()
    quantiles = histogram_quantiles(server, "loyalty_sync_delay_seconds")
    return {
        "changes": result.get("written", 0),
        "applied": quantiles["count"],
        "p50_ms": quantiles["p50_s"] * 1000,
        "p99_ms": quantiles["p99_s"] * 1000,
        "calculate_rps_meanwhile": load["rps"],
    }


def cold_and_warm_latency(
    port: int, request: receipt_pb2.CalculateRequest, calls: int = 300
) -> dict[str, float]:
    """Concurrency 1: a different, never-seen member each call, then one cached member."""
    from bench.scale_data import card_of

    metadata = (("authorization", f"Bearer {TOKEN}"),)
    cold: list[float] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        for index in range(calls):
            request.receipt.member.card_number = card_of(50_000 + index)
            started = time.perf_counter()
            stub.Calculate(request, timeout=5, metadata=metadata)
            cold.append((time.perf_counter() - started) * 1000)
    request.receipt.member.card_number = card_of(1)
    warm = latency_c1(port, request, calls)
    return {
        "cold_p50_ms": percentile(cold, 0.5),
        "cold_p99_ms": percentile(cold, 0.99),
        "warm_p50_ms": warm["p50_ms"],
        "warm_p99_ms": warm["p99_ms"],
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def preload_figures(data: ScaledData) -> dict[str, float]:
    """Preload every member into a cache in this process: time and memory per member."""
    import gc

    from service.cache.state import BenefitCache

    engine = db.make_engine(f"sqlite:///{data.path}")
    cache = BenefitCache(
        db.make_session_factory(engine), time_zone="Europe/Moscow", member_capacity=data.members
    )
    gc.collect()
    before, started = rss_bytes(), time.perf_counter()
    loaded = cache.preload_members()
    seconds = time.perf_counter() - started
    gc.collect()
    per_member = (rss_bytes() - before) / max(loaded, 1)
    engine.dispose()
    return {
        "members": loaded,
        "seconds": round(seconds, 1),
        "bytes_per_member": round(per_member),
        "seconds_per_million_extrapolated": round(seconds * 1_000_000 / max(loaded, 1)),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_c1(port: int, request: receipt_pb2.CalculateRequest, calls: int) -> dict[str, float]:
    return method_latency_c1(port, CALCULATE, request.SerializeToString(), calls)


def method_latency_c1(port: int, method: str, body: bytes, calls: int) -> dict[str, float]:
    """A Python client's p50 and p99 at concurrency 1 of one method, with raw bytes: the
    client parses nothing, for Calculate and the empty call alike."""
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method)
        for _ in range(100):
            call(body, timeout=5, metadata=metadata)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            call(body, timeout=5, metadata=metadata)
            samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99)}


def alternating_c1(port: int, calls: dict[str, tuple[str, bytes]], rounds: int = 4) -> dict:
    """method_latency_c1 of each call in turn, `rounds` times, samples pooled per call."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (method, body) in calls.items():
            samples[name].append(method_latency_c1(port, method, body, 500))
    return {
        name: {k: statistics.median(run[k] for run in runs) for k in ("p50_ms", "p99_ms")}
        for name, runs in samples.items()
    }


async def _latency_c64(
    port: int, request: receipt_pb2.CalculateRequest, seconds: float
) -> dict[str, float]:
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    samples: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await stub.Calculate(request, timeout=10, metadata=metadata)
                samples.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(64)))
    return {
        "rps": len(samples) / seconds,
        "p50_ms": percentile(samples, 0.5),
        "p99_ms": percentile(samples, 0.99),
    }


def engine_figures() -> dict[str, float]:
    import random

    from bench.engine_bench import main_scenario

    results: dict[str, float] = {}
    main_scenario(results, random.Random(1))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "var" / "scaled.db")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    command = "make bench" if argv is None and len(sys.argv) == 1 else " ".join(sys.argv)
    data = build(args.data, args.members)
    ensure_token(data)
    request = calculate_request(data)
    payload = request.SerializeToString()
    cores = len(os.sched_getaffinity(0))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "cores": cores,
        "python": platform.python_version(),
        "grpc": grpc.__version__,
        "receipt_lines": len(request.receipt.lines),
        "request_bytes": len(payload),
        "members": data.members,
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        bodies = {
            name: (method, frame_file(folder, name, message))
            for name, method, message in (
                ("empty", EMPTY, b""),
                ("calculate", CALCULATE, payload),
                ("echo", ECHO, payload),
            )
        }
        print(f"server: {cores} processes, data {data.path}", file=sys.stderr)
        server = Server(data, cores, responses=folder)
        try:
            answer = latency_c1(server.port, request, 1)  # also proves the call works
            del answer
            typical, typical_facts = typical_bodies(server.port, data, folder)
            rounds = server_rounds(server, {**bodies, **typical}, args.rounds, args.seconds)
            c1 = alternating_c1(
                server.port, {"calculate": (CALCULATE, payload), "empty": (EMPTY, b"")}
            )
            c64 = asyncio.run(_latency_c64(server.port, request, args.seconds))
            print("cross-replica delay under load ...", file=sys.stderr, flush=True)
            sync = sync_delay_under_load(server, data, bodies["calculate"][1], args.seconds * 2)
            cold_warm = cold_and_warm_latency(server.port, calculate_request(data))
        finally:
            server.stop()
        print("server: 1 process", file=sys.stderr, flush=True)
        single = Server(data, 1)
        try:
            one = [
                h2load(single.port, CALCULATE, bodies["calculate"][1], args.seconds)["rps"]
                for _ in range(3)
            ]
        finally:
            single.stop()
    medians = rounds["medians"]
    results.update(
        {
            "empty_rps": round(medians["empty"]),
            "echo_rps": round(medians["echo"]),
            "calculate_rps": round(medians["calculate"]),
            "calculate_to_empty_ratio": round(medians["calculate"] / medians["empty"], 3),
            "echo_to_empty_ratio": round(medians["echo"] / medians["empty"], 3),
            "rounds": rounds["runs"],
            "server_statuses": rounds["server_statuses"],
            "calculate_p50_ms_c1": round(c1["calculate"]["p50_ms"], 3),
            "calculate_p99_ms_c1": round(c1["calculate"]["p99_ms"], 3),
            "empty_p50_ms_c1": round(c1["empty"]["p50_ms"], 3),
            "empty_p99_ms_c1": round(c1["empty"]["p99_ms"], 3),
            "calculate_to_empty_p50_c1": round(
                c1["calculate"]["p50_ms"] / c1["empty"]["p50_ms"], 2
            ),
            "calculate_rps_c64_python_client": round(c64["rps"]),
            "calculate_p50_ms_c64": round(c64["p50_ms"], 3),
            "calculate_p99_ms_c64": round(c64["p99_ms"], 3),
        }
    )
    results.update(
        {
            **typical_figures(medians, typical_facts),
            **scaling_figures(statistics.median(one), medians["calculate"], cores),
            "sync_delay_p50_ms": round(sync["p50_ms"], 1),
            "sync_delay_p99_ms": round(sync["p99_ms"], 1),
            "sync_changes_written": sync["changes"],
            "sync_changes_applied": sync["applied"],
            "calculate_rps_while_syncing": round(sync["calculate_rps_meanwhile"]),
            **{f"calculate_{k}": round(v, 3) for k, v in cold_warm.items()},
        }
    )
    print("preload ...", file=sys.stderr, flush=True)
    results.update({f"preload_{k}": v for k, v in preload_figures(data).items()})
    print("engine alone ...", file=sys.stderr, flush=True)
    engine = engine_figures()
    results.update({k: v for k, v in engine.items() if k.startswith("engine_us")})
    results["engine_applied_benefits_per_line"] = engine.get("applied_benefits_per_line_mean")
    results["bench_seconds"] = round(time.perf_counter() - started)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results)
    print(
        json.dumps({k: v for k, v in results.items() if not isinstance(v, dict | list)}, indent=2)
    )
    return 0


def frame_file(folder: Path, name: str, message: bytes) -> Path:
    """A file holding one gRPC frame of `message`, for h2load's -d."""
    path = folder / f"{name}.frame"
    path.write_bytes(grpc_frame(message))
    return path


def typical_bodies(
    port: int, data: ScaledData, folder: Path
) -> tuple[dict[str, tuple[str, Path]], dict[str, Any]]:
    """h2load bodies of the typical receipt, with and without a member, for Calculate and
    for the parsed service; that service's answers are Calculate's own, saved in `folder`."""
    member, anonymous = typical_requests(port, data)
    bodies: dict[str, tuple[str, Path]] = {}
    facts: dict[str, Any] = {"typical_receipt_lines": TYPICAL_LINES}
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        calculate = channel.unary_unary(CALCULATE)
        for name, request in (("Member", member), ("Anonymous", anonymous)):
            body = request.SerializeToString()
            answer = calculate(body, timeout=10, metadata=metadata)
            (folder / f"{name}.bin").write_bytes(answer)
            result = receipt_pb2.CalculateResponse.FromString(answer).result
            key = name.lower()
            facts[f"typical_{key}_benefits_per_line"] = round(
                sum(len(line.benefits) for line in result.lines) / len(result.lines), 2
            )
            facts[f"typical_{key}_request_bytes"] = len(body)
            facts[f"typical_{key}_response_bytes"] = len(answer)
            bodies[f"typical_{key}"] = (CALCULATE, frame_file(folder, f"typical_{key}", body))
            bodies[f"parsed_{key}"] = (parsed_method(name), frame_file(folder, key, body))
    return bodies, facts


def typical_figures(medians: dict[str, float], facts: dict[str, Any]) -> dict[str, Any]:
    """The typical mix (70 % members) against the parsed service driven with the same mix."""
    calculate = mixed_rps(medians["typical_member"], medians["typical_anonymous"])
    parsed = mixed_rps(medians["parsed_member"], medians["parsed_anonymous"])
    return {
        **facts,
        "typical_member_share": TYPICAL_MEMBER_SHARE,
        **{
            f"typical_{kind}_{who}_rps": round(medians[f"{run}_{who}"])
            for kind, run in (("calculate", "typical"), ("parsed", "parsed"))
            for who in ("member", "anonymous")
        },
        "typical_calculate_rps": round(calculate),
        "typical_parsed_rps": round(parsed),
        "typical_calculate_to_empty_ratio": round(calculate / parsed, 3),
    }


def scaling_figures(one_process: float, n_processes: float, cores: int) -> dict[str, Any]:
    """Calls/s per core with 1 process and with one per core, and what 16 cores would give:
    16 x the lower and 16 x the higher of the two per-core figures (h2load shares the cores
    of both runs, so neither is a core's whole)."""
    per_core_n = n_processes / cores
    low, high = sorted((per_core_n, one_process))
    return {
        "calculate_rps_1_process": round(one_process),
        "calculate_rps_n_processes": round(n_processes),
        "calculate_rps_per_core_1_process": round(one_process),
        "calculate_rps_per_core_n_processes": round(per_core_n),
        "calculate_scaling_n_over_1": round(n_processes / one_process, 2),
        "calculate_rps_16_cores_expected_low": round(16 * low),
        "calculate_rps_16_cores_expected_high": round(16 * high),
    }


def write_report(r: dict[str, Any]) -> None:
    """The serving section of docs/benchmarks.md (other sections are kept as they are)."""

    def rounds(name: str) -> str:
        return ", ".join(f"{x:.0f}" for x in r["rounds"][name])

    ratio = r["calculate_to_empty_ratio"]
    c1 = f"p50 **{r['calculate_p50_ms_c1']} ms**, p99 {r['calculate_p99_ms_c1']} ms"
    c64 = (
        f"{r['calculate_rps_c64_python_client']:,} calls/s, p50 {r['calculate_p50_ms_c64']} ms,"
        f" p99 **{r['calculate_p99_ms_c64']} ms**"
    )
    mix = f"{r['typical_calculate_rps']:,} / {r['typical_parsed_rps']:,}"
    section = f"""<!-- serving: written by bench/run.py -->
## Serving (`{r["command"]}`, {r["date"]})

Machine: {r["cores"]} cores, Python {r["python"]}, grpcio {r["grpc"]}. Server: {r["cores"]}
processes sharing the port (SO_REUSEPORT), one pinned to each core, SQLite store with
{r["members"]:,} members, 10,000 products, 1,000 offers. Receipt: {r["receipt_lines"]} lines,
member with individual offers ({r["request_bytes"]} bytes). Load: h2load on the same machine,
64 calls in flight over 32 connections, {len(r["rounds"]["empty"])} alternating rounds
(empty, calculate, echo), medians.

| call | calls/s (median) | ratio to empty | rounds |
|---|---|---|---|
| empty | {r["empty_rps"]:,} | 1.00 | {rounds("empty")} |
| echo (Calculate's bytes) | {r["echo_rps"]:,} | {r["echo_to_empty_ratio"]:.2f} | {rounds("echo")} |
| Calculate | {r["calculate_rps"]:,} | **{ratio:.2f}** | {rounds("calculate")} |

A typical receipt in the same alternating rounds: {r["typical_receipt_lines"]} lines, one
benefit on each for a member ({r["typical_member_benefits_per_line"]} per line; anonymous
{r["typical_anonymous_benefits_per_line"]}), {r["typical_member_share"]:.0%} of receipts from
members. Its "empty" is the bench's parsed service: the same interceptor (without the
credential check), the same request bytes parsed as a CalculateRequest, and Calculate's own
response to them ({r["typical_member_response_bytes"]:,} bytes for the member) serialized and
sent, with no handler. Calls/s of the mix are the time-weighted mean of the two kinds.

| typical receipt | calls/s (median) | rounds |
|---|---|---|
| Calculate, member | {r["typical_calculate_member_rps"]:,} | {rounds("typical_member")} |
| parsed, member | {r["typical_parsed_member_rps"]:,} | {rounds("parsed_member")} |
| Calculate, anonymous | {r["typical_calculate_anonymous_rps"]:,} | {rounds("typical_anonymous")} |
| parsed, anonymous | {r["typical_parsed_anonymous_rps"]:,} | {rounds("parsed_anonymous")} |
| **mix: Calculate / parsed** | {mix} | ratio **{r["typical_calculate_to_empty_ratio"]:.2f}** |

Server-side gRPC statuses in these rounds: {json.dumps(r["server_statuses"])}.

Client's-eye latency (a Python client on the same 2 cores, so it also takes CPU from the
server): concurrency 1: {c1}; the empty call at concurrency 1 in alternating rounds with it:
p50 {r["empty_p50_ms_c1"]} ms, p99 {r["empty_p99_ms_c1"]} ms (Calculate's p50 is
**{r["calculate_to_empty_p50_c1"]}x** the empty call's); concurrency 64: {c64}.

Processes: Calculate {r["calculate_rps_1_process"]:,} calls/s with 1 process,
{r["calculate_rps_n_processes"]:,} with {r["cores"]} (SO_REUSEPORT, pinned):
{r["calculate_rps_per_core_n_processes"]:,} calls/s per core with every core serving, x
{r["calculate_scaling_n_over_1"]} for {r["cores"]} processes over 1. h2load runs on the same
cores: the one process shares them with h2load only, the {r["cores"]} with h2load and each
other. The processes share nothing but the port, so 16 cores, with the load generated
elsewhere, would give about {r["calculate_rps_16_cores_expected_low"]:,} to
{r["calculate_rps_16_cores_expected_high"]:,} calls/s (16 x the lower and the higher per-core
figure; docs/scaling.md).
Cold member (first call for a card, loaded from the store) p50 {r["calculate_cold_p50_ms"]} ms,
p99 {r["calculate_cold_p99_ms"]} ms; warm p50 {r["calculate_warm_p50_ms"]} ms, p99
{r["calculate_warm_p99_ms"]} ms (concurrency 1).

Cross-replica delay (a change written to the store -> applied by each worker's follower),
{r["sync_changes_written"]} changes while h2load drove Calculate at
{r["calculate_rps_while_syncing"]:,} calls/s: p50 <= {r["sync_delay_p50_ms"]} ms, p99 <=
{r["sync_delay_p99_ms"]} ms (histogram bucket bounds; {r["sync_changes_applied"]:.0f}
applications over {r["cores"]} workers).

Preload: {r["preload_members"]:,} members in {r["preload_seconds"]} s
({r["preload_bytes_per_member"]:,} bytes of memory per cached member); 1,000,000 members
would take about {r["preload_seconds_per_million_extrapolated"]} s (extrapolated, not run).

Engine alone, median microseconds per receipt: 5 lines {r.get("engine_us_5_lines")},
20 lines **{r.get("engine_us_20_lines")}**, 100 lines {r.get("engine_us_100_lines")}
(heavy member: {r.get("engine_applied_benefits_per_line")} applied benefits per line).
<!-- /serving -->"""
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if "<!-- serving:" in text:
        text = re.sub(r"<!-- serving:.*?<!-- /serving -->", lambda _m: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    REPORT.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
