"""loyalty-replay: what would a draft offer have cost? (campaign replay, docs/replay.md)

    loyalty-replay --database-url sqlite:///var/loyalty.db --offer draft.json \\
        --start 2026-10-01 --end 2026-11-01
    loyalty-replay --target 127.0.0.1:50051 --token ID.SECRET --offer draft.json \\
        --start 2026-10-01 --end 2026-11-01 --store S001 --json

The draft is an offer of levels 1-3 in the JSON form of loyalty.v1.Offer (as UpsertOffer
takes it; "active": false replays the configuration without that offer). The first form
reads the store itself (it writes nothing); the second runs CampaignReplayService/Replay on
a server (role BACK_OFFICE). Dates are local midnights of --time-zone; a time with an
offset is taken as it is. Progress goes to stderr, the report to stdout (a table, or with
--json the ReplayReport message).

Exit status: 0 done; 2 bad usage, a bad draft or period; 3 the replay failed; 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from google.protobuf import json_format
from sqlalchemy.exc import SQLAlchemyError

from clients.client import add_token_arguments, bearer_metadata, token_from_args
from loyalty.v1 import backoffice_pb2, replay_pb2, replay_pb2_grpc
from service.api.replay import replay_request, report_message
from service.app.replay import CampaignReplay, ReplayProgress
from service.cli import EXIT_USAGE, ToolError, describe, tool
from service.config import Settings
from service.errors import DomainError
from service.logs import configure_tool_logging
from service.store import db

EXIT_BAD_USAGE, EXIT_FAILED = EXIT_USAGE, 3


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="loyalty-replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--offer", type=Path, required=True, help="the draft offer, JSON")
    parser.add_argument("--start", required=True, help="first sale time: date or ISO time")
    parser.add_argument("--end", required=True, help="end of the period (exclusive)")
    parser.add_argument("--store", action="append", default=[], help="only this store (repeat)")
    parser.add_argument("--top", type=int, default=10, help="products listed (1-100)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--time-zone", default=defaults.time_zone, help="the program's time zone (dates, days)"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--database-url", help="read this store directly")
    where.add_argument("--target", help="replay on the server at host:port")
    add_token_arguments(parser, "BACK_OFFICE")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds (--target)")
    parser.add_argument(
        "--page-size", type=int, default=defaults.replay_page_size, help="receipts per read"
    )
    parser.add_argument(
        "--max-days", type=int, default=defaults.replay_max_days, help="longest period"
    )
    return parser


def _moment(text: str, zone: ZoneInfo, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"loyalty-replay: {flag} must be a date or an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def request_from_args(args: argparse.Namespace) -> replay_pb2.ReplayRequest:
    zone = ZoneInfo(args.time_zone)
    try:
        draft = json_format.Parse(args.offer.read_text(encoding="utf-8"), backoffice_pb2.Offer())
    except (OSError, json_format.ParseError) as error:
        raise SystemExit(f"loyalty-replay: --offer: {error}") from None
    request = replay_pb2.ReplayRequest(
        draft_offer=draft, store_ids=args.store, top_products=args.top
    )
    request.start.FromDatetime(_moment(args.start, zone, "--start"))
    request.end.FromDatetime(_moment(args.end, zone, "--end"))
    return request


def replay_in_store(
    args: argparse.Namespace, request: replay_pb2.ReplayRequest
) -> Iterator[replay_pb2.ReplayResponse]:
    """The use case on the store itself, as the server would stream it."""
    replay = replay_request(request)
    db.require_store(args.database_url)  # a mistyped path is an error, not a new empty store
    engine = db.make_engine(args.database_url)
    try:
        use_case = CampaignReplay(
            db.make_session_factory(engine),
            time_zone=args.time_zone,
            page_size=args.page_size,
            max_days=args.max_days,
        )
        for event in use_case.run(replay):
            if isinstance(event, ReplayProgress):
                progress = replay_pb2.ReplayProgress(
                    receipts_done=event.receipts_done, receipts_total=event.receipts_total
                )
                yield replay_pb2.ReplayResponse(progress=progress)
            else:
                currency = Settings().currency
                yield replay_pb2.ReplayResponse(report=report_message(event, currency))
    finally:
        engine.dispose()


def replay_on_server(
    args: argparse.Namespace, request: replay_pb2.ReplayRequest
) -> Iterator[replay_pb2.ReplayResponse]:
    with grpc.insecure_channel(args.target) as channel:
        stub = replay_pb2_grpc.CampaignReplayServiceStub(channel)
        metadata = bearer_metadata(token_from_args(args))
        yield from stub.Replay(request, timeout=args.timeout, metadata=metadata)


def format_report(report: replay_pb2.ReplayReport, draft_id: str) -> str:
    rows = [
        f"Campaign replay of {draft_id} on configuration {report.configuration_version}: "
        f"{report.receipts:,} receipts (money in minor units of {report.currency})",
        f"{'':<10}{'discount':>16}{'points':>16}",
    ]
    for name in ("confirmed", "live", "draft", "added"):
        given = getattr(report, name)
        rows.append(f"{name:<10}{given.discount:>16,}{given.points:>16,}")
    rows.append(
        f"receipts affected: {report.receipts_affected:,}; "
        f"members affected: {report.members_affected:,}"
    )
    if report.top_products:
        rows.append("top products (sku, lines affected, added discount, added points, name):")
        for p in report.top_products:
            rows.append(
                f"  {p.sku:<20}{p.lines_affected:>10,}{p.added_discount:>14,}"
                f"{p.added_points:>12,}  {p.name}"
            )
    if report.days:
        rows.append("per day (receipts, affected, added discount, added points):")
        for d in report.days:
            rows.append(
                f"  {d.day}{d.receipts:>12,}{d.receipts_affected:>12,}"
                f"{d.added.discount:>14,}{d.added.points:>12,}"
            )
    return "\n".join(rows)


@tool("loyalty-replay")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tool_logging("WARNING")
    request = request_from_args(args)
    run = replay_in_store if args.database_url else replay_on_server
    try:
        for message in run(args, request):
            if message.WhichOneof("item") == "progress":
                done, total = message.progress.receipts_done, message.progress.receipts_total
                print(f"replayed {done:,} of {total:,} receipts", file=sys.stderr, flush=True)
            else:
                report = message.report
                if args.json:
                    print(json_format.MessageToJson(report, preserving_proto_field_name=True))
                else:
                    print(format_report(report, request.draft_offer.id))
    except DomainError as error:
        raise ToolError(str(error), EXIT_BAD_USAGE) from error
    except SQLAlchemyError as error:
        raise ToolError(f"the store failed: {describe(error)}", EXIT_FAILED) from error
    except grpc.RpcError as error:
        bad = error.code() == grpc.StatusCode.INVALID_ARGUMENT
        told = f"{error.code().name}: {error.details()}"
        raise ToolError(told, EXIT_BAD_USAGE if bad else EXIT_FAILED) from error
    return 0


if __name__ == "__main__":
    sys.exit(main())
