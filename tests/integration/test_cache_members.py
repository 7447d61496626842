"""Members in the cache: a cold one is one query, preloading fills the cache up to its size,
and a member changed while being read is never left stale."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from service.cache.state import BenefitCache
from service.engine.model import Member
from service.store import loader
from service.store.codec import MEMBER_DOCUMENT_FORMAT
from service.store.member_documents import backfill, members_without_document
from service.store.member_repo import save_members
from service.store.models import MemberDocumentRow
from tests.integration.statements import count_selects


def store_members(sessions: sessionmaker[Session], count: int, cards: bool = False) -> None:
    members = [Member(f"M{i:04d}", segment_tags=frozenset({"old"})) for i in range(count)]
    numbers = {m.id: [m.id.replace("M", "C")] for m in members} if cards else None
    with sessions.begin() as session:
        save_members(session, members, numbers, now=datetime.now(UTC))


def test_preload_fills_the_cache_up_to_its_size(db: sessionmaker[Session]) -> None:
    store_members(db, 30)
    cache = BenefitCache(db, time_zone="Europe/Moscow", member_capacity=20)
    assert cache.preload_members(batch_size=7) == 20
    assert cache.cached_member_count() == 20
    hits_before = cache.stats.member_hits
    assert cache.member("M0000") is not None
    assert cache.stats.member_hits == hits_before + 1, "served from memory"


def test_a_member_changed_while_its_batch_was_read_is_not_cached_stale(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_members(db, 10)
    cache = BenefitCache(db, time_zone="Europe/Moscow", member_capacity=100)
    read_batches = loader.iter_members

    def read_then_change_arrives(session: Session, batch_size: int) -> Iterator[list[Member]]:
        for batch in read_batches(session, batch_size):  # M0003 read as it was ...
            cache.members_changed(["M0003"])  # ... then the change feed says it changed
            yield batch

    monkeypatch.setattr(loader, "iter_members", read_then_change_arrives)
    assert cache.preload_members() == 10
    assert cache.cached_member_count() == 9, "M0003 is left to load fresh on first use"


@pytest.mark.parametrize("by_card", [False, True], ids=["by id", "by card"])
def test_a_member_changed_while_being_loaded_is_not_cached_stale(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, by_card: bool
) -> None:
    store_members(db, 2, cards=True)
    cache = BenefitCache(db, time_zone="Europe/Moscow", member_capacity=100)
    name = "load_member_by_card" if by_card else "load_member"
    read = getattr(loader, name)

    def read_then_change_arrives(session: Session, key: str) -> object:
        found = read(session, key)
        cache.members_changed(["M0001"])
        return found

    monkeypatch.setattr(loader, name, read_then_change_arrives)
    first = cache.member_for_card("C0001") if by_card else cache.member("M0001")
    assert first is not None, "the call is still answered"
    assert cache.cached_member_count() == 0, "but the state read before the change is not kept"
    monkeypatch.setattr(loader, name, read)
    cache.member_for_card("C0000") if by_card else cache.member("M0000")
    assert cache.cached_member_count() == 1, "a load with no change meanwhile is kept"


def test_a_cold_card_and_member_cost_one_query(db: sessionmaker[Session]) -> None:
    store_members(db, 3, cards=True)
    cache = BenefitCache(db, time_zone="Europe/Moscow", member_capacity=100)
    with count_selects(db) as selects:
        found = cache.member_for_card("C0002")
    assert found is not None and found[0] == "M0002"
    assert found[1] is not None and found[1].segment_tags == {"old"}
    assert len(selects) == 1, selects
    with count_selects(db) as selects:
        assert cache.member_for_card("C0002") == found
        assert cache.member("M0002") == found[1]
    assert selects == [], "warm: answered from memory"
    cache.members_changed(["M0002"])
    with count_selects(db) as selects:
        assert cache.member("M0002") == found[1]
    assert len(selects) == 1, selects


def test_a_member_without_a_document_is_read_from_the_tables(db: sessionmaker[Session]) -> None:
    """Members written before documents existed (or by an older format) are still served;
    the next migrate writes their documents."""
    store_members(db, 3, cards=True)
    with db.begin() as session:
        expected = loader.load_members_from_rows(session, ["M0000", "M0001", "M0002"])
        session.execute(delete(MemberDocumentRow).where(MemberDocumentRow.member_id != "M0000"))
        session.execute(update(MemberDocumentRow).values(format=MEMBER_DOCUMENT_FORMAT + 1))
    with db() as session:
        assert loader.load_member_by_card(session, "C0001") == ("M0001", expected["M0001"])
        assert loader.load_members(session, ["M0000", "M0002"]) == {
            m: expected[m] for m in ("M0000", "M0002")
        }
        assert [m for batch in loader.iter_members(session, 2) for m in batch] == list(
            expected.values()
        )
        assert len(members_without_document(session)) == 3
    with db() as session:
        assert backfill(session, batch_size=2) == 3
        assert members_without_document(session) == []
        assert loader.load_members(session, expected) == expected
