"""Internal shortcuts that must stay invisible: fast record constructors and memos."""

import gc
import pickle
from dataclasses import FrozenInstanceError, replace

import pytest

from service.engine.model import (
    AppliedBenefit,
    Benefit,
    BenefitKind,
    Line,
    LineResult,
    Mechanic,
    PersonalOffer,
)
from service.engine.records import new_applied_benefit, new_line, new_line_result
from tests.unit.engine.builders import applied, line, member, one_line, snapshot


def test_fast_constructors_build_records_equal_to_normal_ones() -> None:
    fast = new_applied_benefit("o", Mechanic.ALL_BUYERS, BenefitKind.PERCENT, 10, 0, "t")
    normal = AppliedBenefit("o", Mechanic.ALL_BUYERS, BenefitKind.PERCENT, 10, 0, "t")
    assert fast == normal and type(fast) is AppliedBenefit and hash(fast) == hash(normal)
    fast_line = new_line_result("1", "s", 100, 10, 90, 0, (fast,), True, ())
    assert fast_line == LineResult("1", "s", 100, 10, 90, 0, (normal,))
    assert repr(fast_line) == repr(LineResult("1", "s", 100, 10, 90, 0, (normal,)))
    assert new_line("1", "s", 1000, 5, 5) == Line("1", "s", 1000, 5, 5)
    assert type(new_line("1", "s", 1000, 5, 5)) is Line and type(fast_line) is LineResult


def test_fast_records_stay_frozen_and_behave_as_records() -> None:
    fast = new_applied_benefit("o", Mechanic.ALL_BUYERS, BenefitKind.PERCENT, 10, 0, "t")
    with pytest.raises(FrozenInstanceError):
        fast.discount = 5  # type: ignore[misc]
    assert replace(fast, discount=5).discount == 5
    assert pickle.loads(pickle.dumps(fast)) == fast
    fast_line = new_line_result("1", "s", 100, 10, 90, 0, (fast,), True, ())
    assert pickle.loads(pickle.dumps(fast_line)) == fast_line
    with pytest.raises(FrozenInstanceError):
        fast_line.paid = 0  # type: ignore[misc]


def personal(value: int) -> PersonalOffer:
    return PersonalOffer("po", "P", Benefit(BenefitKind.PERCENT, value), skus=frozenset({"milk-1"}))


def test_a_changed_member_is_never_served_from_the_memo() -> None:
    snap = snapshot()
    for value in range(100, 3000, 100):  # new Member objects may reuse a freed object's id
        buyer = member(personal_offers=(personal(value),))
        assert applied(one_line(snap, line("milk-1", 10000), member=buyer)) == [("po", value, 0)]
        del buyer
        gc.collect()


def test_the_same_member_object_gives_the_same_result_as_an_equal_copy() -> None:
    snap = snapshot()
    buyer = member(personal_offers=(personal(1500),))
    first = one_line(snap, line("milk-1"), member=buyer)
    again = one_line(snap, line("milk-1"), member=buyer)
    copy = one_line(snap, line("milk-1"), member=replace(buyer))
    assert first == again == copy
