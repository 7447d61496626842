"""Two devices of one member change a selection at the same moment: the database decides,
on SQLite and on PostgreSQL alike, so exactly one replacement wins per period."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from service.app.categories import select_favorite_categories
from service.app.favorites import favorite_states
from service.app.jobs import run_autofill
from service.app.unit_of_work import UnitOfWork
from service.engine.model import Frequency, Member
from service.errors import FailedPrecondition
from service.store.loader import load_member, load_members_from_rows
from tests.integration.favorites_fixtures import (
    TZ,
    add_members,
    category_terms,
    choose,
    favorite_offer,
    last_change,
    local,
    snapshot_with,
    units_of_work,
)

NOW = local(2026, 3, 10, 12)


def race(attempts: list[Callable[[], object]]) -> tuple[list[int], list[Exception]]:
    """Run the attempts in threads released together; the indexes that succeeded, and the
    errors of the others."""
    barrier = threading.Barrier(len(attempts))
    won: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def run(index: int, attempt: Callable[[], object]) -> None:
        barrier.wait()
        try:
            attempt()
        except Exception as error:  # collected and checked by the test
            with lock:
                errors.append(error)
        else:
            with lock:
                won.append(index)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return won, errors


def test_concurrent_replacements_from_several_devices_let_exactly_one_win(db):
    add_members(db, "M1")
    snapshot = snapshot_with(favorite_offer(frequency=Frequency.MONTHLY, slots=1))
    choose(db, snapshot, ["SKU01"], NOW)
    wanted = ["SKU02", "SKU03", "SKU04", "SKU05"]  # each device a different product
    attempts = [
        (lambda sku=sku: choose(db, snapshot, [sku], NOW + timedelta(seconds=1))) for sku in wanted
    ]
    won, errors = race(attempts)
    assert len(won) == 1, errors
    assert all(isinstance(e, FailedPrecondition) for e in errors), errors
    assert {e.reason for e in errors if isinstance(e, FailedPrecondition)} == {"CHANGE_NOT_ALLOWED"}
    with db() as session:
        (state,) = favorite_states(session, snapshot, "M1", NOW)
    assert state.skus == (wanted[won[0]],)
    assert last_change(db) == NOW + timedelta(seconds=1)


def test_auto_fill_running_while_the_member_fills_a_slot_never_puts_a_product_in_twice(db):
    add_members(db, "M1")
    snapshot = snapshot_with(favorite_offer(slots=3, autofill=True))

    def autofill() -> None:
        run_autofill(units_of_work(db, NOW), snapshot, "F-LIST", ["M1"])

    won, errors = race([autofill, lambda: choose(db, snapshot, ["SKU01"], NOW)])
    with db() as session:
        (state,) = favorite_states(session, snapshot, "M1", NOW)
    skus = [sku for sku in state.skus if sku]
    assert len(skus) == len(set(skus))
    # in either order both succeed: auto-filled slots count as empty for the member
    assert sorted(won) == [0, 1], errors
    assert state.skus[0] == "SKU01"


def test_concurrent_category_swaps_let_exactly_one_win(db):
    terms = category_terms(max_count=1, chosen=["G-A"], frequency=Frequency.WEEKLY)
    add_members(db, Member("M1", favorite_categories=(terms,)))
    wanted = ["G-B", "G-C"]

    def swap(group: str) -> None:
        select_favorite_categories(UnitOfWork(db, now=NOW), "M1", "C-1", [group], TZ)

    won, errors = race([lambda g=g: swap(g) for g in wanted])
    assert len(won) == 1, errors
    assert {getattr(e, "reason", None) for e in errors} == {"CHANGE_NOT_ALLOWED"}


def test_a_member_changed_by_two_writers_at_once_has_a_document_with_both_changes(db):
    """Products and categories of one member chosen at the same moment, round after round:
    the member's document (what a cold load reads) always holds both choices."""
    terms = category_terms(max_count=1, frequency=Frequency.DAILY)
    add_members(db, Member("M1", favorite_categories=(terms,)))
    snapshot = snapshot_with(favorite_offer(frequency=Frequency.DAILY, slots=1))
    skus, groups = ["SKU01", "SKU02", "SKU03"], ["G-A", "G-B", "G-C"]
    for day in range(9):
        at = NOW + timedelta(days=day)
        sku, group = skus[day % 3], groups[(day + 1) % 3]

        def pick_categories(group: str = group, at: datetime = at) -> None:
            select_favorite_categories(UnitOfWork(db, now=at), "M1", "C-1", [group], TZ)

        def pick_products(sku: str = sku, at: datetime = at) -> None:
            choose(db, snapshot, [sku], at)

        won, errors = race([pick_products, pick_categories])
        assert sorted(won) == [0, 1], errors
        with db() as session:
            document = load_member(session, "M1")
            assert document == load_members_from_rows(session, ["M1"])["M1"]
        assert document is not None
        assert document.favorite_slots == {"F-LIST": {sku}}
        assert document.favorite_categories[0].chosen_group_ids == {group}
