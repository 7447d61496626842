"""The engine knows nothing of gRPC, SQL, threads or I/O (docs/architecture.md, "Layers")."""

import ast
import subprocess
import sys
from pathlib import Path

import service.engine

ENGINE = Path(service.engine.__file__).parent
FORBIDDEN = {"grpc", "sqlalchemy", "threading", "socket", "asyncio", "psycopg", "alembic", "google"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_engine_module_imports_grpc_sqlalchemy_or_threads() -> None:
    sources = sorted(ENGINE.glob("*.py"))
    assert sources
    for source in sources:
        top_level = {name.split(".")[0] for name in imported_modules(source)}
        assert not top_level & FORBIDDEN, f"{source.name} imports {top_level & FORBIDDEN}"


def test_importing_every_engine_module_loads_neither_grpc_nor_sqlalchemy() -> None:
    modules = [
        f"service.engine.{p.stem}" for p in sorted(ENGINE.glob("*.py")) if p.stem != "__init__"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'sqlalchemy'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
