"""What the use cases and the servicers hold to reach the store: a factory of sessions
(service.store.db.make_session_factory). A use case opens a unit of work on it; the api
holds it without knowing SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

Sessions = Callable[[], Session]
