"""How often one confirm waits on PostgreSQL, counted on the wire (tests/wire.py) in front of a
real server: a till waits on every one of these while the customer pays (docs/operations.md,
"Confirms: statements and round trips")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty.v1 import receipt_pb2
from service.store.db import make_engine, make_session_factory
from tests.integration.receipt_support import (
    SHOWCASE_MEMBER,
    DemoTemplate,
    Register,
    open_register,
    showcase_receipt,
)
from tests.wire import WireCounter

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def template(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[DemoTemplate]:
    made = DemoTemplate("postgres", request, tmp_path_factory.mktemp("demo"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def wired(template: DemoTemplate, tmp_path: Path) -> Iterator[tuple[Register, WireCounter]]:
    """A register on a fresh copy of the demo store, its connections through a counter."""
    with template.copy(tmp_path) as sessions:
        url = sessions.kw["bind"].url  # type: ignore[attr-defined]
        with WireCounter(url.port) as wire:
            through = url.set(port=wire.port, query={**url.query, "sslmode": "disable"})
            engine = make_engine(through.render_as_string(hide_password=False))
            try:
                yield open_register(make_session_factory(engine)), wire
            finally:
                engine.dispose()


CHIPS_LINE = "4"  # C-CHIPS-FOOD grants a chip on it


def _anonymous(receipt: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    receipt.ClearField("member")
    return receipt


def _without(receipt: receipt_pb2.Receipt, *line_ids: str) -> receipt_pb2.Receipt:
    kept = [line for line in receipt.lines if line.line_id not in line_ids]
    del receipt.lines[:]
    receipt.lines.extend(kept)
    return receipt


def _round_trips_of_confirm(
    register: Register, wire: WireCounter, receipt: receipt_pb2.Receipt, *, points: int = 0
) -> int:
    """The round trips of confirming `receipt` (spending `points`), on a warm connection
    and a warm cache (a confirm of another receipt first; the cache's own reads of the
    member are not the confirm's)."""
    warm = receipt_pb2.Receipt()
    warm.CopyFrom(receipt)
    warm.receipt_id = receipt.receipt_id + "-WARM"
    register.confirm(warm)
    shown = register.calculate(receipt, points=points)
    assert shown.result.total_points_spent == points
    with wire.counting() as seen:
        confirmed = register.confirm(receipt, shown.confirmation_token)
    assert not confirmed.replayed
    return seen[0]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: showcase_receipt("R-ALL"), id="usage-points-chips"),
        pytest.param(lambda: _without(showcase_receipt("R-UP"), CHIPS_LINE), id="usage-points"),
        pytest.param(lambda: showcase_receipt("R-P", coffee=False), id="points-chips"),
        pytest.param(
            lambda: _without(showcase_receipt("R-P", coffee=False), CHIPS_LINE), id="points"
        ),
        pytest.param(lambda: _anonymous(showcase_receipt("R-ANON")), id="anonymous"),
    ],
)
def test_a_confirm_waits_twice_on_the_database(wired, make) -> None:
    """Everything that decides nothing goes with the claim, the rest with the COMMIT
    (before: 6 round trips for a member's receipt that grants chips, 3 without)."""
    register, wire = wired
    assert _round_trips_of_confirm(register, wire, make()) == 2


def test_a_confirm_that_spends_points_waits_twice_too(wired) -> None:
    """The available points are read with the claim, under the member's lock (before: 7)."""
    register, wire = wired
    assert _round_trips_of_confirm(register, wire, showcase_receipt("R-SPEND"), points=100) == 2


def test_a_repeat_waits_for_its_claim_and_its_rollback(wired) -> None:
    register, wire = wired
    receipt = showcase_receipt("R-AGAIN")
    token = register.calculate(receipt).confirmation_token
    first = register.confirm(receipt, token)
    register.cache.member(SHOWCASE_MEMBER)  # the confirm made the cache read them again
    with wire.counting() as seen:
        again = register.confirm(receipt, token)
    assert again.replayed and again.result == first.result
    assert seen[0] == 2
