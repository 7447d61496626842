"""`loyalty-server`: serve until SIGTERM or SIGINT, as one process or one per core."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from service.cli import tool
from service.config import Settings, load_settings
from service.logs import configure_logging, log_overrun
from service.stop_signals import StopSignals

if TYPE_CHECKING:  # gRPC objects exist only once a server process has started
    from service.api.server import Extension
from service.port import CannotListen, check_port_free, host_and_port

log = logging.getLogger("service")

SIGNAL_CHECK_S = 0.5  # at most this long between a stop signal and the drain's start


def serve_one_process(settings: Settings, extension: Extension | None = None) -> int:
    """One server process: SERVING once ready, drains calls in flight on a signal."""
    if settings.supervisor_pid:
        from service.supervisor import exit_with_supervisor

        if not exit_with_supervisor(settings.supervisor_pid):
            return 1
    if settings.pin_cpu >= 0:
        os.sched_setaffinity(0, {settings.pin_cpu})
    if not settings.reuse_port:
        check_port_free(settings.address)  # gRPC's bind would fail too, less clearly
    from service.api.server import Extension, create_server  # gRPC exists from here on

    server, port = create_server(settings, extension or Extension())
    stop = StopSignals()
    stop.install()
    server.start()
    print(f"loyalty server listening on {settings.address.rsplit(':', 1)[0]}:{port}", flush=True)
    if settings.demo_data:
        print_dev_credentials()
    stop.wait(SIGNAL_CHECK_S)
    log.info("%s: draining (grace %.1f s)", stop.name, settings.grace_period_s)
    drained = threading.Event()
    _leave_if_stuck(settings.grace_period_s + settings.exit_margin_s, drained)
    server.stop()
    drained.set()
    log.info("stopped")
    return 0


def _leave_if_stuck(seconds: float, drained: threading.Event) -> None:
    """Bound the stop: a process that has not exited `seconds` after the stop began (a part of
    its stop that hangs, or a thread that outlives it and holds the interpreter's exit) logs
    where every thread is and exits: 0 if the calls in flight were drained, else 1. A process
    that will not stop is worse for an operator than one thread's unfinished work."""

    def leave() -> None:
        log_overrun(log, "stopping", seconds)
        logging.shutdown()  # flush the line before the process goes
        os._exit(0 if drained.is_set() else 1)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True  # the watchdog itself never holds the process
    timer.start()


def migrate_only(settings: Settings) -> int:
    """Apply the migrations and exit, for deployments that migrate before rolling out."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from service.store import db

    shown = make_url(db.normalize_url(settings.database_url)).render_as_string()  # password ***
    try:
        revision = db.migrate(settings.database_url)
    except (SQLAlchemyError, OSError) as exc:
        print(f"loyalty-server: cannot migrate {shown}: {exc.__cause__ or exc}", file=sys.stderr)
        return 1
    print(f"loyalty store {shown} migrated: at revision {revision}", flush=True)
    return 0


def print_dev_credentials() -> None:
    from service.api.auth import DEV_TOKENS

    print("development credentials (demo data only; send as 'authorization: Bearer <token>'):")
    for role, token in DEV_TOKENS.items():
        print(f"  {role.value:<18} {token}", flush=True)


def refuse_unsafe_start(settings: Settings) -> None:
    """Raise (one line) before anything starts when the settings are unsafe to serve with."""
    from service.api.tokens import signer_from_settings

    signer_from_settings(settings)


@tool("loyalty-server")
def main(
    argv: Sequence[str] | None = None,
    *,
    extension: Callable[[], Extension] | None = None,
    entry: str = "service.main",
) -> int:
    """`loyalty-server`. A program that adds services (bench/server.py) passes `extension`,
    made in each server process, and its own module as `entry`, which workers run."""
    try:
        settings = load_settings(argv)
        if not settings.migrate_only:  # migrating signs nothing: no token secret needed
            refuse_unsafe_start(settings)
    except ValueError as exc:
        print(f"loyalty-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level, settings.log_format, worker=settings.worker_name, server=True
    )
    if settings.migrate_only:
        return migrate_only(settings)
    from service.supervisor import run_workers, worker_count

    count = 1 if host_and_port(settings.address)[1] == 0 else worker_count(settings)
    try:
        if count == 1:
            return serve_one_process(settings, extension() if extension else None)
        return run_workers(settings, count, entry)
    except CannotListen as exc:
        print(f"loyalty-server: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
