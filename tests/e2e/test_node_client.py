"""An independent client: Node.js with @grpc/grpc-js and @grpc/proto-loader, reading the
contract straight from protos/, gets from a real server what the Python client gets.

Needs node and npm (fails, never skips, without them); installs the npm packages of tools/
with `npm ci` when they are missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import grpc_tools
import pytest

from clients.client import LoyaltyClient
from clients.receipt_format import load_receipt
from clients.register_cli import DEMO_RECEIPT
from loyalty.v1 import common_pb2
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
SCRIPT = TOOLS / "node-client" / "calculate.js"
PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader")
GOOGLE_PROTOS = Path(grpc_tools.__file__).parent / "_proto"


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the client's npm packages installed in tools/."""
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed: the Node.js client check needs Node.js 20 and npm")
    if not _installed():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not installed: cannot install tools/ packages (`make tools`)")
        done = _npm(npm, "ci")
        if done.returncode != 0 and "EUSAGE" in done.stderr:
            # A registry without some platforms' optional buf binaries makes `npm install`
            # write a lock that `npm ci` then calls out of sync; install without the lock
            # (direct dependencies are pinned in package.json), leaving it untouched.
            done = _npm(npm, "install", "--no-package-lock")
        if done.returncode != 0 or not _installed():
            pytest.fail(f"cannot install tools/ npm packages:\n{done.stderr[-2000:]}")
    return found


def _installed() -> bool:
    return all((TOOLS / "node_modules" / p / "package.json").exists() for p in PACKAGES)


def _npm(npm: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [npm, *args, "--no-audit", "--no-fund", "--loglevel=error"]
    return subprocess.run(command, cwd=TOOLS, capture_output=True, text=True, timeout=300)


def run_node(node: str, server: LoyaltyServer, token: str) -> subprocess.CompletedProcess[str]:
    command = [
        node,
        str(SCRIPT),
        "--target", f"127.0.0.1:{server.port}",
        "--token", token,
        "--receipt", str(DEMO_RECEIPT),
        "--protos", str(REPO / "protos"),
        "--google-protos", str(GOOGLE_PROTOS),
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=30, env=environment, cwd=REPO
    )


def test_the_node_client_calculates_the_demo_receipt_as_the_python_client_does(
    node: str, demo_server: LoyaltyServer
) -> None:
    token = DEV_TOKENS[Role.REGISTER]
    done = run_node(node, demo_server, token)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    with LoyaltyClient(f"127.0.0.1:{demo_server.port}", token) as client:
        expected = client.calculate(load_receipt(DEMO_RECEIPT)[0]).result

    assert answer["member_id"] == "M000001"
    assert answer["currency"] == expected.currency
    for total in ("total_amount", "total_discount", "total_paid", "total_points"):
        assert int(answer[total]) == getattr(expected, total), total
    assert int(answer["total_discount"]) > 0
    assert answer["unknown_skus"] == list(expected.unknown_skus)
    assert [line["line_id"] for line in answer["lines"]] == [x.line_id for x in expected.lines]
    for line, want in zip(answer["lines"], expected.lines, strict=True):
        assert (int(line["paid"]), int(line["discount"]), int(line["points"])) == (
            want.paid,
            want.discount,
            want.points,
        )
        assert [
            (b["offer_id"], b["mechanic"], int(b["discount"]), int(b["points"]))
            for b in line["benefits"]
        ] == [
            (b.offer_id, common_pb2.Mechanic.Name(b.mechanic), b.discount, b.points)
            for b in want.benefits
        ]
    mechanics = {b["mechanic"] for line in answer["lines"] for b in line["benefits"]}
    assert "MECHANIC_FAVORITE_PRODUCTS" in mechanics


def test_the_node_client_is_refused_with_a_bad_credential(
    node: str, demo_server: LoyaltyServer
) -> None:
    done = run_node(node, demo_server, "nobody.wrong-secret")
    assert done.returncode == 1
    assert json.loads(done.stderr)["code"] == "UNAUTHENTICATED"
