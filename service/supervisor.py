"""Several server processes on one port (SO_REUSEPORT), one per core: one Python process uses
one core, and the kernel spreads connections over the processes.

The supervisor prepares the store once (migrations, demo data) and starts each worker as a
fresh interpreter (fork + exec), so no worker inherits gRPC state from a parent that has
initialised gRPC (grpc/grpc#16001). Each worker is pinned to a core, answers from its own
cache, and is a replica like any other. SIGTERM or SIGINT is passed to every worker, which
drains its calls within the grace period; if one worker dies, the others are stopped and the
supervisor exits non-zero so that whatever runs it restarts the whole set. If the supervisor
itself dies (SIGKILL, the OOM killer), the kernel sends its workers SIGTERM: they drain and
exit rather than keep serving the port as orphans. The supervisor owns the port before any
worker exists (service.port): a port another server already serves is refused.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

from service.bootstrap import prepare_store
from service.config import Settings
from service.port import claim_port
from service.stop_signals import StopSignals
from service.store import db

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
KILL_MARGIN_S = 5.0  # past a worker's own bound (grace + exit margin) before it is killed


def worker_count(settings: Settings) -> int:
    if settings.processes > 0:
        return settings.processes
    return len(os.sched_getaffinity(0)) or 1


def _worker_command(settings: Settings, index: int, cores: list[int], entry: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        entry,
        "--processes",
        "1",
        "--reuse-port",
        "on",
        "--pin-cpu",
        str(cores[index % len(cores)]),
        "--demo-data",
        "off",
        "--worker-name",
        f"worker-{index}",
        "--jobs-interval-s",  # the member jobs run in one worker only
        str(settings.jobs_interval_s if index == 0 else 0),
        "--metrics-port",
        str(settings.metrics_port + index if settings.metrics_port else 0),
        "--supervisor-pid",
        str(os.getpid()),
    ]


def run_workers(settings: Settings, count: int, entry: str = "service.main") -> int:
    """Start `count` workers sharing settings.address (each `python -m entry`); return when
    they have all stopped. Raises PortInUse, before preparing the store, when the port is
    served already."""
    with claim_port(settings.address):
        return _run_workers(settings, count, entry)


def _run_workers(settings: Settings, count: int, entry: str) -> int:
    engine = db.make_engine(settings.database_url)
    try:
        prepare_store(settings, engine)
    finally:
        engine.dispose()
    cores = sorted(os.sched_getaffinity(0))
    # The demo data is loaded once, here; development mode, which it implies, carries on.
    worker_settings = replace(settings, demo_data=False, development=settings.development_mode)
    env = {**os.environ, **settings_environment(worker_settings)}
    workers = [
        subprocess.Popen(
            _worker_command(settings, i, cores, entry), env=env, stdout=subprocess.PIPE, text=True
        )
        for i in range(count)
    ]

    # passed on inside the signal handler: send_signal only tries its lock
    stop = StopSignals(forward=functools.partial(_signal_all, workers))
    stop.install()
    failed = False
    for worker in workers:  # each prints one line once it is SERVING
        assert worker.stdout is not None
        line = worker.stdout.readline()
        if "listening on" not in line:
            _signal_all(workers, signal.SIGTERM)
            failed = True
            log.error("a worker failed to start")
            break
    else:
        print(f"loyalty server listening on {settings.address} ({count} processes)", flush=True)
        if settings.demo_data:
            from service.main import print_dev_credentials

            print_dev_credentials()
    bound = settings.grace_period_s + settings.exit_margin_s + KILL_MARGIN_S
    return _wait(workers, stop, bound, failed)


def _signal_all(workers: list[subprocess.Popen[str]], signum: int) -> None:
    for worker in workers:
        worker.send_signal(signum)  # skips a worker already reaped


def _wait(
    workers: list[subprocess.Popen[str]], stop: StopSignals, bound_s: float, failed: bool
) -> int:
    """Until every worker has exited; the highest exit code. The first worker to exit
    unasked stops the others (`failed`: they were stopped already, one failed to start). A
    worker still there `bound_s` after the stop began (its own exit is bounded by grace and
    margin, so it is frozen or wedged below Python) is killed: the supervisor exits, for its
    orchestrator to restart the set, rather than hang."""
    codes: dict[int, int] = {}
    stop_began: float | None = None
    while len(codes) < len(workers):
        if stop_began is None and (stop.received or failed):
            stop_began = time.monotonic()
        elif stop_began is not None and time.monotonic() - stop_began > bound_s:
            _kill_the_rest(workers, codes, bound_s)
            continue
        for index, worker in enumerate(workers):
            if index in codes:
                continue
            try:
                codes[index] = worker.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            if not stop.received and not failed:
                log.error("worker %d exited with %d; stopping the others", index, codes[index])
                _signal_all(workers, signal.SIGTERM)
                failed = True
                codes[index] = codes[index] or 1
    return max(codes.values(), default=0)


def _kill_the_rest(
    workers: list[subprocess.Popen[str]], codes: dict[int, int], bound_s: float
) -> None:
    for index, worker in enumerate(workers):
        if index not in codes:
            log.error("worker %d still there %.1f s after the stop; killing it", index, bound_s)
            worker.kill()
            worker.wait()
            codes[index] = 1


def exit_with_supervisor(supervisor_pid: int) -> bool:
    """In a worker: have the kernel send this process SIGTERM when the supervisor dies, however
    it dies. False when it is gone already (it died before this ran). Linux only. The signal
    comes when the thread that started the worker ends: the supervisor's main thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if os.getppid() != supervisor_pid:
        log.error("the supervisor (pid %d) has gone; not starting", supervisor_pid)
        return False
    return True


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as LOYALTY_* variables, so workers see exactly the supervisor's."""
    from dataclasses import fields

    env: dict[str, str] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        env[f"LOYALTY_{f.name.upper()}"] = (
            ("on" if value else "off") if isinstance(value, bool) else str(value)
        )
    return env
