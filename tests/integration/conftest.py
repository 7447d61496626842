"""Fixtures of the receipt lifecycle tests (confirm, refund): a demo store built once per
module and backend, and a register on a fresh copy of it for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.integration.receipt_support import (
    DemoTemplate,
    Register,
    demo_template,
    open_register,
)


@pytest.fixture(scope="module", params=BACKENDS)
def template(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[DemoTemplate]:
    with demo_template(request, tmp_path_factory) as made:
        yield made


@pytest.fixture
def register(template: DemoTemplate, tmp_path: Path) -> Iterator[Register]:
    with template.copy(tmp_path) as sessions:
        yield open_register(sessions)
