"""MemberService: the member lookup (SPEC 9), favorite selections (SPEC 7.1, 7.2) and the
operator's audited edit of favorite products.

The lookup answers from the cache (the member's terms, catalogue and offers) plus four
indexed queries on the member's key: favorite selections, favorite slots, last month's
purchases (only with a PURCHASE_HISTORY offer) and the points ledger (plus one for the
favorite-category change times when the member has such terms).

Writes go through the store in one transaction; after the commit the member is dropped from
this replica's cache (read-your-writes here), and the change-feed row written in the same
transaction makes every other replica drop it too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from loyalty.v1 import common_pb2, member_pb2, member_pb2_grpc
from service import limits
from service.api import convert
from service.api.auth import current_principal
from service.api.lookup import MemberLookup
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.config import Settings
from service.engine.eligibility import ReceiptContext, ineligibility_reason
from service.engine.model import (
    Channel,
    FavoriteCategoryTerms,
    Member,
    Offer,
    PersonalOffer,
    Receipt,
)
from service.engine.rules import Rule, rule_for_offer
from service.engine.snapshot import Snapshot
from service.engine.usage import local_date, period_key
from service.engine.validation import check_instant
from service.errors import InvalidArgument, NotFound
from service.limits import check_each, check_length
from service.store.category_choice_repo import (
    effective_choice,
    last_category_changes,
    select_favorite_categories,
)
from service.store.favorites_repo import (
    AuditEntry,
    ChangeWindow,
    FavoriteState,
    change_window,
    list_favorite_audit,
    load_favorite_states,
    operator_set_favorite_products,
    select_favorite_products,
)
from service.store.member_repo import member_exists
from service.store.models import PointsLedgerRow

DEFAULT_AUDIT_LIMIT = 100
MAX_AUDIT_LIMIT = 1000


# --- general offers that apply to a member now -------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneralOffer:
    offer: Offer
    rule: Rule


def general_offers(snapshot: Snapshot) -> list[GeneralOffer]:
    """The offers of levels 1-3, compiled as the calculation compiles them, in candidate
    order (higher priority first, then offer id)."""
    found = [GeneralOffer(o, r) for o in snapshot.offers if (r := rule_for_offer(o)) is not None]
    found.sort(key=lambda g: g.rule.sort_key)
    return found


def offers_applying(
    snapshot: Snapshot,
    offers: Iterable[GeneralOffer],
    member: Member,
    at: datetime,
    store_id: str = "",
    channel: Channel | None = None,
) -> list[GeneralOffer]:
    """The general and audience offers that apply to the member at `at`: the calculation's
    own filters (engine.eligibility: validity, member, audience, schedule, usage limit) on an
    empty receipt of the member. Without a store (or channel), an offer limited to some stores
    (channels) applies when it applies in one of them; its schedule then runs on that store's
    clock."""
    contexts: dict[tuple[str, Channel], ReceiptContext] = {}

    def context(store: str, on: Channel) -> ReceiptContext:
        found = contexts.get((store, on))
        if found is None:
            receipt = Receipt("", at, (), store_id=store, channel=on, member=member)
            found = contexts[(store, on)] = ReceiptContext(snapshot, receipt)
        return found

    applying = []
    for general in offers:
        rule = general.rule
        stores = [store_id] if store_id or not rule.store_ids else sorted(rule.store_ids)
        if channel is not None or not rule.channels:
            channels = [channel or Channel.POS]
        else:
            channels = sorted(rule.channels, key=lambda c: c.value)
        if any(
            ineligibility_reason(rule, context(store, on)) is None
            for store in stores
            for on in channels
        ):
            applying.append(general)
    return applying


def points_balance(session: Session, member_id: str) -> int:
    """The member's bonus points: the sum of their ledger (0 without entries)."""
    total = session.scalar(
        select(func.coalesce(func.sum(PointsLedgerRow.points), 0)).where(
            PointsLedgerRow.member_id == member_id
        )
    )
    return int(total or 0)


# --- messages ---------------------------------------------------------------------------------


def fill_change_window(out: member_pb2.ChangeWindow, window: ChangeWindow) -> None:
    out.change_allowed_now = window.allowed_now
    out.never_again = window.never_again
    if window.next_allowed is not None:
        convert.set_timestamp(out.next_change_allowed, window.next_allowed)


def _product_name(snapshot: Snapshot, sku: str) -> str:
    product = snapshot.product(sku)
    return product.name if product is not None else ""


def fill_favorite_products(
    out: member_pb2.FavoriteProductsView,
    state: FavoriteState,
    snapshot: Snapshot,
    at: datetime,
) -> None:
    favorite = state.offer
    offer = favorite.offer
    out.offer_id = offer.id
    out.name = offer.name
    convert.fill_benefit(out.benefit, offer.benefit)
    out.slot_count = favorite.slot_count
    out.list_source = convert.LIST_SOURCE.to_proto[favorite.list_source]
    out.frequency = convert.FREQUENCY.to_proto[favorite.frequency]
    out.every_n_days = favorite.every_n_days
    convert.fill_validity(out.validity, offer.valid_from, offer.valid_to)
    for slot in state.slots:
        view = out.slots.add()
        view.index = slot.index
        if slot.sku is not None:
            view.sku = slot.sku
            view.product_name = _product_name(snapshot, slot.sku)
            view.auto_filled = slot.auto_filled
            if slot.filled_at is not None:
                convert.set_timestamp(view.filled_at, slot.filled_at)
    for sku in state.choices:
        out.list.add(sku=sku, product_name=_product_name(snapshot, sku))
    window = change_window(
        favorite.frequency,
        favorite.every_n_days,
        state.last_change_at,
        at,
        snapshot.program_time_zone,
        offer.valid_to,
    )
    fill_change_window(out.change_window, window)


def fill_favorite_categories(
    out: member_pb2.FavoriteCategoriesView,
    terms: FavoriteCategoryTerms,
    last_change_at: datetime | None,
    snapshot: Snapshot,
    at: datetime,
) -> None:
    """`chosen` marks the categories that apply: the member's choice (acceptance on), or
    every offered one (acceptance off: nothing to choose, no change window)."""
    out.offer_id = terms.offer_id
    out.name = terms.name
    convert.fill_benefit(out.benefit, terms.benefit)
    convert.fill_validity(out.validity, terms.valid_from, terms.valid_to)
    applying = set(effective_choice(terms))
    for group_id in dict.fromkeys(terms.group_ids):
        group = snapshot.group(group_id)
        out.offered.add(
            group_id=group_id,
            name=group.name if group is not None else group_id,
            chosen=group_id in applying,
        )
    out.max_count = terms.max_count
    out.acceptance_required = terms.acceptance_required
    out.frequency = convert.FREQUENCY.to_proto[terms.frequency]
    out.every_n_days = terms.every_n_days
    if terms.acceptance_required:
        window = change_window(
            terms.frequency,
            terms.every_n_days,
            last_change_at,
            at,
            snapshot.program_time_zone,
            terms.valid_to,
        )
    else:
        window = ChangeWindow(allowed_now=False)
    fill_change_window(out.change_window, window)


def fill_personal_offer(
    out: member_pb2.PersonalOfferView,
    offer: PersonalOffer,
    member: Member,
    tz: ZoneInfo,
    at: datetime,
) -> None:
    out.offer_id = offer.offer_id
    out.name = offer.name
    convert.fill_benefit(out.benefit, offer.benefit)
    convert.fill_validity(out.validity, offer.valid_from, offer.valid_to)
    out.skus.extend(sorted(offer.skus))
    out.group_id = offer.group_id or ""
    if offer.usage_limit is not None:
        convert.fill_usage_limit(out.usage_limit, offer.usage_limit)
        key = period_key(offer.usage_limit.period, local_date(at, tz))
        out.used = member.usage.get((offer.offer_id, key), 0)


def fill_general_offer(out: member_pb2.OfferSummary, general: GeneralOffer) -> None:
    offer = general.offer
    out.offer_id = offer.id
    out.name = offer.name
    out.level = convert.LEVEL.to_proto[offer.level]
    convert.fill_benefit(out.benefit, offer.benefit)
    out.scope_group_id = offer.scope_group_id or ""
    convert.fill_validity(out.validity, offer.valid_from, offer.valid_to)
    out.text = general.rule.text


def fill_audit(out: member_pb2.AuditEntry, entry: AuditEntry) -> None:
    out.id = entry.id
    out.actor = entry.actor
    out.member_id = entry.member_id
    out.offer_id = entry.offer_id
    convert.set_timestamp(out.at, entry.at)
    out.skus_before.extend(sku or "" for sku in entry.skus_before)
    out.skus_after.extend(sku or "" for sku in entry.skus_after)
    out.comment = entry.comment


def _valid_terms_at(valid_from: datetime | None, valid_to: datetime | None, at: datetime) -> bool:
    return (valid_from is None or valid_from <= at) and (valid_to is None or at < valid_to)


def _slot_skus(skus: Iterable[str]) -> list[str | None]:
    """The wire's slot list ("" for an empty slot) as the store's (None)."""
    return [sku or None for sku in skus]


# --- the servicer -----------------------------------------------------------------------------


class MemberServicer(member_pb2_grpc.MemberServiceServicer):
    def __init__(
        self,
        settings: Settings,
        cache: BenefitCache,
        sessions: sessionmaker[Session],
        clock: Clock = utc_now,
        members: MemberLookup | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._members = members or MemberLookup.from_settings(cache, settings)
        self._sessions = sessions
        self._clock = clock
        self._general: tuple[Snapshot, list[GeneralOffer]] | None = None
        self._lock = threading.Lock()

    def _member(self, identity: common_pb2.MemberIdentity) -> Member:
        member = self._members.resolve(identity, "member")
        if member is None:
            raise InvalidArgument("member", "a card number or a member id is required")
        return member

    def _general_offers(self, snapshot: Snapshot) -> list[GeneralOffer]:
        """Compiled once per snapshot (the cache swaps the snapshot whole on a change)."""
        memo = self._general
        if memo is not None and memo[0] is snapshot:
            return memo[1]
        offers = general_offers(snapshot)
        with self._lock:
            self._general = (snapshot, offers)
        return offers

    def _forget(self, member_id: str) -> None:
        self._cache.members_changed([member_id])

    @contextmanager
    def _member_write(self, member_id: str) -> Iterator[Session]:
        """A session for a write of the member's state. A member deleted from the store since
        this replica cached them is NOT_FOUND (the foreign keys of their rows refuse the
        write) and forgotten, so the next lookup says so too."""
        with self._sessions() as session:
            try:
                yield session
            except IntegrityError:
                session.rollback()
                if member_exists(session, member_id):
                    raise
                self._forget(member_id)
                raise NotFound("member not found", reason="MEMBER_NOT_FOUND") from None

    # --- lookup -----------------------------------------------------------------------------

    def GetMemberOffers(  # noqa: N802 - gRPC method name
        self, request: member_pb2.GetMemberOffersRequest, context: grpc.ServicerContext
    ) -> member_pb2.GetMemberOffersResponse:
        at = convert.optional_datetime(request, "at") or self._clock()
        check_instant(at, "at")
        channel = convert.CHANNEL.parse_optional(request.channel, "channel")
        check_length(request.store_id, limits.ID, "store_id")
        if request.store_id:
            current_principal().check_store(request.store_id)
        member = self._member(request.member)
        snapshot = self._cache.snapshot
        tz = snapshot.program_time_zone
        categories = [
            t for t in member.favorite_categories if _valid_terms_at(t.valid_from, t.valid_to, at)
        ]
        with self._sessions() as session:
            favorites = load_favorite_states(session, snapshot, member.id, at)
            changes = last_category_changes(session, member.id) if categories else {}
            points = points_balance(session, member.id)
        response = member_pb2.GetMemberOffersResponse(member_id=member.id, points_balance=points)
        for state in favorites:
            fill_favorite_products(response.favorite_products.add(), state, snapshot, at)
        for terms in categories:
            fill_favorite_categories(
                response.favorite_categories.add(),
                terms,
                changes.get(terms.offer_id),
                snapshot,
                at,
            )
        for offer in member.personal_offers:
            if _valid_terms_at(offer.valid_from, offer.valid_to, at):
                fill_personal_offer(response.personal_offers.add(), offer, member, tz, at)
        general = self._general_offers(snapshot)
        for applying in offers_applying(snapshot, general, member, at, request.store_id, channel):
            fill_general_offer(response.general_offers.add(), applying)
        return response

    # --- favorite products ------------------------------------------------------------------

    def SelectFavoriteProducts(  # noqa: N802 - gRPC method name
        self, request: member_pb2.SelectFavoriteProductsRequest, context: grpc.ServicerContext
    ) -> member_pb2.SelectFavoriteProductsResponse:
        check_length(request.offer_id, limits.ID, "offer_id")
        check_each(request.skus, limits.ID, "skus")
        now = self._clock()
        member = self._member(request.member)
        snapshot = self._cache.snapshot
        with self._member_write(member.id) as session:
            state = select_favorite_products(
                session, snapshot, member.id, request.offer_id, _slot_skus(request.skus), now
            )
            session.commit()
        self._forget(member.id)
        response = member_pb2.SelectFavoriteProductsResponse()
        fill_favorite_products(response.favorite_products, state, snapshot, now)
        return response

    def OperatorSetFavoriteProducts(  # noqa: N802 - gRPC method name
        self,
        request: member_pb2.OperatorSetFavoriteProductsRequest,
        context: grpc.ServicerContext,
    ) -> member_pb2.OperatorSetFavoriteProductsResponse:
        check_length(request.offer_id, limits.ID, "offer_id")
        check_each(request.skus, limits.ID, "skus")
        check_length(request.comment, limits.COMMENT, "comment")
        now = self._clock()
        actor = current_principal().name
        member = self._member(request.member)
        snapshot = self._cache.snapshot
        with self._member_write(member.id) as session:
            edit = operator_set_favorite_products(
                session,
                snapshot,
                member.id,
                request.offer_id,
                _slot_skus(request.skus),
                now,
                actor=actor,
                comment=request.comment,
            )
            session.commit()
        self._forget(member.id)
        response = member_pb2.OperatorSetFavoriteProductsResponse()
        fill_favorite_products(response.favorite_products, edit.state, snapshot, now)
        fill_audit(response.audit, edit.audit)
        return response

    def ListFavoriteProductsAudit(  # noqa: N802 - gRPC method name
        self,
        request: member_pb2.ListFavoriteProductsAuditRequest,
        context: grpc.ServicerContext,
    ) -> member_pb2.ListFavoriteProductsAuditResponse:
        if request.limit < 0:
            raise InvalidArgument("limit", "must not be negative")
        check_length(request.offer_id, limits.ID, "offer_id")
        limit = min(request.limit or DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT)
        member = self._member(request.member)
        with self._sessions() as session:
            entries = list_favorite_audit(session, member.id, request.offer_id or None, limit)
        response = member_pb2.ListFavoriteProductsAuditResponse()
        for entry in entries:
            fill_audit(response.entries.add(), entry)
        return response

    # --- favorite categories ----------------------------------------------------------------

    def SelectFavoriteCategories(  # noqa: N802 - gRPC method name
        self, request: member_pb2.SelectFavoriteCategoriesRequest, context: grpc.ServicerContext
    ) -> member_pb2.SelectFavoriteCategoriesResponse:
        check_length(request.offer_id, limits.ID, "offer_id")
        check_each(request.group_ids, limits.ID, "group_ids")
        now = self._clock()
        member = self._member(request.member)
        snapshot = self._cache.snapshot
        with self._member_write(member.id) as session:
            state = select_favorite_categories(
                session,
                member.id,
                request.offer_id,
                list(request.group_ids),
                now,
                snapshot.program_time_zone,
            )
            session.commit()
        self._forget(member.id)
        response = member_pb2.SelectFavoriteCategoriesResponse()
        fill_favorite_categories(
            response.favorite_categories, state.terms, state.last_change_at, snapshot, now
        )
        return response
