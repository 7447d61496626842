"""Every result says which configuration computed it (spec §12): Calculate answers with the
configuration version of the snapshot it used, a catalogue or offer write raises it, and a
Confirm of a token calculated on an older configuration commits what was shown, with that
older number."""

from __future__ import annotations

from loyalty.v1 import backoffice_pb2 as bo
from loyalty.v1 import common_pb2 as c
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.cache.state import BenefitCache
from service.store import db
from tests.e2e.conftest import auth
from tests.e2e.test_backoffice import call


def _receipt(receipt_id: str) -> receipt_pb2.Receipt:
    line = receipt_pb2.ReceiptLine(line_id="1", sku="CV-1", quantity=1000, price=8000, amount=8000)
    return receipt_pb2.Receipt(
        receipt_id=receipt_id, store_id="S001", channel=c.CHANNEL_POS, lines=[line]
    )


def _offer(percent: int) -> bo.Offer:
    return bo.Offer(
        id="A-CV",
        name="Config version test",
        level=c.LEVEL_ALL_BUYERS,
        benefit=c.Benefit(kind=c.BENEFIT_KIND_PERCENT, value=percent),
        scope_group_id="G-CV",
        priority=2000,
        stacking=c.STACKING_EXCLUSIVE,
        active=True,
    )


def test_a_confirm_commits_what_an_older_configuration_showed_and_says_which(channel):
    call(channel, "UpsertProducts", bo.UpsertProductsRequest(
        products=[bo.Product(sku="CV-1", name="Versioned", unit=c.UNIT_PIECE)]
    ))  # fmt: skip
    call(channel, "UpsertProductGroups", bo.UpsertProductGroupsRequest(
        groups=[bo.ProductGroup(id="G-CV", name="CV", skus=["CV-1"])]
    ))  # fmt: skip
    receipts = receipt_pb2_grpc.ReceiptServiceStub(channel)
    call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=_offer(1000)))
    receipt = _receipt("CV-R1")
    shown = receipts.Calculate(
        receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
    )
    version = shown.result.configuration_version
    assert version > 0
    assert shown.result.total_discount == 800

    call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=_offer(2500)))
    now = receipts.Calculate(
        receipt_pb2.CalculateRequest(receipt=_receipt("CV-R2")), timeout=10, metadata=auth()
    )
    assert now.result.configuration_version > version
    assert now.result.total_discount == 2000

    confirmed = receipts.Confirm(
        receipt_pb2.ConfirmRequest(receipt=receipt, confirmation_token=shown.confirmation_token),
        timeout=10,
        metadata=auth(),
    )
    assert confirmed.result.total_discount == 800
    assert confirmed.result.configuration_version == version
    repeated = receipts.Confirm(
        receipt_pb2.ConfirmRequest(receipt=receipt, confirmation_token=shown.confirmation_token),
        timeout=10,
        metadata=auth(),
    )
    assert repeated.replayed and repeated.result.configuration_version == version


def test_the_same_configuration_has_the_same_number_on_every_replica(channel, demo_server):
    """A second cache loading from the same store (another replica) reads the same number
    as the server's, and a write raises it for both."""
    engine = db.make_engine(demo_server.settings.database_url)
    try:
        replica = BenefitCache(db.make_session_factory(engine), time_zone="Europe/Moscow")
        before = replica.reload_snapshot().configuration_version
        assert before == demo_server.cache.snapshot.configuration_version
        call(channel, "UpsertOffer", bo.UpsertOfferRequest(offer=_offer(3000)))
        after = replica.reload_snapshot().configuration_version
        assert after > before
        assert after == demo_server.cache.snapshot.configuration_version
    finally:
        engine.dispose()
