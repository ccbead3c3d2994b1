#!/usr/bin/env bash
# Install everything liqmon needs into the checkout: a Python venv (.venv) with the package
# and its dev tools, and the npm parts (anvil, @aave/core-v3, aave-v3-origin, Morpho Blue, solc-js)
# from the lock file; then compiles the newest Aave V3 Pool from the aave-v3-origin sources into
# .liqmon-cache/ (about 10 s once; nothing of it is committed). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.liqmon-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing liqmon and its dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev,postgres]'
  touch "$stamp"
fi
if [ ! -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (anvil, @aave/core-v3, aave-v3-origin, solc) from package-lock.json" >&2
  # npm ci would insist on optional anvil builds for other platforms, which this registry
  # does not serve; npm install follows the committed lock and skips them
  npm install --no-audit --no-fund --no-save --loglevel=error
fi
# the aave-v3-origin build (solc-js 0.8.27) is cached under .liqmon-cache/, keyed by its inputs
.venv/bin/python -m monitor.devnet.aave_origin_build
# @aave-dao/aave-address-book (npm): only read by tests/unit/test_presets.py, which checks the
# shipped presets (monitor/data/presets.json) against it; unpacked once under .liqmon-cache/
book=.liqmon-cache/npm/aave-address-book-4.68.1
if [ ! -f "$book/package/package.json" ]; then
  echo "setup: fetching @aave-dao/aave-address-book 4.68.1 (the presets' reference)" >&2
  mkdir -p "$book"
  (cd "$book" && npm pack --silent @aave-dao/aave-address-book@4.68.1 >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz)
fi
