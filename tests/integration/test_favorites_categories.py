"""A member's choice of favorite categories (spec §7.2): up to max_count of the offered groups,
only when the acceptance flag is on, with the frequency rule of favorite products."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.app.categories import select_favorite_categories
from service.app.unit_of_work import UnitOfWork
from service.engine.model import Frequency, Member
from service.engine.selection import effective_groups
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.store.category_choice_repo import last_category_changes
from service.store.feed import changes_after
from service.store.loader import load_member
from tests.integration.favorites_fixtures import TZ, add_members, category_terms, local

NOW = local(2026, 3, 11, 10)  # a Wednesday


def choose_categories(db, groups, now, offer_id="C-1"):
    return select_favorite_categories(UnitOfWork(db, now=now), "M1", offer_id, groups, TZ)


def member_with(db, **terms) -> None:
    add_members(db, Member("M1", favorite_categories=(category_terms(**terms),)))


def test_a_member_chooses_up_to_max_count_offered_categories_and_they_apply(db):
    member_with(db, max_count=2)
    state = choose_categories(db, ["G-C", "G-A"], NOW)
    assert state.terms.chosen_group_ids == {"G-A", "G-C"}
    assert effective_groups(state.terms) == ("G-A", "G-C")  # offered order
    with db() as session:
        member = load_member(session, "M1")
        assert "M1" in [c.key for c in changes_after(session, 0)]
    assert member is not None
    assert member.favorite_categories[0].chosen_group_ids == {"G-A", "G-C"}


@pytest.mark.parametrize(
    ("groups", "field"),
    [
        (["G-A", "G-B", "G-C"], "group_ids"),
        (["G-Z"], "group_ids[0]"),
        (["G-A", "G-A"], "group_ids[1]"),
    ],
)
def test_more_than_max_count_an_unoffered_or_a_repeated_category_is_invalid(db, groups, field):
    member_with(db, max_count=2)
    with pytest.raises(InvalidArgument) as caught:
        choose_categories(db, groups, NOW)
    assert caught.value.field == field


def test_with_the_acceptance_flag_off_there_is_nothing_to_choose(db):
    member_with(db, acceptance=False)
    with pytest.raises(FailedPrecondition) as caught:
        choose_categories(db, ["G-A"], NOW)
    assert caught.value.reason == "ACCEPTANCE_OFF"


def test_a_member_without_the_offer_gets_not_found(db):
    member_with(db)
    with pytest.raises(NotFound):
        choose_categories(db, ["G-A"], NOW, offer_id="C-OTHER")


def test_adding_a_category_is_always_allowed_but_a_swap_follows_the_frequency(db):
    member_with(db, max_count=2, frequency=Frequency.WEEKLY)
    choose_categories(db, ["G-A"], NOW)
    choose_categories(db, ["G-A", "G-B"], NOW + timedelta(minutes=1))  # adding: filling
    with db() as session:
        assert last_category_changes(session, "M1") == {"C-1": None}
    swapped = NOW + timedelta(minutes=2)
    choose_categories(db, ["G-A", "G-C"], swapped)  # the week's replacement
    with pytest.raises(FailedPrecondition) as caught:
        choose_categories(db, ["G-B", "G-C"], local(2026, 3, 15, 23, 59, 59))
    assert caught.value.reason == "CHANGE_NOT_ALLOWED"
    assert caught.value.next_allowed == local(2026, 3, 16)
    state = choose_categories(db, ["G-B", "G-C"], local(2026, 3, 16))
    assert state.terms.chosen_group_ids == {"G-B", "G-C"}
    with db() as session:
        assert last_category_changes(session, "M1") == {"C-1": local(2026, 3, 16)}
