"""A member's choice of favorite categories (spec §7.2) in the store: the terms imported per
member and offer (favorite_category_attributes) and the groups the member chose, read and
written as domain values. The rules are the engine's (service/engine/favorites.py); the use
case (service/app/categories.py) applies them and commits through a unit of work.

Concurrency as for favorite products: a change first claims the attribute row (claim_terms:
a no-op UPDATE that takes the row lock on PostgreSQL and the write lock on SQLite), reads only
then, and save_choice bumps the version with a conditional UPDATE. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.engine.model import FavoriteCategoryTerms, Frequency
from service.store.codec import attribute_from_row
from service.store.favorites_repo import save_version
from service.store.models import FavoriteCategoryAttributeRow, FavoriteCategoryChoiceRow
from service.store.sql import insert_rows, table_of

ATTRIBUTES = table_of(FavoriteCategoryAttributeRow)
CHOICES = table_of(FavoriteCategoryChoiceRow)


@dataclass(frozen=True, slots=True)
class StoredTerms:
    """A member's terms for one offer with the stored choice, as claimed by a change."""

    terms: FavoriteCategoryTerms
    version: int
    last_change_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChoiceReplaced:
    """A member's last replacement of a chosen category, with the terms' frequency."""

    member_id: str
    offer_id: str
    frequency: Frequency
    every_n_days: int
    last_change_at: datetime
    valid_to: datetime | None


# --- reading ------------------------------------------------------------------------------------


def last_category_changes(session: Session, member_id: str) -> dict[str, datetime | None]:
    """offer id -> when the member last replaced a chosen category (one indexed query)."""
    query = select(ATTRIBUTES.c.offer_id, ATTRIBUTES.c.last_change_at).where(
        ATTRIBUTES.c.member_id == member_id
    )
    return {r.offer_id: r.last_change_at for r in session.execute(query)}


def replacements_before(session: Session, now: datetime) -> list[ChoiceReplaced]:
    """Every member's last replacement before `now` under terms with acceptance on and a
    frequency that allows another one, in member and offer order."""
    query = (
        select(ATTRIBUTES)
        .where(
            ATTRIBUTES.c.acceptance_required.is_(True),
            ATTRIBUTES.c.frequency != Frequency.ONE_TIME,
            ATTRIBUTES.c.last_change_at.is_not(None),
            ATTRIBUTES.c.last_change_at < now,
        )
        .order_by(ATTRIBUTES.c.member_id, ATTRIBUTES.c.offer_id)
    )
    return [
        ChoiceReplaced(
            r.member_id, r.offer_id, r.frequency, r.every_n_days, r.last_change_at, r.valid_to
        )
        for r in session.execute(query)
    ]


# --- writing ------------------------------------------------------------------------------------


def claim_terms(session: Session, member_id: str, offer_id: str) -> StoredTerms | None:
    """Take the member's terms row of the offer for this transaction (its first write) and read
    it with the stored choice; None when the member has no such terms."""
    key = (ATTRIBUTES.c.member_id == member_id, ATTRIBUTES.c.offer_id == offer_id)
    claimed = session.execute(update(ATTRIBUTES).where(*key).values(version=ATTRIBUTES.c.version))
    if claimed.rowcount == 0:  # type: ignore[attr-defined]
        return None
    row = session.execute(select(ATTRIBUTES).where(*key).with_for_update()).one()
    chosen = session.scalars(
        select(CHOICES.c.group_id).where(
            CHOICES.c.member_id == member_id, CHOICES.c.offer_id == offer_id
        )
    )
    return StoredTerms(attribute_from_row(row, frozenset(chosen)), row.version, row.last_change_at)


def save_choice(
    session: Session, member_id: str, offer_id: str, seen: int, last_change_at: datetime | None
) -> None:
    """The conditional UPDATE: only from the version the change was judged on, else
    FAILED_PRECONDITION CONCURRENT_CHANGE."""
    save_version(session, ATTRIBUTES, member_id, offer_id, seen, last_change_at, "choice")


def replace_choice(session: Session, member_id: str, offer_id: str, chosen: Iterable[str]) -> None:
    """Store `chosen` as the member's groups of the offer."""
    session.execute(
        delete(CHOICES).where(CHOICES.c.member_id == member_id, CHOICES.c.offer_id == offer_id)
    )
    insert_rows(
        session,
        FavoriteCategoryChoiceRow,
        [{"member_id": member_id, "offer_id": offer_id, "group_id": g} for g in sorted(chosen)],
    )
