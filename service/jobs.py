"""The member-event jobs from the command line (the use cases: service/app/jobs.py). Run them
from cron or any scheduler:

    python -m service.jobs --database-url sqlite:///var/loyalty.db [--time-zone Europe/Moscow]

(--database-url defaults to $LOYALTY_DATABASE_URL, then the server's default; the store must
exist: the jobs never create one)
at 00:00 on the 1st (and again a little later, to be safe) and every few minutes; the server
runs them too (service/scheduler.py). Both are idempotent: running one twice, on one replica or
on several at once, writes no duplicate events.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from service.app.jobs import run_member_jobs
from service.app.unit_of_work import UnitOfWork
from service.cli import tool
from service.clock import utc_now
from service.config import Settings
from service.engine.snapshot import Snapshot, build_snapshot
from service.logs import configure_tool_logging
from service.store import loader


def run_jobs(session_factory: sessionmaker[Session], snapshot: Snapshot, now: datetime) -> int:
    """Both jobs, each in its own transaction, committed; returns the events written."""
    return run_member_jobs(lambda: UnitOfWork(session_factory, now=now), snapshot)


@tool("service.jobs")
def main(argv: Sequence[str] | None = None) -> int:
    from service.store.db import make_engine, make_session_factory, require_store

    parser = argparse.ArgumentParser(
        prog="python -m service.jobs",
        description="Run the member-event jobs once on an existing store.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOYALTY_DATABASE_URL", Settings.database_url),
        help="the server's store (default: $LOYALTY_DATABASE_URL, else %(default)s)",
    )
    parser.add_argument(
        "--time-zone",
        default=os.environ.get("LOYALTY_TIME_ZONE", Settings.time_zone),
        help="the program's zone (default: $LOYALTY_TIME_ZONE, else %(default)s)",
    )
    args = parser.parse_args(argv)
    configure_tool_logging("INFO")
    require_store(args.database_url)
    engine = make_engine(args.database_url)
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            catalogue = loader.load_catalogue(session)
        snapshot = build_snapshot(**catalogue.as_kwargs(), program_time_zone=args.time_zone)
        written = run_jobs(sessions, snapshot, utc_now())
    finally:
        engine.dispose()
    print(f"member jobs done: {written} events written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
