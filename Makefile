# Securefiles — the two commands on a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_FILES := $(wildcard protos/securefiles/*/v1/*.proto)

.PHONY: run test e2e install install-dev lock protos proto-baseline lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Dependencies come from the hash-pinned lock files (regenerate with `make lock`).
install: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/runtime.lock
	$(BIN)/pip install --quiet --no-deps -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .

lock: $(BIN)/python
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile -q --strip-extras --generate-hashes --allow-unsafe -o requirements/runtime.lock pyproject.toml
	$(BIN)/pip-compile -q --strip-extras --extra dev --generate-hashes --allow-unsafe -o requirements/dev.lock pyproject.toml

# `make run PORT_BASE=7900` when 7700-7760 are taken.
run: install
	$(BIN)/securefiles up $(if $(PORT_BASE),--port-base $(PORT_BASE))

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The compose stack, through testcontainers (needs a Docker engine and Compose v2). One stack
# serves the tests in file order (the last ones take it down), so not in random order.
e2e: install-dev
	TESTCONTAINERS_RYUK_DISABLED=true $(BIN)/python -m pytest tests/e2e -m e2e -p no:randomly $(PYTEST_ARGS)

protos: install-dev
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis \
		--python_out=services --grpc_python_out=services \
		--mypy_out=services --mypy_grpc_out=services \
		$(PROTO_FILES)

lint: install-dev
	$(BIN)/ruff check services tests scripts
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf breaking protos --against protos-v1.binpb
	$(BIN)/python scripts/audit_dependencies.py

# The wire and JSON contract foreign clients rely on: `buf breaking` (in `make lint`) compares the
# protos with this image of the released v1 (committed, so a fresh clone checks offline). Additions
# need no new image; refresh it when a release is cut. A breaking change is a v2 package instead.
# Only our module (`protos`): the vendored googleapis module is checked upstream, not here.
proto-baseline: install-dev
	$(BIN)/buf build protos --exclude-source-info -o protos-v1.binpb

bench: install-dev
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
