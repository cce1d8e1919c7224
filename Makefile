# One entry point for the project's commands. `make test` and `make demo` need nothing done before them.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo emulator bench lock clean

$(STAMP): requirements.txt requirements-dev.txt requirements-uv.txt pyproject.toml include/offline_aws/pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Two workers (pytest-xdist): most of the suite waits on subprocesses. Each module stays on one worker,
# the native deployment's modules on one worker together, longest first (tests/conftest.py); the
# scheduler keeps that order (--no-loadscope-reorder). `--durations=30` comes from pyproject.toml.
test: lint
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

demo: $(STAMP)
	$(PY) scripts/demo.py

emulator: $(STAMP)
	$(VENV)/bin/offline-aws

bench: $(STAMP)
	$(PY) bench/run_all.py

# Each lock with every distribution's sha256 (installs check them: scripts/bootstrap.sh, the Dockerfile).
COMPILE := $(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu

lock: $(STAMP)
	$(COMPILE) requirements.in -o requirements.txt
	$(COMPILE) requirements-dev.in -o requirements-dev.txt
	$(COMPILE) requirements-uv.in -o requirements-uv.txt
	$(COMPILE) infra/requirements-lint.in -o infra/requirements-lint.txt
	$(COMPILE) tests/e2e/sdk/requirements-sdk.in -o tests/e2e/sdk/requirements-sdk.txt

clean:
	rm -rf $(VENV) .venv-infra .venv-sdk .venv-*.lock .airflow .pytest_cache .ruff_cache
