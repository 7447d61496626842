"""The server runs the member jobs itself: the list switch of the month produces events."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from service.api.server import create_server
from service.store import db
from service.store.models import OutboxRow
from service.store.outbox import EventType
from tests.e2e.conftest import demo_settings


def test_a_server_with_jobs_on_announces_new_favorite_lists_by_itself(tmp_path: Path) -> None:
    server, _port = create_server(demo_settings(tmp_path, jobs_interval_s=30))
    server.start()
    try:
        deadline = time.monotonic() + 20
        while server.jobs.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        with db.make_session_factory(server.store)() as session:
            announced = session.scalar(
                select(func.count()).where(OutboxRow.event_type == str(EventType.NEW_FAVORITE_LIST))
            )
    finally:
        server.stop(grace=0.5)
    assert server.jobs.runs >= 1
    assert announced and announced > 0, "demo members with purchase history get a new list"
