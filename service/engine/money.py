"""Money arithmetic on integers (spec §2): half-up rounding and largest-remainder allocation.

No floats anywhere: every value is an int of minor units, thousandths or basis points.
"""

from __future__ import annotations

from collections.abc import Sequence


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero.

    round_half_up(5, 10) == 1, round_half_up(-5, 10) == -1, round_half_up(4, 10) == 0.
    The denominator must be positive.
    """
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((-2 * numerator + denominator) // (2 * denominator))


# The two shares every benefit is made of, for non-negative values: round_half_up(n, d) is
# (2n + d) // 2d then, written out here because they run for every candidate of every line.


def percent_of(base: int, basis_points: int) -> int:
    """base x basis_points / 10000, rounded half up: a percentage of an amount."""
    return (base * basis_points * 2 + 10000) // 20000


def per_thousand(value: int, quantity: int) -> int:
    """value x quantity / 1000, rounded half up: a per-unit value for a quantity in
    thousandths of a unit."""
    return (value * quantity * 2 + 1000) // 2000


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Spread `total` over `weights` in proportion, by the largest-remainder method.

    The parts add up to `total` exactly. Each part is the floor of its exact share; the units
    left over go one each to the largest remainders, ties to the smaller index. Weights must
    not be negative; if they are all zero, every weight counts as one (an even spread).
    A negative total is spread as its absolute value and the parts negated.
    """
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    if not weights:
        if total != 0:
            raise ValueError("cannot allocate a non-zero total over no weights")
        return []
    if total < 0:
        return [-part for part in allocate(-total, weights)]
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights = [1] * len(weights)
        weight_sum = len(weights)
    parts: list[int] = []
    remainders: list[tuple[int, int]] = []
    for index, weight in enumerate(weights):
        part, remainder = divmod(total * weight, weight_sum)
        parts.append(part)
        remainders.append((-remainder, index))
    left_over = total - sum(parts)
    for _, index in sorted(remainders)[:left_over]:
        parts[index] += 1
    return parts
