"""Benchmark of confirming receipts: confirms per second with concurrent clients.

    python -m bench.confirm_bench --out bench/confirm_results.json [--pg-url URL]

What is measured: the confirm use case (service.app.receipts.confirm_receipt) with its
arguments and answer translated as the servicer does, called directly by N client threads (16
by default), each call with its own unit of work, on a real SQLite file and a real PostgreSQL
server (a throwaway cluster from tests/pg.py unless --pg-url is given). No gRPC, no token
verification, no cache: those cost the same on every backend and are measured by the server's
load tests. Each confirm is a realistic receipt of 5 lines for one of 1,000 members: 10
benefits, one usage-limited offer (the conditional counter upsert), two offers giving points
(ledger rows), the purchase history, the member's document and the change feed, then the
balance.

Phases per backend, each bounded in time:
- `single`: one client, new receipt ids: the latency a till waits for;
- `confirm`: N clients, new receipt ids, each client on its own members (no two clients ever
  confirm for one member at once);
- `same_member`: N clients, new receipt ids, all for one member: they queue on that member's
  lock by design (usage, points and chips are read and written under it), so this measures
  how long a confirm holds it;
- `single_deadline`: `single` with each call under a 5 s deadline, as every register call
  has one (its bounds go to the database with the transaction: docs/operations.md);
- `single_refund`: one client refunds in full, under the same deadline, the receipts
  `single_deadline` confirmed (points taken back, the usage counter lowered);
- `replay`: N clients, ids already confirmed, each request marked resent (as the client
  library marks its retries, `ConfirmRequest.resent`): the stored response is returned;
- `replay_first_attempt`: the same unmarked (a register resending without saying so: the
  confirm's first round trip is sent and rolled back).
Then (`--processes 1,2`, the default) `confirm`, `same_member` and `replay` again with the N
clients spread over 2 worker processes (multiprocessing, each with its own engine and N/2
threads, the same database), as a server runs with `--processes 2`: `confirm_2_processes`
and so on. In one process the clients share one GIL; a server's processes do not.
Numbers are only comparable on the same machine; the JSON keeps the machine's description.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from loyalty.v1 import common_pb2, receipt_pb2
from loyalty.v1.receipt_pb2 import ConfirmResponse
from service.api import convert
from service.api.receipts import REFUND_CODEC
from service.app.receipts import Confirmation, Units, confirm_receipt, refund_receipt
from service.app.receipts import EncodeConfirmation as Encode
from service.app.unit_of_work import UnitOfWork
from service.deadline import set_call_deadline
from service.engine.lifecycle import UsageClaim
from service.engine.model import LimitUnit, Member
from service.store.db import make_engine, make_session_factory, migrate
from service.store.member_repo import save_members

ZONE = ZoneInfo("Europe/Moscow")
MEMBERS = 1000
LINES = 5
SAME_MEMBER = "BM-SHARED"  # the member of the same-member phase, nobody else's
REGISTER_DEADLINE_S = 5.0  # clients.client's default deadline


def member_ids() -> list[str]:
    return [f"BM{n:06d}" for n in range(MEMBERS)]


def make_confirmation(receipt_id: str, member_id: str) -> tuple[Confirmation, Encode]:
    """A confirmed result as a verified token carries it (5 lines, discounts and points),
    translated as ReceiptServicer.Confirm does once the token is verified; the usage is
    claimed with its limit given here, not looked up in a cache."""
    receipt = receipt_pb2.Receipt(receipt_id=receipt_id, store_id="S001")
    receipt.channel = common_pb2.CHANNEL_POS
    receipt.member.member_id = member_id
    result = receipt_pb2.ReceiptResult(receipt_id=receipt_id, member_id=member_id, currency="RUB")
    result.sale_time.FromDatetime(datetime.now(UTC))
    for n in range(LINES):
        quantity, amount = 1000 * (n % 3 + 1), 10_000 * (n + 1)
        receipt.lines.add(line_id=str(n + 1), sku=f"SKU{n:04d}", quantity=quantity, price=amount)
        receipt.lines[-1].amount = amount
        discount = amount // 10
        paid = amount - discount
        points = (paid * 2 // 100, paid * 5 // 100)
        line = result.lines.add(
            line_id=str(n + 1),
            sku=f"SKU{n:04d}",
            amount=amount,
            discount=discount,
            paid=paid,
            points=sum(points),
            known_sku=True,
        )
        line.benefits.add(
            offer_id="B-LIMITED" if n == 0 else "B-SALE",
            mechanic=common_pb2.MECHANIC_ALL_BUYERS,
            kind=common_pb2.BENEFIT_KIND_PERCENT,
            discount=discount,
        )
        for offer_id, value in zip(("B-POINTS-2", "B-POINTS-5"), points, strict=True):
            line.benefits.add(
                offer_id=offer_id,
                mechanic=common_pb2.MECHANIC_MEMBERS_ONLY,
                kind=common_pb2.BENEFIT_KIND_BONUS_PERCENT,
                points=value,
            )
        result.total_amount += amount
        result.total_discount += discount
        result.total_paid += paid
        result.total_points += sum(points)
    claim = UsageClaim("B-LIMITED", "OFFER", 1000, 10**15, LimitUnit.UNITS)
    confirmation = Confirmation(
        convert.confirmed_receipt(receipt, result), (claim,), convert.confirm_fingerprint(receipt)
    )
    return confirmation, functools.partial(convert.confirmation_record, result)


def confirm(
    units: Units, confirmation: Confirmation, encode: Encode, *, resent: bool = False
) -> ConfirmResponse:
    """The use case and its answer as ReceiptServicer.Confirm returns it."""
    answer = confirm_receipt(units, confirmation, time_zone=ZONE, encode=encode, resent=resent)
    return convert.confirm_response(answer.record, replayed=answer.replayed)


def refund_in_full(units: Units, receipt_id: str) -> None:
    """The refund use case for the whole receipt, as ReceiptServicer.Refund calls it."""
    request = receipt_pb2.RefundRequest(
        refund_id=f"F-{receipt_id}", receipt_id=receipt_id, full=True, store_id="S001"
    )
    answer = refund_receipt(
        units,
        convert.refund_request(request),
        time_zone=ZONE,
        is_piece=lambda _sku: True,
        codec=REFUND_CODEC,
    )
    assert not answer.replayed


Latencies = list[float]


def run_phase(
    call: Callable[[int, int], None],
    clients: int,
    seconds: float,
    first_client: int = 0,
    started: Callable[[], object] = lambda: None,
    most: int | None = None,
) -> tuple[Latencies, float]:
    """`clients` threads call `call(client, n)` until `seconds` have passed (clients
    numbered from `first_client`), once `started()` returns (the other processes' clients
    are ready too), each at most `most` times if given. Each call's latency and the time
    taken."""
    latencies: list[Latencies] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    deadline = 0.0

    def client(index: int) -> None:
        mine = latencies[index]
        start.wait()
        for n in itertools.count() if most is None else range(most):
            began = time.perf_counter()
            if began >= deadline:
                return
            try:
                call(first_client + index, n)
            except BaseException as exc:  # reported, never hidden
                errors.append(exc)
                return
            mine.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    started()
    began = time.perf_counter()
    deadline = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]!r}") from errors[0]
    return [x for mine in latencies for x in mine], elapsed


def summary(latencies: Latencies, elapsed: float) -> dict[str, float | int]:
    every = sorted(latencies)
    count = len(every)
    return {
        "calls": count,
        "seconds": round(elapsed, 2),
        "per_second": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(every) * 1000, 2) if every else 0.0,
        "p99_ms": round(every[int(count * 0.99) - 1] * 1000, 2) if count >= 100 else 0.0,
    }


Cpu = Callable[[], float]  # CPU seconds some processes have used so far


def metered(
    phase: Callable[[], tuple[Latencies, float]], database_cpu: Cpu | None
) -> dict[str, float | int]:
    """A one-client phase's summary with the CPU per call of this process (`client_cpu_ms`:
    the use case, SQLAlchemy, the driver) and of the database's processes, and the calls/s
    that two cores' CPU would allow at that cost (`two_core_ceiling_per_second`): the bound
    on any concurrency on this machine, where clients and database share its cores."""
    client, database = time.process_time(), database_cpu() if database_cpu else 0.0
    latencies, elapsed = phase()
    figures = summary(latencies, elapsed)
    calls = max(len(latencies), 1)
    client_ms = (time.process_time() - client) / calls * 1000
    figures["client_cpu_ms"] = round(client_ms, 3)
    if database_cpu is not None:
        database_ms = (database_cpu() - database) / calls * 1000
        figures["database_cpu_ms"] = round(database_ms, 3)
        figures["two_core_ceiling_per_second"] = round(2000 / (client_ms + database_ms), 1)
    return figures


def cluster_cpu(data_dir: Path) -> Cpu:
    """The CPU seconds of a local PostgreSQL's processes (/proc): the postmaster's own and
    its exited children's, and each live child's (backends, WAL writer, checkpointer)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")

    def fields(pid: int) -> list[str]:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()  # from field 3, the state

    def used() -> float:
        own = fields(postmaster)
        ticks = sum(int(own[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                child = fields(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue  # gone meanwhile: its time is in the postmaster's cutime now
            if int(child[1]) == postmaster:  # ppid
                ticks += int(child[11]) + int(child[12])
        return ticks / tick

    return used


@dataclass(frozen=True)
class Plan:
    """What the concurrent phases run: `clients` in all, `per_process` of them from
    `first_client` here; receipt ids carry `tag` (one per run, so runs share a database)."""

    url: str
    clients: int
    first_client: int
    per_process: int
    tag: str
    seconds: float
    replay_seconds: float
    single_seconds: float


def concurrent_phases(
    units: Units, plan: Plan, started: Callable[[], object] = lambda: None
) -> dict[str, tuple[Latencies, float]]:
    """`confirm`, `same_member` and `replay` for this process's clients (see the module)."""
    members = member_ids()
    per_client = MEMBERS // plan.clients  # client c confirms for members[c * per_client:...]
    done: dict[int, list[tuple[str, str]]] = {}

    def confirm_new(client: int, n: int) -> None:
        receipt_id = f"B{plan.tag}-{client:02d}-{n:07d}"
        member = members[client * per_client + n % per_client]
        assert not confirm(units, *make_confirmation(receipt_id, member)).replayed
        done.setdefault(client, []).append((receipt_id, member))

    def confirm_same_member(client: int, n: int) -> None:
        receipt_id = f"M{plan.tag}-{client:02d}-{n:07d}"
        assert not confirm(units, *make_confirmation(receipt_id, SAME_MEMBER)).replayed

    first, clients = plan.first_client, plan.per_process
    phases = {
        "confirm": run_phase(confirm_new, clients, plan.seconds, first, started),
        "same_member": run_phase(confirm_same_member, clients, plan.single_seconds, first, started),
    }
    repeats = {
        client: [make_confirmation(receipt_id, member) for receipt_id, member in mine[:200]]
        for client, mine in done.items()
    }

    def confirm_again(client: int, n: int) -> None:
        mine = repeats[client]
        assert confirm(units, *mine[n % len(mine)], resent=True).replayed

    def confirm_again_unmarked(client: int, n: int) -> None:
        mine = repeats[client]
        assert confirm(units, *mine[n % len(mine)]).replayed

    phases["replay"] = run_phase(confirm_again, clients, plan.replay_seconds, first, started)
    phases["replay_first_attempt"] = run_phase(
        confirm_again_unmarked, clients, plan.replay_seconds, first, started
    )
    return phases


@contextmanager
def confirm_units(url: str, clients: int) -> Iterator[Units]:
    engine = make_engine(url, pool_size=clients, max_overflow=4)
    try:
        yield functools.partial(UnitOfWork, make_session_factory(engine))
    finally:
        engine.dispose()


def worker(plan: Plan, ready: Any, answers: Any) -> None:
    """One process of a multi-process run: its own engine and client threads; each phase
    starts when every process is ready (`ready`, a barrier of all processes)."""
    with confirm_units(plan.url, plan.per_process) as units:
        answers.put(concurrent_phases(units, plan, ready.wait))


def in_processes(plan: Plan, processes: int) -> dict[str, tuple[Latencies, float]]:
    """The concurrent phases with the clients spread over `processes` worker processes,
    as a server runs with --processes: latencies together, the rate over the longest run."""
    context = multiprocessing.get_context("spawn")
    ready, answers = context.Barrier(processes), context.Queue()
    share = plan.clients // processes
    workers = [
        context.Process(
            target=worker,
            args=(replace(plan, first_client=n * share, per_process=share), ready, answers),
        )
        for n in range(processes)
    ]
    for process in workers:
        process.start()
    parts = [answers.get() for _ in workers]
    for process in workers:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a worker process failed ({process.exitcode})")
    return {
        phase: (
            [x for part in parts for x in part[phase][0]],
            max(part[phase][1] for part in parts),
        )
        for phase in parts[0]
    }


def bench_backend(
    url: str,
    clients: int,
    seconds: float,
    replay_seconds: float,
    single_seconds: float,
    processes: Sequence[int] = (1,),
    database_cpu: Cpu | None = None,
) -> dict[str, Any]:
    """The phases in one process, then (for each count of `processes` above 1) the
    concurrent ones again across that many processes, named e.g. `confirm_2_processes`.
    The one-client phases also give the CPU per call of this process and, with
    `database_cpu`, of the database's (`metered`)."""
    migrate(url)
    plan = Plan(url, clients, 0, clients, "", seconds, replay_seconds, single_seconds)
    members = member_ids()
    with confirm_units(url, clients) as units:
        with units() as uow:
            save_members(uow.session, [Member(m) for m in [*members, SAME_MEMBER]])
            uow.commit()

        def confirm_alone(_client: int, n: int) -> None:
            receipt_id = f"S-{n:07d}"
            assert not confirm(units, *make_confirmation(receipt_id, members[n % MEMBERS])).replayed

        def confirm_alone_in_time(_client: int, n: int) -> None:
            set_call_deadline(REGISTER_DEADLINE_S)
            try:
                receipt_id = f"D-{n:07d}"
                confirmation = make_confirmation(receipt_id, members[n % MEMBERS])
                assert not confirm(units, *confirmation).replayed
            finally:
                set_call_deadline(None)

        results = {
            "single": metered(lambda: run_phase(confirm_alone, 1, single_seconds), database_cpu)
        }
        results["single_deadline"] = metered(
            lambda: run_phase(confirm_alone_in_time, 1, single_seconds), database_cpu
        )
        confirmed = int(results["single_deadline"]["calls"])  # the receipts refunded next

        def refund_alone(_client: int, n: int) -> None:
            set_call_deadline(REGISTER_DEADLINE_S)
            try:
                refund_in_full(units, f"D-{n:07d}")
            finally:
                set_call_deadline(None)

        results["single_refund"] = metered(
            lambda: run_phase(refund_alone, 1, single_seconds, most=confirmed), database_cpu
        )
        for phase, measured in concurrent_phases(units, plan).items():
            results[phase] = summary(*measured)
    for count in processes:
        if count > 1:
            spread = in_processes(replace(plan, tag=f"P{count}"), count)
            for phase, measured in spread.items():
                results[f"{phase}_{count}_processes"] = summary(*measured)
    return results


@contextmanager
def postgres(url: str | None) -> Iterator[tuple[str, Cpu | None]]:
    """The given PostgreSQL URL, or a new database on a throwaway cluster, whose CPU can be
    read then."""
    if url:
        yield url, None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster.create_database("confirm_bench"), cluster_cpu(cluster.data_dir)


@contextmanager
def store_url(backend: str, pg_url: str | None) -> Iterator[tuple[str, Cpu | None]]:
    """A fresh SQLite file, or PostgreSQL (`pg_url`, else a throwaway cluster); with the
    meter of the database's CPU when it runs apart here (a throwaway cluster)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}", None
    else:
        with postgres(pg_url) as found:
            yield found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="write the results here (JSON)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=20.0, help="confirm phase, per backend")
    parser.add_argument("--replay-seconds", type=float, default=5.0)
    parser.add_argument(
        "--single-seconds", type=float, default=10.0, help="single-client and same-member phases"
    )
    parser.add_argument(
        "--processes",
        default="1,2",
        help="comma-separated: the concurrent phases again across this many processes (>1)",
    )
    parser.add_argument("--pg-url", help="PostgreSQL to use (default: a throwaway cluster)")
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql"
    )
    args = parser.parse_args(argv)
    processes = [int(n) for n in args.processes.split(",") if n.strip()]
    results: dict[str, Any] = {
        "benchmark": "confirm_receipt (use case), threads calling it directly",
        "clients": args.clients,
        "processes": processes,
        "lines_per_receipt": LINES,
        "members": MEMBERS,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "backends": {},
    }
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    for backend in backends:
        print(f"{backend}: {args.clients} clients, {args.seconds:.0f} s ...", flush=True)
        with store_url(backend, args.pg_url) as (url, database_cpu):
            results["backends"][backend] = bench_backend(
                url,
                args.clients,
                args.seconds,
                args.replay_seconds,
                args.single_seconds,
                processes,
                database_cpu,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    return 0


def print_table(results: dict[str, Any]) -> None:
    print(f"\nconfirm_receipt, {results['clients']} concurrent clients (use case)")
    print(f"{'backend':<12}{'phase':<26}{'calls':>8}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for backend, phases in results["backends"].items():
        for phase, n in phases.items():
            print(
                f"{backend:<12}{phase:<26}{n['calls']:>8}{n['per_second']:>10}"
                f"{n['p50_ms']:>10}{n['p99_ms']:>10}"
            )


if __name__ == "__main__":
    sys.exit(main())
