"""Settings from command-line flags and LOYALTY_* environment variables (flags win)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "LOYALTY_"


@dataclass(frozen=True)
class Settings:
    address: str = "127.0.0.1:50051"
    database_url: str = "sqlite:///var/loyalty.db"
    time_zone: str = "Europe/Moscow"  # the program's zone: "day", "month", "00:00"
    currency: str = "RUB"  # ISO 4217, one per deployment
    log_level: str = "INFO"
    reflection: bool = True  # on in development; switch off in production
    demo_data: bool = False  # load the demo data set into an empty store on start
    grace_period_s: float = 10.0  # calls in flight get this long to finish on SIGTERM
    max_workers: int = 16  # threads serving calls in one process
    member_cache_size: int = 200_000  # members kept in memory per process
    preload_members: bool = False  # load members into the cache at start (up to its size)
    max_receipt_lines: int = 1000
    token_secret: str = "dev-only-change-me"  # signs confirmation tokens; same on every replica
    metrics_port: int = 0  # Prometheus metrics on this port (worker i: port + i); 0: off
    metrics_address: str = "127.0.0.1"
    log_calls: bool = True  # one JSON log line per call (logger service.calls)
    max_concurrent_calls: int = 1000  # per process; more get RESOURCE_EXHAUSTED at once
    tls_cert: str = ""  # PEM server certificate chain; empty: plain TCP
    tls_key: str = ""  # PEM private key of tls_cert
    tls_client_ca: str = ""  # PEM CA of client certificates: mutual TLS, client cert required
    bench_services: bool = False  # also serve the empty and echo services of `make bench`
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
