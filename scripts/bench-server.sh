#!/usr/bin/env bash
# Benchmark of the sync server (not a test): pushes 10k mutations in batches of
# 100, fills up to 100k entities, then pulls all 100k changes, printing rows/s,
# once on SQLite and once on PostgreSQL (a throwaway cluster on a free port,
# installed from Debian packages if missing; needs root). Release build.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/postgres.sh
ensure_postgres_installed

# Release profile without the workspace's fat LTO: the numbers barely move and
# the build takes minutes less.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
echo "== building (release)"
cargo build --release -q -p tideway-server --bin tideway-server --example bench
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SERVER="$TARGET_DIR/release/tideway-server"
BENCH="$TARGET_DIR/release/examples/bench"

WORK=$(mktemp -d /tmp/tideway-bench.XXXXXX)
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() {
    stop_server
    stop_throwaway_postgres
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts the server on database URL $1 and sets BASE to its address.
start_server() {
    "$SERVER" --listen 127.0.0.1:0 --db "$1" --token bench:bench >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if grep -q listening "$WORK/server.out" 2>/dev/null; then break; fi
        sleep 0.1
    done
    BASE=$(grep -o 'http://[0-9.:]*' "$WORK/server.out") || { cat "$WORK/server.err"; exit 1; }
}

echo "== SQLite"
start_server "sqlite://$WORK/bench.db"
RUST_LOG=warn "$BENCH" "$BASE" bench sqlite
stop_server

echo "== PostgreSQL"
start_throwaway_postgres
start_server "$PG_URL"
"$BENCH" "$BASE" bench postgres
stop_server
