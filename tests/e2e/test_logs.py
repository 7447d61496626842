"""Every log line of a real server (start, calls, shutdown) and of the tools is one JSON
object a log shipper can read; --log-format text is there for a terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from alembic.script import ScriptDirectory

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.store.db import alembic_config
from tests.e2e.conftest import auth
from tests.e2e.test_metrics import sample, scrape_port
from tests.pg import free_port

# The newest migration, whatever its number: a new one must not break this test.
HEAD_REVISION = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
MIGRATED_LINE = f"store migrated from revision none to {HEAD_REVISION}"

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@contextmanager
def server(tmp_path: Path, *flags: str) -> Iterator[tuple[int, Path]]:
    """A `loyalty-server` process with the demo data; its port and the file its stderr goes
    to. Stopped with SIGTERM (and must exit 0) when the block ends."""
    stderr = tmp_path / "server.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    with open(stderr, "w") as err:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "service.main",
                "--database-url", f"sqlite:///{tmp_path / 'logs.db'}",
                "--demo-data", "--jobs-interval-s", "0", "--log-level", "INFO", *flags,
            ],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        yield int(line.split(":")[1].split()[0]), stderr
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]


def json_lines(path: Path) -> list[dict[str, object]]:
    """Every line of the file as JSON; fails on the first that is not one object."""
    lines = path.read_text().splitlines()
    assert lines, "something was logged"
    parsed = []
    for line in lines:
        record = json.loads(line)  # raises on a line that is not JSON
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        parsed.append(record)
    return parsed


def demo_calls(port: int, calls: int = 1) -> None:
    """Calculate and confirm the demo receipt; the register sends a W3C traceparent."""
    metadata = (*auth(), ("traceparent", TRACEPARENT))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        for index in range(calls):
            receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
            receipt.receipt_id = f"LOGGED-{index}"
            shown = stub.Calculate(
                receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=metadata
            )
            stub.Confirm(
                receipt_pb2.ConfirmRequest(
                    receipt=receipt, confirmation_token=shown.confirmation_token
                ),
                timeout=10,
                metadata=metadata,
            )


def test_a_server_logs_start_calls_and_shutdown_as_json_lines(tmp_path: Path) -> None:
    with server(tmp_path, "--address", "127.0.0.1:0") as (port, stderr):
        demo_calls(port)
    records = json_lines(stderr)
    calls = [r for r in records if r["logger"] == "service.calls"]
    assert [c["method"] for c in calls] == [
        "/loyalty.v1.ReceiptService/Calculate",
        "/loyalty.v1.ReceiptService/Confirm",
    ]
    for call in calls:
        assert call["code"] == "OK"
        assert call["caller"] == "dev-register"
        assert call["store"] == "S001"
        assert call["receipt_id"] == "LOGGED-0"
        assert str(call["peer"]).startswith("ipv4:127.0.0.1:")
        assert call["trace_id"] == TRACE_ID  # tracing is off: the register's trace id
        assert isinstance(call["duration_ms"], float) and call["duration_ms"] > 0
    messages = [str(r["message"]) for r in records]
    assert any(m.startswith("serving on port") for m in messages)
    assert messages[-1] == "stopped"
    # Alembic's seven lines per start are one line of the store's.
    assert not [r for r in records if str(r["logger"]).startswith("alembic")]
    assert [m for m in messages if "revision" in m] == [MIGRATED_LINE]


def test_every_process_of_a_multi_process_server_logs_json_and_serves_metrics(
    tmp_path: Path,
) -> None:
    """Worker i serves its metrics on metrics_port + i (docs/operations.md, "Metrics"): the
    calls made are counted once over the workers' endpoints."""
    metrics_port = free_port()
    flags = ("--address", f"127.0.0.1:{free_port()}", "--processes", "2")
    with server(tmp_path, *flags, "--metrics-port", str(metrics_port)) as (port, stderr):
        demo_calls(port, calls=4)
        scraped = [scrape_port(metrics_port + index) for index in range(2)]
    confirm = {"grpc_type": "unary", "grpc_service": "loyalty.v1.ReceiptService"}
    confirmed = [
        sample(text, "grpc_server_handled_total", confirm, grpc_method="Confirm", grpc_code="OK")
        for text in scraped
    ]
    assert all("# HELP grpc_server_handled_total" in text for text in scraped)
    assert sum(count or 0 for count in confirmed) == 4
    records = json_lines(stderr)
    workers = {r.get("worker") for r in records if r["logger"] == "service.calls"}
    assert workers <= {"worker-0", "worker-1"} and workers
    stopped = [r.get("worker") for r in records if r["message"] == "stopped"]
    assert sorted(stopped) == ["worker-0", "worker-1"]  # type: ignore[type-var]


def test_text_format_is_one_readable_line_per_record_with_its_fields(tmp_path: Path) -> None:
    with server(tmp_path, "--address", "127.0.0.1:0", "--log-format", "text") as (port, stderr):
        demo_calls(port)
    lines = stderr.read_text().splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    [calculate] = [
        line for line in lines if " service.calls /loyalty.v1.ReceiptService/Calc" in line
    ]
    assert " INFO " in calculate and "code=OK" in calculate and f"trace_id={TRACE_ID}" in calculate


def run_tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "LOYALTY_LOG_LEVEL": "INFO"},
        check=False,
    )


def test_the_tools_log_json_lines_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tools.db'}"
    created = run_tool(
        "service.credentials_cli", "--database-url", url, "--create",
        "create", "--name", "till-1", "--role", "REGISTER", "--store", "S001",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout.count(".") == 1  # the token, on stdout as before
    (tmp_path / "credentials.err").write_text(created.stderr)
    migrated = json_lines(tmp_path / "credentials.err")
    assert [r["message"] for r in migrated] == [MIGRATED_LINE]
    jobs = run_tool("service.jobs", "--database-url", url)
    assert jobs.returncode == 0, jobs.stderr
    (tmp_path / "jobs.err").write_text(jobs.stderr)
    assert {r["logger"] for r in json_lines(tmp_path / "jobs.err")} == {"service.app.jobs"}
