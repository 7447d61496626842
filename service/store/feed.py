"""The change feed: every write appends (entity kind, key) rows in its own transaction, and
replicas follow the feed by position to refresh their caches."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.clock import utc_now
from service.store.models import ChangeFeedRow
from service.store.pipeline import Batch
from service.store.sql import insert_rows, table_of


class EntityKind(enum.StrEnum):
    """What changed; the key says which one (an id, a SKU, a member id)."""

    CATEGORY = "category"
    PRODUCT = "product"
    PRODUCT_GROUP = "product_group"
    PRODUCT_LIST = "product_list"
    STORE = "store"
    OFFER = "offer"
    MEMBER = "member"
    CREDENTIAL = "credential"


@dataclass(frozen=True, slots=True)
class Change:
    position: int
    kind: str
    key: str
    created_at: datetime


def append_changes(
    session: Session, kind: EntityKind, keys: Iterable[str], now: datetime | None = None
) -> None:
    """Record that these entities changed; part of the caller's transaction."""
    insert_rows(session, ChangeFeedRow, _rows(kind, keys, now or utc_now()))


def queue_changes(batch: Batch, kind: EntityKind, keys: Iterable[str], now: datetime) -> None:
    """append_changes on a batch."""
    batch.execute_many(_FEED_INSERT, _rows(kind, keys, now))


_FEED_INSERT = table_of(ChangeFeedRow).insert()


def _rows(kind: EntityKind, keys: Iterable[str], at: datetime) -> list[dict[str, object]]:
    return [
        {"entity_kind": str(kind), "entity_key": key, "created_at": at}
        for key in dict.fromkeys(keys)
    ]


def changes_after(session: Session, position: int, limit: int = 1000) -> list[Change]:
    """Changes with a position above `position`, oldest first.

    Positions are assigned at insert, not at commit, so a slower transaction may still add a
    lower position later; a follower must re-read gaps it saw rather than trust the maximum.
    """
    feed = table_of(ChangeFeedRow)
    query = select(feed).where(feed.c.position > position).order_by(feed.c.position).limit(limit)
    return [
        Change(r.position, r.entity_kind, r.entity_key, r.created_at)
        for r in session.execute(query)
    ]


def last_position(session: Session) -> int:
    """The highest position in the feed, 0 when it is empty."""
    return session.scalar(select(func.coalesce(func.max(ChangeFeedRow.position), 0))) or 0


def changes_at(session: Session, positions: Iterable[int]) -> list[Change]:
    """The changes at these positions that exist now (a follower re-reading its gaps)."""
    wanted = list(positions)
    if not wanted:
        return []
    feed = table_of(ChangeFeedRow)
    found: list[Change] = []
    for start in range(0, len(wanted), 500):
        query = select(feed).where(feed.c.position.in_(wanted[start : start + 500]))
        found += [
            Change(r.position, r.entity_kind, r.entity_key, r.created_at)
            for r in session.execute(query)
        ]
    return sorted(found, key=lambda c: c.position)
