"""AttributeRow messages (ImportCustomerAttributes) to records and back.

Incoming rows go through the same builders as file rows, so a rejected row names the same
field either way (`benefit_kind`, `valid_to`, `limit_unit`). On the wire UNSPECIFIED enums
are rejected where a file may leave the value empty (stacking; the period of a usage limit);
the selection frequency may stay UNSPECIFIED only when acceptance is off (it does not
matter then). A row's line_number 0 means "its position in the stream" (the first row is 1).
A Timestamp outside its valid range (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z,
nanos 0 to 999,999,999) rejects its row, naming the field; the rest of the stream goes on.

Outgoing rows (loyalty-import --target) carry every value explicitly; a row the file reader
rejected is sent as an AttributeRow with only its line number, which the server counts as
rejected, so the server's counts match the file.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, TypeVar

from loyalty.v1 import backoffice_pb2, common_pb2
from service.api import convert
from service.api.convert import (
    BENEFIT_KIND,
    FREQUENCY,
    GENDER,
    LIMIT_PERIOD,
    LIMIT_UNIT,
    STACKING,
    EnumMap,
)
from service.engine.attributes import (
    AttributeRecord,
    FavoriteCategories,
    MemberProfile,
    PersonalOfferGrant,
)
from service.errors import InvalidArgument
from service.imports import records
from service.imports.records import ParsedRow
from service.store.import_repo import ImportState

E = TypeVar("E", bound=enum.Enum)
AttributeRow = backoffice_pb2.AttributeRow


def _enum(enum_map: EnumMap[E], number: int, field: str) -> E | None:
    if number == 0:
        return None
    found = enum_map.to_model.get(number)
    if found is None:
        raise InvalidArgument(field, f"unknown value {number}")
    return found


def _required_enum(enum_map: EnumMap[E], number: int, field: str) -> E:
    found = _enum(enum_map, number, field)
    if found is None:
        raise InvalidArgument(field, "must be set (UNSPECIFIED is not a value)")
    return found


def _moment(validity: common_pb2.Validity, field: str) -> datetime | None:
    """A Timestamp within its own valid range (which a datetime holds), to the microsecond."""
    if not validity.HasField(field):
        return None
    stamp = getattr(validity, field)
    if not convert.MIN_SECONDS <= stamp.seconds <= convert.MAX_SECONDS:
        raise InvalidArgument(field, f"must be a time {records.TIME_RANGE}")  # as a file's
    return convert.to_datetime(stamp, field)


def _birth_date(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            "birth_date", f"must be a date YYYY-MM-DD, not {records.quoted(text)}"
        ) from None


# --- proto -> record ---------------------------------------------------------------------------


def row_from_proto(row: backoffice_pb2.AttributeRow, ordinal: int) -> ParsedRow:
    """The record a row carries, or why it is rejected; `ordinal` is its position (from 1)."""
    line_number = row.line_number or ordinal
    try:
        return ParsedRow(line_number, record=_record(row))
    except InvalidArgument as error:
        return records.rejected(line_number, error)


def _record(row: backoffice_pb2.AttributeRow) -> AttributeRecord:
    which = row.WhichOneof("row")
    if which == "member_profile":
        return _profile(row.member_profile)
    if which == "favorite_categories":
        return _categories(row.favorite_categories)
    if which == "personal_offer":
        return _personal_offer(row.personal_offer)
    raise InvalidArgument("type", "the row carries no record")


def _profile(p: backoffice_pb2.MemberProfileRow) -> MemberProfile:
    return records.member_profile(
        member_id=p.member_id,
        card_numbers=list(p.card_numbers),
        birth_date=_birth_date(p.birth_date),
        gender=_enum(GENDER, p.gender, "gender"),
        segment_tags=list(p.segment_tags),
        active=not p.inactive,
    )


def _categories(c: backoffice_pb2.FavoriteCategoriesRow) -> FavoriteCategories:
    return records.favorite_categories(
        member_id=c.member_id,
        offer_id=c.offer_id,
        name=c.name,
        group_ids=list(c.group_ids),
        benefit_kind=_enum(BENEFIT_KIND, c.benefit.kind, "benefit_kind"),
        benefit_value=c.benefit.value,
        valid_from=_moment(c.validity, "valid_from"),
        valid_to=_moment(c.validity, "valid_to"),
        max_count=c.max_count,
        acceptance_required=c.acceptance_required,
        frequency=_enum(FREQUENCY, c.frequency, "frequency"),
        every_n_days=c.every_n_days,
        priority=c.priority,
        stacking=_enum(STACKING, c.stacking, "stacking"),
    )


def _personal_offer(o: backoffice_pb2.PersonalOfferRow) -> PersonalOfferGrant:
    if o.revoke:
        return records.personal_offer(member_id=o.member_id, offer_id=o.offer_id, revoke=True)
    limit: dict[str, Any] = {}
    if o.HasField("usage_limit"):
        limit = {
            "limit_unit": _enum(LIMIT_UNIT, o.usage_limit.unit, "limit_unit"),
            "limit_value": o.usage_limit.limit,
            "limit_period": _enum(LIMIT_PERIOD, o.usage_limit.period, "limit_period"),
        }
    grant = records.personal_offer(
        member_id=o.member_id,
        offer_id=o.offer_id,
        name=o.name,
        skus=list(o.skus),
        group_id=o.group_id or None,
        benefit_kind=_enum(BENEFIT_KIND, o.benefit.kind, "benefit_kind"),
        benefit_value=o.benefit.value,
        valid_from=_moment(o.validity, "valid_from"),
        valid_to=_moment(o.validity, "valid_to"),
        priority=o.priority,
        stacking=_enum(STACKING, o.stacking, "stacking"),
        **limit,
    )
    if limit and limit["limit_period"] is None:  # a file may leave it empty; the wire may not
        _required_enum(LIMIT_PERIOD, o.usage_limit.period, "limit_period")
    return grant


def stream_rows(
    messages: Iterator[backoffice_pb2.ImportCustomerAttributesRequest], skip: int
) -> Iterator[ParsedRow]:
    """The rows after the header, as parsed rows; the first `skip` are passed over unread
    (a resumed import)."""
    ordinal = 0
    for message in messages:
        if message.WhichOneof("item") != "row":
            raise InvalidArgument("row", "after the header every message must carry a row")
        ordinal += 1
        if ordinal <= skip:
            continue
        yield row_from_proto(message.row, ordinal)


def fill_import_status(out: backoffice_pb2.ImportStatus, state: ImportState) -> None:
    out.import_id = state.import_id
    out.state = state.status
    out.rows_total = state.rows_total
    out.rows_applied = state.rows_applied
    out.rows_rejected = state.rows_rejected
    out.started_at.FromDatetime(state.started_at)
    if state.finished_at is not None:
        out.finished_at.FromDatetime(state.finished_at)


# --- record -> proto ---------------------------------------------------------------------------


def row_to_proto(parsed: ParsedRow) -> backoffice_pb2.AttributeRow:
    """The row to send for a parsed row; a rejected one goes as a bare line number."""
    row = backoffice_pb2.AttributeRow(line_number=parsed.line_number)
    record = parsed.record
    if isinstance(record, MemberProfile):
        _fill_profile(row.member_profile, record)
    elif isinstance(record, FavoriteCategories):
        _fill_categories(row.favorite_categories, record)
    elif isinstance(record, PersonalOfferGrant):
        _fill_personal_offer(row.personal_offer, record)
    return row


def _fill_profile(out: backoffice_pb2.MemberProfileRow, p: MemberProfile) -> None:
    out.member_id = p.member_id
    out.card_numbers.extend(p.card_numbers)
    if p.birth_date is not None:
        out.birth_date = p.birth_date.isoformat()
    if p.gender is not None:
        out.gender = GENDER.to_proto[p.gender]
    out.segment_tags.extend(sorted(p.segment_tags))
    out.inactive = not p.active


def _fill_categories(out: backoffice_pb2.FavoriteCategoriesRow, c: FavoriteCategories) -> None:
    t = c.terms
    out.member_id = c.member_id
    out.offer_id = t.offer_id
    out.name = t.name
    out.group_ids.extend(t.group_ids)
    convert.fill_benefit(out.benefit, t.benefit)
    convert.fill_validity(out.validity, t.valid_from, t.valid_to)
    out.max_count = t.max_count
    out.acceptance_required = t.acceptance_required
    out.frequency = FREQUENCY.to_proto[t.frequency]
    out.every_n_days = t.every_n_days
    out.priority = t.priority
    out.stacking = STACKING.to_proto[t.stacking]


def _fill_personal_offer(out: backoffice_pb2.PersonalOfferRow, g: PersonalOfferGrant) -> None:
    out.member_id = g.member_id
    out.offer_id = g.offer_id
    offer = g.offer
    if offer is None:
        out.revoke = True
        return
    out.name = offer.name
    out.skus.extend(sorted(offer.skus))
    out.group_id = offer.group_id or ""
    convert.fill_benefit(out.benefit, offer.benefit)
    convert.fill_validity(out.validity, offer.valid_from, offer.valid_to)
    if offer.usage_limit is not None:
        convert.fill_usage_limit(out.usage_limit, offer.usage_limit)
    out.priority = offer.priority
    out.stacking = STACKING.to_proto[offer.stacking]
