"""The outbox: events a member should hear about (SPEC 10), written in the same transaction as
the change that causes them; channel adapters and stream subscribers read them by position."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.store.models import OutboxRow
from service.store.sql import utc_now


class EventType(enum.StrEnum):
    """Names match loyalty.v1.MemberEventType without its prefix."""

    NEW_FAVORITE_LIST = "NEW_FAVORITE_LIST"
    SELECTION_ALLOWED_AGAIN = "SELECTION_ALLOWED_AGAIN"
    NEW_PERSONAL_OFFER = "NEW_PERSONAL_OFFER"
    CATEGORIES_TO_CHOOSE = "CATEGORIES_TO_CHOOSE"
    FAVORITES_CHANGED = "FAVORITES_CHANGED"


def add_event(
    session: Session,
    member_id: str,
    event_type: EventType,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Record an event; part of the caller's transaction (never commits)."""
    session.add(
        OutboxRow(
            member_id=member_id,
            event_type=str(event_type),
            payload=payload or {},
            created_at=now or utc_now(),
        )
    )
