"""Internal shortcuts that must stay invisible: fast record constructors and memos."""

import gc
from dataclasses import replace

from service.engine.model import (
    AppliedBenefit,
    Benefit,
    BenefitKind,
    LineResult,
    Mechanic,
    PersonalOffer,
)
from service.engine.records import new_applied_benefit, new_line_result
from tests.unit.engine.builders import applied, line, member, one_line, snapshot


def test_fast_constructors_build_records_equal_to_normal_ones() -> None:
    fast = new_applied_benefit("o", Mechanic.ALL_BUYERS, BenefitKind.PERCENT, 10, 0, "t")
    normal = AppliedBenefit("o", Mechanic.ALL_BUYERS, BenefitKind.PERCENT, 10, 0, "t")
    assert fast == normal and type(fast) is AppliedBenefit and hash(fast) == hash(normal)
    fast_line = new_line_result("1", "s", 100, 10, 90, 0, (fast,), True, ())
    assert fast_line == LineResult("1", "s", 100, 10, 90, 0, (normal,))
    assert repr(fast_line) == repr(LineResult("1", "s", 100, 10, 90, 0, (normal,)))


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
