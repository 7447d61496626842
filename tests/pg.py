"""A throwaway PostgreSQL cluster for tests: initdb into a temporary directory, start it on a
free loopback port, hand out fresh databases, stop it and remove everything at the end.

PostgreSQL refuses to run as root, so when the tests run as root every server command runs as
the `postgres` user (runuser) and the directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

PG_BIN_DIR = Path(os.environ.get("PG_BIN_DIR", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """The cluster cannot be set up here; the message says why and what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL server in a temporary directory. Use as a context manager."""

    def __init__(self, bin_dir: Path = PG_BIN_DIR) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self.port = 0
        self.started_in = 0.0

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        began = time.monotonic()
        self._check_binaries()
        if self.as_root:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o700)
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        for attempt in range(START_ATTEMPTS):
            self.port = free_port()
            try:
                self._pg_ctl_start()
                break
            except PostgresUnavailable:
                if attempt == START_ATTEMPTS - 1:
                    raise
        self.started_in = time.monotonic() - began

    def _pg_ctl_start(self) -> None:
        options = " ".join(
            (
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            )
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", "60",
            "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
        )  # fmt: skip

    def stop_server(self) -> None:
        """Stop the server but keep its data (an outage); restart_server() brings it back."""
        self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data_dir))

    def restart_server(self) -> None:
        """Start the stopped server again on the same port."""
        self._pg_ctl_start()

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open, nothing answers
        (a hung database, which no TCP timeout notices). thaw() must follow."""
        self._frozen = self._server_pids()
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in getattr(self, "_frozen", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def _server_pids(self) -> list[int]:
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:  # the parent pid
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def close(self) -> None:
        """Stop the server (fast shutdown) if it runs, and remove the directory."""
        self.thaw()
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data_dir))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- databases ----------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE with a unique name; returns its SQLAlchemy URL."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(sql.encode())

    # --- helpers --------------------------------------------------------------------------

    def _check_binaries(self) -> None:
        missing = [n for n in ("initdb", "pg_ctl", "postgres") if not (self.bin_dir / n).exists()]
        if missing:
            raise PostgresUnavailable(
                f"PostgreSQL 15 server binaries not found in {self.bin_dir} "
                f"(missing: {', '.join(missing)}). Install them (apt-get install "
                "postgresql-15; `make test` does this) or set PG_BIN_DIR."
            )
        if self.as_root:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    f"tests run as root but there is no '{SERVER_USER}' user to run the server"
                ) from exc

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if result.returncode != 0:
            log = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise PostgresUnavailable(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log}"
            )
