"""The `loyalty-server` process as an operator runs it: flags, environment, signals."""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc, till_session_pb2, till_session_pb2_grpc
from service.store import db
from tests.e2e.conftest import auth
from tests.integration.test_store_migrations import HEAD
from tests.pg import free_port


def start_server(
    tmp_path: Path, *extra: str, module: str = "service.main", stderr: int | None = None
) -> tuple[subprocess.Popen[str], int]:
    secret = tmp_path / "token-secret"
    secret.write_text("a production secret of 32+ bytes\n")
    env = {
        **os.environ,
        "LOYALTY_TIME_ZONE": "Europe/Moscow",
        "LOYALTY_LOG_LEVEL": "WARNING",
        "LOYALTY_TOKEN_SECRET_FILE": str(secret),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "--address",
            "127.0.0.1:0",
            "--database-url",
            f"sqlite:///{tmp_path / 'p.db'}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # printed once the server is SERVING
    assert "listening on" in line, line
    return process, int(line.strip().rsplit(":", 1)[1])


def test_the_server_process_serves_then_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    process, port = start_server(tmp_path, "--grace-period-s", "2")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


SYS_TGKILL = 234  # x86_64


def signal_a_thread_other_than_the_main_one(pid: int, signum: int) -> None:
    """What the kernel may do with a signal sent to the process: any thread that does not
    block it may take it, and the main thread is only the first choice."""
    tid = min(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def test_the_server_drains_and_exits_whichever_of_its_threads_takes_the_sigterm(
    tmp_path: Path,
) -> None:
    process, _port = start_server(tmp_path, "--grace-period-s", "1")
    try:
        signal_a_thread_other_than_the_main_one(process.pid, signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextmanager
def demo_server(
    tmp_path: Path, *flags: str, stderr: int | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`loyalty-server --demo-data` on a free port, as `make run` starts it (no token secret
    in the environment), in a process group of its own; the process and its port once it
    says it is listening (a supervisor: once every worker serves). Killed with its group at
    the end if still there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_TOKEN")}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "service.main", "--address", f"127.0.0.1:{free_port()}",
            "--database-url", f"sqlite:///{tmp_path / 'run.db'}", "--demo-data",
            "--log-level", "WARNING", *flags,
        ],
        stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        yield process, int(line.split(":")[1].split()[0])  # "...:PORT (2 processes)"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_burst_of_stop_signals_stops_the_server_once_and_cleanly(
    tmp_path: Path, processes: str
) -> None:
    """An operator's second Ctrl-C, or a SIGTERM that both `kill -- -pgid` and the
    supervisor pass to a worker: a stop signal may arrive while the handler of the first
    still runs. A handler that took a lock there (threading.Event.set) waited on itself
    for ever; the burst below hit that in most runs."""
    with demo_server(tmp_path, "--processes", processes, "--grace-period-s", "1") as (process, _):
        signals = itertools.cycle([signal.SIGTERM, signal.SIGINT])
        until = time.monotonic() + 0.3  # a bounded burst; the first handler runs inside it
        while time.monotonic() < until and process.poll() is None:
            os.kill(process.pid, next(signals))
        assert process.wait(timeout=25) == 0


def test_a_frozen_worker_does_not_hold_the_supervisor(tmp_path: Path) -> None:
    """A worker's own stop is bounded by grace and margin, unless it cannot run at all: the
    supervisor kills a worker still there past that bound and exits 1, for its orchestrator
    to restart the set, rather than wait for ever."""
    flags = ("--processes", "2", "--grace-period-s", "0.5", "--exit-margin-s", "0.5")
    with demo_server(tmp_path, *flags, stderr=subprocess.PIPE) as (process, _):
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        frozen = int(children[0])
        os.kill(frozen, signal.SIGSTOP)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 1
        assert "still there 6.0 s after the stop; killing it" in err
        assert not Path(f"/proc/{frozen}").exists()  # killed and reaped


def test_a_thread_that_outlives_the_stop_does_not_hold_the_process(tmp_path: Path) -> None:
    """Calls drained, one thread never ends: the process says where every thread was and
    exits 0 once the margin past the grace period is over, rather than never."""
    process, _port = start_server(
        tmp_path,
        *("--grace-period-s", "0.5", "--exit-margin-s", "1"),
        module="tests.e2e.lingering_server",
        stderr=subprocess.PIPE,
    )
    try:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        (line,) = [json.loads(x) for x in err.splitlines() if "going on without it" in x]
        assert line["message"] == "stopping took over 1.5 s; going on without it"
        assert "never-ends" in line["stacks"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_time_zone_in_the_environment_stops_the_server_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "LOYALTY_TIME_ZONE": "Mars/Olympus"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.main",
            "--address",
            "127.0.0.1:0",
            "--database-url",
            f"sqlite:///{tmp_path / 'p.db'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0
    assert "unknown time zone" in done.stderr


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migrate_only_migrates_the_store_says_so_in_one_line_and_exits(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """For deployments that migrate before rolling out the new version."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    done = subprocess.run(
        [sys.executable, "-m", "service.main", "--migrate-only", "--database-url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and f"revision {HEAD}" in done.stdout, done.stdout
    engine = db.make_engine(url)
    try:
        assert db.current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_make_run_serves_the_demo_with_a_worker_per_core(tmp_path: Path) -> None:
    """`make run`: --demo-data and one worker per core; the workers load no demo data but
    stay in the development mode it implies (no token secret needed)."""
    with demo_server(tmp_path, "--processes", "2") as (process, port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
            shown = receipt_pb2_grpc.ReceiptServiceStub(channel).Calculate(
                receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
            )
        assert shown.result.total_discount > 0
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_every_worker_serves_till_sessions_on_the_shared_session_port(tmp_path: Path) -> None:
    sessions_port = free_port()
    sessions = ("--till-session-address", f"127.0.0.1:{sessions_port}")
    # listening once both workers serve: a worker that could not bind the port fails it
    with demo_server(tmp_path, "--processes", "2", *sessions) as (process, _):
        receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
        start = till_session_pb2.SessionRequest(start={"receipt": receipt})
        for _ in range(6):  # connections of their own, spread over the workers by the kernel
            with grpc.insecure_channel(
                f"127.0.0.1:{sessions_port}", options=[("grpc.use_local_subchannel_pool", 1)]
            ) as channel:
                stub = till_session_pb2_grpc.TillSessionServiceStub(channel)
                (answer,) = stub.Session(iter([start]), timeout=10, metadata=auth())
                assert answer.result.total_discount > 0
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
