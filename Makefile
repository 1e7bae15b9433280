# make test  — install what the tests need (Chromium, PostgreSQL, a virtualenv, axe-core), lint, type-check, run them all
# make lint  — ruff on everything, mypy --strict on monitor/ (both configured in pyproject.toml)
# make demo  — install into a virtualenv and run the console on a changing demo workspace
# make dist  — build dist/monitor.pyz, one file that runs with nothing but Python 3.11+

PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080

AXE_JS := .cache/axe-core/axe.min.js

.PHONY: test lint demo dist system-deps axe-core clean

test: system-deps axe-core lint
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check monitor tests benchmarks soak bin/monitor
	$(VENV)/bin/mypy

demo: $(VENV)/.installed
	$(VENV)/bin/monitor demo --port $(PORT)

system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing:$$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

# axe-core for the accessibility browser tests: the npm tarball, pinned and integrity-checked
# by tests/browser/axe_source.py (Python's urllib; no node or npm needed).
axe-core: $(AXE_JS)

$(AXE_JS): tests/browser/axe_source.py
	$(PYTHON) -m tests.browser.axe_source

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python setup.cfg
	$(VENV)/bin/python -m pip install -q .
	touch $@

$(VENV)/.test-installed: $(VENV)/bin/python setup.cfg
	$(VENV)/bin/python -m pip install -q '.[test]'
	touch $@

dist: $(VENV)/.dist-installed
	mkdir -p dist
	$(VENV)/bin/shiv --compressed --reproducible -c monitor -o dist/monitor.pyz .
	@echo "built dist/monitor.pyz: run it with  python3 dist/monitor.pyz demo"

$(VENV)/.dist-installed: $(VENV)/bin/python setup.cfg
	$(VENV)/bin/python -m pip install -q '.[dist]'
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info .cache
