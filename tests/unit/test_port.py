"""Server addresses as gRPC takes them, split for the port checks."""

from __future__ import annotations

import pytest

from service.port import host_and_port


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("[::]:50051", ("::", 50051)),
        ("localhost:0", ("localhost", 0)),
        (":50051", (None, 50051)),
    ],
)
def test_an_address_splits_into_host_and_port(address, expected):
    assert host_and_port(address) == expected
