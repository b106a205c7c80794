# The two commands: `make demo` and `make test`. Everything else here serves them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.8

.PHONY: demo stop test lint format lock venv clean celery demo-celery

demo: $(STAMP)  ## start the local stack, drop demo data, follow the runs, print where reports are
	$(BIN)/retrain demo

# The production-shaped profile (README, "Beyond one machine"): Airflow on PostgreSQL,
# CeleryExecutor with Redis as broker, two Celery workers. Needs both services running
# (RETRAIN_POSTGRES_URL, RETRAIN_REDIS_URL; default 127.0.0.1); `make stop` stops it and drops
# its database.
celery: $(STAMP)  ## start the local stack on PostgreSQL + CeleryExecutor (Redis), two workers
	$(BIN)/retrain start --profile celery

demo-celery: $(STAMP)  ## the demo on the celery profile
	$(BIN)/retrain demo --profile celery

stop:  ## stop every process the demo started
	@if [ -x $(BIN)/retrain ]; then $(BIN)/retrain stop; else echo "no environment, nothing to stop"; fi

# The reports are checked in a real headless browser: Debian's chromium, installed if missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

# The end-to-end tests spend most of their time waiting on the real stack (polls, deferrals,
# faults), so the rest of the suite runs beside the embedded round, then the end-to-end tests
# marked beside (a stack of their own each) and the celery round, beside the embedded round's
# end; their output is shown once all are done.
test: $(STAMP) $(CHROMIUM)  ## ruff, then the whole pytest suite (unit, validation, integration, DAGs, end-to-end)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory checkov
	@rest_log=$$(mktemp); \
	( $(BIN)/pytest -m "not e2e"; rest=$$?; \
	  RETRAIN_E2E_PROFILES=celery $(BIN)/pytest -m "e2e and (celery or beside)"; celery=$$?; \
	  test $$rest -eq 0 && test $$celery -eq 0 ) > $$rest_log 2>&1 & other=$$!; \
	RETRAIN_E2E_PROFILES=embedded $(BIN)/pytest -m "e2e and not beside"; e2e=$$?; \
	wait $$other; others=$$?; \
	echo "--- beside it: the rest of the suite (unit, validation, integration, DAGs), then the"; \
	echo "--- end-to-end tests marked beside, and those marked celery on the celery profile"; \
	echo "--- (PostgreSQL, Celery, Redis):"; \
	cat $$rest_log; rm -f $$rest_log; \
	test $$e2e -eq 0 && test $$others -eq 0

# checkov over terraform/ must report zero failed checks. It runs from its own environment,
# .venv-tools, built from requirements-tools.lock (hashes checked) and rebuilt when that changes,
# so its many dependencies never touch .venv. A skipped check carries its reason in the .tf file.
TOOLS := .venv-tools
.PHONY: checkov
checkov: $(STAMP)  ## static security checks of terraform/ (checkov, in its own venv)
	@stamp=$(TOOLS)/.installed-$$(cksum < requirements-tools.lock | cut -d' ' -f1); \
	if [ ! -f $$stamp ]; then \
	  rm -rf $(TOOLS) && \
	  $(BIN)/uv venv --quiet --python $(BIN)/python $(TOOLS) && \
	  $(BIN)/uv pip sync --quiet --require-hashes --python $(TOOLS)/bin/python requirements-tools.lock && \
	  touch $$stamp || exit 1; \
	fi
	$(TOOLS)/bin/checkov --directory terraform --framework terraform --quiet --compact --skip-download

venv: $(STAMP)

# The environment comes from the lock file only (hashes checked); uv is bootstrapped with pip.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lock:  ## re-resolve requirements.in into requirements.lock
	$(BIN)/uv pip compile --quiet requirements.in --python-version 3.11 --generate-hashes -o requirements.lock

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: stop
	rm -rf $(VENV) $(TOOLS) .stack .pytest_cache .ruff_cache
