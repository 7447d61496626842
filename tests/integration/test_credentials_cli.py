"""The credentials tool: a token is shown once, only its hash is stored, revoke ends it."""

from __future__ import annotations

import pytest

from service.api.auth import CredentialBook
from service.credentials_cli import main
from service.errors import Unauthenticated
from service.store import db


def test_a_created_credential_authenticates_until_it_is_revoked(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "--database-url",
                sqlite_url,
                "create",
                "--name",
                "till-17",
                "--role",
                "REGISTER",
                "--store",
                "S001",
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    engine = db.make_engine(sqlite_url)
    book = CredentialBook(db.make_session_factory(engine))
    book.reload()
    principal = book.authenticate(f"Bearer {token}")
    assert (principal.name, principal.role.value, principal.store_ids) == (
        "till-17",
        "REGISTER",
        frozenset({"S001"}),
    )

    assert main(["--database-url", sqlite_url, "list"]) == 0
    listing = capsys.readouterr().out
    assert "till-17" in listing and token.split(".")[1] not in listing

    assert main(["--database-url", sqlite_url, "revoke", token.split(".")[0]]) == 0
    book.reload()
    with pytest.raises(Unauthenticated):
        book.authenticate(f"Bearer {token}")
    assert main(["--database-url", sqlite_url, "revoke", token.split(".")[0]]) == 1
    engine.dispose()
