"""Coupon codes end to end (docs/coupons.md): a gated offer applies only with its code, each
code's outcome is in the result, a unique code is redeemed once, a shared code within its
limit, a full refund gives codes back, unknown codes are rate-limited per credential, and a
large batch of codes imports in batches with progress."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from clients.client import LoyaltyClient, LoyaltyError
from loyalty.v1 import coupons_pb2, member_pb2, member_pb2_grpc, receipt_pb2
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer, create_server
from service.api.tokens import signer_from_settings
from service.demo_data.generate import WELCOME_OFFER
from tests.e2e.conftest import auth, demo_settings
from tests.e2e.coupon_support import (
    SHARED_OFFER,
    UNIQUE_OFFER,
    calculate,
    confirm,
    coupon_call,
    generate,
    refund_all,
    register,
    set_up_campaigns,
    statuses,
    tea_receipt,
    upsert_campaign,
)
from tests.e2e.statuses import refusal

MEMBER = "M000001"  # a demo member


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A demo server of its own (its miss budget is this module's)."""
    settings = demo_settings(tmp_path_factory.mktemp("coupons"), coupon_miss_burst=1000)
    server, port = create_server(settings)
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=1.0)


@pytest.fixture(scope="module")
def channel(port: int) -> Iterator[grpc.Channel]:
    """A channel to the module's server, with the campaigns set up."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        set_up_campaigns(ch, shared_total_limit=3)
        yield ch


def discounts(result) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(b.offer_id, b.discount) for line in result.lines for b in line.benefits]


def test_a_gated_offer_applies_only_with_its_code_and_each_code_says_what_became_of_it(
    channel: grpc.Channel,
) -> None:
    assert discounts(calculate(channel, tea_receipt("C-1")).result) == []
    shown = calculate(channel, tea_receipt("C-2", "summer10", "NO-SUCH-CODE")).result
    assert discounts(shown) == [(SHARED_OFFER, 1000)]  # 10 % of 100.00
    assert statuses(shown) == [
        ("SUMMER10", "COUPON_STATUS_APPLIED"),
        ("NO-SUCH-CODE", "COUPON_STATUS_UNKNOWN"),
    ]
    assert shown.coupons[0].campaign_id == "SUMMER" and shown.total_paid == 9000


def test_of_two_codes_for_one_line_the_better_offer_wins_and_the_other_applies_to_nothing(
    channel: grpc.Channel,
) -> None:
    (code,) = generate(channel)
    shown = calculate(channel, tea_receipt("C-3", "SUMMER10", code)).result
    assert discounts(shown) == [(UNIQUE_OFFER, 2000)]  # exclusive 20 % beats 10 %
    assert statuses(shown) == [
        ("SUMMER10", "COUPON_STATUS_NOTHING_TO_APPLY"),
        (code, "COUPON_STATUS_APPLIED"),
    ]


def test_a_unique_code_is_redeemed_once_replays_change_nothing_and_a_full_refund_frees_it(
    channel: grpc.Channel, tmp_path: Path
) -> None:
    (code,) = generate(channel)
    first, second = tea_receipt("C-U1", code), tea_receipt("C-U2", code)
    token_first = calculate(channel, first).confirmation_token
    token_second = calculate(channel, second).confirmation_token
    payload = signer_from_settings(demo_settings(tmp_path)).verify(first, token_first)
    assert [c.code for c in payload.coupons] == [code]  # the token carries what applied

    confirmed = confirm(channel, first, token_first)
    assert discounts(confirmed.result) == [(UNIQUE_OFFER, 2000)]
    again = confirm(channel, first, token_first)
    assert again.replayed and again.result == confirmed.result
    with pytest.raises(grpc.RpcError) as refused:
        confirm(channel, second, token_second)
    assert refusal(refused.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "COUPON_USED")
    with pytest.raises(grpc.RpcError) as still:  # nothing of the refused confirm was kept
        confirm(channel, second, token_second)
    assert refusal(still.value)[1] == "COUPON_USED"
    assert statuses(calculate(channel, second).result) == [(code, "COUPON_STATUS_USED_UP")]

    refund_all(channel, "C-U1-R", "C-U1")
    assert statuses(calculate(channel, second).result) == [(code, "COUPON_STATUS_APPLIED")]
    assert not confirm(channel, second, calculate(channel, second).confirmation_token).replayed


def test_a_shared_code_is_used_up_at_its_total_limit(channel: grpc.Channel) -> None:
    # the module's SUMMER campaign allows 3 uses in total
    sent = [tea_receipt(f"C-S{i}", "SUMMER10") for i in range(4)]
    tokens = [calculate(channel, r).confirmation_token for r in sent]
    for receipt, token in zip(sent[:3], tokens[:3], strict=True):
        confirm(channel, receipt, token)
    with pytest.raises(grpc.RpcError) as refused:
        confirm(channel, sent[3], tokens[3])
    assert refusal(refused.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "COUPON_USED_UP")
    refund_all(channel, "C-S0-R", "C-S0")  # released: one use free again
    assert not confirm(channel, sent[3], tokens[3]).replayed


def test_a_code_for_a_member_an_expired_campaign_and_the_member_lookup(
    channel: grpc.Channel,
) -> None:
    (mine,) = generate(channel, member_id=MEMBER)
    anonymous = calculate(channel, tea_receipt("C-M1", mine)).result
    assert statuses(anonymous) == [(mine, "COUPON_STATUS_NOT_FOR_MEMBER")]
    theirs = calculate(channel, tea_receipt("C-M2", mine, member_id=MEMBER)).result
    assert statuses(theirs) == [(mine, "COUPON_STATUS_APPLIED")]

    stub = member_pb2_grpc.MemberServiceStub(channel)
    view = stub.GetMemberOffers(
        member_pb2.GetMemberOffersRequest(member={"member_id": MEMBER}),
        timeout=10, metadata=auth(Role.CUSTOMER_SERVICES),
    )  # fmt: skip
    assert [(c.code, c.campaign_id, c.offer_id) for c in view.coupons] == [
        (mine, "U1", UNIQUE_OFFER)
    ]
    # the gated offers (these two and the demo's welcome coupon) are listed as needing a
    # code, the others not
    gated = {SHARED_OFFER, UNIQUE_OFFER, WELCOME_OFFER}
    needs_code = {o.offer_id: o.coupon_required for o in view.general_offers}
    assert {k for k, v in needs_code.items() if v} == gated
    assert len(needs_code) > len(gated)

    ended = coupons_pb2.CouponCampaign(
        id="OLD", offer_id=SHARED_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
        shared_code="WINTER5",
    )  # fmt: skip
    ended.valid_to.FromDatetime(datetime.now(UTC) - timedelta(days=1))
    upsert_campaign(channel, ended)
    late = calculate(channel, tea_receipt("C-M3", "WINTER5")).result
    assert statuses(late) == [("WINTER5", "COUPON_STATUS_EXPIRED")] and not discounts(late)


@pytest.mark.parametrize(
    ("codes", "field"),
    [
        (["X" * 33], "receipt.coupon_codes[0]"),
        (["SUMMER10", "NOT OK"], "receipt.coupon_codes[1]"),
        (["SUMMER10", "summer10"], "receipt.coupon_codes[1]"),
        ([""], "receipt.coupon_codes[0]"),
        ([f"C{i}" for i in range(11)], "receipt.coupon_codes"),
    ],
)
def test_a_bad_code_is_invalid_argument_naming_it(
    channel: grpc.Channel, codes: list[str], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        calculate(channel, tea_receipt("C-BAD", *codes))
    assert refusal(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)


def test_campaigns_refuse_bad_definitions_and_other_roles(channel: grpc.Channel) -> None:
    bad = coupons_pb2.CouponCampaign(
        id="B", offer_id=SHARED_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_UNIQUE,
        shared_code="X1",
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as refused:
        upsert_campaign(channel, bad)
    assert refusal(refused.value)[2] == "campaign.shared_code"
    taken = coupons_pb2.CouponCampaign(
        id="B", offer_id=UNIQUE_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
        shared_code="SUMMER10",
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as clash:
        upsert_campaign(channel, taken)
    assert refusal(clash.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "COUPON_CODE_TAKEN")
    unknown = coupons_pb2.CouponCampaign(
        id="B", offer_id="NO-OFFER", kind=coupons_pb2.COUPON_CAMPAIGN_KIND_UNIQUE
    )
    with pytest.raises(grpc.RpcError) as missing:
        upsert_campaign(channel, unknown)
    assert refusal(missing.value)[:2] == (grpc.StatusCode.NOT_FOUND, "OFFER_NOT_FOUND")
    with pytest.raises(grpc.RpcError) as denied:
        coupon_call(
            channel, "GenerateCouponCodes",
            coupons_pb2.GenerateCouponCodesRequest(campaign_id="U1", count=1), Role.REGISTER,
        )  # fmt: skip
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as too_many:
        generate(channel, count=10_001)
    assert refusal(too_many.value)[2] == "count"


def test_generated_codes_are_long_random_and_distinct(channel: grpc.Channel) -> None:
    codes = generate(channel, count=500)
    assert len(set(codes)) == 500
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)


def batches(count: int, size: int, prefix: str) -> Iterator[coupons_pb2.ImportCouponCodesRequest]:
    for start in range(0, count, size):
        yield coupons_pb2.ImportCouponCodesRequest(
            campaign_id="U1",
            codes=[coupons_pb2.CouponCodeRow(code=f"{prefix}-{n:07d}") for n in
                   range(start, min(count, start + size))],
        )  # fmt: skip


def test_a_hundred_thousand_codes_import_in_batches_with_progress_and_a_rerun_skips_them(
    channel: grpc.Channel,
) -> None:
    progress = list(coupon_call(channel, "ImportCouponCodes", batches(100_000, 10_000, "IMP")))
    assert [p.received for p in progress] == list(range(10_000, 100_001, 10_000))
    assert (progress[-1].added, progress[-1].skipped) == (100_000, 0)
    rerun = list(coupon_call(channel, "ImportCouponCodes", batches(20_000, 10_000, "IMP")))
    assert (rerun[-1].added, rerun[-1].skipped) == (0, 20_000)
    shown = calculate(channel, tea_receipt("C-IMP", "imp-0099999")).result
    assert statuses(shown) == [("IMP-0099999", "COUPON_STATUS_APPLIED")]


def test_a_bad_import_row_names_the_code_and_is_not_written(channel: grpc.Channel) -> None:
    rows = [coupons_pb2.CouponCodeRow(code="BAD-1"), coupons_pb2.CouponCodeRow(code="no way")]
    request = coupons_pb2.ImportCouponCodesRequest(campaign_id="U1", codes=rows)
    with pytest.raises(grpc.RpcError) as refused:
        list(coupon_call(channel, "ImportCouponCodes", iter([request])))
    assert refusal(refused.value)[2] == "codes[1].code"
    assert statuses(calculate(channel, tea_receipt("C-B1", "BAD-1")).result) == [
        ("BAD-1", "COUPON_STATUS_UNKNOWN")
    ]


@pytest.fixture
def stingy_server(tmp_path) -> Iterator[LoyaltyServer]:  # type: ignore[no-untyped-def]
    settings = demo_settings(tmp_path, coupon_miss_burst=3, coupon_miss_rate_per_s=0.001)
    server, _port = create_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


def test_a_credential_trying_unknown_codes_is_refused_every_code_lookup_for_a_while(
    stingy_server: LoyaltyServer,
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{stingy_server.port}") as ch:
        set_up_campaigns(ch)
        calculate(ch, tea_receipt("R-1", "GUESS-1", "GUESS-2", "GUESS-3"))  # the burst
        for codes in (["GUESS-4"], ["SUMMER10"]):  # a known code too: nothing to learn
            with pytest.raises(grpc.RpcError) as refused:
                calculate(ch, tea_receipt("R-2", *codes))
            code, reason, _ = refusal(refused.value)
            assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "COUPON_LOOKUPS_LIMITED")
        # receipts without codes, and card lookups, are not limited by it
        assert calculate(ch, tea_receipt("R-3")).result.total_paid == 10000


def test_a_shared_code_with_a_per_member_limit_is_used_up_for_that_member_only(
    channel: grpc.Channel,
) -> None:
    once = coupons_pb2.CouponCampaign(
        id="ONCE", offer_id=SHARED_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
        shared_code="ONCE-EACH", per_member_limit=1,
    )  # fmt: skip
    upsert_campaign(channel, once)
    assert statuses(calculate(channel, tea_receipt("P-0", "ONCE-EACH")).result) == [
        ("ONCE-EACH", "COUPON_STATUS_NOT_FOR_MEMBER")
    ]
    first = tea_receipt("P-1", "ONCE-EACH", member_id=MEMBER)
    second = tea_receipt("P-2", "ONCE-EACH", member_id=MEMBER)
    other = tea_receipt("P-3", "ONCE-EACH", member_id="M000002")
    tokens = [calculate(channel, r).confirmation_token for r in (first, second, other)]
    confirm(channel, first, tokens[0])
    with pytest.raises(grpc.RpcError) as refused:
        confirm(channel, second, tokens[1])
    assert refusal(refused.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "COUPON_USED_UP")
    assert not confirm(channel, other, tokens[2]).replayed


def test_the_client_library_generates_and_imports_codes(channel: grpc.Channel, port: int) -> None:
    with LoyaltyClient(f"127.0.0.1:{port}", DEV_TOKENS[Role.BACK_OFFICE]) as office:
        assert len(office.generate_coupon_codes("U1", 3)) == 3
        rows = [(f"LIB-{n}", "") for n in range(25)]
        progress = list(office.import_coupon_codes("U1", rows, batch_size=10))
        assert [(p.received, p.added) for p in progress] == [(10, 10), (20, 20), (25, 25)]
        with pytest.raises(LoyaltyError) as refused:
            list(office.import_coupon_codes("NO-SUCH", rows))
        assert refused.value.reason == "CAMPAIGN_NOT_FOUND"


def test_a_partial_refund_keeps_the_code_and_the_refund_of_the_rest_releases_it(
    channel: grpc.Channel,
) -> None:
    (code,) = generate(channel)
    two = tea_receipt("C-PR", code)
    two.lines[0].quantity, two.lines[0].amount = 2000, 20000
    confirm(channel, two, calculate(channel, two).confirmation_token)
    probe = tea_receipt("C-PR-PROBE", code)
    request = receipt_pb2.RefundRequest(refund_id="C-PR-R1", receipt_id="C-PR", store_id="S001")
    request.lines.add(line_id="1", quantity=1000)
    register(channel).Refund(request, timeout=10, metadata=auth())
    assert statuses(calculate(channel, probe).result) == [(code, "COUPON_STATUS_USED_UP")]
    refund_all(channel, "C-PR-R2", "C-PR")
    assert statuses(calculate(channel, probe).result) == [(code, "COUPON_STATUS_APPLIED")]


def test_with_release_off_a_full_refund_keeps_the_code_used(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path, coupon_release_on_refund=False)
    server, port = create_server(settings)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            set_up_campaigns(ch)
            (code,) = generate(ch)
            sold = tea_receipt("K-1", code)
            confirm(ch, sold, calculate(ch, sold).confirmation_token)
            refund_all(ch, "K-1-R", "K-1")
            later = calculate(ch, tea_receipt("K-2", code)).result
            assert statuses(later) == [(code, "COUPON_STATUS_USED_UP")]
    finally:
        server.stop(grace=1.0)


# --- reading campaigns back (GetCouponCampaign, ListCouponCampaigns) ---------------------------


@pytest.fixture(scope="module")
def reads_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """A server of its own, so that the campaigns and their counts are only these tests'."""
    server, port = create_server(demo_settings(tmp_path_factory.mktemp("coupon-reads")))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            grpc.channel_ready_future(ch).result(timeout=10)
            set_up_campaigns(ch)
            yield ch
    finally:
        server.stop(grace=1.0)


def get_campaign(channel: grpc.Channel, campaign_id: str) -> coupons_pb2.CouponCampaignView:
    request = coupons_pb2.GetCouponCampaignRequest(id=campaign_id)
    return coupon_call(channel, "GetCouponCampaign", request).campaign


def list_ids(channel: grpc.Channel, page_size: int = 0, **filters: object) -> list[list[str]]:
    """The ids of every page of ListCouponCampaigns, page by page."""
    pages, token = [], ""
    while True:
        request = coupons_pb2.ListCouponCampaignsRequest(**filters)  # type: ignore[arg-type]
        request.page.page_size, request.page.page_token = page_size, token
        answer = coupon_call(channel, "ListCouponCampaigns", request)
        pages.append([view.campaign.id for view in answer.campaigns])
        token = answer.next_page_token
        if not token:
            return pages


def test_a_campaign_reads_back_as_it_was_upserted(reads_channel: grpc.Channel) -> None:
    summer = coupons_pb2.CouponCampaign(
        id="R-SUMMER", offer_id=SHARED_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_SHARED,
        shared_code="sun-25", per_member_limit=2, total_limit=50,
    )  # fmt: skip
    summer.valid_from.FromDatetime(datetime(2026, 6, 1, tzinfo=UTC))
    summer.valid_to.FromDatetime(datetime(2026, 9, 1, tzinfo=UTC))
    upsert_campaign(reads_channel, summer)
    view = get_campaign(reads_channel, "R-SUMMER")
    summer.shared_code = "SUN-25"  # stored normalised
    assert view.campaign == summer
    assert (view.codes_issued, view.codes_redeemed) == (0, 0)
    assert not get_campaign(reads_channel, "U1").campaign.HasField("valid_to")


def test_an_unknown_campaign_is_not_found_and_other_roles_are_refused(
    reads_channel: grpc.Channel,
) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        get_campaign(reads_channel, "NO-SUCH")
    assert refusal(missing.value)[:2] == (grpc.StatusCode.NOT_FOUND, "COUPON_CAMPAIGN_NOT_FOUND")
    for method, request in (
        ("GetCouponCampaign", coupons_pb2.GetCouponCampaignRequest(id="U1")),
        ("ListCouponCampaigns", coupons_pb2.ListCouponCampaignsRequest()),
    ):
        for role in (Role.REGISTER, Role.CUSTOMER_SERVICES):
            with pytest.raises(grpc.RpcError) as denied:
                coupon_call(reads_channel, method, request, role)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_campaigns_list_in_pages_and_by_offer_and_validity(reads_channel: grpc.Channel) -> None:
    june = datetime(2026, 6, 15, tzinfo=UTC)
    for number in range(5):
        campaign = coupons_pb2.CouponCampaign(
            id=f"P-{number}", offer_id=UNIQUE_OFFER, kind=coupons_pb2.COUPON_CAMPAIGN_KIND_UNIQUE
        )
        if number % 2:  # P-1 and P-3 end before June
            campaign.valid_to.FromDatetime(june - timedelta(days=30))
        upsert_campaign(reads_channel, campaign)
    everything = sum(list_ids(reads_channel), [])
    assert everything == sorted(everything) and {"U1", "SUMMER", "P-0", "P-4"} <= set(everything)
    pages = list_ids(reads_channel, page_size=2)
    assert all(len(page) == 2 for page in pages[:-1]) and sum(pages, []) == everything

    at = coupons_pb2.ListCouponCampaignsRequest().valid_at
    at.FromDatetime(june)
    by_offer = sum(list_ids(reads_channel, page_size=2, offer_id=UNIQUE_OFFER), [])
    assert by_offer == ["P-0", "P-1", "P-2", "P-3", "P-4", "U1"]
    in_june = sum(list_ids(reads_channel, offer_id=UNIQUE_OFFER, valid_at=at), [])
    assert in_june == ["P-0", "P-2", "P-4", "U1"]

    first = coupons_pb2.ListCouponCampaignsRequest(offer_id=UNIQUE_OFFER)
    first.page.page_size = 2
    token = coupon_call(reads_channel, "ListCouponCampaigns", first).next_page_token
    other = coupons_pb2.ListCouponCampaignsRequest(offer_id=SHARED_OFFER)
    other.page.page_token = token
    with pytest.raises(grpc.RpcError) as refused:  # a token belongs to its filters
        coupon_call(reads_channel, "ListCouponCampaigns", other)
    assert refusal(refused.value)[2] == "page.page_token"


def test_a_unique_campaign_counts_its_codes_issued_and_redeemed(
    reads_channel: grpc.Channel,
) -> None:
    codes = generate(reads_channel, count=3)
    sent = tea_receipt("R-C1", codes[0])
    confirm(reads_channel, sent, calculate(reads_channel, sent).confirmation_token)
    view = get_campaign(reads_channel, "U1")
    assert (view.codes_issued, view.codes_redeemed) == (3, 1)
    listed = coupon_call(
        reads_channel, "ListCouponCampaigns",
        coupons_pb2.ListCouponCampaignsRequest(offer_id=UNIQUE_OFFER),
    )  # fmt: skip
    last = listed.campaigns[-1]
    assert (last.campaign.id, last.codes_issued, last.codes_redeemed) == ("U1", 3, 1)
    refund_all(reads_channel, "R-C1-R", "R-C1")  # a full refund frees the code again
    assert get_campaign(reads_channel, "U1").codes_redeemed == 0
    assert get_campaign(reads_channel, "SUMMER").codes_issued == 0  # shared: no codes
