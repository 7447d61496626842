"""The back office's Get and List calls and the offer switch (spec §17), a part of
BackOfficeServicer: requests checked field by field (INVALID_ARGUMENT names the field), the
reads of service/app/catalogue_reads.py, the answer in the messages the upserts take.

Get answers NOT_FOUND (reason <KIND>_NOT_FOUND) for an unknown key. List answers a page in key
order and a token for the next (service/api/paging.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

import grpc

from loyalty.v1 import backoffice_pb2 as bo
from service import limits
from service.api import catalogue_convert as convert
from service.api import paging
from service.api.convert import LEVEL, optional_datetime
from service.app.catalogue import Catalogue
from service.app.catalogue_reads import CatalogueReads
from service.engine.model import Level, ProductGroup
from service.errors import InvalidArgument, NotFound
from service.limits import check_length, quote
from service.store.catalog_reads import Keys, OfferQuery, StoredOffer

T = TypeVar("T")


def _key(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "must not be empty")
    return check_length(value, limits.ID, field)


def _optional_key(value: str, field: str) -> str | None:
    return check_length(value, limits.ID, field) or None


def _one(found: Sequence[T], what: str, key: str, reason: str) -> T:
    if not found:
        raise NotFound(f"no {what} {quote(key)}", reason=reason)
    return found[0]


def _offer_query(
    request: bo.ListOffersRequest | bo.ListFavoriteProductsOffersRequest,
) -> OfferQuery:
    f = request.filter
    level: Level | None = LEVEL.parse_optional(f.level, "filter.level")
    if f.state not in (bo.OFFER_STATE_UNSPECIFIED, bo.OFFER_STATE_ACTIVE, bo.OFFER_STATE_INACTIVE):
        raise InvalidArgument("filter.state", "must be a known value or unset")
    active = None if f.state == bo.OFFER_STATE_UNSPECIFIED else f.state == bo.OFFER_STATE_ACTIVE
    valid_at: datetime | None = optional_datetime(f, "valid_at", "filter.valid_at")
    return OfferQuery(
        level=level,
        active=active,
        valid_at=valid_at,
        scope_group_id=_optional_key(f.scope_group_id, "filter.scope_group_id"),
        store_id=_optional_key(f.store_id, "filter.store_id"),
    )


def _fill_group(out: bo.ProductGroupView, group: ProductGroup, members: Sequence[str]) -> None:
    out.group.id = group.id
    out.group.name = group.name
    out.group.skus.extend(sorted(group.skus))
    out.group.category_ids.extend(sorted(group.category_ids))
    out.group.excluded_skus.extend(sorted(group.excluded_skus))
    out.group.excluded_category_ids.extend(sorted(group.excluded_category_ids))
    out.member_skus.extend(members)


def _fill_favorite(out: bo.FavoriteProductsOffer, stored: StoredOffer) -> None:
    assert stored.favorite is not None
    convert.fill_favorite_offer(out, stored.favorite, active=stored.active)


class CatalogueReadsServicer:
    """Mixed into BackOfficeServicer, which sets `_reads` and `_catalogue`."""

    _reads: CatalogueReads
    _catalogue: Catalogue

    # --- catalogue ------------------------------------------------------------------------

    def GetCategory(  # noqa: N802 - gRPC method name
        self, request: bo.GetCategoryRequest, context: grpc.ServicerContext
    ) -> bo.GetCategoryResponse:
        key = _key(request.id, "id")
        found = self._reads.categories(Keys(limit=1, only=[key]))
        category = _one(found, "category", key, "CATEGORY_NOT_FOUND")
        response = bo.GetCategoryResponse()
        convert.fill_category(response.category, category)
        return response

    def ListCategories(  # noqa: N802
        self, request: bo.ListCategoriesRequest, context: grpc.ServicerContext
    ) -> bo.ListCategoriesResponse:
        page = paging.cursor(request)
        parent_id = _optional_key(request.parent_id, "parent_id")
        items, token = paging.paged(
            page,
            lambda limit, after: self._reads.categories(Keys(limit, after), parent_id=parent_id),
            lambda c: c.id,
        )
        response = bo.ListCategoriesResponse(next_page_token=token)
        for category in items:
            convert.fill_category(response.categories.add(), category)
        return response

    def GetProduct(  # noqa: N802
        self, request: bo.GetProductRequest, context: grpc.ServicerContext
    ) -> bo.GetProductResponse:
        sku = _key(request.sku, "sku")
        found = self._reads.products(Keys(limit=1, only=[sku]))
        product = _one(found, "product", sku, "PRODUCT_NOT_FOUND")
        response = bo.GetProductResponse()
        convert.fill_product(response.product, product)
        return response

    def ListProducts(  # noqa: N802
        self, request: bo.ListProductsRequest, context: grpc.ServicerContext
    ) -> bo.ListProductsResponse:
        page = paging.cursor(request)
        category_id = _optional_key(request.category_id, "category_id")
        group_id = _optional_key(request.group_id, "group_id")
        items, token = paging.paged(
            page,
            lambda limit, after: self._reads.products(
                Keys(limit, after), category_id=category_id, group_id=group_id
            ),
            lambda p: p.sku,
        )
        response = bo.ListProductsResponse(next_page_token=token)
        for product in items:
            convert.fill_product(response.products.add(), product)
        return response

    def GetProductGroup(  # noqa: N802
        self, request: bo.GetProductGroupRequest, context: grpc.ServicerContext
    ) -> bo.GetProductGroupResponse:
        key = _key(request.id, "id")
        found = self._reads.product_groups(Keys(limit=1, only=[key]))
        group, members = _one(found, "product group", key, "PRODUCT_GROUP_NOT_FOUND")
        response = bo.GetProductGroupResponse()
        _fill_group(response.group, group, members)
        return response

    def ListProductGroups(  # noqa: N802
        self, request: bo.ListProductGroupsRequest, context: grpc.ServicerContext
    ) -> bo.ListProductGroupsResponse:
        page = paging.cursor(request)
        sku = _optional_key(request.sku, "sku")
        items, token = paging.paged(
            page,
            lambda limit, after: self._reads.product_groups(Keys(limit, after), sku=sku),
            lambda item: item[0].id,
        )
        response = bo.ListProductGroupsResponse(next_page_token=token)
        for group, members in items:
            _fill_group(response.groups.add(), group, members)
        return response

    def GetProductList(  # noqa: N802
        self, request: bo.GetProductListRequest, context: grpc.ServicerContext
    ) -> bo.GetProductListResponse:
        key = _key(request.id, "id")
        found = self._reads.product_lists(Keys(limit=1, only=[key]))
        product_list = _one(found, "product list", key, "PRODUCT_LIST_NOT_FOUND")
        response = bo.GetProductListResponse()
        convert.fill_product_list(response.list, product_list)
        return response

    def ListProductLists(  # noqa: N802
        self, request: bo.ListProductListsRequest, context: grpc.ServicerContext
    ) -> bo.ListProductListsResponse:
        page = paging.cursor(request)
        items, token = paging.paged(
            page,
            lambda limit, after: self._reads.product_lists(Keys(limit, after)),
            lambda pl: pl.id,
        )
        response = bo.ListProductListsResponse(next_page_token=token)
        for product_list in items:
            convert.fill_product_list(response.lists.add(), product_list)
        return response

    def GetStore(  # noqa: N802
        self, request: bo.GetStoreRequest, context: grpc.ServicerContext
    ) -> bo.GetStoreResponse:
        key = _key(request.id, "id")
        store = _one(self._reads.stores(Keys(limit=1, only=[key])), "store", key, "STORE_NOT_FOUND")
        response = bo.GetStoreResponse()
        convert.fill_store(response.store, store)
        return response

    def ListStores(  # noqa: N802
        self, request: bo.ListStoresRequest, context: grpc.ServicerContext
    ) -> bo.ListStoresResponse:
        page = paging.cursor(request)
        items, token = paging.paged(
            page, lambda limit, after: self._reads.stores(Keys(limit, after)), lambda s: s.id
        )
        response = bo.ListStoresResponse(next_page_token=token)
        for store in items:
            convert.fill_store(response.stores.add(), store)
        return response

    # --- offers ---------------------------------------------------------------------------

    def _stored_offer(self, offer_id: str, *, favorite: bool = False) -> StoredOffer:
        found = self._reads.offers(
            Keys(limit=1, only=[offer_id]), OfferQuery(favorites_only=favorite)
        )
        what = "favorite-products offer" if favorite else "offer"
        return _one(found, what, offer_id, "OFFER_NOT_FOUND")

    def GetOffer(  # noqa: N802
        self, request: bo.GetOfferRequest, context: grpc.ServicerContext
    ) -> bo.GetOfferResponse:
        stored = self._stored_offer(_key(request.id, "id"))
        response = bo.GetOfferResponse()
        convert.fill_offer(response.offer, stored.offer, active=stored.active)
        return response

    def ListOffers(  # noqa: N802
        self, request: bo.ListOffersRequest, context: grpc.ServicerContext
    ) -> bo.ListOffersResponse:
        page = paging.cursor(request)
        query = _offer_query(request)
        items, token = paging.paged(
            page,
            lambda limit, after: self._reads.offers(Keys(limit, after), query),
            lambda o: o.offer.id,
        )
        response = bo.ListOffersResponse(next_page_token=token)
        for stored in items:
            convert.fill_offer(response.offers.add(), stored.offer, active=stored.active)
        return response

    def GetFavoriteProductsOffer(  # noqa: N802
        self, request: bo.GetFavoriteProductsOfferRequest, context: grpc.ServicerContext
    ) -> bo.GetFavoriteProductsOfferResponse:
        stored = self._stored_offer(_key(request.id, "id"), favorite=True)
        response = bo.GetFavoriteProductsOfferResponse()
        _fill_favorite(response.offer, stored)
        return response

    def ListFavoriteProductsOffers(  # noqa: N802
        self, request: bo.ListFavoriteProductsOffersRequest, context: grpc.ServicerContext
    ) -> bo.ListFavoriteProductsOffersResponse:
        page = paging.cursor(request)
        query = _offer_query(request)
        if query.level not in (None, Level.INDIVIDUAL):
            raise InvalidArgument("filter.level", "favorite-products offers are LEVEL_INDIVIDUAL")
        query = OfferQuery(
            active=query.active,
            valid_at=query.valid_at,
            scope_group_id=query.scope_group_id,
            store_id=query.store_id,
            favorites_only=True,
        )
        items, token = paging.paged(
            page,
            lambda limit, after: self._reads.offers(Keys(limit, after), query),
            lambda o: o.offer.id,
        )
        response = bo.ListFavoriteProductsOffersResponse(next_page_token=token)
        for stored in items:
            _fill_favorite(response.offers.add(), stored)
        return response

    def DeactivateOffer(  # noqa: N802
        self, request: bo.DeactivateOfferRequest, context: grpc.ServicerContext
    ) -> bo.DeactivateOfferResponse:
        stored = self._catalogue.set_offer_active(_key(request.id, "id"), False)
        response = bo.DeactivateOfferResponse()
        convert.fill_offer(response.offer, stored.offer, active=stored.active)
        return response

    def ReactivateOffer(  # noqa: N802
        self, request: bo.ReactivateOfferRequest, context: grpc.ServicerContext
    ) -> bo.ReactivateOfferResponse:
        stored = self._catalogue.set_offer_active(_key(request.id, "id"), True)
        response = bo.ReactivateOfferResponse()
        convert.fill_offer(response.offer, stored.offer, active=stored.active)
        return response
