#!/usr/bin/env bash
# Benchmark of the sync server (not a test): pushes 10k mutations in batches of
# 100, fills up to 100k entities, then pulls all 100k changes, printing rows/s,
# once on SQLite and once on PostgreSQL (a throwaway cluster on a free port,
# installed from Debian packages if missing; needs root). Release build.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PG_BIN/initdb" ]; then
    echo "== installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi

# Release profile without the workspace's fat LTO: the numbers barely move and
# the build takes minutes less.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
echo "== building (release)"
cargo build --release -q -p tideway-server --bin tideway-server --example bench
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SERVER="$TARGET_DIR/release/tideway-server"
BENCH="$TARGET_DIR/release/examples/bench"

WORK=$(mktemp -d /tmp/tideway-bench.XXXXXX)
PG_DIR=$(mktemp -d /tmp/tideway-bench-pg.XXXXXX)
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
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK" "$PG_DIR"
}
trap cleanup EXIT

free_port() {
    # A port nobody answers on; the cluster start fails loudly if it is taken meanwhile.
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

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
chown postgres "$PG_DIR"
PG_PORT=$(free_port)
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -l "$PG_DIR/log" \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null
start_server "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
"$BENCH" "$BASE" bench postgres
stop_server
