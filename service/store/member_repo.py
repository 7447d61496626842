"""Writers for members: profile, cards, favorite slots, favorite-category attributes,
personalized offers, usage counters and purchase history. The caller commits.

save_members() makes the stored state equal to the given Member objects, with care for what a
Member does not carry: slots that stay keep their index, auto-fill flag and fill time; the
selection and attribute rows keep last_change_at and import_id and get a new version (so a
concurrent conditional change fails and retries); personalized offers the member no longer has
are marked revoked, not deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from service.clock import utc_now
from service.engine.model import Member
from service.store.codec import attribute_row, personal_offer_row
from service.store.feed import EntityKind, append_changes
from service.store.member_documents import lock_members, member_changed
from service.store.models import (
    CardRow,
    FavoriteCategoryAttributeRow,
    FavoriteCategoryChoiceRow,
    FavoriteSelectionRow,
    FavoriteSlotRow,
    MemberRow,
    OfferUsageRow,
    PersonalOfferRow,
    PurchaseRow,
)
from service.store.sql import chunks, delete_where_in, insert_rows, table_of, upsert

MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Purchase:
    """Quantity (thousandths) and amount (minor units) of one SKU a member bought in a month
    ('YYYY-MM', program time zone). Negative values take a refund back out."""

    member_id: str
    month: str
    sku: str
    quantity: int
    amount: int


def member_exists(session: Session, member_id: str) -> bool:
    members = table_of(MemberRow)
    found = session.execute(select(members.c.id).where(members.c.id == member_id)).first()
    return found is not None


def existing_members(session: Session, member_ids: Sequence[str]) -> list[str]:
    """Those of the ids that are members, in id order."""
    members = table_of(MemberRow)
    found: list[str] = []
    for part in chunks(sorted(set(member_ids))):
        found += session.scalars(select(members.c.id).where(members.c.id.in_(part)))
    return sorted(found)


def save_member(
    session: Session,
    member: Member,
    cards: Sequence[str] = (),
    *,
    now: datetime | None = None,
) -> None:
    """Write one member's whole state, and attach `cards` (card numbers) to them."""
    save_members(session, [member], {member.id: cards} if cards else None, now=now)


def save_members(
    session: Session,
    members: Sequence[Member],
    cards: Mapping[str, Sequence[str]] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Write many members' whole state in a few statements per chunk of members."""
    at = now or utc_now()
    cards = cards or {}
    for part in chunks(members):
        _save_chunk(session, part, cards, at)


def _save_chunk(
    session: Session, members: Sequence[Member], cards: Mapping[str, Sequence[str]], at: datetime
) -> None:
    ids = [m.id for m in members]
    lock_members(session, ids)  # existing members, in id order, before any other row lock
    upsert(session, MemberRow, [_member_row(m, at) for m in members], keep=["created_at"])
    upsert(
        session,
        CardRow,
        [
            {"card_number": card, "member_id": m.id, "active": True, "created_at": at}
            for m in members
            for card in cards.get(m.id, ())
        ],
        keep=["created_at"],
    )
    _save_slots(session, members, at)
    _save_attributes(session, members, at)
    _save_personal_offers(session, members, at)
    delete_where_in(session, OfferUsageRow, "member_id", ids)
    insert_rows(
        session,
        OfferUsageRow,
        [
            {"member_id": m.id, "offer_id": o, "period_key": p, "used": used, "updated_at": at}
            for m in members
            for (o, p), used in m.usage.items()
        ],
    )
    member_changed(session, ids, at)


def _member_row(member: Member, at: datetime) -> dict[str, Any]:
    return {
        "id": member.id,
        "active": member.active,
        "birth_date": member.birth_date,
        "gender": member.gender,
        "segment_tags": sorted(member.segment_tags),
        "created_at": at,
        "updated_at": at,
    }


def _save_slots(session: Session, members: Sequence[Member], at: datetime) -> None:
    ids = [m.id for m in members]
    slots = table_of(FavoriteSlotRow)
    existing: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in session.execute(select(slots).where(slots.c.member_id.in_(ids))).mappings():
        existing.setdefault((row["member_id"], row["offer_id"]), {})[row["sku"]] = dict(row)
    selections = table_of(FavoriteSelectionRow)
    upsert(
        session,
        FavoriteSelectionRow,
        [
            {"member_id": m.id, "offer_id": offer_id, "last_change_at": None, "version": 1}
            for m in members
            for offer_id in m.favorite_slots
        ],
        keep=["last_change_at"],
        on_conflict=lambda _: {"version": selections.c.version + 1},
    )
    delete_where_in(session, FavoriteSlotRow, "member_id", ids)
    rows = [
        row
        for m in members
        for offer_id, skus in m.favorite_slots.items()
        for row in _slot_rows(m.id, offer_id, skus, existing.get((m.id, offer_id), {}), at)
    ]
    insert_rows(session, FavoriteSlotRow, rows)


def _slot_rows(
    member_id: str,
    offer_id: str,
    skus: Iterable[str],
    old: Mapping[str, dict[str, Any]],
    at: datetime,
) -> list[dict[str, Any]]:
    """Slots that keep their SKU keep their row; new SKUs take the lowest free indexes."""
    skus = sorted(skus)
    kept = [old[sku] for sku in skus if sku in old]
    taken = {row["slot_index"] for row in kept}
    free = (index for index in count() if index not in taken)
    added = [
        {
            "member_id": member_id,
            "offer_id": offer_id,
            "slot_index": next(free),
            "sku": sku,
            "auto_filled": False,
            "filled_at": at,
        }
        for sku in skus
        if sku not in old
    ]
    return kept + added


def _save_attributes(session: Session, members: Sequence[Member], at: datetime) -> None:
    ids = [m.id for m in members]
    attributes = table_of(FavoriteCategoryAttributeRow)
    wanted = {(m.id, t.offer_id) for m in members for t in m.favorite_categories}
    stored = session.execute(
        select(attributes.c.member_id, attributes.c.offer_id).where(attributes.c.member_id.in_(ids))
    )
    dropped = [tuple(key) for key in stored if tuple(key) not in wanted]
    delete_where_in(session, FavoriteCategoryChoiceRow, "member_id", ids)
    if dropped:
        key = tuple_(attributes.c.member_id, attributes.c.offer_id)
        session.execute(attributes.delete().where(key.in_(dropped)))
    upsert(
        session,
        FavoriteCategoryAttributeRow,
        [
            {**attribute_row(m.id, t, at), "version": 1}
            for m in members
            for t in m.favorite_categories
        ],
        on_conflict=lambda _: {"version": attributes.c.version + 1},
    )
    insert_rows(
        session,
        FavoriteCategoryChoiceRow,
        [
            {"member_id": m.id, "offer_id": t.offer_id, "group_id": group_id}
            for m in members
            for t in m.favorite_categories
            for group_id in sorted(t.chosen_group_ids)
        ],
    )


def _save_personal_offers(session: Session, members: Sequence[Member], at: datetime) -> None:
    ids = [m.id for m in members]
    offers = table_of(PersonalOfferRow)
    session.execute(
        update(offers)
        .where(offers.c.member_id.in_(ids), offers.c.revoked.is_(False))
        .values(revoked=True, updated_at=at)
    )
    upsert(
        session,
        PersonalOfferRow,
        [personal_offer_row(m.id, o, at) for m in members for o in m.personal_offers],
        keep=["import_id"],
    )


def add_purchase(
    session: Session, member_id: str, month: str, sku: str, quantity: int, amount: int
) -> None:
    """Add to a member's purchase history of `month` ('YYYY-MM')."""
    add_purchases(session, [Purchase(member_id, month, sku, quantity, amount)])


def add_purchases(session: Session, purchases: Iterable[Purchase]) -> None:
    """Add many purchases; quantities and amounts of the same (member, month, SKU) add up."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    for p in purchases:
        if not MONTH_PATTERN.match(p.month):
            raise ValueError(f"month must be 'YYYY-MM', not {p.month!r}")
        total = totals.setdefault((p.member_id, p.month, p.sku), [0, 0])
        total[0] += p.quantity
        total[1] += p.amount
    history = table_of(PurchaseRow)
    rows = [
        {"member_id": m, "month": month, "sku": sku, "quantity": q, "amount": a}
        for (m, month, sku), (q, a) in totals.items()
    ]
    upsert(
        session,
        PurchaseRow,
        rows,
        on_conflict=lambda excluded: {
            "quantity": history.c.quantity + excluded.quantity,
            "amount": history.c.amount + excluded.amount,
        },
    )
    append_changes(session, EntityKind.MEMBER, [m for (m, _, _) in totals])
