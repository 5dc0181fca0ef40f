# chat2api: a handful of one-line targets. Python comes from .venv, created on first use.
PY := .venv/bin/python
RUNTIME := .venv/.runtime-installed
DEV := .venv/.dev-installed
NODE := node_modules/.ci-installed

.PHONY: run test lint format bench migrations-check vendor

$(RUNTIME): requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q -r requirements.txt && touch $@

# llama-cpp-python (the local model server of the tests) compiles from source: for any x86-64 CPU, not this one's
# newest instructions (a native build here crashed in libggml-cpu with a general protection fault).
$(DEV): $(RUNTIME) requirements-dev.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PY) -m pip install -q -r requirements-dev.txt && touch $@

# npm ci empties node_modules/ first, so the stamp inside it goes with every reinstall.
$(NODE): package-lock.json
	npm ci --no-audit --no-fund && touch $@

# exec: the shell becomes honcho, so a SIGTERM that make passes on (or Ctrl-C) reaches it, and honcho stops
# every child's process group. HOST defaults to loopback here; the Procfile alone binds 0.0.0.0.
run: $(RUNTIME)
	$(PY) manage.py migrate --noinput
	HOST=$${HOST:-127.0.0.1} PATH="$(CURDIR)/.venv/bin:$$PATH" exec $(PY) -m honcho start --port $${PORT:-5005} web worker beat

test: $(DEV) $(NODE)
	$(PY) manage.py makemigrations --check --dry-run >/dev/null
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n 3 --dist loadfile --no-loadscope-reorder -m "not cluster"
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -m cluster

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(DEV)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(DEV)
	$(PY) -m bench

migrations-check: $(RUNTIME)
	$(PY) manage.py makemigrations --check --dry-run

vendor: $(NODE)
	npm run vendor
