"""BackOfficeServicer: catalogue, offers and favorite-products configuration, bulk imports of
customer attributes, and the favorite-products auto-fill action. Role BACK_OFFICE only (the
call interceptor checks it).

Each method translates: the request to domain values (service/api/catalogue_convert.py and
import_rows.py, which check every field - INVALID_ARGUMENT names the field at fault, e.g.
`products[3].unit` - so nothing is written on any error), then the use case
(service/app/catalogue.py, autofill.py; service/imports/run.py), then the response.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc

from loyalty.v1 import backoffice_pb2, backoffice_pb2_grpc
from service import limits
from service.api import catalogue_convert as convert
from service.api.backoffice_reads import CatalogueReadsServicer
from service.api.import_rows import fill_import_status, stream_rows
from service.app.autofill import run_favorite_autofill
from service.app.catalogue import Catalogue
from service.app.catalogue_reads import CatalogueReads
from service.app.sessions import Sessions
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.config import Settings
from service.errors import InvalidArgument, NotFound
from service.imports.run import (
    DEFAULT_BATCH_SIZE,
    AttributeImport,
    BatchReport,
    check_import_id,
    find_import,
)
from service.limits import check_length, quote

log = logging.getLogger(__name__)


class BackOfficeServicer(CatalogueReadsServicer, backoffice_pb2_grpc.BackOfficeServiceServicer):
    def __init__(
        self,
        settings: Settings,
        cache: BenefitCache,
        sessions: Sessions,
        *,
        clock: Clock = utc_now,
        import_batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._sessions = sessions
        self._clock = clock
        self._import_batch_size = import_batch_size
        self._catalogue = Catalogue(sessions, cache.reload_snapshot, clock=clock)
        self._reads = CatalogueReads(sessions, lambda: cache.snapshot)

    # --- catalogue ------------------------------------------------------------------------------

    def UpsertCategories(  # noqa: N802 - gRPC method name
        self, request: backoffice_pb2.UpsertCategoriesRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertCategoriesResponse:
        categories = [
            convert.category_to_model(c, f"categories[{i}]")
            for i, c in enumerate(request.categories)
        ]
        convert.distinct_ids([c.id for c in categories], "categories")
        upserted = self._catalogue.upsert_categories(categories)
        return backoffice_pb2.UpsertCategoriesResponse(upserted=upserted)

    def UpsertProducts(  # noqa: N802
        self, request: backoffice_pb2.UpsertProductsRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertProductsResponse:
        products = [
            convert.product_to_model(p, f"products[{i}]") for i, p in enumerate(request.products)
        ]
        convert.distinct_ids([p.sku for p in products], "products", "sku")
        upserted = self._catalogue.upsert_products(products)
        return backoffice_pb2.UpsertProductsResponse(upserted=upserted)

    def UpsertProductGroups(  # noqa: N802
        self, request: backoffice_pb2.UpsertProductGroupsRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertProductGroupsResponse:
        groups = [convert.group_to_model(g, f"groups[{i}]") for i, g in enumerate(request.groups)]
        convert.distinct_ids([g.id for g in groups], "groups")
        upserted = self._catalogue.upsert_product_groups(groups)
        return backoffice_pb2.UpsertProductGroupsResponse(upserted=upserted)

    def UpsertProductLists(  # noqa: N802
        self, request: backoffice_pb2.UpsertProductListsRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertProductListsResponse:
        lists = [convert.list_to_model(pl, f"lists[{i}]") for i, pl in enumerate(request.lists)]
        convert.distinct_ids([pl.id for pl in lists], "lists")
        upserted = self._catalogue.upsert_product_lists(lists)
        return backoffice_pb2.UpsertProductListsResponse(upserted=upserted)

    def UpsertStores(  # noqa: N802
        self, request: backoffice_pb2.UpsertStoresRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertStoresResponse:
        stores = [convert.store_to_model(s, f"stores[{i}]") for i, s in enumerate(request.stores)]
        convert.distinct_ids([s.id for s in stores], "stores")
        upserted = self._catalogue.upsert_stores(stores)
        return backoffice_pb2.UpsertStoresResponse(upserted=upserted)

    # --- offers ---------------------------------------------------------------------------------

    def UpsertOffer(  # noqa: N802
        self, request: backoffice_pb2.UpsertOfferRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.UpsertOfferResponse:
        if not request.HasField("offer"):
            raise InvalidArgument("offer", "required")
        offer = convert.offer_to_model(request.offer, "offer", convert.GENERAL_LEVELS)
        active = convert.offer_state(request.offer, "offer")
        self._catalogue.upsert_offer(offer, active=active)
        response = backoffice_pb2.UpsertOfferResponse()
        convert.fill_offer(response.offer, offer, active=active)
        return response

    def UpsertFavoriteProductsOffer(  # noqa: N802
        self,
        request: backoffice_pb2.UpsertFavoriteProductsOfferRequest,
        context: grpc.ServicerContext,
    ) -> backoffice_pb2.UpsertFavoriteProductsOfferResponse:
        if not request.HasField("offer"):
            raise InvalidArgument("offer", "required")
        favorite = convert.favorite_offer_to_model(request.offer, "offer")
        active = convert.offer_state(request.offer.offer, "offer.offer")
        self._catalogue.upsert_favorite_products_offer(favorite, active=active)
        response = backoffice_pb2.UpsertFavoriteProductsOfferResponse()
        convert.fill_favorite_offer(response.offer, favorite, active=active)
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
        resuming = f"resuming after {start.skip} rows" if start.skip else "started"
        log.info("import %s from %s: %s", header.import_id, quote(header.source), resuming)
        outcome = run.run(stream_rows(messages, start.skip))
        fill_import_status(response.status, outcome.state)
        for error in outcome.errors:
            response.errors.add(
                line_number=error.line_number, field=error.field, reason=error.reason
            )
        state = outcome.state
        log.info(
            "import %s: %d rows applied, %d rejected",
            header.import_id,
            state.rows_applied,
            state.rows_rejected,
        )
        return response

    def _forget_cards(self, report: BatchReport) -> None:
        """After a committed batch (whose members the cache has heard of): this replica reads
        the changed cards afresh."""
        for card_number in report.applied.card_numbers:
            self._cache.forget_card(card_number)

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

    # --- favorite-products auto-fill -------------------------------------------------------------

    def RunFavoriteAutofill(  # noqa: N802
        self, request: backoffice_pb2.RunFavoriteAutofillRequest, context: grpc.ServicerContext
    ) -> backoffice_pb2.RunFavoriteAutofillResponse:
        check_length(request.offer_id, limits.ID, "offer_id")
        member_ids = list(convert.keys(request.member_ids, "member_ids"))
        totals = run_favorite_autofill(
            self._sessions,
            self._cache.snapshot,
            request.offer_id,
            member_ids,
            self._clock(),
            self._cache.members_changed,
        )
        return backoffice_pb2.RunFavoriteAutofillResponse(
            members_updated=totals.members_updated, slots_filled=totals.slots_filled
        )
