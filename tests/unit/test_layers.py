"""Each layer imports only what it may (docs/architecture.md, "Layers"): the engine no gRPC
and no SQL; the store no gRPC, no wire protos and no api; the cache no gRPC and no protos;
the use cases no gRPC and no protos; the api no SQLAlchemy but in its error table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import service

SERVICE = Path(service.__file__).parent

# layer (folder under service/) -> top-level imports it must not use
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "engine": ("grpc", "sqlalchemy", "psycopg", "alembic", "google", "loyalty", "service.api",
               "service.store", "service.cache", "service.app"),
    "store": ("grpc", "loyalty", "google.protobuf", "service.api", "service.app",
              "service.cache"),
    "cache": ("grpc", "loyalty", "google.protobuf", "service.api", "service.app"),
    "app": ("grpc", "loyalty", "google.protobuf", "service.api"),
    "api": ("sqlalchemy", "psycopg", "alembic"),
}  # fmt: skip
# The one place of the api that knows SQLAlchemy: database errors become statuses there.
ALLOWED = {("api", "errors.py", "sqlalchemy")}


def imports_of(path: Path) -> set[str]:
    """What a module imports at run time: `if TYPE_CHECKING:` blocks (types for the type
    checker, no dependency at run time) are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations(layer: str) -> list[str]:
    bad = []
    for source in sorted((SERVICE / layer).rglob("*.py")):
        if "migrations" in source.parts:
            continue  # Alembic's revisions are code of the schema, not of the store
        for name in imports_of(source):
            for banned in FORBIDDEN[layer]:
                hit = name == banned or name.startswith(banned + ".")
                if hit and (layer, source.name, banned) not in ALLOWED:
                    bad.append(f"{source.relative_to(SERVICE)} imports {name}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_it_may_not(layer: str) -> None:
    assert (SERVICE / layer).is_dir()
    assert violations(layer) == []


def test_the_check_sees_a_violation() -> None:
    """The check itself can fail: the api does import grpc, which the store may not."""
    assert any("imports grpc" in line for line in _as_if_store("api"))


def _as_if_store(layer: str) -> list[str]:
    saved = FORBIDDEN["store"]
    try:
        FORBIDDEN[layer], original = saved, FORBIDDEN[layer]
        return violations(layer)
    finally:
        FORBIDDEN[layer] = original
