"""What a replica does while its database hangs or is down, and how fast it recovers.

    python -m bench.outage_bench --out bench/outage_results.json

A real server (in process, the demo data) on a throwaway PostgreSQL cluster (tests/pg.py),
loopback only. Two outages, each bounded in time:

- `frozen`: every PostgreSQL process stopped with SIGSTOP (connections open, nothing answers);
- `stopped`: PostgreSQL shut down (connections refused).

For each: seconds from the outage to store health NOT_SERVING, Calculate latency of a cached
member during the outage (and whether it says degraded), how a Confirm ends and how long it
takes, then seconds from the database's return to SERVING and to the first committed Confirm.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.auth import DEV_TOKENS, Role
from service.api.server import STORE_HEALTH, create_server
from service.config import Settings

AUTH = (("authorization", f"Bearer {DEV_TOKENS[Role.REGISTER]}"),)
CALCULATIONS = 200
SERVING = health_pb2.HealthCheckResponse.SERVING


def _receipt(receipt_id: str) -> receipt_pb2.Receipt:
    made = load_receipt(register_cli.DEMO_RECEIPT)[0]
    made.receipt_id = receipt_id
    return made


def _seconds_until(check: Callable[[], bool], limit_s: float = 60.0) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > limit_s:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)
    return time.monotonic() - began


class Probe:
    def __init__(self, channel: grpc.Channel) -> None:
        self.receipts = receipt_pb2_grpc.ReceiptServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def store_serving(self) -> bool:
        request = health_pb2.HealthCheckRequest(service=STORE_HEALTH)
        return bool(self.health.Check(request, timeout=2).status == SERVING)

    def calculate(self, receipt_id: str) -> receipt_pb2.CalculateResponse:
        request = receipt_pb2.CalculateRequest(receipt=_receipt(receipt_id))
        return self.receipts.Calculate(request, timeout=2, metadata=AUTH)  # type: ignore[no-any-return]

    def confirm(self, receipt_id: str, token: bytes) -> tuple[str, float]:
        began = time.perf_counter()
        request = receipt_pb2.ConfirmRequest(receipt=_receipt(receipt_id), confirmation_token=token)
        try:
            self.receipts.Confirm(request, timeout=2, metadata=AUTH)
            code = "OK"
        except grpc.RpcError as failed:
            code = failed.code().name
        return code, time.perf_counter() - began


def _outage(
    probe: Probe, name: str, begin: Callable[[], None], end: Callable[[], None]
) -> dict[str, Any]:
    shown = probe.calculate(f"{name}-CONFIRM")
    begin()
    try:
        to_not_serving = _seconds_until(lambda: not probe.store_serving())
        latencies, degraded = [], 0
        for n in range(CALCULATIONS):
            began = time.perf_counter()
            degraded += probe.calculate(f"{name}-CALC-{n}").result.degraded
            latencies.append(time.perf_counter() - began)
        confirm_code, confirm_s = probe.confirm(f"{name}-CONFIRM", shown.confirmation_token)
    finally:
        end()
    back = time.monotonic()
    to_serving = _seconds_until(probe.store_serving)
    _seconds_until(lambda: probe.confirm(f"{name}-CONFIRM", shown.confirmation_token)[0] == "OK")
    latencies.sort()
    return {
        "seconds_to_store_not_serving": round(to_not_serving, 2),
        "calculate_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "calculate_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "calculations_degraded": f"{degraded}/{CALCULATIONS}",
        "confirm_during": confirm_code,
        "confirm_during_seconds": round(confirm_s, 2),
        "seconds_to_store_serving_after_return": round(to_serving, 2),
        "seconds_to_first_confirm_after_return": round(time.monotonic() - back, 2),
    }


def run() -> dict[str, Any]:
    from tests.pg import PostgresCluster

    with PostgresCluster() as cluster:
        settings = replace(
            Settings(),
            address="127.0.0.1:0",
            database_url=cluster.create_database(),
            demo_data=True,
            jobs_interval_s=0,
            log_calls=False,
        )
        server, port = create_server(settings)
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                probe = Probe(channel)
                probe.calculate("WARM")  # the member is cached
                frozen = _outage(probe, "FROZEN", cluster.freeze, cluster.thaw)
                stopped = _outage(probe, "STOPPED", cluster.stop_server, cluster.restart_server)
        finally:
            server.stop(grace=0.5)
    return {
        "command": "python -m bench.outage_bench",
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "settings": {
            "store_timeout_s": settings.store_timeout_s,
            "sync_interval_s": settings.sync_interval_s,
            "call_deadline_s": 2.0,
        },
        "frozen": frozen,
        "stopped": stopped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = run()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
