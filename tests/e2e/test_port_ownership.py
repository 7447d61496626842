"""A server owns its port: it refuses one already served, by another loyalty server or by
anything else, and the workers of a multi-process server do not outlive their supervisor."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.pg import free_port

START_TIMEOUT_S = 30
GONE_TIMEOUT_S = 30


def server_command(port: int, database: Path, processes: int) -> list[str]:
    return [
        sys.executable, "-m", "service.main",
        "--address", f"127.0.0.1:{port}",
        "--database-url", f"sqlite:///{database}",
        "--processes", str(processes),
        "--grace-period-s", "1",
        "--jobs-interval-s", "0",
        "--log-level", "WARNING",
        "--development",  # no token secret to set up: ports are what these tests are about
    ]  # fmt: skip


@contextmanager
def server(port: int, database: Path, processes: int) -> Iterator[subprocess.Popen[str]]:
    """`loyalty-server` on 127.0.0.1:port; at the end it and its workers are killed."""
    process = subprocess.Popen(
        server_command(port, database, processes),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        workers = children(process.pid)  # before they become orphans, if they do
        process.kill()
        kill_all(workers)  # first: they hold the pipes too
        process.communicate()


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def multi_process_server(port: int, database: Path) -> Iterator[subprocess.Popen[str]]:
    """A two-process server, SERVING."""
    with server(port, database, 2) as process:
        assert process.stdout is not None
        line = process.stdout.readline()  # once every worker is SERVING
        assert "listening on" in line, line
        workers = children(process.pid)
        try:
            yield process
        finally:  # also when a test killed the supervisor and its workers outlived it
            kill_all(workers)


def refused_start(port: int, database: Path, processes: int) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a server expected to refuse to start."""
    with server(port, database, processes) as process:
        try:
            out, err = process.communicate(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail("the server started instead of refusing to")
        return process.returncode, out, err


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def eventually(condition: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def assert_refused_in_one_line(done: tuple[int, str, str], port: int) -> None:
    status, out, err = done
    assert status == 1, done
    assert "listening on" not in out
    assert err.strip() == f"loyalty-server: cannot listen on 127.0.0.1:{port}: port already in use"


def test_a_second_multi_process_server_on_a_served_port_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    with multi_process_server(port, tmp_path / "first.db"):
        assert_refused_in_one_line(refused_start(port, tmp_path / "second.db", 2), port)


def test_of_two_servers_started_at_once_on_one_port_one_serves_and_one_refuses(
    tmp_path: Path,
) -> None:
    """Neither listens yet when the other checks the port: they must not both take it."""
    port = free_port()
    with server(port, tmp_path / "a.db", 2) as first, server(port, tmp_path / "b.db", 2) as second:
        started = {}
        for process in (first, second):
            assert process.stdout is not None
            started[process] = "listening on" in process.stdout.readline()  # or exited
        assert sorted(started.values()) == [False, True], "exactly one serves"
        (refused,) = [p for p, serving in started.items() if not serving]
        assert refused.wait(timeout=START_TIMEOUT_S) == 1


@pytest.mark.parametrize("processes", [1, 2])
def test_a_server_on_a_port_another_program_listens_on_says_so_in_one_line(
    tmp_path: Path, processes: int
) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert_refused_in_one_line(refused_start(port, tmp_path / "p.db", processes), port)


def test_the_workers_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    port = free_port()
    with multi_process_server(port, tmp_path / "p.db") as supervisor:
        workers = children(supervisor.pid)
        assert len(workers) == 2
        supervisor.kill()  # as SIGKILL or the OOM killer would
        supervisor.wait()
        assert eventually(lambda: not any(alive(pid) for pid in workers), GONE_TIMEOUT_S), (
            "the workers outlived their supervisor"
        )
        assert eventually(lambda: port_is_free(port), GONE_TIMEOUT_S)


def test_a_worker_whose_supervisor_is_gone_before_it_starts_exits_at_once(
    tmp_path: Path,
) -> None:
    """The kernel sends the signal only for a parent that dies after the worker asked."""
    done = subprocess.run(  # its parent is this test process, not the supervisor it is told
        [*server_command(free_port(), tmp_path / "p.db", 1), "--supervisor-pid", "1"],
        capture_output=True, text=True, timeout=START_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 1, done
    assert "listening on" not in done.stdout
    assert "supervisor (pid 1) has gone" in done.stderr
