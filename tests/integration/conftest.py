"""Fixtures of the receipt lifecycle tests (confirm, refund): a demo store built once per
module and backend, and a register on a fresh copy of it for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.store.db import make_engine, make_session_factory
from tests.conftest import BACKENDS
from tests.integration.receipt_support import (
    DemoTemplate,
    Register,
    demo_template,
    open_register,
)
from tests.wire import WireCounter


@pytest.fixture(scope="module", params=BACKENDS)
def template(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[DemoTemplate]:
    with demo_template(request, tmp_path_factory) as made:
        yield made


@pytest.fixture
def register(template: DemoTemplate, tmp_path: Path) -> Iterator[Register]:
    with template.copy(tmp_path) as sessions:
        yield open_register(sessions)


@pytest.fixture(scope="module")
def pg_template(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[DemoTemplate]:
    """The demo store on PostgreSQL only (the round-trip counts are PostgreSQL's)."""
    with demo_template(request, tmp_path_factory, "postgres") as made:
        yield made


@pytest.fixture
def wired(pg_template: DemoTemplate, tmp_path: Path) -> Iterator[tuple[Register, WireCounter]]:
    """A register on a fresh copy of the demo store, its connections through a counter."""
    with pg_template.copy(tmp_path) as sessions:
        url = sessions.kw["bind"].url  # type: ignore[attr-defined]
        with WireCounter(url.port) as wire:
            through = url.set(port=wire.port, query={**url.query, "sslmode": "disable"})
            engine = make_engine(through.render_as_string(hide_password=False))
            try:
                yield open_register(make_session_factory(engine)), wire
            finally:
                engine.dispose()
