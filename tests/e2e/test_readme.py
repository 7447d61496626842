"""The README's commands run as written against the server `make run` starts: the `buf curl`
calls and the member jobs. Only the address and the data directory are swapped for the test's
own (a free port, a temporary directory), the way a reader's would be theirs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.api.server import LoyaltyServer, create_server
from service.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLIENTS_DOC = (ROOT / "docs" / "clients.md").read_text(encoding="utf-8")
DEV_ADDRESS = "127.0.0.1:50051"
DEV_DATABASE = "sqlite:///var/loyalty.db"
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"


def make_run_arguments(data_dir: Path) -> list[str]:
    """The server flags of the Makefile's `run` target, with a free port and `data_dir`."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    command = next(line for line in recipe.splitlines() if "loyalty-server" in line)
    words = shlex.split(command.replace("$(DATA_DIR)", str(data_dir)))
    words = words[words.index("$(VENV)/bin/loyalty-server") + 1 :]
    return [DEV_ADDRESS.replace("50051", "0") if w == DEV_ADDRESS else w for w in words]


def readme_blocks(first_command: str, document: str = README) -> list[str]:
    """The shell blocks of a document (the README) that start with `first_command`."""
    blocks = re.findall(r"```sh\n(.*?)```", document, flags=re.DOTALL)
    found = [b for b in blocks if b.startswith(first_command)]
    assert found, f"no `{first_command}` block"
    return found


def as_here(block: str, server: LoyaltyServer) -> str:
    return (
        block.replace(DEV_ADDRESS, f"127.0.0.1:{server.port}")
        .replace(DEV_DATABASE, server.settings.database_url)
        .replace(".venv/bin/python ", f"{sys.executable} ")
        .replace("tools/node_modules/.bin/buf ", f"{BUF} ")
    )


def need_buf() -> None:
    if not BUF.exists():
        pytest.fail("buf is not installed: run `make tools`")


def run_block(block: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoyaltyServer]:
    settings = load_settings(make_run_arguments(tmp_path_factory.mktemp("var")), environ={})
    assert settings.serves_reflection, "make run serves reflection"
    server, _port = create_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


def test_the_makefile_run_target_is_what_the_test_starts(tmp_path: Path) -> None:
    arguments = make_run_arguments(tmp_path)
    assert "--demo-data" in arguments and "127.0.0.1:0" in arguments


def test_the_buf_curl_commands_of_the_readme_run_as_written(dev_server: LoyaltyServer) -> None:
    need_buf()
    (block,) = readme_blocks("tools/node_modules/.bin/buf curl")
    done = run_block(as_here(block, dev_server))
    assert done.returncode == 0, done.stderr
    listing, _, answer = done.stdout.partition("{")
    assert "loyalty.v1.ReceiptService" in listing.split()
    result = json.loads("{" + answer)["result"]
    (line,) = result["lines"]
    assert line["knownSku"] is True and int(line["discount"]) > 0
    assert result["totalPaid"] == str(int(result["totalAmount"]) - int(result["totalDiscount"]))


def test_the_member_jobs_command_of_the_readme_runs_as_written(dev_server: LoyaltyServer) -> None:
    (block,) = readme_blocks(".venv/bin/python -m service.jobs")
    done = run_block(as_here(block, dev_server))
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"member jobs done: \d+ events written\n", done.stdout)


def test_the_json_example_of_the_clients_doc_decodes_the_error_details(
    dev_server: LoyaltyServer,
) -> None:
    need_buf()
    (block,) = readme_blocks("tools/node_modules/.bin/buf curl", CLIENTS_DOC)
    done = run_block(as_here(block, dev_server))
    assert done.returncode == 0, done.stderr
    assert '"memberId": "M000001"' in done.stdout  # the lookup, as proto3 JSON
    assert "invalid_argument receipt.channel: must be set to a known value" in done.stdout
    assert 'reason: "INVALID_ARGUMENT"' in done.stdout
    assert 'field: "receipt.channel"' in done.stdout
