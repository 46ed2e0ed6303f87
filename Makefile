# The two commands of the README: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint pytest system-deps node node-deps web bytecode clean

WEB_SOURCES := web/package.json web/package-lock.json web/build.mjs $(wildcard web/*.html web/src/*)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: install, build the web page, and start the server in embedded mode at
## http://127.0.0.1:8000 (data in ./data)
run: $(STAMP) web bytecode
	$(VENV)/bin/cocoach serve

## web: build the page (web/ -> web/dist) when its sources changed; needs node and npm
web: web/dist/.built

web/node_modules/.installed: web/package.json web/package-lock.json | node
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web/dist/.built: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run --silent build
	touch $@

node:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "installing nodejs and npm (they build the web page and run a y-websocket client in the tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

## test: install what the tests need (redis-server, node, chromium-headless-shell and espeak-ng from Debian if
## missing),
## build the page, lint, run the suite
test: system-deps lint pytest

system-deps: node
	@command -v chromium-headless-shell >/dev/null || { \
	  echo "installing chromium-headless-shell (the page's end-to-end tests drive it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null; }
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (the tests start their own on a free port)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v redis-cli >/dev/null || { \
	  echo "installing redis-tools (redis-cli joins the tests' Redis Cluster)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null; }
	@command -v espeak-ng >/dev/null || { \
	  echo "installing espeak-ng (the conversation's tests speak real, generated speech)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff format --check server tests bench
	$(VENV)/bin/ruff check server tests bench
	$(VENV)/bin/mypy server

node-deps:
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error

# The suite runs on three processes (pytest-xdist), a file at a time, the longest files first
# (tests/conftest.py), with every test timeout and real-time check stretched twofold unless
# COCOACH_TEST_SLOWNESS says otherwise: about 6.5 min on 2 cores, against 13-14 on one process.
# Three, not two, on 2 cores: many tests wait on real time (the mixer, restarts, failovers).
# TEST_WORKERS=0 runs it on one process, as it was (docs/benchmarks.md).
TEST_WORKERS ?= 3
pytest: $(STAMP) system-deps node-deps web bytecode
ifeq ($(TEST_WORKERS),0)
	$(PY) -m pytest
else
	COCOACH_TEST_SLOWNESS=$${COCOACH_TEST_SLOWNESS:-2} \
	  $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
endif

# Every worker, transcoder and mixing child is a fresh Python process: with the checkout's own
# modules compiled ahead, none of them compiles ~170 files on start (0.2-0.3 s of CPU each).
# Needed where PYTHONDONTWRITEBYTECODE is set, as in many containers; quick when up to date.
bytecode: $(STAMP)
	$(PY) -m compileall -q server tests bench >/dev/null

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/dist web/node_modules
