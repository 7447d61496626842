"""Coupon fixtures over gRPC: a product, two gated offers and their campaigns, receipts."""

from __future__ import annotations

import grpc

from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import (
    backoffice_pb2_grpc,
    coupons_pb2,
    coupons_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
)
from loyalty.v1 import common_pb2 as c
from service.api.auth import Role
from tests.e2e.conftest import auth

SKU = "CPN-TEA"
SHARED_OFFER = "CPN-10"  # 10 % off the tea, with the shared code SUMMER10
UNIQUE_OFFER = "CPN-20"  # 20 % off the tea, with a unique code


def coupons(channel: grpc.Channel) -> coupons_pb2_grpc.CouponServiceStub:
    return coupons_pb2_grpc.CouponServiceStub(channel)


def back_office_call(channel: grpc.Channel, method: str, request):  # type: ignore[no-untyped-def]
    stub = backoffice_pb2_grpc.BackOfficeServiceStub(channel)
    return getattr(stub, method)(request, timeout=10, metadata=auth(Role.BACK_OFFICE))


def coupon_call(channel: grpc.Channel, method: str, request, role: Role = Role.BACK_OFFICE):  # type: ignore[no-untyped-def]
    return getattr(coupons(channel), method)(request, timeout=30, metadata=auth(role))


def tea_offer(offer_id: str, percent_bp: int) -> bo.Offer:
    return bo.Offer(
        id=offer_id,
        name=f"Tea -{percent_bp // 100} % with a coupon",
        level=c.LEVEL_ALL_BUYERS,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=percent_bp),
        scope_group_id="G-CPN",
        priority=1000,
        stacking=c.STACKING_EXCLUSIVE,
        active=True,
    )


def set_up_campaigns(channel: grpc.Channel, *, shared_total_limit: int = 0) -> None:
    """The tea, its group, the two offers and their campaigns SUMMER (shared code SUMMER10)
    and U1 (unique codes)."""
    back_office_call(
        channel, "UpsertCategories",
        bo.UpsertCategoriesRequest(categories=[bo.Category(id="cpn", name="Coupons")]),
    )  # fmt: skip
    back_office_call(
        channel, "UpsertProducts",
        bo.UpsertProductsRequest(products=[
            bo.Product(sku=SKU, name="Tea", unit=c.UNIT_PIECE, category_ids=["cpn"])
        ]),
    )  # fmt: skip
    back_office_call(
        channel, "UpsertProductGroups",
        bo.UpsertProductGroupsRequest(
            groups=[bo.ProductGroup(id="G-CPN", name="Coupon tea", category_ids=["cpn"])]
        ),
    )  # fmt: skip
    for offer in (tea_offer(SHARED_OFFER, 1000), tea_offer(UNIQUE_OFFER, 2000)):
        back_office_call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=offer))
    upsert_campaign(
        channel,
        coupons_pb2.CouponCampaign(
            id="SUMMER", offer_id=SHARED_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
            shared_code="SUMMER10", total_limit=shared_total_limit,
        ),
    )  # fmt: skip
    upsert_campaign(
        channel,
        coupons_pb2.CouponCampaign(
            id="U1", offer_id=UNIQUE_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_UNIQUE
        ),
    )


def upsert_campaign(channel: grpc.Channel, campaign: coupons_pb2.CouponCampaign) -> None:
    coupon_call(
        channel, "UpsertCouponCampaign", coupons_pb2.UpsertCouponCampaignRequest(campaign=campaign)
    )


def generate(channel: grpc.Channel, count: int = 1, member_id: str = "") -> list[str]:
    request = coupons_pb2.GenerateCouponCodesRequest(
        campaign_id="U1", count=count, member_id=member_id
    )
    return list(coupon_call(channel, "GenerateCouponCodes", request).codes)


def tea_receipt(receipt_id: str, *codes: str, member_id: str = "") -> receipt_pb2.Receipt:
    """One tea at 100.00."""
    sent = receipt_pb2.Receipt(
        receipt_id=receipt_id, store_id="S001", channel=c.CHANNEL_POS,
        lines=[receipt_pb2.ReceiptLine(
            line_id="1", sku=SKU, quantity=1000, price=10000, amount=10000
        )],
        coupon_codes=list(codes),
    )  # fmt: skip
    if member_id:
        sent.member.member_id = member_id
    return sent


def register(channel: grpc.Channel) -> receipt_pb2_grpc.ReceiptServiceStub:
    return receipt_pb2_grpc.ReceiptServiceStub(channel)


def calculate(channel: grpc.Channel, sent: receipt_pb2.Receipt) -> receipt_pb2.CalculateResponse:
    request = receipt_pb2.CalculateRequest(receipt=sent)
    return register(channel).Calculate(request, timeout=10, metadata=auth())


def confirm(
    channel: grpc.Channel, sent: receipt_pb2.Receipt, token: bytes
) -> receipt_pb2.ConfirmResponse:
    request = receipt_pb2.ConfirmRequest(receipt=sent, confirmation_token=token)
    return register(channel).Confirm(request, timeout=10, metadata=auth())


def refund_all(
    channel: grpc.Channel, refund_id: str, receipt_id: str
) -> receipt_pb2.RefundResponse:
    request = receipt_pb2.RefundRequest(
        refund_id=refund_id, receipt_id=receipt_id, full=True, store_id="S001"
    )
    return register(channel).Refund(request, timeout=10, metadata=auth())


def statuses(result: receipt_pb2.ReceiptResult) -> list[tuple[str, str]]:
    """(code, status name) of each code sent."""
    return [(o.code, coupons_pb2.CouponStatus.Name(o.status)) for o in result.coupons]
