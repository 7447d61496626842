"""The member-event jobs from the command line (the use cases: service/app/jobs.py). Run them
from cron or any scheduler:

    python -m service.jobs --database-url postgresql://... [--time-zone Europe/Moscow]

at 00:00 on the 1st (and again a little later, to be safe) and every few minutes; the server
runs them too (service/scheduler.py). Both are idempotent: running one twice, on one replica or
on several at once, writes no duplicate events.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from service.app.jobs import run_member_jobs
from service.app.unit_of_work import UnitOfWork
from service.clock import utc_now
from service.engine.snapshot import Snapshot, build_snapshot
from service.logs import configure_tool_logging
from service.store import loader


def run_jobs(session_factory: sessionmaker[Session], snapshot: Snapshot, now: datetime) -> int:
    """Both jobs, each in its own transaction, committed; returns the events written."""
    return run_member_jobs(lambda: UnitOfWork(session_factory, now=now), snapshot)


def main(argv: list[str] | None = None) -> None:
    from service.store.db import make_engine, make_session_factory

    parser = argparse.ArgumentParser(description="Run the member-event jobs once.")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--time-zone", default="Europe/Moscow")
    args = parser.parse_args(argv)
    configure_tool_logging("INFO")
    engine = make_engine(args.database_url)
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            catalogue = loader.load_catalogue(session)
        snapshot = build_snapshot(**catalogue.as_kwargs(), program_time_zone=args.time_zone)
        print(run_jobs(sessions, snapshot, utc_now()))
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
