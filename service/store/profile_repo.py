"""Reads of one member's profile and cards, for the single-member API (spec §18). Writes go
through the import's rules (service.imports.batch) and service.store.attributes_repo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.engine.model import Gender
from service.store.models import CardRow, MemberRow
from service.store.sql import table_of

_MEMBERS = table_of(MemberRow)
_CARDS = table_of(CardRow)


@dataclass(frozen=True, slots=True)
class StoredProfile:
    member_id: str
    active: bool
    birth_date: date | None
    gender: Gender | None
    segment_tags: tuple[str, ...]
    cards: tuple[tuple[str, bool], ...]  # (card number, active), in number order
    created_at: datetime
    updated_at: datetime


def load_profile(session: Session, member_id: str) -> StoredProfile | None:
    row = session.execute(select(_MEMBERS).where(_MEMBERS.c.id == member_id)).first()
    if row is None:
        return None
    cards = session.execute(
        select(_CARDS.c.card_number, _CARDS.c.active)
        .where(_CARDS.c.member_id == member_id)
        .order_by(_CARDS.c.card_number)
    )
    return StoredProfile(
        member_id=row.id,
        active=row.active,
        birth_date=row.birth_date,
        gender=row.gender,
        segment_tags=tuple(sorted(row.segment_tags)),
        cards=tuple((number, active) for number, active in cards),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def owner_of_card(session: Session, card_number: str) -> str | None:
    """The member a card was given to, blocked or not."""
    query = select(_CARDS.c.member_id).where(_CARDS.c.card_number == card_number)
    owner: str | None = session.execute(query).scalar()
    return owner
