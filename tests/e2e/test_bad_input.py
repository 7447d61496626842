"""Every kind of bad input to every RPC: a clear status naming the field, and nothing changes.

Each case is one request that is wrong in one way. The store's fingerprint (row counts of
every table and the last change-feed position) must be the same after every refused call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import (
    backoffice_pb2,
    backoffice_pb2_grpc,
    common_pb2,
    coupons_pb2,
    coupons_pb2_grpc,
    member_pb2,
    member_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
    replay_pb2,
    replay_pb2_grpc,
)
from service import limits
from service.api.auth import Role
from service.api.server import LoyaltyServer
from service.engine.coupons import CODE_LENGTH
from service.store import db
from service.store.models import Base
from tests.e2e.conftest import auth

CARD = "2000000000001"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def receipt(**change: Any) -> receipt_pb2.Receipt:
    """The demo receipt with one thing changed; `lines` edits take a callable."""
    base, _ = load_receipt(register_cli.DEMO_RECEIPT)
    base.coupon_codes.extend(change.pop("coupon_codes", ()))
    edit_lines = change.pop("lines", None)
    for name, value in change.items():
        setattr(base, name, value)
    if edit_lines is not None:
        edit_lines(base.lines)
    return base


def far_future(r: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    r.sale_time.seconds = 4_000_000_000
    return r


def sold_at(seconds: int, nanos: int = 0) -> receipt_pb2.Receipt:
    r = receipt()
    r.sale_time.seconds, r.sale_time.nanos = seconds, nanos
    return r


def days_ago(days: float) -> int:
    return int(time.time() - days * 86400)


def unknown_card(r: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    r.member.card_number = "9" * 13
    return r


def anonymous(r: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    r.ClearField("member")
    return r


def set_line(index: int, **values: Any) -> Callable[[Any], None]:
    def edit(lines: Any) -> None:
        for name, value in values.items():
            setattr(lines[index], name, value)

    return edit


def duplicate_first_line(lines: Any) -> None:
    lines[1].line_id = lines[0].line_id


def too_many_lines(lines: Any) -> None:
    for number in range(1001):
        lines.add(line_id=f"x{number}", sku="X", quantity=1000, price=1, amount=1)


def calc(r: receipt_pb2.Receipt) -> receipt_pb2.CalculateRequest:
    return receipt_pb2.CalculateRequest(receipt=r)


def member(card: str = CARD) -> common_pb2.MemberIdentity:
    return common_pb2.MemberIdentity(card_number=card)


@dataclass(frozen=True)
class Case:
    name: str
    service: str
    method: str
    request: Any
    code: grpc.StatusCode
    field: str | None = None  # the BadRequest field, for INVALID_ARGUMENT
    role: Role = Role.REGISTER


R, M, B, N, P, CP = "receipts", "members", "backoffice", "notifications", "replay", "coupons"
CS, OP, BO = Role.CUSTOMER_SERVICES, Role.OPERATOR, Role.BACK_OFFICE

CASES = [
    # --- coupons ----------------------------------------------------------------------------
    Case(
        "coupon code with a space",
        R,
        "Calculate",
        calc(receipt(coupon_codes=["OK-1", "NOT OK"])),
        INVALID,
        "receipt.coupon_codes[1]",
    ),
    Case(
        "eleven coupon codes",
        R,
        "Calculate",
        calc(receipt(coupon_codes=[f"C{n}" for n in range(11)])),
        INVALID,
        "receipt.coupon_codes",
    ),
    Case(
        "no codes to generate",
        CP,
        "GenerateCouponCodes",
        coupons_pb2.GenerateCouponCodesRequest(campaign_id="U-NOPE", count=0),
        INVALID,
        "count",
        Role.BACK_OFFICE,
    ),
    Case(
        "a campaign of no kind",
        CP,
        "UpsertCouponCampaign",
        coupons_pb2.UpsertCouponCampaignRequest(
            campaign=coupons_pb2.CouponCampaign(id="CMP-X", offer_id="A-NOPE")
        ),
        INVALID,
        "campaign.kind",
        Role.BACK_OFFICE,
    ),
    Case(
        "a negative total limit",
        CP,
        "UpsertCouponCampaign",
        coupons_pb2.UpsertCouponCampaignRequest(
            campaign=coupons_pb2.CouponCampaign(
                id="CMP-X",
                offer_id="A-NOPE",
                kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
                shared_code="X1",
                total_limit=-1,
            )
        ),
        INVALID,
        "campaign.total_limit",
        Role.BACK_OFFICE,
    ),  # fmt: skip
    Case(
        "a campaign for an unknown offer",
        CP,
        "UpsertCouponCampaign",
        coupons_pb2.UpsertCouponCampaignRequest(
            campaign=coupons_pb2.CouponCampaign(
                id="CMP-X", offer_id="A-NOPE", kind=coupons_pb2.COUPON_CAMPAIGN_KIND_UNIQUE
            )
        ),
        NOT_FOUND,
        None,
        Role.BACK_OFFICE,
    ),
    Case(
        "get of a campaign without an id",
        CP,
        "GetCouponCampaign",
        coupons_pb2.GetCouponCampaignRequest(),
        INVALID,
        "id",
        BO,
    ),
    Case(
        "get of an unknown campaign",
        CP,
        "GetCouponCampaign",
        coupons_pb2.GetCouponCampaignRequest(id="U-NOPE"),
        NOT_FOUND,
        None,
        BO,
    ),
    Case(
        "campaign page of 1001",
        CP,
        "ListCouponCampaigns",
        coupons_pb2.ListCouponCampaignsRequest(page=backoffice_pb2.PageRequest(page_size=1001)),
        INVALID,
        "page.page_size",
        BO,
    ),
    Case(
        "made-up campaign page token",
        CP,
        "ListCouponCampaigns",
        coupons_pb2.ListCouponCampaignsRequest(page=backoffice_pb2.PageRequest(page_token="e30=")),
        INVALID,
        "page.page_token",
        BO,
    ),
    Case(
        "codes for an unknown campaign",
        CP,
        "ImportCouponCodes",
        coupons_pb2.ImportCouponCodesRequest(
            campaign_id="U-NOPE", codes=[coupons_pb2.CouponCodeRow(code="GOOD-1")]
        ),
        NOT_FOUND,
        None,
        Role.BACK_OFFICE,
    ),
    # --- receipts ---------------------------------------------------------------------------
    Case(
        "empty receipt",
        R,
        "Calculate",
        calc(receipt(lines=lambda ls: ls.__delitem__(slice(None)))),
        INVALID,
        "receipt.lines",
    ),  # noqa: E501
    Case(
        "unspecified channel", R, "Calculate", calc(receipt(channel=0)), INVALID, "receipt.channel"
    ),  # noqa: E501
    Case(
        "negative quantity",
        R,
        "Calculate",
        calc(receipt(lines=set_line(1, quantity=-1000))),
        INVALID,
        "receipt.lines[1].quantity",
    ),  # noqa: E501
    Case(
        "piece goods in fractions",
        R,
        "Calculate",
        calc(receipt(lines=set_line(1, quantity=1500))),
        INVALID,
        "receipt.lines[1].quantity",
    ),  # noqa: E501
    Case(
        "absurd price",
        R,
        "Calculate",
        calc(receipt(lines=set_line(1, price=10**15))),
        INVALID,
        "receipt.lines[1].price",
    ),  # noqa: E501
    Case(
        "amount above price x quantity",
        R,
        "Calculate",
        calc(receipt(lines=set_line(2, amount=10**6))),
        INVALID,
        "receipt.lines[2].amount",
    ),  # noqa: E501
    Case(
        "duplicate line ids",
        R,
        "Calculate",
        calc(receipt(lines=duplicate_first_line)),
        INVALID,
        "receipt.lines[1].line_id",
    ),  # noqa: E501
    Case(
        "too many lines",
        R,
        "Calculate",
        calc(receipt(lines=too_many_lines)),
        INVALID,
        "receipt.lines",
    ),  # noqa: E501
    Case(
        "sale time far in the future",
        R,
        "Calculate",
        calc(far_future(receipt())),
        INVALID,
        "receipt.sale_time",
    ),  # noqa: E501
    Case("sale time in 1970", R, "Calculate", calc(sold_at(0)), INVALID, "receipt.sale_time"),
    Case(
        "sale time four days back",
        R,
        "Calculate",
        calc(sold_at(days_ago(4))),
        INVALID,
        "receipt.sale_time",
    ),
    Case("unknown card", R, "Calculate", calc(unknown_card(receipt())), NOT_FOUND),
    # --- spending points (spec §21) ---
    Case(
        "negative points to spend",
        R,
        "Calculate",
        receipt_pb2.CalculateRequest(receipt=receipt(), points_to_spend=-1),
        INVALID,
        "points_to_spend",
    ),
    Case(
        "absurd points to spend",
        R,
        "Calculate",
        receipt_pb2.CalculateRequest(receipt=receipt(), points_to_spend=limits.POINTS + 1),
        INVALID,
        "points_to_spend",
    ),
    Case(
        "points to spend and as many as allowed",
        R,
        "Calculate",
        receipt_pb2.CalculateRequest(receipt=receipt(), points_to_spend=5, spend_max_points=True),
        INVALID,
        "points_to_spend",
    ),
    Case(
        "points spent by an anonymous buyer",
        R,
        "Calculate",
        receipt_pb2.CalculateRequest(receipt=anonymous(receipt()), points_to_spend=100),
        INVALID,
        "points_to_spend",
    ),
    Case(
        "a SKU too long",
        R,
        "Calculate",
        calc(receipt(lines=set_line(0, sku="9" * 65))),
        INVALID,
        "receipt.lines[0].sku",
    ),  # noqa: E501
    Case(
        "a receipt id too long",
        R,
        "Calculate",
        calc(receipt(receipt_id="R" * 65)),
        INVALID,
        "receipt.receipt_id",
    ),  # noqa: E501
    Case(
        "confirm without a token",
        R,
        "Confirm",
        receipt_pb2.ConfirmRequest(receipt=receipt()),
        INVALID,
        "confirmation_token",
    ),  # noqa: E501
    Case(
        "confirm with a forged token",
        R,
        "Confirm",
        receipt_pb2.ConfirmRequest(receipt=receipt(), confirmation_token=b"\x01" + b"0" * 40),
        INVALID,
        "confirmation_token",
    ),  # noqa: E501
    Case(
        "refund without a refund id",
        R,
        "Refund",
        receipt_pb2.RefundRequest(receipt_id="DEMO-0001", full=True),
        INVALID,
        "refund_id",
    ),  # noqa: E501
    Case(
        "refund of an unknown receipt",
        R,
        "Refund",
        receipt_pb2.RefundRequest(refund_id="RF-1", receipt_id="NOPE", full=True),
        NOT_FOUND,
    ),  # noqa: E501
    # --- members ----------------------------------------------------------------------------
    Case(
        "lookup without a member",
        M,
        "GetMemberOffers",
        member_pb2.GetMemberOffersRequest(),
        INVALID,
        "member",
        CS,
    ),  # noqa: E501
    Case(
        "lookup of an unknown card",
        M,
        "GetMemberOffers",
        member_pb2.GetMemberOffersRequest(member=member("9" * 13)),
        NOT_FOUND,
        None,
        CS,
    ),  # noqa: E501
    Case(
        "a favorite not on the list",
        M,
        "SelectFavoriteProducts",
        member_pb2.SelectFavoriteProductsRequest(
            member=member(), offer_id="I-FAV-PRODUCTS", skus=["NOT-A-SKU"]
        ),
        INVALID,
        None,
        CS,
    ),  # noqa: E501
    Case(
        "favorites of an unknown offer",
        M,
        "SelectFavoriteProducts",
        member_pb2.SelectFavoriteProductsRequest(member=member(), offer_id="NOPE", skus=[]),
        NOT_FOUND,
        None,
        CS,
    ),  # noqa: E501
    Case(
        "categories of an unknown offer",
        M,
        "SelectFavoriteCategories",
        member_pb2.SelectFavoriteCategoriesRequest(member=member(), offer_id="NOPE"),
        NOT_FOUND,
        None,
        CS,
    ),  # noqa: E501
    Case(
        "operator edit without an offer",
        M,
        "OperatorSetFavoriteProducts",
        member_pb2.OperatorSetFavoriteProductsRequest(member=member()),
        INVALID,
        None,
        OP,
    ),  # noqa: E501
    Case(
        "audit of an unknown card",
        M,
        "ListFavoriteProductsAudit",
        member_pb2.ListFavoriteProductsAuditRequest(member=member("9" * 13)),
        NOT_FOUND,
        None,
        OP,
    ),  # noqa: E501
    # --- back office ------------------------------------------------------------------------
    Case(
        "category without an id",
        B,
        "UpsertCategories",
        backoffice_pb2.UpsertCategoriesRequest(categories=[backoffice_pb2.Category(name="x")]),
        INVALID,
        "categories[0].id",
        BO,
    ),  # noqa: E501
    Case(
        "product with an unspecified unit",
        B,
        "UpsertProducts",
        backoffice_pb2.UpsertProductsRequest(products=[backoffice_pb2.Product(sku="N1", name="n")]),
        INVALID,
        "products[0].unit",
        BO,
    ),  # noqa: E501
    Case(
        "group without an id",
        B,
        "UpsertProductGroups",
        backoffice_pb2.UpsertProductGroupsRequest(groups=[backoffice_pb2.ProductGroup(name="g")]),
        INVALID,
        "groups[0].id",
        BO,
    ),  # noqa: E501
    Case(
        "list without an id",
        B,
        "UpsertProductLists",
        backoffice_pb2.UpsertProductListsRequest(lists=[backoffice_pb2.ProductList(name="l")]),
        INVALID,
        "lists[0].id",
        BO,
    ),  # noqa: E501
    Case(
        "store in an unknown zone",
        B,
        "UpsertStores",
        backoffice_pb2.UpsertStoresRequest(
            stores=[backoffice_pb2.Store(id="S9", name="Mars", time_zone="Mars/Base")]
        ),
        INVALID,
        "stores[0].time_zone",
        BO,
    ),  # noqa: E501
    Case(
        "store in a zone directory, not a zone",
        B,
        "UpsertStores",
        backoffice_pb2.UpsertStoresRequest(
            stores=[backoffice_pb2.Store(id="S9", name="Europe", time_zone="Europe")]
        ),
        INVALID,
        "stores[0].time_zone",
        BO,
    ),  # noqa: E501
    Case(
        "offer without a level",
        B,
        "UpsertOffer",
        backoffice_pb2.UpsertOfferRequest(
            offer=backoffice_pb2.Offer(
                id="O-X", name="x", benefit=common_pb2.Benefit(kind=1, value=100), stacking=1
            )
        ),
        INVALID,
        "offer.level",
        BO,
    ),  # noqa: E501
    Case(
        "favorite offer with no slots",
        B,
        "UpsertFavoriteProductsOffer",
        backoffice_pb2.UpsertFavoriteProductsOfferRequest(
            offer=backoffice_pb2.FavoriteProductsOffer(
                offer=backoffice_pb2.Offer(
                    id="F-X",
                    name="x",
                    level=4,
                    benefit=common_pb2.Benefit(kind=1, value=100),
                    stacking=1,
                ),
                slot_count=0,
                list_source=1,
                product_list_id="L-FAVORITES",
                frequency=1,
            )
        ),
        INVALID,
        "offer.slot_count",
        BO,
    ),  # noqa: E501
    Case(
        "status of an unknown import",
        B,
        "GetImportStatus",
        backoffice_pb2.GetImportStatusRequest(import_id="NOPE"),
        NOT_FOUND,
        None,
        BO,
    ),  # noqa: E501
    Case(
        "auto-fill of an unknown offer",
        B,
        "RunFavoriteAutofill",
        backoffice_pb2.RunFavoriteAutofillRequest(offer_id="NOPE"),
        NOT_FOUND,
        None,
        BO,
    ),  # noqa: E501
    # --- notifications ----------------------------------------------------------------------
    Case(
        "ack without a consumer",
        N,
        "AckMemberEvents",
        notification_pb2.AckMemberEventsRequest(position=1),
        INVALID,
        "consumer",
        CS,
    ),  # noqa: E501
]

# --- members one by one (spec §18) -------------------------------------------------------------
CASES += [
    Case(
        "profile lookup without a member",
        M,
        "GetMemberProfile",
        member_pb2.GetMemberProfileRequest(),
        INVALID,
        "member",
        CS,
    ),
    Case(
        "profile upsert without a profile",
        M,
        "UpsertMemberProfile",
        member_pb2.UpsertMemberProfileRequest(),
        INVALID,
        "profile",
        CS,
    ),
    Case(
        "profile with a card of another member",
        M,
        "UpsertMemberProfile",
        member_pb2.UpsertMemberProfileRequest(
            profile=backoffice_pb2.MemberProfileRow(member_id="M-NEW", card_numbers=[CARD])
        ),
        INVALID,
        "profile.card_numbers[0]",
        CS,
    ),
    Case(
        "profile with February 30",
        M,
        "UpsertMemberProfile",
        member_pb2.UpsertMemberProfileRequest(
            profile=backoffice_pb2.MemberProfileRow(member_id="M-NEW", birth_date="1990-02-30")
        ),
        INVALID,
        "profile.birth_date",
        CS,
    ),
    Case(
        "card given to an unknown member",
        M,
        "AddMemberCard",
        member_pb2.AddMemberCardRequest(member_id="M-NONE", card_number="7799"),
        NOT_FOUND,
        None,
        CS,
    ),
    Case(
        "block of another member's card",
        M,
        "BlockMemberCard",
        member_pb2.BlockMemberCardRequest(member_id="M000002", card_number=CARD),
        INVALID,
        "card_number",
        CS,
    ),
]

# --- back-office reads and the offer switch (spec §17) -------------------------------------------
CASES += [
    Case(
        "list page of -1",
        B,
        "ListOffers",
        backoffice_pb2.ListOffersRequest(page=backoffice_pb2.PageRequest(page_size=-1)),
        INVALID,
        "page.page_size",
        BO,
    ),
    Case(
        "list page of 1001",
        B,
        "ListProducts",
        backoffice_pb2.ListProductsRequest(page=backoffice_pb2.PageRequest(page_size=1001)),
        INVALID,
        "page.page_size",
        BO,
    ),
    Case(
        "made-up page token",
        B,
        "ListStores",
        backoffice_pb2.ListStoresRequest(page=backoffice_pb2.PageRequest(page_token="e30=")),
        INVALID,
        "page.page_token",
        BO,
    ),
    Case(
        "offer filter of an unknown state",
        B,
        "ListOffers",
        backoffice_pb2.ListOffersRequest(filter=backoffice_pb2.OfferFilter(state=9)),
        INVALID,
        "filter.state",
        BO,
    ),
    Case(
        "offer filter of an unknown level",
        B,
        "ListOffers",
        backoffice_pb2.ListOffersRequest(filter=backoffice_pb2.OfferFilter(level=99)),
        INVALID,
        "filter.level",
        BO,
    ),
    Case(
        "favorite-products offers of level ALL_BUYERS",
        B,
        "ListFavoriteProductsOffers",
        backoffice_pb2.ListFavoriteProductsOffersRequest(
            filter=backoffice_pb2.OfferFilter(level=common_pb2.LEVEL_ALL_BUYERS)
        ),
        INVALID,
        "filter.level",
        BO,
    ),
    Case(
        "get without an id",
        B,
        "GetOffer",
        backoffice_pb2.GetOfferRequest(),
        INVALID,
        "id",
        BO,
    ),
    Case(
        "get of an unknown product",
        B,
        "GetProduct",
        backoffice_pb2.GetProductRequest(sku="NOPE"),
        NOT_FOUND,
        None,
        BO,
    ),
    Case(
        "deactivate an unknown offer",
        B,
        "DeactivateOffer",
        backoffice_pb2.DeactivateOfferRequest(id="NOPE"),
        NOT_FOUND,
        None,
        BO,
    ),
    Case(
        "reactivate without an id",
        B,
        "ReactivateOffer",
        backoffice_pb2.ReactivateOfferRequest(),
        INVALID,
        "id",
        BO,
    ),
]


def chips_offer(**fields: Any) -> backoffice_pb2.UpsertOfferRequest:
    """A chips grant (spec §20) with fields changed."""
    offer = backoffice_pb2.Offer(
        id="C-X",
        name="x",
        level=common_pb2.LEVEL_ALL_BUYERS,
        benefit=common_pb2.Benefit(kind=common_pb2.BENEFIT_KIND_CHIPS, value=1),
        stacking=1,
        chips_threshold=50000,
    )
    for name, value in fields.items():
        if name == "chips":
            offer.benefit.value = value
        elif name == "benefit":
            offer.benefit.CopyFrom(value)
        else:
            setattr(offer, name, value)
    return backoffice_pb2.UpsertOfferRequest(offer=offer)


def spend(chips: int, r: receipt_pb2.Receipt | None = None) -> receipt_pb2.CalculateRequest:
    return receipt_pb2.CalculateRequest(receipt=r or receipt(), chips_to_spend=chips)


def anonymous(r: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    r.ClearField("member")
    return r


CHIPS_CASES = [
    Case("negative chips to spend", R, "Calculate", spend(-1), INVALID, "chips_to_spend"),
    Case("absurd chips to spend", R, "Calculate", spend(10**13), INVALID, "chips_to_spend"),
    Case("more chips than held", R, "Calculate", spend(10**6), PRECONDITION),
    Case("chips by an anonymous buyer", R, "Calculate", spend(1, anonymous(receipt())),
         PRECONDITION),
    Case("chips threshold zero", B, "UpsertOffer", chips_offer(chips_threshold=0), INVALID,
         "offer.chips_threshold", BO),
    Case("chips threshold negative", B, "UpsertOffer", chips_offer(chips_threshold=-1), INVALID,
         "offer.chips_threshold", BO),
    Case("no chips per threshold", B, "UpsertOffer", chips_offer(chips=0), INVALID,
         "offer.benefit.value", BO),
    Case("chips for a target audience", B, "UpsertOffer", chips_offer(level=3), INVALID,
         "offer.level", BO),
    Case("a reward of negative chips", B, "UpsertOffer",
         chips_offer(benefit=common_pb2.Benefit(kind=3, value=100), chips_threshold=0,
                     chips_price=-10), INVALID, "offer.chips_price", BO),
    Case("a reward paying chips in chips", B, "UpsertOffer", chips_offer(chips_price=10),
         INVALID, "offer.chips_price", BO),
]  # fmt: skip

EVERY_N_DAYS_CASES = [
    Case(
        "favorite offer changed every 2**31-1 days",  # next_allowed would leave the calendar
        B,
        "UpsertFavoriteProductsOffer",
        backoffice_pb2.UpsertFavoriteProductsOfferRequest(
            offer=backoffice_pb2.FavoriteProductsOffer(
                offer=backoffice_pb2.Offer(
                    id="F-X",
                    name="x",
                    level=common_pb2.LEVEL_INDIVIDUAL,
                    benefit=common_pb2.Benefit(kind=1, value=100),
                    stacking=1,
                ),
                slot_count=3,
                list_source=common_pb2.LIST_SOURCE_PREDEFINED,
                product_list_id="L-FAVORITES",
                frequency=common_pb2.SELECTION_FREQUENCY_EVERY_N_DAYS,
                every_n_days=2**31 - 1,
            )
        ),
        INVALID,
        "offer.every_n_days",
        BO,
    ),
]

# --- requests good in every field, to make bad in one ---------------------------------------


def offer(**fields: Any) -> backoffice_pb2.Offer:
    """A valid target-audience offer with every string field set. Its id is a favorite-products
    offer's, so the upsert is refused when everything else is right: nothing is written."""
    base = backoffice_pb2.Offer(
        id="I-FAV-PRODUCTS",
        name="Bad input",
        level=common_pb2.LEVEL_TARGET_AUDIENCE,
        benefit=common_pb2.Benefit(kind=common_pb2.BENEFIT_KIND_PERCENT, value=100),
        scope_group_id="G-BAKERY",
        stacking=common_pb2.STACKING_COMBINABLE,
        store_ids=["S001"],
        audience=backoffice_pb2.Audience(segment_tags=["vip"]),
        text="Bad input -1 %",
        state=backoffice_pb2.OFFER_STATE_ACTIVE,
    )
    for name, value in fields.items():
        base.ClearField(name)  # None: left unset
        if value is not None:
            setattr(base, name, value)
    return base


def replay(**fields: Any) -> replay_pb2.ReplayRequest:
    """A replay of offer() over the last week, with a store; `fields` replace or (None)
    clear fields of the request."""
    base = replay_pb2.ReplayRequest(draft_offer=offer(), store_ids=["S001"])
    base.start.seconds, base.end.seconds = days_ago(7), days_ago(0)
    for name, value in fields.items():
        base.ClearField(name)
        if value is not None:
            if name in ("start", "end"):
                getattr(base, name).seconds = value
            elif name == "draft_offer":
                base.draft_offer.CopyFrom(value)
            elif name == "store_ids":
                base.store_ids.extend(value)
            else:
                setattr(base, name, value)
    return base


def replay_cases() -> list[Case]:
    def case(name: str, request: replay_pb2.ReplayRequest, field: str) -> Case:
        return Case(f"Replay: {name}", P, "Replay", request, INVALID, field, BO)

    a_general_offer = offer(id="A-REPLAY-DRAFT")
    return [
        case("no draft offer", replay(draft_offer=None), "draft_offer"),
        case("no start", replay(start=None), "start"),
        case("no end", replay(end=None), "end"),
        case("end before start", replay(end=days_ago(8)), "end"),
        case("end at start", replay(start=days_ago(3), end=days_ago(3)), "end"),
        case("a year long", replay(start=days_ago(365)), "end"),
        case("101 top products", replay(top_products=101), "top_products"),
        case("negative top products", replay(top_products=-1), "top_products"),
        case("an individual draft", replay(draft_offer=offer(level=4)), "draft_offer.level"),
        case(
            "a draft without benefit kind",
            replay(draft_offer=offer(id="A-REPLAY-DRAFT", benefit=None)),
            "draft_offer.benefit.kind",
        ),
        case("a favorite-products offer's id", replay(), "draft_offer.id"),
        case(
            "an empty store id",
            replay(draft_offer=a_general_offer, store_ids=[""]),
            "store_ids[0]",
        ),
    ]


def favorite_offer() -> backoffice_pb2.FavoriteProductsOffer:
    """A valid favorite-products offer whose id is a general offer's (refused in the store)."""
    return backoffice_pb2.FavoriteProductsOffer(
        offer=offer(
            id="A-BAKERY-EVENING",
            level=common_pb2.LEVEL_INDIVIDUAL,
            scope_group_id=None,
            audience=None,
        ),
        slot_count=3,
        list_source=common_pb2.LIST_SOURCE_PREDEFINED,
        product_list_id="L-FAVORITES",
        frequency=common_pb2.SELECTION_FREQUENCY_WEEKLY,
    )


def twice(message_class: Any, key: str, **fields: Any) -> list[Any]:
    """An item and a second one with the same key: each item passes its checks, the request
    is refused for the repeat, so a bad field of the first is the only other fault."""
    return [message_class(**fields), message_class(**{key: fields[key], "name": "twice"})]


# method -> (service, a request good in every field, role). Each is refused as a whole (the
# repeat, an unknown receipt, a missing token, a position beyond the last event...), so a
# case that makes one field bad writes nothing even when that field is not checked.
GOOD: dict[str, tuple[str, Any, Role]] = {
    "UpsertCouponCampaign": (
        CP,
        coupons_pb2.UpsertCouponCampaignRequest(
            campaign=coupons_pb2.CouponCampaign(
                id="CMP-X",
                offer_id="A-NOPE",
                kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
                shared_code="X1",
            )
        ),
        BO,
    ),  # fmt: skip
    "GenerateCouponCodes": (
        CP,
        coupons_pb2.GenerateCouponCodesRequest(campaign_id="U-NOPE", count=1),
        BO,
    ),
    # reads: they change nothing whatever they answer
    "GetCouponCampaign": (CP, coupons_pb2.GetCouponCampaignRequest(id="U-NOPE"), BO),
    "ListCouponCampaigns": (CP, coupons_pb2.ListCouponCampaignsRequest(offer_id="A-NOPE"), BO),
    "ImportCouponCodes": (
        CP,
        coupons_pb2.ImportCouponCodesRequest(
            campaign_id="U-NOPE", codes=[coupons_pb2.CouponCodeRow(code="GOOD-1")]
        ),
        BO,
    ),
    "Calculate": (R, calc(receipt()), Role.REGISTER),
    "Confirm": (R, receipt_pb2.ConfirmRequest(receipt=receipt()), Role.REGISTER),
    "Refund": (
        R,
        receipt_pb2.RefundRequest(
            refund_id="RF-BAD",
            receipt_id="NOPE",
            store_id="S001",
            lines=[receipt_pb2.RefundLine(line_id="1", quantity=1000)],
        ),
        Role.REGISTER,
    ),
    "GetMemberOffers": (
        M,
        member_pb2.GetMemberOffersRequest(member=member(), store_id="S001"),
        CS,
    ),
    "SelectFavoriteProducts": (
        M,
        member_pb2.SelectFavoriteProductsRequest(
            member=member(), offer_id="I-FAV-PRODUCTS", skus=["NOT-ON-THE-LIST"]
        ),
        CS,
    ),
    "SelectFavoriteCategories": (
        M,
        member_pb2.SelectFavoriteCategoriesRequest(
            member=member(), offer_id="I-FAV-CATEGORIES", group_ids=["G-NOT-OFFERED"]
        ),
        CS,
    ),
    "OperatorSetFavoriteProducts": (
        M,
        member_pb2.OperatorSetFavoriteProductsRequest(
            member=member(), offer_id="I-FAV-PRODUCTS", skus=["NOT-ON-THE-LIST"], comment="c"
        ),
        OP,
    ),
    "ListFavoriteProductsAudit": (
        M,
        member_pb2.ListFavoriteProductsAuditRequest(member=member(), offer_id="I-FAV-PRODUCTS"),
        OP,
    ),
    # members one by one: a card of another member, an unknown member - refused as a whole
    "GetMemberProfile": (M, member_pb2.GetMemberProfileRequest(member=member()), CS),
    "UpsertMemberProfile": (
        M,
        member_pb2.UpsertMemberProfileRequest(
            profile=backoffice_pb2.MemberProfileRow(
                member_id="M-BAD-INPUT",
                card_numbers=[CARD],
                birth_date="1990-01-01",
                segment_tags=["vip"],
            )
        ),
        CS,
    ),
    "AddMemberCard": (
        M,
        member_pb2.AddMemberCardRequest(member_id="M-NONE", card_number="7799"),
        CS,
    ),
    "BlockMemberCard": (
        M,
        member_pb2.BlockMemberCardRequest(member_id="M-NONE", card_number="7799"),
        CS,
    ),
    "UpsertCategories": (
        B,
        backoffice_pb2.UpsertCategoriesRequest(
            categories=twice(backoffice_pb2.Category, "id", id="C-X", name="x", parent_id="C-P")
        ),
        BO,
    ),
    "UpsertProducts": (
        B,
        backoffice_pb2.UpsertProductsRequest(
            products=[
                backoffice_pb2.Product(sku="N1", name="n", category_ids=["C-1"], unit=1),
                backoffice_pb2.Product(sku="N1", name="twice", unit=1),
            ]
        ),
        BO,
    ),
    "UpsertProductGroups": (
        B,
        backoffice_pb2.UpsertProductGroupsRequest(
            groups=twice(
                backoffice_pb2.ProductGroup,
                "id",
                id="G-X",
                name="g",
                skus=["X"],
                category_ids=["C"],
                excluded_skus=["Y"],
                excluded_category_ids=["D"],
            )
        ),
        BO,
    ),
    "UpsertProductLists": (
        B,
        backoffice_pb2.UpsertProductListsRequest(
            lists=twice(backoffice_pb2.ProductList, "id", id="L-X", name="l", skus=["X"])
        ),
        BO,
    ),
    "UpsertStores": (
        B,
        backoffice_pb2.UpsertStoresRequest(
            stores=twice(backoffice_pb2.Store, "id", id="S-X", name="s", time_zone="Asia/Omsk")
        ),
        BO,
    ),
    "UpsertOffer": (B, backoffice_pb2.UpsertOfferRequest(offer=offer()), BO),
    "UpsertFavoriteProductsOffer": (
        B,
        backoffice_pb2.UpsertFavoriteProductsOfferRequest(offer=favorite_offer()),
        BO,
    ),
    "ImportCustomerAttributes": (  # all good: each case makes its header refused
        B,
        backoffice_pb2.ImportCustomerAttributesRequest(
            header=backoffice_pb2.ImportHeader(import_id="IMP-BAD", source="s", fingerprint="f")
        ),
        BO,
    ),
    "GetImportStatus": (B, backoffice_pb2.GetImportStatusRequest(import_id="NOPE"), BO),
    "RunFavoriteAutofill": (
        B,
        backoffice_pb2.RunFavoriteAutofillRequest(offer_id="NOPE", member_ids=["M-NONE"]),
        BO,
    ),
    # reads change nothing whatever they answer; the switches name an unknown offer
    **{
        name: (B, request, BO)
        for name, request in {
            "GetCategory": backoffice_pb2.GetCategoryRequest(id="NOPE"),
            "ListCategories": backoffice_pb2.ListCategoriesRequest(parent_id="C-X"),
            "GetProduct": backoffice_pb2.GetProductRequest(sku="NOPE"),
            "ListProducts": backoffice_pb2.ListProductsRequest(category_id="C", group_id="G"),
            "GetProductGroup": backoffice_pb2.GetProductGroupRequest(id="NOPE"),
            "ListProductGroups": backoffice_pb2.ListProductGroupsRequest(sku="X"),
            "GetProductList": backoffice_pb2.GetProductListRequest(id="NOPE"),
            "ListProductLists": backoffice_pb2.ListProductListsRequest(),
            "GetStore": backoffice_pb2.GetStoreRequest(id="NOPE"),
            "ListStores": backoffice_pb2.ListStoresRequest(),
            "GetOffer": backoffice_pb2.GetOfferRequest(id="NOPE"),
            "ListOffers": backoffice_pb2.ListOffersRequest(
                filter=backoffice_pb2.OfferFilter(scope_group_id="G", store_id="S001")
            ),
            "GetFavoriteProductsOffer": backoffice_pb2.GetFavoriteProductsOfferRequest(id="NOPE"),
            "ListFavoriteProductsOffers": backoffice_pb2.ListFavoriteProductsOffersRequest(
                filter=backoffice_pb2.OfferFilter(scope_group_id="G", store_id="S001")
            ),
            "DeactivateOffer": backoffice_pb2.DeactivateOfferRequest(id="NOPE"),
            "ReactivateOffer": backoffice_pb2.ReactivateOfferRequest(id="NOPE"),
        }.items()
    },
    "StreamMemberEvents": (  # all good: each case makes it refused before it streams
        N,
        notification_pb2.StreamMemberEventsRequest(member_id="M000001", consumer="c"),
        CS,
    ),
    "AckMemberEvents": (
        N,
        notification_pb2.AckMemberEventsRequest(consumer="c", position=10**12),
        CS,
    ),
    "Replay": (P, replay(), BO),  # the draft's id is a favorite-products offer's: refused
}


def edited(request: Any, path: str, edit: Callable[[Any, str], None]) -> Any:
    """A copy of the request with the field at `path` ("offer.store_ids[0]") edited."""
    copy = type(request)()
    copy.CopyFrom(request)
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        name, _, index = name.partition("[")
        target = getattr(target, name)
        if index:
            target = target[int(index.rstrip("]"))]
    edit(target, last)
    return copy


def case_name(method: str, path: str, what: str) -> str:
    return f"{method} {path}: {what}"


# --- every Timestamp of every request, outside google.protobuf.Timestamp's range ----------

NOW_S = int(time.time())
BAD_STAMPS = {
    "a second before year 1": (-62135596801, 0),
    "2**62 seconds": (2**62, 0),
    "a second after year 9999": (253402300800, 0),
    "negative nanos": (NOW_S, -1),
    "a whole second of nanos": (NOW_S, 10**9),
}

# The Timestamp fields of the requests (the attribute import's rows aside).
TIMESTAMP_FIELDS = {
    "Calculate": ["receipt.sale_time"],
    "Confirm": ["receipt.sale_time"],
    "GetMemberOffers": ["at"],
    "UpsertCouponCampaign": ["campaign.valid_from", "campaign.valid_to"],
    "UpsertOffer": ["offer.validity.valid_from", "offer.validity.valid_to"],
    "UpsertFavoriteProductsOffer": [
        "offer.offer.validity.valid_from",
        "offer.offer.validity.valid_to",
    ],
    "Replay": [
        "draft_offer.validity.valid_from",
        "draft_offer.validity.valid_to",
        "start",
        "end",
    ],
    "ListOffers": ["filter.valid_at"],
    "ListFavoriteProductsOffers": ["filter.valid_at"],
    "ListCouponCampaigns": ["valid_at"],
}


def set_stamp(seconds: int, nanos: int) -> Callable[[Any, str], None]:
    def edit(message: Any, name: str) -> None:
        stamp = getattr(message, name)
        stamp.seconds, stamp.nanos = seconds, nanos

    return edit


def timestamp_cases() -> list[Case]:
    cases = []
    for method, paths in TIMESTAMP_FIELDS.items():
        service, request, role = GOOD[method]
        for path in paths:
            for what, (seconds, nanos) in BAD_STAMPS.items():
                bad = edited(request, path, set_stamp(seconds, nanos))
                name = case_name(method, path, what)
                cases.append(Case(name, service, method, bad, INVALID, path, role))
    return cases


TIMESTAMP_CASES = timestamp_cases()

# --- every string of every request, longer than its limit ------------------------------------

IDENTITY = [("member.card_number", limits.CARD), ("member.member_id", limits.ID)]
RECEIPT = [
    ("receipt.receipt_id", limits.ID),
    ("receipt.store_id", limits.ID),
    ("receipt.member.card_number", limits.CARD),
    ("receipt.member.member_id", limits.ID),
    ("receipt.lines[0].line_id", limits.ID),
    ("receipt.lines[0].sku", limits.ID),
    ("receipt.coupon_codes[0]", CODE_LENGTH),
]


def offer_strings(prefix: str) -> list[tuple[str, int]]:
    names = [("id", limits.ID), ("name", limits.NAME), ("scope_group_id", limits.ID)]
    names += [("store_ids[0]", limits.ID), ("audience.segment_tags[0]", limits.ID)]
    return [(f"{prefix}.{name}", limit) for name, limit in names + [("text", limits.NAME)]]


def ids(prefix: str, *names: str) -> list[tuple[str, int]]:
    return [(f"{prefix}.{name}", limits.NAME if name == "name" else limits.ID) for name in names]


PAGE_TOKEN = ("page.page_token", limits.PAGE_TOKEN)
OFFER_FILTER = [PAGE_TOKEN, ("filter.scope_group_id", limits.ID), ("filter.store_id", limits.ID)]

# method -> (path, limit) of each string field of its request (the attribute import's rows
# aside: service/imports/records.py checks those).
STRING_FIELDS: dict[str, list[tuple[str, int]]] = {
    "Calculate": RECEIPT,
    "Confirm": RECEIPT,
    "Refund": [
        ("refund_id", limits.ID),
        ("receipt_id", limits.ID),
        ("store_id", limits.ID),
        ("lines[0].line_id", limits.ID),
    ],
    "GetMemberOffers": [*IDENTITY, ("store_id", limits.ID)],
    "SelectFavoriteProducts": [*IDENTITY, ("offer_id", limits.ID), ("skus[0]", limits.ID)],
    "SelectFavoriteCategories": [*IDENTITY, ("offer_id", limits.ID), ("group_ids[0]", limits.ID)],
    "OperatorSetFavoriteProducts": [
        *IDENTITY,
        ("offer_id", limits.ID),
        ("skus[0]", limits.ID),
        ("comment", limits.COMMENT),
    ],
    "ListFavoriteProductsAudit": [*IDENTITY, ("offer_id", limits.ID)],
    "GetMemberProfile": IDENTITY,
    "UpsertMemberProfile": [
        ("profile.member_id", limits.ID),
        ("profile.card_numbers[0]", limits.CARD),
        ("profile.birth_date", len("YYYY-MM-DD")),
        ("profile.segment_tags[0]", limits.ID),
    ],
    "AddMemberCard": [("member_id", limits.ID), ("card_number", limits.CARD)],
    "BlockMemberCard": [("member_id", limits.ID), ("card_number", limits.CARD)],
    "UpsertCategories": ids("categories[0]", "id", "name", "parent_id"),
    "UpsertProducts": ids("products[0]", "sku", "name", "category_ids[0]"),
    "UpsertProductGroups": ids(
        "groups[0]",
        "id",
        "name",
        "skus[0]",
        "category_ids[0]",
        "excluded_skus[0]",
        "excluded_category_ids[0]",
    ),
    "UpsertProductLists": ids("lists[0]", "id", "name", "skus[0]"),
    "UpsertStores": [*ids("stores[0]", "id", "name"), ("stores[0].time_zone", limits.ZONE)],
    "UpsertOffer": offer_strings("offer"),
    "UpsertFavoriteProductsOffer": [
        *offer_strings("offer.offer"),
        ("offer.product_list_id", limits.ID),
    ],
    "ImportCustomerAttributes": [
        ("header.import_id", limits.ID),
        ("header.source", limits.NAME),
        ("header.fingerprint", limits.ID),
    ],
    "GetImportStatus": [("import_id", limits.ID)],
    "RunFavoriteAutofill": [("offer_id", limits.ID), ("member_ids[0]", limits.ID)],
    "StreamMemberEvents": [("member_id", limits.ID), ("consumer", limits.ID)],
    "AckMemberEvents": [("consumer", limits.ID)],
    "Replay": [*offer_strings("draft_offer"), ("store_ids[0]", limits.ID)],
    **{f"Get{kind}": [("id", limits.ID)] for kind in ("Category", "ProductGroup", "ProductList")},
    "GetStore": [("id", limits.ID)],
    "GetProduct": [("sku", limits.ID)],
    "GetOffer": [("id", limits.ID)],
    "GetFavoriteProductsOffer": [("id", limits.ID)],
    "DeactivateOffer": [("id", limits.ID)],
    "ReactivateOffer": [("id", limits.ID)],
    "ListCategories": [PAGE_TOKEN, ("parent_id", limits.ID)],
    "ListProducts": [PAGE_TOKEN, ("category_id", limits.ID), ("group_id", limits.ID)],
    "ListProductGroups": [PAGE_TOKEN, ("sku", limits.ID)],
    "ListProductLists": [PAGE_TOKEN],
    "ListStores": [PAGE_TOKEN],
    "ListOffers": OFFER_FILTER,
    "ListFavoriteProductsOffers": OFFER_FILTER,
    "UpsertCouponCampaign": [
        ("campaign.id", limits.ID),
        ("campaign.offer_id", limits.ID),
        ("campaign.shared_code", CODE_LENGTH),
    ],
    "GenerateCouponCodes": [("campaign_id", limits.ID), ("member_id", limits.ID)],
    "GetCouponCampaign": [("id", limits.ID)],
    "ListCouponCampaigns": [PAGE_TOKEN, ("offer_id", limits.ID)],
    "ImportCouponCodes": [
        ("campaign_id", limits.ID),
        ("codes[0].code", CODE_LENGTH),
        ("codes[0].member_id", limits.ID),
    ],
}
# A favorite-products offer has no audience: one is refused before its tags are read.
REFUSED_AS = {"offer.offer.audience.segment_tags[0]": "offer.offer.audience"}


def set_text(value: str) -> Callable[[Any, str], None]:
    def edit(message: Any, last: str) -> None:
        name, _, index = last.partition("[")
        if not index:
            setattr(message, name, value)
            return
        items, position = getattr(message, name), int(index.rstrip("]"))
        if position < len(items):
            items[position] = value
        else:
            items.append(value)

    return edit


def string_cases() -> list[Case]:
    cases = []
    for method, fields in STRING_FIELDS.items():
        service, request, role = GOOD[method]
        for path, limit in fields:
            for what, length in (("one too many", limit + 1), ("10,000 characters", 10_000)):
                bad = edited(request, path, set_text("9" * length))
                name = case_name(method, path, what)
                field = REFUSED_AS.get(path, path)
                cases.append(Case(name, service, method, bad, INVALID, field, role))
    return cases


STRING_CASES = string_cases()

STUBS = {
    R: receipt_pb2_grpc.ReceiptServiceStub,
    M: member_pb2_grpc.MemberServiceStub,
    B: backoffice_pb2_grpc.BackOfficeServiceStub,
    N: notification_pb2_grpc.NotificationServiceStub,
    P: replay_pb2_grpc.CampaignReplayServiceStub,
    CP: coupons_pb2_grpc.CouponServiceStub,
}


def request_fields(descriptor: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """("string" | "timestamp", path) of every such field of a request, repeated fields at
    [0]; the attribute import's rows are left out."""
    for field in descriptor.fields:
        path = prefix + field.name + ("[0]" if field.is_repeated else "")
        if field.type == FieldDescriptor.TYPE_STRING:
            yield "string", path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            name = field.message_type.full_name
            if name == "google.protobuf.Timestamp":
                yield "timestamp", path
            elif name != "loyalty.v1.AttributeRow":
                yield from request_fields(field.message_type, path + ".")


def test_the_cases_cover_every_string_and_timestamp_of_every_request() -> None:
    for proto, service in (
        (receipt_pb2, "ReceiptService"),
        (member_pb2, "MemberService"),
        (backoffice_pb2, "BackOfficeService"),
        (notification_pb2, "NotificationService"),
        (replay_pb2, "CampaignReplayService"),
        (coupons_pb2, "CouponService"),
    ):
        for method in proto.DESCRIPTOR.services_by_name[service].methods:
            found = list(request_fields(method.input_type))
            strings = {path for kind, path in found if kind == "string"}
            stamps = {path for kind, path in found if kind == "timestamp"}
            assert strings == {p for p, _ in STRING_FIELDS.get(method.name, [])}, method.name
            assert stamps == set(TIMESTAMP_FIELDS.get(method.name, [])), method.name


def store_fingerprint(server: LoyaltyServer) -> dict[str, int]:
    with db.make_session_factory(server.store)() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


def bad_request_fields(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    fields: list[str] = []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def send(channel: grpc.Channel, case: Case) -> None:
    """One call; a client stream sends the one request, a server stream is read to its end."""
    call = getattr(STUBS[case.service](channel), case.method)
    metadata = auth(case.role)
    if case.method == "ImportCustomerAttributes":
        call(iter([case.request]), timeout=10, metadata=metadata)
    elif case.method in ("StreamMemberEvents", "Replay"):
        for _ in call(case.request, timeout=10, metadata=metadata):
            pass
    elif case.method == "ImportCouponCodes":  # a stream both ways
        for _ in call(iter([case.request]), timeout=10, metadata=metadata):
            pass
    else:
        call(case.request, timeout=10, metadata=metadata)


ALL_CASES = CASES + EVERY_N_DAYS_CASES + TIMESTAMP_CASES + STRING_CASES + replay_cases()
ALL_CASES = CASES + CHIPS_CASES + EVERY_N_DAYS_CASES + TIMESTAMP_CASES + STRING_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_bad_input_gets_a_clear_status_and_changes_nothing(
    demo_server: LoyaltyServer, channel: grpc.Channel, case: Case
) -> None:
    before = store_fingerprint(demo_server)
    with pytest.raises(grpc.RpcError) as caught:
        send(channel, case)
    assert caught.value.code() == case.code, caught.value.details()
    if case.field is not None:
        assert bad_request_fields(caught.value) == [case.field]
    assert len(caught.value.details() or "") < 300
    assert store_fingerprint(demo_server) == before
