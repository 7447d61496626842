"""The change-feed follower: every replica's cache converges to the store, even when
transactions commit out of the order of their positions."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.cache.state import BenefitCache
from service.cache.sync import ChangeFollower
from service.engine.model import Benefit, BenefitKind, Level, Offer
from service.store import db as store_db
from service.store.catalog_repo import save_offer
from service.store.feed import EntityKind, append_changes


class RecordingCache(BenefitCache):
    """The real cache, also noting which members it was told to refresh."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        super().__init__(sessions, time_zone="Europe/Moscow")
        self.refreshed: list[str] = []

    def refresh_members(self, member_ids: Iterable[str]) -> None:
        ids = list(member_ids)
        self.refreshed += ids
        super().refresh_members(ids)


def write_member_change(sessions: sessionmaker[Session], member_id: str) -> None:
    with sessions.begin() as session:
        append_changes(session, EntityKind.MEMBER, [member_id])


def follower_for(
    sessions: sessionmaker[Session], **options: float
) -> tuple[ChangeFollower, RecordingCache]:
    cache = RecordingCache(sessions)
    cache.reload_snapshot()
    follower = ChangeFollower(sessions, cache, **options)  # type: ignore[arg-type]
    return follower, cache


def test_a_member_change_makes_the_replica_refresh_that_member(
    db: sessionmaker[Session],
) -> None:
    follower, cache = follower_for(db)
    write_member_change(db, "M1")
    assert follower.poll_once() == 1
    assert cache.refreshed == ["M1"]
    assert follower.poll_once() == 0, "a change is applied once"


def test_a_new_offer_rebuilds_the_snapshot(db: sessionmaker[Session]) -> None:
    follower, cache = follower_for(db)
    assert cache.snapshot.offer("NEW") is None
    with db.begin() as session:
        save_offer(
            session, Offer("NEW", "New", Level.ALL_BUYERS, Benefit(BenefitKind.PERCENT, 500))
        )
    follower.poll_once()
    assert cache.snapshot.offer("NEW") is not None


@pytest.mark.postgres
def test_a_transaction_that_commits_after_a_later_position_is_not_missed(pg_url: str) -> None:
    store_db.migrate(pg_url)
    engine = store_db.make_engine(pg_url)
    sessions = store_db.make_session_factory(engine)
    try:
        follower, cache = follower_for(sessions)
        slow = sessions()
        slow.begin()
        append_changes(slow, EntityKind.MEMBER, ["SLOW"])  # takes the lower position
        slow.flush()
        write_member_change(sessions, "FAST")  # takes a higher one and commits first
        follower.poll_once()
        assert cache.refreshed == ["FAST"]
        assert follower.open_gaps == 1
        slow.commit()
        slow.close()
        follower.poll_once()
        assert cache.refreshed == ["FAST", "SLOW"]
        assert follower.open_gaps == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_rolled_back_insert_is_given_up_on_after_the_gap_timeout(pg_url: str) -> None:
    store_db.migrate(pg_url)
    engine = store_db.make_engine(pg_url)
    sessions = store_db.make_session_factory(engine)
    try:
        follower, cache = follower_for(sessions, gap_timeout_s=0.2)
        with sessions() as doomed:
            append_changes(doomed, EntityKind.MEMBER, ["NEVER"])
            doomed.flush()
            doomed.rollback()
        write_member_change(sessions, "AFTER")
        follower.poll_once()
        assert follower.open_gaps == 1
        time.sleep(0.3)
        follower.poll_once()
        assert follower.open_gaps == 0
        assert follower.stats.gaps_given_up == 1
        assert cache.refreshed == ["AFTER"]
    finally:
        engine.dispose()


def _concurrent_writers(engine: Engine, writers: int, changes_each: int) -> set[str]:
    sessions = store_db.make_session_factory(engine)
    written: set[str] = set()
    lock = threading.Lock()

    def write(writer: int) -> None:
        rng = random.Random(writer)
        for i in range(changes_each):
            key = f"W{writer}-{i}"
            with sessions.begin() as session:
                append_changes(session, EntityKind.MEMBER, [key])
                session.flush()
                time.sleep(rng.random() * 0.01)  # hold the position a while before commit
            with lock:
                written.add(key)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return written


@pytest.mark.postgres
def test_with_many_concurrent_writers_every_change_reaches_the_follower(pg_url: str) -> None:
    store_db.migrate(pg_url)
    engine = store_db.make_engine(pg_url)
    sessions = store_db.make_session_factory(engine)
    try:
        follower, cache = follower_for(sessions, poll_interval_s=0.005)
        follower.start_from_current()
        written = _concurrent_writers(engine, writers=12, changes_each=40)
        deadline = time.monotonic() + 10
        while set(cache.refreshed) != written and time.monotonic() < deadline:
            time.sleep(0.05)
        follower.stop()
        assert set(cache.refreshed) == written
        assert len(cache.refreshed) == len(written), "each change applied exactly once"
        assert follower.stats.gaps_given_up == 0
    finally:
        engine.dispose()
