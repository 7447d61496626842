"""loyalty-import straight to the store: summary, rejects file, exit status, replay, a file
that cannot be read, and an import killed mid-way that resumes to the same end state."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bench.gen_attributes import write as write_attributes
from service.imports import cli as importer
from service.store.db import make_engine, make_session_factory, migrate
from service.store.import_repo import load_import
from service.store.models import Base
from tests.integration.import_cli import run_cli

ROWS = [
    {"type": "member_profile", "member_id": "M1", "card_numbers": ["2000000000001"]},
    {"type": "personal_offer", "member_id": "M1", "offer_id": "P1", "name": "Tea", "skus": ["S1"],
     "benefit_kind": "PERCENT", "benefit_value": 1500},
    {"type": "personal_offer", "member_id": "M1", "offer_id": "P2", "name": "Tea", "skus": ["S1"],
     "benefit_kind": "PERCENT", "benefit_value": 0},
    {"type": "favorite_categories", "member_id": "M9", "offer_id": "C1", "name": "Cats",
     "group_ids": ["G1"], "benefit_kind": "PERCENT", "benefit_value": 500},
]  # fmt: skip


@pytest.fixture
def store(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate(url)
    return url


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_import_prints_a_summary_writes_rejects_and_exits_one_for_rejected_rows(store, tmp_path):
    rejects = tmp_path / "rejects.csv"
    source = jsonl(tmp_path / "rows.jsonl", ROWS)
    code, out, err = run_cli(
        "--database-url", store, "--import-id", "I1", "--rejects", str(rejects), str(source)
    )
    assert code == importer.EXIT_REJECTS
    assert "import I1: DONE" in out and "applied 2, rejected 2" in out
    assert "100.0%" in err and "rows/s" in err  # progress on stderr
    with rejects.open() as f:
        listed = list(csv.DictReader(f))
    assert [(r["line_number"], r["field"]) for r in listed] == [
        ("3", "benefit_value"),
        ("4", "member_id"),
    ]
    assert "unknown member 'M9'" in listed[1]["reason"]


def test_without_a_rejects_file_the_summary_still_says_why_the_first_rows_were_rejected(
    store, tmp_path
):
    stranger = {**ROWS[3], "offer_id": "C2"}
    rows = [ROWS[0], *([stranger] * (importer.SHOWN_REJECTS + 2))]
    code, out, _err = run_cli(
        "--database-url", store, "--import-id", "I1", str(jsonl(tmp_path / "rows.jsonl", rows))
    )
    assert code == importer.EXIT_REJECTS
    reasons = [line for line in out.splitlines() if line.startswith("  rejected line ")]
    assert len(reasons) == importer.SHOWN_REJECTS
    assert reasons[0].startswith("  rejected line 2: member_id:") and "unknown member" in reasons[0]
    assert "... and 2 more rejected rows (--rejects FILE lists every one)" in out


def test_rows_with_times_no_datetime_holds_are_rejected_and_the_import_goes_on(store, tmp_path):
    offer = {**ROWS[1], "offer_id": "P-FAR"}
    source = jsonl(tmp_path / "rows.jsonl", [
        ROWS[0],
        {**offer, "valid_from": "0001-01-01"},  # 00:00 in Moscow is in year 0 in UTC
        {**offer, "valid_to": "9999-12-31T23:30:00-01:00"},
        {**offer, "valid_from": "99999-01-01"},
        {**ROWS[0], "birth_date": "0000-12-31"},
        {**offer, "valid_from": "0001-01-01T00:00:00Z", "valid_to": "9999-12-31T23:59:59Z"},
    ])  # fmt: skip
    rejects = tmp_path / "rejects.csv"
    code, out, err = run_cli(
        "--database-url", store, "--import-id", "I1", "--rejects", str(rejects), str(source)
    )
    assert code == importer.EXIT_REJECTS, err
    assert "import I1: DONE" in out and "applied 2, rejected 4" in out
    with rejects.open() as f:
        listed = [(r["line_number"], r["field"]) for r in csv.DictReader(f)]
    assert listed == [
        ("2", "valid_from"),
        ("3", "valid_to"),
        ("4", "valid_from"),
        ("5", "birth_date"),
    ]


def test_a_rejects_file_quotes_only_a_short_prefix_of_what_the_file_said(store, tmp_path):
    stranger = "M" * 64  # a valid id, of nobody
    source = jsonl(tmp_path / "rows.jsonl", [{**ROWS[3], "member_id": stranger}])
    rejects = tmp_path / "rejects.csv"
    run_cli("--database-url", store, "--import-id", "I1", "--rejects", str(rejects), str(source))
    with rejects.open() as f:
        (listed,) = list(csv.DictReader(f))
    assert listed["field"] == "member_id"
    assert "M" * 32 + "…" in listed["reason"] and "M" * 33 not in listed["reason"]


def test_a_second_run_of_the_same_import_says_replayed_and_changes_nothing(store, tmp_path):
    source = jsonl(tmp_path / "rows.jsonl", ROWS[:2])
    assert run_cli("--database-url", store, "--import-id", "I1", str(source))[0] == 0
    code, out, _err = run_cli(
        "--database-url", store, "--import-id", "I1", "--no-progress", str(source)
    )
    assert code == importer.EXIT_OK and "replayed: nothing changed" in out


def test_another_file_under_a_used_import_id_fails_and_says_so(store, tmp_path):
    run_cli("--database-url", store, "--import-id", "I1", str(jsonl(tmp_path / "a.jsonl", ROWS)))
    other = jsonl(tmp_path / "b.jsonl", ROWS[:1])
    code, _out, err = run_cli("--database-url", store, "--import-id", "I1", str(other))
    assert code == importer.EXIT_FAILED and "another source" in err


def test_a_file_that_cannot_be_read_exits_two_before_anything_is_claimed(store, tmp_path):
    bad = tmp_path / "rows.csv"
    bad.write_text("type,member_id,colour\nmember_profile,M1,red\n")
    code, _out, err = run_cli("--database-url", store, "--import-id", "I1", str(bad))
    assert code == importer.EXIT_USAGE and "unknown columns: colour" in err
    engine = make_engine(store)
    with make_session_factory(engine)() as session:
        assert load_import(session, "I1") is None
    engine.dispose()


def test_a_store_without_a_schema_needs_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    source = jsonl(tmp_path / "rows.jsonl", ROWS[:1])
    code, _out, err = run_cli("--database-url", url, "--import-id", "I1", str(source))
    assert code == importer.EXIT_USAGE and "--migrate" in err
    ok = run_cli("--database-url", url, "--import-id", "I1", "--migrate", str(source))
    assert ok[0] == 0


TIMES = {"created_at", "updated_at", "finished_at"}  # differ between two runs


def table_dump(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            dump = {}
            for table in Base.metadata.sorted_tables:
                if table.name not in ("members", "cards", "favorite_category_attributes",
                                      "favorite_category_choices", "personal_offers",
                                      "outbox", "change_feed"):  # fmt: skip
                    continue
                columns = [c for c in table.columns if c.name not in TIMES]
                order = table.c.position if "position" in table.c else table.primary_key.columns
                rows = connection.execute(select(*columns).order_by(*_as_list(order)))
                dump[table.name] = [tuple(str(v) for v in r) for r in rows]
            return dump
    finally:
        engine.dispose()


def _as_list(order: object) -> list:
    return list(order) if not hasattr(order, "name") else [order]


def test_an_import_killed_mid_way_resumes_and_ends_equal_to_a_clean_import(tmp_path):
    source = tmp_path / "rows.csv"
    write_attributes(source, 40_000)
    clean, killed = (f"sqlite:///{tmp_path / name}" for name in ("clean.db", "killed.db"))
    command = [sys.executable, "-m", "service.imports", "--migrate", "--no-progress",
               "--import-id", "I1", "--batch-size", "500", str(source)]  # fmt: skip
    subprocess.run([*command, "--database-url", clean], check=False, capture_output=True)

    child = subprocess.Popen([*command, "--database-url", killed], stdout=subprocess.DEVNULL)
    engine = make_engine(killed)
    sessions = make_session_factory(engine)
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with sessions() as session:
                state = load_import(session, "I1")
        except Exception:  # the schema may not exist yet
            continue
        if state is not None and state.consumed >= 2000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with sessions() as session:
        halfway = load_import(session, "I1")
        members = session.scalar(text("SELECT count(*) FROM members"))
    engine.dispose()
    assert halfway is not None and halfway.status == "RUNNING", "killed too late: make it bigger"
    assert halfway.consumed % 500 == 0 and 0 < halfway.consumed < 40_000  # whole batches only
    assert members > 0

    resumed = subprocess.run([*command, "--database-url", killed], capture_output=True, text=True)
    assert "DONE" in resumed.stdout and "resumed after" in resumed.stdout
    assert table_dump(killed) == table_dump(clean)
