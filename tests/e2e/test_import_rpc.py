"""Customer-attribute imports end to end: the client-streaming RPC on a real server with the
demo data, loyalty-import --target, and what a following Calculate or member lookup sees."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from loyalty.v1 import (
    backoffice_pb2 as bo,
)
from loyalty.v1 import (
    backoffice_pb2_grpc,
    member_pb2,
    member_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
)
from loyalty.v1 import (
    common_pb2 as c,
)
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer
from tests.e2e.conftest import auth

BUCKWHEAT = "4600000001494"  # a demo product, 178.90 a pack


def back_office(channel: grpc.Channel) -> backoffice_pb2_grpc.BackOfficeServiceStub:
    return backoffice_pb2_grpc.BackOfficeServiceStub(channel)


def messages(
    import_id: str, *rows: bo.AttributeRow
) -> Iterator[bo.ImportCustomerAttributesRequest]:
    yield bo.ImportCustomerAttributesRequest(
        header=bo.ImportHeader(import_id=import_id, source="test")
    )
    for row in rows:
        yield bo.ImportCustomerAttributesRequest(row=row)


def send(
    channel: grpc.Channel, import_id: str, *rows: bo.AttributeRow, role: Role = Role.BACK_OFFICE
):
    return back_office(channel).ImportCustomerAttributes(
        messages(import_id, *rows), timeout=30, metadata=auth(role)
    )


def profile(member_id: str, *cards: str) -> bo.AttributeRow:
    return bo.AttributeRow(
        member_profile=bo.MemberProfileRow(member_id=member_id, card_numbers=cards)
    )


def personal_offer(member_id: str, offer_id: str, value: int) -> bo.AttributeRow:
    return bo.AttributeRow(
        personal_offer=bo.PersonalOfferRow(
            member_id=member_id,
            offer_id=offer_id,
            name="Buckwheat for you",
            skus=[BUCKWHEAT],
            benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=value),
            priority=1000,
            stacking=c.STACKING_EXCLUSIVE,
        )
    )


def calculate(channel: grpc.Channel, member_id: str, receipt_id: str) -> receipt_pb2.ReceiptResult:
    receipt = receipt_pb2.Receipt(
        receipt_id=receipt_id,
        store_id="S001",
        channel=c.CHANNEL_POS,
        member=c.MemberIdentity(member_id=member_id),
        lines=[
            receipt_pb2.ReceiptLine(
                line_id="1", sku=BUCKWHEAT, quantity=1000, price=17890, amount=17890
            )
        ],
    )
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    return stub.Calculate(
        receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
    ).result


def offers_on_the_line(result: receipt_pb2.ReceiptResult) -> dict[str, int]:
    return {b.offer_id: b.discount for b in result.lines[0].benefits}


def test_rows_streamed_through_the_rpc_apply_and_the_next_calculate_sees_them(channel):
    answer = send(
        channel,
        "E2E-IMPORT-1",
        profile("E2E-M1", "2999000000001"),
        personal_offer("E2E-M1", "P-E2E", 5000),
        bo.AttributeRow(line_number=77, personal_offer=bo.PersonalOfferRow(member_id="E2E-M1")),
    )
    assert (answer.status.state, answer.status.rows_applied, answer.status.rows_rejected) == (
        "DONE",
        2,
        1,
    )
    assert [(e.line_number, e.field) for e in answer.errors] == [(77, "offer_id")]
    assert not answer.replayed
    assert offers_on_the_line(calculate(channel, "E2E-M1", "E2E-R1"))["P-E2E"] == 8945


FIRST_SECOND = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z


def dated_offer(offer_id: str, line_number: int, **validity: Timestamp) -> bo.AttributeRow:
    row = personal_offer("E2E-M10", offer_id, 2000)
    row.line_number = line_number
    row.personal_offer.validity.CopyFrom(c.Validity(**validity))
    return row


def test_a_row_with_a_time_no_datetime_holds_is_rejected_alone_and_the_rest_applies(channel):
    nul_name = dated_offer("P-NUL", 7)
    nul_name.personal_offer.name = "Buckwheat\x00"
    answer = send(
        channel,
        "E2E-IMPORT-10",
        profile("E2E-M10"),
        dated_offer("P-YEAR-0", 2, valid_from=Timestamp(seconds=FIRST_SECOND - 1)),
        dated_offer("P-YEAR-10000", 3, valid_to=Timestamp(seconds=LAST_SECOND + 1)),
        dated_offer("P-FAR", 4, valid_to=Timestamp(seconds=2**62)),
        dated_offer("P-NANOS", 5, valid_from=Timestamp(seconds=0, nanos=-1)),
        dated_offer("P-NANOS-2", 6, valid_to=Timestamp(seconds=0, nanos=10**9)),
        nul_name,
        dated_offer(
            "P-E2E10",
            8,
            valid_from=Timestamp(seconds=FIRST_SECOND),
            valid_to=Timestamp(seconds=LAST_SECOND, nanos=999_999_999),
        ),
    )
    assert (answer.status.state, answer.status.rows_applied, answer.status.rows_rejected) == (
        "DONE",
        2,
        6,
    )
    assert [(e.line_number, e.field) for e in answer.errors] == [
        (2, "valid_from"),
        (3, "valid_to"),
        (4, "valid_to"),
        (5, "valid_from"),
        (6, "valid_to"),
        (7, "name"),
    ]
    assert all(len(e.reason) < 100 for e in answer.errors)
    assert offers_on_the_line(calculate(channel, "E2E-M10", "E2E-R10"))["P-E2E10"] == 3578
    lookup = member_pb2_grpc.MemberServiceStub(channel).GetMemberOffers(
        member_pb2.GetMemberOffersRequest(member=c.MemberIdentity(member_id="E2E-M10")),
        timeout=10,
        metadata=auth(Role.CUSTOMER_SERVICES),
    )
    (offer,) = [o for o in lookup.personal_offers if o.offer_id == "P-E2E10"]
    assert (offer.validity.valid_from.seconds, offer.validity.valid_to.seconds) == (
        FIRST_SECOND,
        LAST_SECOND,
    )


def test_a_member_seen_before_the_import_gets_the_new_terms_at_once(channel):
    send(channel, "E2E-IMPORT-2", profile("E2E-M2"))
    assert "P-E2E2" not in offers_on_the_line(calculate(channel, "E2E-M2", "E2E-R2"))  # cached now
    send(channel, "E2E-IMPORT-3", personal_offer("E2E-M2", "P-E2E2", 2000))
    assert offers_on_the_line(calculate(channel, "E2E-M2", "E2E-R3"))["P-E2E2"] == 3578


def test_the_same_import_id_again_is_replayed_and_changes_nothing(channel):
    first = send(
        channel, "E2E-IMPORT-4", profile("E2E-M4"), personal_offer("E2E-M4", "P-E2E4", 1000)
    )
    again = send(
        channel, "E2E-IMPORT-4", profile("E2E-M4"), personal_offer("E2E-M4", "P-E2E4", 9000)
    )
    assert again.replayed and again.status == first.status
    assert offers_on_the_line(calculate(channel, "E2E-M4", "E2E-R4"))["P-E2E4"] == 1789


def test_imported_categories_show_in_the_member_lookup_with_nothing_chosen(channel):
    row = bo.AttributeRow(
        favorite_categories=bo.FavoriteCategoriesRow(
            member_id="E2E-M5",
            offer_id="C-E2E",
            name="Pick two",
            group_ids=["G-DAIRY", "G-BAKERY", "G-MEAT"],
            benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=700),
            max_count=2,
            acceptance_required=True,
            frequency=c.SELECTION_FREQUENCY_MONTHLY,
            stacking=c.STACKING_EXCLUSIVE,
        )
    )
    assert send(channel, "E2E-IMPORT-5", profile("E2E-M5"), row).status.rows_applied == 2
    lookup = member_pb2_grpc.MemberServiceStub(channel).GetMemberOffers(
        member_pb2.GetMemberOffersRequest(member=c.MemberIdentity(member_id="E2E-M5")),
        timeout=10,
        metadata=auth(Role.CUSTOMER_SERVICES),
    )
    (view,) = [v for v in lookup.favorite_categories if v.offer_id == "C-E2E"]
    assert [o.group_id for o in view.offered] == ["G-DAIRY", "G-BAKERY", "G-MEAT"]
    assert view.max_count == 2 and not any(o.chosen for o in view.offered)


def test_the_status_of_an_import_is_there_and_an_unknown_one_is_not_found(channel):
    send(channel, "E2E-IMPORT-6", profile("E2E-M6"))
    stub = back_office(channel)
    status = stub.GetImportStatus(
        bo.GetImportStatusRequest(import_id="E2E-IMPORT-6"),
        timeout=10,
        metadata=auth(Role.BACK_OFFICE),
    ).status
    assert (status.state, status.rows_total, status.rows_applied) == ("DONE", 1, 1)
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetImportStatus(
            bo.GetImportStatusRequest(import_id="nope"), timeout=10, metadata=auth(Role.BACK_OFFICE)
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_register_credential_may_not_import(channel):
    with pytest.raises(grpc.RpcError) as raised:
        send(channel, "E2E-IMPORT-7", profile("E2E-M7"), role=Role.REGISTER)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_stream_that_does_not_start_with_the_header_is_invalid(channel):
    request = bo.ImportCustomerAttributesRequest(row=profile("E2E-M8"))
    with pytest.raises(grpc.RpcError) as raised:
        back_office(channel).ImportCustomerAttributes(
            iter([request]), timeout=10, metadata=auth(Role.BACK_OFFICE)
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)
    violations = [
        v.field
        for detail in status.details
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR)
        for v in _unpack(detail).field_violations
    ]
    assert violations == ["header"]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (bo.ImportHeader(import_id="E2E-IMPORT-\x00"), "header.import_id"),
        (bo.ImportHeader(import_id="E2E-IMPORT-\x1b[2J"), "header.import_id"),
    ],
)
def test_an_import_id_with_control_characters_is_invalid(channel, header, field):
    requests = iter([bo.ImportCustomerAttributesRequest(header=header)])
    with pytest.raises(grpc.RpcError) as raised:
        back_office(channel).ImportCustomerAttributes(
            requests, timeout=10, metadata=auth(Role.BACK_OFFICE)
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)
    violations = [
        v.field
        for detail in status.details
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR)
        for v in _unpack(detail).field_violations
    ]
    assert violations == [field]


def _unpack(detail) -> error_details_pb2.BadRequest:
    bad_request = error_details_pb2.BadRequest()
    detail.Unpack(bad_request)
    return bad_request


def test_loyalty_import_streams_a_file_through_the_server(
    demo_server: LoyaltyServer, channel, tmp_path: Path
):
    source = tmp_path / "rows.jsonl"
    rows = [
        {"type": "member_profile", "member_id": "E2E-M9", "card_numbers": ["2999000000009"]},
        {"type": "personal_offer", "member_id": "E2E-M9", "offer_id": "P-E2E9", "name": "Buckwheat",
         "skus": [BUCKWHEAT], "benefit_kind": "PERCENT", "benefit_value": 3000, "priority": 1000},
        {"type": "personal_offer", "member_id": "E2E-M9", "offer_id": "P-BAD", "name": "x",
         "skus": [BUCKWHEAT], "benefit_kind": "PERCENT", "benefit_value": 30000},
        {"type": "personal_offer", "member_id": "E2E-NOBODY", "offer_id": "P-E2E9", "name": "x",
         "skus": [BUCKWHEAT], "benefit_kind": "PERCENT", "benefit_value": 3000},
    ]  # fmt: skip
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rejects = tmp_path / "rejects.csv"
    command = [
        sys.executable, "-m", "service.imports", "--target", f"127.0.0.1:{demo_server.port}",
        "--token", DEV_TOKENS[Role.BACK_OFFICE], "--import-id", "E2E-CLI-1",
        "--rejects", str(rejects), str(source),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "applied 2, rejected 2" in done.stdout
    assert rejects.read_text().splitlines()[1:] == [
        "3,benefit_value,basis points from 1 to 10000 (100 %)",
        "4,member_id,unknown member 'E2E-NOBODY': import a member_profile row first",
    ]
    assert offers_on_the_line(calculate(channel, "E2E-M9", "E2E-R9"))["P-E2E9"] == 5367
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "replayed" in again.stdout
