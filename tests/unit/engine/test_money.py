from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.engine.money import allocate, per_thousand, percent_of, round_half_up


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (0, 1000, 0),
        (499, 1000, 0),
        (500, 1000, 1),  # a half goes up
        (501, 1000, 1),
        (1499, 1000, 1),
        (1500, 1000, 2),
        (-500, 1000, -1),  # and away from zero for negatives
        (-499, 1000, 0),
        (10**30 + 5, 10, 10**29 + 1),  # big integers stay exact
    ],
)
def test_round_half_up_rounds_halves_away_from_zero(
    numerator: int, denominator: int, expected: int
) -> None:
    assert round_half_up(numerator, denominator) == expected


def test_round_half_up_refuses_a_zero_denominator() -> None:
    with pytest.raises(ValueError):
        round_half_up(1, 0)


@given(st.integers(-(10**15), 10**15), st.integers(1, 10**6))
def test_round_half_up_is_within_a_half_of_the_exact_value(n: int, d: int) -> None:
    exact = Fraction(n, d)
    rounded = round_half_up(n, d)
    assert abs(rounded - exact) <= Fraction(1, 2)
    if abs(rounded - exact) == Fraction(1, 2):
        assert abs(rounded) > abs(exact)


def test_allocate_spreads_a_total_by_largest_remainder() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]  # tie: the smaller index first
    assert allocate(10, [5, 3, 2]) == [5, 3, 2]
    assert allocate(7, [3000, 1000]) == [5, 2]  # 5.25 and 1.75: 1.75 has the larger rest
    assert allocate(0, [1, 2]) == [0, 0]
    assert allocate(5, [0, 0]) == [3, 2]  # all zero: an even spread
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(0, []) == []


def test_allocate_refuses_negative_weights_and_a_total_without_weights() -> None:
    with pytest.raises(ValueError):
        allocate(10, [1, -1])
    with pytest.raises(ValueError):
        allocate(10, [])


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**9), min_size=1, max_size=30))
def test_allocated_parts_add_up_exactly_and_stay_within_one_of_their_share(
    total: int, weights: list[int]
) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    weight_sum = sum(weights) or len(weights)
    effective = weights if sum(weights) else [1] * len(weights)
    for part, weight in zip(parts, effective, strict=True):
        share = Fraction(total * weight, weight_sum)
        assert share - 1 < part < share + 1


@given(st.integers(0, 10**6), st.lists(st.integers(0, 1000), min_size=1, max_size=10))
def test_allocate_is_deterministic(total: int, weights: list[int]) -> None:
    assert allocate(total, weights) == allocate(total, list(weights))


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=10**6))
def test_the_hot_path_shares_are_half_up_rounding(base: int, factor: int) -> None:
    assert percent_of(base, factor) == round_half_up(base * factor, 10_000)
    assert per_thousand(base, factor) == round_half_up(base * factor, 1_000)
