"""A member's choice of favorite categories (SPEC 7.2) in the store.

The terms come from imports (favorite_category_attributes); a member only chooses, when the
acceptance flag is on, up to max_count of the offered groups. Adding a category while fewer
than max_count are chosen is filling (always allowed); dropping or swapping a chosen one is a
replacement, allowed once per period of the attribute's frequency (the rule of SPEC 7.1).

Concurrency as for favorite products: the change first writes the attribute row (a no-op
UPDATE that takes the row lock on PostgreSQL and the write lock on SQLite), reads only then,
and bumps the version with a conditional UPDATE. The caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.engine.model import FavoriteCategoryTerms
from service.engine.selection import validate_category_choice
from service.errors import FailedPrecondition, InvalidArgument, NotFound
from service.limits import quote
from service.store.codec import attribute_from_row
from service.store.favorites_repo import change_window, check_offer_open, refusal
from service.store.member_documents import lock_members, member_changed
from service.store.models import FavoriteCategoryAttributeRow, FavoriteCategoryChoiceRow
from service.store.sql import insert_rows, table_of


@dataclass(frozen=True, slots=True)
class CategoryState:
    """A member's terms for one favorite-categories offer with their choice, as stored."""

    terms: FavoriteCategoryTerms
    last_change_at: datetime | None
    version: int


def effective_choice(terms: FavoriteCategoryTerms) -> tuple[str, ...]:
    """The groups that apply, as the engine applies them: acceptance on, the chosen groups
    still offered, in offered order, at most max_count; acceptance off, every offered group."""
    if not terms.acceptance_required:
        return tuple(dict.fromkeys(terms.group_ids))
    chosen = [g for g in dict.fromkeys(terms.group_ids) if g in terms.chosen_group_ids]
    return tuple(chosen[: max(terms.max_count, 0)])


def last_category_changes(session: Session, member_id: str) -> dict[str, datetime | None]:
    """offer id -> when the member last replaced a chosen category (one indexed query)."""
    attributes = table_of(FavoriteCategoryAttributeRow)
    query = select(attributes.c.offer_id, attributes.c.last_change_at).where(
        attributes.c.member_id == member_id
    )
    return {r.offer_id: r.last_change_at for r in session.execute(query)}


def select_favorite_categories(
    session: Session,
    member_id: str,
    offer_id: str,
    group_ids: Sequence[str],
    now: datetime,
    tz: ZoneInfo,
) -> CategoryState:
    """The member chooses categories. NOT_FOUND when the member has no such terms;
    FAILED_PRECONDITION ACCEPTANCE_OFF when there is nothing to choose, OFFER_ENDED after the
    terms' validity, CHANGE_NOT_ALLOWED (with next_allowed) for a replacement too soon."""
    if not offer_id:
        raise InvalidArgument("offer_id", "must not be empty")
    attributes = table_of(FavoriteCategoryAttributeRow)
    key = (attributes.c.member_id == member_id, attributes.c.offer_id == offer_id)
    lock_members(session, [member_id])
    claimed = session.execute(update(attributes).where(*key).values(version=attributes.c.version))
    if claimed.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(
            f"the member has no favorite-categories offer {quote(offer_id)}",
            reason="OFFER_NOT_FOUND",
        )
    row = session.execute(select(attributes).where(*key).with_for_update()).one()
    choices = table_of(FavoriteCategoryChoiceRow)
    choice_key = (choices.c.member_id == member_id, choices.c.offer_id == offer_id)
    stored = frozenset(session.scalars(select(choices.c.group_id).where(*choice_key)))
    terms = attribute_from_row(row, stored)
    if not terms.acceptance_required:
        raise FailedPrecondition(
            "every offered category applies; there is nothing to choose", reason="ACCEPTANCE_OFF"
        )
    check_offer_open(terms.valid_to, now)
    try:
        chosen = validate_category_choice(group_ids, terms.group_ids, terms.max_count)
    except InvalidArgument as error:
        field = "group_ids" + error.field.removeprefix("chosen_group_ids")
        raise InvalidArgument(field, error.description) from None
    current = set(effective_choice(terms))
    last_change_at = row.last_change_at
    if not current <= chosen:  # a chosen category dropped or swapped: a replacement
        window = change_window(
            terms.frequency, terms.every_n_days, last_change_at, now, tz, terms.valid_to
        )
        if not window.allowed_now:
            raise refusal(window, "a chosen category")
        last_change_at = now
    result = session.execute(
        update(attributes)
        .where(*key, attributes.c.version == row.version)
        .values(version=row.version + 1, last_change_at=last_change_at)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise FailedPrecondition(
            "the choice was changed at the same time; try again", reason="CONCURRENT_CHANGE"
        )
    if chosen != stored:
        session.execute(delete(choices).where(*choice_key))
        insert_rows(
            session,
            FavoriteCategoryChoiceRow,
            [{"member_id": member_id, "offer_id": offer_id, "group_id": g} for g in sorted(chosen)],
        )
        member_changed(session, [member_id], now)
    chosen_terms = attribute_from_row(row, frozenset(chosen))
    return CategoryState(chosen_terms, last_change_at, row.version + 1)
