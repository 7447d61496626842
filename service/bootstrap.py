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
    # Under the migration lock: replicas started together would also race to create the
    # development credentials.
    with db.migration_lock(engine):
        db.upgrade(engine)
        if settings.demo_data:
            _load_demo(engine)


def _load_demo(engine: Engine) -> None:
    from service.api.auth import ensure_dev_credentials  # development only
    from service.demo import load_demo

    sessions = db.make_session_factory(engine)
    summary = load_demo(sessions, now=utc_now())
    log.info("demo data: %s", summary)
    with sessions.begin() as session:
        ensure_dev_credentials(session)
