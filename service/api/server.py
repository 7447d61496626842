"""Builds the gRPC server: services, health, reflection, interceptors, and its life cycle.

Health says NOT_SERVING until the store is migrated and the cache loaded, and again from the
moment a shutdown begins, so load balancers stop sending calls before the server stops.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from loyalty.v1 import (
    backoffice_pb2,
    backoffice_pb2_grpc,
    coupons_pb2,
    coupons_pb2_grpc,
    member_pb2,
    member_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
)
from service.api.auth import CredentialBook
from service.api.backoffice import BackOfficeServicer
from service.api.coupons import CouponServicer
from service.api.interceptors import Budgets, CallInterceptor
from service.api.lookup import MemberLookup
from service.api.members import MemberServicer
from service.api.metrics import CallMetrics, StatsCollector
from service.api.notifications import NotificationServicer
from service.api.receipts import ReceiptServicer
from service.bootstrap import prepare_store
from service.cache.state import BenefitCache
from service.cache.sync import ChangeFollower
from service.config import Settings
from service.port import CannotListen
from service.scheduler import JobScheduler
from service.store import db

if TYPE_CHECKING:  # types only: the store builds the engine
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    receipt_pb2.DESCRIPTOR.services_by_name["ReceiptService"].full_name,
    member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name,
    backoffice_pb2.DESCRIPTOR.services_by_name["BackOfficeService"].full_name,
    notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
    coupons_pb2.DESCRIPTOR.services_by_name["CouponService"].full_name,
)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Health of the store behind this replica: NOT_SERVING while it cannot be reached. The
# service itself stays SERVING, since calculations for cached members keep working.
STORE_HEALTH = "loyalty.v1.Store"


@dataclass
class LoyaltyServer:
    settings: Settings
    grpc_server: grpc.Server
    health: health.HealthServicer
    store: Engine
    cache: BenefitCache
    credentials: CredentialBook
    follower: ChangeFollower
    metrics: CallMetrics
    notifications: NotificationServicer
    jobs: JobScheduler
    port: int
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start taking calls (health NOT_SERVING), prepare, then report SERVING."""
        self.grpc_server.start()
        self.prepare()

    def prepare(self) -> None:
        """Migrate the store, load demo data if asked, load the cache; then SERVING."""
        started = time.perf_counter()
        prepare_store(self.settings, self.store)
        self.credentials.reload()
        self.cache.reload_snapshot()
        self.follower.start_from_current()  # before preloading: no change is missed
        if self.settings.preload_members:
            began = time.perf_counter()
            count = self.cache.preload_members()
            log.info("preloaded %d members in %.1f s", count, time.perf_counter() - began)
        self.jobs.start()
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_address, self.settings.metrics_port)
        self._set_serving(True)
        log.info("serving on port %d (ready in %.1f s)", self.port, time.perf_counter() - started)

    def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let calls in flight finish within grace."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._set_serving(False)
        self.notifications.close()  # event streams end at their next poll
        grace = self.settings.grace_period_s if grace is None else grace
        self.grpc_server.stop(grace).wait()
        self.follower.stop()
        self.jobs.stop()
        self.store.dispose()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(self.grpc_server.wait_for_termination(timeout))

    def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        _set_health(self.health, status)


def _set_health(servicer: health.HealthServicer, status: Any) -> None:
    """The overall status, every loyalty service's and the store's, all at once."""
    for name in ("", *SERVICE_NAMES, STORE_HEALTH):
        servicer.set(name, status)


@dataclass(frozen=True)
class Extension:
    """Services added to a server beside the loyalty ones, by a program that starts the
    server itself (the benchmarks' empty and echo services: bench/server.py). Production
    starts none."""

    handlers: tuple[Any, ...] = ()  # grpc.GenericRpcHandler
    public_prefixes: tuple[str, ...] = ()  # their methods that need no credential


def create_server(
    settings: Settings, extension: Extension = Extension()
) -> tuple[LoyaltyServer, int]:
    """A server bound to settings.address (port 0 picks a free one), not yet started."""
    store = db.make_engine(settings.database_url)
    health_servicer = health.HealthServicer()
    sessions = db.make_session_factory(store)
    credentials = CredentialBook(sessions)
    metrics = CallMetrics()
    cache = BenefitCache(
        sessions,
        time_zone=settings.time_zone,
        member_capacity=settings.member_cache_size,
    )
    server = _grpc_server(settings, credentials, metrics, extension)
    follower = _follower(settings, sessions, cache, credentials, metrics, health_servicer)
    notifications = _add_loyalty_services(server, settings, sessions, cache, follower)
    server.add_generic_rpc_handlers(extension.handlers)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
    if settings.serves_reflection:
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    port = _bind(server, settings)
    metrics.add_collector(StatsCollector(lambda: _cache_and_sync_stats(cache, follower)))
    jobs = JobScheduler(sessions, cache, settings.jobs_interval_s)
    loyalty = LoyaltyServer(
        settings,
        server,
        health_servicer,
        store,
        cache,
        credentials,
        follower,
        metrics,
        notifications,
        jobs,
        port,
    )
    return loyalty, port


def _grpc_server(
    settings: Settings, credentials: CredentialBook, metrics: CallMetrics, extension: Extension
) -> grpc.Server:
    budgets = Budgets(
        settings.max_streams, settings.max_streams_per_connection, settings.max_store_calls
    )
    interceptor = CallInterceptor(
        credentials,
        metrics,
        log_calls=settings.log_calls,
        budgets=budgets,
        public_prefixes=extension.public_prefixes,
    )
    return grpc.server(
        # Streams and calls that wait on the store get threads of their own beyond
        # max_workers, which calls from memory use (service/api/interceptors.py).
        futures.ThreadPoolExecutor(max_workers=settings.max_workers + budgets.threads),
        # Beyond this many calls in flight, new calls get RESOURCE_EXHAUSTED at once
        # instead of queueing without end.
        maximum_concurrent_rpcs=settings.max_concurrent_calls,
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
        ],
    )


def _follower(
    settings: Settings,
    sessions: Any,
    cache: BenefitCache,
    credentials: CredentialBook,
    metrics: CallMetrics,
    health_servicer: health.HealthServicer,
) -> ChangeFollower:
    def store_state(available: bool) -> None:
        serving = health_pb2.HealthCheckResponse.SERVING
        health_servicer.set(
            STORE_HEALTH, serving if available else health_pb2.HealthCheckResponse.NOT_SERVING
        )

    return ChangeFollower(
        sessions,
        cache,
        on_credentials_changed=credentials.reload,
        poll_interval_s=settings.sync_interval_s,
        poll_timeout_s=settings.store_timeout_s,
        observe_delay=metrics.sync_delay.observe,
        on_store_state=store_state,
    )


def _add_loyalty_services(
    server: grpc.Server,
    settings: Settings,
    sessions: Any,
    cache: BenefitCache,
    follower: ChangeFollower,
) -> NotificationServicer:
    members = MemberLookup.from_settings(cache, settings)  # one miss budget per credential
    receipts = ReceiptServicer(
        settings,
        cache,
        sessions=sessions,
        store_available=lambda: follower.store_available,
        members=members,
    )
    receipt_pb2_grpc.add_ReceiptServiceServicer_to_server(receipts, server)
    member_pb2_grpc.add_MemberServiceServicer_to_server(
        MemberServicer(settings, cache, sessions, members=members), server
    )
    backoffice_pb2_grpc.add_BackOfficeServiceServicer_to_server(
        BackOfficeServicer(settings, cache, sessions), server
    )
    coupons_pb2_grpc.add_CouponServiceServicer_to_server(CouponServicer(cache, sessions), server)
    # Each event stream holds a worker thread: at most half of them, so calls still flow.
    notifications = NotificationServicer(sessions, max_streams=max(1, settings.max_workers // 2))
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(notifications, server)
    return notifications


def _cache_and_sync_stats(
    cache: BenefitCache, follower: ChangeFollower
) -> dict[str, tuple[str, float]]:
    return {
        "loyalty_cache_member_hits": ("counter", cache.stats.member_hits),
        "loyalty_cache_member_misses": ("counter", cache.stats.member_misses),
        "loyalty_cache_members": ("gauge", cache.cached_member_count()),
        "loyalty_sync_changes_applied": ("counter", follower.stats.changes_applied),
        "loyalty_sync_errors": ("counter", follower.stats.errors),
        "loyalty_sync_open_gaps": ("gauge", follower.open_gaps),
        "loyalty_sync_seconds_since_success": ("gauge", follower.seconds_since_success()),
    }


def _bind(server: grpc.Server, settings: Settings) -> int:
    """The port bound; raises CannotListen."""
    try:
        port = _add_port(server, settings)
    except RuntimeError as exc:  # gRPC's "Failed to bind to address"; its log says why
        raise CannotListen(settings.address, "the address cannot be bound") from exc
    if port == 0:
        raise CannotListen(settings.address, "the address cannot be bound")
    return port


def _add_port(server: grpc.Server, settings: Settings) -> int:
    """Plain TCP, TLS (--tls-cert/--tls-key), or mutual TLS (also --tls-client-ca)."""
    if not settings.tls_cert:
        return server.add_insecure_port(settings.address)
    with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
        pair = (key.read(), cert.read())
    client_ca = None
    if settings.tls_client_ca:
        with open(settings.tls_client_ca, "rb") as ca:
            client_ca = ca.read()
    credentials = grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
    return server.add_secure_port(settings.address, credentials)
