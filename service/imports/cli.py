"""loyalty-import: bulk import of customer attributes from a CSV or JSON Lines file.

    loyalty-import --database-url sqlite:///var/loyalty.db --import-id 2026-03-crm members.csv
    loyalty-import --target 127.0.0.1:50051 --token ID.SECRET --import-id 2026-03-crm rows.jsonl

The first form writes straight to the store (fastest; other server replicas see the change
through the change feed); the second streams the rows through ImportCustomerAttributes (role
BACK_OFFICE). Either way the import is idempotent by its id: running it again after it
finished changes nothing (replayed), and running it again after a crash or a kill resumes
after the last committed batch. The file format is described in docs/imports.md.

Progress goes to stderr (percent of the file's bytes, rows per second), a summary to stdout,
and rejected rows (line number, field, reason) to --rejects as CSV.

Exit status: 0 done, every row applied; 1 done, some rows rejected; 2 bad usage or an
unreadable file (nothing imported); 3 the import failed, 130 interrupted (either can be
resumed by running the same command again).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

import grpc
from sqlalchemy.exc import SQLAlchemyError

from clients.client import add_token_arguments, token_from_args
from loyalty.v1 import backoffice_pb2, backoffice_pb2_grpc
from service.api.import_rows import row_to_proto
from service.cli import ToolError, describe, tool
from service.config import Settings
from service.errors import DomainError
from service.imports.files import AttributeFile, FileFormatError
from service.imports.records import RowError
from service.imports.run import (
    DEFAULT_BATCH_SIZE,
    AttributeImport,
    BatchReport,
)
from service.logs import configure_tool_logging
from service.store import db

log = logging.getLogger("loyalty-import")

EXIT_OK, EXIT_REJECTS, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(frozen=True, slots=True)
class Summary:
    import_id: str
    state: str
    rows_total: int
    rows_applied: int
    rows_rejected: int
    replayed: bool
    resumed_from: int
    seconds: float
    rows_this_run: int


# --- progress, rejects ---------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal (redrawn at most 5 times a second), or a plain
    line every 5 seconds when stderr is a file or a pipe."""

    WIDTH = 24

    def __init__(self, total_bytes: int, stream: TextIO | None = None, enabled: bool = True):
        self.total = max(total_bytes, 1)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.interval = 0.2 if self.tty else 5.0
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.rows = 0
        self.rejected = 0

    def update(self, rows: int, bytes_read: int, rejected: int, *, force: bool = False) -> None:
        self.rows, self.rejected = rows, rejected
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last_draw < self.interval):
            return
        self.last_draw = now
        elapsed = max(now - self.started, 1e-6)
        share = min(bytes_read / self.total, 1.0)
        rate = rows / elapsed
        eta = elapsed * (1 - share) / share if share > 0 else 0.0
        filled = int(share * self.WIDTH)
        text = (
            f"{share * 100:5.1f}% [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{rows:,} rows  {rate:,.0f} rows/s  {rejected:,} rejected  "
            f"elapsed {_clock(elapsed)}  left {_clock(eta)}"
        )
        self.stream.write(("\r" + text + "\033[K") if self.tty else text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


SHOWN_REJECTS = 5  # rejected rows the summary names without --rejects


class Rejects:
    """Rejected rows as CSV (line_number, field, reason), written as they are found; the
    first few are kept for the summary."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self.first: list[RowError] = []
        self._lines: set[int] = set()
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        if path is not None:
            self._file = path.open("w", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._file, ["line_number", "field", "reason"])
            self._writer.writeheader()

    def add(self, error: RowError) -> None:
        if error.line_number in self._lines and error.line_number:
            return
        self._lines.add(error.line_number)
        self.count += 1
        if len(self.first) < SHOWN_REJECTS:
            self.first.append(error)
        if self._writer is not None:
            self._writer.writerow(
                {"line_number": error.line_number, "field": error.field, "reason": error.reason}
            )

    def clear(self) -> None:
        """Nothing of this run counts (a replayed import): an empty file."""
        self.count = 0
        self.first.clear()
        self._lines.clear()
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._writer = csv.DictWriter(self._file, ["line_number", "field", "reason"])
            self._writer.writeheader()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def file_digest(path: Path) -> str:
    """sha256 of the file: the import's fingerprint, so a resume cannot use another file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- straight to the store ---------------------------------------------------------------------


def import_to_store(
    database_url: str,
    import_id: str,
    source: AttributeFile,
    *,
    fingerprint: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    rejects: Rejects | None = None,
) -> Summary:
    """Import a file into the store at `database_url` (migrated to the current schema)."""
    started = time.monotonic()
    engine = db.make_engine(database_url)
    try:
        counted = {"rows": 0, "rejected": 0}

        def on_batch(report: BatchReport) -> None:
            counted["rows"] += report.rows
            counted["rejected"] += len(report.applied.errors)
            if rejects is not None:
                for error in report.applied.errors:
                    rejects.add(error)
                rejects.flush()
            if progress is not None:
                progress.update(counted["rows"], source.bytes_read, counted["rejected"])

        run = AttributeImport(
            db.make_session_factory(engine),
            import_id,
            fingerprint=fingerprint,
            batch_size=batch_size,
            on_batch=on_batch,
        )
        start = run.begin()
        if start.replayed:
            state = start.state
            return Summary(
                import_id, state.status, state.rows_total, state.rows_applied,
                state.rows_rejected, True, 0, time.monotonic() - started, 0,
            )  # fmt: skip
        outcome = run.run(source.rows(skip=start.skip))
        if progress is not None:
            progress.update(counted["rows"], source.size, counted["rejected"], force=True)
        state = outcome.state
        return Summary(
            import_id, state.status, state.rows_total, state.rows_applied, state.rows_rejected,
            False, outcome.resumed_from, time.monotonic() - started, counted["rows"],
        )  # fmt: skip
    finally:
        engine.dispose()


# --- through the server ------------------------------------------------------------------------


def import_through_server(
    target: str,
    token: str,
    import_id: str,
    source: AttributeFile,
    *,
    description: str = "",
    fingerprint: str | None = None,
    progress: Progress | None = None,
    rejects: Rejects | None = None,
    timeout: float | None = None,
) -> Summary:
    """Stream the file through ImportCustomerAttributes. Rows the file reader rejects are
    sent as bare line numbers (the server counts them) and reported here with their reason."""
    started = time.monotonic()
    sent = {"rows": 0, "rejected": 0}

    def requests() -> Iterator[backoffice_pb2.ImportCustomerAttributesRequest]:
        header = backoffice_pb2.ImportHeader(
            import_id=import_id, source=description, fingerprint=fingerprint or ""
        )
        yield backoffice_pb2.ImportCustomerAttributesRequest(header=header)
        for parsed in source.rows():
            if parsed.error is not None:
                sent["rejected"] += 1
                if rejects is not None:
                    rejects.add(parsed.error)
            yield backoffice_pb2.ImportCustomerAttributesRequest(row=row_to_proto(parsed))
            sent["rows"] += 1
            if progress is not None and sent["rows"] % 1000 == 0:
                progress.update(sent["rows"], source.bytes_read, sent["rejected"])

    with grpc.insecure_channel(target) as channel:
        stub = backoffice_pb2_grpc.BackOfficeServiceStub(channel)
        response = stub.ImportCustomerAttributes(
            requests(), metadata=(("authorization", f"Bearer {token}"),), timeout=timeout
        )
    status = response.status
    if rejects is not None:
        if response.replayed:
            rejects.clear()
        for error in response.errors:
            rejects.add(RowError(error.line_number, error.field, error.reason))
    if progress is not None and not response.replayed:
        progress.update(sent["rows"], source.size, status.rows_rejected, force=True)
    return Summary(
        import_id, status.state, status.rows_total, status.rows_applied, status.rows_rejected,
        response.replayed, 0, time.monotonic() - started, 0 if response.replayed else sent["rows"],
    )  # fmt: skip


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loyalty-import",
        description="Import customer attributes (member profiles, favorite categories, "
        "personalized offers) from a CSV or JSON Lines file; see docs/imports.md.",
    )
    parser.add_argument("file", type=Path, help="the CSV or JSON Lines file")
    parser.add_argument("--import-id", required=True, help="idempotency key of this import")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--database-url", help="write straight to this store")
    where.add_argument("--target", help="stream through the server at host:port")
    add_token_arguments(parser, "BACK_OFFICE")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="default: by file name")
    parser.add_argument("--rejects", type=Path, help="write rejected rows to this CSV file")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--time-zone",
        default=os.environ.get("LOYALTY_TIME_ZONE", Settings.time_zone),
        help="the program's zone, for bare dates in valid_from / valid_to",
    )
    parser.add_argument("--source", default="", help="free text: where the file came from")
    parser.add_argument(
        "--migrate", action="store_true", help="bring the store to the current schema first"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.add_argument("--no-fingerprint", action="store_true", help="do not hash the file")
    args = parser.parse_args(argv)
    args.token = token_from_args(args)
    if args.target and not args.token:
        parser.error("--target needs --token or --token-file")
    return args


def print_summary(summary: Summary, rejects: Rejects, stream: TextIO | None = None) -> None:
    rate = summary.rows_this_run / summary.seconds if summary.seconds > 0 else 0.0
    lines = [
        f"import {summary.import_id}: {summary.state} in {summary.seconds:.1f} s"
        + (" (replayed: nothing changed)" if summary.replayed else f", {rate:,.0f} rows/s"),
        f"  rows {summary.rows_total:,}: applied {summary.rows_applied:,}, "
        f"rejected {summary.rows_rejected:,}",
    ]
    if summary.resumed_from:
        lines.append(f"  resumed after {summary.resumed_from:,} rows applied by an earlier run")
    for error in rejects.first:
        where = f"line {error.line_number}" if error.line_number else "the file"
        field = f" {error.field}:" if error.field else ""
        lines.append(f"  rejected {where}:{field} {error.reason}")
    if rejects.count > len(rejects.first):
        more = rejects.count - len(rejects.first)
        lines.append(
            f"  ... and {more:,} more rejected rows"
            + ("" if rejects.path else " (--rejects FILE lists every one)")
        )
    if rejects.path is not None:
        lines.append(f"  rejected rows: {rejects.path} ({rejects.count:,} listed)")
    (stream or sys.stdout).write("\n".join(lines) + "\n")


def _check_store(url: str, migrate: bool) -> None:
    """Without --migrate the store must exist with its schema: a mistyped path is an error,
    not a new empty database."""
    if migrate:
        db.migrate(url)
    else:
        db.require_store(url, create_flag="--migrate")


@tool("loyalty-import")
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_tool_logging("WARNING")
    try:
        source = AttributeFile(args.file, args.time_zone, args.format)
        if args.database_url:
            _check_store(args.database_url, args.migrate)
    except (FileFormatError, OSError, ValueError, db.NoStore) as error:
        raise ToolError(describe(error), EXIT_USAGE) from None
    fingerprint = None if args.no_fingerprint else file_digest(args.file)
    progress = Progress(source.size, enabled=not args.no_progress)
    rejects = Rejects(args.rejects)
    try:
        if args.database_url:
            summary = import_to_store(
                args.database_url, args.import_id, source,
                fingerprint=fingerprint, batch_size=args.batch_size,
                progress=progress, rejects=rejects,
            )  # fmt: skip
        else:
            summary = import_through_server(
                args.target, args.token, args.import_id, source,
                description=args.source or str(args.file), fingerprint=fingerprint,
                progress=progress, rejects=rejects,
            )  # fmt: skip
    except FileFormatError as error:
        progress.close()
        raise ToolError(str(error), EXIT_USAGE) from None
    except (DomainError, SQLAlchemyError, grpc.RpcError) as error:
        progress.close()
        message = f"the import failed: {_describe(error)}; run the same command again to resume"
        raise ToolError(message, EXIT_FAILED) from None
    except KeyboardInterrupt:
        progress.close()
        message = "interrupted; run the same command again to resume"
        raise ToolError(message, EXIT_INTERRUPTED) from None
    finally:
        rejects.close()
    progress.close()
    print_summary(summary, rejects)
    return EXIT_REJECTS if summary.rows_rejected else EXIT_OK


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError):
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else str(error)
        return f"{getattr(code, 'name', code)}: {details}"
    if isinstance(error, DomainError):
        return error.message
    return f"{type(error).__name__} (the store said: {str(error).splitlines()[0]})"


if __name__ == "__main__":
    sys.exit(main())
