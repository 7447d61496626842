"""Malformed rows in attribute files: whatever is wrong with one row (not JSON, nested
without end, numbers no integer holds, not UTF-8, NUL or lone surrogates, a line of
megabytes, a CSV record that never ends), that row alone is rejected with its line number
and a short reason, the rest of the file applies, and an interrupted import resumes to DONE.
Real files in tmp_path, the real loyalty-import on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from service.imports import cli as importer
from service.imports.files import AttributeFile, FileFormatError
from service.imports.records import ParsedRow
from service.imports.run import AttributeImport
from service.store.db import make_engine, make_session_factory
from service.store.import_repo import load_import
from tests.integration.import_cli import run_cli

ZONE = "Europe/Moscow"
LIMIT = 64 * 1024  # bytes of one row, as documented
SHORT_REASON = 120  # characters: a reason names the problem, it does not repeat the row


def profile(member_id: str) -> bytes:
    return json.dumps({"type": "member_profile", "member_id": member_id}).encode()


def offer_with(raw_field: str) -> bytes:
    """A personal offer row of M0 whose last field is given as raw JSON text."""
    row = {
        "type": "personal_offer",
        "member_id": "M0",
        "offer_id": "P1",
        "name": "Tea",
        "skus": ["S1"],
        "benefit_kind": "PERCENT",
        "benefit_value": 1500,
    }
    return json.dumps(row)[:-1].encode() + b", " + raw_field.encode() + b"}"


# (case, the line, the field at fault, part of the reason)
JSONL_CASES = [
    ("100,000 nested arrays", b"[" * 100_000, "", "longer than 64 KiB"),
    ("60,000 nested arrays", b"[" * 60_000, "", "nested too deeply"),
    ("nested in a value",
     b'{"type": "member_profile", "member_id": "M", "segment_tags": ' + b"[" * 50_000,
     "", "nested too deeply"),
    ("nested and closed", b"[" * 30_000 + b"]" * 30_000, "", "nested too deeply"),
    ("not UTF-8", b'{"type": "member_profile", "member_id": "M\xff\xfe"}', "", "not valid UTF-8"),
    ("an array", b"[1, 2]", "", "each line must be a JSON object"),
    ("a number", b"42", "", "each line must be a JSON object"),
    ("a string", b'"member_profile"', "", "each line must be a JSON object"),
    ("null", b"null", "", "each line must be a JSON object"),
    ("not JSON", b"{broken", "", "not valid JSON"),
    ("a float beyond double", offer_with('"priority": 1e999999'), "priority", "integer"),
    ("an integer of 5000 digits", offer_with('"priority": ' + "9" * 5000), "", "digits"),
    ("a negative one", offer_with('"priority": -' + "9" * 5000), "", "digits"),
    ("5000 digits as text", offer_with('"priority": "' + "9" * 5000 + '"'), "priority", "digits"),
    ("NaN", offer_with('"priority": NaN'), "", "not valid JSON"),
    ("-Infinity", offer_with('"benefit_value": -Infinity'), "", "not valid JSON"),
    ("a lone surrogate", b'{"type": "member_profile", "member_id": "M\\ud800"}', "member_id",
     "control characters"),
    ("a lone surrogate in a list", b'{"type": "member_profile", "member_id": "M", '
     b'"segment_tags": ["ok", "\\udfff"]}', "segment_tags[1]", "control characters"),
    ("a lone surrogate as a key",
     b'{"type": "member_profile", "member_id": "M", "\\udc00x": 1}', "'\\udc00x'",
     "unknown field"),
    ("an escaped NUL", b'{"type": "member_profile", "member_id": "M\\u0000"}', "member_id",
     "control characters"),
    ("a raw NUL", b'{"type": "member_profile", "member_id": "M\x00"}', "", "not valid JSON"),
    ("an escape sequence in a name", offer_with('"priority": 1')
     .replace(b'"Tea"', b'"Tea\\u001b[2J"'), "name", "control characters"),
    ("a line of 5 MB", b'{"type": "member_profile", "member_id": "' + b"x" * 5_000_000 + b'"}',
     "", "longer than 64 KiB"),
]  # fmt: skip
JSONL_IDS = [case[0] for case in JSONL_CASES]


def read(path: Path, skip: int = 0) -> list[ParsedRow]:
    return list(AttributeFile(path, ZONE).rows(skip))


def summary(rows: list[ParsedRow]) -> list[tuple[int, str | None]]:
    return [(r.line_number, r.error.field if r.error else None) for r in rows]


def assert_short(reason: str) -> None:
    assert len(reason) <= SHORT_REASON, reason[:200]


@pytest.mark.parametrize(("line", "field", "reason"), [c[1:] for c in JSONL_CASES], ids=JSONL_IDS)
def test_a_malformed_json_line_is_rejected_alone_with_its_line_number(
    tmp_path, line, field, reason
):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(profile("M0") + b"\n" + line + b"\n" + profile("M1") + b"\n")
    before, bad, after = read(path)
    assert (before.error, after.error) == (None, None)
    assert after.line_number == 3 and after.record is not None
    assert bad.record is None and bad.error is not None
    assert (bad.line_number, bad.error.line_number, bad.error.field) == (2, 2, field)
    assert reason in bad.error.reason
    assert_short(bad.error.reason)


def test_a_gigantic_last_line_without_a_newline_is_rejected_too(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(profile("M0") + b"\n" + b"[" * (3 * LIMIT))
    assert summary(read(path)) == [(1, None), (2, "")]


def test_a_gigantic_line_is_passed_over_without_being_held_in_memory(tmp_path):
    path = tmp_path / "rows.jsonl"
    with path.open("wb") as out:
        out.write(profile("M0") + b"\n" + b'{"type": "member_profile", "member_id": "')
        for _ in range(20):
            out.write(b"x" * 1_000_000)
        out.write(b'"}\n' + profile("M1") + b"\n")
    tracemalloc.start()
    try:
        rows = read(path)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary(rows) == [(1, None), (2, ""), (3, None)]
    assert peak < 2_000_000, f"reading a 20 MB line took {peak:,} bytes"


CSV_HEADER = b"type,member_id,segment_tags,birth_date,priority"


def csv_profile(member_id: str) -> bytes:
    return f"member_profile,{member_id},,,".encode()


# (case, the record as it stands in the file, the field at fault, part of the reason)
CSV_CASES = [
    ("a field over csv.field_size_limit",
     b"member_profile,M," + b"x" * (csv.field_size_limit() + 10) + b",,", "", "longer than 64 KiB"),
    ("a quoted field of many lines over the limit",
     b'member_profile,M,"' + b"tag\n" * 50_000 + b'",,', "", "longer than 64 KiB"),
    ("quoted quotes in a record over the limit",
     b'member_profile,M,"' + b'a""b\n' * 30_000 + b'",,', "", "longer than 64 KiB"),
    ("a quoted field of many lines within the limit",
     b'member_profile,M,"' + b"tag|\n" * 10 + b'",1980-02-30,', "birth_date", "YYYY-MM-DD"),
    ("not UTF-8", b"member_profile,M\xff,,,", "", "not valid UTF-8"),
    ("a NUL", b"member_profile,M\x00,,,", "member_id", "control characters"),
    ("an escape in a tag", b"member_profile,M,vip\x1b[0m,,", "segment_tags[0]",
     "control characters"),
    ("a stray quote", b'member_profile,M,"x"y,,', "", "not valid CSV"),
    ("too few columns", b"member_profile,M", "", "2 columns where the header has 5"),
    ("a birth date of year 0", b"member_profile,M,,0000-12-31,", "birth_date", "YYYY-MM-DD"),
    ("a birth date of year 10000", b"member_profile,M,,10000-01-01,", "birth_date", "YYYY-MM-DD"),
    ("5000 digits", b"personal_offer,M,,," + b"9" * 5000, "priority", "digits"),
]  # fmt: skip
CSV_IDS = [case[0] for case in CSV_CASES]


@pytest.mark.parametrize(("record", "field", "reason"), [c[1:] for c in CSV_CASES], ids=CSV_IDS)
def test_a_malformed_csv_record_is_rejected_alone_with_its_line_number(
    tmp_path, record, field, reason
):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"\n".join([CSV_HEADER, csv_profile("M0"), record, csv_profile("M1"), b""]))
    before, bad, after = read(path)
    assert (before.error, after.error) == (None, None)
    assert after.record is not None and after.record.member_id == "M1"
    assert after.line_number == 3 + record.count(b"\n") + 1  # physical lines
    assert bad.record is None and bad.error is not None
    assert (bad.line_number, bad.error.field) == (3, field)
    assert reason in bad.error.reason
    assert_short(bad.error.reason)


def test_a_quoted_field_that_never_ends_is_one_rejected_row(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(
        b"\n".join([CSV_HEADER, csv_profile("M0"), b'member_profile,M,"' + b"x\n" * 40_000])
    )
    assert summary(read(path)) == [(2, None), (3, "")]


def test_a_csv_header_longer_than_the_limit_refuses_the_file(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"type,member_id," + b"x" * (2 * LIMIT) + b"\n")
    with pytest.raises(FileFormatError, match="longer than 64 KiB"):
        AttributeFile(path, ZONE)


def nasty_jsonl(path: Path) -> Path:
    """Good rows (M0, M1, ...) with every malformed JSON line between them."""
    lines = [profile("M0")]
    for number, case in enumerate(JSONL_CASES, start=1):
        lines += [case[1], profile(f"M{number}")]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def nasty_csv(path: Path) -> Path:
    records = [CSV_HEADER, csv_profile("M0")]
    for number, case in enumerate(CSV_CASES, start=1):
        records += [case[1], csv_profile(f"M{number}")]
    path.write_bytes(b"\n".join(records) + b"\n")
    return path


@pytest.mark.parametrize("nasty", [nasty_jsonl, nasty_csv], ids=["jsonl", "csv"])
def test_skipping_rows_passes_over_malformed_ones_as_the_first_run_counted_them(tmp_path, nasty):
    path = nasty(tmp_path / ("rows.jsonl" if nasty is nasty_jsonl else "rows.csv"))
    whole = read(path)
    assert len(whole) == 1 + 2 * len(JSONL_CASES if nasty is nasty_jsonl else CSV_CASES)
    for skip in range(0, len(whole) + 1, 3):
        assert read(path, skip) == whole[skip:], f"skip={skip}"


# --- the command, on both backends ---------------------------------------------------------------


def member_ids(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(connection.scalars(text("SELECT id FROM members")))
    finally:
        engine.dispose()


def rejected_lines(path: Path) -> list[tuple[int, str]]:
    with path.open(encoding="utf-8") as f:
        return [(int(r["line_number"]), r["field"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("nasty", [nasty_jsonl, nasty_csv], ids=["jsonl", "csv"])
def test_loyalty_import_applies_every_good_row_around_the_malformed_ones(db_url, tmp_path, nasty):
    path = nasty(tmp_path / ("rows.jsonl" if nasty is nasty_jsonl else "rows.csv"))
    cases = JSONL_CASES if nasty is nasty_jsonl else CSV_CASES
    rejects = tmp_path / "rejects.csv"
    code, out, err = run_cli(
        "--database-url", db_url, "--import-id", "I1", "--batch-size", "4",
        "--no-progress", "--rejects", str(rejects), str(path),
    )  # fmt: skip
    assert code == importer.EXIT_REJECTS, err
    assert f"applied {len(cases) + 1}, rejected {len(cases)}" in out
    assert member_ids(db_url) == {f"M{n}" for n in range(len(cases) + 1)}
    assert [field for _line, field in rejected_lines(rejects)] == [c[2] for c in cases]
    assert all(len(line) < 2 * SHORT_REASON for line in rejects.read_text().splitlines())


class Interrupted(Exception):
    """What stops an import half-way: a Ctrl-C, a kill, a lost store."""


def interrupted_after(rows: Iterator[ParsedRow], count: int) -> Iterator[ParsedRow]:
    for number, row in enumerate(rows):
        if number == count:
            raise Interrupted
        yield row


def test_an_interrupted_import_of_a_malformed_file_resumes_to_done(db_url, tmp_path):
    path = nasty_jsonl(tmp_path / "rows.jsonl")
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    try:
        run = AttributeImport(sessions, "I1", fingerprint=importer.file_digest(path), batch_size=4)
        run.begin()
        rows = interrupted_after(AttributeFile(path, ZONE).rows(), 13)
        with pytest.raises(Interrupted):
            run.run(rows, prefetch=False)
        with sessions() as session:
            halfway = load_import(session, "I1")
        assert halfway is not None and (halfway.status, halfway.consumed) == ("RUNNING", 8)

        code, out, err = run_cli(
            "--database-url", db_url, "--import-id", "I1", "--batch-size", "4", "--no-progress",
            str(path),
        )  # fmt: skip
        assert code == importer.EXIT_REJECTS, err
        assert "resumed after 8 rows" in out
        with sessions() as session:
            done = load_import(session, "I1")
        assert done is not None and done.status == "DONE"
        assert (done.rows_applied, done.rows_rejected) == (len(JSONL_CASES) + 1, len(JSONL_CASES))
    finally:
        engine.dispose()
    assert member_ids(db_url) == {f"M{n}" for n in range(len(JSONL_CASES) + 1)}


def test_values_nested_to_the_decoders_limit_are_rejected_without_being_printed(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [profile("M0")]
    for depth in range(900, 1001, 2):
        nested = "[" * depth + "]" * depth
        lines.append(offer_with(f'"priority": {nested}'))
        lines.append(f'{{"type": "member_profile", "member_id": "M", "active": {nested}}}'.encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    rows = read(path)
    assert len(rows) == len(lines) and rows[0].error is None
    for row in rows[1:]:
        assert row.error is not None and "[[" not in row.error.reason, row.error.reason
