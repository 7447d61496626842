"""Card numbers a replica has resolved, kept until the change feed says they may be wrong.

A card changes only together with its member: an import that issues, blocks or reactivates a
card rewrites that member and appends a member change (it refuses a card of another member).
So a card mapping needs no timer: it is checked against the store when its member changes,
and the reverse index (member -> cards) says which mappings those are. While the store is
down nothing changes, and every mapping known keeps resolving.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import CardRow
from service.store.sql import chunks, table_of


class CardMap(LRUCache[str, str]):
    """Card number -> member id, least recently used out first, with each member's cards.

    Read with get() (no lock of its own: the cache's lock guards it, as any LRU); write only
    with link() and unlink(), which keep the reverse index."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self._of_member: dict[str, set[str]] = {}

    def link(self, card_number: str, member_id: str) -> None:
        self.unlink(card_number)
        self[card_number] = member_id  # may evict the least recently used card: popitem()
        self._of_member.setdefault(member_id, set()).add(card_number)

    def unlink(self, card_number: str) -> None:
        member_id = self.pop(card_number, None)
        if member_id is not None:
            self._forget_owner(card_number, member_id)

    def popitem(self) -> tuple[str, str]:
        card_number, member_id = super().popitem()
        self._forget_owner(card_number, member_id)
        return card_number, member_id

    def cards_of(self, member_id: str) -> frozenset[str]:
        return frozenset(self._of_member.get(member_id, ()))

    def has_cards(self, member_id: str) -> bool:
        return member_id in self._of_member

    def recheck(self, active: dict[str, set[str]], member_ids: Iterable[str]) -> list[str]:
        """Unlink what the store no longer says for these members: a card of theirs that is
        not active any more, or an active card of theirs still linked to someone else (moved
        by a writer that did not tell its old owner). Returns the cards now active."""
        for member_id in member_ids:
            now_active = active.get(member_id, set())
            for card_number in self.cards_of(member_id) - now_active:
                self.unlink(card_number)
            for card_number in now_active:
                owner = self.get(card_number)
                if owner is not None and owner != member_id:
                    self.unlink(card_number)
        return [card for cards in active.values() for card in cards]

    def _forget_owner(self, card_number: str, member_id: str) -> None:
        cards = self._of_member.get(member_id)
        if cards is not None:
            cards.discard(card_number)
            if not cards:
                del self._of_member[member_id]


_CARDS = table_of(CardRow)


def active_cards(session: Session, member_ids: Collection[str]) -> dict[str, set[str]]:
    """Each member's active cards (members without one are left out), one indexed query per
    500 members."""
    found: dict[str, set[str]] = {}
    query = select(_CARDS.c.card_number, _CARDS.c.member_id).where(_CARDS.c.active.is_(True))
    for part in chunks(list(member_ids)):
        rows = session.execute(query.where(_CARDS.c.member_id.in_(part)))
        for card_number, member_id in rows:
            found.setdefault(member_id, set()).add(card_number)
    return found
