#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what the tests need, lint, type-check, run pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k stdio`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/install-test-deps.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check --quiet src tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
