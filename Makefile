# Securefiles — the two commands on a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_FILES := $(wildcard protos/securefiles/*/v1/*.proto)

.PHONY: run test e2e install install-dev protos lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

run: install
	$(BIN)/securefiles up

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The compose stack, through testcontainers (needs a Docker engine and Compose v2).
e2e: install-dev
	TESTCONTAINERS_RYUK_DISABLED=true $(BIN)/python -m pytest tests/e2e -m e2e $(PYTEST_ARGS)

protos: install-dev
	$(BIN)/python -m grpc_tools.protoc -Iprotos \
		--python_out=services --grpc_python_out=services \
		--mypy_out=services --mypy_grpc_out=services \
		$(PROTO_FILES)

lint: install-dev
	$(BIN)/ruff check services tests
	$(BIN)/buf lint

bench: install-dev
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
