"""With tracing off the call log still carries the register's trace id, when it sent a
well-formed W3C traceparent; nothing otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from service.api.tracing import incoming_trace_id

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Context:
    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> Any:
        return self._metadata


def test_the_trace_id_of_a_well_formed_traceparent() -> None:
    sent = Context(("authorization", "x"), ("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"))
    assert incoming_trace_id(sent) == TRACE_ID  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-00f067aa0ba902b7-01-and-more",
        "0" * 10_000,
    ],
)
def test_nothing_for_a_malformed_traceparent(value: str) -> None:
    assert incoming_trace_id(Context(("traceparent", value))) == ""  # type: ignore[arg-type]


def test_nothing_without_a_traceparent() -> None:
    assert incoming_trace_id(Context(("authorization", "x"))) == ""  # type: ignore[arg-type]
