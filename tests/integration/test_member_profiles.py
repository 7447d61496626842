"""Members one by one (spec §18), on SQLite and PostgreSQL: a profile created, replaced and
read; a card given and blocked; each through the import's rules, so a refusal names the field
and writes nothing, and each change reaches the member document, the change feed and this
replica's cache at once. Then the member's attribute rows need no profile row first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import common_pb2 as c
from loyalty.v1 import member_pb2 as mp
from service.api.import_rows import row_from_proto
from service.api.members import MemberServicer
from service.cache.state import BenefitCache
from service.config import Settings
from service.errors import InvalidArgument, NotFound
from service.imports.run import AttributeImport
from service.store.feed import EntityKind
from service.store.models import CardRow, ChangeFeedRow, MemberRow

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ADD, BLOCK = mp.AddMemberCardRequest, mp.BlockMemberCardRequest


@pytest.fixture
def cache(db) -> BenefitCache:
    cache = BenefitCache(db, time_zone="Europe/Moscow")
    cache.reload_snapshot()
    return cache


@pytest.fixture
def members(db, cache) -> MemberServicer:
    return MemberServicer(Settings(), cache, db, clock=lambda: NOW)


def count(db, model, *where) -> int:
    with db() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def upsert(members, **fields) -> mp.UpsertMemberProfileResponse:
    request = mp.UpsertMemberProfileRequest(profile=bo.MemberProfileRow(**fields))
    return members.UpsertMemberProfile(request, None)


def cards(profile: mp.MemberProfile) -> list[tuple[str, bool]]:
    return [(card.card_number, card.blocked) for card in profile.cards]


def member_feed(db) -> int:
    return count(db, ChangeFeedRow, ChangeFeedRow.entity_kind == EntityKind.MEMBER.value)


def test_a_profile_is_created_replaced_and_read_back_with_its_cards(members, cache, db):
    feed = member_feed(db)
    first = upsert(
        members,
        member_id="M1",
        card_numbers=["1001", "1002"],
        birth_date="1990-05-17",
        gender=c.GENDER_FEMALE,
        segment_tags=["vip", "student"],
    )
    assert first.created
    assert first.profile.birth_date == "1990-05-17" and first.profile.gender == c.GENDER_FEMALE
    assert list(first.profile.segment_tags) == ["student", "vip"]
    assert cards(first.profile) == [("1001", False), ("1002", False)]
    assert member_feed(db) == feed + 1  # the other replicas hear of it
    assert cache.member_for_card("1002")[0] == "M1"
    again = upsert(members, member_id="M1", card_numbers=["1002", "1003"], inactive=True)
    assert not again.created and again.profile.inactive and not again.profile.segment_tags
    assert cards(again.profile) == [("1001", True), ("1002", False), ("1003", False)]
    assert cache.member_for_card("1001") is None  # blocked: this replica reads it afresh
    by_card = members.GetMemberProfile(
        mp.GetMemberProfileRequest(member=c.MemberIdentity(card_number="1001")), None
    )
    assert by_card.profile == again.profile  # a blocked card still finds its member
    unchanged = upsert(members, member_id="M1", inactive=True)  # no cards: cards stay
    assert cards(unchanged.profile) == cards(again.profile)


def test_a_card_is_given_and_blocked_leaving_the_others(members, cache, db):
    upsert(members, member_id="M1", card_numbers=["1001"])
    upsert(members, member_id="M2", card_numbers=["2001"])
    given = members.AddMemberCard(mp.AddMemberCardRequest(member_id="M1", card_number="1009"), None)
    assert cards(given.profile) == [("1001", False), ("1009", False)]
    assert cache.member_for_card("1009")[0] == "M1"
    blocked = members.BlockMemberCard(
        mp.BlockMemberCardRequest(member_id="M1", card_number="1001"), None
    )
    assert cards(blocked.profile) == [("1001", True), ("1009", False)]
    assert cache.member_for_card("1001") is None
    last = members.BlockMemberCard(
        mp.BlockMemberCardRequest(member_id="M1", card_number="1009"), None
    )
    assert cards(last.profile) == [("1001", True), ("1009", True)]  # even the last one
    again = members.AddMemberCard(mp.AddMemberCardRequest(member_id="M1", card_number="1001"), None)
    assert cards(again.profile) == [("1001", False), ("1009", True)]  # unblocked


@pytest.mark.parametrize(
    ("call", "request_", "field"),
    [
        (
            "AddMemberCard",
            mp.AddMemberCardRequest(member_id="M1", card_number="2001"),
            "card_number",
        ),
        (
            "BlockMemberCard",
            mp.BlockMemberCardRequest(member_id="M1", card_number="2001"),
            "card_number",
        ),
        (
            "BlockMemberCard",
            mp.BlockMemberCardRequest(member_id="M1", card_number="7777"),
            "card_number",
        ),
        ("AddMemberCard", mp.AddMemberCardRequest(member_id="M1"), "card_number"),
        ("AddMemberCard", mp.AddMemberCardRequest(card_number="1"), "member_id"),
        (
            "AddMemberCard",
            mp.AddMemberCardRequest(member_id="M1", card_number="9" * 33),
            "card_number",
        ),
    ],
)
def test_a_card_of_another_member_or_none_is_refused_and_nothing_changes(
    members, db, call, request_, field
):
    upsert(members, member_id="M1", card_numbers=["1001"])
    upsert(members, member_id="M2", card_numbers=["2001"])
    feed = member_feed(db)
    with pytest.raises(InvalidArgument) as raised:
        getattr(members, call)(request_, None)
    assert raised.value.field == field
    assert member_feed(db) == feed
    assert count(db, CardRow, CardRow.member_id == "M1", CardRow.active.is_(True)) == 1
    assert count(db, CardRow, CardRow.member_id == "M2", CardRow.active.is_(True)) == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"member_id": ""}, "profile.member_id"),
        ({"member_id": "M9", "birth_date": "1990-02-30"}, "profile.birth_date"),
        ({"member_id": "M9", "gender": 42}, "profile.gender"),
        ({"member_id": "M9", "card_numbers": ["2001"]}, "profile.card_numbers[0]"),
        ({"member_id": "M9", "segment_tags": ["x" * 65]}, "profile.segment_tags[0]"),
    ],
)
def test_a_bad_profile_names_the_field_as_the_import_would_and_creates_nobody(
    members, db, fields, field
):
    upsert(members, member_id="M2", card_numbers=["2001"])
    with pytest.raises(InvalidArgument) as raised:
        upsert(members, **fields)
    assert raised.value.field == field
    assert count(db, MemberRow) == 1


def test_unknown_members_and_cards_are_not_found(members):
    for call, request in (
        ("AddMemberCard", mp.AddMemberCardRequest(member_id="NOPE", card_number="1")),
        ("GetMemberProfile", mp.GetMemberProfileRequest(member=c.MemberIdentity(member_id="NOPE"))),
        ("GetMemberProfile", mp.GetMemberProfileRequest(member=c.MemberIdentity(card_number="1"))),
    ):
        with pytest.raises(NotFound):
            getattr(members, call)(request, None)
    with pytest.raises(InvalidArgument) as raised:
        members.GetMemberProfile(mp.GetMemberProfileRequest(), None)
    assert raised.value.field == "member"


def test_a_member_made_here_takes_attribute_rows_without_a_profile_row(members, db):
    upsert(members, member_id="M1", card_numbers=["1001"])
    row = bo.AttributeRow(
        personal_offer=bo.PersonalOfferRow(
            member_id="M1",
            offer_id="P-1",
            name="Yours",
            skus=["S1"],
            benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=500),
            stacking=c.STACKING_COMBINABLE,
        )
    )
    run = AttributeImport(db, "IMP-AFTER-API", clock=lambda: NOW)
    run.begin()
    outcome = run.run([row_from_proto(row, 1)], prefetch=False)
    assert outcome.state.rows_applied == 1 and not outcome.errors
