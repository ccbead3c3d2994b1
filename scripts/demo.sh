#!/usr/bin/env bash
# The embedded default: install, then `liqmon demo` (local devnet running the real Aave V3,
# seeded positions, the real ETH/BTC path of 2020-03-12 walked down the oracle).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/liqmon demo "$@"
