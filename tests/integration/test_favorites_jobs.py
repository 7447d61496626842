"""The member-event jobs (spec §10): a new list on the 1st, selection allowed again. Both are
idempotent: a second run, or a concurrent one, writes no duplicate events."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from service.app.categories import select_favorite_categories
from service.app.jobs import announce_selection_allowed, switch_month
from service.app.unit_of_work import UnitOfWork
from service.engine.model import Frequency, ListSource, Member
from service.jobs import run_jobs
from service.store.member_repo import Purchase, add_purchases
from tests.integration.favorites_fixtures import (
    TZ,
    add_members,
    category_terms,
    choose,
    favorite_offer,
    local,
    outbox_events,
    snapshot_with,
)

HISTORY = favorite_offer("F-HIST", source=ListSource.PURCHASE_HISTORY, frequency=Frequency.DAILY)
PREDEFINED = favorite_offer("F-LIST", frequency=Frequency.WEEKLY)


def bought(member: str, month: str, *skus: str) -> list[Purchase]:
    return [Purchase(member, month, sku, 1000, 100) for sku in skus]


def history_members(db) -> None:
    add_members(db, "M1", "M2", "M3")
    with db() as session:
        add_purchases(
            session,
            bought("M1", "2026-06", "SKU01")
            + bought("M1", "2026-07", "SKU01", "SKU02")  # a new list
            + bought("M2", "2026-06", "SKU03", "SKU04")
            + bought("M2", "2026-07", "SKU04", "SKU03")  # the same list again
            + bought("M3", "2026-06", "SKU05"),  # nothing in July: an empty list
        )
        session.commit()


def run(db, job, now) -> int:
    return job(UnitOfWork(db, now=now), snapshot_with(HISTORY, PREDEFINED)).events


def test_on_the_1st_only_members_whose_history_list_changed_hear_of_their_new_list(db):
    history_members(db)
    assert run(db, switch_month, local(2026, 8, 1)) == 1
    (event,) = outbox_events(db, "NEW_FAVORITE_LIST")
    assert event.member_id == "M1"
    assert event.payload == {
        "offer_id": "F-HIST",
        "list_month": "2026-08",
        "purchases_month": "2026-07",
        "skus": ["SKU01", "SKU02"],
    }


def test_the_month_switch_run_again_the_same_month_writes_nothing_new(db):
    history_members(db)
    assert run(db, switch_month, local(2026, 8, 1)) == 1
    assert run(db, switch_month, local(2026, 8, 1, 0, 5)) == 0
    assert run(db, switch_month, local(2026, 8, 20)) == 0
    assert len(outbox_events(db, "NEW_FAVORITE_LIST")) == 1


def test_two_month_switches_running_at_once_announce_each_list_once(db):
    history_members(db)
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def one() -> None:
        barrier.wait()
        counts.append(run(db, switch_month, local(2026, 8, 1)))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(counts) == [0, 1]
    assert len(outbox_events(db, "NEW_FAVORITE_LIST")) == 1


def test_selection_allowed_again_is_announced_once_when_the_next_period_begins(db):
    add_members(db, "M1", "M2")
    snapshot = snapshot_with(HISTORY, PREDEFINED)
    wednesday = local(2026, 3, 11, 9)
    choose(db, snapshot, ["SKU01"], wednesday - timedelta(hours=1))
    choose(db, snapshot, ["SKU02"], wednesday)  # M1's weekly replacement
    choose(db, snapshot, ["SKU03"], wednesday, member_id="M2")  # filling only: nothing to wait for
    assert run(db, announce_selection_allowed, local(2026, 3, 15, 23, 59, 59)) == 0
    assert run(db, announce_selection_allowed, local(2026, 3, 16)) == 1
    assert run(db, announce_selection_allowed, local(2026, 3, 16)) == 0
    assert run(db, announce_selection_allowed, local(2026, 3, 16, 0, 10)) == 0
    (event,) = outbox_events(db, "SELECTION_ALLOWED_AGAIN")
    assert (event.member_id, event.payload["offer_id"]) == ("M1", "F-LIST")
    assert event.payload["allowed_from"] == local(2026, 3, 16).isoformat()


def test_a_category_swap_allowed_again_is_announced_too(db):
    terms = category_terms(max_count=1, chosen=["G-A"], frequency=Frequency.DAILY)
    add_members(db, Member("M1", favorite_categories=(terms,)))
    select_favorite_categories(UnitOfWork(db, now=local(2026, 3, 11, 20)), "M1", "C-1", ["G-B"], TZ)
    assert run(db, announce_selection_allowed, local(2026, 3, 11, 23)) == 0
    assert run(db, announce_selection_allowed, local(2026, 3, 12, 0, 1)) == 1
    (event,) = outbox_events(db, "SELECTION_ALLOWED_AGAIN")
    assert event.payload["kind"] == "FAVORITE_CATEGORIES"


def test_run_jobs_commits_both_jobs_and_counts_their_events(db):
    history_members(db)
    written = run_jobs(db, snapshot_with(HISTORY, PREDEFINED), local(2026, 8, 1))
    assert written == 1
    assert json.dumps(outbox_events(db)[0].payload)  # payloads are plain JSON
