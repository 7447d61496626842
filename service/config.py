"""Settings from command-line flags and LOYALTY_* environment variables (flags win)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "LOYALTY_"
MAX_SALE_TIME_AGE_S = 3660 * 86400.0  # more is a typo; inf would overflow the datetime arithmetic


@dataclass(frozen=True)
class Settings:
    address: str = "127.0.0.1:50051"
    database_url: str = "sqlite:///var/loyalty.db"
    time_zone: str = "Europe/Moscow"  # the program's zone: "day", "month", "00:00"
    currency: str = "RUB"  # ISO 4217, one per deployment
    log_level: str = "INFO"
    # Development mode: the built-in token secret is allowed and reflection is on. Implied
    # by demo_data; never in production (a start without a real secret is refused).
    development: bool = False
    reflection: bool = False  # gRPC reflection; always on in development mode
    demo_data: bool = False  # load the demo data set and dev credentials into an empty store
    grace_period_s: float = 10.0  # calls in flight get this long to finish on SIGTERM
    max_workers: int = 16  # threads serving unary calls in one process
    # Streams (health Watch, reflection, event streams, imports) each hold a thread of their
    # own while open: at most this many at once, and per connection, beyond max_workers.
    max_streams: int = 8
    max_streams_per_connection: int = 4
    # Calls that wait on the store (confirms, refunds, selections, back office) hold at most
    # this many threads, beyond max_workers: a hung store cannot take Calculate's threads.
    max_store_calls: int = 8
    # The longest any database wait may take where no call deadline bounds it (the change
    # follower's polls): a frozen store is noticed within about this long.
    store_timeout_s: float = 2.0
    member_cache_size: int = 200_000  # members kept in memory per process
    preload_members: bool = False  # load members into the cache at start (up to its size)
    max_receipt_lines: int = 1000
    max_sale_time_age_s: float = 72 * 3600.0  # registers that were offline send late
    # Confirmation tokens (service/api/tokens.py): signed with the current key, verified
    # with it and, until token_previous_until, with the previous one (key rotation). Secrets
    # are at least 32 bytes, the same on every replica; read from a file, they never need to
    # appear on a command line. docs/security.md has the rotation runbook.
    token_secret: str = ""
    token_secret_file: str = ""
    token_key_id: str = "1"
    token_previous_secret: str = ""
    token_previous_secret_file: str = ""
    token_previous_key_id: str = ""
    token_previous_until: str = ""  # ISO 8601 time with offset: the previous key's end
    token_ttl_s: float = 24 * 3600.0  # a token older than this is refused: calculate again
    # Card numbers that name no member, per credential: this many at once, then this many a
    # second; beyond, card lookups are RESOURCE_EXHAUSTED (service/api/lookup.py).
    card_miss_burst: int = 30
    card_miss_rate_per_s: float = 1.0
    metrics_port: int = 0  # Prometheus metrics on this port (worker i: port + i); 0: off
    metrics_address: str = "127.0.0.1"
    log_calls: bool = True  # one JSON log line per call (logger service.calls)
    max_concurrent_calls: int = 1000  # per process; more get RESOURCE_EXHAUSTED at once
    tls_cert: str = ""  # PEM server certificate chain; empty: plain TCP
    tls_key: str = ""  # PEM private key of tls_cert
    tls_client_ca: str = ""  # PEM CA of client certificates: mutual TLS, client cert required
    jobs_interval_s: float = 60.0  # member jobs (list switch, selection allowed); 0: off
    sync_interval_s: float = 0.1  # how often each replica polls the change feed
    processes: int = 0  # server processes sharing the port; 0: one per core (1 on port 0)
    reuse_port: bool = False  # SO_REUSEPORT; set for the workers of a multi-process server
    pin_cpu: int = -1  # pin this process to a core; -1: no pinning
    worker_name: str = ""  # set by the supervisor, for logs
    supervisor_pid: int = 0  # set by the supervisor: its worker exits when it dies
    migrate_only: bool = False  # migrate the store, print one line and exit; serve nothing

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


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, overridden by LOYALTY_<NAME> variables, overridden by --<name> flags."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="loyalty-server", description=__doc__)
    values: dict[str, object] = {}
    for f in fields(Settings):
        convert = _converter(f.default)
        env_name = ENV_PREFIX + f.name.upper()
        if env_name in environ:
            values[f.name] = convert(environ[env_name])
        flag = "--" + f.name.replace("_", "-")
        if convert is _parse_bool:
            parser.add_argument(flag, dest=f.name, type=_parse_bool, nargs="?", const=True)
        else:
            parser.add_argument(flag, dest=f.name, type=convert)
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        if value is not None:
            values[name] = value
    return Settings(**values)  # type: ignore[arg-type]
