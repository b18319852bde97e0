#!/usr/bin/env bash
# run.sh SAN_BUILD PLAIN_BUILD — runs every test with a throwaway PostgreSQL.
#
# Unit and integration tests are the sanitizer builds (ASan+UBSan) from
# SAN_BUILD; end-to-end tests load the InspIRCd module from PLAIN_BUILD (a
# sanitized .so cannot be loaded into a server that is not). Each test is its
# own process with a timeout. Each prints TAP-style `ok`/`not ok` lines; a
# test that crashes or times out counts as one failure. The last line is
# "N passed, N failed, N skipped" (a skip is not a pass).
#
# TALLY_TEST_ONLY=REGEX runs only the tests whose path matches (grep -E), for
# a quick loop on a few tests: `TALLY_TEST_ONLY='test_shop|irc_live' make test`.
#
# The end-to-end and conformance tests (real servers, mostly waiting on the
# network) run TALLY_TEST_JOBS at a time (default 2); each owns its servers,
# ports (bound to port 0) and database, so they cannot see one another. Their
# results print in the listed order whatever order they finish in. Every
# line names the seconds the test took.
set -uo pipefail
san=${1:?san build dir}; plain=${2:?plain build dir}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tmp=$(mktemp -d /tmp/tally-test.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  tools/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  # A test that died may leave a mount (test_fault_disk's tmpfs) under $tmp.
  findmnt -rn -o TARGET | grep -F "$tmp/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
dsn=$(tools/pg.sh start "$tmp/pg") || { echo "could not start PostgreSQL"; echo "0 passed, 1 failed"; exit 1; }
export TALLY_TEST_DSN="$dsn" TALLY_CLI="$root/$plain/tally" TALLY_BUILD="$root/$plain" TALLY_TMP="$tmp"
export TALLY_SAN_BUILD="$root/$san"
export CMOCKA_MESSAGE_OUTPUT=TAP ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
passed=0; failed=0; skipped=0; failures=()
only=${TALLY_TEST_ONLY:-}
selected() { [ -z "$only" ] || printf '%s\n' "$1" | grep -qE "$only"; }
# exec_one name timeout cmd...: runs it; leaves its output and "rc seconds".
exec_one() {
  local name=$1 limit=$2; shift 2
  local out="$tmp/$(basename "$name").out" t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$out" 2>&1
  echo "$? $((SECONDS - t0))" >"$out.rc"
}
# tally_one name: counts what exec_one left and prints the test's line.
tally_one() {
  local name=$1 out="$tmp/$(basename "$1").out" rc secs
  read -r rc secs <"$out.rc"
  local ok nok skip
  # TAP: "ok N name # SKIP why" is a skip, not a pass.
  # "1..0 # SKIP why" is a whole program skipped (no mount allowed, ...).
  skip=$(( $(grep -ciE '^ok .*# SKIP' "$out") + $(grep -ciE '^1\.\.0 *# *SKIP' "$out") ))
  ok=$(( $(grep -cE '^ok ' "$out") - $(grep -ciE '^ok .*# SKIP' "$out") )); nok=$(grep -cE '^not ok ' "$out")
  if [ "$rc" != 0 ] && [ "$nok" = 0 ]; then nok=1; fi
  # A program that ran and reported nothing tested nothing.
  if [ "$rc" = 0 ] && [ "$ok" = 0 ] && [ "$nok" = 0 ] && [ "$skip" = 0 ]; then nok=1; echo "    (no checks reported)" >>"$out"; fi
  passed=$((passed + ok)); failed=$((failed + nok)); skipped=$((skipped + skip))
  if [ "$nok" != 0 ]; then
    failures+=("$name"); echo "FAIL $name (exit $rc, ${secs}s)"; sed 's/^/    /' "$out" | tail -40
  else
    if [ "$skip" != 0 ]; then echo "pass $name ($ok checks, $skip skipped, ${secs}s)"; else echo "pass $name ($ok checks, ${secs}s)"; fi
  fi
}
# pg_alive: after a test failed, the shared cluster must still answer, or
# every test after it fails for a reason not its own: say so with the
# server's log, and start it again.
pg_alive() {
  "${PGBIN:-/usr/lib/postgresql/15/bin}/psql" "$dsn" -XAtqc 'SELECT 1' >/dev/null 2>&1 && return 0
  echo "    the test PostgreSQL stopped answering after $1; its log ends:"
  tail -30 "$tmp/pg/postgres.log" | sed 's/^/    | /'
  tools/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || tools/pg.sh kill "$tmp/pg" >/dev/null 2>&1 || true
  tools/pg.sh start "$tmp/pg" >/dev/null || echo "    and could not be started again"
}
run_one() { # name timeout cmd...: one at a time
  selected "$1" || return 0
  local before=$failed
  exec_one "$@"
  tally_one "$1"
  [ "$failed" = "$before" ] || pg_alive "$1"
}
pool=()
pool_one() { # name timeout cmd...: up to TALLY_TEST_JOBS at once; pool_wait reports
  selected "$1" || return 0
  while [ "$(jobs -rp | wc -l)" -ge "${TALLY_TEST_JOBS:-2}" ]; do wait -n; done
  exec_one "$@" &
  pool+=("$1")
}
pool_wait() {
  wait
  local name
  for name in "${pool[@]}"; do tally_one "$name"; done
  pool=()
}
# core/src's layers: includes and calls point down (tools/layers.allow).
run_one tools/layers.sh 60 tools/layers.sh "$plain"
for t in "$san"/tests/unit/test_*; do [ -x "$t" ] && run_one "$t" 120 "$t"; done
for t in "$san"/tests/integration/test_*; do
  case $t in
  */test_adversary) [ -x "$t" ] && run_one "$t" "${TALLY_ADV_TIMEOUT:-600}" "$t" ;;
  *) [ -x "$t" ] && run_one "$t" 300 "$t" ;;
  esac
done
# tallyd against the test PostgreSQL, through its unix socket and TLS (tests/daemon).
for t in "$san"/tests/daemon/test_*; do [ -x "$t" ] && run_one "$t" 300 "$t"; done
for t in tests/daemon/*.sh; do [ -x "$t" ] && run_one "$t" 120 "$t" "$plain"; done
# Generated documents match their generators (docs/FRAMES.md from the schema).
for t in tests/docs/*.sh; do [ -x "$t" ] && run_one "$t" 60 "$t" "$san"; done
if [ -d tests/fuzz ]; then
  for t in "$san"/tests/fuzz/replay_*; do [ -x "$t" ] && run_one "$t" 120 "$t"; done
fi
# The adapter conformance suite: the same scenarios through each host's
# driver (tests/conformance/test_<driver>.py); the IRC one is end-to-end.
for t in tests/conformance/test_*.py; do
  case $t in
  */test_frame.py) run_one "$t" 300 /usr/bin/python3 "$t" ;;
  *) [ "${TALLY_SKIP_E2E:-0}" != 1 ] && pool_one "$t" 900 /usr/bin/python3 "$t" ;;
  esac
done
if [ "${TALLY_SKIP_E2E:-0}" != 1 ]; then
  for t in tests/e2e/test_*.py; do [ -f "$t" ] && pool_one "$t" 600 /usr/bin/python3 "$t"; done
  # Differential tests against reference implementations (tests/diff: npm
  # packages installed from the committed lock by the test itself).
  for t in tests/diff/test_*.py; do [ -f "$t" ] && pool_one "$t" 600 /usr/bin/python3 "$t"; done
fi
pool_wait
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
