# Two commands on a fresh machine: `make dev` runs the product, `make test` tests it.
# Each installs what is missing (.venv from requirements-dev.txt, node_modules
# from package-lock.json) and reuses it afterwards.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PY_OK  := $(VENV)/.installed
NODE_OK := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: dev dev-reset test lint install bundle migrate backfill import-uploads audit erasures maintenance deliveries researcher experiments export clean bench deploy setup fuzz

dev: install bundle example
	$(PY) -m devtools.dev

# Wipe what `make dev` keeps under .local/ across restarts: PostgreSQL's data, the Auth
# emulator's accounts, Firestore's documents and Storage's objects, all four together.
dev-reset: $(PY_OK)
	$(PY) -m devtools.dev --reset

test: install browser bundle client example lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Style, checked rather than hoped for: ruff's lint and format, and mypy (pyproject.toml).
lint: $(PY_OK)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

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

# The pages' bundles: public/app.js (the visitor page) and public/research.js (the researcher
# page), each with the modules it imports and the Firebase JS SDK and Chart.js from node_modules,
# bundled by esbuild (`npm run build`, also firebase.json's hosting predeploy) into public/build/
# (git-ignored). The client package comes from its sources (client/src, through esbuild's alias in
# package.json's build script), so the pages build before `make client` has run. Rebuilt when a
# module, the package's sources or the installed packages change.
BUNDLE := public/build/app.js public/build/research.js

bundle: $(BUNDLE)

$(BUNDLE): $(NODE_OK) $(wildcard public/*.js) $(wildcard client/src/*.ts)
	npm run --silent build

# The client package (client/, SPEC §15): its dev dependencies (esbuild, typescript) from its own
# lockfile, type-checked, built into client/dist/ (git-ignored; also npm pack's prepack); and the
# jsPsych 8 and 7.3 that tests/e2e/test_client*.py run it in (client/test/, a lockfile of its own).
.PHONY: client example

CLIENT_OK := client/node_modules/.installed
CLIENT_TEST_OK := client/test/node_modules/.installed
CLIENT_DIST := client/dist/.built

$(CLIENT_OK): client/package.json client/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are needed (npm not found)"; exit 1; }
	cd client && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CLIENT_TEST_OK): client/test/package.json client/test/package-lock.json
	cd client/test && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CLIENT_DIST): $(CLIENT_OK) client/build.mjs client/tsconfig.json $(wildcard client/src/*.ts)
	cd client && npm run --silent build
	touch $@

client: $(CLIENT_DIST) $(CLIENT_TEST_OK)
	cd client && npm run --silent typecheck

# examples/jspsych/ (docs/jspsych.md): a jsPsych study on the package, bundled by esbuild into
# examples/jspsych/public/build/ (git-ignored), served by make dev at /examples/jspsych/.
EXAMPLE_OK := examples/jspsych/node_modules/.installed
EXAMPLE := examples/jspsych/public/build/study.js

$(EXAMPLE_OK): examples/jspsych/package.json examples/jspsych/package-lock.json
	cd examples/jspsych && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(EXAMPLE): $(EXAMPLE_OK) $(CLIENT_DIST) $(wildcard examples/jspsych/src/*.js)
	cd examples/jspsych && npm run --silent build

example: $(EXAMPLE)

# Chromium for tests/e2e/test_browser.py: Debian's package, driven by the playwright pip package
# (never a browser download). Installed with apt when missing and we are root on a Debian-like
# machine (about a minute); otherwise one line is printed and the browser tests skip.
CHROMIUM := /usr/bin/chromium

.PHONY: browser
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "make test: installing chromium with apt-get for the browser tests (about a minute)"; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
	    || echo "make test: apt-get install chromium failed; the browser tests will skip"; \
	else \
	  echo "make test: $(CHROMIUM) is missing (needs root and apt-get to install it); the browser tests will skip: install the Debian package chromium"; \
	fi

# The fuzz test of `make test` (tests/contract/test_fuzz.py), longer: every schemathesis phase,
# more cases, repeated until FUZZ_MAX_TIME seconds are spent. Starts its own stack.
FUZZ_EXAMPLES ?= 300
FUZZ_MAX_TIME ?= 600
FUZZ_SEED ?= 20261123

fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_MAX_TIME=$(FUZZ_MAX_TIME) FUZZ_SEED=$(FUZZ_SEED) \
	FUZZ_PHASES=examples,coverage,fuzzing,stateful \
	  $(PY) -m pytest tests/contract/test_fuzz.py -k fuzzed -s $(PYTEST_ARGS)

# Apply sql/ to the database in DATABASE_URL (or the Cloud SQL settings).
migrate: $(PY_OK)
	$(PY) -m shared.migrate

# Give numbers to visitors whose sessions were created while numbering failed
# (visitorNumber null), and to their sessions and responses. Same settings as
# migrate; safe to run while the functions serve traffic, and to run again.
backfill: $(PY_OK)
	$(PY) -m shared.backfill

# Once, when upgrading to a release with table `uploads` (docs/deployment.md): bring the uploads
# that Firestore recorded before it into PostgreSQL. Same settings as backfill, plus the Firestore
# emulator or project; safe beside the functions' traffic, and to run again (it imports each once).
import-uploads: $(PY_OK)
	$(PY) -m shared.import_uploads

# Check that PostgreSQL, the bucket and Firestore agree (docs/operations.md): one line per kind of
# disagreement with its count, exit 1 when any. make audit ARGS="--repair" mends what PostgreSQL
# determines; ARGS="--min-age 0" also looks at uploads of the last ten minutes. Same settings as
# `make erasures`; against `make dev`, load .local/dev.env first. Safe beside traffic and to run again.
audit: $(PY_OK)
	$(PY) -m shared.audit$(if $(strip $(ARGS)), $(ARGS))

# Finish every pending withdrawal (docs/participants-rights.md): the Firestore and Storage parts of erasures
# that could not finish when they were asked for. Same settings as backfill, plus STORAGE_BUCKET
# and the Firestore and Storage access (or emulator hosts); safe to run again and from two
# places at once. `make erasures ERASURE=status` only reports.
ERASURE ?= resume

erasures: $(PY_OK)
	$(PY) -m shared.erasure $(ERASURE)

# What run_maintenance does on its schedules (docs/operations.md), once, from this machine: resume pending
# erasures, apply retention (GUEST_RETENTION_DAYS, when set), forget expired guest-creation
# windows, make the Prolific deliveries that are due. Same settings as `make erasures` (and
# PROLIFIC_API_TOKEN); safe to run again and beside the scheduled runs.
maintenance: $(PY_OK)
	$(PY) -m shared.maintenance

# Prolific completions made from the server (docs/operations.md): make deliveries (a list),
# make deliveries DELIVERIES=retry, DELIVERIES="retry --failed". Same settings as `make maintenance`.
DELIVERIES ?= list

deliveries: $(PY_OK)
	$(PY) -m shared.deliveries $(DELIVERIES)

# The researcher role (docs/researchers.md): make researcher ARGS="grant EMAIL [--experiments a,b]",
# ARGS="revoke EMAIL", ARGS="list". Without GOOGLE_CLOUD_PROJECT in the environment it reads
# .local/dev.env when make dev wrote one (its Auth emulator), and says so in one line; in
# production: GOOGLE_CLOUD_PROJECT and Application Default Credentials.
researcher: $(PY_OK)
	@if [ -z "$$GOOGLE_CLOUD_PROJECT" ] && [ -f .local/dev.env ]; then \
	  echo "make researcher: using make dev's emulators (the settings of .local/dev.env)"; \
	  set -a; . ./.local/dev.env; set +a; \
	fi; \
	$(PY) -m shared.researchers $(ARGS)

# Experiments' configurations (docs/researchers.md), next to the database: make experiments
# ARGS="set FILE" (a JSON document, as configure_experiment takes it), ARGS="show ID", ARGS="list",
# ARGS="exclude SESSION_ID" (the session frees its place). Same settings as backfill; against
# `make dev`, load .local/dev.env first.
experiments: $(PY_OK)
	@$(PY) -m shared.experiments $(ARGS)

# An export_data export (docs/researchers.md) written next to the database: make export ARGS="--out study.zip [...]"
# (python -m shared.export --help). Same settings as backfill, plus the Firestore emulator or project.
export: $(PY_OK)
	$(PY) -m shared.export $(ARGS)

# Deploy to Google Cloud (docs/deployment.md): migrations, every function, the
# storage trigger, Firebase rules and Hosting. Needs PROJECT, REGION, BUCKET and
# INSTANCE_CONNECTION_NAME; DRY_RUN=1 prints the commands and runs nothing.
# A dry run (DRY_RUN=1) only prints the commands: it needs the Python environment alone. A real
# deploy also needs node_modules (firebase-tools runs `firebase deploy`).
deploy: $(PY_OK)
	@$(if $(filter-out 0,$(strip $(DRY_RUN))),,$(MAKE) --no-print-directory $(NODE_OK) &&) $(PY) -m devtools.deploy

# Once per Google Cloud project, before the first deploy (docs/deployment.md): the APIs, Firebase and
# its web app, Firestore, the sign-in providers, the uploads bucket, Cloud SQL and its database, the
# secrets, the service accounts and their roles. Needs PROJECT and REGION (BUCKET, INSTANCE, TIER,
# DB_IAM_AUTH optional); idempotent, so safe to run again; DRY_RUN=1 prints the commands and runs nothing.
setup: $(PY_OK)
	@$(if $(filter-out 0,$(strip $(DRY_RUN))),,$(MAKE) --no-print-directory $(NODE_OK) &&) $(PY) -m devtools.setup

# Benchmarks (bench/README.md): starts its own stack on free ports, prints one
# table and writes it to bench/results/<date>.md. Not part of `make test`.
BENCH_OK := $(VENV)/.bench-installed

$(BENCH_OK): $(PY_OK) bench/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench: install $(BENCH_OK) $(CLIENT_DIST)
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache public/build test-results client/node_modules client/test/node_modules client/dist examples/jspsych/node_modules examples/jspsych/public/build
