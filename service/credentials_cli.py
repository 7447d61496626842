"""`loyalty-credentials`: create, list and revoke API credentials in the store.

    loyalty-credentials --database-url URL create --name till-17 --role REGISTER --store S001
    loyalty-credentials --database-url URL list
    loyalty-credentials --database-url URL revoke <credential id>

The database must exist and carry the schema (the server creates both on its first start);
`--create` makes a new one. A new credential's token is printed once; only its hash is
stored. Every replica sees a new or revoked credential through the change feed within the
sync delay.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from service.cli import EXIT_USAGE, ToolError, tool
from service.logs import configure_tool_logging
from service.store import db
from service.store.credentials_repo import (
    ROLES,
    create_credential,
    load_credentials,
    revoke_credential,
)

WARN_ALL_STORES = (
    "warning: this REGISTER credential may act for every store; give tills --store instead"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-credentials",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--database-url", default="sqlite:///var/loyalty.db", help="the store (SQLAlchemy URL)"
    )
    parser.add_argument(
        "--create",
        action="store_true",
        help="create and migrate the database if it does not exist (otherwise it must)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a credential and print its token")
    create.add_argument("--name", required=True, help="who holds it: a till, an app, a person")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument(
        "--store",
        action="append",
        default=[],
        help="REGISTER only: a store it may act for (repeatable); a register names its stores",
    )
    create.add_argument(
        "--all-stores",
        action="store_true",
        help="REGISTER only: may act for every store of the chain (for a central checkout)",
    )
    commands.add_parser("list", help="list credentials (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a credential")
    revoke.add_argument("credential_id")
    return parser


@tool("loyalty-credentials")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_tool_logging("WARNING")
    if not args.create:
        db.require_store(args.database_url, create_flag="--create")
    db.migrate(args.database_url)
    engine = db.make_engine(args.database_url)
    try:
        with db.make_session_factory(engine).begin() as session:
            if args.command == "create":
                token = create_credential(
                    session,
                    name=args.name,
                    role=args.role,
                    store_ids=tuple(args.store),
                    all_stores=args.all_stores,
                )
                if args.all_stores:
                    print(WARN_ALL_STORES, file=sys.stderr)
                print(token)
            elif args.command == "list":
                for stored in sorted(load_credentials(session).values(), key=lambda c: c.id):
                    state = "revoked" if stored.revoked else "active"
                    stores = ",".join(sorted(stored.store_ids)) or "*"
                    print(f"{stored.id}\t{stored.name}\t{stored.role}\t{stores}\t{state}")
            elif not revoke_credential(session, args.credential_id):
                print(f"no active credential {args.credential_id!r}", file=sys.stderr)
                return 1
    except ValueError as refused:  # nothing was written: the transaction rolled back
        raise ToolError(str(refused), EXIT_USAGE) from None
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
