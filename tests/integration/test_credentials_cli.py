"""The credentials tool: a token is shown once, only its hash is stored, revoke ends it."""

from __future__ import annotations

import pytest

from service.api.auth import CredentialBook
from service.credentials_cli import main
from service.errors import Unauthenticated
from service.store import db


@pytest.fixture(autouse=True)
def _a_store(sqlite_url: str) -> None:
    """The store the server would have made on its first start."""
    db.migrate(sqlite_url)


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


def test_a_register_credential_without_stores_is_refused_unless_explicitly_for_all(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    create = ["--database-url", sqlite_url, "create", "--name", "till-9", "--role", "REGISTER"]
    assert main(create) == 2
    refused = capsys.readouterr()
    assert "names its stores" in refused.err and refused.out == ""
    assert main([*create, "--all-stores"]) == 0
    created = capsys.readouterr()
    assert "may act for every store" in created.err
    engine = db.make_engine(sqlite_url)
    book = CredentialBook(db.make_session_factory(engine))
    book.reload()
    principal = book.authenticate(f"Bearer {created.out.strip()}")
    engine.dispose()
    assert principal.name == "till-9" and principal.store_ids == frozenset()
    assert main(["--database-url", sqlite_url, "list"]) == 0
    assert capsys.readouterr().out.count("till-9") == 1  # the refused one was never stored


def test_stores_bind_registers_only(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    create = ["--database-url", sqlite_url, "create", "--name", "crm", "--role", "OPERATOR"]
    assert main([*create, "--store", "S001"]) == 2
    assert "only a REGISTER" in capsys.readouterr().err
