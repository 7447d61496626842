"""Every command-line tool, run as installed (the entry points of pyproject.toml), stops on a
fatal error with one line on stderr and a non-zero status, never a traceback; a tool that
reads a store never creates one unless asked to."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from service.store import db

BIN = Path(sys.executable).parent
DEAD_TARGET = "127.0.0.1:1"  # nothing listens on port 1 here


def run_tool(*command: str, stdin: str = "", cwd: Path | None = None) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of a tool; `python` runs a module of this venv."""
    program = sys.executable if command[0] == "python" else str(BIN / command[0])
    done = subprocess.run(
        [program, *command[1:]],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return done.returncode, done.stdout, done.stderr


def one_line(stderr: str, prog: str) -> str:
    """The single line of `stderr` (warnings and progress aside), which names the tool."""
    lines = [line for line in stderr.splitlines() if line.startswith(f"{prog}: error: ")]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def garbage_db(tmp_path: Path) -> str:
    path = tmp_path / "not-a-database.db"
    path.write_text("these bytes are not SQLite\n" * 100, encoding="utf-8")
    return f"sqlite:///{path}"


def test_credentials_on_a_mistyped_path_create_nothing_and_say_so(tmp_path: Path) -> None:
    typo = tmp_path / "loyalty.bd"
    code, out, err = run_tool("loyalty-credentials", "--database-url", f"sqlite:///{typo}", "list")
    assert code == 1 and out == ""
    assert "no database at" in one_line(err, "loyalty-credentials")
    assert not typo.exists(), "a mistyped path must not become a new empty database"


def test_credentials_create_makes_a_new_store_only_when_asked(tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    url = f"sqlite:///{new}"
    code, out, err = run_tool("loyalty-credentials", "--database-url", url, "--create", "list")
    assert (code, out) == (0, ""), err
    engine = db.make_engine(url)
    assert db.current_revision(engine) is not None
    engine.dispose()


def test_credentials_on_an_empty_database_file_refuse_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    code, _out, err = run_tool(
        "loyalty-credentials", "--database-url", f"sqlite:///{empty}", "list"
    )
    assert code == 1 and "no schema" in one_line(err, "loyalty-credentials")
    with sqlite3.connect(empty) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


@pytest.mark.parametrize(
    "url_kind",
    ["garbage", "unreachable postgres"],
)
def test_credentials_on_a_database_they_cannot_open_say_it_in_one_line(
    url_kind: str, garbage_db: str
) -> None:
    url = garbage_db if url_kind == "garbage" else f"postgresql://loyalty@{DEAD_TARGET}/loyalty"
    code, _out, err = run_tool("loyalty-credentials", "--database-url", url, "list")
    assert code == 1
    assert "cannot use the database" in one_line(err, "loyalty-credentials")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "No such file or directory"),
        ('{"store_id": "S001", "lines": [', "not valid JSON"),
        ('{"store_id": "S001", "lines": [{"sku": "4600000000015"}]}', "line 1 has no price"),
        ('{"lines": [{"sku": "1", "price": "ten"}]}', "whole numbers"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_the_register_refuses_a_receipt_file_in_one_line(
    tmp_path: Path, content: str | None, said: str
) -> None:
    receipt = tmp_path / "receipt.json"
    if content is not None:
        receipt.write_text(content, encoding="utf-8")
    code, out, err = run_tool(
        "loyalty-register", "--target", DEAD_TARGET, "--token", "x.y", "--file", str(receipt)
    )
    assert code == 2 and out == ""
    assert said in one_line(err, "loyalty-register")


def test_the_register_says_in_one_line_that_the_server_is_not_there() -> None:
    code, _out, err = run_tool(
        "loyalty-register", "--demo", "--target", DEAD_TARGET, "--token", "x.y", "--timeout", "0.5"
    )
    assert code == 1 and "UNAVAILABLE" in one_line(err, "loyalty-register")


def test_the_jobs_on_a_mistyped_path_create_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "loyaty.db"
    code, out, err = run_tool("python", "-m", "service.jobs", "--database-url", f"sqlite:///{typo}")
    assert code == 1 and out == ""
    assert "no database at" in one_line(err, "service.jobs")
    assert not typo.exists()


def test_the_jobs_on_a_broken_database_say_it_in_one_line(garbage_db: str) -> None:
    code, _out, err = run_tool("python", "-m", "service.jobs", "--database-url", garbage_db)
    assert code == 1 and "cannot use the database" in one_line(err, "service.jobs")


def test_the_import_on_a_mistyped_path_creates_nothing(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"member_id": "M1", "attribute": "a"}) + "\n", encoding="utf-8")
    typo = tmp_path / "typo.db"
    code, _out, err = run_tool(
        "loyalty-import", "--database-url", f"sqlite:///{typo}", "--import-id", "I1", str(rows)
    )
    assert code == 2 and "--migrate" in one_line(err, "loyalty-import")
    assert not typo.exists()


def test_the_load_generator_reads_only_a_store_that_exists(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    code, _out, err = run_tool(
        "loyalty-load", "--concurrency", "1", "--duration", "1", "--quiet",
        "--database-url", f"sqlite:///{typo}", "--target", DEAD_TARGET,
    )  # fmt: skip
    assert code == 1 and "no database at" in one_line(err, "loyalty-load")
    assert not typo.exists()


def test_the_till_refuses_a_price_file_it_cannot_read(tmp_path: Path) -> None:
    code, _out, err = run_tool(
        "loyalty-till", "--prices", str(tmp_path / "none.json"), "--target", DEAD_TARGET
    )
    assert code == 2 and "cannot read prices" in one_line(err, "loyalty-till")


def test_the_checkout_says_in_one_line_that_the_server_is_not_there() -> None:
    code, _out, err = run_tool(
        "loyalty-checkout", "--target", DEAD_TARGET, "--token", "x.y", "--timeout", "0.5"
    )
    assert code == 1 and "UNAVAILABLE" in one_line(err, "loyalty-checkout")


def test_the_server_on_a_broken_database_says_it_in_one_line(garbage_db: str) -> None:
    code, _out, err = run_tool(
        "loyalty-server", "--database-url", garbage_db, "--address", "127.0.0.1:0",
        "--development", "--log-level", "WARNING",
    )  # fmt: skip
    assert code == 1 and "cannot use the database" in one_line(err, "loyalty-server")


def test_every_entry_point_of_the_project_reports_through_the_shared_helper() -> None:
    """A new tool in pyproject.toml without @tool would print tracebacks again."""
    import importlib
    import tomllib

    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    modules = {"service.jobs": "service.jobs:main", "service.demo": "service.demo:main"}
    for name, target in {**scripts, **modules}.items():
        module, function = target.split(":")
        main = getattr(importlib.import_module(module), function)
        assert getattr(main, "__wrapped__", None) is not None, f"{name} is not wrapped by @tool"
