#!/usr/bin/env bash
# Installs what is missing, then runs every test suite of Tideway:
#   1. the pure core, natively (cargo test)
#   2. the sync server and protocol, against SQLite and a throwaway PostgreSQL
#   3. IndexedDB and the JS API in headless Chromium, in a page and in a service worker
#   4. sync end to end against the reference server, in Chromium through Playwright
#   5. the demo app end to end, in Chromium through Playwright
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo; echo "==> core (native)"
cargo test -p tideway

echo; echo "==> sync server and protocol (SQLite + PostgreSQL)"
bash scripts/test-server.sh

echo; echo "==> IndexedDB and JS API in headless Chromium (page + service worker)"
CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome --mode no-install

bash scripts/build.sh

echo; echo "==> sync against the reference server (Chromium via Playwright)"
cargo build -p tideway-server
node --test tests/sync/

echo; echo "==> demo app end to end (Chromium via Playwright)"
node --test tests/e2e/
