"""Getting a store ready to serve: migrations, and in development the demo data and the
development credentials. Imports no gRPC, so the multi-process supervisor can call it before
any worker exists."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from service.clock import utc_now
from service.config import Settings
from service.store import db

log = logging.getLogger(__name__)


def prepare_store(settings: Settings, engine: Engine) -> None:
    db.migrate(settings.database_url)
    if not settings.demo_data:
        return
    from service.api.auth import ensure_dev_credentials  # development only
    from service.demo import load_demo

    sessions = db.make_session_factory(engine)
    summary = load_demo(sessions, now=utc_now())
    log.info("demo data: %s", summary)
    with sessions.begin() as session:
        ensure_dev_credentials(session)
