# Two commands set everything up on a fresh machine: `make local` runs the whole chat locally and
# `make test` runs linters, type checks and tests. Each creates its virtualenv when it is missing or stale:
# `make local` a small one (.venv-local) with only what the local cloud needs, `make test` the full one (.venv).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
LOCAL_VENV ?= .venv-local
LOCAL_PY := $(LOCAL_VENV)/bin/python
LOCAL_INSTALLED := $(LOCAL_VENV)/.installed
# Parallel test workers: more than the cores, since most emulator and browser tests wait on sockets and timeouts
# (on 2 cores, 3 workers beat 2 and 4; bench/emulator_start.py and docs/emulator.md say what a start costs).
JOBS ?= 3

HOST ?= 127.0.0.1
PORT ?= 3001
STACK ?= dev

.PHONY: test lint typecheck unit local smoke preflight bench clean

$(INSTALLED): requirements.txt requirements-local.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# A venv without pip of its own, filled by $(PYTHON)'s pip, is made in a fraction of the time; ensurepip otherwise.
$(LOCAL_INSTALLED): requirements-local.txt
	test -x $(LOCAL_PY) || $(PYTHON) -m venv --without-pip $(LOCAL_VENV)
	if $(PYTHON) -m pip --python $(LOCAL_PY) --version >/dev/null 2>&1; then \
	  $(PYTHON) -m pip --python $(LOCAL_PY) install --quiet --disable-pip-version-check -r requirements-local.txt; \
	else \
	  $(LOCAL_PY) -m ensurepip --default-pip >/dev/null && $(LOCAL_PY) -m pip install --quiet -r requirements-local.txt; \
	fi
	touch $@

test: lint typecheck unit

lint: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/zizmor --offline .github/workflows

typecheck: $(INSTALLED)
	$(PY) -m mypy

# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: every worker and each of the dozens of interpreters
# the suite starts would otherwise compile (and pytest rewrite) the same modules again.
unit: $(INSTALLED)
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(JOBS) --dist loadfile

# make local [STACK=prod] [AUTH=jwt]: AUTH overrides the stack's `auth` setting for a quick local trial.
local: $(LOCAL_INSTALLED)
	$(LOCAL_PY) -m emulator --host $(HOST) --port $(PORT) --stack $(STACK) $(if $(AUTH),--auth $(AUTH))

# After `pulumi up`: make smoke URL="$$(pulumi stack output wssUrl)", with CHAT_TOKEN=... exported for a stack with
# auth: jwt (TOKEN=... works too). Silent, and the token reaches the client through its environment, never a command
# line that logs or `ps` would show.
smoke: export CHAT_TOKEN := $(or $(TOKEN),$(CHAT_TOKEN))
smoke: $(INSTALLED)
	@test -n "$(URL)" || { echo 'usage: [CHAT_TOKEN=...] make smoke URL=wss://...' >&2; exit 2; }
	@$(PY) -m client smoke "$(URL)"

# Before `pulumi up`: read-only checks of the account and region the AWS credentials point at (docs/first-deploy.md).
# Exit 0 ready, 1 blockers (each printed with its fix), 2 usage or config error.
preflight: $(INSTALLED)
	$(PY) -m preflight --stack $(STACK)

bench: $(INSTALLED)
	$(PY) bench/fanout.py
	$(PY) bench/coldstart.py
	$(PY) bench/emulator.py
	$(PY) bench/dynamodb_calls.py
	$(PY) bench/emulator_start.py

clean:
	rm -rf $(VENV) $(LOCAL_VENV) .mypy_cache .pytest_cache .ruff_cache
