"""Back-office messages to domain values and back: catalogue, offers and favorite-products
offers. Every field is checked as it is translated - INVALID_ARGUMENT names the field at fault
in the request, e.g. `products[3].unit` - so a request is checked in full before any use case
sees it. The ranges of offer terms are the engine's (service.engine.definitions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from loyalty.v1 import backoffice_pb2
from service import limits
from service.api import convert
from service.engine import model as m
from service.engine.definitions import (
    MAX_USAGE_LIMIT,
    check_benefit,
    check_chips_terms,
    check_every_n_days,
    check_money,
    check_validity,
)
from service.engine.schedule import MINUTES_PER_DAY
from service.errors import InvalidArgument
from service.limits import check_length, quote

GENERAL_LEVELS = (m.Level.ALL_BUYERS, m.Level.MEMBERS_ONLY, m.Level.TARGET_AUDIENCE)
MAX_SLOTS = 100
MAX_AGE = 150
MAX_BIRTHDAY_WINDOW = 183


# --- field checks --------------------------------------------------------------------------------


def _key(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "must not be empty")
    return check_length(value, limits.ID, field)


def _name(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "must not be empty")
    return check_length(value, limits.NAME, field)


def keys(values: Iterable[str], field: str, *, unique: bool = False) -> tuple[str, ...]:
    """Ids in order, each checked; a repeat is an error when `unique`, else dropped."""
    seen: dict[str, None] = {}
    for index, value in enumerate(values):
        _key(value, f"{field}[{index}]")
        if value in seen and unique:
            raise InvalidArgument(f"{field}[{index}]", f"{quote(value)} is listed twice")
        seen[value] = None
    return tuple(seen)


def distinct_ids(ids: Sequence[str], field: str, what: str = "id") -> None:
    """No two entries of one request with the same id: `categories[4].id`."""
    seen: set[str] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            raise InvalidArgument(f"{field}[{index}].{what}", f"{quote(item_id)} appears twice")
        seen.add(item_id)


def _time_zone(name: str, field: str) -> str | None:
    if not name:
        return None
    check_length(name, limits.ZONE, field)
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found: KeyError; a directory: OSError
        raise InvalidArgument(field, f"unknown IANA time zone {quote(name)}") from None
    return name


# --- catalogue -----------------------------------------------------------------------------------


def category_to_model(c: backoffice_pb2.Category, path: str) -> m.Category:
    category_id = _key(c.id, f"{path}.id")
    parent_id = _key(c.parent_id, f"{path}.parent_id") if c.parent_id else None
    if parent_id == category_id:
        raise InvalidArgument(f"{path}.parent_id", "a category cannot be its own parent")
    return m.Category(category_id, _name(c.name, f"{path}.name"), parent_id)


def product_to_model(p: backoffice_pb2.Product, path: str) -> m.Product:
    sku = _key(p.sku, f"{path}.sku")
    name = _name(p.name, f"{path}.name")
    categories = keys(p.category_ids, f"{path}.category_ids")
    unit = convert.UNIT.parse(p.unit, f"{path}.unit")
    min_price = check_money(p.min_price, f"{path}.min_price") if p.HasField("min_price") else None
    return m.Product(sku, name, categories, unit, min_price, p.excluded)


def group_to_model(g: backoffice_pb2.ProductGroup, path: str) -> m.ProductGroup:
    return m.ProductGroup(
        id=_key(g.id, f"{path}.id"),
        name=_name(g.name, f"{path}.name"),
        skus=frozenset(keys(g.skus, f"{path}.skus")),
        category_ids=frozenset(keys(g.category_ids, f"{path}.category_ids")),
        excluded_skus=frozenset(keys(g.excluded_skus, f"{path}.excluded_skus")),
        excluded_category_ids=frozenset(
            keys(g.excluded_category_ids, f"{path}.excluded_category_ids")
        ),
    )


def list_to_model(pl: backoffice_pb2.ProductList, path: str) -> m.ProductList:
    return m.ProductList(
        id=_key(pl.id, f"{path}.id"),
        name=_name(pl.name, f"{path}.name"),
        skus=keys(pl.skus, f"{path}.skus", unique=True),
    )


def store_to_model(s: backoffice_pb2.Store, path: str) -> m.Store:
    return m.Store(
        id=_key(s.id, f"{path}.id"),
        name=_name(s.name, f"{path}.name"),
        time_zone=_time_zone(s.time_zone, f"{path}.time_zone"),
    )


# --- offers --------------------------------------------------------------------------------------


def _schedule(offer: backoffice_pb2.Offer, path: str) -> m.Schedule | None:
    if not offer.HasField("schedule"):
        return None
    schedule = offer.schedule
    days: set[int] = set()
    for index, day in enumerate(schedule.days_of_week):
        field = f"{path}.schedule.days_of_week[{index}]"
        if not 1 <= day <= 7:
            raise InvalidArgument(field, "ISO days: 1 = Monday ... 7 = Sunday")
        if day in days:
            raise InvalidArgument(field, f"day {day} is listed twice")
        days.add(day)
    ranges = []
    for index, r in enumerate(schedule.time_ranges):
        field = f"{path}.schedule.time_ranges[{index}]"
        if not 0 <= r.start_minute < MINUTES_PER_DAY:
            raise InvalidArgument(f"{field}.start_minute", "minutes since midnight, 0 to 1439")
        if not 0 <= r.end_minute <= MINUTES_PER_DAY:
            raise InvalidArgument(f"{field}.end_minute", "minutes since midnight, 0 to 1440")
        if r.start_minute == r.end_minute % MINUTES_PER_DAY:
            raise InvalidArgument(field, "an empty range; leave time_ranges empty for all day")
        ranges.append(m.TimeRange(r.start_minute, r.end_minute))
    if not days and not ranges:
        return None
    return m.Schedule(frozenset(days), tuple(ranges))


def _audience(offer: backoffice_pb2.Offer, level: m.Level, path: str) -> m.Audience | None:
    field = f"{path}.audience"
    given = offer.HasField("audience") and offer.audience.ByteSize() > 0
    if level is not m.Level.TARGET_AUDIENCE:
        if given:
            raise InvalidArgument(field, "only for LEVEL_TARGET_AUDIENCE offers")
        return None
    if not given:
        raise InvalidArgument(field, "a target-audience offer needs at least one criterion")
    a = offer.audience
    min_age = a.min_age if a.HasField("min_age") else None
    max_age = a.max_age if a.HasField("max_age") else None
    for name, age in (("min_age", min_age), ("max_age", max_age)):
        if age is not None and not 0 <= age <= MAX_AGE:
            raise InvalidArgument(f"{field}.{name}", f"whole years, 0 to {MAX_AGE}")
    if min_age is not None and max_age is not None and min_age > max_age:
        raise InvalidArgument(f"{field}.max_age", "must not be below min_age")
    within = a.birthday_within_days if a.HasField("birthday_within_days") else None
    if within is not None and not 0 <= within <= MAX_BIRTHDAY_WINDOW:
        raise InvalidArgument(f"{field}.birthday_within_days", f"days, 0 to {MAX_BIRTHDAY_WINDOW}")
    return m.Audience(
        segment_tags=frozenset(keys(a.segment_tags, f"{field}.segment_tags")),
        min_age=min_age,
        max_age=max_age,
        gender=convert.GENDER.parse_optional(a.gender, f"{field}.gender"),
        birthday_within_days=within,
    )


def _validity(offer: backoffice_pb2.Offer, path: str) -> tuple[datetime | None, datetime | None]:
    if not offer.HasField("validity"):
        return None, None
    field = f"{path}.validity"
    valid_from = convert.optional_datetime(offer.validity, "valid_from", f"{field}.valid_from")
    valid_to = convert.optional_datetime(offer.validity, "valid_to", f"{field}.valid_to")
    check_validity(valid_from, valid_to, f"{field}.valid_to")
    return valid_from, valid_to


def _usage_limit(offer: backoffice_pb2.Offer, path: str) -> m.UsageLimit | None:
    if not offer.HasField("usage_limit"):
        return None
    limit = convert.usage_limit_to_model(offer.usage_limit, f"{path}.usage_limit")
    if limit.limit > MAX_USAGE_LIMIT:
        raise InvalidArgument(f"{path}.usage_limit.limit", "at most 10^12")
    return limit


def offer_to_model(offer: backoffice_pb2.Offer, path: str, levels: Sequence[m.Level]) -> m.Offer:
    """An offer of one of `levels`, checked field by field."""
    offer_id = _key(offer.id, f"{path}.id")
    name = _name(offer.name, f"{path}.name")
    level = convert.LEVEL.parse(offer.level, f"{path}.level")
    if level not in levels:
        if level is m.Level.INDIVIDUAL:
            reason = "INDIVIDUAL offers are favorite-products offers: "
            reason += "use UpsertFavoriteProductsOffer"
        else:
            reason = "must be " + " or ".join(f"LEVEL_{lv.name}" for lv in levels)
        raise InvalidArgument(f"{path}.level", reason)
    kind = convert.BENEFIT_KIND.parse(offer.benefit.kind, f"{path}.benefit.kind")
    benefit = check_benefit(
        kind, offer.benefit.value, f"{path}.benefit.kind", f"{path}.benefit.value"
    )
    scope = _key(offer.scope_group_id, f"{path}.scope_group_id") if offer.scope_group_id else None
    stacking = convert.STACKING.parse(offer.stacking, f"{path}.stacking")
    valid_from, valid_to = _validity(offer, path)
    channels = frozenset(
        convert.CHANNEL.parse(channel, f"{path}.channels[{index}]")
        for index, channel in enumerate(offer.channels)
    )
    check_length(offer.text, limits.NAME, f"{path}.text")
    usage_limit = _usage_limit(offer, path)
    check_chips_terms(level, benefit, offer.chips_threshold, offer.chips_price, usage_limit, path)
    return m.Offer(
        id=offer_id,
        name=name,
        level=level,
        benefit=benefit,
        scope_group_id=scope,
        priority=offer.priority,
        stacking=stacking,
        valid_from=valid_from,
        valid_to=valid_to,
        schedule=_schedule(offer, path),
        store_ids=frozenset(keys(offer.store_ids, f"{path}.store_ids")),
        channels=channels,
        audience=_audience(offer, level, path),
        usage_limit=usage_limit,
        text=offer.text,
        chips_threshold=offer.chips_threshold,
        chips_price=offer.chips_price,
    )


def favorite_offer_to_model(
    f: backoffice_pb2.FavoriteProductsOffer, path: str
) -> m.FavoriteProductsOffer:
    if not f.HasField("offer"):
        raise InvalidArgument(f"{path}.offer", "required")
    offer = offer_to_model(f.offer, f"{path}.offer", (m.Level.INDIVIDUAL,))
    if offer.scope_group_id is not None:
        raise InvalidArgument(
            f"{path}.offer.scope_group_id", "must be empty: the scope is the member's slots"
        )
    if not 1 <= f.slot_count <= MAX_SLOTS:
        raise InvalidArgument(f"{path}.slot_count", f"from 1 to {MAX_SLOTS}")
    source = convert.LIST_SOURCE.parse(f.list_source, f"{path}.list_source")
    list_id: str | None = None
    if source is m.ListSource.PREDEFINED:
        if not f.product_list_id:
            raise InvalidArgument(f"{path}.product_list_id", "required for LIST_SOURCE_PREDEFINED")
        list_id = _key(f.product_list_id, f"{path}.product_list_id")
    elif f.product_list_id:
        raise InvalidArgument(f"{path}.product_list_id", "only for LIST_SOURCE_PREDEFINED")
    frequency = convert.FREQUENCY.parse(f.frequency, f"{path}.frequency")
    if frequency is m.Frequency.EVERY_N_DAYS:
        check_every_n_days(f.every_n_days, f"{path}.every_n_days")
    elif f.every_n_days != 0:
        raise InvalidArgument(f"{path}.every_n_days", "only for SELECTION_FREQUENCY_EVERY_N_DAYS")
    return m.FavoriteProductsOffer(
        offer=offer,
        slot_count=f.slot_count,
        list_source=source,
        product_list_id=list_id,
        frequency=frequency,
        every_n_days=f.every_n_days,
        autofill=f.autofill,
    )


def offer_state(offer: backoffice_pb2.Offer, path: str) -> bool:
    """Whether the upserted offer is to be active (spec §17.3): `state` says so; without it
    the deprecated `active = true` of older clients still means active, and anything else
    is refused, as proto3 cannot tell `active = false` from a client that forgot the field."""
    state, active = offer.state, offer.active
    if state == backoffice_pb2.OFFER_STATE_ACTIVE:
        return True
    if state == backoffice_pb2.OFFER_STATE_INACTIVE:
        if active:
            raise InvalidArgument(f"{path}.active", "true contradicts state OFFER_STATE_INACTIVE")
        return False
    if state == backoffice_pb2.OFFER_STATE_UNSPECIFIED and active:
        return True
    raise InvalidArgument(
        f"{path}.state",
        "must be OFFER_STATE_ACTIVE or OFFER_STATE_INACTIVE (UNSPECIFIED is not a value)",
    )


# --- model -> proto (responses) ------------------------------------------------------------------


def fill_category(out: backoffice_pb2.Category, category: m.Category) -> None:
    out.id = category.id
    out.name = category.name
    out.parent_id = category.parent_id or ""


def fill_product(out: backoffice_pb2.Product, product: m.Product) -> None:
    out.sku = product.sku
    out.name = product.name
    out.category_ids.extend(product.category_ids)
    out.unit = convert.UNIT.to_proto[product.unit]
    if product.min_price is not None:
        out.min_price = product.min_price
    out.excluded = product.excluded


def fill_product_list(out: backoffice_pb2.ProductList, product_list: m.ProductList) -> None:
    out.id = product_list.id
    out.name = product_list.name
    out.skus.extend(product_list.skus)


def fill_store(out: backoffice_pb2.Store, store: m.Store) -> None:
    out.id = store.id
    out.name = store.name
    out.time_zone = store.time_zone or ""


def fill_offer(out: backoffice_pb2.Offer, offer: m.Offer, *, active: bool) -> None:
    out.id = offer.id
    out.name = offer.name
    out.level = convert.LEVEL.to_proto[offer.level]
    convert.fill_benefit(out.benefit, offer.benefit)
    out.scope_group_id = offer.scope_group_id or ""
    out.priority = offer.priority
    out.stacking = convert.STACKING.to_proto[offer.stacking]
    if offer.valid_from is not None or offer.valid_to is not None:
        convert.fill_validity(out.validity, offer.valid_from, offer.valid_to)
    if offer.schedule is not None:
        out.schedule.days_of_week.extend(sorted(offer.schedule.days_of_week))
        for r in offer.schedule.time_ranges:
            out.schedule.time_ranges.add(start_minute=r.start_minute, end_minute=r.end_minute)
    out.store_ids.extend(sorted(offer.store_ids))
    out.channels.extend(
        convert.CHANNEL.to_proto[c] for c in sorted(offer.channels, key=lambda c: c.value)
    )
    if offer.audience is not None:
        _fill_audience(out.audience, offer.audience)
    if offer.usage_limit is not None:
        convert.fill_usage_limit(out.usage_limit, offer.usage_limit)
    out.text = offer.text
    out.active = active
    out.state = backoffice_pb2.OFFER_STATE_ACTIVE if active else backoffice_pb2.OFFER_STATE_INACTIVE
    out.chips_threshold = offer.chips_threshold
    out.chips_price = offer.chips_price


def _fill_audience(out: backoffice_pb2.Audience, audience: m.Audience) -> None:
    out.segment_tags.extend(sorted(audience.segment_tags))
    if audience.min_age is not None:
        out.min_age = audience.min_age
    if audience.max_age is not None:
        out.max_age = audience.max_age
    if audience.gender is not None:
        out.gender = convert.GENDER.to_proto[audience.gender]
    if audience.birthday_within_days is not None:
        out.birthday_within_days = audience.birthday_within_days


def fill_favorite_offer(
    out: backoffice_pb2.FavoriteProductsOffer, f: m.FavoriteProductsOffer, *, active: bool
) -> None:
    fill_offer(out.offer, f.offer, active=active)
    out.slot_count = f.slot_count
    out.list_source = convert.LIST_SOURCE.to_proto[f.list_source]
    out.product_list_id = f.product_list_id or ""
    out.frequency = convert.FREQUENCY.to_proto[f.frequency]
    out.every_n_days = f.every_n_days
    out.autofill = f.autofill
