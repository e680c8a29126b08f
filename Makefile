# Build, check and run the orchestrator. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# Extra arguments for `uv pip compile`, e.g. `make lock LOCK_ARGS=--upgrade`.
LOCK_ARGS ?=
RUN_HOST ?= 127.0.0.1
RUN_PORT ?= 8080

BIN := $(VENV)/bin
# Touched after a complete install: the venv is rebuilt only when its inputs change.
STAMP := $(VENV)/.installed
UV_COMPILE := $(BIN)/uv pip compile pyproject.toml --generate-hashes --universal \
	--python-version 3.11 --custom-compile-command "make lock" $(LOCK_ARGS)

.PHONY: help venv test check deploy-lint deploy-test bench contracts docs run lock clean

help:
	@echo "make venv       system packages (scripts/system-deps.sh), then $(VENV) from requirements-dev.lock"
	@echo "make test       run the test suite (PYTEST_ARGS='...' is passed to pytest)"
	@echo "make check      ruff check, ruff format --check, mypy, lint-imports, deploy-lint"
	@echo "make deploy-lint  ansible-playbook --syntax-check and ansible-lint (production) on ansible/"
	@echo "make deploy-test  as root: apply the playbook to a booted Debian container, twice, reboot, check"
	@echo "make bench      the benchmark suite (bench/): JSON report, plot and summary in bench/results/"
	@echo "make contracts  regenerate contracts/ (OpenAPI, TypeScript types, settings schema, device protocol) from the code"
	@echo "make docs       regenerate docs/diagrams/*.mmd and docs/state-machines.md from the transition tables"
	@echo "make run        the demo on http://$(RUN_HOST):$(RUN_PORT)/: the appliance and a simulated fleet of 12 devices"
	@echo "make lock       regenerate requirements.lock and requirements-dev.lock (LOCK_ARGS=--upgrade to upgrade)"
	@echo "make clean      remove $(VENV) and the tool caches"

venv: $(STAMP)

# A venv whose interpreter is gone (a removed pyenv version, say) is rebuilt from scratch.
$(STAMP): requirements-dev.lock pyproject.toml scripts/system-deps.sh scripts/fetch-mermaid.sh
	scripts/system-deps.sh
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "$(PYTHON) is older than Python 3.11; run make with PYTHON=python3.11" >&2; exit 1; }
	if ! $(BIN)/python -c '' 2>/dev/null; then $(PYTHON) -m venv --clear $(VENV); fi
	$(BIN)/python -m pip install --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --no-deps -e .
	scripts/fetch-mermaid.sh $(VENV)/share/mermaid
	touch $@

# The deployment test joins where it can run (root, systemd-nspawn, debootstrap); elsewhere it
# is skipped with the reason, unless ORCHESTRATOR_TESTS_NO_SKIP is set (CI), where that fails.
test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)
	@missing=(); \
	[ "$$(id -u)" -eq 0 ] || missing+=("root"); \
	command -v systemd-nspawn >/dev/null || missing+=("systemd-nspawn"); \
	command -v debootstrap >/dev/null || missing+=("debootstrap"); \
	if [ "$${#missing[@]}" -eq 0 ]; then \
		$(MAKE) --no-print-directory deploy-test; \
	elif [ -n "$${ORCHESTRATOR_TESTS_NO_SKIP-}" ]; then \
		echo "make test: deploy-test cannot run here (needs: $${missing[*]}) and ORCHESTRATOR_TESTS_NO_SKIP is set" >&2; \
		exit 1; \
	else \
		echo "make test: SKIPPED deploy-test (needs: $${missing[*]}); run as root: scripts/system-deps.sh && make deploy-test"; \
	fi

# Runs every tool even when an earlier one fails, then fails if any did. lint-imports takes 0.2 s
# uncached, and --no-cache keeps its .import_linter_cache/ out of the working tree.
check: $(STAMP)
	@failed=(); \
	echo "== ruff check"; $(BIN)/ruff check . || failed+=("ruff check"); \
	echo "== ruff format --check"; $(BIN)/ruff format --check . || failed+=("ruff format"); \
	echo "== mypy"; $(BIN)/mypy || failed+=("mypy"); \
	echo "== lint-imports"; $(BIN)/lint-imports --no-cache || failed+=("lint-imports"); \
	echo "== deploy-lint"; $(MAKE) --no-print-directory deploy-lint || failed+=("deploy-lint"); \
	if [ "$${#failed[@]}" -ne 0 ]; then echo "make check: FAILED: $${failed[*]}" >&2; exit 1; fi; \
	echo "make check: all passed"

# The playbook, as CI applies it: a syntax check with the CI inventory (its test-only vault
# password), then ansible-lint's production profile (settings in ansible/.ansible-lint). The
# collections come from the `ansible` package in the venv (Galaxy is unreachable from CI).
ANSIBLE_ENV := cd ansible && PATH="$(abspath $(BIN)):$$PATH" \
	ANSIBLE_VAULT_PASSWORD_FILE=inventories/ci/vault-password-for-ci-only
deploy-lint: $(STAMP)
	$(ANSIBLE_ENV) ansible-playbook --syntax-check -i inventories/ci/hosts.yml site.yml
	$(ANSIBLE_ENV) ansible-lint

# The deployment test (deploytest/): needs root, systemd-nspawn and debootstrap. Caches the
# Debian root and the wheelhouse under /var/cache/orchestrator-deploy-test (DEPLOY_TEST_CACHE);
# DEPLOY_TEST_ARGS='--keep -v' keeps the run's logs.
DEPLOY_TEST_ARGS ?=
deploy-test: $(STAMP)
	$(BIN)/python -m deploytest $(DEPLOY_TEST_ARGS)

# The benchmark suite (docs/benchmarks.md): every section in one run, a JSON report and a plot
# under bench/results/, a summary table. Needs root for the namespace sections; never in `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench

contracts: $(STAMP)
	$(BIN)/python -m orchestrator.contracts contracts

docs: $(STAMP)
	$(BIN)/python -m orchestrator.diagrams docs/diagrams

# The demo: the appliance, a Mosquitto broker and a simulated fleet of 12 devices, all on
# loopback, with throwaway data; it prints the console URL, an API key, the TOTP QR code and
# requests to try. exec: Ctrl-C and a SIGTERM to make reach the demo itself, which stops cleanly.
run: $(STAMP)
	exec $(BIN)/orchestrator demo --host $(RUN_HOST) --port $(RUN_PORT)

# uv comes from the dev extra (it echoes the whole file on stdout, hence >/dev/null). The dev lock
# is constrained to the runtime lock so the tests run exactly the versions the appliance runs.
lock: $(STAMP)
	$(UV_COMPILE) -o requirements.lock >/dev/null
	$(UV_COMPILE) --extra dev --constraint requirements.lock -o requirements-dev.lock >/dev/null

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache \
		build dist ./*.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
