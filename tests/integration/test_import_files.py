"""Reading attribute files: CSV and JSON Lines rows become records, bad rows become reasons
with their line numbers, and the protobuf rows of the streaming RPC say the same."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.v1 import backoffice_pb2, common_pb2
from service.api.import_rows import row_from_proto, row_to_proto
from service.engine.attributes import (
    FavoriteCategories,
    MemberProfile,
    PersonalOfferGrant,
)
from service.engine.model import (
    Benefit,
    BenefitKind,
    Frequency,
    Gender,
    LimitPeriod,
    LimitUnit,
    Stacking,
    UsageLimit,
)
from service.imports.files import ALL_FIELDS, AttributeFile, FileFormatError

ZONE = "Europe/Moscow"

PROFILE = {
    "type": "member_profile",
    "member_id": "M1",
    "card_numbers": ["2000000000001", "2000000000002"],
    "birth_date": "1980-05-01",
    "gender": "FEMALE",
    "segment_tags": ["pensioner", "vip"],
    "active": True,
}
CATEGORIES = {
    "type": "favorite_categories",
    "member_id": "M1",
    "offer_id": "C-MONTH",
    "name": "Your categories",
    "group_ids": ["G-DAIRY", "G-BAKERY", "G-MEAT"],
    "benefit_kind": "PERCENT",
    "benefit_value": 1000,
    "valid_from": "2026-03-01",
    "valid_to": "2026-04-01T00:00:00+03:00",
    "max_count": 2,
    "acceptance_required": True,
    "frequency": "EVERY_N_DAYS",
    "every_n_days": 10,
    "priority": 5,
    "stacking": "COMBINABLE",
}
PERSONAL = {
    "type": "personal_offer",
    "member_id": "M1",
    "offer_id": "P-COFFEE",
    "name": "Coffee -25 %",
    "skus": ["SKU2", "SKU1"],
    "benefit_kind": "BENEFIT_KIND_PERCENT",
    "benefit_value": 2500,
    "valid_from": "2026-03-01T00:00:00Z",
    "limit_unit": "UNITS",
    "limit_value": 3000,
    "limit_period": "WEEK",
}
REVOKE = {"type": "personal_offer", "member_id": "M1", "offer_id": "P-TEA", "revoke": True}


def csv_value(value: object) -> str:
    if isinstance(value, list):
        return "|".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def write_csv(path: Path, rows: list[dict[str, object]], columns=ALL_FIELDS) -> Path:
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join(csv_value(row.get(c)) for c in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read(path: Path, skip: int = 0) -> list:
    return list(AttributeFile(path, ZONE).rows(skip))


@pytest.fixture(params=["csv", "jsonl"])
def write(request, tmp_path):
    """Writes rows as a file of each format."""

    def write_rows(rows: list[dict[str, object]]) -> Path:
        if request.param == "csv":
            return write_csv(tmp_path / "rows.csv", rows)
        return write_jsonl(tmp_path / "rows.jsonl", rows)

    write_rows.format = request.param  # type: ignore[attr-defined]
    return write_rows


def test_every_kind_of_row_becomes_its_record_with_its_line_number(write):
    path = write([PROFILE, CATEGORIES, PERSONAL, REVOKE])
    rows = read(path)
    first = 2 if write.format == "csv" else 1  # the CSV header is line 1
    assert [r.line_number for r in rows] == [first, first + 1, first + 2, first + 3]
    assert all(r.error is None for r in rows)
    profile, categories, personal, revoke = (r.record for r in rows)
    assert profile == MemberProfile(
        "M1",
        ("2000000000001", "2000000000002"),
        date(1980, 5, 1),
        Gender.FEMALE,
        frozenset({"pensioner", "vip"}),
        True,
    )
    assert isinstance(categories, FavoriteCategories)
    terms = categories.terms
    assert terms.group_ids == ("G-DAIRY", "G-BAKERY", "G-MEAT")
    assert terms.benefit == Benefit(BenefitKind.PERCENT, 1000)
    assert terms.valid_from == datetime(2026, 2, 28, 21, 0, tzinfo=UTC)  # 00:00 Moscow
    assert terms.valid_to == datetime(2026, 3, 31, 21, 0, tzinfo=UTC)
    assert (terms.max_count, terms.acceptance_required) == (2, True)
    assert (terms.frequency, terms.every_n_days) == (Frequency.EVERY_N_DAYS, 10)
    assert (terms.priority, terms.stacking) == (5, Stacking.COMBINABLE)
    assert isinstance(personal, PersonalOfferGrant) and personal.offer is not None
    assert personal.offer.skus == frozenset({"SKU1", "SKU2"})
    assert personal.offer.usage_limit == UsageLimit(LimitUnit.UNITS, 3000, LimitPeriod.WEEK)
    assert personal.offer.stacking is Stacking.EXCLUSIVE  # the default when left empty
    assert revoke == PersonalOfferGrant("M1", "P-TEA", None)


def test_csv_and_json_lines_give_the_same_records(tmp_path):
    rows = [PROFILE, CATEGORIES, PERSONAL, REVOKE]
    from_csv = [r.record for r in read(write_csv(tmp_path / "a.csv", rows))]
    from_jsonl = [r.record for r in read(write_jsonl(tmp_path / "a.jsonl", rows))]
    assert from_csv == from_jsonl


def test_without_acceptance_every_offered_group_counts_and_max_count_defaults_to_all(write):
    row = {**CATEGORIES, "acceptance_required": False, "max_count": None, "frequency": None}
    row.pop("every_n_days")
    (parsed,) = read(write([row]))
    terms = parsed.record.terms
    assert terms.max_count == 3 and not terms.acceptance_required
    assert terms.frequency is Frequency.MONTHLY


TIME_RANGE = "from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z"

BAD_ROWS = [
    ({"type": "member", "member_id": "M1"}, "type", "is not member_profile"),
    ({"type": "member_profile"}, "member_id", "required"),
    ({**PROFILE, "gender": "F"}, "gender", "must be one of FEMALE | MALE | OTHER"),
    ({**PROFILE, "birth_date": "01.05.1980"}, "birth_date", "must be a date YYYY-MM-DD"),
    ({**PROFILE, "card_numbers": ["1", "1"]}, "card_numbers[1]", "listed twice"),
    ({**PROFILE, "card_numbers": ["9" * 33]}, "card_numbers[0]", "at most 32 characters"),
    ({**PROFILE, "active": "maybe"}, "active", "must be true or false"),
    ({**PROFILE, "offer_id": "C-1"}, "offer_id", "not a field of member_profile rows"),
    ({**CATEGORIES, "benefit_kind": "PERCENTAGE"}, "benefit_kind", "must be one of PERCENT"),
    ({**CATEGORIES, "benefit_value": "ten"}, "benefit_value", "must be an integer"),
    ({**CATEGORIES, "benefit_value": 10001}, "benefit_value", "basis points from 1 to 10000"),
    ({**CATEGORIES, "benefit_kind": None}, "benefit_kind", "required"),
    ({**CATEGORIES, "valid_to": "2026-02-30"}, "valid_to", "must be an ISO 8601 time"),
    ({**CATEGORIES, "valid_to": "2026-04-01T00:00:00"}, "valid_to", "needs a UTC offset"),
    ({**CATEGORIES, "valid_to": "2026-02-01"}, "valid_to", "must be after valid_from"),
    ({**CATEGORIES, "group_ids": None}, "group_ids", "at least one category"),
    ({**CATEGORIES, "group_ids": ["G1", "G2", "G1"]}, "group_ids[2]", "listed twice"),
    ({**CATEGORIES, "max_count": None}, "max_count", "at least 1 when acceptance_required"),
    ({**CATEGORIES, "frequency": None}, "frequency", "required when acceptance_required"),
    ({**CATEGORIES, "frequency": "WEEKLY"}, "every_n_days", "only for frequency EVERY_N_DAYS"),
    ({**CATEGORIES, "every_n_days": 0}, "every_n_days", "from 1 to 3660 for EVERY_N_DAYS"),
    ({**CATEGORIES, "skus": ["SKU1"]}, "skus", "not a field of favorite_categories rows"),
    ({**PERSONAL, "skus": None}, "skus", "give SKUs, a group_id, or both"),
    ({**PERSONAL, "name": None}, "name", "required"),
    ({**PERSONAL, "limit_unit": None}, "limit_unit", "required with a usage limit"),
    ({**PERSONAL, "limit_value": 0}, "limit_value", "from 1 to 10^12"),
    ({**PERSONAL, "stacking": "BOTH"}, "stacking", "must be one of EXCLUSIVE | COMBINABLE"),
    ({**PERSONAL, "benefit_kind": "FIXED_PRICE", "benefit_value": -1}, "benefit_value", "price"),
    ({**REVOKE, "offer_id": None}, "offer_id", "required"),
    # times a datetime cannot hold: rejected with the field, never an OverflowError
    ({**CATEGORIES, "valid_from": "99999-01-01"}, "valid_from", "must be an ISO 8601 time"),
    ({**CATEGORIES, "valid_from": "0000-12-31"}, "valid_from", "must be an ISO 8601 time"),
    ({**CATEGORIES, "valid_from": "0001-01-01"}, "valid_from", TIME_RANGE),  # Moscow: +2:30
    ({**CATEGORIES, "valid_from": "0001-01-01T02:59:59+03:00"}, "valid_from", TIME_RANGE),
    ({**CATEGORIES, "valid_to": "9999-12-31T23:30:00-01:00"}, "valid_to", TIME_RANGE),
    ({**PERSONAL, "valid_from": 99999999999999}, "valid_from", "must be an ISO 8601 time"),
    ({**PERSONAL, "valid_to": "+10000-01-01T00:00:00Z"}, "valid_to", "must be an ISO 8601 time"),
    ({**PROFILE, "birth_date": "0000-12-31"}, "birth_date", "must be a date YYYY-MM-DD"),
    ({**PROFILE, "birth_date": "10000-01-01"}, "birth_date", "must be a date YYYY-MM-DD"),
    ({**PROFILE, "birth_date": 99999999}, "birth_date", "must be a date YYYY-MM-DD"),
]


@pytest.mark.parametrize(("row", "field", "reason"), BAD_ROWS)
def test_each_kind_of_bad_row_is_rejected_alone_with_its_line_and_reason(write, row, field, reason):
    path = write([PROFILE, row, PERSONAL])
    good, bad, after = read(path)
    assert good.error is None and after.error is None
    assert bad.record is None
    assert bad.error.line_number == good.line_number + 1 == bad.line_number
    assert bad.error.field == field
    assert reason in bad.error.reason


LONG = "x" * 1000
QUOTING_ROWS = [
    ({"type": LONG, "member_id": "M1"}, "type"),
    ({**PROFILE, "gender": LONG}, "gender"),
    ({**PROFILE, "active": LONG}, "active"),
    ({**PROFILE, "birth_date": LONG}, "birth_date"),
    ({**PROFILE, "card_numbers": [LONG, LONG]}, "card_numbers[1]"),
    ({**CATEGORIES, "group_ids": ["G1", LONG, LONG]}, "group_ids[2]"),
    ({**CATEGORIES, "benefit_value": LONG}, "benefit_value"),
    ({**CATEGORIES, "valid_from": LONG}, "valid_from"),
    ({**CATEGORIES, "frequency": LONG}, "frequency"),
    ({**PERSONAL, "stacking": LONG}, "stacking"),
    ({**PERSONAL, "limit_unit": LONG}, "limit_unit"),
]


def assert_quotes_a_prefix(text: str) -> None:
    """A message quotes at most 32 characters of what the sender sent, and says it cut it."""
    assert "x" * 33 not in text and "x" * 32 + "…" in text, text[:200]
    assert len(text) <= 120, text[:200]


@pytest.mark.parametrize(("row", "field"), QUOTING_ROWS)
def test_a_rejection_quotes_only_a_short_prefix_of_a_long_value(write, row, field):
    (parsed,) = read(write([row]))
    assert parsed.error.field == field
    assert_quotes_a_prefix(parsed.error.reason)


@pytest.mark.parametrize(
    "row",
    [
        {**CATEGORIES, "benefit_value": [LONG] * 10},
        {**PROFILE, "active": {"answer": LONG}},
        {**PROFILE, "gender": 10**60},
    ],
)
def test_a_json_value_of_the_wrong_type_is_quoted_short_too(tmp_path, row):
    (parsed,) = read(write_jsonl(tmp_path / "rows.jsonl", [row]))
    assert parsed.error is not None and len(parsed.error.reason) <= 100


def test_a_made_up_field_name_is_reported_short(tmp_path):
    (parsed,) = read(write_jsonl(tmp_path / "rows.jsonl", [{**PROFILE, LONG: 1}]))
    assert parsed.error.reason == "unknown field"
    assert_quotes_a_prefix(parsed.error.field)
    path = tmp_path / "rows.csv"
    path.write_text(f"type,member_id,{LONG}\n")
    with pytest.raises(FileFormatError) as refused:
        AttributeFile(path, ZONE)
    assert_quotes_a_prefix(str(refused.value))


def test_a_protobuf_row_is_quoted_short_too():
    row = backoffice_pb2.AttributeRow(
        member_profile=backoffice_pb2.MemberProfileRow(member_id="M1", birth_date=LONG)
    )
    parsed = row_from_proto(row, 1)
    assert parsed.error.field == "birth_date"
    assert_quotes_a_prefix(parsed.error.reason)


def test_times_at_the_ends_of_what_a_datetime_holds_are_kept_and_survive_protobuf(write):
    row = {**PERSONAL, "valid_from": "0001-01-01T00:00:00Z"}
    row["valid_to"] = "9999-12-31T23:59:59.999999+00:00"
    (parsed,) = read(write([row]))
    offer = parsed.record.offer
    assert offer.valid_from == datetime(1, 1, 1, tzinfo=UTC)
    assert offer.valid_to == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert row_from_proto(row_to_proto(parsed), 1) == parsed


def test_a_json_line_that_is_not_an_object_or_not_json_is_rejected_with_its_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps(PROFILE) + "\n\n[1, 2]\n{broken\n" + json.dumps({**PROFILE, "x": 1}) + "\n"
    )
    rows = read(path)
    assert [(r.line_number, r.error.reason if r.error else None) for r in rows[:3]] == [
        (1, None),
        (3, "each line must be a JSON object"),
        (4, rows[2].error.reason),
    ]
    assert rows[2].error.reason.startswith("not valid JSON")
    assert (rows[3].line_number, rows[3].error.field) == (5, "x")
    assert rows[3].error.reason == "unknown field"


def test_csv_lines_count_physically_and_a_broken_row_does_not_stop_the_file(tmp_path):
    columns = ("type", "member_id", "segment_tags", "birth_date")
    path = tmp_path / "rows.csv"
    path.write_bytes(
        b"type,member_id,segment_tags,birth_date\n"
        b'member_profile,M1,"a|\nb",1980-01-01\n'  # a quoted newline: one row, two lines
        b"\n"
        b"member_profile,M2\n"  # too few columns
        b'member_profile,M3,"x"y,\n'  # a stray quote
        b"member_profile,M\xff4,,\n"  # not UTF-8
        b"member_profile,M5,,\n"
    )
    assert columns  # the header above, in this order
    rows = read(path)
    summary = [(r.line_number, r.error.reason if r.error else r.record.member_id) for r in rows]
    assert summary[0] == (2, "M1")
    assert rows[0].record.segment_tags == frozenset({"a", "b"})
    assert summary[1] == (5, "2 columns where the header has 4")
    assert summary[2][0] == 6 and summary[2][1].startswith("not valid CSV")
    assert summary[3] == (7, "not valid UTF-8")
    assert summary[4] == (8, "M5")


def test_a_csv_header_with_an_unknown_column_refuses_the_whole_file(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("type,member_id,benfit_kind\nmember_profile,M1,\n")
    with pytest.raises(FileFormatError, match="unknown columns: benfit_kind"):
        AttributeFile(path, ZONE)


def test_a_csv_header_needs_type_and_member_id(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("member_id\nM1\n")
    with pytest.raises(FileFormatError, match="'type'"):
        AttributeFile(path, ZONE)


def test_a_file_of_unknown_extension_needs_a_format(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("")
    with pytest.raises(FileFormatError, match="--format"):
        AttributeFile(path, ZONE)
    assert AttributeFile(path, ZONE, "jsonl").format == "jsonl"


def test_skipping_rows_resumes_after_them_with_the_same_line_numbers(write):
    rows = [PROFILE, CATEGORIES, PERSONAL, REVOKE]
    path = write(rows)
    whole = read(path)
    assert read(path, skip=2) == whole[2:]


def test_progress_counts_the_bytes_read(write):
    path = write([PROFILE] * 50)
    source = AttributeFile(path, ZONE)
    seen = []
    for _ in source.rows():
        seen.append(source.bytes_read)
    assert seen == sorted(seen) and source.bytes_read == path.stat().st_size


# --- the rows of the streaming RPC ---------------------------------------------------------------


def test_records_survive_the_trip_through_protobuf_rows(tmp_path):
    rows = read(write_jsonl(tmp_path / "a.jsonl", [PROFILE, CATEGORIES, PERSONAL, REVOKE]))
    for row in rows:
        assert row_from_proto(row_to_proto(row), 99) == row


def test_a_rejected_file_row_goes_as_a_bare_line_number_that_the_server_rejects():
    from service.imports.records import ParsedRow, RowError

    sent = row_to_proto(ParsedRow(7, error=RowError(7, "gender", "bad")))
    assert sent.WhichOneof("row") is None and sent.line_number == 7
    received = row_from_proto(sent, 1)
    assert received.error.line_number == 7 and received.error.field == "type"


def test_a_protobuf_row_names_the_fields_as_the_file_columns_and_refuses_unspecified_enums():
    row = backoffice_pb2.AttributeRow(
        personal_offer=backoffice_pb2.PersonalOfferRow(
            member_id="M1",
            offer_id="P1",
            name="x",
            skus=["S1"],
            benefit=common_pb2.Benefit(kind=common_pb2.BENEFIT_KIND_PERCENT, value=100),
        )
    )
    parsed = row_from_proto(row, 3)
    assert (parsed.line_number, parsed.error.field) == (3, "stacking")
    row.personal_offer.stacking = common_pb2.STACKING_EXCLUSIVE
    row.personal_offer.usage_limit.unit = common_pb2.USAGE_LIMIT_UNIT_RECEIPTS
    row.personal_offer.usage_limit.limit = 2
    assert row_from_proto(row, 3).error.field == "limit_period"
    row.personal_offer.usage_limit.period = common_pb2.USAGE_LIMIT_PERIOD_DAY
    assert row_from_proto(row, 3).error is None
    row.personal_offer.validity.valid_from.FromDatetime(datetime(2026, 3, 2, tzinfo=UTC))
    row.personal_offer.validity.valid_to.FromDatetime(datetime(2026, 3, 1, tzinfo=UTC))
    assert row_from_proto(row, 3).error.field == "valid_to"


def offer_row(**validity: Timestamp) -> backoffice_pb2.AttributeRow:
    return backoffice_pb2.AttributeRow(
        personal_offer=backoffice_pb2.PersonalOfferRow(
            member_id="M1",
            offer_id="P1",
            name="x",
            skus=["S1"],
            benefit=common_pb2.Benefit(kind=common_pb2.BENEFIT_KIND_PERCENT, value=100),
            stacking=common_pb2.STACKING_EXCLUSIVE,
            validity=common_pb2.Validity(**validity),
        )
    )


def categories_row(**validity: Timestamp) -> backoffice_pb2.AttributeRow:
    return backoffice_pb2.AttributeRow(
        favorite_categories=backoffice_pb2.FavoriteCategoriesRow(
            member_id="M1",
            offer_id="C1",
            name="x",
            group_ids=["G1"],
            benefit=common_pb2.Benefit(kind=common_pb2.BENEFIT_KIND_PERCENT, value=100),
            stacking=common_pb2.STACKING_EXCLUSIVE,
            validity=common_pb2.Validity(**validity),
        )
    )


FIRST_SECOND = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z
OUT_OF_RANGE = [
    (FIRST_SECOND - 1, 0),
    (LAST_SECOND + 1, 0),
    (2**62, 0),
    (2**63 - 1, 0),
    (-(2**63), 0),
    (0, -1),
    (0, 1_000_000_000),
    (LAST_SECOND, 2**31 - 1),
]


@pytest.mark.parametrize("make_row", [offer_row, categories_row], ids=["offer", "categories"])
@pytest.mark.parametrize("field", ["valid_from", "valid_to"])
@pytest.mark.parametrize(("seconds", "nanos"), OUT_OF_RANGE)
def test_a_protobuf_time_a_datetime_cannot_hold_rejects_the_row_naming_the_field(
    make_row, field, seconds, nanos
):
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    parsed = row_from_proto(make_row(**{field: stamp}), 4)
    assert parsed.record is None
    assert (parsed.error.line_number, parsed.error.field) == (4, field)
    assert len(parsed.error.reason) < 100


@pytest.mark.parametrize("make_row", [offer_row, categories_row], ids=["offer", "categories"])
def test_protobuf_times_at_the_ends_of_the_range_are_kept(make_row):
    first = Timestamp(seconds=FIRST_SECOND)
    last = Timestamp(seconds=LAST_SECOND, nanos=999_999_999)
    parsed = row_from_proto(make_row(valid_from=first, valid_to=last), 1)
    assert parsed.error is None
    terms = parsed.record.offer if make_row is offer_row else parsed.record.terms
    assert terms.valid_from == datetime(1, 1, 1, tzinfo=UTC)
    assert terms.valid_to == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize("birth_date", ["0000-12-31", "10000-01-01", "99999-01-01", "1980-02-30"])
def test_a_protobuf_birth_date_out_of_range_rejects_the_row(birth_date):
    row = backoffice_pb2.AttributeRow(
        member_profile=backoffice_pb2.MemberProfileRow(member_id="M1", birth_date=birth_date)
    )
    assert row_from_proto(row, 2).error.field == "birth_date"
