"""Till sessions on a real server: the receipt streamed line by line answers as Calculate of
the receipt so far, finish gives a token Confirm takes, and every bad message ends the
session with INVALID_ARGUMENT naming its field (tests/e2e/test_bad_input.py style)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients import register_cli
from clients.client import LoyaltyClient, LoyaltyError, by_card
from clients.receipt_format import load_receipt
from loyalty.v1 import common_pb2, receipt_pb2, till_session_pb2
from loyalty.v1 import till_session_pb2_grpc as session_grpc
from service import limits
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer, create_server
from tests.e2e.conftest import auth, demo_settings
from tests.e2e.statuses import refusal
from tests.e2e.test_bad_input import request_fields, store_fingerprint
from tests.e2e.test_fuzz import NEVER, messages
from tests.waiting import until

CARD = "2000000000001"
REPO = Path(__file__).resolve().parents[2]
INVALID = grpc.StatusCode.INVALID_ARGUMENT
Request = till_session_pb2.SessionRequest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoyaltyServer]:
    settings = demo_settings(tmp_path_factory.mktemp("till"), till_session_address="127.0.0.1:0")
    loyalty, _port = create_server(settings)
    loyalty.start()
    try:
        yield loyalty
    finally:
        loyalty.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(server: LoyaltyServer) -> Iterator[LoyaltyClient]:
    with LoyaltyClient(
        f"127.0.0.1:{server.port}",
        DEV_TOKENS[Role.REGISTER],
        session_target=f"127.0.0.1:{server.till_session_port}",
    ) as c:
        yield c


@pytest.fixture(scope="module")
def points_earned(client: LoyaltyClient) -> int:
    """The demo member's points available after a confirmed showcase receipt (a member of a
    fresh demo store has none to spend)."""
    receipt = demo_receipt()
    receipt.receipt_id = "TS-EARN"
    confirmed = client.confirm(receipt, client.calculate(receipt).confirmation_token)
    assert confirmed.result.total_points > 1000
    return client.get_member_offers(by_card(CARD)).points_available


@pytest.fixture(scope="module")
def session_channel(server: LoyaltyServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.till_session_port}") as ch:
        yield ch


def demo_receipt() -> receipt_pb2.Receipt:
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    return receipt


def header(receipt: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    opened = receipt_pb2.Receipt()
    opened.CopyFrom(receipt)
    opened.ClearField("lines")
    opened.ClearField("member")
    return opened


def calculated(client: LoyaltyClient, receipt: receipt_pb2.Receipt) -> receipt_pb2.ReceiptResult:
    """Calculate's result, with the sale time the session's answer had (unset: now)."""
    return client.calculate(receipt).result


def same_but_time(a: receipt_pb2.ReceiptResult, b: receipt_pb2.ReceiptResult) -> bool:
    a, b = type(a).FromString(a.SerializeToString()), type(b).FromString(b.SerializeToString())
    a.ClearField("sale_time")
    b.ClearField("sale_time")
    return a == b


# --- what a session answers -------------------------------------------------------------------


def test_every_answer_is_calculate_of_the_receipt_so_far_and_finish_confirms(
    server: LoyaltyServer, client: LoyaltyClient
) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0001"
    session = client.till_session(header(full))
    for line in full.lines:
        answer = session.scan(line)
        assert answer.line_count == len(session.receipt.lines)
        assert same_but_time(answer.result, calculated(client, session.receipt))
    anonymous_total = answer.result.total_discount
    answer = session.identify(by_card(CARD))
    assert answer.result.member_id == "M000001"
    assert same_but_time(answer.result, calculated(client, session.receipt))
    assert answer.result.total_discount > anonymous_total, "the card price applies"
    answer = session.void(full.lines[0].line_id)
    assert [x.line_id for x in answer.result.lines] == [x.line_id for x in full.lines[1:]]
    assert same_but_time(answer.result, calculated(client, session.receipt))
    assert not answer.confirmation_token, "only finish is signed"

    finished = session.finish()
    assert finished.confirmation_token
    assert finished.receipt == session.receipt
    assert same_but_time(finished.result, calculated(client, finished.receipt))
    confirmed = client.confirm(finished.receipt, finished.confirmation_token)
    assert confirmed.result == finished.result
    assert server.till_sessions is not None
    assert server.till_sessions.open_sessions == 0


def test_a_session_resumes_with_its_lines_and_may_remove_the_card(client: LoyaltyClient) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0002"
    session = client.till_session(full)  # all lines at once, with the card
    answer = session.identify(None)
    assert answer.result.member_id == ""
    assert same_but_time(answer.result, calculated(client, session.receipt))
    session.close()


def test_a_refused_scan_ends_the_stream_and_the_next_step_goes_on_from_before_it(
    client: LoyaltyClient,
) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0003"
    session = client.till_session(header(full))
    session.scan(full.lines[0])
    bad = receipt_pb2.ReceiptLine()
    bad.CopyFrom(full.lines[1])
    bad.quantity = 0
    with pytest.raises(LoyaltyError) as caught:
        session.scan(bad)
    assert caught.value.status == INVALID and caught.value.fields == ("scan.line.quantity",)
    answer = session.scan(full.lines[1])  # a new stream, opened with the first line
    assert answer.line_count == 2
    assert same_but_time(answer.result, calculated(client, session.receipt))
    session.close()


def test_sync_brings_the_session_to_the_receipt_the_till_shows(client: LoyaltyClient) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0004"
    session = client.till_session(header(full))
    answer = session.sync(full)
    assert answer is not None and answer.line_count == len(full.lines)
    edited = receipt_pb2.Receipt()
    edited.CopyFrom(full)
    edited.lines[0].quantity, edited.lines[0].amount = 1000, edited.lines[0].price
    del edited.lines[1]
    answer = session.sync(edited)
    assert answer is not None
    assert sorted(session.receipt.lines, key=str) == sorted(edited.lines, key=str)
    assert session.receipt.lines[-1] == edited.lines[0], "a changed line is scanned anew"
    assert same_but_time(answer.result, calculated(client, session.receipt))
    assert session.sync(edited) is None, "nothing to change"
    session.close()


# --- spending points and chips ------------------------------------------------------------------


def calculated_spending(
    client: LoyaltyClient, receipt: receipt_pb2.Receipt, spending: till_session_pb2.SessionSpend
) -> receipt_pb2.ReceiptResult:
    """Calculate's result for the receipt with the session's spend."""
    return client.calculate(
        receipt,
        points_to_spend=spending.points_to_spend,
        spend_max_points=spending.spend_max_points,
        chips_to_spend=spending.chips_to_spend,
    ).result


def test_points_asked_at_start_and_changed_later_are_spent_as_calculate_spends_them(
    client: LoyaltyClient, points_earned: int
) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0101"
    balance = client.get_member_offers(by_card(CARD)).points_available
    assert balance >= points_earned > 300
    carded = header(full)
    carded.member.CopyFrom(by_card(CARD))  # spending needs the member: the card comes first
    session = client.till_session(carded, points_to_spend=300)
    for line in full.lines:
        answer = session.scan(line)
        assert same_but_time(
            answer.result, calculated_spending(client, session.receipt, session.spending)
        )
    assert answer.result.points_requested == 300
    assert answer.result.total_points_spent == 300, "the whole receipt leaves room for 300"

    answer = session.spend(spend_max_points=True)  # "pay with as many points as I may"
    spent = answer.result.total_points_spent
    assert spent > 300
    assert same_but_time(
        answer.result, calculated_spending(client, session.receipt, session.spending)
    )

    finished = session.finish()
    assert finished.result.total_points_spent == spent, "finish is signed with the spend"
    confirmed = client.confirm(finished.receipt, finished.confirmation_token)
    assert confirmed.result.total_points_spent == spent
    after = client.get_member_offers(by_card(CARD)).points_available
    assert after == balance - spent + confirmed.result.total_points, "the confirm debited them"


def test_a_spend_of_nothing_calculates_as_a_receipt_without_points(
    client: LoyaltyClient, points_earned: int
) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0102"
    session = client.till_session(full, spend_max_points=True)
    assert session.scan(scan().scan.line).result.total_points_spent > 0
    answer = session.spend()
    assert answer.result.total_points_spent == answer.result.points_requested == 0
    assert same_but_time(answer.result, calculated(client, session.receipt))
    session.close()


def test_a_resumed_session_keeps_its_spend(client: LoyaltyClient, points_earned: int) -> None:
    """A refused step ends the stream; the next one opens a new stream whose start carries
    the spend, so the receipt is spent on as before."""
    full = demo_receipt()
    full.receipt_id = "TS-0103"
    session = client.till_session(full)
    session.spend(points_to_spend=200)
    with pytest.raises(LoyaltyError) as caught:
        session.void("no such line")
    assert caught.value.fields == ("void.line_id",)
    answer = session.scan(scan().scan.line)  # on a new stream
    assert answer.result.total_points_spent == 200
    assert same_but_time(
        answer.result, calculated_spending(client, session.receipt, session.spending)
    )
    session.close()


def test_sync_spends_after_the_card_and_stops_before_it_goes(
    client: LoyaltyClient, points_earned: int
) -> None:
    """The till's order: a spend needs a member, so it follows the card shown and an end of
    spending comes before the card is taken off."""
    full = demo_receipt()
    full.receipt_id = "TS-0104"
    anonymous = receipt_pb2.Receipt()
    anonymous.CopyFrom(full)
    anonymous.ClearField("member")
    session = client.till_session(anonymous)
    session.sync(anonymous)
    with_points = till_session_pb2.SessionSpend(points_to_spend=100)
    answer = session.sync(full, with_points)
    assert answer is not None and answer.result.total_points_spent == 100
    answer = session.sync(anonymous, till_session_pb2.SessionSpend())
    assert answer is not None and answer.result.member_id == ""
    assert same_but_time(answer.result, calculated(client, anonymous))
    session.close()


def test_chips_beyond_the_balance_are_refused_as_by_calculate(client: LoyaltyClient) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0105"
    with pytest.raises(LoyaltyError) as unary:
        client.calculate(full, chips_to_spend=10**9)
    session = client.till_session(full)
    with pytest.raises(LoyaltyError) as streamed:
        session.spend(chips_to_spend=10**9)
    assert streamed.value.status == unary.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert streamed.value.reason == unary.value.reason == "CHIPS_INSUFFICIENT"
    assert session.spending == till_session_pb2.SessionSpend(), "a refused spend is not kept"
    session.close()


@pytest.mark.parametrize(
    ("ask", "member", "field"),
    [
        ({"points_to_spend": -1}, True, "points_to_spend"),
        ({"points_to_spend": limits.POINTS + 1}, True, "points_to_spend"),
        ({"points_to_spend": 5, "spend_max_points": True}, True, "points_to_spend"),
        ({"points_to_spend": 100}, False, "points_to_spend"),
        ({"spend_max_points": True}, False, "spend_max_points"),
        ({"chips_to_spend": -1}, True, "chips_to_spend"),
        ({"chips_to_spend": limits.CHIPS + 1}, True, "chips_to_spend"),
    ],
    ids=["negative", "absurd", "both", "anonymous", "as many as allowed, anonymous",
         "negative chips", "absurd chips"],
)  # fmt: skip
def test_a_bad_spend_is_refused_as_calculate_refuses_it_naming_the_message_field(
    client: LoyaltyClient, ask: dict[str, Any], member: bool, field: str
) -> None:
    full = demo_receipt()
    full.receipt_id = "TS-0106"
    if not member:
        full.ClearField("member")
    with pytest.raises(LoyaltyError) as unary:
        client.calculate(full, **ask)
    assert unary.value.status == INVALID and unary.value.fields == (field,)
    for opening, spent in ((full, False), (header(full), False), (full, True)):
        session = client.till_session(opening, **({} if spent else ask))
        with pytest.raises(LoyaltyError) as streamed:
            session.spend(**ask) if spent else session.sync(opening)
        where = "spend" if spent else "start.spend"
        assert streamed.value.status == INVALID
        assert streamed.value.fields == (f"{where}.{field}",)
        assert unary.value.message in streamed.value.message
        session.close()


# --- credentials ------------------------------------------------------------------------------


def opened(channel: grpc.Channel, metadata: Any = ()) -> list[Any]:
    start = Request(start=till_session_pb2.SessionStart(receipt=header(demo_receipt())))
    stub = session_grpc.TillSessionServiceStub(channel)
    return list(stub.Session(iter([start]), metadata=metadata, timeout=10))


@pytest.mark.parametrize(
    ("metadata", "code", "reason"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        ((("authorization", "Bearer nobody.secret"),), grpc.StatusCode.UNAUTHENTICATED, ""),
        (auth(Role.CUSTOMER_SERVICES), grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"),
    ],
    ids=["no credential", "unknown credential", "another role"],
)
def test_a_session_needs_a_register_credential(
    session_channel: grpc.Channel, metadata: Any, code: grpc.StatusCode, reason: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        opened(session_channel, metadata)
    got_code, got_reason, _ = refusal(caught.value)
    assert got_code == code
    assert not reason or got_reason == reason


# --- bad input --------------------------------------------------------------------------------


def start(**change: Any) -> Request:
    receipt = demo_receipt()
    for name, value in change.items():
        setattr(receipt, name, value)
    return Request(start=till_session_pb2.SessionStart(receipt=receipt))


def start_with(edit: Any) -> Request:
    request = start()
    edit(request.start.receipt)
    return request


def scan(**values: Any) -> Request:
    line = receipt_pb2.ReceiptLine(line_id="9", sku="4600000000015", quantity=1000)
    line.price = line.amount = 8790
    for name, value in values.items():
        setattr(line, name, value)
    return Request(scan=till_session_pb2.SessionScan(line=line))


def void(line_id: str) -> Request:
    return Request(void=till_session_pb2.SessionVoid(line_id=line_id))


def identify(**values: Any) -> Request:
    return Request(
        identify=till_session_pb2.SessionIdentify(member=common_pb2.MemberIdentity(**values))
    )


def spend(**values: Any) -> Request:
    return Request(spend=till_session_pb2.SessionSpend(**values))


def start_spending(receipt: receipt_pb2.Receipt, **values: Any) -> Request:
    spending = till_session_pb2.SessionSpend(**values)
    return Request(start=till_session_pb2.SessionStart(receipt=receipt, spend=spending))


FINISH = Request(finish=till_session_pb2.SessionFinish())
EMPTY_START = Request(start=till_session_pb2.SessionStart(receipt=header(demo_receipt())))


@dataclass(frozen=True)
class Case:
    name: str
    messages: tuple[Request, ...]
    field: str | None  # the BadRequest field; None: another refusal
    code: grpc.StatusCode = INVALID


def set_stamp(seconds: int, nanos: int = 0) -> Any:
    def edit(receipt: receipt_pb2.Receipt) -> None:
        receipt.sale_time.seconds, receipt.sale_time.nanos = seconds, nanos

    return edit


def set_first_line(**values: Any) -> Any:
    def edit(receipt: receipt_pb2.Receipt) -> None:
        for name, value in values.items():
            setattr(receipt.lines[0], name, value)

    return edit


def many_lines(receipt: receipt_pb2.Receipt) -> None:
    for number in range(1001):
        receipt.lines.add(line_id=f"x{number}", sku="X", quantity=1000, price=1, amount=1)


LONG_ID, LONG_CARD = "9" * (limits.ID + 1), "9" * (limits.CARD + 1)
S = start()
ANONYMOUS = start_with(lambda r: r.ClearField("member"))
CASES = [
    Case("no action", (Request(),), "action"),
    Case("scan before start", (scan(),), "start"),
    Case("start twice", (S, S), "start"),
    Case("receipt id too long", (start(receipt_id=LONG_ID),), "start.receipt.receipt_id"),
    Case("store id too long", (start(store_id=LONG_ID),), "start.receipt.store_id"),
    Case("unspecified channel", (start(channel=0),), "start.receipt.channel"),
    Case(
        "card too long",
        (start_with(lambda r: setattr(r.member, "card_number", LONG_CARD)),),
        "start.receipt.member.card_number",
    ),
    Case(
        "member id too long",
        (start_with(lambda r: setattr(r.member, "member_id", LONG_ID)),),
        "start.receipt.member.member_id",
    ),
    Case(
        "unknown card",
        (start_with(lambda r: setattr(r.member, "card_number", "9" * 13)),),
        None,
        grpc.StatusCode.NOT_FOUND,
    ),
    Case("sale time in 1970", (start_with(set_stamp(0)),), "start.receipt.sale_time"),
    Case("sale time out of range", (start_with(set_stamp(-(10**12))),), "start.receipt.sale_time"),
    Case("sale time nanos", (start_with(set_stamp(1, -1)),), "start.receipt.sale_time"),
    Case("too many lines", (start_with(many_lines),), "start.receipt.lines"),
    Case(
        "a line's id too long",
        (start_with(set_first_line(line_id=LONG_ID)),),
        "start.receipt.lines[0].line_id",
    ),
    Case(
        "a line's SKU too long",
        (start_with(set_first_line(sku=LONG_ID)),),
        "start.receipt.lines[0].sku",
    ),
    Case(
        "a line's quantity",
        (start_with(set_first_line(quantity=0)),),
        "start.receipt.lines[0].quantity",
    ),
    Case("scan: no line id", (S, scan(line_id="")), "scan.line.line_id"),
    Case("scan: line id too long", (S, scan(line_id=LONG_ID)), "scan.line.line_id"),
    Case("scan: line id taken", (S, scan(line_id="1")), "scan.line.line_id"),
    Case("scan: no SKU", (S, scan(sku="")), "scan.line.sku"),
    Case("scan: SKU too long", (S, scan(sku=LONG_ID)), "scan.line.sku"),
    Case("scan: quantity zero", (S, scan(quantity=0)), "scan.line.quantity"),
    Case("scan: negative price", (S, scan(price=-1)), "scan.line.price"),
    Case("scan: amount above price", (S, scan(amount=10**6)), "scan.line.amount"),
    Case("void: no line id", (S, void("")), "void.line_id"),
    Case("void: line id too long", (S, void(LONG_ID)), "void.line_id"),
    Case("void: no such line", (S, void("77")), "void.line_id"),
    Case(
        "identify: card too long",
        (S, identify(card_number=LONG_CARD)),
        "identify.member.card_number",
    ),
    Case(
        "identify: member id too long",
        (S, identify(member_id=LONG_ID)),
        "identify.member.member_id",
    ),
    Case(
        "identify: unknown card",
        (S, identify(card_number="9" * 13)),
        None,
        grpc.StatusCode.NOT_FOUND,
    ),
    Case("finish with no lines", (EMPTY_START, FINISH), "finish"),
    Case("spend before start", (spend(points_to_spend=1),), "start"),
    Case("spend: negative points", (S, spend(points_to_spend=-1)), "spend.points_to_spend"),
    Case(
        "spend: absurd points",
        (S, spend(points_to_spend=limits.POINTS + 1)),
        "spend.points_to_spend",
    ),
    Case(
        "spend: points and as many as allowed",
        (S, spend(points_to_spend=5, spend_max_points=True)),
        "spend.points_to_spend",
    ),
    Case("spend: negative chips", (S, spend(chips_to_spend=-1)), "spend.chips_to_spend"),
    Case(
        "spend: absurd chips", (S, spend(chips_to_spend=limits.CHIPS + 1)), "spend.chips_to_spend"
    ),
    Case(
        "spend: points of an anonymous buyer",
        (ANONYMOUS, spend(spend_max_points=True)),
        "spend.spend_max_points",
    ),
    Case(
        "spend: chips beyond the balance",
        (S, spend(chips_to_spend=10**9)),
        None,
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
    Case(
        "start: negative points",
        (start_spending(demo_receipt(), points_to_spend=-1),),
        "start.spend.points_to_spend",
    ),
    Case(
        "start with no lines: points of an anonymous buyer",
        (start_spending(header(demo_receipt()), points_to_spend=1),),
        "start.spend.points_to_spend",
    ),
    Case(
        "start with no lines: negative chips",
        (start_spending(header(demo_receipt()), chips_to_spend=-1),),
        "start.spend.chips_to_spend",
    ),
    Case(
        "identify: the member taken off while points are spent",
        (start_spending(demo_receipt(), points_to_spend=1), Request(identify={})),
        "start.spend.points_to_spend",
    ),
    Case(
        "a coupon code of other characters",
        (start_with(lambda r: r.coupon_codes.append("BAD!CODE")),),
        "start.receipt.coupon_codes[0]",
    ),
]

# Every string and Timestamp field of a SessionRequest, and the case that covers it.
COVERED = {
    "start.receipt.receipt_id",
    "start.receipt.store_id",
    "start.receipt.sale_time",
    "start.receipt.member.card_number",
    "start.receipt.member.member_id",
    "start.receipt.lines[0].line_id",
    "start.receipt.lines[0].sku",
    "start.receipt.coupon_codes[0]",
    "scan.line.line_id",
    "scan.line.sku",
    "void.line_id",
    "identify.member.card_number",
    "identify.member.member_id",
}


def test_the_cases_cover_every_string_and_timestamp_of_a_session_message() -> None:
    fields = {path for _kind, path in request_fields(Request.DESCRIPTOR)}
    assert fields == COVERED
    assert {c.field for c in CASES} >= COVERED


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_message_ends_the_session_with_a_clear_status_and_changes_nothing(
    server: LoyaltyServer, session_channel: grpc.Channel, case: Case
) -> None:
    before = store_fingerprint(server)
    stub = session_grpc.TillSessionServiceStub(session_channel)
    with pytest.raises(grpc.RpcError) as caught:
        for _ in stub.Session(iter(case.messages), metadata=auth(), timeout=10):
            pass
    code, _reason, field = refusal(caught.value)
    assert code == case.code, caught.value.details()
    if case.field is not None:
        assert field == case.field, caught.value.details()
    assert len(caught.value.details() or "") < 300
    assert store_fingerprint(server) == before


def test_a_body_that_is_no_message_is_invalid_argument(session_channel: grpc.Channel) -> None:
    raw = session_channel.stream_stream(
        "/loyalty.v1.TillSessionService/Session",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as caught:
        list(raw(iter([b"\xff\xff\xff"]), metadata=auth(), timeout=10))
    assert refusal(caught.value)[0] == INVALID and refusal(caught.value)[2] == "request"


def test_the_unary_server_does_not_serve_sessions(server: LoyaltyServer) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch,
        pytest.raises(grpc.RpcError) as caught,
    ):
        opened(ch, auth())
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- the till ---------------------------------------------------------------------------------

TILL_SCRIPT = """4600000000015 2
card 2000000000001
points 100
4600000000787 0.753
4600000000329
void 1
pay
refund 3 1
quit
"""


def run_till(server: LoyaltyServer, *args: str, script: str = TILL_SCRIPT, status: int = 0) -> str:
    command = [sys.executable, "-m", "clients.till", "--target", f"127.0.0.1:{server.port}"]
    command += ["--token", DEV_TOKENS[Role.REGISTER], *args]
    done = subprocess.run(
        command, input=script, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == status, done.stdout + done.stderr
    return done.stdout


def totals(output: str) -> list[str]:
    """What the till printed but the receipt ids and times."""
    return [
        line
        for line in output.splitlines()
        if "TOTAL" in line or "PAID" in line or line.startswith("Paid with")
    ]


def test_the_till_over_a_session_shows_and_pays_what_it_shows_over_calculate(
    server: LoyaltyServer, points_earned: int
) -> None:
    def sessions_done() -> float:
        value = server.metrics.registry.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_type": "bidi_stream",
                "grpc_service": "loyalty.v1.TillSessionService",
                "grpc_method": "Session",
                "grpc_code": "OK",
            },
        )
        return value or 0.0

    before = sessions_done()
    streamed = run_till(server, "--session-target", f"127.0.0.1:{server.till_session_port}")
    assert sessions_done() == before + 1, "one session: scans, card and void, then finish"
    unary = run_till(server)
    assert totals(streamed) == totals(unary)
    printed = totals(streamed)
    assert sum(line.startswith("TOTAL") for line in printed) >= 5, "a receipt per change"
    assert sum(line.startswith("PAID ") and "BACK" not in line for line in printed) == 1
    assert "Paid with 100 points (1.00 RUB)" in printed, "`points 100` over the session too"


def test_the_till_over_a_session_pays_with_as_many_points_as_allowed(
    server: LoyaltyServer, points_earned: int
) -> None:
    script = "card 2000000000001\n4600000000015 2\npoints max\npay\n"
    output = run_till(
        server, "--session-target", f"127.0.0.1:{server.till_session_port}", script=script
    )
    shown = next(line for line in output.splitlines() if line.startswith("Points: "))
    spent = int(shown.split()[1])
    assert spent > 0, output
    assert f"Paid with {spent} points" in output


# --- fuzzing ----------------------------------------------------------------------------------


def test_no_generated_session_gets_unknown_or_internal(
    server: LoyaltyServer, session_channel: grpc.Channel
) -> None:
    stub = session_grpc.TillSessionServiceStub(session_channel)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        opening=st.sampled_from([[], [S], [EMPTY_START]]),
        sent=st.lists(messages(Request.DESCRIPTOR), min_size=1, max_size=4),
    )
    def one_session(opening: list[Request], sent: list[Any]) -> None:
        try:
            for _ in stub.Session(iter([*opening, *sent]), metadata=auth(), timeout=5):
                pass
        except grpc.RpcError as err:
            assert err.code() not in NEVER, f"{err.code()} {err.details()}"
            assert len(err.details() or "") <= limits.MESSAGE

    one_session()
    assert server.till_sessions is not None
    until(lambda: server.till_sessions.open_sessions == 0, what="every session ended")


def test_the_till_over_a_session_earns_chips_and_spends_them_on_a_reward(
    server: LoyaltyServer,
) -> None:
    food, towels = "4600000000022", "4600000002514"  # G-FOOD milk; the C-REWARD-TOWELS reward
    script = f"""card 2000000000004
{food} 1 6000.00
pay
card 2000000000004
{towels} 1 50.00
chips 99
chips 10
pay
"""
    session = ("--session-target", f"127.0.0.1:{server.till_session_port}")
    out = run_till(server, *session, script=script, status=1)  # `chips 99` refused, goes on
    earned, rest = out.split("till> chips 99")
    refused, unlocked = rest.split("till> chips 10")
    granted = int(earned.split("Chips: +")[1].split()[0])
    assert granted >= 10, "at least 5 000.00 of food paid: 1 chip per 500.00"
    assert "not enough chips" in refused
    assert "Paper towels 1.00 for 10 chips" in unlocked and "(10 chips)" in unlocked
    assert f"Chips: +0 granted, -10 spent, balance {granted - 10}" in unlocked


def test_the_till_over_a_session_stops_spending_when_the_card_is_taken_off(
    server: LoyaltyServer, points_earned: int
) -> None:
    script = "card 2000000000001\n4600000000015 2\npoints 100\ncard\npay\n"
    session = ("--session-target", f"127.0.0.1:{server.till_session_port}")
    out = run_till(server, *session, script=script)
    anonymous = out.split("till> card\n")[1]
    assert "no loyalty card" in anonymous and "Paid with" not in anonymous
    assert "PAID 175.80 RUB" in anonymous, "the shelf price, all in money"
