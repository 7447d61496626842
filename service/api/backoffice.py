"""BackOfficeService: catalogue, offers and favorite-products configuration, bulk imports of
customer attributes, and the favorite-products auto-fill action. Role BACK_OFFICE only (the
call interceptor checks it).

Upserts validate the whole request first - INVALID_ARGUMENT names the field at fault, e.g.
`products[3].unit` - and write nothing on any error; then they write through catalog_repo in
one transaction (which appends to the change feed) and reload this replica's snapshot, so the
next Calculate here sees the change; other replicas follow the change feed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.v1 import backoffice_pb2, backoffice_pb2_grpc
from service import limits
from service.api import convert
from service.api.import_rows import row_from_proto
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.config import Settings
from service.engine import model as m
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.imports.records import (
    MAX_LIMIT,
    MAX_MONEY,
    ParsedRow,
    check_benefit,
)
from service.imports.run import (
    DEFAULT_BATCH_SIZE,
    AttributeImport,
    BatchReport,
    check_import_id,
    find_import,
)
from service.limits import check_length, quote
from service.store import catalog_repo, favorites_repo
from service.store.import_repo import ImportState
from service.store.loader import iter_member_ids
from service.store.models import CategoryRow, FavoriteProductsOfferRow, OfferRow
from service.store.sql import table_of

log = logging.getLogger(__name__)

MAX_SLOTS = 100
MAX_AGE = 150
MAX_BIRTHDAY_WINDOW = 183
MINUTES_PER_DAY = 1440
MAX_EVERY_N_DAYS = 3660  # ten years, as the attribute import: next_allowed stays in the calendar
GENERAL_LEVELS = (m.Level.ALL_BUYERS, m.Level.MEMBERS_ONLY, m.Level.TARGET_AUDIENCE)


# --- field checks --------------------------------------------------------------------------------


def _key(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "must not be empty")
    return check_length(value, limits.ID, field)


def _name(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "must not be empty")
    return check_length(value, limits.NAME, field)


def _keys(values: Iterable[str], field: str, *, unique: bool = False) -> tuple[str, ...]:
    """Ids in order, each checked; a repeat is an error when `unique`, else dropped."""
    seen: dict[str, None] = {}
    for index, value in enumerate(values):
        _key(value, f"{field}[{index}]")
        if value in seen and unique:
            raise InvalidArgument(f"{field}[{index}]", f"{quote(value)} is listed twice")
        seen[value] = None
    return tuple(seen)


def _distinct_ids(ids: Sequence[str], field: str, what: str = "id") -> None:
    """No two entries of one request with the same id: `categories[4].id`."""
    seen: set[str] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            raise InvalidArgument(f"{field}[{index}].{what}", f"{quote(item_id)} appears twice")
        seen.add(item_id)


def _money(value: int, field: str) -> int:
    if not 0 <= value <= MAX_MONEY:
        raise InvalidArgument(field, "from 0 to 10^12 minor units")
    return value


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


def check_category_tree(
    categories: Sequence[m.Category], stored_parents: dict[str, str | None]
) -> None:
    """The categories, put into the stored tree, make no cycle."""
    parents = dict(stored_parents)
    parents.update({c.id: c.parent_id for c in categories})
    for index, category in enumerate(categories):
        seen = {category.id}
        parent = category.parent_id
        while parent is not None:
            if parent in seen:
                raise InvalidArgument(
                    f"categories[{index}].parent_id",
                    f"{quote(category.parent_id or '')} would make a cycle in the category tree",
                )
            seen.add(parent)
            parent = parents.get(parent)


def product_to_model(p: backoffice_pb2.Product, path: str) -> m.Product:
    sku = _key(p.sku, f"{path}.sku")
    name = _name(p.name, f"{path}.name")
    categories = _keys(p.category_ids, f"{path}.category_ids")
    unit = convert.UNIT.parse(p.unit, f"{path}.unit")
    min_price = _money(p.min_price, f"{path}.min_price") if p.HasField("min_price") else None
    return m.Product(sku, name, categories, unit, min_price, p.excluded)


def group_to_model(g: backoffice_pb2.ProductGroup, path: str) -> m.ProductGroup:
    return m.ProductGroup(
        id=_key(g.id, f"{path}.id"),
        name=_name(g.name, f"{path}.name"),
        skus=frozenset(_keys(g.skus, f"{path}.skus")),
        category_ids=frozenset(_keys(g.category_ids, f"{path}.category_ids")),
        excluded_skus=frozenset(_keys(g.excluded_skus, f"{path}.excluded_skus")),
        excluded_category_ids=frozenset(
            _keys(g.excluded_category_ids, f"{path}.excluded_category_ids")
        ),
    )


def list_to_model(pl: backoffice_pb2.ProductList, path: str) -> m.ProductList:
    return m.ProductList(
        id=_key(pl.id, f"{path}.id"),
        name=_name(pl.name, f"{path}.name"),
        skus=_keys(pl.skus, f"{path}.skus", unique=True),
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
        segment_tags=frozenset(_keys(a.segment_tags, f"{field}.segment_tags")),
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
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise InvalidArgument(f"{path}.validity.valid_to", "must be after valid_from")
    return valid_from, valid_to


def _usage_limit(offer: backoffice_pb2.Offer, path: str) -> m.UsageLimit | None:
    if not offer.HasField("usage_limit"):
        return None
    limit = convert.usage_limit_to_model(offer.usage_limit, f"{path}.usage_limit")
    if limit.limit > MAX_LIMIT:
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
        store_ids=frozenset(_keys(offer.store_ids, f"{path}.store_ids")),
        channels=channels,
        audience=_audience(offer, level, path),
        usage_limit=_usage_limit(offer, path),
        text=offer.text,
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
        if not 1 <= f.every_n_days <= MAX_EVERY_N_DAYS:
            raise InvalidArgument(
                f"{path}.every_n_days", f"from 1 to {MAX_EVERY_N_DAYS} for EVERY_N_DAYS"
            )
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


# --- model -> proto (responses) ------------------------------------------------------------------


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


def fill_import_status(out: backoffice_pb2.ImportStatus, state: ImportState) -> None:
    out.import_id = state.import_id
    out.state = state.status
    out.rows_total = state.rows_total
    out.rows_applied = state.rows_applied
    out.rows_rejected = state.rows_rejected
    out.started_at.FromDatetime(state.started_at)
    if state.finished_at is not None:
        out.finished_at.FromDatetime(state.finished_at)


# --- the servicer --------------------------------------------------------------------------------


class BackOfficeServicer(backoffice_pb2_grpc.BackOfficeServiceServicer):
    def __init__(
        self,
        settings: Settings,
        cache: BenefitCache,
        sessions: Callable[[], Session],
        *,
        clock: Clock = utc_now,
        import_batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._sessions = sessions
        self._clock = clock
        self._import_batch_size = import_batch_size

    def _write(self, action: Callable[[Session], None]) -> None:
        """One transaction; then this replica's snapshot is rebuilt from the store."""
        with self._sessions() as session:
            action(session)
            session.commit()
        self._cache.reload_snapshot()

    # --- catalogue ------------------------------------------------------------------------------

    def UpsertCategories(  # noqa: N802 - gRPC method name
        self, request: backoffice_pb2.UpsertCategoriesRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertCategoriesResponse:
        categories = [
            category_to_model(c, f"categories[{i}]") for i, c in enumerate(request.categories)
        ]
        _distinct_ids([c.id for c in categories], "categories")

        def write(session: Session) -> None:
            table = table_of(CategoryRow)
            rows = session.execute(select(table.c.id, table.c.parent_id))
            stored = {category_id: parent_id for category_id, parent_id in rows}
            check_category_tree(categories, stored)
            catalog_repo.save_categories(session, categories)

        if categories:
            self._write(write)
        return backoffice_pb2.UpsertCategoriesResponse(upserted=len(categories))

    def UpsertProducts(  # noqa: N802
        self, request: backoffice_pb2.UpsertProductsRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertProductsResponse:
        products = [product_to_model(p, f"products[{i}]") for i, p in enumerate(request.products)]
        _distinct_ids([p.sku for p in products], "products", "sku")
        if products:
            self._write(lambda session: catalog_repo.save_products(session, products))
        return backoffice_pb2.UpsertProductsResponse(upserted=len(products))

    def UpsertProductGroups(  # noqa: N802
        self, request: backoffice_pb2.UpsertProductGroupsRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertProductGroupsResponse:
        groups = [group_to_model(g, f"groups[{i}]") for i, g in enumerate(request.groups)]
        _distinct_ids([g.id for g in groups], "groups")
        if groups:
            self._write(lambda session: catalog_repo.save_product_groups(session, groups))
        return backoffice_pb2.UpsertProductGroupsResponse(upserted=len(groups))

    def UpsertProductLists(  # noqa: N802
        self, request: backoffice_pb2.UpsertProductListsRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertProductListsResponse:
        lists = [list_to_model(pl, f"lists[{i}]") for i, pl in enumerate(request.lists)]
        _distinct_ids([pl.id for pl in lists], "lists")
        if lists:
            self._write(lambda session: catalog_repo.save_product_lists(session, lists))
        return backoffice_pb2.UpsertProductListsResponse(upserted=len(lists))

    def UpsertStores(  # noqa: N802
        self, request: backoffice_pb2.UpsertStoresRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertStoresResponse:
        stores = [store_to_model(s, f"stores[{i}]") for i, s in enumerate(request.stores)]
        _distinct_ids([s.id for s in stores], "stores")
        if stores:
            self._write(lambda session: catalog_repo.save_stores(session, stores))
        return backoffice_pb2.UpsertStoresResponse(upserted=len(stores))

    # --- offers ---------------------------------------------------------------------------------

    def UpsertOffer(  # noqa: N802
        self, request: backoffice_pb2.UpsertOfferRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertOfferResponse:
        if not request.HasField("offer"):
            raise InvalidArgument("offer", "required")
        offer = offer_to_model(request.offer, "offer", GENERAL_LEVELS)
        active = request.offer.active

        def write(session: Session) -> None:
            favorites = table_of(FavoriteProductsOfferRow)
            query = select(favorites.c.offer_id).where(favorites.c.offer_id == offer.id)
            if session.execute(query).first() is not None:
                raise FailedPrecondition(
                    f"offer {quote(offer.id)} is a favorite-products offer: "
                    "use UpsertFavoriteProductsOffer",
                    reason="OFFER_KIND_MISMATCH",
                )
            catalog_repo.save_offer(session, offer, active=active, now=self._clock())

        self._write(write)
        response = backoffice_pb2.UpsertOfferResponse()
        fill_offer(response.offer, offer, active=active)
        return response

    def UpsertFavoriteProductsOffer(  # noqa: N802
        self,
        request: backoffice_pb2.UpsertFavoriteProductsOfferRequest,
        context: grpc.ServicerContext,
    ) -> backoffice_pb2.UpsertFavoriteProductsOfferResponse:
        if not request.HasField("offer"):
            raise InvalidArgument("offer", "required")
        favorite = favorite_offer_to_model(request.offer, "offer")
        active = request.offer.offer.active
        offer_id = favorite.offer.id

        def write(session: Session) -> None:
            offers = table_of(OfferRow)
            favorites = table_of(FavoriteProductsOfferRow)
            level = session.execute(
                select(offers.c.level).where(
                    offers.c.id == offer_id,
                    offers.c.id.not_in(select(favorites.c.offer_id)),
                )
            ).scalar()
            if level is not None:
                raise FailedPrecondition(
                    f"offer {quote(offer_id)} is an offer of level {level.name}: use UpsertOffer, "
                    "or another id",
                    reason="OFFER_KIND_MISMATCH",
                )
            catalog_repo.save_favorite_products_offer(
                session, favorite, active=active, now=self._clock()
            )

        self._write(write)
        response = backoffice_pb2.UpsertFavoriteProductsOfferResponse()
        fill_favorite_offer(response.offer, favorite, active=active)
        return response

    # --- imports --------------------------------------------------------------------------------

    def ImportCustomerAttributes(  # noqa: N802
        self,
        request_iterator: Iterator[backoffice_pb2.ImportCustomerAttributesRequest],
        context: grpc.ServicerContext,
    ) -> backoffice_pb2.ImportCustomerAttributesResponse:
        messages = iter(request_iterator)
        first = next(messages, None)
        if first is None or first.WhichOneof("item") != "header":
            raise InvalidArgument("header", "the first message must carry the import header")
        header = first.header
        check_import_id(header.import_id, "header.import_id")
        check_length(header.fingerprint, limits.ID, "header.fingerprint")
        check_length(header.source, limits.NAME, "header.source")
        run = AttributeImport(
            self._sessions,
            header.import_id,
            fingerprint=header.fingerprint or None,
            batch_size=self._import_batch_size,
            clock=self._clock,
            on_batch=self._forget_cards,
            on_committed=self._cache.members_changed,
        )
        start = run.begin()
        response = backoffice_pb2.ImportCustomerAttributesResponse()
        if start.replayed:
            fill_import_status(response.status, start.state)
            response.replayed = True
            return response
        log.info(
            "import %s from %s: %s",
            header.import_id,
            quote(header.source),
            f"resuming after {start.skip} rows" if start.skip else "started",
        )
        outcome = run.run(_stream_rows(messages, start.skip))
        fill_import_status(response.status, outcome.state)
        for error in outcome.errors:
            response.errors.add(
                line_number=error.line_number, field=error.field, reason=error.reason
            )
        log.info(
            "import %s: %d rows applied, %d rejected",
            header.import_id,
            outcome.state.rows_applied,
            outcome.state.rows_rejected,
        )
        return response

    def _forget_cards(self, report: BatchReport) -> None:
        """After a committed batch (whose members the cache has heard of): this replica reads
        the changed cards afresh."""
        for card_number in report.applied.card_numbers:
            self._cache.forget_card(card_number)

    # --- favorite-products auto-fill -------------------------------------------------------------

    def RunFavoriteAutofill(  # noqa: N802
        self, request: backoffice_pb2.RunFavoriteAutofillRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.RunFavoriteAutofillResponse:
        """Fill empty slots (SPEC 7.1 auto-fill), one transaction per batch of members, so a
        run over millions of members holds no long transaction and shows each batch at once."""
        check_length(request.offer_id, limits.ID, "offer_id")
        ids = list(_keys(request.member_ids, "member_ids"))
        snapshot = self._cache.snapshot
        favorite = favorites_repo.favorite_offer(snapshot, request.offer_id)
        now = self._clock()
        response = backoffice_pb2.RunFavoriteAutofillResponse()
        batches = 0
        for batch in self._autofill_batches(favorite, ids, now):
            batches += 1
            with self._sessions() as session:
                outcome = favorites_repo.run_autofill(
                    session, snapshot, favorite.offer.id, batch, now
                )
                session.commit()
            self._cache.members_changed(outcome.member_ids)
            response.members_updated += outcome.members_updated
            response.slots_filled += outcome.slots_filled
        if batches == 0:  # nobody to fill: still refuse an offer without auto-fill, or ended
            with self._sessions() as session:
                favorites_repo.run_autofill(session, snapshot, favorite.offer.id, [], now)
        return response

    def _autofill_batches(
        self, favorite: m.FavoriteProductsOffer, ids: list[str], now: datetime
    ) -> Iterator[list[str]]:
        """The members asked for, or every member who can have a list: all members for a
        predefined list, last month's buyers for a purchase-history list; in batches."""
        size = favorites_repo.AUTOFILL_BATCH
        if ids:
            for start in range(0, len(ids), size):
                yield ids[start : start + size]
            return
        with self._sessions() as reader:
            if favorite.list_source is m.ListSource.PREDEFINED:
                candidates: Iterator[str] = iter_member_ids(reader)
            else:
                month = favorites_repo.list_month(now, self._cache.snapshot.program_time_zone)
                candidates = favorites_repo.members_who_bought(reader, month)
            batch: list[str] = []
            for member_id in candidates:
                batch.append(member_id)
                if len(batch) >= size:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def GetImportStatus(  # noqa: N802
        self, request: backoffice_pb2.GetImportStatusRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.GetImportStatusResponse:
        check_import_id(request.import_id)
        state = find_import(self._sessions, request.import_id)
        if state is None:
            raise NotFound(f"no import {quote(request.import_id)}", reason="IMPORT_NOT_FOUND")
        response = backoffice_pb2.GetImportStatusResponse()
        fill_import_status(response.status, state)
        return response


def _stream_rows(
    messages: Iterator[backoffice_pb2.ImportCustomerAttributesRequest], skip: int
) -> Iterator[ParsedRow]:
    """The rows after the header, as parsed rows; the first `skip` are passed over unread
    (a resumed import)."""
    ordinal = 0
    for message in messages:
        if message.WhichOneof("item") != "row":
            raise InvalidArgument("row", "after the header every message must carry a row")
        ordinal += 1
        if ordinal <= skip:
            continue
        yield row_from_proto(message.row, ordinal)
