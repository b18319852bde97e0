#!/usr/bin/env bash
# no_test_faults.sh [SAN_BUILD] — the planted bugs (core/src/base/test_fault.h)
# exist only in a test build: the plain build ($TALLY_BUILD, default build/:
# the library, the CLI and the InspIRCd module that ship) has no symbol of
# them, and the sanitizer build that `make test` runs has them (so the
# self-tests that plant them test something).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
san=${1:-build/san}
plain=${TALLY_BUILD:-$root/build}
echo "1..2"
syms() { nm -A "$@" 2>/dev/null | grep -E ' [TtDdBb] tally__test_fault' ; }
found=$(syms "$plain/libtally.a" "$plain"/m_tally.so "$plain/tally")
if [ -z "$found" ] && [ -f "$plain/libtally.a" ]; then
  echo "ok 1 - the plain build ($plain) has no planted-bug symbol"
else
  echo "not ok 1 - the plain build ($plain) has planted-bug symbols (or no libtally.a):"
  printf '# %s\n' "$found"
fi
if [ -n "$(syms "$san/libtally.a")" ]; then
  echo "ok 2 - the test build ($san) has the planted bugs"
else
  echo "not ok 2 - the test build ($san) lacks tally__test_fault: the self-tests would plant nothing"
fi
