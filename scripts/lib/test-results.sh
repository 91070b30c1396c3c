# What scripts/test.sh knows about test results: it reads each suite's own closing
# lines (cargo's `test result:` per test binary, node's `# pass`/`# fail`/`# skipped`),
# keeps one row per suite and engine, and holds them against tests/expected-counts.
# Sourced by scripts/test.sh; expects RESULTS, SKIPS and FAILURES to name writable
# files.

# Rows of $RESULTS, tab-separated:
#   engine suite passed failed ignored skipped finished seconds browser postgres_ok
# `finished` is 0 when a suite began but printed no closing line (a crash, a hang, a
# run cut short), `seconds` is the whole command's time, on its first row only (`-` on
# the others), `browser` is the engine the wasm runner said it drove, and
# `postgres_ok` counts the PostgreSQL variants of the server tests that passed.
# Rows of $SKIPS: engine suite test-name.
# Rows of $FAILURES: engine suite test-name what-it-said, the last being the first
# lines the failure printed (a panic's message, a test's error), joined by " | ".

# record_cargo ENGINE SECONDS LOG: one row per test binary in a cargo test log.
record_cargo() {
  local engine=$1 seconds=$2 log=$3
  awk -v engine="$engine" -v seconds="$seconds" -v OFS='\t' '
    function flush() {
      if (name != "") print engine, name, passed, failed, ignored, 0, finished, (rows++ ? "-" : seconds), browser, pg_ok
      name = ""
    }
    function start(suite) {
      flush()
      name = suite; passed = failed = ignored = finished = pg_ok = 0; browser = "-"
    }
    # A run cut short keeps what its test lines said; a closing line overrides them.
    # "Running unittests src/lib.rs (target/debug/deps/tideway-0a1b)" or
    # "Running tests/browser.rs (target/wasm32-unknown-unknown/debug/deps/browser-0a1b.wasm)":
    # an integration test is named after its binary, a crate`s own tests after the
    # crate and lib or main.
    /^ *Running .*\(.*\)$/ {
      line = $0; sub(/^ *Running /, "", line)
      unit = sub(/^unittests /, "", line)
      source = line; sub(/ \(.*$/, "", source)
      binary = line; sub(/^.*\(/, "", binary); sub(/\)$/, "", binary)
      sub(/^.*\//, "", binary); sub(/\.wasm$/, "", binary); sub(/-[0-9a-f]+$/, "", binary)
      start(unit ? binary "/" (source ~ /main\.rs$/ ? "main" : "lib") : binary)
      next
    }
    /^ *Doc-tests / { start($2 "/doc"); next }
    /^Running headless tests in / { browser = $5 }
    /^no tests to run!/ { finished = 1 }
    /^test .*::postgres \.\.\. ok$/ { pg_ok++ }
    !finished && /^test .* \.\.\. ok$/ { passed++ }
    !finished && /^test .* \.\.\. (FAIL|FAILED)$/ { failed++ }
    !finished && /^test .* \.\.\. ignored/ { ignored++ }
    /^test result: / {
      for (i = 1; i <= NF; i++) {
        if ($(i + 1) ~ /^passed;?$/) passed = $i
        if ($(i + 1) ~ /^failed;?$/) failed = $i
        if ($(i + 1) ~ /^ignored;?$/) ignored = $i
      }
      finished = 1
    }
    END { flush() }
  ' "$log" >>"$RESULTS"
  record_failures "$engine" "$log"
}

# record_node SUITE ENGINE SECONDS LOG: one row for a `node --test` run (TAP output).
record_node() {
  local suite=$1 engine=$2 seconds=$3 log=$4
  awk -v engine="$engine" -v suite="$suite" -v seconds="$seconds" -v OFS='\t' '
    /^# pass / { passed = $3; finished = 1 }
    /^# fail / { failed += $3 }
    /^# cancelled / { failed += $3 }
    /^# skipped / { skipped += $3 }
    /^# todo / { skipped += $3 }
    END { print engine, suite, passed + 0, failed + 0, 0, skipped + 0, finished + 0, seconds, "-", 0 }
  ' "$log" >>"$RESULTS"
  # "ok 3 - name # SKIP reason", at any depth of nesting.
  sed -n -E 's/^ *ok [0-9]+ - (.*) # (SKIP|TODO)( .*)?$/\1/p' "$log" |
    while IFS= read -r name; do printf '%s\t%s\t%s\n' "$engine" "$suite" "$name"; done >>"$SKIPS"
  record_failures "$engine" "$log" "$suite"
}

# record_failures ENGINE LOG [SUITE]: a row of $FAILURES for each failed test in a
# cargo log (its suite is the binary it ran in) or, given SUITE, in a TAP log. What it
# said is taken from cargo's "---- name stdout ----" (or "output") section, or from the
# `error:` of the TAP failure's YAML block: its first four lines at most.
record_failures() {
  local engine=$1 log=$2 suite=${3:-}
  awk -v engine="$engine" -v tap_suite="$suite" -v OFS='\t' '
    function trim(text) { gsub(/^[ \t]+|[ \t]+$/, "", text); return text }
    function keep(text) {
      text = trim(text)
      if (text == "" || text == "error output:" || text ~ /^(stack|note): /) return
      if (lines[current] < 4) { said[current] = said[current] (lines[current]++ ? " | " : "") text }
    }
    function close_section() { current = "" }
    # The suite named as record_cargo names it.
    tap_suite == "" && /^ *Running .*\(.*\)$/ {
      line = $0; sub(/^ *Running /, "", line)
      unit = sub(/^unittests /, "", line)
      source = line; sub(/ \(.*$/, "", source)
      binary = line; sub(/^.*\(/, "", binary); sub(/\)$/, "", binary)
      sub(/^.*\//, "", binary); sub(/\.wasm$/, "", binary); sub(/-[0-9a-f]+$/, "", binary)
      if (unit) binary = binary "/" (source ~ /main\.rs$/ ? "main" : "lib")
      close_section(); next
    }
    tap_suite == "" && /^test .* \.\.\. (FAIL|FAILED)$/ {
      name = $0; sub(/^test /, "", name); sub(/ \.\.\. FAIL(ED)?$/, "", name)
      key = binary SUBSEP name
      if (!(key in said)) { order[++failures] = key; said[key] = "" }
      close_section(); next
    }
    tap_suite == "" && /^---- .* (stdout|output) ----$/ {
      name = $0; sub(/^---- /, "", name); sub(/ (stdout|output) ----$/, "", name)
      current = binary SUBSEP name
      if (!(current in said)) { order[++failures] = current; said[current] = "" }
      next
    }
    tap_suite == "" && /^(failures:|test result: )/ { close_section(); next }
    tap_suite == "" && current != "" { keep($0); next }
    # TAP: "not ok 3 - name", then an indented YAML block whose error: is either
    # the message or "|-" followed by it.
    tap_suite != "" && /^ *not ok [0-9]+ - / {
      name = $0; sub(/^ *not ok [0-9]+ - /, "", name); sub(/ # .*$/, "", name)
      current = tap_suite SUBSEP name; order[++failures] = current; said[current] = ""; in_error = 0
      next
    }
    tap_suite != "" && current != "" && /^ *error: / {
      text = $0; sub(/^ *error: /, "", text)
      if (text ~ /^[|>]-?$/) { in_error = 1; indent = -1 } else { gsub(/^\047|\047$/, "", text); keep(text) }
      next
    }
    tap_suite != "" && in_error {
      match($0, /^ */)
      if (indent < 0) indent = RLENGTH
      if (RLENGTH < indent || trim($0) == "") { in_error = 0; next }
      keep($0)
    }
    END {
      for (i = 1; i <= failures; i++) {
        split(order[i], part, SUBSEP)
        print engine, part[1], part[2], said[order[i]]
      }
    }
  ' "$log" >>"${FAILURES:-/dev/null}"
}

# record_missing ENGINE SUITE SECONDS: a suite that was to run and printed nothing.
record_missing() {
  printf '%s\t%s\t0\t0\t0\t0\t0\t%s\t-\t0\n' "$1" "$2" "$3" >>"$RESULTS"
}

# ran_no_test LOG: whether a wasm run provably never started a test: the runner gave
# up waiting for the harness, and the harness never printed its "running N tests"
# header nor any test line. A run that started and then stalled is not this.
ran_no_test() {
  grep -q "^Failed to detect test as having been run" "$1" &&
    ! grep -Eq "^running [0-9]+ tests?$|^test .* \.\.\. " "$1"
}

# webkit_trapped LOG: whether a wasm run met what WebKitGTK's wasm does now and then
# with no cause in the module ("A wasm trap inside the engine" in
# docs/compatibility.md): a trap on memory out of bounds, the allocator's own
# check finding its bookkeeping in memory overwritten (a dlmalloc assertion; the
# suites are debug builds, which check it), or a length read as more than the
# memory holds (a `capacity overflow` panic), or a key missing from one of the
# IndexedDB store's maps built at open, which are never changed after (a "no entry
# found for key" panic in src/store/indexeddb/). The same module never does any of
# them on Chromium or Firefox; safe Rust reaches memory out of bounds only by
# overflowing its stack, which would trap on every engine alike.
webkit_trapped() {
  grep -Eq "RuntimeError: Out of bounds memory access|panicked at /rust/deps/dlmalloc-[0-9.]+/|^[[:space:]]*capacity overflow$" "$1" ||
    grep -A1 "panicked at src/store/indexeddb/" "$1" | grep -q "no entry found for key"
}

# summarize EXPECTED_FILE: prints the per-engine summary, every broken expectation
# and the closing totals; returns 1 if any expectation is broken.
#   SKIPPED_POSTGRES=1 moves the PostgreSQL variants from passed to skipped.
#   WARNINGS (a file, one line each) is printed as WARNING lines; PROBLEMS (a file,
#   one line each: a build or set-up step that failed) as FAILED lines; FAILURES (see
#   record_failures) as a FAILED TEST line each, after them, the first twelve only.
summarize() {
  local expected=$1
  awk -F'\t' -v OFS='\t' -v skipped_postgres="${SKIPPED_POSTGRES:-0}" -v warnings="${WARNINGS:-/dev/null}" -v setup_problems="${PROBLEMS:-/dev/null}" \
    -v failed_tests="${FAILURES:-/dev/null}" \
    -v runner_names="native=- chromium=Chrome firefox=Firefox webkit=Safari" '
    BEGIN {
      n = split(runner_names, pairs, " ")
      for (i = 1; i <= n; i++) { split(pairs[i], kv, "="); runner[kv[1]] = kv[2] }
    }
    # Pass 1: the expectations.
    FILENAME == ARGV[1] {
      text = $0; sub(/#.*/, "", text); gsub(/^[ \t]+|[ \t]+$/, "", text)
      if (text == "") next
      n = split(text, f, /[ \t]+/)
      if (f[1] == "skip" && n >= 4) {
        name = f[4]; for (i = 5; i <= n; i++) name = name " " f[i]
        allowed_skip[f[3] SUBSEP f[2] SUBSEP name] = 1
        next
      }
      if (n != 3 || f[3] !~ /^[0-9]+$/) { problem[++problems] = "tests/expected-counts: cannot read \"" text "\""; next }
      floor[f[2] SUBSEP f[1]] = f[3]; order[++expected_rows] = f[2] SUBSEP f[1]
      next
    }
    # Pass 2: skipped test names.
    FILENAME == ARGV[2] {
      skip_count[$1 SUBSEP $2]++
      if (!((($1 SUBSEP $2 SUBSEP $3) in allowed_skip))) {
        problem[++problems] = $1 " " $2 ": unexpected skip of \"" $3 "\" (list it in tests/expected-counts if it is meant)"
      }
      next
    }
    # Pass 3: one row per suite run.
    {
      engine = $1; suite = $2; key = engine SUBSEP suite
      passed = $3; failed = $4; ignored = $5; skipped = $6
      # The PostgreSQL variants returned early: skipped, not passed. They still count
      # towards the floor, which is about the suite not shrinking.
      if (skipped_postgres && $10 > 0) {
        passed -= $10; skipped += $10; postgres_skipped += $10
      }
      seen[key] = 1
      got_passed[key] += passed + (skipped_postgres ? $10 : 0)
      total_passed += passed; total_failed += failed; total_skipped += skipped + ignored
      if (!$7) {
        total_failed++
        problem[++problems] = engine " " suite ": did not finish (no closing line; counted as one failure)"
      }
      if (failed > 0) problem[++problems] = engine " " suite ": " failed " failed"
      if (ignored > 0) problem[++problems] = engine " " suite ": " ignored " ignored (an ignored test is not a passing one)"
      if (engine in runner && runner[engine] != "-" && $9 != "-" && $9 != runner[engine]) {
        problem[++problems] = engine " " suite ": ran in " $9 ", not in " runner[engine]
      }
      if (!(key in floor) && passed > 0) {
        problem[++problems] = engine " " suite ": " passed " passed, but the suite is not in tests/expected-counts (add \"" suite "  " engine "  " passed "\")"
      }
      seconds[engine] += $8
      # Binaries compiled out of this engine (no test, nothing expected) are left out.
      if (passed + failed + skipped + ignored == 0 && $7 && !(key in floor)) next
      line[engine] = line[engine] sprintf("  %-8s %-22s %4d passed %3d failed %3d skipped %6s\n", engine, suite, passed, failed, skipped + ignored, $8 == "-" ? "" : $8 "s")
      if (!(engine in engine_seen)) { engine_seen[engine] = 1; engines[++engine_count] = engine }
    }
    END {
      while ((getline setup_problem < setup_problems) > 0) problem[++problems] = setup_problem
      for (i = 1; i <= expected_rows; i++) {
        key = order[i]; split(key, part, SUBSEP)
        if (!(key in seen)) problem[++problems] = part[1] " " part[2] ": did not run (expected at least " floor[key] " passed)"
        else if (got_passed[key] < floor[key]) problem[++problems] = part[1] " " part[2] ": " got_passed[key] " passed, expected at least " floor[key]
      }
      print ""
      print "==> summary, per engine"
      for (i = 1; i <= engine_count; i++) {
        e = engines[i]
        printf "%s", line[e]
        printf "  %-8s %-22s %35s %5ds\n", e, "(all suites)", "", seconds[e]
      }
      if (skipped_postgres) print "PostgreSQL: skipped (TIDEWAY_TEST_SKIP_POSTGRES=1): " postgres_skipped " server tests returned early, counted as skipped"
      else print "PostgreSQL: ran (throwaway cluster)"
      while ((getline warning < warnings) > 0) print "WARNING: " warning
      for (i = 1; i <= problems; i++) print "FAILED: " problem[i]
      while ((getline failure < failed_tests) > 0) {
        if (++failed_test_lines > 12) continue
        split(failure, f, "\t")
        print "FAILED TEST: " f[1] " " f[2] ": " f[3] (f[4] == "" ? "" : ": " f[4])
      }
      if (failed_test_lines > 12) print "FAILED TEST: ... and " (failed_test_lines - 12) " more (see each suite'"'"'s output above)"
      print total_passed " passed, " total_failed " failed, " total_skipped " skipped"
      exit problems > 0
    }
  ' "$expected" "$SKIPS" "$RESULTS"
}
