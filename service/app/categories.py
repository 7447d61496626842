"""Favorite categories (spec §7.2; docs/favorites.md#favorite-categories): a member's choice
among the categories their imported terms offer.

The member's lock first, then the terms row claimed (service/store/category_choice_repo.py:
one change at a time), the choice judged by service/engine/favorites.py on what is stored,
the rows written, and the commit (the member's document, the change feed, the cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from zoneinfo import ZoneInfo

from service.app.unit_of_work import UnitOfWork
from service.engine.favorites import CategoryState, category_change, category_window
from service.errors import InvalidArgument, NotFound
from service.limits import quote
from service.store.category_choice_repo import claim_terms, replace_choice, save_choice


def select_favorite_categories(
    uow: UnitOfWork,
    member_id: str,
    offer_id: str,
    group_ids: Sequence[str],
    tz: ZoneInfo,
) -> CategoryState:
    """The member chooses categories. NOT_FOUND when the member has no such terms;
    FAILED_PRECONDITION ACCEPTANCE_OFF when there is nothing to choose, OFFER_ENDED after the
    terms' validity, CHANGE_NOT_ALLOWED (with next_allowed) for a replacement too soon."""
    if not offer_id:
        raise InvalidArgument("offer_id", "must not be empty")
    now = uow.now
    with uow:
        session = uow.session
        uow.lock_members([member_id])
        stored = claim_terms(session, member_id, offer_id)
        if stored is None:
            raise NotFound(
                f"the member has no favorite-categories offer {quote(offer_id)}",
                reason="OFFER_NOT_FOUND",
            )
        change = category_change(stored.terms, group_ids, stored.last_change_at, now, tz)
        save_choice(session, member_id, offer_id, stored.version, change.last_change_at)
        if change.chosen != stored.terms.chosen_group_ids:
            replace_choice(session, member_id, offer_id, change.chosen)
            uow.members_changed([member_id])
        uow.commit()
    terms = replace(stored.terms, chosen_group_ids=change.chosen)
    window = category_window(terms, change.last_change_at, now, tz)
    return CategoryState(terms, change.last_change_at, window, stored.version + 1)
