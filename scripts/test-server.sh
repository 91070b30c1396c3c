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

source scripts/lib/postgres.sh
trap stop_throwaway_postgres EXIT
# Many short-lived test databases and two server processes per test: room for connections.
start_throwaway_postgres max_connections=300 fsync=off

export TIDEWAY_TEST_POSTGRES_URL="$PG_URL"
unset TIDEWAY_TEST_SKIP_POSTGRES

echo "== cargo test -p tideway-protocol -p tideway-server"
cargo test -p tideway-protocol -p tideway-server "$@"
