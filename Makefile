# Two commands on a fresh machine: `make dev` runs the product, `make test` tests it.
# Each installs what is missing (.venv from requirements-dev.txt, node_modules
# from package-lock.json) and reuses it afterwards.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PY_OK  := $(VENV)/.installed
NODE_OK := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: dev test install migrate backfill clean

dev: install
	$(PY) -m devtools.dev

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(PY_OK) $(NODE_OK)

$(PY_OK): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is needed ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_OK): package.json package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are needed (npm not found)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Apply sql/ to the database in DATABASE_URL (or the Cloud SQL settings).
migrate: $(PY_OK)
	$(PY) -m shared.migrate

# Give numbers to visitors whose sessions were created while numbering failed
# (visitorNumber null), and to their sessions and responses. Same settings as
# migrate; safe to run while the functions serve traffic, and to run again.
backfill: $(PY_OK)
	$(PY) -m shared.backfill

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache
