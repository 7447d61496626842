# Two commands for a newcomer: `make run` and `make test`. Everything else is what they use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
GRPC_TOOLS := grpcio-tools==1.85.1
PROTOS := $(wildcard protos/loyalty/v1/*.proto)
DATA_DIR ?= var
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin))

.PHONY: run test proto lint typecheck buf-lint buf-breaking postgres tools bench h2load clean venv

# --- install ---------------------------------------------------------------------------------

# Generated code must exist before the editable install so that `loyalty` is packaged with it.
$(VENV)/.installed: pyproject.toml $(PROTOS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(GRPC_TOOLS)
	$(MAKE) --no-print-directory proto
	$(PIP) install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

loyalty/.generated: $(PROTOS)
	rm -rf loyalty
	mkdir -p loyalty/v1
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch loyalty/__init__.py loyalty/v1/__init__.py loyalty/py.typed
	touch $@

# Python code from protos/ (never edited by hand, never committed).
proto: loyalty/.generated

# `npm install` rather than `npm ci`: the registry here lacks buf's binaries for other
# platforms, which the lock file lists as optional and `npm ci` then refuses. Versions are
# pinned in package.json and the lock file is left as it is (--no-save).
tools/node_modules/.bin/buf: tools/package.json tools/package-lock.json
	cd tools && npm install --no-audit --no-fund --no-save --loglevel=error
	touch $@

tools: tools/node_modules/.bin/buf

# PostgreSQL from Debian's packages, for the tests that start their own cluster.
postgres:
	@if [ -z "$(PG_BIN)" ]; then \
	  echo "Installing PostgreSQL from Debian's packages"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

# --- the two commands --------------------------------------------------------------------------

# Serve on 127.0.0.1:50051 with an embedded SQLite store and demo data.
run: venv
	mkdir -p $(DATA_DIR)
	$(VENV)/bin/loyalty-server --address 127.0.0.1:50051 \
	  --database-url sqlite:///$(DATA_DIR)/loyalty.db --demo-data

test: venv tools postgres lint typecheck buf-lint buf-breaking
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup

# --- checks ------------------------------------------------------------------------------------

lint: venv
	$(VENV)/bin/ruff check service clients tests bench
	$(VENV)/bin/ruff format --check service clients tests bench

typecheck: venv
	$(VENV)/bin/mypy service clients

buf-lint: tools
	cd protos && ../tools/node_modules/.bin/buf lint

# The contract may only grow: compared with the released one committed in contract/baseline
# (a plain directory, so this works in any clone, on main too). See docs/contract.md.
buf-breaking: tools
	tools/node_modules/.bin/buf breaking protos --against contract/baseline

# h2load (Debian's nghttp2-client) drives the server-bound figures: a C client does not eat
# the server's CPU the way a Python client does.
h2load:
	@command -v h2load >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nghttp2-client >/dev/null; }

# Serving benchmark (h2load, alternating rounds against empty and echo), client latency, engine.
bench: venv h2load
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) loyalty tools/node_modules var .pytest_cache .mypy_cache .ruff_cache
