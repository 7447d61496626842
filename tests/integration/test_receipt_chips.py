"""Game chips through the lifecycle on a real store (spec §20, docs/chips.md), with the demo
campaign: 1 chip per 500.00 paid on food (C-CHIPS-FOOD), paper towels at 1.00 for 10 chips
(C-REWARD-TOWELS). Credited once at confirm, debited atomically, refunds reverse both."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from loyalty.v1 import common_pb2, receipt_pb2
from service.api.tokens import signer_from_settings
from service.engine.money import round_half_up
from service.errors import FailedPrecondition, InvalidArgument
from service.store.chips_repo import chips_balance
from service.store.models import ChipsLedgerRow
from tests.integration.receipt_support import SETTINGS, Register, row_counts, sku_named

MEMBER = "M000001"
FOOD = "Milk 2.5 % 930 ml, Village House"  # in G-FOOD, no other benefit for MEMBER
WORTH_ONE_CHIP = 50000  # minor units of food per chip


def towels(register: Register) -> str:
    group = register.cache.snapshot.group("G-CHIPS-REWARD")
    assert group is not None
    return sorted(group.skus)[0]


def sale(
    register: Register,
    receipt_id: str,
    *,
    food: int = 0,
    towel_pieces: int = 0,
    member: str | None = MEMBER,
) -> receipt_pb2.Receipt:
    """A receipt of `food` minor units of buckwheat (one piece) and towels at 50.00 each."""
    receipt = receipt_pb2.Receipt(
        receipt_id=receipt_id, store_id="S001", channel=common_pb2.CHANNEL_POS
    )
    if member:
        receipt.member.member_id = member
    if food:
        receipt.lines.add(
            line_id="1", sku=sku_named(register, FOOD), quantity=1000, price=food, amount=food
        )
    if towel_pieces:
        receipt.lines.add(
            line_id="2",
            sku=towels(register),
            quantity=towel_pieces * 1000,
            price=5000,
            amount=towel_pieces * 5000,
        )
    return receipt


def calculate(register: Register, receipt: receipt_pb2.Receipt, chips_to_spend: int = 0):
    from service.api.auth import set_current_principal
    from tests.integration.receipt_support import REGISTER

    set_current_principal(REGISTER)
    request = receipt_pb2.CalculateRequest(receipt=receipt, chips_to_spend=chips_to_spend)
    return register.servicer.Calculate(request, None)  # type: ignore[arg-type]


def balance(register: Register, member_id: str = MEMBER) -> int:
    with register.sessions() as session:
        return chips_balance(session, member_id)


def ledger(register: Register, member_id: str = MEMBER) -> int:
    with register.sessions() as session:
        query = select(func.coalesce(func.sum(ChipsLedgerRow.chips), 0)).where(
            ChipsLedgerRow.member_id == member_id
        )
        return int(session.scalar(query) or 0)


def earn(register: Register, receipt_id: str, chips: int) -> receipt_pb2.ConfirmResponse:
    return register.confirm(sale(register, receipt_id, food=chips * WORTH_ONE_CHIP))


def test_chips_granted_are_credited_once_and_a_replay_changes_nothing(register: Register):
    receipt = sale(register, "chips-1", food=123456)  # 1 234.56 of food: 2 chips
    shown = register.calculate(receipt)
    assert shown.result.total_chips == 2
    assert shown.result.lines[0].chips == 2
    chips_benefit = [b for b in shown.result.lines[0].benefits if b.chips]
    assert [(b.offer_id, b.kind, b.chips) for b in chips_benefit] == [
        ("C-CHIPS-FOOD", common_pb2.BENEFIT_KIND_CHIPS, 2)
    ]
    payload = signer_from_settings(SETTINGS).verify(receipt, shown.confirmation_token)
    assert (payload.chips_granted, payload.chips_spent) == (2, 0), "the token carries them"
    first = register.confirm(receipt, shown.confirmation_token)
    assert first.chips_balance == 2 and not first.replayed
    again = register.confirm(receipt, shown.confirmation_token)
    assert again.replayed and again.chips_balance == 2
    assert balance(register) == ledger(register) == 2
    assert register.cache.member(MEMBER).chips == 2, "the cache hears of the new balance"


def test_an_anonymous_buyer_is_shown_chips_and_nothing_is_credited(register: Register):
    receipt = sale(register, "anon-1", food=100000, member=None)
    confirmed = register.confirm(receipt)
    assert confirmed.result.total_chips == 2 and confirmed.chips_balance == 0
    refunded = register.refund("anon-r1", "anon-1", full=True)
    assert refunded.total_chips == 2, "the cashier collects the physical chips back"
    assert refunded.chips_balance == 0


def test_spending_chips_unlocks_the_reward_and_a_refund_gives_them_back(register: Register):
    earn(register, "earn-1", 12)
    receipt = sale(register, "spend-1", towel_pieces=2)
    locked = calculate(register, receipt)
    assert locked.result.total_paid == 10000 and locked.result.total_chips_spent == 0
    shown = calculate(register, receipt, chips_to_spend=12)
    payload = signer_from_settings(SETTINGS).verify(receipt, shown.confirmation_token)
    assert payload.chips_spent == 10
    # one towel unlocked for 10 chips (2 left do not buy a second): 1.00 + 50.00
    assert shown.result.total_paid == 5100
    assert shown.result.total_chips_spent == 10
    reward = [b for b in shown.result.lines[0].benefits if b.chips_spent]
    assert [(b.offer_id, b.discount, b.chips_spent) for b in reward] == [
        ("C-REWARD-TOWELS", 4900, 10)
    ]
    confirmed = register.confirm(receipt, shown.confirmation_token)
    assert confirmed.chips_balance == 2
    refunded = register.refund("spend-r1", "spend-1", {"2": 1000})
    assert refunded.total_chips_spent == 5, "half the line: half its chips, rounded half up"
    assert refunded.chips_balance == 7
    rest = register.refund("spend-r2", "spend-1", full=True)
    assert rest.total_chips_spent == 5 and rest.chips_balance == 12
    assert balance(register) == ledger(register) == 12


def test_spending_more_than_held_is_refused_at_calculate(register: Register):
    earn(register, "earn-2", 3)
    receipt = sale(register, "spend-2", towel_pieces=1)
    with pytest.raises(FailedPrecondition) as refused:
        calculate(register, receipt, chips_to_spend=10)
    assert refused.value.reason == "CHIPS_INSUFFICIENT"
    with pytest.raises(InvalidArgument) as bad:
        calculate(register, receipt, chips_to_spend=-1)
    assert bad.value.field == "chips_to_spend"
    anonymous = sale(register, "spend-3", towel_pieces=1, member=None)
    with pytest.raises(FailedPrecondition):
        calculate(register, anonymous, chips_to_spend=1)


def test_the_second_of_two_receipts_spending_the_same_chips_is_refused_and_changes_nothing(
    register: Register,
):
    earn(register, "earn-3", 10)
    first, second = (sale(register, f"race-{n}", towel_pieces=1) for n in (1, 2))
    tokens = [calculate(register, r, chips_to_spend=10).confirmation_token for r in (first, second)]
    assert register.confirm(first, tokens[0]).chips_balance == 0
    before = row_counts(register.sessions)
    with pytest.raises(FailedPrecondition) as refused:
        register.confirm(second, tokens[1])
    assert refused.value.reason == "CHIPS_INSUFFICIENT"
    assert row_counts(register.sessions) == before
    assert balance(register) == ledger(register) == 0


def test_a_refund_takes_back_granted_chips_only_down_to_zero(register: Register):
    earn(register, "earn-4", 10)
    spend = sale(register, "spend-4", towel_pieces=1)
    register.confirm(spend, calculate(register, spend, chips_to_spend=10).confirmation_token)
    refunded = register.refund("earn-4-r", "earn-4", full=True)
    assert refunded.total_chips == 10, "what the refund takes back"
    assert refunded.chips_balance == 0, "chips already spent are not owed"
    assert balance(register) == ledger(register) == 0


# --- a property: the balance never goes below zero and always equals its ledger ---------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(0, 25), st.integers(0, 3)),
        st.tuples(st.just("refund"), st.integers(0, 10), st.sampled_from([500, 1000])),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_the_balance_never_goes_below_zero_over_confirms_and_refunds(register: Register, steps):
    expected = balance(register)
    sold: list[tuple[str, receipt_pb2.ConfirmResponse, dict[str, int]]] = []
    for step in steps:
        if step[0] == "buy":
            _, chips, towels_wanted = step
            receipt_id = f"p-{uuid.uuid4().hex[:12]}"
            receipt = sale(
                register, receipt_id, food=chips * WORTH_ONE_CHIP + 1, towel_pieces=towels_wanted
            )
            if not receipt.lines:
                continue
            spend = min(expected, 10 * towels_wanted)
            shown = calculate(register, receipt, chips_to_spend=spend)
            confirmed = register.confirm(receipt, shown.confirmation_token)
            expected += confirmed.result.total_chips - confirmed.result.total_chips_spent
            sold.append((receipt_id, confirmed, {}))
        elif sold:
            _, which, part = step
            receipt_id, confirmed, refunded = sold[which % len(sold)]
            lines = {}
            for line in confirmed.result.lines:
                quantity = (
                    1000 if line.line_id == "1" else part * (line.amount // 5000) // 1000 * 1000
                )
                left = (1000 if line.line_id == "1" else line.amount // 5000 * 1000) - refunded.get(
                    line.line_id, 0
                )
                if min(quantity, left) > 0:
                    lines[line.line_id] = min(quantity, left)
            if not lines:
                continue
            refund = register.refund(f"r-{uuid.uuid4().hex[:12]}", receipt_id, lines)
            taken = given_back = 0
            for line in confirmed.result.lines:
                if line.line_id not in lines:
                    continue
                whole = 1000 if line.line_id == "1" else line.amount // 5000 * 1000
                before = refunded.get(line.line_id, 0)
                after = before + lines[line.line_id]
                taken += _step(line.chips, before, after, whole)
                given_back += _step(line.chips_spent, before, after, whole)
                refunded[line.line_id] = after
            expected = max(expected + given_back - taken, 0)
            assert refund.chips_balance == expected
        assert balance(register) == ledger(register) == expected >= 0


def _step(value: int, before: int, after: int, whole: int) -> int:
    return round_half_up(value * after, whole) - round_half_up(value * before, whole)
