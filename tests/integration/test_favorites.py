"""Favorite products in the store (spec §7.1): lists, selection and its frequency at the
boundaries of each period, auto-fill, operator edits. Explicit `now` values, Moscow time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.app.favorites import favorite_states, member_list, operator_set_favorite_products
from service.app.jobs import run_autofill
from service.app.unit_of_work import UnitOfWork
from service.engine.model import Frequency, ListSource
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.store.favorites_repo import list_favorite_audit
from service.store.feed import changes_after
from service.store.member_repo import Purchase, add_purchase, add_purchases
from tests.integration.favorites_fixtures import (
    TZ,
    add_members,
    choose,
    favorite_offer,
    last_change,
    local,
    outbox_events,
    snapshot_with,
    units_of_work,
)

NOW = local(2026, 3, 10, 12)


@pytest.fixture
def member(db):
    add_members(db, "M1")
    return "M1"


def refused(call) -> FailedPrecondition:
    with pytest.raises(FailedPrecondition) as caught:
        call()
    assert caught.value.reason == "CHANGE_NOT_ALLOWED"
    return caught.value


# --- the member's list and the selection's validity --------------------------------------------


def test_a_member_fills_empty_slots_from_the_predefined_list_in_slot_order(db, member):
    snapshot = snapshot_with(favorite_offer())
    state = choose(db, snapshot, ["SKU03", None, "SKU01"], NOW)
    assert state.skus == ("SKU03", None, "SKU01")
    assert state.choices == ("SKU01", "SKU02", "SKU03", "SKU04", "SKU05")
    assert [slot.auto_filled for slot in state.slots] == [False, False, False]
    with db() as session:
        (stored,) = favorite_states(session, snapshot, "M1", NOW)
    assert stored.skus == ("SKU03", None, "SKU01")
    assert stored.slots[0].filled_at == NOW


def test_filling_empty_slots_never_uses_up_the_members_change(db, member):
    snapshot = snapshot_with(favorite_offer(frequency=Frequency.ONE_TIME))
    choose(db, snapshot, ["SKU01"], NOW)
    choose(db, snapshot, ["SKU01", "SKU02"], NOW + timedelta(seconds=1))
    choose(db, snapshot, ["SKU01", "SKU02", "SKU03"], NOW + timedelta(seconds=2))
    assert last_change(db) is None


@pytest.mark.parametrize(
    ("skus", "field"),
    [
        (["SKU09"], "skus[0]"),  # not on the list
        (["SKU01", "SKU01"], "skus[1]"),  # twice
        (["SKU01", "SKU02", "SKU03", "SKU04"], "skus"),  # more than the 3 slots
        (["SKU01", "TOBACCO"], "skus[1]"),  # excluded products are never on a list
    ],
)
def test_a_selection_off_the_list_duplicated_or_too_long_is_invalid_and_changes_nothing(
    db, member, skus, field
):
    snapshot = snapshot_with(favorite_offer())
    with pytest.raises(InvalidArgument) as caught:
        choose(db, snapshot, skus, NOW)
    assert caught.value.field == field
    with db() as session:
        (state,) = favorite_states(session, snapshot, "M1", NOW)
    assert state.skus == (None, None, None)


def test_an_unknown_offer_is_not_found_and_an_ended_one_refuses_changes(db, member):
    snapshot = snapshot_with(favorite_offer(valid_to=NOW))
    with pytest.raises(NotFound):
        choose(db, snapshot, ["SKU01"], NOW, offer_id="NO-SUCH-OFFER")
    with pytest.raises(FailedPrecondition) as caught:
        choose(db, snapshot, ["SKU01"], NOW)
    assert caught.value.reason == "OFFER_ENDED"


# --- frequency at the boundaries -----------------------------------------------------------------

BOUNDARIES = [
    # frequency, N, the replacement, the last second refused, the first second allowed
    (Frequency.DAILY, 0, "2026-03-10 15:00", "2026-03-10 23:59:59", "2026-03-11 00:00"),
    # Wednesday -> Sunday 23:59:59 refused, Monday 00:00 allowed
    (Frequency.WEEKLY, 0, "2026-03-11 09:00", "2026-03-15 23:59:59", "2026-03-16 00:00"),
    # a change on Monday 00:00 still waits for the next Monday
    (Frequency.WEEKLY, 0, "2026-03-16 00:00", "2026-03-22 23:59:59", "2026-03-23 00:00"),
    (Frequency.MONTHLY, 0, "2026-03-31 23:00", "2026-03-31 23:59:59", "2026-04-01 00:00"),
    (Frequency.MONTHLY, 0, "2026-12-01 00:00", "2026-12-31 23:59:59", "2027-01-01 00:00"),
    # not calendar: from the date of the last change + N, at 00:00
    (Frequency.EVERY_N_DAYS, 3, "2026-03-10 18:00", "2026-03-12 23:59:59", "2026-03-13 00:00"),
    (Frequency.EVERY_N_DAYS, 1, "2026-03-10 23:59", "2026-03-10 23:59:59", "2026-03-11 00:00"),
]


def wall_clock(text: str) -> datetime:
    """'YYYY-MM-DD HH:MM[:SS]' in the program's zone, as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).astimezone(UTC)


@pytest.mark.parametrize(("frequency", "every_n_days", "changed", "last", "first"), BOUNDARIES)
def test_a_replacement_is_refused_to_the_last_second_of_the_period_and_allowed_from_the_next(
    db, member, frequency, every_n_days, changed, last, first
):
    changed, last, first = wall_clock(changed), wall_clock(last), wall_clock(first)
    snapshot = snapshot_with(favorite_offer(frequency=frequency, every_n_days=every_n_days))
    choose(db, snapshot, ["SKU01", "SKU02"], changed - timedelta(hours=1))
    choose(db, snapshot, ["SKU03", "SKU02"], changed)  # the member's one replacement
    assert last_change(db) == changed
    error = refused(lambda: choose(db, snapshot, ["SKU04", "SKU02"], last))
    assert error.next_allowed == first
    state = choose(db, snapshot, ["SKU04", "SKU02"], first)
    assert state.skus == ("SKU04", "SKU02", None)
    assert last_change(db) == first


def test_one_time_allows_a_single_replacement_and_never_another_during_the_offer(db, member):
    snapshot = snapshot_with(favorite_offer(frequency=Frequency.ONE_TIME))
    choose(db, snapshot, ["SKU01"], NOW)
    choose(db, snapshot, ["SKU02"], NOW + timedelta(minutes=1))
    error = refused(lambda: choose(db, snapshot, ["SKU03"], NOW + timedelta(days=400)))
    assert error.next_allowed is None
    assert "never" in error.message or "not be replaced again" in error.message


def test_emptying_a_filled_slot_is_a_replacement_but_filling_another_one_is_not(db, member):
    snapshot = snapshot_with(favorite_offer(frequency=Frequency.MONTHLY))
    choose(db, snapshot, ["SKU01"], NOW)
    choose(db, snapshot, ["SKU01", "SKU02"], NOW + timedelta(minutes=1))
    assert last_change(db) is None
    choose(db, snapshot, [None, "SKU02"], NOW + timedelta(minutes=2))
    assert last_change(db) == NOW + timedelta(minutes=2)
    refused(lambda: choose(db, snapshot, ["SKU03", None], NOW + timedelta(minutes=3)))
    # filling the empty slots again is still allowed
    state = choose(db, snapshot, ["SKU03", "SKU02", "SKU01"], NOW + timedelta(minutes=4))
    assert state.skus == ("SKU03", "SKU02", "SKU01")


# --- purchase-history lists ----------------------------------------------------------------------


def test_fifteen_products_bought_in_july_become_the_list_on_august_1_at_midnight(db, member):
    favorite = favorite_offer("F-HIST", source=ListSource.PURCHASE_HISTORY, slots=5)
    snapshot = snapshot_with(favorite)
    july = [Purchase("M1", "2026-07", f"SKU{i:02d}", 1000 * i, 100 * i) for i in range(1, 16)]
    june = [Purchase("M1", "2026-06", "SKU20", 1000, 100)]
    with db() as session:
        add_purchases(session, july + june)
        session.commit()
        on_the_first = member_list(session, snapshot, favorite, "M1", local(2026, 8, 1))
        a_second_before = member_list(
            session, snapshot, favorite, "M1", local(2026, 7, 31, 23, 59, 59)
        )
        end_of_august = member_list(
            session, snapshot, favorite, "M1", local(2026, 8, 31, 23, 59, 59)
        )
        september = member_list(session, snapshot, favorite, "M1", local(2026, 9, 1))
    assert sorted(on_the_first) == [f"SKU{i:02d}" for i in range(1, 16)]
    assert on_the_first[0] == "SKU15"  # most bought first
    assert a_second_before == ("SKU20",)
    assert end_of_august == on_the_first
    assert september == ()


def test_goods_refunded_in_full_drop_out_of_next_months_list(db, member):
    favorite = favorite_offer("F-HIST", source=ListSource.PURCHASE_HISTORY)
    snapshot = snapshot_with(favorite)
    with db() as session:
        add_purchase(session, "M1", "2026-07", "SKU01", 2000, 200)
        add_purchase(session, "M1", "2026-07", "SKU02", 1000, 100)
        add_purchase(session, "M1", "2026-07", "SKU02", -1000, -100)  # refunded in full
        add_purchase(session, "M1", "2026-07", "SKU03", 3000, 300)
        add_purchase(session, "M1", "2026-07", "SKU03", -1000, -100)  # partly refunded
        session.commit()
        skus = member_list(session, snapshot, favorite, "M1", local(2026, 8, 1))
    assert skus == ("SKU01", "SKU03")
    with pytest.raises(InvalidArgument):
        choose(db, snapshot, ["SKU02"], local(2026, 8, 2), offer_id="F-HIST")


def test_a_chosen_product_stays_in_its_slot_after_it_left_the_monthly_list(db, member):
    favorite = favorite_offer("F-HIST", source=ListSource.PURCHASE_HISTORY)
    snapshot = snapshot_with(favorite)
    with db() as session:
        add_purchase(session, "M1", "2026-07", "SKU01", 1000, 100)
        add_purchase(session, "M1", "2026-08", "SKU02", 1000, 100)
        session.commit()
    choose(db, snapshot, ["SKU01"], local(2026, 8, 5), offer_id="F-HIST")
    state = choose(db, snapshot, ["SKU01", "SKU02"], local(2026, 9, 2), offer_id="F-HIST")
    assert state.skus == ("SKU01", "SKU02", None)
    assert state.choices == ("SKU02",)


# --- auto-fill -----------------------------------------------------------------------------------


def test_auto_fill_takes_last_months_purchases_by_quantity_then_amount_then_sku(db, member):
    favorite = favorite_offer("F-HIST", source=ListSource.PURCHASE_HISTORY, slots=4, autofill=True)
    snapshot = snapshot_with(favorite)
    with db() as session:
        add_purchases(
            session,
            [
                Purchase("M1", "2026-07", "SKU05", 1000, 500),
                Purchase("M1", "2026-07", "SKU04", 3000, 100),
                Purchase("M1", "2026-07", "SKU03", 2000, 900),
                Purchase("M1", "2026-07", "SKU02", 2000, 900),  # tie with SKU03: SKU first
                Purchase("M1", "2026-07", "SKU01", 2000, 100),
                Purchase("M1", "2026-06", "SKU09", 9000, 900),  # not last month
            ],
        )
        session.commit()
    outcome = run_autofill(units_of_work(db, local(2026, 8, 3)), snapshot, "F-HIST", None)
    with db() as session:
        (state,) = favorite_states(session, snapshot, "M1", local(2026, 8, 3))
    assert state.skus == ("SKU04", "SKU02", "SKU03", "SKU01")
    assert all(slot.auto_filled for slot in state.slots)
    assert (outcome.members_updated, outcome.slots_filled, outcome.member_ids) == (1, 4, ["M1"])


def test_auto_fill_follows_the_predefined_list_and_leaves_filled_slots_alone(db):
    add_members(db, "M1", "M2", "M3")
    favorite = favorite_offer(slots=3, autofill=True)
    snapshot = snapshot_with(favorite)
    choose(db, snapshot, [None, "SKU01"], NOW, member_id="M1")
    choose(db, snapshot, ["SKU05", "SKU04", "SKU03"], NOW, member_id="M3")
    outcome = run_autofill(units_of_work(db, NOW), snapshot, "F-LIST", ["M1", "M2", "M3", "GHOST"])
    with db() as session:
        states = {m: favorite_states(session, snapshot, m, NOW)[0] for m in ("M1", "M2", "M3")}
    assert states["M1"].skus == ("SKU02", "SKU01", "SKU03")
    assert [s.auto_filled for s in states["M1"].slots] == [True, False, True]
    assert states["M2"].skus == ("SKU01", "SKU02", "SKU03")
    assert states["M3"].skus == ("SKU05", "SKU04", "SKU03")
    assert outcome.member_ids == ["M1", "M2"]
    assert outcome.slots_filled == 5


def test_auto_fill_writes_an_event_and_a_feed_row_per_member_and_a_second_run_writes_none(
    db, member
):
    snapshot = snapshot_with(favorite_offer(autofill=True))
    run_autofill(units_of_work(db, NOW), snapshot, "F-LIST", None)
    with db() as session:
        feed = [c.key for c in changes_after(session, 0) if c.kind == "member"]
    again = run_autofill(units_of_work(db, NOW), snapshot, "F-LIST", None)
    events = outbox_events(db, "FAVORITES_CHANGED")
    assert [(e.member_id, e.payload["source"], e.payload["skus"]) for e in events] == [
        ("M1", "AUTOFILL", ["SKU01", "SKU02", "SKU03"])
    ]
    assert "M1" in feed
    assert again.members_updated == 0


def test_auto_filled_slots_do_not_use_up_the_members_change(db, member):
    snapshot = snapshot_with(favorite_offer(autofill=True, frequency=Frequency.MONTHLY))
    choose(db, snapshot, ["SKU05"], NOW)
    run_autofill(units_of_work(db, NOW), snapshot, "F-LIST", ["M1"])
    # replacing auto-filled slots is filling: the member's change is still there
    choose(db, snapshot, ["SKU05", "SKU04", "SKU03"], NOW + timedelta(minutes=1))
    assert last_change(db) is None
    choose(db, snapshot, ["SKU02", "SKU04", "SKU03"], NOW + timedelta(minutes=2))
    assert last_change(db) == NOW + timedelta(minutes=2)


def test_auto_fill_needs_auto_fill_on_and_a_known_offer(db, member):
    snapshot = snapshot_with(favorite_offer(autofill=False))
    with pytest.raises(FailedPrecondition) as caught:
        run_autofill(units_of_work(db, NOW), snapshot, "F-LIST", None)
    assert caught.value.reason == "AUTOFILL_OFF"
    with pytest.raises(NotFound):
        run_autofill(units_of_work(db, NOW), snapshot, "NOPE", None)


# --- operator edits ------------------------------------------------------------------------------


def operator_edit(db, snapshot, skus, now: datetime, comment: str = "customer called"):
    return operator_set_favorite_products(
        UnitOfWork(db, now=now), snapshot, "M1", "F-LIST", skus, actor="op-anna", comment=comment
    )


def test_an_operator_edit_ignores_the_frequency_and_is_audited_with_before_and_after(db, member):
    snapshot = snapshot_with(favorite_offer(frequency=Frequency.ONE_TIME))
    choose(db, snapshot, ["SKU01"], NOW)
    choose(db, snapshot, ["SKU02"], NOW + timedelta(minutes=1))  # the one change is used
    first = operator_edit(db, snapshot, ["SKU03", "SKU04"], NOW + timedelta(minutes=2))
    second = operator_edit(db, snapshot, ["SKU05"], NOW + timedelta(minutes=3), "again")
    assert second.state.skus == ("SKU05", None, None)
    assert last_change(db) == NOW + timedelta(minutes=1)  # the member's period is untouched
    with db() as session:
        entries = list_favorite_audit(session, "M1")
    assert [e.id for e in entries] == [second.audit.id, first.audit.id]
    newest, oldest = entries
    assert (oldest.actor, oldest.at, oldest.comment) == (
        "op-anna",
        NOW + timedelta(minutes=2),
        "customer called",
    )
    assert oldest.skus_before == ("SKU02", None, None)
    assert oldest.skus_after == ("SKU03", "SKU04", None)
    assert newest.skus_before == ("SKU03", "SKU04", None)
    events = outbox_events(db, "FAVORITES_CHANGED")
    assert [e.payload["skus"] for e in events] == [["SKU03", "SKU04"], ["SKU05"]]
    assert {e.payload["source"] for e in events} == {"OPERATOR"}


def test_an_operator_edit_is_still_validated_against_the_members_list(db, member):
    snapshot = snapshot_with(favorite_offer())
    with pytest.raises(InvalidArgument) as caught:
        operator_edit(db, snapshot, ["SKU01", "SKU29"], NOW)
    assert caught.value.field == "skus[1]"
    with db() as session:
        assert list_favorite_audit(session, "M1") == []
    assert outbox_events(db) == []
