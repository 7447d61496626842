"""Settings from command-line flags and LOYALTY_* environment variables (flags win)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "LOYALTY_"
MAX_SALE_TIME_AGE_S = 3660 * 86400.0  # more is a typo; inf would overflow the datetime arithmetic
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


T = TypeVar("T")


def setting(default: T, help: str) -> T:  # noqa: A002 - argparse's word
    """A setting with its --help text; the flag and LOYALTY_* variable come from its name."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    # --- serving ---
    address: str = setting("127.0.0.1:50051", "host:port to serve gRPC on (port 0: any free)")
    database_url: str = setting(
        "sqlite:///var/loyalty.db",
        "SQLAlchemy URL of the store: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
    )
    time_zone: str = setting(
        "Europe/Moscow", "the program's IANA time zone: what 'day', 'month' and 00:00 mean"
    )
    currency: str = setting("RUB", "ISO 4217 code of every amount; one per deployment")
    log_level: str = setting("INFO", "lowest level logged: DEBUG, INFO, WARNING, ERROR")
    development: bool = setting(
        False,
        "development mode: the built-in token secret is allowed and reflection is on; "
        "never in production (a start without a real secret is refused)",
    )
    reflection: bool = setting(False, "serve gRPC reflection (always on in development mode)")
    demo_data: bool = setting(
        False,
        "load the demo data set and dev credentials into an empty store; implies --development",
    )
    grace_period_s: float = setting(10.0, "seconds calls in flight get to finish on SIGTERM")
    exit_margin_s: float = setting(
        10.0, "seconds past the grace period a stopping process waits for its threads, then exits"
    )
    max_workers: int = setting(16, "threads serving unary calls in one process")
    # Streams (health Watch, reflection, event streams, imports) each hold a thread of their
    # own while open, beyond max_workers.
    max_streams: int = setting(8, "streams open at once per process, beyond --max-workers")
    max_streams_per_connection: int = setting(4, "streams open at once per client connection")
    # A hung store cannot take Calculate's threads.
    max_store_calls: int = setting(
        8,
        "calls waiting on the store at once (confirms, refunds, selections, back office), "
        "beyond --max-workers; more get UNAVAILABLE STORE_BUSY",
    )
    store_timeout_s: float = setting(
        2.0,
        "longest database wait where no call deadline bounds it (the change follower's "
        "polls): a frozen store is noticed within about this long",
    )
    member_cache_size: int = setting(200_000, "members kept in memory per process")
    preload_members: bool = setting(False, "load members into the cache at start (up to its size)")
    max_receipt_lines: int = setting(1000, "lines a receipt may have")
    max_sale_time_age_s: float = setting(
        72 * 3600.0,
        "how far in the past a sale time may be (registers that were offline send late)",
    )
    # --- confirmation tokens (service/api/tokens.py; rotation runbook in docs/security.md) ---
    token_secret: str = setting(
        "", "HMAC key of confirmation tokens, >= 32 bytes, the same on every replica"
    )
    token_secret_file: str = setting("", "file holding --token-secret (keeps it off command lines)")
    token_key_id: str = setting("1", "id of the current token key, written into every token")
    token_previous_secret: str = setting("", "the key before the current one, while rotating")
    token_previous_secret_file: str = setting("", "file holding --token-previous-secret")
    token_previous_key_id: str = setting("", "id of the previous token key")
    token_previous_until: str = setting(
        "", "ISO 8601 time with offset until which the previous key still verifies"
    )
    token_ttl_s: float = setting(24 * 3600.0, "a token older than this is refused: calculate again")
    # --- card lookups (service/api/lookup.py) ---
    card_miss_burst: int = setting(
        30, "card numbers naming no member a credential may send at once before RESOURCE_EXHAUSTED"
    )
    card_miss_rate_per_s: float = setting(1.0, "card misses per second refilled per credential")
    # --- observability ---
    metrics_port: int = setting(0, "Prometheus metrics on this port (worker i: port + i); 0: off")
    metrics_address: str = setting("127.0.0.1", "address the metrics endpoint listens on")
    log_calls: bool = setting(True, "one log line per call (logger service.calls)")
    max_concurrent_calls: int = setting(
        1000, "calls in a process at once; more get RESOURCE_EXHAUSTED at once"
    )
    # --- TLS ---
    tls_cert: str = setting("", "PEM server certificate chain; empty: plain TCP")
    tls_key: str = setting("", "PEM private key of --tls-cert")
    tls_client_ca: str = setting(
        "", "PEM CA of client certificates: mutual TLS, a client certificate required"
    )
    # --- background work and processes ---
    jobs_interval_s: float = setting(
        60.0, "seconds between member jobs (list switch, selection allowed); 0: off"
    )
    sync_interval_s: float = setting(0.1, "seconds between polls of the change feed per replica")
    processes: int = setting(0, "server processes sharing the port; 0: one per core (1 on port 0)")
    reuse_port: bool = setting(False, "SO_REUSEPORT; set for the workers of a multi-process server")
    pin_cpu: int = setting(-1, "pin this process to a core; -1: no pinning")
    worker_name: str = setting("", "set by the supervisor: this worker's name in logs")
    supervisor_pid: int = setting(0, "set by the supervisor: the worker exits when it dies")
    migrate_only: bool = setting(False, "migrate the store, print one line and exit; serve nothing")
    # --- campaign replay ---
    replay_page_size: int = setting(
        2000, "confirmed receipts a campaign replay reads per statement (its memory bound)"
    )
    replay_max_days: int = setting(92, "longest period of sale times a campaign replay takes")
    # --- logging and tracing ---
    log_format: str = setting(
        "json",
        "log lines as json (one object per line, for a log shipper) or text (for a terminal)",
    )
    otlp_endpoint: str = setting(
        "",
        "OTLP/gRPC collector traces are exported to, e.g. http://127.0.0.1:4317 "
        "(https:// for TLS); empty: tracing off",
    )
    # --- till sessions (service/api/till_sessions.py, docs/till_sessions.md) ---
    till_session_address: str = setting(
        "",
        "host:port of the till session stream, served by an asyncio server of its own "
        "(port 0: any free); empty: off",
    )
    till_session_workers: int = setting(
        4, "threads that calculate the receipts of till sessions, beyond --max-workers"
    )
    till_sessions_max: int = setting(10_000, "till sessions open at once per process")
    till_sessions_per_connection: int = setting(
        1_000, "till sessions open at once on one client connection"
    )
    till_sessions_per_credential: int = setting(
        2_000, "till sessions open at once per credential (all its connections)"
    )
    till_session_idle_s: float = setting(
        600.0, "a till session that sends nothing this long is ended (SESSION_IDLE)"
    )
    till_session_max_messages: int = setting(
        20_000, "messages one till session may send (its lines: --max-receipt-lines)"
    )
    # --- points spending (spec §21, docs/points.md) ---
    point_value: int = setting(1, "minor units one bonus point pays (1: 1 point = 1 kopeck)")
    points_max_share_bp: int = setting(
        5000, "share of what is left to pay after discounts payable with points, basis points"
    )
    points_min_money_per_line: int = setting(
        0, "minor units every line keeps paid in money when points are spent (0: none)"
    )
    points_accrue_on_money_only: bool = setting(
        True, "accrue bonus points only on the part of a line paid in money"
    )
    points_activation_delay_s: float = setting(
        0.0, "seconds after a confirm before its accrued points may be spent"
    )
    points_expiry_days: int = setting(
        0, "days accrued points may be spent once active, then they expire (0: never)"
    )
    points_expiring_soon_days: int = setting(
        30, "points expiring within this many days are 'expiring soon' (lookup, event)"
    )
    # --- coupons ---
    coupon_release_on_refund: bool = setting(
        True, "a refund that returns a whole receipt gives its coupon codes back"
    )
    coupon_miss_rate_per_s: float = setting(
        0.2, "unknown coupon codes a credential may try per second, after the burst"
    )
    coupon_miss_burst: int = setting(20, "unknown coupon codes a credential may try at once")
    # --- serving (issue 19: Calculate near gRPC's limit) ---
    token_format: int = setting(
        3,
        "confirmation token format signed: 3 (fingerprint without a copy of the receipt), or 2"
        " while replicas of a version that reads only 2 still confirm (docs/security.md)",
    )

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # "Europe": a directory
            raise ValueError(f"unknown time zone {self.time_zone!r}") from exc
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f"currency must be an ISO 4217 code, got {self.currency!r}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.processes < 0:
            raise ValueError("processes must be >= 0")
        if self.grace_period_s < 0 or self.exit_margin_s <= 0:
            raise ValueError("grace_period_s must be >= 0 and exit_margin_s > 0")
        if self.max_workers < 1 or self.member_cache_size < 1 or self.max_receipt_lines < 1:
            raise ValueError("max_workers, member_cache_size and max_receipt_lines must be >= 1")
        if self.max_store_calls < 1 or self.store_timeout_s <= 0:
            raise ValueError("max_store_calls must be >= 1 and store_timeout_s > 0")
        if self.max_streams < 1 or self.max_streams_per_connection < 1:
            raise ValueError("max_streams and max_streams_per_connection must be >= 1")
        if self.card_miss_burst < 1 or self.card_miss_rate_per_s <= 0:
            raise ValueError("card_miss_burst must be >= 1 and card_miss_rate_per_s > 0")
        if not 0 < self.token_ttl_s <= MAX_SALE_TIME_AGE_S:  # NaN and inf too
            raise ValueError("token_ttl_s must be > 0 (and at most ten years)")
        if not 0 < self.max_sale_time_age_s <= MAX_SALE_TIME_AGE_S:  # NaN and inf too
            raise ValueError("max_sale_time_age_s must be > 0 (and at most ten years)")
        if not 1 <= self.replay_page_size <= 100_000 or self.replay_max_days < 1:
            raise ValueError("replay_page_size must be 1..100000 and replay_max_days >= 1")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be json or text, got {self.log_format!r}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ValueError("otlp_endpoint must be an http:// or https:// URL (or empty: off)")
        if self.token_format not in (2, 3):
            raise ValueError(f"token_format must be 2 or 3, got {self.token_format}")
        if self.coupon_miss_burst < 1 or not self.coupon_miss_rate_per_s > 0:
            raise ValueError("coupon_miss_burst must be >= 1 and coupon_miss_rate_per_s > 0")
        self._check_till_sessions()
        self._check_points()

    def _check_till_sessions(self) -> None:
        counts = (
            self.till_session_workers,
            self.till_sessions_max,
            self.till_sessions_per_connection,
            self.till_sessions_per_credential,
            self.till_session_max_messages,
        )
        if min(counts) < 1:
            raise ValueError(
                "till_session_workers, till_sessions_max, till_sessions_per_connection, "
                "till_sessions_per_credential and till_session_max_messages must be >= 1"
            )
        if not 0 < self.till_session_idle_s <= 86400:  # NaN and inf too
            raise ValueError("till_session_idle_s must be > 0 (and at most a day)")

    def _check_points(self) -> None:
        if not 1 <= self.point_value <= 1_000_000:
            raise ValueError("point_value must be from 1 to 1000000 minor units")
        if not 0 <= self.points_max_share_bp <= 10000:
            raise ValueError("points_max_share_bp must be from 0 to 10000")
        if self.points_min_money_per_line < 0:
            raise ValueError("points_min_money_per_line must be >= 0")
        if not 0 <= self.points_activation_delay_s <= MAX_SALE_TIME_AGE_S:  # NaN and inf too
            raise ValueError("points_activation_delay_s must be >= 0 (and at most ten years)")
        if (
            not 0 <= self.points_expiry_days <= 3660
            or not 0 <= self.points_expiring_soon_days <= 3660
        ):
            raise ValueError("points_expiry_days and points_expiring_soon_days: 0 to 3660")

    @property
    def development_mode(self) -> bool:
        """Development conveniences allowed: the built-in token secret, reflection."""
        return self.development or self.demo_data

    @property
    def serves_reflection(self) -> bool:
        return self.reflection or self.development_mode


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _converter(default: object):  # type: ignore[no-untyped-def]
    if isinstance(default, bool):
        return _parse_bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def _shown(default: object) -> str:
    if default == "":
        return "empty"
    return str(default).lower() if isinstance(default, bool) else str(default)


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, overridden by LOYALTY_<NAME> variables, overridden by --<name> flags."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="loyalty-server", description=__doc__, allow_abbrev=False)
    values: dict[str, object] = {}
    for f in fields(Settings):
        convert = _converter(f.default)
        env_name = ENV_PREFIX + f.name.upper()
        if env_name in environ:
            values[f.name] = convert(environ[env_name])
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {_shown(f.default)}; env {env_name})"
        if convert is _parse_bool:
            parser.add_argument(
                flag, dest=f.name, type=_parse_bool, nargs="?", const=True, help=help_text
            )
        else:
            parser.add_argument(flag, dest=f.name, type=convert, help=help_text)
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        if value is not None:
            values[name] = value
    return Settings(**values)  # type: ignore[arg-type]
