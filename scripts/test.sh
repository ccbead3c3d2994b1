#!/usr/bin/env bash
# Install, then run the whole test suite (unit, devnet, CLI, faults; slow ones included),
# ruff and mypy. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check monitor scripts tests
.venv/bin/mypy monitor
exec .venv/bin/pytest "$@"
