"""Reading customer-attribute files: CSV and JSON Lines, streamed, one ParsedRow per row.

Both formats have the same flat fields (docs/imports.md): `type`, `member_id`, then the
fields of the row's kind. A field that does not belong to the row's kind must be empty.

- CSV: UTF-8 (a BOM is allowed), comma-separated, a header row naming the columns (any
  order, any subset that includes `type` and `member_id`); lists are `|`-separated; empty
  means "not given". Line numbers count physical lines, the header is line 1; a row that
  spans lines (a quoted newline) is reported at the line it starts on.
- JSON Lines: one object per line; lists are arrays (a `|`-separated string is accepted
  too); null, "" or a missing key mean "not given". Blank lines are skipped.

Values: integers as digits; booleans true/false (also 1/0, yes/no); enums by name, with or
without the proto prefix (PERCENT or BENEFIT_KIND_PERCENT); dates YYYY-MM-DD; times ISO 8601
with an offset (2026-03-01T00:00:00+03:00, or Z), or a bare date meaning 00:00 in the
program's time zone; in UTC from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z (what a
datetime holds: 0001-01-01 in Moscow is before that).

Memory stays flat in the file size: the file is read line by line and rows are yielded one
at a time; `bytes_read` tells how far the reader got, for progress.

A row that cannot be read is rejected alone, with its line number and a short reason, and
the reader goes on: a line that is not UTF-8, not JSON, not a JSON object, nested deeper than
the decoder goes, a number of more than 64 digits (a JSON number may be an id) or NaN; a
CSV record with a stray quote or the wrong number of columns. A row is at most
MAX_ROW_BYTES (64 KiB, line break included; a CSV record counts all the lines it spans): a
longer one is rejected, and read past in blocks of that size, so a line of gigabytes costs
time but no memory.
"""

from __future__ import annotations

import csv
import enum
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

from service import limits
from service.engine.attributes import AttributeRecord
from service.engine.model import (
    BenefitKind,
    Frequency,
    Gender,
    LimitPeriod,
    LimitUnit,
    Stacking,
)
from service.errors import InvalidArgument
from service.imports import records
from service.imports.records import ParsedRow, RowKind

E = TypeVar("E", bound=enum.Enum)

LIST_SEPARATOR = "|"
CSV_FORMAT = "csv"
JSONL_FORMAT = "jsonl"
FORMATS = (CSV_FORMAT, JSONL_FORMAT)

PROFILE_FIELDS = ("card_numbers", "birth_date", "gender", "segment_tags", "active")
CATEGORY_FIELDS = (
    "offer_id",
    "name",
    "group_ids",
    "benefit_kind",
    "benefit_value",
    "valid_from",
    "valid_to",
    "max_count",
    "acceptance_required",
    "frequency",
    "every_n_days",
    "priority",
    "stacking",
)
PERSONAL_OFFER_FIELDS = (
    "offer_id",
    "name",
    "skus",
    "group_id",
    "benefit_kind",
    "benefit_value",
    "valid_from",
    "valid_to",
    "limit_unit",
    "limit_value",
    "limit_period",
    "priority",
    "stacking",
    "revoke",
)
FIELDS_BY_KIND: dict[RowKind, tuple[str, ...]] = {
    RowKind.MEMBER_PROFILE: ("member_id", *PROFILE_FIELDS),
    RowKind.FAVORITE_CATEGORIES: ("member_id", *CATEGORY_FIELDS),
    RowKind.PERSONAL_OFFER: ("member_id", *PERSONAL_OFFER_FIELDS),
}
ALL_FIELDS: tuple[str, ...] = (
    "type",
    *dict.fromkeys(f for fields in FIELDS_BY_KIND.values() for f in fields),
)
DEFAULT_STACKING = Stacking.EXCLUSIVE

MAX_ROW_BYTES = 64 * 1024  # one row; 1,000 SKUs of 13 digits take a quarter of it
ROW_TOO_LONG = "longer than 64 KiB"
JSON_DIGITS = limits.ID  # a JSON number may be an id: "card_numbers": [2000000000001]
INTEGER_DIGITS = 19  # every integer field fits in 64 bits

_INTEGER = re.compile(r"^[+-]?\d{1,19}$")
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


class FileFormatError(ValueError):
    """The file as a whole cannot be read (no header, unknown columns); nothing is imported."""


def format_of(path: Path, given: str | None = None) -> str:
    """The format named, or the one the file name says (.csv; .jsonl, .ndjson, .json)."""
    if given:
        if given not in FORMATS:
            raise FileFormatError(f"unknown format {records.quoted(given)}: use csv or jsonl")
        return given
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz",)]
    if suffixes and suffixes[-1] == ".csv":
        return CSV_FORMAT
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson", ".json"):
        return JSONL_FORMAT
    raise FileFormatError(f"cannot tell the format of {path.name}: pass --format csv|jsonl")


# --- values ----------------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _text(value: Any, field: str) -> str | None:
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    raise InvalidArgument(field, "must be a string")


def _integer(value: Any, field: str) -> int | None:
    if type(value) is str:
        text = value.strip()
        if len(text) <= INTEGER_DIGITS and text.isascii() and text.isdigit():
            return int(text)
        if not text:
            return None
        if _INTEGER.match(text):
            return int(text)
        if text.lstrip("+-").isdigit():  # int() of thousands of digits is slow, or refused
            raise InvalidArgument(field, f"an integer of at most {INTEGER_DIGITS} digits")
    elif value is None:
        return None
    elif type(value) is int:
        return value
    raise InvalidArgument(field, f"must be an integer, not {records.quoted(value)}")


_BOOLEANS = {text: True for text in _TRUE} | {text: False for text in _FALSE}


def _boolean(value: Any, field: str) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        found = _BOOLEANS.get(value)
        if found is None:
            found = _BOOLEANS.get(value.strip().lower())
        if found is not None:
            return found
        if not value.strip():
            return None
    raise InvalidArgument(field, f"must be true or false, not {records.quoted(value)}")


def _list(value: Any, field: str) -> list[str] | None:
    """A list: a JSON array of strings, or text with items separated by `|`."""
    if type(value) is str:
        if LIST_SEPARATOR not in value:
            item = value.strip()
            return [item] if item else None
        items = [part.strip() for part in value.split(LIST_SEPARATOR)]
        return [item for item in items if item] or None
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidArgument(field, "must be a list")
    found: list[str] = []
    for index, part in enumerate(value):
        text = _text(part, f"{field}[{index}]")
        if text is not None:
            found.append(text)
    return found or None


def _date(value: Any, field: str) -> date | None:
    text = _text(value, field)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            field, f"must be a date YYYY-MM-DD, not {records.quoted(text)}"
        ) from None


def _cached(parse: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """The same text parses to the same value: dates, times and enum names repeat across
    millions of rows, so remember them (a bounded dict; only text values, only successes)."""
    memo: dict[str, Any] = {}

    def cached(value: Any, field: str) -> Any:
        if isinstance(value, str):
            found = memo.get(value, memo)
            if found is not memo:
                return found
            result = parse(value, field)
            if len(memo) < 50_000:
                memo[value] = result
            return result
        return parse(value, field)

    return cached


def _enum_parser(enum_class: type[E], prefix: str) -> Callable[[Any, str], E | None]:
    names = {member.name: member for member in enum_class}
    names.update({f"{prefix}_{member.name}": member for member in enum_class})
    choices = " | ".join(member.name for member in enum_class)

    def parse(value: Any, field: str) -> E | None:
        found = names.get(value) if type(value) is str else None
        if found is not None:  # the usual case: the exact name
            return found
        text = _text(value, field)
        if text is None:
            return None
        found = names.get(text.upper())
        if found is None:
            raise InvalidArgument(field, f"must be one of {choices}, not {records.quoted(text)}")
        return found

    return parse


_KINDS = {kind.value: kind for kind in RowKind}


def _kind(value: Any) -> RowKind:
    found = _KINDS.get(value) if type(value) is str else None
    if found is not None:
        return found
    text = _text(value, "type")
    if text is None:
        raise InvalidArgument("type", "required: member_profile | favorite_categories | ...")
    found = _KINDS.get(text.lower())
    if found is None:
        raise InvalidArgument(
            "type",
            f"{records.quoted(text)} is not member_profile, favorite_categories or personal_offer",
        )
    return found


def _build(kind: RowKind, typed: dict[str, Any]) -> AttributeRecord:
    if kind is RowKind.MEMBER_PROFILE:
        return records.member_profile(**typed)
    typed.setdefault("stacking", DEFAULT_STACKING)
    if kind is RowKind.FAVORITE_CATEGORIES:
        return records.favorite_categories(**typed)
    return records.personal_offer(**typed)


def _foreign(field: str, kind: RowKind) -> InvalidArgument:
    return InvalidArgument(field, f"not a field of {kind} rows; leave it empty")


CsvRowParser = Callable[[list[str], int], ParsedRow]


class ValueParser:
    """Typed values from raw ones (CSV text or JSON values); times need the program zone."""

    def __init__(self, time_zone: str) -> None:
        self.zone = ZoneInfo(time_zone)
        self._by_field: dict[str, Callable[[Any, str], Any]] = {
            "member_id": _text,
            "offer_id": _text,
            "name": _text,
            "group_id": _text,
            "card_numbers": _list,
            "segment_tags": _list,
            "group_ids": _list,
            "skus": _list,
            "birth_date": _cached(_date),
            "valid_from": _cached(self._moment),
            "valid_to": _cached(self._moment),
            "gender": _enum_parser(Gender, "GENDER"),
            "benefit_kind": _enum_parser(BenefitKind, "BENEFIT_KIND"),
            "frequency": _enum_parser(Frequency, "SELECTION_FREQUENCY"),
            "stacking": _enum_parser(Stacking, "STACKING"),
            "limit_unit": _enum_parser(LimitUnit, "USAGE_LIMIT_UNIT"),
            "limit_period": _enum_parser(LimitPeriod, "USAGE_LIMIT_PERIOD"),
            "benefit_value": _integer,
            "max_count": _integer,
            "every_n_days": _integer,
            "priority": _integer,
            "limit_value": _integer,
            "active": _boolean,
            "acceptance_required": _boolean,
            "revoke": _boolean,
        }
        self._allowed = {kind: frozenset(fields) for kind, fields in FIELDS_BY_KIND.items()}

    def _moment(self, value: Any, field: str) -> datetime | None:
        text = _text(value, field)
        if text is None:
            return None
        try:
            if len(text) == 10:
                moment = datetime.combine(date.fromisoformat(text), time(0), tzinfo=self.zone)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidArgument(
                field, f"must be an ISO 8601 time, not {records.quoted(text)}"
            ) from None
        if moment.tzinfo is None:
            raise InvalidArgument(field, "needs a UTC offset (Z or +03:00), or give a date only")
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # the offset takes it before year 1 or after 9999 in UTC
            raise InvalidArgument(field, f"must be a time {records.TIME_RANGE}") from None

    def parse_row(self, values: Mapping[str, Any], line_number: int) -> ParsedRow:
        """A raw row (field -> raw value, e.g. a JSON object) as a record, or as the reason
        it is rejected."""
        try:
            kind = _kind(values.get("type"))
            allowed = self._allowed[kind]
            typed: dict[str, Any] = {}
            for field, raw in values.items():
                if field == "type" or _blank(raw):
                    continue
                if field not in allowed:
                    if field in self._by_field:
                        raise _foreign(field, kind)
                    raise InvalidArgument(records.field_name(field), "unknown field")
                value = self._by_field[field](raw, field)
                if value is not None:
                    typed[field] = value
            return ParsedRow(line_number, record=_build(kind, typed))
        except InvalidArgument as error:
            return records.rejected(line_number, error)

    def csv_row_parser(self, header: list[str]) -> CsvRowParser:
        """A parser of CSV rows under this header: per kind, the columns to read (with their
        value parser) and the columns that must be empty, worked out once."""
        type_index = header.index("type")
        plans: dict[RowKind, tuple[list[tuple[str, int, Any]], list[int]]] = {}
        for kind, allowed in self._allowed.items():
            reads = [(f, header.index(f), self._by_field[f]) for f in allowed if f in header]
            empty = [i for i, f in enumerate(header) if f != "type" and f not in allowed]
            plans[kind] = (reads, empty)

        def parse(values: list[str], line_number: int) -> ParsedRow:
            try:
                kind = _kind(values[type_index])
                reads, empty = plans[kind]
                for index in empty:
                    if values[index] and not values[index].isspace():
                        raise _foreign(header[index], kind)
                typed: dict[str, Any] = {}
                for field, index, parse_value in reads:
                    raw = values[index]
                    if raw:
                        value = parse_value(raw, field)
                        if value is not None:
                            typed[field] = value
                return ParsedRow(line_number, record=_build(kind, typed))
            except InvalidArgument as error:
                return records.rejected(line_number, error)

        return parse


# --- files -------------------------------------------------------------------------------------


class _RowTooLong(Exception):
    """The row being read went over MAX_ROW_BYTES; the reader has passed over the rest of it."""


class _CountedLines:
    """Text lines of a binary file, counting bytes and lines read, each row bounded.

    A line that is not UTF-8 is decoded with replacement characters and remembered
    (`last_bad_line`), so its row can be rejected. A row longer than MAX_ROW_BYTES raises
    _RowTooLong, once the rest of it has been read past in bounded blocks: the rest of the
    line and, for CSV (`quoted`), while the row's double quotes do not pair up (a quoted
    field goes on), the lines after. The caller says where each row starts (`start_row`).
    """

    def __init__(self, stream: IO[bytes], *, quoted: bool = False) -> None:
        self._stream = stream
        self._quoted = quoted
        self.bytes_read = 0
        self.line_number = 0
        self.last_bad_line = 0
        self._row_bytes = 0
        self._row_quotes = 0

    def start_row(self) -> None:
        self._row_bytes = self._row_quotes = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self._stream.readline(MAX_ROW_BYTES + 1)
        if not raw:
            raise StopIteration
        self.line_number += 1
        self.bytes_read += len(raw)
        self._row_bytes += len(raw)
        if self._quoted:
            self._row_quotes += raw.count(b'"')
        if self._row_bytes > MAX_ROW_BYTES:
            self._pass_over_row(raw)
            raise _RowTooLong
        if self.line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.last_bad_line = self.line_number
            return raw.decode("utf-8", errors="replace")

    def _pass_over_row(self, raw: bytes) -> None:
        """Read to the end of the row that `raw` is part of, keeping nothing of it."""
        while True:
            line_ended = raw.endswith(b"\n")
            if line_ended and not (self._quoted and self._row_quotes % 2):
                return
            raw = self._stream.readline(MAX_ROW_BYTES)
            if not raw:
                return
            if line_ended:
                self.line_number += 1
            self.bytes_read += len(raw)
            if self._quoted:
                self._row_quotes += raw.count(b'"')


class _Unreadable(ValueError):
    """A JSON line that the decoder refuses to turn into values."""


def _json_integer(digits: str) -> int:
    if len(digits.lstrip("-")) > JSON_DIGITS:
        raise _Unreadable(f"a number of more than {JSON_DIGITS} digits")
    return int(digits)


def _json_constant(name: str) -> Any:
    raise _Unreadable(f"not valid JSON: {name} is not a JSON value")


# Python's decoder also takes NaN and Infinity, and ints of any length (slowly, then not at all)
_JSON = json.JSONDecoder(parse_int=_json_integer, parse_constant=_json_constant)


def _json_object(text: str) -> dict[str, Any]:
    """The object on a JSON line, or _Unreadable with the reason."""
    try:
        values = _JSON.decode(text)
    except _Unreadable:
        raise
    except json.JSONDecodeError as error:
        raise _Unreadable(f"not valid JSON: {error.msg}") from None
    except RecursionError:  # the C decoder checks its depth: nothing is left half-done
        raise _Unreadable("not valid JSON: nested too deeply") from None
    if not isinstance(values, dict):
        raise _Unreadable("each line must be a JSON object")
    return values


class AttributeFile:
    """A CSV or JSON Lines file of attribute rows. `rows(skip)` yields ParsedRow for every
    row but blank lines, skipping the first `skip` rows unparsed (a resumed import)."""

    def __init__(self, path: Path, time_zone: str, file_format: str | None = None) -> None:
        self.path = path
        self.format = format_of(path, file_format)
        self.size = path.stat().st_size
        self.parser = ValueParser(time_zone)
        self._lines: _CountedLines | None = None
        self.header: list[str] = []
        if self.format == CSV_FORMAT:
            self.header = self._read_header()

    def _read_header(self) -> list[str]:
        """The CSV header, checked before anything is imported (FileFormatError)."""
        with self.path.open("rb") as stream:
            reader = csv.reader(_CountedLines(stream, quoted=True), strict=True)
            try:
                header = [name.strip().lower() for name in next(reader)]
            except StopIteration:
                raise FileFormatError("the file is empty: a CSV file needs a header") from None
            except _RowTooLong:
                raise FileFormatError(f"line 1: the header is {ROW_TOO_LONG}") from None
            except csv.Error as error:
                raise FileFormatError(f"line 1: {error}") from None
        check_header(header)
        return header

    @property
    def bytes_read(self) -> int:
        return self._lines.bytes_read if self._lines is not None else 0

    def rows(self, skip: int = 0) -> Iterator[ParsedRow]:
        with self.path.open("rb") as stream:
            self._lines = _CountedLines(stream, quoted=self.format == CSV_FORMAT)
            if self.format == CSV_FORMAT:
                yield from self._csv_rows(self._lines, skip)
            else:
                yield from self._jsonl_rows(self._lines, skip)

    def _csv_rows(self, lines: _CountedLines, skip: int) -> Iterator[ParsedRow]:
        reader = csv.reader(lines, strict=True)
        next(reader, None)
        width = len(self.header)
        parse = self.parser.csv_row_parser(self.header)
        while True:
            lines.start_row()
            start = lines.line_number + 1
            values: list[str] = []
            try:
                values = next(reader)
                problem = ""
            except StopIteration:
                return
            except _RowTooLong:
                problem = ROW_TOO_LONG
            except csv.Error as error:  # a stray quote: this row only; the reader goes on
                problem = f"not valid CSV: {error}"
            if not problem and (not values or (len(values) == 1 and not values[0].strip())):
                continue  # a blank line
            if skip:
                skip -= 1
                continue
            if problem:
                yield _reject(start, "", problem)
            elif lines.last_bad_line >= start:
                yield _reject(start, "", "not valid UTF-8")
            elif len(values) != width:
                yield _reject(start, "", f"{len(values)} columns where the header has {width}")
            else:
                yield parse(values, start)

    def _jsonl_rows(self, lines: _CountedLines, skip: int) -> Iterator[ParsedRow]:
        parse = self.parser.parse_row
        while True:
            lines.start_row()
            try:
                text: str | None = next(lines)
            except StopIteration:
                return
            except _RowTooLong:
                text = None
            if text is not None and not text.strip():
                continue
            if skip:
                skip -= 1
                continue
            number = lines.line_number
            if text is None:
                yield _reject(number, "", ROW_TOO_LONG)
            elif lines.last_bad_line == number:
                yield _reject(number, "", "not valid UTF-8")
            else:
                try:
                    values = _json_object(text)
                except _Unreadable as error:
                    yield _reject(number, "", str(error))
                else:
                    yield parse(values, number)


def check_header(header: list[str]) -> None:
    known = set(ALL_FIELDS)
    unknown = [name for name in header if name not in known]
    if unknown:
        shown = ", ".join(records.field_name(name) for name in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise FileFormatError(f"unknown columns: {shown}{more}")
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise FileFormatError(f"columns named twice: {', '.join(duplicates)}")
    for required in ("type", "member_id"):
        if required not in header:
            raise FileFormatError(f"the header needs a {required!r} column")


def _reject(line_number: int, field: str, reason: str) -> ParsedRow:
    return ParsedRow(line_number, error=records.RowError(line_number, field, reason))
