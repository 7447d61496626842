"""Mapping between engine domain objects and row dicts, both ways, in one place.

Writers turn domain objects into dicts keyed by column name; readers turn selected rows
(anything with attribute access by column name) back into domain objects.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from service.engine.model import (
    AppliedBenefit,
    Audience,
    Benefit,
    BenefitKind,
    Channel,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Frequency,
    Gender,
    LimitPeriod,
    LimitUnit,
    Mechanic,
    Member,
    Offer,
    PersonalOffer,
    Schedule,
    Stacking,
    TimeRange,
    UsageLimit,
)
from service.engine.points_balance import NO_POINTS, Lot, PointsHolding

Row = dict[str, Any]


# --- value objects ---------------------------------------------------------------------------


def schedule_to_json(schedule: Schedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    return {
        "days": sorted(schedule.days_of_week),
        "ranges": [[r.start_minute, r.end_minute] for r in schedule.time_ranges],
    }


def schedule_from_json(data: dict[str, Any] | None) -> Schedule | None:
    if data is None:
        return None
    return Schedule(
        days_of_week=frozenset(data["days"]),
        time_ranges=tuple(TimeRange(start, end) for start, end in data["ranges"]),
    )


def audience_to_json(audience: Audience | None) -> dict[str, Any] | None:
    if audience is None:
        return None
    return {
        "segment_tags": sorted(audience.segment_tags),
        "min_age": audience.min_age,
        "max_age": audience.max_age,
        "gender": audience.gender.name if audience.gender else None,
        "birthday_within_days": audience.birthday_within_days,
    }


def audience_from_json(data: dict[str, Any] | None) -> Audience | None:
    if data is None:
        return None
    return Audience(
        segment_tags=frozenset(data["segment_tags"]),
        min_age=data["min_age"],
        max_age=data["max_age"],
        gender=Gender[data["gender"]] if data["gender"] else None,
        birthday_within_days=data["birthday_within_days"],
    )


def limit_columns(limit: UsageLimit | None) -> Row:
    if limit is None:
        return {"limit_unit": None, "limit_value": None, "limit_period": None}
    return {"limit_unit": limit.unit, "limit_value": limit.limit, "limit_period": limit.period}


def limit_from_row(row: Any) -> UsageLimit | None:
    if row.limit_unit is None:
        return None
    return UsageLimit(unit=row.limit_unit, limit=row.limit_value, period=row.limit_period)


def benefit_columns(benefit: Benefit) -> Row:
    return {"benefit_kind": benefit.kind, "benefit_value": benefit.value}


def benefit_from_row(row: Any) -> Benefit:
    return Benefit(kind=row.benefit_kind, value=row.benefit_value)


# --- offers ----------------------------------------------------------------------------------


def offer_row(offer: Offer, *, active: bool, now: datetime) -> Row:
    return {
        "id": offer.id,
        "name": offer.name,
        "level": offer.level,
        **benefit_columns(offer.benefit),
        "scope_group_id": offer.scope_group_id,
        "priority": offer.priority,
        "stacking": offer.stacking,
        "valid_from": offer.valid_from,
        "valid_to": offer.valid_to,
        "schedule": schedule_to_json(offer.schedule),
        "store_ids": sorted(offer.store_ids),
        "channels": sorted(c.name for c in offer.channels),
        "audience": audience_to_json(offer.audience),
        **limit_columns(offer.usage_limit),
        "text": offer.text,
        "active": active,
        "updated_at": now,
        "chips_threshold": offer.chips_threshold,
        "chips_price": offer.chips_price,
    }


def offer_from_row(row: Any) -> Offer:
    return Offer(
        id=row.id,
        name=row.name,
        level=row.level,
        benefit=benefit_from_row(row),
        scope_group_id=row.scope_group_id,
        priority=row.priority,
        stacking=row.stacking,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        schedule=schedule_from_json(row.schedule),
        store_ids=frozenset(row.store_ids),
        channels=frozenset(Channel[c] for c in row.channels),
        audience=audience_from_json(row.audience),
        usage_limit=limit_from_row(row),
        text=row.text,
        chips_threshold=row.chips_threshold,
        chips_price=row.chips_price,
    )


def favorite_offer_row(offer: FavoriteProductsOffer) -> Row:
    return {
        "offer_id": offer.offer.id,
        "slot_count": offer.slot_count,
        "list_source": offer.list_source,
        "product_list_id": offer.product_list_id,
        "frequency": offer.frequency,
        "every_n_days": offer.every_n_days,
        "autofill": offer.autofill,
    }


def favorite_offer_from_rows(offer: Offer, row: Any) -> FavoriteProductsOffer:
    return FavoriteProductsOffer(
        offer=offer,
        slot_count=row.slot_count,
        list_source=row.list_source,
        product_list_id=row.product_list_id,
        frequency=row.frequency,
        every_n_days=row.every_n_days,
        autofill=row.autofill,
    )


# --- member terms ----------------------------------------------------------------------------


def attribute_row(member_id: str, terms: FavoriteCategoryTerms, now: datetime) -> Row:
    """Columns a save writes; import_id, last_change_at and version are managed elsewhere."""
    return {
        "member_id": member_id,
        "offer_id": terms.offer_id,
        "name": terms.name,
        "group_ids": list(terms.group_ids),
        **benefit_columns(terms.benefit),
        "valid_from": terms.valid_from,
        "valid_to": terms.valid_to,
        "max_count": terms.max_count,
        "acceptance_required": terms.acceptance_required,
        "frequency": terms.frequency,
        "every_n_days": terms.every_n_days,
        "priority": terms.priority,
        "stacking": terms.stacking,
        "updated_at": now,
    }


def attribute_from_row(row: Any, chosen: frozenset[str]) -> FavoriteCategoryTerms:
    return FavoriteCategoryTerms(
        offer_id=row.offer_id,
        name=row.name,
        group_ids=tuple(row.group_ids),
        benefit=benefit_from_row(row),
        max_count=row.max_count,
        acceptance_required=row.acceptance_required,
        chosen_group_ids=chosen,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        frequency=row.frequency,
        every_n_days=row.every_n_days,
        priority=row.priority,
        stacking=row.stacking,
    )


def personal_offer_row(member_id: str, offer: PersonalOffer, now: datetime) -> Row:
    return {
        "member_id": member_id,
        "offer_id": offer.offer_id,
        "name": offer.name,
        "skus": sorted(offer.skus),
        "group_id": offer.group_id,
        **benefit_columns(offer.benefit),
        "valid_from": offer.valid_from,
        "valid_to": offer.valid_to,
        **limit_columns(offer.usage_limit),
        "priority": offer.priority,
        "stacking": offer.stacking,
        "revoked": False,
        "updated_at": now,
    }


def personal_offer_from_row(row: Any) -> PersonalOffer:
    return PersonalOffer(
        offer_id=row.offer_id,
        name=row.name,
        benefit=benefit_from_row(row),
        skus=frozenset(row.skus),
        group_id=row.group_id,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        usage_limit=limit_from_row(row),
        priority=row.priority,
        stacking=row.stacking,
    )


# --- member documents ------------------------------------------------------------------------
#
# A member's whole state as one JSON text (service.store.member_documents keeps it current), so
# loading a cold member is one indexed read. Keys are short: a million of them are read at
# preload. Enums go by name, times as ISO 8601 with their UTC offset, absent values as null.
# Changing this layout means raising MEMBER_DOCUMENT_FORMAT and adding a migration revision
# (it may change nothing else): readers ignore documents of another format, and db.migrate()
# rewrites them with member_documents.backfill() when it applies a revision.

MEMBER_DOCUMENT_FORMAT = 2  # 2: the points' lots (migration 0009)


def _time_text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# Decoding shares what members have in common: ids, SKUs and names (interned), and equal
# validity times, benefits and limits (one immutable object each). A million cached members
# repeat the same few hundred offers and products.
_intern = sys.intern


def _interned(values: list[str]) -> Iterator[str]:
    return map(_intern, values)


def _time_value(text: str | None) -> datetime | None:
    return None if text is None else _shared_time(text)


@functools.lru_cache(maxsize=4096)
def _shared_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


@functools.lru_cache(maxsize=4096)
def _shared_benefit(kind: str, value: int) -> Benefit:
    return Benefit(BenefitKind[kind], value)


@functools.lru_cache(maxsize=1024)
def _shared_limit(unit: str, limit: int, period: str) -> UsageLimit:
    return UsageLimit(LimitUnit[unit], limit, LimitPeriod[period])


def _benefit_pair(benefit: Benefit) -> list[Any]:
    return [benefit.kind.name, benefit.value]


def _limit_triple(limit: UsageLimit | None) -> list[Any] | None:
    return None if limit is None else [limit.unit.name, limit.limit, limit.period.name]


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def line_benefits(benefits: tuple[AppliedBenefit, ...]) -> str:
    """A receipt line's benefits in the order applied, for its `benefits` column: a JSON
    array of objects keyed like the columns of the former receipt_benefits table, so SQL
    can read them (`benefits::json` on PostgreSQL, `json_each` on SQLite)."""
    return _ENCODE.encode(
        [
            {
                "offer_id": b.offer_id,
                "mechanic": b.mechanic.name,
                "kind": b.kind.name,
                "discount": b.discount,
                "points": b.points,
                "text": b.text,
            }
            for b in benefits
        ]
    )


def line_benefits_from_json(text: str) -> tuple[AppliedBenefit, ...]:
    return tuple(
        AppliedBenefit(
            offer_id=b["offer_id"],
            mechanic=Mechanic[b["mechanic"]],
            kind=BenefitKind[b["kind"]],
            discount=b["discount"],
            points=b["points"],
            text=b["text"],
        )
        for b in json.loads(text)
    )


def member_document(member: Member) -> str:
    document = {
        "active": member.active,
        "birth": None if member.birth_date is None else member.birth_date.isoformat(),
        "gender": None if member.gender is None else member.gender.name,
        "tags": sorted(member.segment_tags),
        "slots": {offer: sorted(skus) for offer, skus in sorted(member.favorite_slots.items())},
        "categories": [_terms_document(t) for t in member.favorite_categories],
        "personal": [_personal_document(o) for o in member.personal_offers],
        "usage": [[offer, period, used] for (offer, period), used in sorted(member.usage.items())],
        "chips": member.chips,
        "points": _points_document(member.points),
    }
    return json.dumps(document, separators=(",", ":"))


def member_from_document(member_id: str, text: str) -> Member:
    d = json.loads(text)
    return Member(
        id=member_id,
        active=d["active"],
        birth_date=None if d["birth"] is None else date.fromisoformat(d["birth"]),
        gender=None if d["gender"] is None else Gender[d["gender"]],
        segment_tags=frozenset(_interned(d["tags"])),
        favorite_slots={
            _intern(offer): frozenset(_interned(skus)) for offer, skus in d["slots"].items()
        },
        favorite_categories=tuple(_terms_from_document(t) for t in d["categories"]),
        personal_offers=tuple(_personal_from_document(o) for o in d["personal"]),
        usage={(_intern(offer), _intern(period)): used for offer, period, used in d["usage"]},
        chips=d.get("chips", 0),  # documents written before chips have none
        points=_points_from_document(d["points"]),
    )


def _points_document(holding: PointsHolding) -> list[Any]:
    """[debt, [[left, kind, available at, expires at, receipt id], ...]] (no store keys)."""
    lots = [
        [lot.left, lot.kind, _time_text(lot.available_at), _time_text(lot.expires_at),
         lot.receipt_id]
        for lot in holding.lots
    ]  # fmt: skip
    return [holding.debt, lots]


def _points_from_document(d: list[Any]) -> PointsHolding:
    debt, lots = d
    if not debt and not lots:
        return NO_POINTS
    return PointsHolding(
        tuple(
            Lot(left, _intern(kind), _lot_time(available), _lot_time(expires), receipt)
            for left, kind, available, expires, receipt in lots
        ),
        debt,
    )


def _lot_time(text: str | None) -> datetime | None:
    """Not shared like offers' times (_time_value): each lot has times of its own."""
    return None if text is None else datetime.fromisoformat(text)


def _terms_document(t: FavoriteCategoryTerms) -> list[Any]:
    return [
        t.offer_id, t.name, list(t.group_ids), _benefit_pair(t.benefit), t.max_count,
        t.acceptance_required, sorted(t.chosen_group_ids), _time_text(t.valid_from),
        _time_text(t.valid_to), t.frequency.name, t.every_n_days, t.priority, t.stacking.name,
    ]  # fmt: skip


def _terms_from_document(d: list[Any]) -> FavoriteCategoryTerms:
    (offer_id, name, group_ids, (kind, value), max_count, acceptance, chosen, valid_from,
     valid_to, frequency, every_n_days, priority, stacking) = d  # fmt: skip
    return FavoriteCategoryTerms(
        offer_id=_intern(offer_id),
        name=_intern(name),
        group_ids=tuple(_interned(group_ids)),
        benefit=_shared_benefit(kind, value),
        max_count=max_count,
        acceptance_required=acceptance,
        chosen_group_ids=frozenset(_interned(chosen)),
        valid_from=_time_value(valid_from),
        valid_to=_time_value(valid_to),
        frequency=Frequency[frequency],
        every_n_days=every_n_days,
        priority=priority,
        stacking=Stacking[stacking],
    )


def _personal_document(o: PersonalOffer) -> list[Any]:
    return [
        o.offer_id, o.name, _benefit_pair(o.benefit), sorted(o.skus), o.group_id,
        _time_text(o.valid_from), _time_text(o.valid_to), _limit_triple(o.usage_limit),
        o.priority, o.stacking.name,
    ]  # fmt: skip


def _personal_from_document(d: list[Any]) -> PersonalOffer:
    (offer_id, name, (kind, value), skus, group_id, valid_from, valid_to, limit, priority,
     stacking) = d  # fmt: skip
    return PersonalOffer(
        offer_id=_intern(offer_id),
        name=_intern(name),
        benefit=_shared_benefit(kind, value),
        skus=frozenset(_interned(skus)),
        group_id=None if group_id is None else _intern(group_id),
        valid_from=_time_value(valid_from),
        valid_to=_time_value(valid_to),
        usage_limit=None if limit is None else _shared_limit(*limit),
        priority=priority,
        stacking=Stacking[stacking],
    )
