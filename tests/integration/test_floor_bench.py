"""bench/floor_bench.py takes Calculate's handler apart: its variants must do the work they
are named for, or the floor it reports means nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.floor_bench import _variants, best_ratio
from loyalty.v1 import receipt_pb2
from service.api.auth import set_current_principal
from tests.integration.receipt_support import (
    REGISTER,
    DemoTemplate,
    Register,
    demo_template,
    open_register,
    showcase_receipt,
)


@pytest.fixture(scope="module")
def sqlite_template(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[DemoTemplate]:
    with demo_template(request, tmp_path_factory, "sqlite") as made:  # the engine is the same
        yield made


@pytest.fixture
def till(sqlite_template: DemoTemplate, tmp_path: Path) -> Iterator[Register]:
    with sqlite_template.copy(tmp_path) as sessions:
        yield open_register(sessions)


def test_without_the_engine_the_servicer_answers_what_it_answers_with_it(till: Register) -> None:
    set_current_principal(REGISTER)
    request = receipt_pb2.CalculateRequest(receipt=showcase_receipt("FLOOR-1"))
    request.receipt.sale_time.FromDatetime(datetime.now(UTC) - timedelta(minutes=1))
    variants = _variants(till.servicer, request)
    full = variants["full"]()
    no_engine = variants["no_engine"]()
    unsigned = variants["no_engine_unsigned"]()
    assert isinstance(full, receipt_pb2.CalculateResponse)
    assert len(full.result.lines) == len(request.receipt.lines)
    assert sum(len(line.benefits) for line in full.result.lines) > 0
    assert no_engine.result == full.result  # type: ignore[attr-defined]
    assert no_engine.confirmation_token  # type: ignore[attr-defined]
    assert unsigned.result == full.result  # type: ignore[attr-defined]
    assert not unsigned.confirmation_token  # type: ignore[attr-defined]
    result, coupons = variants["engine"]()  # type: ignore[misc]
    assert result.total_discount == full.result.total_discount
    assert coupons == ()


def test_the_best_ratio_is_the_measured_one_for_the_same_handler_and_grows_as_it_shrinks() -> None:
    assert best_ratio(0.4, 200.0, 200.0) == 0.4
    assert best_ratio(0.4, 200.0, 100.0) == pytest.approx(4 / 7, abs=1e-3)
    assert best_ratio(0.4, 200.0, 0.0) == 1.0
