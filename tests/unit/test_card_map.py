"""The card map stays bounded and its reverse index (member -> cards) stays true to it."""

from __future__ import annotations

from service.cache.cards import CardMap


def test_evicting_a_card_removes_it_from_its_members_cards() -> None:
    cards = CardMap(maxsize=2)
    cards.link("C1", "M1")
    cards.link("C2", "M1")
    assert cards.get("C1") == "M1"  # C2 is now the least recently used
    cards.link("C3", "M2")
    assert cards.get("C2") is None
    assert cards.cards_of("M1") == {"C1"}
    cards.unlink("C1")
    assert not cards.has_cards("M1"), "a member without cards leaves nothing behind"
    assert cards.cards_of("M2") == {"C3"}


def test_relinking_a_card_moves_it_between_members() -> None:
    cards = CardMap(maxsize=10)
    cards.link("C1", "M1")
    cards.link("C1", "M2")
    assert (cards.get("C1"), cards.has_cards("M1"), cards.cards_of("M2")) == ("M2", False, {"C1"})


def test_a_recheck_unlinks_what_the_store_no_longer_says() -> None:
    cards = CardMap(maxsize=10)
    for card, member in (("C1", "M1"), ("C2", "M1"), ("C3", "M2")):
        cards.link(card, member)
    active = {"M1": {"C1", "C3", "C4"}}  # C2 blocked, C3 moved to M1, C4 issued
    assert sorted(cards.recheck(active, ["M1"])) == ["C1", "C3", "C4"]
    assert (cards.get("C1"), cards.get("C2"), cards.get("C3")) == ("M1", None, None)
    assert cards.cards_of("M1") == {"C1"} and not cards.has_cards("M2")
