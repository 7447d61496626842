"""The cache through a store outage: what a replica knew before the store went down still
answers, however it learnt it (a first read, its own write, the change feed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.cache.state import BenefitCache
from service.cache.sync import ChangeFollower
from service.engine.model import Member
from service.store import loader
from service.store.db import make_engine, make_session_factory, migrate
from service.store.member_repo import save_members
from tests.pg import PostgresCluster

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as own:  # its own server: these tests stop it
        yield own


@pytest.fixture
def sessions(cluster: PostgresCluster) -> Iterator[sessionmaker[Session]]:
    url = cluster.create_database()
    migrate(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
        if not (cluster.data_dir / "postmaster.pid").exists():
            cluster.restart_server()
        cluster.drop_database(url.rsplit("/", 1)[1])


def store_member(sessions: sessionmaker[Session], member_id: str, tag: str) -> None:
    member = Member(member_id, segment_tags=frozenset({tag}))
    cards = {member_id: [member_id.replace("M", "C")]}
    with sessions.begin() as session:
        save_members(session, [member], cards, now=datetime.now(UTC))


def tags(member: Member | None) -> set[str]:
    assert member is not None
    return set(member.segment_tags)


def test_a_member_this_replica_wrote_answers_from_before_the_write_when_the_store_is_down(
    cluster: PostgresCluster, sessions: sessionmaker[Session]
) -> None:
    store_member(sessions, "M1", "old")
    cache = BenefitCache(sessions, time_zone="Europe/Moscow")
    first = cache.member_for_card("C1")
    assert first is not None and tags(first[1]) == {"old"}
    store_member(sessions, "M1", "new")  # this replica's write (a confirm, say) ...
    cache.members_changed(["M1"])  # ... which it notes at once
    assert tags(cache.member("M1")) == {"new"}, "read-your-writes: the next read loads"

    store_member(sessions, "M1", "newer")
    cache.members_changed(["M1"])
    cluster.stop_server()
    assert tags(cache.member("M1")) == {"new"}, "the last state known, not UNAVAILABLE"
    found = cache.member_for_card("C1")
    assert found is not None and tags(found[1]) == {"new"}
    with pytest.raises(OperationalError):
        cache.member("M2")  # never known here: nothing to answer with


def test_a_refresh_the_outage_interrupts_keeps_the_old_state_and_is_tried_again(
    cluster: PostgresCluster, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_member(sessions, "M1", "old")
    cache = BenefitCache(sessions, time_zone="Europe/Moscow")
    cache.reload_snapshot()
    follower = ChangeFollower(sessions, cache)
    follower.poll_once()
    assert tags(cache.member("M1")) == {"old"}
    store_member(sessions, "M1", "new")  # another replica's write

    read_members = loader.load_members

    def store_goes_down_first(session: Session, member_ids: list[str]) -> dict[str, Member]:
        cluster.stop_server()  # the feed was read; the member cannot be any more
        return read_members(session, member_ids)

    monkeypatch.setattr(loader, "load_members", store_goes_down_first)
    with pytest.raises(OperationalError):
        follower.poll_once()
    assert tags(cache.member("M1")) == {"old"}, "kept, not dropped"

    monkeypatch.setattr(loader, "load_members", read_members)
    cluster.restart_server()
    assert follower.poll_once() == 0, "nothing new in the feed ..."
    assert tags(cache.member("M1")) == {"new"}, "... but the refresh due is done"


def test_a_refresh_that_began_before_a_later_change_does_not_win(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_member(sessions, "M1", "old")
    cache = BenefitCache(sessions, time_zone="Europe/Moscow")
    assert tags(cache.member("M1")) == {"old"}
    store_member(sessions, "M1", "v2")  # a change the feed brings

    read_members = loader.load_members

    def later_change_meanwhile(session: Session, member_ids: list[str]) -> dict[str, Member]:
        found = read_members(session, member_ids)  # v2 read ...
        store_member(sessions, "M1", "v3")  # ... then this replica writes v3
        cache.members_changed(["M1"])
        return found

    monkeypatch.setattr(loader, "load_members", later_change_meanwhile)
    cache.refresh_members(["M1"])
    monkeypatch.setattr(loader, "load_members", read_members)
    assert tags(cache.member("M1")) == {"v3"}, "the refresh's v2 did not replace the write"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_card_looked_up_long_before_the_outage_still_resolves(
    cluster: PostgresCluster, sessions: sessionmaker[Session]
) -> None:
    """Cards are invalidated by the change feed, not by a timer: a till that has calculated
    by member id for an hour (or not at all) still finds the member by card."""
    store_member(sessions, "M1", "old")
    clock = Clock()
    cache = BenefitCache(sessions, time_zone="Europe/Moscow", clock=clock)
    first = cache.member_for_card("C1")
    assert first is not None and first[0] == "M1"
    clock.now += 3600
    cluster.stop_server()
    found = cache.member_for_card("C1")
    assert found is not None and tags(found[1]) == {"old"}
    assert tags(cache.member("M1")) == {"old"}
