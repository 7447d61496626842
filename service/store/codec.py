"""Mapping between engine domain objects and row dicts, both ways, in one place.

Writers turn domain objects into dicts keyed by column name; readers turn selected rows
(anything with attribute access by column name) back into domain objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.engine.model import (
    Audience,
    Benefit,
    Channel,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Gender,
    Offer,
    PersonalOffer,
    Schedule,
    TimeRange,
    UsageLimit,
)

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
