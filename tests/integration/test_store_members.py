"""Members in the store: cards, batched loading in few queries, state that a re-save keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from service.engine.model import (
    Benefit,
    BenefitKind,
    FavoriteCategoryTerms,
    Member,
    PersonalOffer,
)
from service.store.loader import (
    iter_member_ids,
    load_member,
    load_member_by_card,
    load_members,
    load_purchases,
)
from service.store.member_repo import Purchase, add_purchase, add_purchases, save_member
from service.store.models import (
    CardRow,
    FavoriteCategoryAttributeRow,
    FavoriteSelectionRow,
    FavoriteSlotRow,
    PersonalOfferRow,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PERCENT_10 = Benefit(BenefitKind.PERCENT, 1000)


def rich_member(member_id: str, size: int) -> Member:
    """A member with `size` favorite offers, category attributes and personal offers."""
    return Member(
        id=member_id,
        segment_tags=frozenset({"vip", "student"}),
        favorite_slots={f"F{i:02d}": frozenset({f"sku{i}a", f"sku{i}b"}) for i in range(size)},
        favorite_categories=tuple(
            FavoriteCategoryTerms(
                f"C{i:02d}", "Categories", ("G1", "G2"), PERCENT_10, 1, True, frozenset({"G1"})
            )
            for i in range(size)
        ),
        personal_offers=tuple(
            PersonalOffer(f"P{i:02d}", "Coffee", PERCENT_10, frozenset({"sku1"}))
            for i in range(size)
        ),
        usage={(f"P{i:02d}", "2026-03"): 1000 for i in range(size)},
    )


def count_queries(session, action) -> int:
    """How many SELECT statements `action` sends to the database."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))


def test_a_card_leads_to_its_member_and_an_unknown_or_blocked_card_to_nobody(db):
    with db() as session:
        save_member(session, Member("M1"), ["2000000000001", "2000000000002"], now=NOW)
        session.execute(
            update(CardRow).where(CardRow.card_number == "2000000000002").values(active=False)
        )
        session.commit()
        assert load_member_by_card(session, "2000000000001")[0] == "M1"
        assert load_member_by_card(session, "2000000000002") is None
        assert load_member_by_card(session, "2999999999999") is None


def test_loading_a_member_takes_the_same_few_queries_however_much_they_have(db):
    with db() as session:
        save_member(session, rich_member("small", 1))
        save_member(session, rich_member("large", 20))
        session.commit()
        small = count_queries(session, lambda: load_member(session, "small"))
        large = count_queries(session, lambda: load_member(session, "large"))
        assert load_member(session, "large") == rich_member("large", 20)
    assert small == large <= 6


def test_loading_many_members_takes_the_same_queries_as_one_and_skips_unknown_ids(db):
    members = [rich_member(f"M{i:03d}", 2) for i in range(50)]
    with db() as session:
        for member in members:
            save_member(session, member)
        session.commit()
        ids = [m.id for m in members] + ["nobody"]
        statements = count_queries(session, lambda: load_members(session, ids))
        assert load_members(session, ids) == {m.id: m for m in members}
        assert load_member(session, "nobody") is None
    assert statements <= 6


def test_every_member_id_is_listed_once_in_order_across_batches(db):
    ids = [f"M{i:04d}" for i in range(25)]
    with db() as session:
        for member_id in reversed(ids):
            save_member(session, Member(member_id))
        session.commit()
        assert list(iter_member_ids(session, batch_size=10)) == ids
        assert list(iter_member_ids(session, batch_size=25)) == ids


def test_saving_a_member_again_keeps_the_slots_that_stay_with_their_index_and_flags(db):
    first = Member("M1", favorite_slots={"F": frozenset({"a", "b", "c"})})
    with db() as session:
        save_member(session, first, now=NOW)
        session.execute(
            update(FavoriteSlotRow).where(FavoriteSlotRow.sku == "b").values(auto_filled=True)
        )
        session.execute(update(FavoriteSelectionRow).values(last_change_at=NOW))
        later = NOW + timedelta(days=1)
        save_member(session, Member("M1", favorite_slots={"F": frozenset({"b", "d"})}), now=later)
        session.commit()
        slots = session.execute(
            select(
                FavoriteSlotRow.slot_index, FavoriteSlotRow.sku, FavoriteSlotRow.auto_filled
            ).order_by(FavoriteSlotRow.slot_index)
        ).all()
        selection = session.execute(select(FavoriteSelectionRow)).scalar_one()
    assert slots == [(0, "d", False), (1, "b", True)]
    assert selection.version == 2 and selection.last_change_at == NOW


def test_a_personal_offer_left_out_of_a_new_save_is_revoked_but_kept(db):
    coffee = PersonalOffer("P1", "Coffee", PERCENT_10, frozenset({"sku1"}))
    tea = PersonalOffer("P2", "Tea", PERCENT_10, frozenset({"sku2"}))
    with db() as session:
        save_member(session, Member("M1", personal_offers=(coffee, tea)))
        session.execute(update(PersonalOfferRow).values(import_id="IMPORT-1"))
        save_member(session, Member("M1", personal_offers=(tea,)))
        session.commit()
        rows = session.execute(
            select(
                PersonalOfferRow.offer_id, PersonalOfferRow.revoked, PersonalOfferRow.import_id
            ).order_by(PersonalOfferRow.offer_id)
        ).all()
        assert load_member(session, "M1").personal_offers == (tea,)
    assert rows == [("P1", True, "IMPORT-1"), ("P2", False, "IMPORT-1")]


def test_a_category_attribute_left_out_of_a_new_save_is_removed_with_its_choices(db):
    terms = FavoriteCategoryTerms("C1", "Cats", ("G1",), PERCENT_10, 1, True, frozenset({"G1"}))
    with db() as session:
        save_member(session, Member("M1", favorite_categories=(terms,)))
        save_member(session, Member("M1", favorite_categories=(terms,)))
        version = session.scalar(select(FavoriteCategoryAttributeRow.version))
        save_member(session, Member("M1"))
        session.commit()
        assert load_member(session, "M1").favorite_categories == ()
    assert version == 2


def test_purchases_of_a_sku_add_up_and_come_back_most_bought_first(db):
    with db() as session:
        save_member(session, Member("M1"))
        add_purchases(
            session,
            [
                Purchase("M1", "2026-02", "bread", 1000, 5000),
                Purchase("M1", "2026-02", "milk", 1000, 9500),
                Purchase("M1", "2026-02", "bread", 2000, 10000),
                Purchase("M1", "2026-02", "eggs", 1000, 9000),
                Purchase("M1", "2026-01", "caviar", 9000, 900000),
            ],
        )
        add_purchase(session, "M1", "2026-02", "cheese", 3000, 1000)
        add_purchase(session, "M1", "2026-02", "cheese", -3000, -1000)  # refunded
        session.commit()
        assert [(p.sku, p.quantity) for p in load_purchases(session, "M1", "2026-02")] == [
            ("bread", 3000),
            ("milk", 1000),
            ("eggs", 1000),
        ]


def test_a_month_that_is_not_yyyy_mm_is_refused(db):
    with db() as session, pytest.raises(ValueError, match="YYYY-MM"):
        add_purchase(session, "M1", "2026-2", "bread", 1000, 100)
