#!/usr/bin/env bash
# Installs what is missing, builds the library and the reference server, and
# serves the demo app from the server (embedded SQLite) at http://127.0.0.1:8787/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh
cargo build --release -p tideway-server

listen=${TIDEWAY_LISTEN:-127.0.0.1:8787}
echo
echo "Tideway demo: open http://$listen/ (Ctrl-C stops the server)"
echo
exec "${CARGO_TARGET_DIR:-target}/release/tideway-server" --listen "$listen" --db sqlite://demo.db --static www --token demo:demo
