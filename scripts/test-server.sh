#!/usr/bin/env bash
# Runs the whole test suite of the sync server and the protocol crate, against
# SQLite and against a real PostgreSQL: installs PostgreSQL from Debian packages
# if it is missing, starts a throwaway cluster on a free port, and stops it on exit.
#
# Needs root (apt-get, and running PostgreSQL as the postgres user). For a local
# run without PostgreSQL, skip this script and run
#   TIDEWAY_TEST_SKIP_POSTGRES=1 cargo test -p tideway-protocol -p tideway-server
# (without that variable the PostgreSQL tests fail rather than silently pass).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PG_BIN/initdb" ]; then
    echo "== installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi

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

PG_DIR=$(mktemp -d /tmp/tideway-pg.XXXXXX)
PG_PORT=$(free_port)
cleanup() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap cleanup EXIT

echo "== starting a throwaway PostgreSQL on port $PG_PORT"
chown postgres "$PG_DIR"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
# Many short-lived test databases and two server processes per test: room for connections.
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -l "$PG_DIR/log" \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null

export TIDEWAY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
unset TIDEWAY_TEST_SKIP_POSTGRES

echo "== cargo test -p tideway-protocol -p tideway-server"
cargo test -p tideway-protocol -p tideway-server "$@"
