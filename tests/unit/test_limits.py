"""The one table of string limits, and what keeps a caller's long value out of messages, the
status trailer and the call log."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from google.rpc import status_pb2

from service import errors, limits
from service.api.errors import status_for
from service.api.metrics import log_call
from service.imports import records
from service.logs import formatter
from service.store import models


def test_the_store_and_the_import_take_their_widths_from_the_table() -> None:
    assert (models.KEY, models.NAME) == (limits.ID, limits.NAME)
    assert models.CardRow.__table__.c.card_number.type.length == limits.CARD
    assert models.StoreRow.__table__.c.time_zone.type.length == limits.ZONE
    for build, limit in (  # the import checks its rows against the same widths
        (lambda value: records.member_profile(member_id=value), limits.ID),
        (lambda value: records.member_profile(member_id="M", card_numbers=[value]), limits.CARD),
        (records.require_name, limits.NAME),
    ):
        build("9" * limit)
        with pytest.raises(errors.InvalidArgument):
            build("9" * (limit + 1))


def test_quote_shows_a_short_value_whole_and_a_prefix_of_a_long_one() -> None:
    assert limits.quote("M0001") == "'M0001'"
    assert limits.quote("x" * 32) == repr("x" * 32)
    assert limits.quote("x" * 10_000) == "'" + "x" * 32 + "…'"
    assert limits.quote("abcdef", 3) == "'abc…'"


def test_check_length_refuses_one_character_too_many_by_name() -> None:
    assert limits.check_length("x" * 64, limits.ID, "offer_id") == "x" * 64
    with pytest.raises(errors.InvalidArgument) as caught:
        limits.check_length("x" * 65, limits.ID, "offer_id")
    assert caught.value.field == "offer_id"
    assert "64" in caught.value.description


def test_a_status_message_is_cut_so_the_status_fits_the_trailer() -> None:
    error = errors.NotFound("no such thing " + "x" * 20_000, reason="X_NOT_FOUND")
    status = status_for(error, "/loyalty.v1.X/Y")
    assert len(status.details) <= limits.MESSAGE
    assert status.details.startswith("no such thing xxx")
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert len(raw) < 2 * limits.MESSAGE
    assert len(status_pb2.Status.FromString(raw).message) <= limits.MESSAGE


def test_a_bad_request_description_is_cut_too() -> None:
    error = errors.InvalidArgument("lines[0].sku", "no SKU " + "9" * 20_000)
    status = status_for(error, "/loyalty.v1.X/Y")
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert len(raw) < 3 * limits.MESSAGE


def test_the_call_log_names_at_most_a_short_prefix_of_the_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="service.calls"):
        log_call("/loyalty.v1.ReceiptService/Calculate", grpc.StatusCode.OK, 0.1, "r", "S" * 2**20)
    [record] = [r for r in caplog.records if r.name == "service.calls"]
    line = formatter("json").format(record)
    assert len(line) < 400
    store = json.loads(line)["store"]
    assert len(store) <= limits.QUOTE
    assert store.startswith("SSSS") and store.endswith("...")
