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

from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import common_pb2
from service.api.backoffice import BackOfficeServicer
from service.cache.state import BenefitCache
from service.cache.sync import ChangeFollower
from service.config import Settings
from service.engine.model import Benefit, BenefitKind, Level, Member, Offer
from service.store import db as store_db
from service.store import loader
from service.store.catalog_repo import save_offer
from service.store.feed import EntityKind, append_changes
from service.store.loader import Catalogue
from service.store.member_repo import save_members
from tests.integration.statements import count_selects
from tests.waiting import until


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


def test_a_rebuild_that_read_before_an_upsert_never_replaces_the_upserted_catalogue(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-your-writes on offers: the sync's rebuild reads the store, the back office upserts
    an offer and rebuilds this replica's snapshot, then the sync's rebuild finishes."""
    follower, cache = follower_for(db)
    with db.begin() as session:  # a change the sync rebuilds for
        save_offer(session, Offer("EARLIER", "Earlier", Level.ALL_BUYERS, percent_off(5)))
    read, release = threading.Event(), threading.Event()
    read_catalogue = loader.load_catalogue

    def sync_pauses_after_reading(session: Session) -> Catalogue:
        catalogue = read_catalogue(session)
        if threading.current_thread().name == "sync":
            read.set()
            assert release.wait(10)
        return catalogue

    monkeypatch.setattr(loader, "load_catalogue", sync_pauses_after_reading)
    sync = threading.Thread(target=follower.poll_once, name="sync")
    sync.start()
    assert read.wait(10), "the sync's rebuild read the store"
    back_office = BackOfficeServicer(Settings(), cache, db)
    back_office.UpsertOffer(bo.UpsertOfferRequest(offer=ten_percent("UPSERTED")), None)
    assert cache.snapshot.offer("UPSERTED") is not None, "read-your-writes"
    release.set()
    sync.join(10)
    assert not sync.is_alive()
    assert cache.snapshot.offer("UPSERTED") is not None, "the older build did not replace it"
    assert cache.snapshot.offer("EARLIER") is not None


def percent_off(percent: int) -> Benefit:
    return Benefit(BenefitKind.PERCENT, percent * 100)


def ten_percent(offer_id: str) -> bo.Offer:
    return bo.Offer(
        id=offer_id,
        name="Everything -10 %",
        level=common_pb2.LEVEL_ALL_BUYERS,
        benefit=common_pb2.Benefit(kind=common_pb2.BENEFIT_KIND_PERCENT, value=1000),
        stacking=common_pb2.STACKING_COMBINABLE,
        active=True,
    )


def test_a_member_read_after_their_own_write_stays_warm_when_the_feed_brings_it_back(
    db: sessionmaker[Session],
) -> None:
    follower, cache = follower_for(db)
    with db.begin() as session:
        save_members(session, [Member("M1", segment_tags=frozenset({"old"}))])
    follower.poll_once()
    with db.begin() as session:  # this replica's write, a confirm say
        save_members(session, [Member("M1", segment_tags=frozenset({"new"}))])
    cache.members_changed(["M1"])
    member = cache.member("M1")  # the next receipt of theirs
    assert member is not None and member.segment_tags == {"new"}
    assert follower.poll_once() == 1, "the write comes back through the feed"
    with count_selects(db) as selects:
        assert cache.member("M1") == member
    assert selects == [], "still warm: refreshed, not dropped"


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
        until(lambda: follower.poll_once() >= 0 and follower.open_gaps == 0, within_s=10)
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


def test_a_member_that_cannot_be_refreshed_is_dropped_and_the_feed_goes_on(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only an unreachable store makes a refresh wait for the next poll: any other failure
    (a document that cannot be read, say) would fail every poll from then on."""
    follower, cache = follower_for(db)
    with db.begin() as session:
        save_members(session, [Member("M1"), Member("M2")])
    follower.poll_once()
    assert cache.member("M1") is not None and cache.member("M2") is not None
    write_member_change(db, "M1")

    def unreadable(session: Session, member_ids: Iterable[str]) -> dict[str, Member]:
        raise ValueError("a document that cannot be read")

    monkeypatch.setattr(loader, "load_members", unreadable)
    assert follower.poll_once() == 1
    assert cache.cached_member_count() == 1, "M1 dropped: its next read loads it"
    monkeypatch.undo()
    write_member_change(db, "M2")
    assert follower.poll_once() == 1
    assert cache.refreshed[-1] == "M2", "the feed goes on"
