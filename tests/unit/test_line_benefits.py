"""A receipt line's benefits column gives back exactly the benefits written, in order."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from service.engine.model import AppliedBenefit, BenefitKind, Mechanic
from service.store.codec import line_benefits, line_benefits_from_json

applied = st.builds(
    AppliedBenefit,
    offer_id=st.text(min_size=1, max_size=12),
    mechanic=st.sampled_from(Mechanic),
    kind=st.sampled_from(BenefitKind),
    discount=st.integers(0, 10**12),
    points=st.integers(0, 10**12),
    text=st.text(max_size=40),  # any Unicode, quotes and backslashes
)


@given(st.lists(applied, max_size=8).map(tuple))
def test_the_column_reads_back_as_the_benefits_in_their_order(
    benefits: tuple[AppliedBenefit, ...],
) -> None:
    assert line_benefits_from_json(line_benefits(benefits)) == benefits


def test_the_column_is_json_keyed_like_the_former_rows() -> None:
    text = line_benefits(
        (AppliedBenefit("B1", Mechanic.ALL_BUYERS, BenefitKind.PERCENT, 150, 0, "−10 %"),)
    )
    assert json.loads(text) == [
        {"offer_id": "B1", "mechanic": "ALL_BUYERS", "kind": "PERCENT", "discount": 150,
         "points": 0, "text": "−10 %"}
    ]  # fmt: skip
    assert line_benefits(()) == "[]", "the column's default: a line without benefits"
