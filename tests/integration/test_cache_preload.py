"""Preloading members: the cache fills up to its size, and a member changed while its batch
was read is not left stale."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.cache.state import BenefitCache
from service.engine.model import Member
from service.store import loader
from service.store.member_repo import save_members


def store_members(sessions: sessionmaker[Session], count: int) -> None:
    members = [Member(f"M{i:04d}", segment_tags=frozenset({"old"})) for i in range(count)]
    with sessions.begin() as session:
        save_members(session, members, None, now=datetime.now(UTC))


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
    read_batch = loader.load_members

    def read_then_change_arrives(session: Session, ids: list[str]) -> dict[str, Member]:
        batch = read_batch(session, ids)  # M0003 read as it was ...
        cache.forget_member("M0003")  # ... then the change feed says it changed
        return batch

    monkeypatch.setattr(loader, "load_members", read_then_change_arrives)
    assert cache.preload_members() == 10
    assert cache.cached_member_count() == 9, "M0003 is left to load fresh on first use"
