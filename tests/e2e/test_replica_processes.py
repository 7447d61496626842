"""Two server processes on one PostgreSQL server, each a replica with its own cache: a change
made through one is seen by the other within the sync bound, and with writers going through
both at once every replica converges to the store's state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import pytest

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import common_pb2, member_pb2, member_pb2_grpc, receipt_pb2, receipt_pb2_grpc
from service.api.auth import Role
from service.store import db, loader
from tests.e2e.conftest import auth
from tests.pg import PostgresCluster
from tests.waiting import until

pytestmark = pytest.mark.postgres

OFFER = "I-FAV-PRODUCTS"  # the demo's predefined favorite-products offer: 3 slots
SYNC_BOUND_S = 5.0


def start_replica(database_url: str) -> subprocess.Popen[str]:
    """A one-process server with the demo data; it prints one line once it is SERVING."""
    env = {**os.environ, "LOYALTY_LOG_LEVEL": "WARNING", "LOYALTY_JOBS_INTERVAL_S": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "service.main", "--address", "127.0.0.1:0", "--processes", "1",
         "--database-url", database_url, "--demo-data", "on", "--log-calls", "off"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def serving_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "listening on" in line, f"exited with {process.poll()}: {line!r}"
    return int(line.strip().rsplit(":", 1)[1])


def stop_replica(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def replica(database_url: str) -> Iterator[grpc.Channel]:
    process = start_replica(database_url)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{serving_port(process)}") as channel:
            yield channel
    finally:
        stop_replica(process)


@pytest.fixture
def store_url(pg_cluster: PostgresCluster) -> str:
    return pg_cluster.create_database()


@pytest.fixture
def replicas(store_url: str) -> Iterator[tuple[grpc.Channel, grpc.Channel]]:
    with replica(store_url) as first, replica(store_url) as second:
        yield first, second


def slots_in_store(url: str, index: int) -> list[str]:
    engine = db.make_engine(url)
    try:
        with db.make_session_factory(engine)() as session:
            member = loader.load_member(session, f"M{index:06d}")
    finally:
        engine.dispose()
    assert member is not None
    return sorted(member.favorite_slots.get(OFFER, ()))


def identity(index: int) -> common_pb2.MemberIdentity:
    return common_pb2.MemberIdentity(member_id=f"M{index:06d}")


def favorites(channel: grpc.Channel, index: int) -> tuple[list[str], list[str]]:
    """(the member's slots, the list to choose from) as this replica sees them."""
    stub = member_pb2_grpc.MemberServiceStub(channel)
    view = stub.GetMemberOffers(
        member_pb2.GetMemberOffersRequest(member=identity(index)),
        timeout=10, metadata=auth(Role.CUSTOMER_SERVICES),
    )  # fmt: skip
    (offer,) = [f for f in view.favorite_products if f.offer_id == OFFER]
    return [s.sku for s in offer.slots], [item.sku for item in offer.list]


def operator_set(channel: grpc.Channel, index: int, skus: list[str]) -> None:
    member_pb2_grpc.MemberServiceStub(channel).OperatorSetFavoriteProducts(
        member_pb2.OperatorSetFavoriteProductsRequest(
            member=identity(index), offer_id=OFFER, skus=skus, comment="replica test"
        ),
        timeout=10, metadata=auth(Role.OPERATOR),
    )  # fmt: skip


def eventually(check: Callable[[], object], within_s: float = SYNC_BOUND_S) -> None:
    until(check, within_s, what="replicas agreeing")


def test_an_edit_through_one_replica_gives_the_benefit_on_the_other(
    replicas: tuple[grpc.Channel, grpc.Channel],
) -> None:
    first, second = replicas
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    receipt.ClearField("member")
    receipt.member.member_id = "M000002"
    stub = receipt_pb2_grpc.ReceiptServiceStub(second)

    def favorite_skus_on_second() -> set[str]:
        """Lines on which the second replica considers the favorite offer: it applied, or
        (explain) lost to a better offer; either way the SKU is in the member's slots there."""
        request = receipt_pb2.CalculateRequest(receipt=receipt, explain=True)
        result = stub.Calculate(request, timeout=10, metadata=auth()).result
        return {
            line.sku for line in result.lines
            for offer_id in [*(b.offer_id for b in line.benefits),
                             *(r.offer_id for r in line.rejected)]
            if offer_id == OFFER
        }  # fmt: skip

    before = favorite_skus_on_second()  # the second replica now has the member cached
    _, choices = favorites(first, 2)
    on_receipt = [
        line.sku for line in receipt.lines if line.sku in choices and line.sku not in before
    ]
    assert on_receipt, "the demo receipt carries a product of the favorites list"
    operator_set(first, 2, [on_receipt[0], "", ""])
    eventually(lambda: on_receipt[0] in favorite_skus_on_second())


def test_with_writers_through_both_replicas_every_replica_converges(
    replicas: tuple[grpc.Channel, grpc.Channel], store_url: str
) -> None:
    members = list(range(10, 22))
    _, choices = favorites(replicas[0], members[0])
    for index in members:  # both replicas cache every member before the writes
        favorites(replicas[0], index)
        favorites(replicas[1], index)
    errors: list[BaseException] = []

    def writer(channel: grpc.Channel, offset: int) -> None:
        try:
            for round_ in range(4):
                for index in members:
                    pick = choices[(index + round_ + offset) % len(choices)]
                    operator_set(channel, index, [pick, "", ""])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(ch, n)) for n, ch in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for index in members:
        in_store = slots_in_store(store_url, index)
        for channel in replicas:
            eventually(
                lambda c=channel, i=index, want=in_store: (
                    sorted(filter(None, favorites(c, i)[0])) == want
                )
            )


def test_replicas_started_at_once_on_a_new_database_all_serve(store_url: str) -> None:
    """A deployment starting every replica together: one migrates and loads the demo data,
    the others wait for it and then serve the same store."""
    processes = [start_replica(store_url) for _ in range(3)]
    try:
        for process in processes:
            port = serving_port(process)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                assert favorites(channel, 2)[1], "the demo's favorites list is there"
    finally:
        for process in processes:
            stop_replica(process)
