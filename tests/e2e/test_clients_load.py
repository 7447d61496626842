"""`loyalty-load` for a few seconds on loopback: the report as JSON and as an HTML page."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from clients import loadgen
from clients.catalogue import demo_shop
from clients.load_receipts import UNKNOWN_SKU, ReceiptFactory, ReceiptMix
from clients.receipt_format import line_amount
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer

REGISTER = DEV_TOKENS[Role.REGISTER]


def load(server: LoyaltyServer, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    code = loadgen.main(
        [
            "--target",
            f"127.0.0.1:{server.port}",
            "--token",
            REGISTER,
            "--out",
            str(out),
            "--html",
            str(page),
            "--quiet",
            *args,
        ]
    )
    assert code == 0
    return code, json.loads(out.read_text()), page.read_text()


def test_a_closed_loop_run_reports_sane_numbers_as_json_and_html(
    demo_server: LoyaltyServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    _, report, page = load(
        demo_server, tmp_path, "--duration", "3", "--processes", "2", "--concurrency", "4"
    )
    assert time.monotonic() - started < 25, "the run stops by itself"
    assert report["calls"] > 0 and report["ok"] == report["calls"]
    assert report["errors"] == {}
    assert report["throughput_per_s"] > 0
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99.9"]
    assert latency["p99.9"] <= latency["max"]
    assert report["duration_s"] == 3.0
    assert sum(row["ok_per_s"] for row in report["timeline"]) > 0
    assert sum(b["count"] for b in report["histogram"]) == report["calls"]
    assert report["latency_ms"]["calls"] == report["calls"]
    assert report["config"]["token"] == "***", "the credential is not written to the report"
    assert page.count("<svg") == 3
    assert "Latency over time" in page and "Latency histogram" in page
    assert "<script" not in page and "src=" not in page and "href=" not in page


def test_an_open_loop_run_keeps_its_rate_and_confirms_a_share_of_receipts(
    demo_server: LoyaltyServer, tmp_path: Path
) -> None:
    _, report, _ = load(
        demo_server,
        tmp_path,
        "--duration", "2", "--processes", "1", "--rate", "80", "--arrivals", "uniform",
        "--confirm-share", "0.25",
    )  # fmt: skip
    calculate, confirm = report["methods"]["Calculate"], report["methods"]["Confirm"]
    assert calculate["calls"] == 160, "80 calls a second for 2 seconds, on schedule"
    assert calculate["errors"] == {} and confirm["errors"] == {}
    assert 0 < confirm["ok"] < calculate["ok"]
    assert report["mode"].startswith("open loop")


def test_a_run_stops_after_its_call_budget(demo_server: LoyaltyServer, tmp_path: Path) -> None:
    _, report, _ = load(
        demo_server,
        tmp_path,
        "--duration", "20", "--processes", "2", "--concurrency", "2", "--max-calls", "50",
    )  # fmt: skip
    assert report["calls"] == 50
    assert report["duration_s"] < 20


def test_the_load_generator_refuses_a_target_off_this_machine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = loadgen.main(["--target", "192.0.2.10:50051", "--concurrency", "1", "--duration", "1"])
    assert code == 2
    assert "not on this machine" in capsys.readouterr().err
    assert loadgen.is_loopback_target("localhost:50051")
    assert loadgen.is_loopback_target("[::1]:50051")
    assert loadgen.is_loopback_target("dns:///127.0.0.1:50051")


def test_generated_receipts_follow_the_configured_mix() -> None:
    shop = demo_shop()
    mix = ReceiptMix(lines_mean=6, lines_max=25, member_share=0.6, favorites_hit=1.0)
    factory = ReceiptFactory(shop, mix, seed=3)
    receipts = [factory.receipt() for _ in range(3000)]
    counts = [len([x for x in r.lines if x.sku != UNKNOWN_SKU]) for r in receipts]
    assert 5.4 <= statistics.mean(counts) <= 6.6
    assert max(counts) <= 25 and min(counts) >= 1
    members = [r for r in receipts if r.member.card_number]
    assert 0.55 <= len(members) / len(receipts) <= 0.65
    favorites = {c.card_number: set(c.favorites) for c in shop.cards}
    with_favorites = [r for r in members if favorites[r.member.card_number]]
    hits = [r for r in with_favorites if favorites[r.member.card_number] & {x.sku for x in r.lines}]
    assert len(hits) == len(with_favorites), "favorites_hit=1: every such receipt has one"
    assert {r.channel for r in receipts} == {1, 2}
    for r in receipts[:200]:
        assert len({x.line_id for x in r.lines}) == len(r.lines)
        assert all(x.amount == line_amount(x.price, x.quantity) for x in r.lines)


def test_calls_that_fail_count_in_the_latency_figures_by_status(
    demo_server: LoyaltyServer, tmp_path: Path
) -> None:
    """A deadline shorter than most answers: the failed calls are in the percentiles."""
    _, report, page = load(
        demo_server, tmp_path,
        "--duration", "2", "--processes", "2", "--rate", "100", "--timeout", "0.001",
    )  # fmt: skip
    failed = report["errors"].get("DEADLINE_EXCEEDED", 0)
    assert failed > 0
    by_status = report["latency_by_status_ms"]
    assert by_status["DEADLINE_EXCEEDED"]["calls"] == failed
    assert sum(figures["calls"] for figures in by_status.values()) == report["calls"]
    assert report["latency_ms"]["calls"] == report["calls"]
    assert report["latency_ms"]["max"] >= by_status["DEADLINE_EXCEEDED"]["p50"]
    assert "DEADLINE_EXCEEDED" in page
