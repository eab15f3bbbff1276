# Quick start: `make run` (install + start on 127.0.0.1:8080), `make test` (install + whole suite).
# `make bench`: the benchmark against the stack's ceiling and LiteLLM (bench/README.md);
# `make bench-streams`: 1,000 slow streams through one worker (bench/streams.py).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint docs install bench bench-streams

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

run: install
	SERVER_HOST=$${SERVER_HOST:-127.0.0.1} $(BIN)/gunicorn wsgi:app

test: install
	$(BIN)/python -m pytest -n 3

lint: install
	$(BIN)/ruff check .

docs: install
	$(BIN)/python -c 'import sys; from app.config_docs import configuration_markdown as m; sys.stdout.write(m())' > docs/configuration.md
	$(BIN)/python -c 'from pathlib import Path; from app.config_docs import openapi_text as t; p = Path("openapi.yaml"); p.write_text(t(p.read_text()))'
	$(BIN)/python -c 'from pathlib import Path; from app.config_docs import readme_text as t; p = Path("README.md"); p.write_text(t(p.read_text()))'

bench: install
	BENCH_PYTHON=$(abspath $(BIN))/python bash bench/run.sh

bench-streams: install
	BENCH_PYTHON=$(abspath $(BIN))/python $(BIN)/python bench/streams.py
