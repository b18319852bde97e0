#!/usr/bin/env bash
# install_unit.sh PLAIN_BUILD — `make install` with PREFIX and DESTDIR puts
# tallyd, tally, m_tally.so and the systemd unit where they belong, and
# the unit passes `systemd-analyze verify` (Type=notify, its ExecStart).
set -uo pipefail
plain=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tmp=$(mktemp -d "${TALLY_TMP:-/tmp}/install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "1..3"
if make --no-print-directory -s BUILD="$plain" install PREFIX=/usr DESTDIR="$tmp/root" >"$tmp/out" 2>&1 &&
   [ -x "$tmp/root/usr/bin/tallyd" ] && [ -x "$tmp/root/usr/bin/tally" ] &&
   [ -f "$tmp/root/usr/lib/inspircd/modules/m_tally.so" ] && [ -f "$tmp/root/usr/lib/systemd/system/tallyd.service" ]; then
  echo "ok 1 - make install PREFIX=/usr DESTDIR=... installs tallyd, tally, m_tally.so and tallyd.service"
else
  echo "not ok 1 - make install"; sed 's/^/# /' "$tmp/out"; find "$tmp/root" | sed 's/^/# /'
fi
unit="$tmp/root/usr/lib/systemd/system/tallyd.service"
if grep -q '^Type=notify' "$unit" 2>/dev/null && grep -q '^ExecStart=/usr/bin/tallyd ' "$unit"; then
  echo "ok 2 - the installed unit is Type=notify and starts /usr/bin/tallyd"
else
  echo "not ok 2 - unit contents"; sed 's/^/# /' "$unit" 2>/dev/null
fi
if ! command -v systemd-analyze >/dev/null; then
  echo "ok 3 # SKIP systemd-analyze is not installed (Debian package systemd)"
else
  # verify checks that ExecStart exists: point it at the built binary.
  sed "s|^ExecStart=/usr/bin/tallyd|ExecStart=$root/$plain/tallyd|" "$unit" > "$tmp/tallyd.service"
  if systemd-analyze verify "$tmp/tallyd.service" >"$tmp/verify" 2>&1; then
    echo "ok 3 - systemd-analyze verify tallyd.service"
  else
    echo "not ok 3 - systemd-analyze verify"; sed 's/^/# /' "$tmp/verify"
  fi
fi
