#!/usr/bin/env bash
# asserts.sh [--entries] — assertion density of core/src, per layer (issue 10
# item 7: "assertions where data crosses a boundary between layers").
#
# For each layer folder of CORE_LAYERS (Makefile order, bottom to top) it
# prints the .c files, the function definitions, the assert() and
# _Static_assert lines (TALLY__CMD_ENTRY, commands.h's asserts at a command
# handler's entry, counts one), asserts per function, and the files with none.
# A function definition is a line at column 0 that opens a body: a type and a
# name, "(", and ends in "{" (the style of ../shared/STYLE.md; static and
# inline included). Counts, not proof: an assert on a value users or ledger
# rows control would be a bug (the defects issue), so the number to raise is
# the one at boundaries, which --entries lists: every command handler
# (commands/: void tally__cmd_*(tally__cmd *c)) and every feature hook entry
# (features/: the functions runtime.c's table names), with whether the
# body's first 6 lines assert anything.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
read -r -a layers <<<"$(sed -n 's/^CORE_LAYERS *:= *//p' Makefile)"

count_file() { # file -> "functions asserts"
  awk '
    /^[A-Za-z_][A-Za-z0-9_ \*]*[ \*]\(?[A-Za-z_][A-Za-z0-9_]*\)?\(.*\)[ ]*\{[ ]*$/ && !/^(if|for|while|switch|do|else|typedef|struct|enum|union)\b/ { f++ }
    /(^|[^A-Za-z0-9_])(assert|_Static_assert|TALLY__CMD_ENTRY)[ ]*\(/ && !/^#define/ { a++ }
    END { printf "%d %d\n", f + 0, a + 0 }' "$1"
}

printf '%-10s %6s %10s %8s %10s  %s\n' layer files functions asserts per-func "files without an assert"
all_f=0 all_a=0
for l in "${layers[@]}"; do
  files=$(find "core/src/$l" -name '*.c' | sort)
  [ -n "$files" ] || continue
  nf=0 tf=0 ta=0 none=""
  for f in $files; do
    read -r fn as < <(count_file "$f")
    nf=$((nf + 1)) tf=$((tf + fn)) ta=$((ta + as))
    [ "$as" -eq 0 ] && none="$none ${f#core/src/"$l"/}"
  done
  per=$(awk -v a="$ta" -v f="$tf" 'BEGIN { printf "%.2f", f ? a / f : 0 }')
  printf '%-10s %6d %10d %8d %10s %s\n' "$l" "$nf" "$tf" "$ta" "$per" "${none:- -}"
  all_f=$((all_f + tf)) all_a=$((all_a + ta))
done
printf '%-10s %6s %10d %8d %10s\n' all "" "$all_f" "$all_a" "$(awk -v a="$all_a" -v f="$all_f" 'BEGIN { printf "%.2f", f ? a / f : 0 }')"

[ "${1:-}" = "--entries" ] || exit 0
echo
echo "boundary entries (first 6 lines of the body assert?):"
entry() { # file function
  awk -v fn="$2" '
    index($0, fn "(") && /\{[ ]*$/ && /^[A-Za-z]/ { on = 1; n = 0; next }
    on { n++; if ($0 ~ /(assert|TALLY__CMD_ENTRY)[ ]*\(/) hit = 1; if (n >= 6 || $0 ~ /^\}/) { print (hit ? "yes" : "no "); exit } }
  ' "$1"
}
for f in core/src/commands/cmd_*.c core/src/commands/command.c; do
  grep -oE '^void (tally__cmd_[a-z_]+)\(tally__cmd \*c\)' "$f" | sed -E 's/^void ([a-z_]+).*/\1/' |
    while read -r fn; do printf '  %s %-40s %s\n' "$(entry "$f" "$fn")" "$fn" "${f#core/src/}"; done
done
grep -oE '= (tally__[a-z_]+)' core/src/runtime/runtime.c | sed 's/= //' | sort -u | while read -r fn; do
  f=$(grep -lE "^[a-z].*[ \*]$fn\(" core/src/features/*.c core/src/features/*/*.c 2>/dev/null | head -1)
  [ -n "$f" ] && printf '  %s %-40s %s\n' "$(entry "$f" "$fn")" "$fn" "${f#core/src/}"
done
