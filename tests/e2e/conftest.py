"""A real server on a loopback port with an SQLite file and the demo data, and channels to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer, create_server
from service.config import Settings
from tests.conftest import assert_member_documents_current

# A secret good enough for a production start (no demo data, no development mode).
PRODUCTION_SECRET = "e2e-token-secret-of-32-bytes-or-more"


def demo_settings(tmp_path: Path, **overrides: object) -> Settings:
    base = Settings(
        address="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'loyalty.db'}",
        demo_data=True,
        grace_period_s=2.0,
        max_workers=8,
        jobs_interval_s=0,  # member jobs off: tests that want their events run them
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoyaltyServer]:
    """The demo server a module's tests share; after them, whatever the calls wrote left
    every member document matching its rows."""
    settings = demo_settings(tmp_path_factory.mktemp("demo"))
    server, _port = create_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)
    assert_member_documents_current(settings.database_url)


@pytest.fixture(scope="module")
def channel(demo_server: LoyaltyServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{demo_server.port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def auth(role: Role = Role.REGISTER) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a development credential of this role (demo data only)."""
    return (("authorization", f"Bearer {DEV_TOKENS[role]}"),)
