#!/usr/bin/env bash
# Create .venv (if missing) and install the locked dependencies with uv, itself from PyPI.
# Every download is checked against the lock's sha256 hashes (requirements-uv.txt for uv itself):
# a registry or mirror that serves other bytes for a pinned version fails the install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
UV_VERSION=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements-uv.txt)
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ] || ! .venv/bin/uv --version | grep -q "$UV_VERSION"; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-uv.txt
fi
# --compile-bytecode: write the .pyc files once, as pip and the Docker image do. Without them every
# Python process (each Airflow component, each task, each `airflow dags test`) compiles Airflow,
# pandas, botocore... from source again: seconds per process (docs/benchmarks.md).
.venv/bin/uv pip install --quiet --compile-bytecode --require-hashes --python .venv/bin/python \
    -r requirements.txt -r requirements-dev.txt
# Two distributions, both editable: the provider (airflow-provider-sagemaker-retrain, no emulator, no
# moto) and the offline AWS emulator (offline-aws, include/offline_aws/pyproject.toml, its `offline-aws` script).
# --no-build-isolation: built with the lock's (hash-checked) setuptools, so nothing unpinned is downloaded.
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps --no-build-isolation -e . -e include/offline_aws
touch .venv/.installed
