"""`loyalty-load`: generated registers hammering the calculation path, then a report.

  loyalty-load --token "$LOYALTY_TOKEN" --duration 30 --processes 2 --concurrency 16
  loyalty-load --token "$LOYALTY_TOKEN" --duration 60 --rate 500 --out run.json --html run.html

Several client processes (multiprocessing, spawned), each with its own grpc.aio channels
(several connections by default, so every server process gets load) and event loop, send
Calculate calls with receipts drawn from the demo catalogue and members
(`--source demo`) or from a store database (`--database-url URL`, what the server uses):
see clients/load_receipts.py for the line-count distribution, member/anonymous mix and
favorites hit rate. A share `--confirm-share` of receipts is also confirmed (the write path).

- Closed loop (`--concurrency N`): N calls in flight in all, each sent when the last answered.
- Open loop (`--rate R`): R calls a second in all, sent on schedule whether or not earlier
  ones answered (`--arrivals poisson` or `uniform`); latency counts from the scheduled time, so
  a slow server is not hidden by a client that waits for it (no coordinated omission). At most
  `--max-in-flight` calls per process; beyond that a call is counted DROPPED_BY_CLIENT.

The run stops by itself after `--duration` seconds (or `--max-calls`), shows a progress bar on
stderr, and writes a report: throughput, latency p50/p90/p99/p99.9/max of every call sent
(failed ones too, and by status), errors by status, as
JSON (`--out`) and as a self-contained HTML page with SVG charts (`--html`). Calls are not
retried: the report shows what the server did. Targets must be on this machine (loopback)
unless `--allow-remote` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from random import Random
from typing import Any, TextIO

import grpc

from clients.catalogue import Shop, demo_shop, shop_from_store
from clients.client import (
    TlsConfig,
    add_token_arguments,
    bearer_metadata,
    channel_options,
    tls_from_args,
    token_from_args,
)
from clients.load_receipts import ReceiptFactory, ReceiptMix
from clients.load_report import DROPPED, Samples, bucket_size, render_html, summarize
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.cli import EXIT_USAGE, ToolError, tool
from service.logs import configure_tool_logging

MAX_DURATION_S = 3600.0
MAX_PROCESSES = 64
POOL_SIZE = 500  # receipts made in advance per process (Calculate only; confirmed ones are new)
PROGRESS_EVERY_S = 0.25
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LoadConfig:
    target: str
    token: str
    duration_s: float
    processes: int = 2
    concurrency: int = 0  # closed loop when > 0
    rate: float = 0.0  # open loop when > 0 (calls per second in all)
    arrivals: str = "poisson"
    max_in_flight: int = 1000
    max_calls: int = 0  # 0: no limit besides the duration
    timeout_s: float = 2.0
    confirm_share: float = 0.0
    channels: int = 1
    seed: int = 1
    mix: ReceiptMix = ReceiptMix()
    tls: TlsConfig | None = None

    def __post_init__(self) -> None:
        if (self.concurrency > 0) == (self.rate > 0):
            raise ValueError("give either a concurrency (closed loop) or a rate (open loop)")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}] seconds")
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise ValueError(f"processes must be in [1, {MAX_PROCESSES}]")
        if self.concurrency and self.concurrency < self.processes:
            raise ValueError("concurrency must be at least the number of processes")
        if self.arrivals not in ("poisson", "uniform"):
            raise ValueError("arrivals: poisson or uniform")
        if not 0.0 <= self.confirm_share <= 1.0:
            raise ValueError("confirm_share must be between 0 and 1")
        if self.timeout_s <= 0 or self.channels < 1 or self.max_in_flight < 1:
            raise ValueError("timeout, channels and max_in_flight must be positive")
        if self.max_calls < 0:
            raise ValueError("max_calls must not be negative")

    @property
    def mode(self) -> str:
        if self.concurrency:
            return f"closed loop, {self.concurrency} in flight"
        return f"open loop, {self.rate:g} calls/s ({self.arrivals})"

    def share(self, total: float, index: int) -> float:
        """Process `index`'s part of a total split as evenly as possible."""
        if isinstance(total, int):
            return total // self.processes + (1 if index < total % self.processes else 0)
        return total / self.processes


def default_channels() -> int:
    """Connections per client process. A server runs one process per core on one port
    (SO_REUSEPORT), and the kernel gives each new connection to one of them by a hash: with
    one connection per client process some server processes would get no load at all; with
    several, each its own connection (distinct channel arguments), every one gets its share."""
    return max(4, 2 * (os.cpu_count() or 1))


# --- the worker process --------------------------------------------------------------------------


@dataclass
class _Shared:
    start_at: Any  # multiprocessing Value('d'): time.monotonic() at which every worker starts
    start: Event
    stop: Event
    reports: Any  # multiprocessing Queue


def worker_main(index: int, config: LoadConfig, shop: Shop, shared: _Shared) -> None:
    """One client process: its own receipts, channel(s) and event loop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        samples = asyncio.run(_Worker(index, config, shop, shared).run())
        shared.reports.put(("done", index, samples))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        shared.reports.put(("failed", index, f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, index: int, config: LoadConfig, shop: Shop, shared: _Shared) -> None:
        self.index = index
        self.config = config
        self.shared = shared
        self.rng = Random(config.seed * 1000 + index)
        run_id = f"{os.getpid()}-{int(time.time())}"
        self.factory = ReceiptFactory(
            shop, config.mix, seed=config.seed * 1000 + index, id_prefix=f"LOAD-{run_id}-{index}"
        )
        self.pool = [
            receipt_pb2.CalculateRequest(receipt=self.factory.receipt()) for _ in range(POOL_SIZE)
        ]
        self.samples = Samples(slot_s=bucket_size(config.duration_s))
        self.metadata = bearer_metadata(config.token)
        self.max_calls = int(config.share(config.max_calls, index)) if config.max_calls else 0
        self.sent = 0
        self.start = 0.0
        self.end = 0.0
        self.stopping = False
        self.stubs: list[Any] = []

    def _channel(self, number: int) -> grpc.aio.Channel:
        # A channel of its own (own TCP connection) even with the same target and options.
        # No service config: the channel must not retry either (the report shows every call).
        options = [
            *channel_options(self.config.tls, service_config=None),
            ("grpc.enable_retries", 0),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        options.append(("loyalty.load.channel", f"{self.index}-{number}"))
        tls = self.config.tls
        if tls is None:
            return grpc.aio.insecure_channel(self.config.target, options=options)
        return grpc.aio.secure_channel(self.config.target, tls.credentials(), options=options)

    async def run(self) -> Samples:
        channels = [self._channel(n) for n in range(self.config.channels)]
        try:
            for channel in channels:
                try:
                    await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
                except TimeoutError:
                    raise ConnectionError(
                        f"no connection to {self.config.target} in {CONNECT_TIMEOUT_S:g} s"
                    ) from None
            self.stubs = [receipt_pb2_grpc.ReceiptServiceStub(ch) for ch in channels]
            self.shared.reports.put(("ready", self.index, None))
            await asyncio.to_thread(self.shared.start.wait, CONNECT_TIMEOUT_S * 4)
            if not self.shared.start.is_set():
                raise TimeoutError("the run was never started")
            self.start = float(self.shared.start_at.value)
            self.end = self.start + self.config.duration_s
            await asyncio.sleep(max(0.0, self.start - time.monotonic()))
            watcher = asyncio.create_task(self._watch())
            if self.config.concurrency:
                await self._closed_loop()
            else:
                await self._open_loop()
            self.stopping = True
            await watcher
        finally:
            for channel in channels:
                await channel.close(None)
        return self.samples

    def _more(self, due: float | None = None) -> bool:
        """Another call? Closed loop: while there is time. Open loop: while calls are due
        before the end (all of them are sent, even by a client running behind)."""
        if self.stopping or (time.monotonic() if due is None else due) >= self.end:
            return False
        return not self.max_calls or self.sent < self.max_calls

    async def _watch(self) -> None:
        """Progress to the parent; stop early when the parent says so."""
        while not self.stopping:
            self.shared.reports.put(("progress", self.index, self._answered()))
            if self.shared.stop.is_set():
                self.stopping = True
            await asyncio.sleep(PROGRESS_EVERY_S)
        self.shared.reports.put(("progress", self.index, self._answered()))

    def _answered(self) -> tuple[int, int]:
        """Calls finished so far (answered, failed or dropped) and how many of them failed."""
        return len(self.samples), self.samples.errors

    def _request(self) -> tuple[receipt_pb2.CalculateRequest, bool]:
        if self.config.confirm_share and self.rng.random() < self.config.confirm_share:
            return receipt_pb2.CalculateRequest(receipt=self.factory.receipt()), True
        return self.pool[self.sent % len(self.pool)], False

    async def _one(self, due: float) -> None:
        """One receipt: Calculate (and Confirm for a share); latency counted from `due`."""
        request, confirm = self._request()
        stub = self.stubs[self.sent % len(self.stubs)]
        answer = await self._timed(stub.Calculate, request, due, 0)
        if confirm and answer is not None:
            again = receipt_pb2.ConfirmRequest(
                receipt=request.receipt, confirmation_token=answer.confirmation_token
            )
            await self._timed(stub.Confirm, again, time.monotonic(), 1)

    async def _timed(self, method: Any, request: Any, due: float, number: int) -> Any:
        code, answer = 0, None
        try:
            answer = await method(request, timeout=self.config.timeout_s, metadata=self.metadata)
        except grpc.aio.AioRpcError as err:
            code = err.code().value[0]
        finished = time.monotonic()
        self.samples.add(due - self.start, finished - due, code, number)
        return answer

    async def _closed_loop(self) -> None:
        async def one_register() -> None:
            while self._more():
                self.sent += 1
                await self._one(time.monotonic())

        count = int(self.config.share(self.config.concurrency, self.index))
        await asyncio.gather(*(one_register() for _ in range(count)))

    async def _open_loop(self) -> None:
        rate = self.config.share(self.config.rate, self.index)
        in_flight: set[asyncio.Task[None]] = set()
        due, scheduled = self.start, 0
        while self._more(due):
            # Sleep until the call is due; when behind schedule, still let answers in.
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self.stopping:
                break
            self.sent += 1
            if len(in_flight) >= self.config.max_in_flight:
                self.samples.add(due - self.start, 0.0, DROPPED, 0)
            else:
                task = asyncio.create_task(self._one(due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if self.config.arrivals == "poisson":
                due += self.rng.expovariate(rate)
            else:
                scheduled += 1
                due = self.start + scheduled / rate  # no drift from adding up 1 / rate
        if in_flight:
            await asyncio.gather(*in_flight)


# --- the parent ----------------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr (a line now and then when stderr is not a terminal). The rate
    is of calls finished over the last RATE_WINDOW_S, not the average since the start, so a
    server that slows down shows it at once; the final line gives the whole run's rate."""

    RATE_WINDOW_S = 2.0

    def __init__(self, config: LoadConfig, stream: TextIO = sys.stderr) -> None:
        self.config = config
        self.stream = stream
        self.tty = stream.isatty()
        self.last_line = 0.0
        self.seen: deque[tuple[float, int]] = deque()

    def rate(self, elapsed: float, calls: int, final: bool) -> float:
        self.seen.append((elapsed, calls))
        while len(self.seen) > 2 and elapsed - self.seen[1][0] >= self.RATE_WINDOW_S:
            self.seen.popleft()
        since, before = (0.0, 0) if final else self.seen[0]
        return (calls - before) / (elapsed - since) if elapsed > since else 0.0

    def show(self, elapsed: float, calls: int, errors: int, final: bool = False) -> None:
        duration = self.config.duration_s
        now = time.monotonic()
        rate = self.rate(elapsed, calls, final)
        if not self.tty and not final and now - self.last_line < 1.0:
            return
        self.last_line = now
        done = min(max(elapsed / duration, 0.0), 1.0)
        bar = "#" * int(done * 30) + "-" * (30 - int(done * 30))
        text = (
            f"[{bar}] {min(elapsed, duration):5.1f}/{duration:g} s  {calls:,} calls"
            f"  {rate:,.0f}/s  {errors:,} errors"
        )
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class LoadFailed(Exception):
    pass


def run_load(config: LoadConfig, shop: Shop, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run the load and return the report (see load_report.summarize)."""
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs gRPC
    shared = _Shared(context.Value("d", 0.0), context.Event(), context.Event(), context.Queue())
    workers = [
        context.Process(
            target=worker_main,
            args=(i, config, shop, shared),
            name=f"loyalty-load-{i}",
            daemon=True,
        )
        for i in range(config.processes)
    ]
    started_at = datetime.now(UTC)
    for worker in workers:
        worker.start()
    try:
        return _conduct(config, workers, shared, started_at, progress)
    finally:
        shared.stop.set()
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)


def _conduct(
    config: LoadConfig,
    workers: Sequence[multiprocessing.process.BaseProcess],
    shared: _Shared,
    started_at: datetime,
    progress: Progress | None,
) -> dict[str, Any]:
    ready: set[int] = set()
    counts: dict[int, tuple[int, int]] = {}
    results: dict[int, Samples] = {}
    give_up = time.monotonic() + CONNECT_TIMEOUT_S * 2
    begin = 0.0
    while len(results) < len(workers):
        if begin == 0.0 and len(ready) == len(workers):
            begin = time.monotonic() + 0.1
            shared.start_at.value = begin
            shared.start.set()
            give_up = begin + config.duration_s + config.timeout_s * 2 + 10.0
        try:
            kind, index, payload = shared.reports.get(timeout=0.2)
        except queue.Empty:
            kind, index, payload = "", -1, None
        if kind == "ready":
            ready.add(index)
        elif kind == "progress":
            counts[index] = payload
        elif kind == "done":
            results[index] = payload
        elif kind == "failed":
            raise LoadFailed(f"client process {index} failed: {payload}")
        if progress is not None and begin:
            sent = sum(c[0] for c in counts.values())
            errors = sum(c[1] for c in counts.values())
            progress.show(time.monotonic() - begin, sent, errors)
        if time.monotonic() > give_up:
            what = "connect" if not begin else "finish"
            raise LoadFailed(f"client processes did not {what} in time")
        dead = [w for i, w in enumerate(workers) if not w.is_alive() and i not in results]
        if dead and shared.reports.empty():
            time.sleep(0.5)
            if shared.reports.empty():
                raise LoadFailed(f"client process {dead[0].name} died ({dead[0].exitcode})")
    samples = Samples(slot_s=bucket_size(config.duration_s))
    for index in sorted(results):
        samples.extend(results[index])
    duration = config.duration_s
    if config.max_calls and len(samples):
        duration = min(duration, samples.last_end_s)
    if progress is not None:
        progress.show(duration, len(samples), samples.errors, final=True)
    return summarize(
        samples,
        duration,
        tool="loyalty-load",
        target=config.target,
        started_at=started_at.isoformat(timespec="seconds"),
        mode=config.mode,
        processes=config.processes,
        config=_config_for_report(config),
    )


def _config_for_report(config: LoadConfig) -> dict[str, Any]:
    data = asdict(replace(config, token="***" if config.token else "", tls=None))
    mix = data.pop("mix")
    data.update({f"mix.{k}": v for k, v in mix.items()})
    data["tls"] = config.tls is not None
    return data


# --- command line --------------------------------------------------------------------------------


def is_loopback_target(target: str) -> bool:
    """True when every address `target` names is on this machine (or a unix socket)."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    address = target.split("///", 1)[-1].removeprefix("ipv4:").removeprefix("ipv6:")
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or "]" in address else address
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conn = parser.add_argument_group("connection")
    conn.add_argument("--target", default="127.0.0.1:50051", help="host:port of the service")
    add_token_arguments(conn, "REGISTER")
    conn.add_argument("--timeout", type=float, default=2.0, help="deadline of each call, s")
    conn.add_argument("--tls-ca", type=Path, help="PEM root certificate: use TLS")
    conn.add_argument("--tls-cert", type=Path, help="PEM client certificate (mutual TLS)")
    conn.add_argument("--tls-key", type=Path, help="PEM client private key (mutual TLS)")
    conn.add_argument("--tls-server-name", help="name expected in the server's certificate")
    conn.add_argument("--allow-remote", action="store_true", help="allow a non-loopback target")
    load = parser.add_argument_group("load")
    shape = load.add_mutually_exclusive_group(required=True)
    shape.add_argument("--concurrency", type=int, default=0, help="closed loop: calls in flight")
    shape.add_argument("--rate", type=float, default=0.0, help="open loop: calls per second")
    load.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson")
    load.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    load.add_argument("--max-calls", type=int, default=0, help="stop after this many calls")
    load.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    load.add_argument(
        "--channels",
        type=int,
        default=0,
        help="connections per process (default: twice the cores, at least 4, so that the"
        " kernel spreads them over every server process sharing the port)",
    )
    load.add_argument("--max-in-flight", type=int, default=1000, help="per process, open loop")
    load.add_argument("--confirm-share", type=float, default=0.0, help="receipts also confirmed")
    load.add_argument("--seed", type=int, default=1)
    receipts = parser.add_argument_group("receipts")
    source = receipts.add_mutually_exclusive_group()
    source.add_argument("--database-url", help="read products, stores and cards from this store")
    source.add_argument("--source", choices=("demo",), default="demo", help="the demo data set")
    receipts.add_argument("--lines-mean", type=float, default=8.0, help="mean lines per receipt")
    receipts.add_argument("--lines-max", type=int, default=40)
    receipts.add_argument("--member-share", type=float, default=0.7, help="receipts with a card")
    receipts.add_argument(
        "--favorites-hit", type=float, default=0.3, help="member receipts with a favorite product"
    )
    receipts.add_argument("--unknown-share", type=float, default=0.02, help="with an unknown SKU")
    receipts.add_argument("--online-share", type=float, default=0.1, help="ONLINE carts")
    out = parser.add_argument_group("report")
    out.add_argument("--out", type=Path, help="write the report as JSON here")
    out.add_argument("--html", type=Path, help="write the report as an HTML page here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    mix = ReceiptMix(
        lines_mean=args.lines_mean,
        lines_max=args.lines_max,
        member_share=args.member_share,
        favorites_hit=args.favorites_hit,
        unknown_share=args.unknown_share,
        online_share=args.online_share,
    )
    return LoadConfig(
        target=args.target,
        token=token_from_args(args),
        duration_s=args.duration,
        # No idle process: a concurrency of 1 needs one process, whatever --processes says.
        processes=min(args.processes, args.concurrency) if args.concurrency > 0 else args.processes,
        concurrency=args.concurrency,
        rate=args.rate,
        arrivals=args.arrivals,
        max_in_flight=args.max_in_flight,
        max_calls=args.max_calls,
        timeout_s=args.timeout,
        confirm_share=args.confirm_share,
        channels=args.channels or default_channels(),
        seed=args.seed,
        mix=mix,
        tls=tls_from_args(args),
    )


def print_summary(report: dict[str, Any], stream: TextIO = sys.stdout) -> None:
    latency = report["latency_ms"]
    print(
        f"{report['calls']:,} calls in {report['duration_s']:g} s ({report['mode']}):"
        f" {report['throughput_per_s']:,.1f} ok/s",
        file=stream,
    )
    print(
        "latency ms (every call sent): "
        + "  ".join(f"{k} {latency[k]:.2f}" for k in ("p50", "p90", "p99", "p99.9", "max")),
        file=stream,
    )
    if set(report["latency_by_status_ms"]) != {"OK"}:
        for status, figures in report["latency_by_status_ms"].items():
            print(
                f"  {status}: {figures['calls']:,} calls,"
                f" p50 {figures['p50']:.2f} p99 {figures['p99']:.2f} max {figures['max']:.2f}",
                file=stream,
            )
    if len(report["methods"]) > 1:
        for name, method in report["methods"].items():
            m = method["latency_ms"]
            print(
                f"  {name}: {method['calls']:,} calls, {method['throughput_per_s']:,.1f} ok/s,"
                f" p50 {m['p50']:.2f} p99 {m['p99']:.2f} ms",
                file=stream,
            )
    errors = ", ".join(f"{k} {v}" for k, v in report["errors"].items()) or "none"
    print(f"errors: {errors}", file=stream)


@tool("loyalty-load")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tool_logging("WARNING")
    try:
        config = config_from_args(args)
    except ValueError as err:
        raise ToolError(str(err), EXIT_USAGE) from None
    if not args.allow_remote and not is_loopback_target(config.target):
        raise ToolError(
            f"{config.target} is not on this machine; a load test goes to loopback"
            " unless --allow-remote is given",
            EXIT_USAGE,
        )
    shop = shop_from_store(args.database_url) if args.database_url else demo_shop()
    progress = None if args.quiet else Progress(config)
    try:
        report = run_load(config, shop, progress=progress)
    except LoadFailed as err:
        raise ToolError(str(err)) from None
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if args.html:
        args.html.write_text(render_html(report), encoding="utf-8")
    print_summary(report)
    with contextlib.suppress(OSError):
        for path in (args.out, args.html):
            if path:
                print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
