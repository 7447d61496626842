"""CouponServicer (loyalty/v1/coupons.proto): coupon campaigns and their unique codes, for
the back office (role BACK_OFFICE). Translation only; the use cases are service.app.coupons.

ImportCouponCodes takes one batch per request message and answers each with the totals so
far: a batch is one transaction, so an interrupted import keeps what was answered, and
sending the same codes again skips them. A malformed message is INVALID_ARGUMENT naming the
code at fault; the batches before it stay committed, nothing of it is written.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from loyalty.v1 import coupons_pb2, coupons_pb2_grpc
from service import limits
from service.api import paging
from service.api.convert import optional_datetime
from service.api.coupon_convert import campaign_to_model, fill_campaign_view
from service.app.coupons import MAX_GENERATED, CouponCampaigns
from service.app.sessions import Sessions
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.engine.coupons import code_problem, normalise_code
from service.errors import InvalidArgument, NotFound
from service.limits import check_length, quote
from service.store.catalog_reads import Keys

MAX_IMPORT_BATCH = 10_000  # codes per ImportCouponCodes message


class CouponServicer(coupons_pb2_grpc.CouponServiceServicer):
    def __init__(self, cache: BenefitCache, sessions: Sessions, *, clock: Clock = utc_now) -> None:
        self._campaigns = CouponCampaigns(
            sessions, lambda: cache.snapshot, cache.reload_snapshot, clock=clock
        )

    def UpsertCouponCampaign(  # noqa: N802 - gRPC method name
        self, request: coupons_pb2.UpsertCouponCampaignRequest, context: grpc.ServicerContext
    ) -> coupons_pb2.UpsertCouponCampaignResponse:
        self._campaigns.upsert(campaign_to_model(request.campaign))
        return coupons_pb2.UpsertCouponCampaignResponse()

    def GenerateCouponCodes(  # noqa: N802
        self, request: coupons_pb2.GenerateCouponCodesRequest, context: grpc.ServicerContext
    ) -> coupons_pb2.GenerateCouponCodesResponse:
        _campaign_id(request.campaign_id, "campaign_id")
        if not 1 <= request.count <= MAX_GENERATED:
            raise InvalidArgument("count", f"must be from 1 to {MAX_GENERATED}")
        check_length(request.member_id, limits.ID, "member_id")
        codes = self._campaigns.generate(request.campaign_id, request.count, request.member_id)
        return coupons_pb2.GenerateCouponCodesResponse(codes=codes)

    def ImportCouponCodes(  # noqa: N802
        self,
        request_iterator: Iterator[coupons_pb2.ImportCouponCodesRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[coupons_pb2.ImportCouponCodesResponse]:
        received = added = 0
        for request in request_iterator:
            _campaign_id(request.campaign_id, "campaign_id")
            rows = _import_rows(request)
            received += len(rows)
            added += self._campaigns.import_codes(request.campaign_id, rows)
            yield coupons_pb2.ImportCouponCodesResponse(
                received=received, added=added, skipped=received - added
            )

    def GetCouponCampaign(  # noqa: N802
        self, request: coupons_pb2.GetCouponCampaignRequest, context: grpc.ServicerContext
    ) -> coupons_pb2.GetCouponCampaignResponse:
        _campaign_id(request.id, "id")
        found = self._campaigns.stored(Keys(limit=1, only=[request.id]))
        if not found:
            raise NotFound(
                f"no coupon campaign {quote(request.id)}", reason="COUPON_CAMPAIGN_NOT_FOUND"
            )
        response = coupons_pb2.GetCouponCampaignResponse()
        fill_campaign_view(response.campaign, found[0])
        return response

    def ListCouponCampaigns(  # noqa: N802
        self, request: coupons_pb2.ListCouponCampaignsRequest, context: grpc.ServicerContext
    ) -> coupons_pb2.ListCouponCampaignsResponse:
        page = paging.cursor(request)
        offer_id = check_length(request.offer_id, limits.ID, "offer_id") or None
        valid_at = optional_datetime(request, "valid_at", "valid_at")
        items, token = paging.paged(
            page,
            lambda limit, after: self._campaigns.stored(
                Keys(limit, after), offer_id=offer_id, valid_at=valid_at
            ),
            lambda stored: stored.campaign.id,
        )
        response = coupons_pb2.ListCouponCampaignsResponse(next_page_token=token)
        for stored in items:
            fill_campaign_view(response.campaigns.add(), stored)
        return response


def _campaign_id(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument(field, "required")
    check_length(value, limits.ID, field)


def _import_rows(request: coupons_pb2.ImportCouponCodesRequest) -> list[tuple[str, str]]:
    if len(request.codes) > MAX_IMPORT_BATCH:
        raise InvalidArgument("codes", f"at most {MAX_IMPORT_BATCH} codes per message")
    rows = []
    for index, row in enumerate(request.codes):
        code = normalise_code(row.code)
        problem = code_problem(code)
        if problem is not None:
            raise InvalidArgument(f"codes[{index}].code", f"{problem}: {quote(row.code)}")
        check_length(row.member_id, limits.ID, f"codes[{index}].member_id")
        rows.append((code, row.member_id))
    return rows
