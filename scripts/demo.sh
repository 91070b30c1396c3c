#!/usr/bin/env bash
# Installs only what the demo needs (scripts/setup.sh demo: the wasm target and
# wasm-bindgen-cli), builds the library into www/pkg/ and the reference server, and
# serves the demo app from the server (embedded SQLite) at http://127.0.0.1:8787/.
# TIDEWAY_LISTEN=HOST:PORT serves it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh demo
bash scripts/build.sh demo
# A debug build: it takes a fraction of the release build's time (which links with
# LTO), and serving one person's demo asks little of it.
cargo build -p tideway-server

listen=${TIDEWAY_LISTEN:-127.0.0.1:8787}
echo
echo "Tideway demo: open http://$listen/ (Ctrl-C stops the server)"
echo
exec "${CARGO_TARGET_DIR:-target}/debug/tideway-server" --listen "$listen" --db sqlite://demo.db --static www --token demo:demo
