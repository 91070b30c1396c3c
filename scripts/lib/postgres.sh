# A throwaway PostgreSQL cluster for tests and benchmarks. Source this file,
# then `start_throwaway_postgres [postgres -c settings…]`: it installs
# PostgreSQL from Debian packages if missing, starts a cluster on a free port
# and sets PG_URL. Call `stop_throwaway_postgres` (e.g. from an EXIT trap).
# Needs root (apt-get, and running the server as the postgres user).

PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR=""

ensure_postgres_installed() {
    if [ ! -x "$PG_BIN/initdb" ]; then
        echo "== installing PostgreSQL"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
    fi
}

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

start_throwaway_postgres() {
    ensure_postgres_installed
    PG_DIR=$(mktemp -d /tmp/tideway-pg.XXXXXX)
    local port settings=""
    port=$(free_port)
    for setting in "$@"; do settings+=" -c $setting"; done
    echo "== starting a throwaway PostgreSQL on port $port"
    chown postgres "$PG_DIR"
    # The postgres user cannot enter the caller's directory; run from one it can.
    (cd "$PG_DIR" && runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null)
    (cd "$PG_DIR" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -l "$PG_DIR/log" \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1$settings" start >/dev/null)
    PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_throwaway_postgres() {
    if [ -n "$PG_DIR" ]; then
        (cd "$PG_DIR" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1) || true
        rm -rf "$PG_DIR"
        PG_DIR=""
    fi
}
