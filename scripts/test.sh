#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh test), then runs every test suite of
# Tideway and holds each against tests/expected-counts:
#   1. the pure core, natively (cargo test -p tideway)
#   2. the sync server and protocol, on SQLite and a throwaway PostgreSQL
#   3. the wasm suites (IndexedDB and the JS API in a page and in a service worker,
#      the sync triggers against the reference server): built once, then run on
#      Chromium, Firefox and WebKit in turn
#   4. sync end to end against the reference server, in Chromium (Playwright), and
#      the short chaos run (tests/chaos: faults, restarts, then every check of a heal)
#   5. the demo app end to end, served by the reference server, on Chromium and Firefox
#   6. the package's TypeScript declarations against real usage (tsc over tests/types),
#      and the React hooks and bundlers (Vite, esbuild) in Chromium (tests/frameworks)
# Every suite runs even when an earlier one fails. The run ends with a summary per
# engine, a WARNING line for each suite that had to be run again, a FAILED line for
# each broken expectation, a FAILED TEST line for each failed test with the first
# lines it printed, and "N passed, N failed, N skipped" over all suites; it
# exits non-zero if anything failed or fell short.
#
# TIDEWAY_TEST_SKIP_POSTGRES=1 runs the server tests without PostgreSQL (their
# PostgreSQL variants return early; the summary counts them as skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/test-results.sh

bash scripts/setup.sh test || exit 1

work=$(mktemp -d)
export RESULTS=$work/results SKIPS=$work/skips WARNINGS=$work/warnings PROBLEMS=$work/problems FAILURES=$work/failures
: >"$RESULTS" && : >"$SKIPS" && : >"$WARNINGS" && : >"$PROBLEMS" && : >"$FAILURES"
server_pid=
proxy_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

target_dir=${CARGO_TARGET_DIR:-target}

# run_logged LOG LIMIT_SECONDS COMMAND...: shows the output and keeps it in LOG;
# a command that outlives its limit is killed (a hang fails, it never waits forever).
run_logged() {
  local log=$1 limit=$2
  shift 2
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

echo; echo "==> core (native)"
if cargo test -p tideway --no-run; then
  start=$SECONDS
  run_logged "$work/core.log" 900 cargo test -p tideway
  record_cargo native $((SECONDS - start)) "$work/core.log"
else
  echo "building the core tests failed" >>"$PROBLEMS"
fi

echo; echo "==> sync server and protocol"
start=$SECONDS
if [ "${TIDEWAY_TEST_SKIP_POSTGRES:-}" = 1 ]; then
  export SKIPPED_POSTGRES=1
  run_logged "$work/server.log" 3600 cargo test -p tideway-protocol -p tideway-server
else
  run_logged "$work/server.log" 3600 bash scripts/test-server.sh
fi
record_cargo native $((SECONDS - start)) "$work/server.log"

# WebKit visits the runner's server on 127.0.0.2 (see the WebKit run below), at a
# port given in advance: the runner visits the port it is told (it cannot be 0), and
# the reference server must allow that origin. Its server can bind it again for
# each suite.
webkit_runner_port=$(node -e '
  const probe = require("net").createServer().listen(0, "127.0.0.2", () => {
    console.log(probe.address().port);
    probe.close();
  });')

# The sync fallback suite talks to a reference server on a throwaway database; its
# URL is compiled into the suite (TIDEWAY_TEST_SERVER), so it starts before the build.
echo; echo "==> starting a reference server for the wasm suites"
if cargo build -p tideway-server; then
  "$target_dir/debug/tideway-server" --listen 127.0.0.1:0 --db "sqlite://$work/server.db" \
    --token engines-token:engines --cors-origin localhost --cors-origin "http://127.0.0.2:$webkit_runner_port" \
    >"$work/server.out" 2>"$work/server.err" &
  server_pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$work/server.out" && break
    sleep 0.1
  done
fi
export TIDEWAY_TEST_SERVER
TIDEWAY_TEST_SERVER=$(grep -o 'http://[^ ]*' "$work/server.out" 2>/dev/null) || {
  cat "$work/server.err" >&2 2>/dev/null
  echo "the reference server for the wasm suites did not start" >>"$PROBLEMS"
  TIDEWAY_TEST_SERVER=http://127.0.0.1:9
}

# The wasm test binaries do not depend on the browser: build them once, then let
# wasm-bindgen-test-runner pick the engine from the one driver variable it is given.
echo; echo "==> building the wasm suites"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
# Bounds a whole suite's run in the browser, not one test.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
wasm_suites=()
if run_logged "$work/wasm-build.log" 3600 cargo test --target wasm32-unknown-unknown --features server-tests --tests --no-run; then
  mapfile -t wasm_suites < <(sed -n -E 's/^ *Executable tests\/([A-Za-z0-9_]+)\.rs \(.*$/\1/p' "$work/wasm-build.log")
else
  echo "building the wasm suites failed" >>"$PROBLEMS"
fi

# run_wasm_suites ENGINE [COMMAND PREFIX...]: runs each wasm suite on one engine.
# A suite is run a second time only when its first run provably started no test
# (the runner never saw the harness start), or, on WebKit, when it failed with
# memory out of bounds or overwritten inside the engine's wasm (see webkit_trapped);
# either is printed as a WARNING at the end. A run that started and then failed,
# stalled or was cut short otherwise is a failure.
run_wasm_suites() {
  local engine=$1 suite attempt start status log
  shift
  echo; echo "==> wasm suites on $engine"
  for suite in "${wasm_suites[@]}"; do
    log=$work/wasm-$engine-$suite.log
    for attempt in 1 2; do
      start=$SECONDS
      run_logged "$log" 600 "$@" cargo test --target wasm32-unknown-unknown --features server-tests --test "$suite"
      status=$?
      if [ "$status" -ne 0 ] && [ "$attempt" -eq 1 ] && ran_no_test "$log"; then
        echo "$engine $suite: no test started on the first run (the runner never saw the harness start); it was run again" >>"$WARNINGS"
        continue
      fi
      if [ "$status" -ne 0 ] && [ "$attempt" -eq 1 ] && [ "$engine" = webkit ] && webkit_trapped "$log"; then
        echo "$engine $suite: WebKit's wasm met memory out of bounds or overwritten on the first run (\"A wasm trap inside the engine\" in docs/compatibility.md); it was run again" >>"$WARNINGS"
        continue
      fi
      break
    done
    if grep -q "Running tests/$suite.rs" "$log"; then
      record_cargo "$engine" $((SECONDS - start)) "$log"
    else
      record_missing "$engine" "$suite" $((SECONDS - start))
    fi
  done
}

only_driver=(env -u CHROMEDRIVER -u GECKODRIVER -u SAFARIDRIVER -u MSEDGEDRIVER -u WASM_BINDGEN_TEST_WEBDRIVER_JSON)
gecko=$(command -v geckodriver || echo "$HOME/.cargo/bin/geckodriver")
# Chromium and WebKit reach the runner's server through a proxy that gives each
# request a connection of its own (scripts/lib/one-request-per-connection.mjs and
# docs/compatibility.md); the reference server is reached directly, as apps do.
# Chromium's capabilities are webdriver.json's with the proxy added.
node scripts/lib/one-request-per-connection.mjs >"$work/proxy.port" &
proxy_pid=$!
for _ in $(seq 50); do
  [ -s "$work/proxy.port" ] && break
  sleep 0.1
done
chromium_json=$work/webdriver-chromium.json
node -e '
  const [file, proxyPort, server] = process.argv.slice(1);
  if (!proxyPort) throw new Error("the proxy did not start");
  const capabilities = JSON.parse(require("fs").readFileSync("webdriver.json", "utf8"));
  capabilities["goog:chromeOptions"].args.push(
    `--proxy-server=http://127.0.0.1:${proxyPort}`,
    `--proxy-bypass-list=<-loopback>;${new URL(server).host}`,
  );
  require("fs").writeFileSync(file, JSON.stringify(capabilities));
' "$chromium_json" "$(cat "$work/proxy.port")" "$TIDEWAY_TEST_SERVER" ||
  echo "starting the proxy for the wasm suites failed" >>"$PROBLEMS"
run_wasm_suites chromium "${only_driver[@]}" CHROMEDRIVER=/usr/bin/chromedriver \
  WASM_BINDGEN_TEST_WEBDRIVER_JSON="$chromium_json"
# The Firefox profile opens one connection at a time to the runner's server: see
# scripts/lib/webdriver-firefox.json and docs/compatibility.md.
run_wasm_suites firefox "${only_driver[@]}" GECKODRIVER="$gecko" \
  WASM_BINDGEN_TEST_WEBDRIVER_JSON=scripts/lib/webdriver-firefox.json
# WebKitGTK's driver speaks W3C WebDriver, which the runner drives as Safari;
# WebKitGTK needs a display, which xvfb-run provides. WebKit reaches the runner's
# server through the same proxy as Chromium. The runner gives Safari no
# capabilities, so the proxy is set where WebKitGTK also reads it, the environment
# (http_proxy, no_proxy). The driver talks to the browser on 127.0.0.1, which must
# stay direct, as must the reference server; so 127.0.0.1 is on no_proxy and the
# runner serves on 127.0.0.2, which goes through the proxy.
run_wasm_suites webkit "${only_driver[@]}" SAFARIDRIVER=/usr/bin/WebKitWebDriver \
  http_proxy="http://127.0.0.1:$(cat "$work/proxy.port")" no_proxy=127.0.0.1,localhost \
  WASM_BINDGEN_TEST_ADDRESS="127.0.0.2:$webkit_runner_port" xvfb-run -a
kill "$proxy_pid" 2>/dev/null
proxy_pid=

kill "$server_pid" 2>/dev/null
server_pid=

echo; echo "==> building the package"
bash scripts/build.sh || echo "building the package failed" >>"$PROBLEMS"
# The same package with the test hooks of the fault-injection feature, for the
# test that makes a panic on purpose (tests/sync/panic.test.mjs).
bash scripts/build.sh faults || echo "building the package with its test hooks failed" >>"$PROBLEMS"

# run_node_suite SUITE ENGINE [ENV...]: one directory of node tests, TAP output.
# --test-timeout bounds each test.
run_node_suite() {
  local suite=$1 engine=$2 start log
  shift 2
  log=$work/node-$suite-$engine.log
  echo; echo "==> $suite on $engine"
  start=$SECONDS
  run_logged "$log" 1200 env "$@" node --test --test-reporter=tap --test-timeout=180000 "tests/$suite/"
  record_node "$suite" "$engine" $((SECONDS - start)) "$log"
}

run_node_suite sync chromium
run_node_suite chaos chromium
run_node_suite e2e chromium TIDEWAY_E2E_BROWSER=chromium
run_node_suite e2e firefox TIDEWAY_E2E_BROWSER=firefox
run_node_suite frameworks chromium

# The declarations of the built package, checked by tsc (strict) against tests/types,
# whose `@ts-expect-error` lines must each be an error: one check, passed or failed.
echo; echo "==> types (tsc over tests/types)"
start=$SECONDS
if run_logged "$work/types.log" 300 npx --no-install tsc -p tests/types; then types_passed=1; else types_passed=0; fi
printf 'native\ttypes\t%s\t%s\t0\t0\t1\t%s\t-\t0\n' "$types_passed" $((1 - types_passed)) $((SECONDS - start)) >>"$RESULTS"

summarize tests/expected-counts
