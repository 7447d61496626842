"""MemberService: the member lookup (spec §9), favorite selections (spec §7.1, §7.2) and the
operator's audited edit of favorite products.

Each method translates: the request's checks and fields, the use case of service/app/
(member_view, favorites, categories) in a unit of work, the answer as a message. A write
commits through its unit of work, which tells this replica's cache (read-your-writes here);
the change-feed row written in the same transaction tells every other replica.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import grpc

from loyalty.v1 import common_pb2, member_pb2, member_pb2_grpc
from service import limits
from service.api import convert
from service.api.auth import current_principal
from service.api.lookup import MemberLookup
from service.api.member_profiles import MemberProfilesServicer
from service.app import categories, favorites
from service.app.coupons import CouponCampaigns
from service.app.member_profiles import MemberProfiles
from service.app.member_view import GeneralOffers, PersonalOfferView, member_offers
from service.app.member_write import MemberWrite
from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.config import Settings
from service.engine.favorites import CategoryState, ChangeWindow, FavoriteState
from service.engine.member_offers import GeneralOffer
from service.engine.model import Member
from service.engine.points_balance import soon_until
from service.engine.snapshot import Snapshot
from service.engine.validation import check_instant
from service.errors import InvalidArgument
from service.limits import check_each, check_length
from service.store.favorites_repo import AuditEntry

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
    out: member_pb2.FavoriteProductsView, state: FavoriteState, snapshot: Snapshot
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
    fill_change_window(out.change_window, state.window)


def fill_favorite_categories(
    out: member_pb2.FavoriteCategoriesView, state: CategoryState, snapshot: Snapshot
) -> None:
    """`chosen` marks the categories that apply."""
    terms = state.terms
    out.offer_id = terms.offer_id
    out.name = terms.name
    convert.fill_benefit(out.benefit, terms.benefit)
    convert.fill_validity(out.validity, terms.valid_from, terms.valid_to)
    applying = set(state.applying)
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
    fill_change_window(out.change_window, state.window)


def fill_personal_offer(out: member_pb2.PersonalOfferView, view: PersonalOfferView) -> None:
    offer = view.offer
    out.offer_id = offer.offer_id
    out.name = offer.name
    convert.fill_benefit(out.benefit, offer.benefit)
    convert.fill_validity(out.validity, offer.valid_from, offer.valid_to)
    out.skus.extend(sorted(offer.skus))
    out.group_id = offer.group_id or ""
    if offer.usage_limit is not None:
        convert.fill_usage_limit(out.usage_limit, offer.usage_limit)
        out.used = view.used
    if view.left is not None:
        out.usage_left = view.left


def fill_general_offer(
    out: member_pb2.OfferSummary, general: GeneralOffer, left: int | None = None
) -> None:
    offer = general.offer
    out.offer_id = offer.id
    out.name = offer.name
    out.level = convert.LEVEL.to_proto[offer.level]
    convert.fill_benefit(out.benefit, offer.benefit)
    out.scope_group_id = offer.scope_group_id or ""
    convert.fill_validity(out.validity, offer.valid_from, offer.valid_to)
    out.text = general.rule.text
    if offer.usage_limit is not None:
        convert.fill_usage_limit(out.usage_limit, offer.usage_limit)
    if left is not None:
        out.usage_left = left
    out.coupon_required = general.coupon_required


def fill_audit(out: member_pb2.AuditEntry, entry: AuditEntry) -> None:
    out.id = entry.id
    out.actor = entry.actor
    out.member_id = entry.member_id
    out.offer_id = entry.offer_id
    convert.set_timestamp(out.at, entry.at)
    out.skus_before.extend(sku or "" for sku in entry.skus_before)
    out.skus_after.extend(sku or "" for sku in entry.skus_after)
    out.comment = entry.comment


def _slot_skus(skus: Iterable[str]) -> list[str | None]:
    """The wire's slot list ("" for an empty slot) as the use case's (None)."""
    return [sku or None for sku in skus]


# --- the servicer -----------------------------------------------------------------------------


class MemberServicer(MemberProfilesServicer, member_pb2_grpc.MemberServiceServicer):
    def __init__(
        self,
        settings: Settings,
        cache: BenefitCache,
        sessions: Sessions,
        clock: Clock = utc_now,
        members: MemberLookup | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._members = members or MemberLookup.from_settings(cache, settings)
        self._sessions = sessions
        self._clock = clock
        self._general = GeneralOffers()
        self._profiles = MemberProfiles(
            sessions, cache.members_changed, cache.forget_card, clock=clock
        )
        self._coupons = CouponCampaigns(sessions, lambda: cache.snapshot, cache.reload_snapshot)

    def _member(self, identity: common_pb2.MemberIdentity) -> Member:
        member = self._members.resolve(identity, "member")
        if member is None:
            raise InvalidArgument("member", "a card number or a member id is required")
        return member

    def _write(self) -> MemberWrite:
        """A unit of work for a member's write now; the commit tells this replica's cache."""
        return MemberWrite(self._sessions, self._cache.members_changed, now=self._clock())

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
        general = self._general.of(snapshot)
        soon = timedelta(days=self._settings.points_expiring_soon_days)
        found = member_offers(
            UnitOfWork(self._sessions),
            snapshot,
            member,
            at,
            general,
            request.store_id,
            channel,
            expiring_soon=soon,
        )
        response = member_pb2.GetMemberOffersResponse(
            member_id=found.member_id,
            points_balance=found.points.balance,
            points_available=found.points.available,
            points_pending=found.points.pending,
            points_expiring_soon=found.points.expiring_soon,
            chips_balance=found.chips_balance,
        )
        if found.points.expiring_soon:
            response.points_expiring_before.FromDatetime(soon_until(at, soon))
        for state in found.favorite_products:
            fill_favorite_products(response.favorite_products.add(), state, snapshot)
        for terms in found.favorite_categories:
            fill_favorite_categories(response.favorite_categories.add(), terms, snapshot)
        for offer in found.personal_offers:
            fill_personal_offer(response.personal_offers.add(), offer)
        for applying in found.general_offers:
            left = found.general_left.get(applying.offer.id)
            fill_general_offer(response.general_offers.add(), applying, left)
        for code, campaign in self._coupons.member_coupons(found.member_id, at):
            entry = response.coupons.add(
                code=code, campaign_id=campaign.id, offer_id=campaign.offer_id
            )
            if campaign.valid_to is not None:
                entry.valid_to.FromDatetime(campaign.valid_to)
        return response

    # --- favorite products ------------------------------------------------------------------

    def SelectFavoriteProducts(  # noqa: N802 - gRPC method name
        self, request: member_pb2.SelectFavoriteProductsRequest, context: grpc.ServicerContext
    ) -> member_pb2.SelectFavoriteProductsResponse:
        check_length(request.offer_id, limits.ID, "offer_id")
        check_each(request.skus, limits.ID, "skus")
        uow = self._write()
        member = self._member(request.member)
        snapshot = self._cache.snapshot
        skus = _slot_skus(request.skus)
        state = favorites.select_favorite_products(uow, snapshot, member.id, request.offer_id, skus)
        response = member_pb2.SelectFavoriteProductsResponse()
        fill_favorite_products(response.favorite_products, state, snapshot)
        return response

    def OperatorSetFavoriteProducts(  # noqa: N802 - gRPC method name
        self,
        request: member_pb2.OperatorSetFavoriteProductsRequest,
        context: grpc.ServicerContext,
    ) -> member_pb2.OperatorSetFavoriteProductsResponse:
        check_length(request.offer_id, limits.ID, "offer_id")
        check_each(request.skus, limits.ID, "skus")
        check_length(request.comment, limits.COMMENT, "comment")
        uow = self._write()
        actor = current_principal().name
        member = self._member(request.member)
        snapshot = self._cache.snapshot
        edit = favorites.operator_set_favorite_products(
            uow,
            snapshot,
            member.id,
            request.offer_id,
            _slot_skus(request.skus),
            actor=actor,
            comment=request.comment,
        )
        response = member_pb2.OperatorSetFavoriteProductsResponse()
        fill_favorite_products(response.favorite_products, edit.state, snapshot)
        fill_audit(response.audit, edit.audit)
        return response

    def ListFavoriteProductsAudit(  # noqa: N802 - gRPC method name
        self,
        request: member_pb2.ListFavoriteProductsAuditRequest,
        context: grpc.ServicerContext,
    ) -> member_pb2.ListFavoriteProductsAuditResponse:
        limit = favorites.audit_limit(request.limit)
        check_length(request.offer_id, limits.ID, "offer_id")
        member = self._member(request.member)
        entries = favorites.favorite_audit(
            UnitOfWork(self._sessions), member.id, request.offer_id, limit
        )
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
        uow = self._write()
        member = self._member(request.member)
        snapshot = self._cache.snapshot
        state = categories.select_favorite_categories(
            uow, member.id, request.offer_id, list(request.group_ids), snapshot.program_time_zone
        )
        response = member_pb2.SelectFavoriteCategoriesResponse()
        fill_favorite_categories(response.favorite_categories, state, snapshot)
        return response
