#!/usr/bin/env bash
# no_irc_words.sh [BUILD] — core speaks no chat protocol: no string literal in
# core/src or core/include (what users read: replies, help, error texts)
# names one network's commands, services or ranks. A refusal that needs such
# a hint carries a TALLY_HINT_* code and the adapter phrases it (tally.h,
# enum tally_hint). Comments may name IRC freely: they are stripped first
# (gcc -fpreprocessed), then only the string literals are searched.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
echo "1..1"
# Extended regexes, matched case-sensitively against each literal.
deny='NickServ|ChanServ|Anope|/msg|/quote|\bIRC\b|STATUSMSG|@#|[Cc]hanop|[Cc]hannel operator|[Ss]erver operator|IRC operator|oper privilege|services account|![a-z]'
bad=0
while IFS= read -r f; do
  hits=$(gcc -fpreprocessed -dD -E -P -x c "$f" 2>/dev/null |
    grep -oE '"([^"\\]|\\.)*"' | grep -E -- "$deny")
  if [ -n "$hits" ]; then
    while IFS= read -r h; do echo "# $f: $h"; done <<<"$hits"
    bad=1
  fi
done < <(find core/src core/include -name '*.[ch]' | sort)
if [ "$bad" = 0 ]; then
  echo "ok 1 - no chat-protocol wording in core's string literals"
else
  echo "not ok 1 - chat-protocol wording in core (say it neutrally, add a TALLY_HINT_*, let the adapter phrase it)"
  exit 1
fi
