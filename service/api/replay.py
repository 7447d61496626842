"""CampaignReplayService: translation only. The request becomes a draft offer and a period
(the offer checked field by field like UpsertOffer), the use case (service/app/replay.py)
streams progress and then the report, each translated as it comes. Role BACK_OFFICE; the
call runs on the store-bound budget (service/api/interceptors.py), honours the caller's
deadline (DEADLINE_EXCEEDED between pages) and stops when the caller cancels."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from loyalty.v1 import replay_pb2, replay_pb2_grpc
from service.api import catalogue_convert
from service.api.catalogue_convert import keys
from service.api.convert import to_datetime
from service.app.replay import (
    Benefits,
    CampaignReplay,
    ReplayProgress,
    ReplayReport,
    ReplayRequest,
)
from service.app.sessions import Sessions
from service.config import Settings
from service.errors import InvalidArgument

DEFAULT_TOP_PRODUCTS = 10
MAX_TOP_PRODUCTS = 100


def replay_request(request: replay_pb2.ReplayRequest) -> ReplayRequest:
    """The request as domain values; INVALID_ARGUMENT names the field at fault."""
    if not request.HasField("draft_offer"):
        raise InvalidArgument("draft_offer", "required: the offer to replay")
    draft = catalogue_convert.offer_to_model(
        request.draft_offer, "draft_offer", catalogue_convert.GENERAL_LEVELS
    )
    for name in ("start", "end"):
        if not request.HasField(name):
            raise InvalidArgument(name, "required: the period of sale times to replay")
    top = request.top_products or DEFAULT_TOP_PRODUCTS
    if not 1 <= top <= MAX_TOP_PRODUCTS:
        raise InvalidArgument("top_products", f"must be from 0 to {MAX_TOP_PRODUCTS}")
    return ReplayRequest(
        draft=draft,
        draft_active=request.draft_offer.active,
        start=to_datetime(request.start, "start"),
        end=to_datetime(request.end, "end"),
        store_ids=frozenset(keys(request.store_ids, "store_ids")),
        top_products=top,
    )


def _fill_benefits(out: replay_pb2.ReplayBenefits, benefits: Benefits) -> None:
    out.discount = benefits.discount
    out.points = benefits.points


def report_message(report: ReplayReport, currency: str) -> replay_pb2.ReplayReport:
    out = replay_pb2.ReplayReport(
        configuration_version=report.configuration_version,
        receipts=report.receipts,
        receipts_affected=report.receipts_affected,
        members_affected=report.members_affected,
        currency=currency,
    )
    _fill_benefits(out.confirmed, report.confirmed)
    _fill_benefits(out.live, report.live)
    _fill_benefits(out.draft, report.draft)
    _fill_benefits(out.added, report.added)
    for product in report.top_products:
        out.top_products.add(
            sku=product.sku,
            name=product.name,
            lines_affected=product.lines_affected,
            added_discount=product.added_discount,
            added_points=product.added_points,
        )
    for day in report.days:
        d = out.days.add(
            day=day.day.isoformat(), receipts=day.receipts, receipts_affected=day.receipts_affected
        )
        _fill_benefits(d.live, day.live)
        _fill_benefits(d.draft, day.draft)
        _fill_benefits(
            d.added,
            Benefits(day.draft.discount - day.live.discount, day.draft.points - day.live.points),
        )
    return out


class CampaignReplayServicer(replay_pb2_grpc.CampaignReplayServiceServicer):
    def __init__(self, settings: Settings, sessions: Sessions) -> None:
        self._currency = settings.currency
        self._replay = CampaignReplay(
            sessions,
            time_zone=settings.time_zone,
            page_size=settings.replay_page_size,
            max_days=settings.replay_max_days,
        )

    def Replay(  # noqa: N802 - gRPC method name
        self, request: replay_pb2.ReplayRequest, context: grpc.ServicerContext
    ) -> Iterator[replay_pb2.ReplayResponse]:
        replay = replay_request(request)
        for event in self._replay.run(replay, cancelled=lambda: not context.is_active()):
            if isinstance(event, ReplayProgress):
                yield replay_pb2.ReplayResponse(
                    progress=replay_pb2.ReplayProgress(
                        receipts_done=event.receipts_done, receipts_total=event.receipts_total
                    )
                )
            else:
                yield replay_pb2.ReplayResponse(report=report_message(event, self._currency))
