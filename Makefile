# The two commands of the README: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint pytest system-deps node-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: install and start the server in embedded mode at http://127.0.0.1:8000 (data in ./data)
run: $(STAMP)
	$(VENV)/bin/cocoach serve

## test: install what the tests need (redis-server from Debian if missing), lint, run the suite
test: system-deps lint pytest

system-deps:
	@command -v node >/dev/null || { \
	  echo "installing nodejs and npm (a stock y-websocket client runs in the tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (the tests start their own on a free port)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff format --check server tests bench
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/mypy server

node-deps:
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error

pytest: $(STAMP) system-deps node-deps
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
