"""The unit of work keeps the write protocol: documents, change feed, outbox, then the cache,
all or nothing (service/app/unit_of_work.py)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select, update

from service.app.unit_of_work import UnitOfWork
from service.engine.model import Member
from service.store.feed import changes_after
from service.store.loader import load_member
from service.store.member_repo import save_members
from service.store.models import MemberRow, OutboxRow
from service.store.outbox import EventType


def a_member(db, member_id: str = "M1") -> None:
    with db() as session:
        save_members(session, [Member(member_id, segment_tags=frozenset({"old"}))])
        session.commit()


def feed_keys(db, after: int = 0) -> list[str]:
    with db() as session:
        return [change.key for change in changes_after(session, after)]


def test_a_committed_change_rewrites_the_document_tells_the_feed_and_then_the_cache(db):
    a_member(db)
    before = len(feed_keys(db))
    told: list[list[str]] = []
    with UnitOfWork(db, told.append) as uow:
        uow.session.execute(update(MemberRow).values(segment_tags=["new"]))
        uow.members_changed(["M1"])
        uow.add_event("M1", EventType.FAVORITES_CHANGED, {"offer_id": "F-1"})
        assert told == []  # nothing before the commit
        uow.commit()
    assert told == [["M1"]]
    with db() as session:
        assert load_member(session, "M1").segment_tags == frozenset({"new"})
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 1
    assert feed_keys(db)[before:] == ["M1"]


def test_without_a_commit_nothing_is_written_and_nobody_is_told(db):
    a_member(db)
    before = feed_keys(db)
    told: list[list[str]] = []
    with UnitOfWork(db, told.append) as uow:
        uow.session.execute(update(MemberRow).values(segment_tags=["lost"]))
        uow.members_changed(["M1"])
        uow.add_event("M1", EventType.FAVORITES_CHANGED)
    assert told == [] and feed_keys(db) == before
    with db() as session:
        assert load_member(session, "M1").segment_tags == frozenset({"old"})
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 0


def test_a_patch_rewrites_the_document_without_reading_the_rows(db):
    a_member(db)
    with UnitOfWork(db) as uow:
        uow.session.execute(update(MemberRow).values(active=False, segment_tags=["b"]))
        uow.patch_members(["M1"], lambda member: replace(member, active=False))
        uow.patch_members(["M1"], lambda member: replace(member, segment_tags=frozenset("b")))
        uow.commit()
    with db() as session:
        member = load_member(session, "M1")
    assert member.active is False and member.segment_tags == frozenset({"b"})


def test_a_patch_made_before_the_batch_is_used_still_reaches_the_document(db):
    """A use case may patch a member and only then queue statements on the batch: the
    document is read for the patch at commit all the same."""
    a_member(db)
    with UnitOfWork(db) as uow:
        uow.session.execute(update(MemberRow).values(active=False))
        uow.patch_members(["M1"], lambda member: replace(member, active=False))
        assert not uow.batch.queued  # the batch is made after the patch
        uow.commit()
    with db() as session:
        assert load_member(session, "M1").active is False
