"""Builds the gRPC server: services, health, reflection, interceptors, and its life cycle.

Health says NOT_SERVING until the store is migrated and the cache loaded, and again from the
moment a shutdown begins, so load balancers stop sending calls before the server stops.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

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
    replay_pb2,
    replay_pb2_grpc,
)
from service.api import reflection
from service.api.auth import CredentialBook
from service.api.backoffice import BackOfficeServicer
from service.api.coupons import CouponServicer
from service.api.interceptors import Budgets, CallInterceptor
from service.api.lookup import MemberLookup
from service.api.members import MemberServicer
from service.api.metrics import CallMetrics, StatsCollector
from service.api.notifications import NotificationServicer
from service.api.receipts import ReceiptServicer
from service.api.replay import CampaignReplayServicer
from service.api.till_sessions import SessionLimits, TillSessionServer, TillSessionServicer
from service.api.tracing import provider_from_settings
from service.bootstrap import prepare_store
from service.cache.state import BenefitCache
from service.cache.sync import ChangeFollower
from service.config import Settings
from service.port import CannotListen
from service.scheduler import JobScheduler
from service.store import db

if TYPE_CHECKING:  # types only: the store builds the engine
    from opentelemetry.trace import TracerProvider
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    receipt_pb2.DESCRIPTOR.services_by_name["ReceiptService"].full_name,
    member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name,
    backoffice_pb2.DESCRIPTOR.services_by_name["BackOfficeService"].full_name,
    notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
    replay_pb2.DESCRIPTOR.services_by_name["CampaignReplayService"].full_name,
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
    # Made from the settings (OTLP export): shut down, so spans are flushed, with the server.
    own_tracing: Any = None
    till_sessions: TillSessionServer | None = None  # --till-session-address set
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start taking calls (health NOT_SERVING), prepare, then report SERVING."""
        self.grpc_server.start()
        if self.till_sessions is not None:
            self.till_sessions.start()
        self.prepare()

    @property
    def till_session_port(self) -> int:
        """The port of the till sessions; 0 when they are off."""
        return self.till_sessions.port if self.till_sessions is not None else 0

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
        stopped = self.grpc_server.stop(grace)
        if self.till_sessions is not None:
            self.till_sessions.stop(grace)  # within the same grace as the unary calls
        stopped.wait()
        self.follower.stop()
        self.jobs.stop()
        self.store.dispose()
        if self.own_tracing is not None:
            self.own_tracing.shutdown()

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
    settings: Settings,
    extension: Extension = Extension(),
    tracer_provider: TracerProvider | None = None,
) -> tuple[LoyaltyServer, int]:
    """A server bound to settings.address (port 0 picks a free one), not yet started. Calls
    and statements are traced into `tracer_provider` if given (tests), else to
    settings.otlp_endpoint if set; otherwise not at all."""
    own_tracing = None if tracer_provider is not None else provider_from_settings(settings)
    tracing = tracer_provider or own_tracing
    store = db.make_engine(settings.database_url)
    if tracing is not None:
        db.trace_statements(store, tracing)
    health_servicer = health.HealthServicer()
    sessions = db.make_session_factory(store)
    credentials = CredentialBook(sessions)
    metrics = CallMetrics()
    cache = BenefitCache(
        sessions,
        time_zone=settings.time_zone,
        member_capacity=settings.member_cache_size,
    )
    tracer = tracing.get_tracer("service.api") if tracing is not None else None
    server = _grpc_server(settings, credentials, metrics, extension, tracer)
    follower = _follower(settings, sessions, cache, credentials, metrics, health_servicer)
    receipts, notifications = _add_loyalty_services(server, settings, sessions, cache, follower)
    server.add_generic_rpc_handlers(extension.handlers)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
    if settings.serves_reflection:
        reflection.enable_reflection((*SERVICE_NAMES, health.SERVICE_NAME), server)
    # The sessions' port first: a grpc server that bound its port keeps it until collected.
    till_sessions = _till_sessions(settings, receipts, credentials, metrics)
    try:
        port = _bind(server, settings)
    except CannotListen:
        if till_sessions is not None:
            till_sessions.stop(0)
        raise
    metrics.add_collector(StatsCollector(lambda: _cache_and_sync_stats(cache, follower)))
    if till_sessions is not None:
        metrics.add_collector(StatsCollector(functools.partial(_session_stats, till_sessions)))
    jobs = JobScheduler(
        sessions,
        cache,
        settings.jobs_interval_s,
        points_expiring_soon=timedelta(days=settings.points_expiring_soon_days),
    )
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
        own_tracing,
        till_sessions,
    )
    return loyalty, port


def _till_sessions(
    settings: Settings,
    receipts: ReceiptServicer,
    credentials: CredentialBook,
    metrics: CallMetrics,
) -> TillSessionServer | None:
    """The asyncio server of the till sessions on its own port, calculating with the same
    servicer (cache, engine, token key) as Calculate, with the same credentials and TLS."""
    if not settings.till_session_address:
        return None
    limits = SessionLimits.from_settings(settings)

    def servicer_for(pool: futures.ThreadPoolExecutor) -> TillSessionServicer:
        return TillSessionServicer(
            receipts, credentials, metrics, limits, pool, log_calls=settings.log_calls
        )

    return TillSessionServer(
        settings, servicer_for, _server_credentials(settings), _options(settings)
    )


def _grpc_server(
    settings: Settings,
    credentials: CredentialBook,
    metrics: CallMetrics,
    extension: Extension,
    tracer: Any,
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
        tracer=tracer,
    )
    return grpc.server(
        # Streams and calls that wait on the store get threads of their own beyond
        # max_workers, which calls from memory use (service/api/interceptors.py).
        futures.ThreadPoolExecutor(max_workers=settings.max_workers + budgets.threads),
        # Beyond this many calls in flight, new calls get RESOURCE_EXHAUSTED at once
        # instead of queueing without end.
        maximum_concurrent_rpcs=settings.max_concurrent_calls,
        interceptors=[interceptor],
        options=_options(settings),
    )


def _options(settings: Settings) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
    ]


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
) -> tuple[ReceiptServicer, NotificationServicer]:
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
    replay_pb2_grpc.add_CampaignReplayServiceServicer_to_server(
        CampaignReplayServicer(settings, sessions), server
    )
    coupons_pb2_grpc.add_CouponServiceServicer_to_server(CouponServicer(cache, sessions), server)
    # Each event stream holds a worker thread: at most half of them, so calls still flow.
    notifications = NotificationServicer(sessions, max_streams=max(1, settings.max_workers // 2))
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(notifications, server)
    return receipts, notifications


def _cache_and_sync_stats(
    cache: BenefitCache, follower: ChangeFollower
) -> dict[str, tuple[str, str, float]]:
    stats, sync = cache.stats, follower.stats
    return {
        "loyalty_cache_member_hits": (
            "counter",
            "Member look-ups this process answered from its cache",
            stats.member_hits,
        ),
        "loyalty_cache_member_misses": (
            "counter",
            "Member look-ups that had to read the store (member not in this process's cache)",
            stats.member_misses,
        ),
        "loyalty_cache_members": (
            "gauge",
            "Members held in this process's cache now",
            cache.cached_member_count(),
        ),
        "loyalty_sync_changes_applied": (
            "counter",
            "Changes from the store's change feed applied to this process's cache",
            sync.changes_applied,
        ),
        "loyalty_sync_errors": (
            "counter",
            "Polls of the change feed that failed (store unreachable or erroring)",
            sync.errors,
        ),
        "loyalty_sync_open_gaps": (
            "gauge",
            "Holes in the change feed this replica is waiting on (a writer not yet committed)",
            follower.open_gaps,
        ),
        "loyalty_sync_seconds_since_success": (
            "gauge",
            "Seconds since this replica last polled the change feed successfully",
            follower.seconds_since_success(),
        ),
    }


def _session_stats(till_sessions: TillSessionServer) -> dict[str, tuple[str, str, float]]:
    return {
        "loyalty_till_sessions_open": (
            "gauge",
            "Till sessions (scans streamed at the till) open in this process",
            till_sessions.open_sessions,
        )
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
    credentials = _server_credentials(settings)
    if credentials is None:
        return server.add_insecure_port(settings.address)
    return server.add_secure_port(settings.address, credentials)


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """None (plain TCP), TLS (--tls-cert/--tls-key), or mutual TLS (also --tls-client-ca)."""
    if not settings.tls_cert:
        return None
    with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
        pair = (key.read(), cert.read())
    client_ca = None
    if settings.tls_client_ca:
        with open(settings.tls_client_ca, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
