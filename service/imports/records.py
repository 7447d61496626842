"""Customer-attribute import rows (spec §7.2-7.4), validated: one record per row of a file or
of the ImportCustomerAttributes stream.

A row is one of three kinds (the `type` column): a member profile, a member's favorite
categories for one offer, or a member's personalized offer (or its revocation). The builders
below take typed values (None for "not given") from any front end - the CSV / JSON Lines
reader or the protobuf rows - check everything a row can be checked for without the store,
and return a frozen record. A problem raises InvalidArgument naming the field by its file
column name (`benefit_kind`, `group_ids[2]`), so a rejected row reads the same whichever way
it came in. Ids, names, tags, SKUs and card numbers hold no control characters and no lone
surrogates; a reason quotes at most limits.QUOTE characters of a value (`quoted`). Lengths
are the one table's (service.limits); ranges of offer terms are the back office's too
(service.engine.definitions).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from service import limits
from service.engine.attributes import (
    AttributeRecord,
    CardChange,
    FavoriteCategories,
    MemberProfile,
    PersonalOfferGrant,
)
from service.engine.definitions import (
    MAX_USAGE_LIMIT,
    check_benefit,
    check_every_n_days,
    check_validity,
)
from service.engine.model import (
    BenefitKind,
    FavoriteCategoryTerms,
    Frequency,
    Gender,
    LimitPeriod,
    LimitUnit,
    PersonalOffer,
    Stacking,
    UsageLimit,
)
from service.errors import InvalidArgument
from service.limits import quote

MAX_ITEMS = 1000  # SKUs, groups, cards or tags in one row
# What a protobuf Timestamp allows and a datetime holds, in UTC (sub-microseconds dropped)
TIME_RANGE = "from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z"

# Control characters (NUL, which PostgreSQL text cannot hold; ESC, which a receipt printer
# obeys) and lone surrogates (which are not UTF-8) in no id and no name.
_UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class RowKind(enum.StrEnum):
    """The `type` of a row."""

    MEMBER_PROFILE = "member_profile"
    FAVORITE_CATEGORIES = "favorite_categories"
    PERSONAL_OFFER = "personal_offer"


@dataclass(frozen=True, slots=True)
class RowError:
    """Why a row was rejected: its line in the source, the field at fault (may be empty)."""

    line_number: int
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One row of a source: a valid record, or the reason it was rejected."""

    line_number: int
    record: AttributeRecord | None = None
    error: RowError | None = None


def rejected(line_number: int, error: InvalidArgument) -> ParsedRow:
    return ParsedRow(line_number, error=RowError(line_number, error.field, error.description))


def quoted(value: object) -> str:
    """A sender's value as a rejection shows it: a Python literal (control characters and
    lone surrogates escaped) of at most its first limits.QUOTE characters, … when cut. A JSON
    array or object is named, not printed: its repr could be long, or nested deeper than
    repr() may recurse."""
    if isinstance(value, str):
        return quote(value, limits.QUOTE)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    shown = repr(value)
    return shown[: limits.QUOTE] + "…" if len(shown) > limits.QUOTE else shown


def field_name(name: str) -> str:
    """A field name the sender made up (an unknown key or column), fit to report."""
    if len(name) <= limits.QUOTE and name.isprintable():
        return name
    return quoted(name)


# --- field checks ------------------------------------------------------------------------------


def check_text(value: str, field: str) -> None:
    if not value.isprintable() and _UNSAFE_TEXT.search(value):  # isprintable: the fast path
        raise InvalidArgument(field, "must not contain control characters or lone surrogates")


def require_key(value: str | None, field: str, length: int = limits.ID) -> str:
    if not value:
        raise InvalidArgument(field, "required")
    if len(value) > length:
        raise InvalidArgument(field, f"at most {length} characters")
    check_text(value, field)
    return value


def require_name(value: str | None, field: str = "name") -> str:
    if not value:
        raise InvalidArgument(field, "required")
    if len(value) > limits.NAME:
        raise InvalidArgument(field, f"at most {limits.NAME} characters")
    check_text(value, field)
    return value


def key_list(
    values: Sequence[str] | None, field: str, length: int = limits.ID, *, unique: bool = True
) -> tuple[str, ...]:
    """Ids in the given order; each non-empty and short enough, none twice (when unique)."""
    if not values:
        return ()
    if len(values) > MAX_ITEMS:
        raise InvalidArgument(field, f"at most {MAX_ITEMS} items")
    distinct = tuple(dict.fromkeys(values))
    if unique and len(distinct) != len(values):
        seen: set[str] = set()
        for index, value in enumerate(values):
            if value in seen:
                raise InvalidArgument(f"{field}[{index}]", f"{quoted(value)} is listed twice")
            seen.add(value)
    for value in distinct:
        if not value or len(value) > length or not value.isprintable():
            require_key(value, f"{field}[{values.index(value)}]", length)
    return distinct


def check_frequency(
    frequency: Frequency | None, every_n_days: int | None, *, required: bool
) -> tuple[Frequency, int]:
    """The selection frequency and its N; without a frequency (allowed only where it does not
    matter) MONTHLY, the model's default."""
    n = every_n_days or 0
    if frequency is None:
        if required:
            raise InvalidArgument("frequency", "required when acceptance_required is on")
        frequency = Frequency.MONTHLY
    if frequency is Frequency.EVERY_N_DAYS:
        check_every_n_days(n)
    elif n != 0:
        raise InvalidArgument("every_n_days", "only for frequency EVERY_N_DAYS")
    return frequency, n


def check_priority(priority: int | None) -> int:
    value = priority or 0
    if not -(2**31) <= value < 2**31:
        raise InvalidArgument("priority", "a 32-bit integer")
    return value


def require_stacking(stacking: Stacking | None) -> Stacking:
    if stacking is None:
        raise InvalidArgument("stacking", "required")
    return stacking


def check_usage_limit(
    unit: LimitUnit | None, limit: int | None, period: LimitPeriod | None
) -> UsageLimit | None:
    """No limit when none of the three is given; otherwise unit and limit are required and
    the period defaults to the whole offer."""
    if unit is None and limit is None and period is None:
        return None
    if unit is None:
        raise InvalidArgument("limit_unit", "required with a usage limit")
    if limit is None:
        raise InvalidArgument("limit_value", "required with a usage limit")
    if not 0 < limit <= MAX_USAGE_LIMIT:
        raise InvalidArgument("limit_value", "from 1 to 10^12")
    return UsageLimit(unit, limit, period or LimitPeriod.OFFER)


# --- builders ----------------------------------------------------------------------------------


def member_profile(
    *,
    member_id: str | None = None,
    card_numbers: Sequence[str] | None = None,
    birth_date: date | None = None,
    gender: Gender | None = None,
    segment_tags: Sequence[str] | None = None,
    active: bool | None = None,
) -> MemberProfile:
    return MemberProfile(
        member_id=require_key(member_id, "member_id"),
        card_numbers=key_list(card_numbers, "card_numbers", limits.CARD),
        birth_date=birth_date,
        gender=gender,
        segment_tags=frozenset(key_list(segment_tags, "segment_tags", unique=False)),
        active=True if active is None else active,
    )


def card_change(*, member_id: str, card_number: str, active: bool) -> CardChange:
    return CardChange(
        member_id=require_key(member_id, "member_id"),
        card_number=require_key(card_number, "card_number", limits.CARD),
        active=active,
    )


def favorite_categories(
    *,
    member_id: str | None = None,
    offer_id: str | None = None,
    name: str | None = None,
    group_ids: Sequence[str] | None = None,
    benefit_kind: BenefitKind | None = None,
    benefit_value: int | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    max_count: int | None = None,
    acceptance_required: bool | None = None,
    frequency: Frequency | None = None,
    every_n_days: int | None = None,
    priority: int | None = None,
    stacking: Stacking | None = None,
) -> FavoriteCategories:
    """Without acceptance every offered group applies and max_count defaults to their
    number; with acceptance max_count (at least 1) and a frequency are required."""
    member = require_key(member_id, "member_id")
    offer = require_key(offer_id, "offer_id")
    title = require_name(name)
    groups = key_list(group_ids, "group_ids")
    if not groups:
        raise InvalidArgument("group_ids", "at least one category (product group) to offer")
    benefit = check_benefit(benefit_kind, benefit_value)
    check_validity(valid_from, valid_to)
    acceptance = bool(acceptance_required)
    if max_count is not None and max_count < 0:
        raise InvalidArgument("max_count", "must not be negative")
    if not max_count:
        if acceptance:
            raise InvalidArgument("max_count", "at least 1 when acceptance_required is on")
        max_count = len(groups)
    if max_count > MAX_ITEMS:
        raise InvalidArgument("max_count", f"at most {MAX_ITEMS}")
    chosen_frequency, n = check_frequency(frequency, every_n_days, required=acceptance)
    terms = FavoriteCategoryTerms(
        offer_id=offer,
        name=title,
        group_ids=groups,
        benefit=benefit,
        max_count=max_count,
        acceptance_required=acceptance,
        valid_from=valid_from,
        valid_to=valid_to,
        frequency=chosen_frequency,
        every_n_days=n,
        priority=check_priority(priority),
        stacking=require_stacking(stacking),
    )
    return FavoriteCategories(member, terms)


def personal_offer(
    *,
    member_id: str | None = None,
    offer_id: str | None = None,
    revoke: bool | None = None,
    name: str | None = None,
    skus: Sequence[str] | None = None,
    group_id: str | None = None,
    benefit_kind: BenefitKind | None = None,
    benefit_value: int | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    limit_unit: LimitUnit | None = None,
    limit_value: int | None = None,
    limit_period: LimitPeriod | None = None,
    priority: int | None = None,
    stacking: Stacking | None = None,
) -> PersonalOfferGrant:
    """An offer on SKUs, a product group or both; a revocation needs only the two ids."""
    member = require_key(member_id, "member_id")
    offer = require_key(offer_id, "offer_id")
    if revoke:
        return PersonalOfferGrant(member, offer, None)
    title = require_name(name)
    sku_set = key_list(skus, "skus", unique=False)
    group = require_key(group_id, "group_id") if group_id else None
    if not sku_set and group is None:
        raise InvalidArgument("skus", "give SKUs, a group_id, or both")
    benefit = check_benefit(benefit_kind, benefit_value)
    check_validity(valid_from, valid_to)
    terms = PersonalOffer(
        offer_id=offer,
        name=title,
        benefit=benefit,
        skus=frozenset(sku_set),
        group_id=group,
        valid_from=valid_from,
        valid_to=valid_to,
        usage_limit=check_usage_limit(limit_unit, limit_value, limit_period),
        priority=check_priority(priority),
        stacking=require_stacking(stacking),
    )
    return PersonalOfferGrant(member, offer, terms)
