#!/usr/bin/env bash
# layers.sh [BUILD] — core/src's dependencies point down its layers.
#
# The layers are the folders of core/src, bottom to top, in the order of
# CORE_LAYERS in the Makefile (docs/ARCHITECTURE.md explains each). A file
# may use its own layer and the layers below it, never one above:
#   1. includes: each `#include "x.h"` of a core/src/<layer>/ file names a
#      header of its own layer or a lower one (headers outside the layer
#      folders, e.g. core/include/tally.h and schemas/, are not checked);
#   2. calls, at link level (an `extern` prototype passes check 1): each
#      undefined symbol of BUILD/core/src/<layer>/*.o is defined in its own
#      layer, a lower one, or outside core (libc, libuv, libpq, ...);
#   3. every file of core/src is in a layer folder.
# The upward edges that are still there are listed in tools/layers.allow, one
# a line: `from symbol to  # why, and how it goes away` (symbol is `include`
# for an include), files named relative to core/src. The check fails on an
# edge not listed there, and on a listed edge that is gone (delete its line).
# Prints TAP, for tests/run.sh. Run `make` first (BUILD defaults to build).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build}
allow=tools/layers.allow
src=core/src

read -r -a layers <<<"$(sed -n 's/^CORE_LAYERS *:= *//p' Makefile)"
declare -A rank
for i in "${!layers[@]}"; do rank[${layers[$i]}]=$i; done
layer_of() { local l=${1%%/*}; echo "${rank[$l]:--1}"; } # path relative to core/src

tmp=$(mktemp -d /tmp/tally-layers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- 3: every file in a layer ---------------------------------------------
unlayered=$(find "$src" -type f \( -name '*.c' -o -name '*.h' \) | sed "s|^$src/||" | sort |
  while read -r f; do [ "$(layer_of "$f")" -ge 0 ] && [[ $f == */* ]] || echo "$f"; done)

# --- 1: includes ------------------------------------------------------------
declare -A header_at # basename -> path relative to core/src
while read -r h; do header_at[$(basename "$h")]=$h; done < <(cd "$src" && find . -mindepth 2 -name '*.h' | sed 's|^\./||')
for l in "${layers[@]}"; do
  [ -d "$src/$l" ] || continue
  for f in "$src/$l"/*.[ch] "$src/$l"/*/*.[ch]; do # a feature's own folder too
    [ -e "$f" ] || continue
    grep -oE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$f" | sed -E 's/.*"([^"]+)"/\1/' |
      while read -r inc; do
        to=${header_at[$(basename "$inc")]:-}
        [ -n "$to" ] || continue
        [ "$(layer_of "$to")" -gt "${rank[$l]}" ] && echo "${f#"$src"/} include $to"
      done
  done
done | sort -u >"$tmp/edges"

# --- 2: symbols (nm) ----------------------------------------------------------
# Objects of sources that still exist (a moved or deleted file leaves a stale .o).
objs=$(cd "$build" 2>/dev/null && find "$src" -mindepth 2 -name '*.o' | sort |
  while read -r o; do [ -f "$root/${o%.o}.c" ] && echo "$o"; done)
if [ -z "$objs" ]; then
  echo "1..1"; echo "not ok 1 - layers: no objects under $build/$src (run make first)"; exit 1
fi
for o in $objs; do nm -g --defined-only "$build/$o" | awk -v f="${o#"$src"/}" 'NF==3{print $3, f}'; done |
  sort -u >"$tmp/defs"
for o in $objs; do nm -u "$build/$o" | awk -v f="${o#"$src"/}" '{print f, $NF}'; done | sort -u >"$tmp/uses"
# from.o symbol -> defining object, then keep the upward ones.
awk 'NR==FNR{def[$1]=$2; next} ($2 in def){print $1, $2, def[$2]}' "$tmp/defs" "$tmp/uses" |
  sed -E 's/\.o( |$)/.c\1/g' | while read -r from sym to; do
    [ "$(layer_of "$to")" -gt "$(layer_of "$from")" ] && echo "$from $sym $to"
  done | sort -u >>"$tmp/edges"
sort -u -o "$tmp/edges" "$tmp/edges"

# --- compare with the allow-list ---------------------------------------------
sed -E 's/#.*//; s/[[:space:]]+/ /g; s/^ //; s/ $//' "$allow" 2>/dev/null | grep -v '^$' | sort -u >"$tmp/allowed"
new=$(comm -23 "$tmp/edges" "$tmp/allowed")
stale=$(comm -13 "$tmp/edges" "$tmp/allowed")
n_inc=$(grep -c ' include ' "$tmp/edges"); n_all=$(wc -l <"$tmp/edges")

echo "1..3"
if [ -z "$unlayered" ]; then echo "ok 1 - every core/src file is in a layer folder (${layers[*]})"
else
  echo "not ok 1 - core/src files in no layer: move each into core/src/<layer>/"
  printf '#   %s\n' $unlayered
fi
if [ -z "$new" ]; then
  echo "ok 2 - no upward include or call but the $n_all allowed in $allow ($n_inc includes, $((n_all - n_inc)) symbols)"
else
  echo "not ok 2 - upward dependencies (from what to; a layer may use only itself and the layers below it):"
  printf '%s\n' "$new" | sed 's/^/#   /'
fi
if [ -z "$stale" ]; then echo "ok 3 - every line of $allow is still an upward edge"
else
  echo "not ok 3 - edges in $allow that are gone (delete their lines):"
  printf '%s\n' "$stale" | sed 's/^/#   /'
fi
[ -z "$unlayered" ] && [ -z "$new" ] && [ -z "$stale" ]
