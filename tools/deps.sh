#!/usr/bin/env bash
# deps.sh — install the Debian packages tally needs, only those missing.
# As root it runs apt-get itself (apt-get update once first); otherwise it
# prints the exact line to run and fails.
set -euo pipefail
missing=()
# A name an installed package Provides counts as installed (e.g. npm, which a
# nodejs build from elsewhere bundles and provides: installing Debian's npm
# would replace that nodejs).
provided=$(dpkg-query -W -f='${Status}\t${Provides}\n' 2>/dev/null | grep '^install ok installed' | cut -f2 |
  tr ',' '\n' | sed 's/^ *//; s/ .*//' | sort -u || true)
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && continue
  grep -qxF "$p" <<<"$provided" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "tally needs these Debian packages. Run as root:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
