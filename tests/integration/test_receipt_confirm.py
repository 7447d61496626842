"""Confirming receipts against a real SQLite file and a real PostgreSQL server: exactly the
result shown, exactly once, usage limits checked again in the database, nothing half-written."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from loyalty.v1 import receipt_pb2
from service.api.auth import Principal, Role, set_current_principal
from service.api.errors import status_for
from service.api.receipts import ReceiptServicer
from service.api.tokens import TokenSigner
from service.app import receipts as receipt_cases
from service.engine.lifecycle import UsageClaim
from service.engine.model import (
    Benefit,
    BenefitKind,
    LimitPeriod,
    LimitUnit,
    PersonalOffer,
    UsageLimit,
)
from service.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from service.store.db import make_engine, make_session_factory
from service.store.loader import load_member
from service.store.member_repo import save_member
from service.store.models import ChangeFeedRow, MemberDocumentRow, ReceiptLineRow, ReceiptRow
from service.store.points_repo import queue_receipt_points
from tests.integration.receipt_support import (
    SETTINGS,
    SHOWCASE_MEMBER,
    Register,
    Verified,
    confirm_receipt,
    history_of,
    ledger_sum,
    open_register,
    row_counts,
    showcase_receipt,
    usage_of,
)

MOSCOW = ZoneInfo("Europe/Moscow")


def test_calculating_a_receipt_changes_nothing_a_member_can_see(register: Register) -> None:
    before = row_counts(register.sessions)
    answer = register.calculate(showcase_receipt("R-PREVIEW"))
    assert answer.confirmation_token
    assert row_counts(register.sessions) == before


def test_a_confirm_commits_the_result_shown_with_points_history_and_usage(
    register: Register,
) -> None:
    receipt = showcase_receipt("R-1")
    shown = register.calculate(receipt)
    confirmed = register.confirm(receipt, shown.confirmation_token)

    assert not confirmed.replayed
    assert confirmed.result == shown.result
    assert shown.result.total_points > 0
    assert confirmed.points_balance == shown.result.total_points
    assert ledger_sum(register.sessions, SHOWCASE_MEMBER) == shown.result.total_points
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 1000
    sale_time = shown.result.sale_time.ToDatetime(UTC).astimezone(ZoneInfo("Europe/Moscow"))
    month = sale_time.strftime("%Y-%m")
    history = history_of(register.sessions, SHOWCASE_MEMBER)
    quantities = {line.sku: line.quantity for line in receipt.lines}
    for line in shown.result.lines:  # the demo's history is of last month only
        assert history[(month, line.sku)] == (quantities[line.sku], line.paid)
    with register.sessions() as session:
        stored = session.get(ReceiptRow, "R-1")
        assert stored is not None
        assert stored.total_paid == shown.result.total_paid
        assert stored.member_id == SHOWCASE_MEMBER
        lines = session.scalars(select(ReceiptLineRow).where(ReceiptLineRow.receipt_id == "R-1"))
        assert sum(line.paid for line in lines) == shown.result.total_paid
        feed = session.scalars(select(ChangeFeedRow.entity_key)).all()
        assert SHOWCASE_MEMBER in feed


def test_the_replica_that_confirms_reads_its_own_write_at_once(register: Register) -> None:
    assert register.cache.member(SHOWCASE_MEMBER).usage == {}  # cached before the confirm
    register.confirm(showcase_receipt("R-OWN-WRITE"))
    assert register.cache.member(SHOWCASE_MEMBER).usage == {("P-COFFEE", "OFFER"): 1000}


def test_a_confirm_counting_no_usage_still_tells_the_change_feed(register: Register) -> None:
    """Its member's document changes in nothing but the points the receipt earned (no
    counter changed), and every replica hears of the member, as after any confirm of theirs."""
    receipt = showcase_receipt("R-NO-USAGE", coffee=False)
    del receipt.lines[3:]  # under 500.00 of food: no chips either (docs/chips.md)
    shown = register.calculate(receipt)
    payload = TokenSigner(SETTINGS.token_secret).verify(receipt, shown.confirmation_token)
    assert not payload.usage and not shown.result.total_chips
    assert shown.result.total_points > 0
    with register.sessions() as session:
        document = session.get(MemberDocumentRow, SHOWCASE_MEMBER)
        assert document is not None
        before = json.loads(document.body)
        feed = session.scalar(select(func.max(ChangeFeedRow.position))) or 0
    register.confirm(receipt, shown.confirmation_token)
    with register.sessions() as session:
        document = session.get(MemberDocumentRow, SHOWCASE_MEMBER)
        assert document is not None
        after = json.loads(document.body)
        keys = session.scalars(
            select(ChangeFeedRow.entity_key).where(ChangeFeedRow.position > feed)
        ).all()
    debt, lots = after.pop("points")
    assert after == {key: value for key, value in before.items() if key != "points"}
    assert debt == 0 and sum(lot[0] for lot in lots) == shown.result.total_points
    assert keys == [SHOWCASE_MEMBER]


def test_confirming_again_returns_the_stored_result_and_changes_nothing(
    register: Register,
) -> None:
    receipt = showcase_receipt("R-2")
    token = register.calculate(receipt).confirmation_token
    first = register.confirm(receipt, token)
    before = row_counts(register.sessions)

    again = register.confirm(receipt, token)
    assert again.replayed
    assert again.result == first.result
    assert again.points_balance == first.points_balance
    assert row_counts(register.sessions) == before


def test_a_repeat_with_the_token_of_a_new_calculation_is_still_a_repeat(
    register: Register,
) -> None:
    receipt = showcase_receipt("R-RECALC")
    first = register.confirm(receipt)
    before = row_counts(register.sessions)
    again = register.confirm(receipt)  # calculated again: the coffee limit now shows used
    assert again.replayed
    assert again.result == first.result
    assert row_counts(register.sessions) == before


def test_the_same_receipt_id_with_other_content_is_refused(register: Register) -> None:
    register.confirm(showcase_receipt("R-3"))
    before = row_counts(register.sessions)
    other = showcase_receipt("R-3")
    other.lines[0].amount -= 1
    with pytest.raises(AlreadyExists) as refused:
        register.confirm(other)
    assert refused.value.reason == "RECEIPT_ID_REUSED"
    assert row_counts(register.sessions) == before


def test_a_token_altered_on_the_way_is_refused_and_nothing_is_written(
    register: Register,
) -> None:
    receipt = showcase_receipt("R-4")
    shown = register.calculate(receipt)
    payload_start = 1 + 32
    tampered = bytearray(shown.confirmation_token)
    tampered[payload_start + 40] ^= 0x01
    before = row_counts(register.sessions)
    with pytest.raises(InvalidArgument) as refused:
        register.confirm(receipt, bytes(tampered))
    assert refused.value.field == "confirmation_token"
    assert row_counts(register.sessions) == before


def test_a_result_forged_with_another_secret_is_refused(register: Register) -> None:
    receipt = showcase_receipt("R-FORGED")
    shown = register.calculate(receipt)
    generous = receipt_pb2.ReceiptResult()
    generous.CopyFrom(shown.result)
    generous.total_points *= 100
    forged = TokenSigner("guessed-secret").sign(receipt, generous, ())
    with pytest.raises(InvalidArgument, match="altered"):
        register.confirm(receipt, forged)
    assert ledger_sum(register.sessions, SHOWCASE_MEMBER) == 0


def test_a_token_made_for_another_receipt_is_refused(register: Register) -> None:
    token = register.calculate(showcase_receipt("R-5")).confirmation_token
    with pytest.raises(InvalidArgument) as refused:
        register.confirm(showcase_receipt("R-6"), token)
    assert refused.value.field == "confirmation_token"
    assert row_counts(register.sessions)["receipts"] == 0


def test_a_confirm_without_a_token_or_receipt_id_names_the_field(register: Register) -> None:
    with pytest.raises(InvalidArgument) as no_token:
        register.confirm(showcase_receipt("R-7"), b"")
    assert no_token.value.field == "confirmation_token"
    with pytest.raises(InvalidArgument) as no_id:
        register.confirm(showcase_receipt(""))
    assert no_id.value.field == "receipt.receipt_id"


def test_a_register_of_another_store_may_not_confirm(register: Register) -> None:
    receipt = showcase_receipt("R-STORE")
    token = register.calculate(receipt).confirmation_token
    set_current_principal(Principal("other", "other", Role.REGISTER, frozenset({"S002"})))
    request = receipt_pb2.ConfirmRequest(receipt=receipt, confirmation_token=token)
    with pytest.raises(PermissionDenied):
        register.servicer.Confirm(request, None)  # type: ignore[arg-type]


def test_a_receipt_confirmed_on_another_replica_is_committed_once(register: Register) -> None:
    other_replica = open_register(register.sessions)
    receipt = showcase_receipt("R-REPLICAS")
    shown = register.calculate(receipt)
    on_other = other_replica.confirm(receipt, shown.confirmation_token)
    on_first = register.confirm(receipt, shown.confirmation_token)
    assert not on_other.replayed and on_first.replayed
    assert on_first.result == on_other.result == shown.result


def test_an_anonymous_receipt_is_stored_without_points_or_history(register: Register) -> None:
    receipt = showcase_receipt("R-ANON", coffee=False)
    receipt.ClearField("member")
    confirmed = register.confirm(receipt)
    assert confirmed.result.member_id == ""
    assert confirmed.points_balance == 0
    counts = row_counts(register.sessions)
    assert counts["receipts"] == 1
    assert counts["points_ledger"] == 0


# --- usage limits ------------------------------------------------------------------------------


def test_a_limit_used_up_between_calculate_and_confirm_refuses_the_confirm(
    register: Register,
) -> None:
    """P-COFFEE allows 3 pieces per member: four receipts of one piece are calculated while
    it is unused, so each shows the discount; the fourth confirm must be refused."""
    receipts = [showcase_receipt(f"R-LIMIT-{n}") for n in range(4)]
    tokens = [register.calculate(r).confirmation_token for r in receipts]
    for receipt, token in zip(receipts[:3], tokens[:3], strict=True):
        register.confirm(receipt, token)
    before = row_counts(register.sessions)
    balance = ledger_sum(register.sessions, SHOWCASE_MEMBER)

    with pytest.raises(FailedPrecondition) as refused:
        register.confirm(receipts[3], tokens[3])
    assert refused.value.reason == "USAGE_LIMIT_REACHED"
    assert "calculate the receipt again" in refused.value.message
    assert row_counts(register.sessions) == before
    assert ledger_sum(register.sessions, SHOWCASE_MEMBER) == balance
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 3000

    recalculated = register.calculate(receipts[3])
    coffee = next(line for line in recalculated.result.lines if line.line_id == "6")
    assert "P-COFFEE" not in {b.offer_id for b in coffee.benefits}
    assert not register.confirm(receipts[3], recalculated.confirmation_token).replayed


def test_a_per_member_offer_limit_is_checked_again_at_confirm(register: Register) -> None:
    """M-CHEESE-LIMIT: -100 RUB/kg on up to 2 kg of cheese a week, for every member."""
    cheese = _cheese_sku(register)
    receipts = []
    for n in range(2):
        receipt = showcase_receipt(f"R-CHEESE-{n}", coffee=False)
        del receipt.lines[:]
        receipt.lines.add(line_id="1", sku=cheese, quantity=2000, price=100000, amount=200000)
        receipts.append(receipt)
    tokens = [register.calculate(r).confirmation_token for r in receipts]
    register.confirm(receipts[0], tokens[0])
    with pytest.raises(FailedPrecondition, match="calculate the receipt again"):
        register.confirm(receipts[1], tokens[1])
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "M-CHEESE-LIMIT") == 2000


def _cheese_sku(register: Register) -> str:
    snapshot = register.cache.snapshot
    return next(sku for sku in sorted(snapshot.entries) if snapshot.group_contains("G-CHEESE", sku))


def test_concurrent_confirms_of_receipts_sharing_a_limit_never_pass_it(
    register: Register,
) -> None:
    receipts = [showcase_receipt(f"R-RACE-LIMIT-{n}") for n in range(8)]
    tokens = [register.calculate(r).confirmation_token for r in receipts]
    start = threading.Barrier(len(receipts))

    def confirm(index: int) -> str:
        start.wait()
        try:
            register.confirm(receipts[index], tokens[index])
        except FailedPrecondition as refused:
            return refused.reason
        return "confirmed"

    with ThreadPoolExecutor(len(receipts)) as pool:
        outcomes = Counter(pool.map(confirm, range(len(receipts))))
    assert outcomes == {"confirmed": 3, "USAGE_LIMIT_REACHED": 5}
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 3000


# --- exactly once under concurrency ------------------------------------------------------------


def test_fifty_concurrent_confirms_of_one_receipt_commit_it_once(register: Register) -> None:
    """Each thread calls the store with its own sessions; they start together."""
    receipt = showcase_receipt("R-FIFTY")
    shown = register.calculate(receipt)
    payload = TokenSigner(SETTINGS.token_secret).verify(receipt, shown.confirmation_token)
    assert [(u.offer_id, u.used) for u in payload.usage] == [("P-COFFEE", 1000)]
    coffee = UsageClaim("P-COFFEE", payload.usage[0].period_key, 1000, 3000, LimitUnit.UNITS)
    confirmation = Verified(receipt, payload.result, (coffee,))
    start = threading.Barrier(50)

    def confirm(_: int) -> receipt_pb2.ConfirmResponse:
        start.wait()
        return confirm_receipt(register.sessions, confirmation, time_zone=MOSCOW)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(confirm, range(50)))

    assert sum(not a.replayed for a in answers) == 1
    assert all(a.result == shown.result for a in answers)
    assert {a.points_balance for a in answers} == {shown.result.total_points}
    counts = row_counts(register.sessions)
    assert counts["receipts"] == 1
    assert counts["receipt_lines"] == len(receipt.lines)
    assert ledger_sum(register.sessions, SHOWCASE_MEMBER) == shown.result.total_points
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-COFFEE") == 1000


# --- failures ------------------------------------------------------------------------------------


def test_a_database_failure_midway_leaves_nothing_half_written(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = showcase_receipt("R-FAIL")
    token = register.calculate(receipt).confirmation_token
    before = row_counts(register.sessions)

    def store_gone(*_args: object) -> int:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    # the points, queued last before the writes are sent (after the claim was sent)
    monkeypatch.setattr(receipt_cases, "queue_receipt_points", store_gone)
    with pytest.raises(OperationalError) as failed:
        register.confirm(receipt, token)
    assert status_for(failed.value, "Confirm").code.name == "UNAVAILABLE"
    assert row_counts(register.sessions) == before

    monkeypatch.setattr(receipt_cases, "queue_receipt_points", queue_receipt_points)
    retried = register.confirm(receipt, token)  # the register retries with the same id
    assert not retried.replayed
    assert row_counts(register.sessions)["receipts"] == before["receipts"] + 1


def test_an_unreachable_database_makes_a_confirm_unavailable(register: Register) -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:9/none", pool_pre_ping=False)
    try:
        sessions = make_session_factory(engine)
        servicer = ReceiptServicer(SETTINGS, register.cache, sessions=sessions)
        down = Register(servicer, register.cache, sessions)
        receipt = showcase_receipt("R-DOWN")
        token = register.calculate(receipt).confirmation_token
        with pytest.raises(OperationalError) as failed:
            down.confirm(receipt, token)
        assert status_for(failed.value, "Confirm").code.name == "UNAVAILABLE"
    finally:
        engine.dispose()


def test_a_limit_imported_after_a_replica_cached_the_member_is_still_enforced(
    register: Register,
) -> None:
    """Replica B cached the member before a personalized offer with a limit of one receipt
    was imported; replica A calculates with it. Confirms on B must count and enforce it."""
    stale = open_register(register.sessions)
    assert stale.cache.member(SHOWCASE_MEMBER) is not None  # cached without the new offer
    milk = showcase_receipt("x").lines[1].sku
    with register.sessions() as session:
        member = load_member(session, SHOWCASE_MEMBER)
        assert member is not None
        new_offer = PersonalOffer(
            "P-NEW-MILK",
            "Milk -90 %",
            Benefit(BenefitKind.PERCENT, 9000),
            frozenset({milk}),
            usage_limit=UsageLimit(LimitUnit.RECEIPTS, 1, LimitPeriod.OFFER),
        )
        save_member(session, replace(member, personal_offers=(*member.personal_offers, new_offer)))
        session.commit()
    fresh = open_register(register.sessions)
    receipts = [showcase_receipt(f"R-NEW-{n}", coffee=False) for n in range(2)]
    tokens = [fresh.calculate(r).confirmation_token for r in receipts]

    stale.confirm(receipts[0], tokens[0])
    with pytest.raises(FailedPrecondition, match="Milk -90 %"):
        stale.confirm(receipts[1], tokens[1])
    assert usage_of(register.sessions, SHOWCASE_MEMBER, "P-NEW-MILK") == 1
