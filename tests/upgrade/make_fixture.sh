#!/usr/bin/env bash
# make_fixture.sh [COMMIT] — how tests/fixtures/upgrade_v009.* were made.
#
# Builds the previous release (COMMIT, default 00405e8: schema 001-009) in a
# temporary git worktree, runs tests/upgrade/scenario.c on that release's
# real engine against a private PostgreSQL (tools/pg.sh), and writes into
# tests/fixtures/:
#   upgrade_v009.sql       plain pg_dump (schema + data) of the ledger
#   upgrade_v009.receipts  "receipt LABEL ID" / "msgid LABEL MSG_ID ID" lines
#                          from the scenario, then "token ID tr1..." for every
#                          receipt `tally receipt` of that release prints
#   upgrade_v009.facts     "QUERY<TAB>VALUE" lines: what the ledger held
#                          (balances, stock, serials, raffle, attendance, and
#                          a digest of every column of every row per table)
#   upgrade_v009.pem/.pub  the test signing key (a throwaway, tests only)
#   upgrade_v009.meta      made_ms (the wall clock the test replays under)
# tests/integration/test_upgrade.c loads them; `make test` never runs this.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
commit=${1:-00405e8}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
out="$root/tests/fixtures"
tmp=$(mktemp -d /tmp/tally-fixture.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  "$root/tools/pg.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

git -C "$root" worktree add --detach "$tmp/old" "$commit" >/dev/null
cp "$root/tests/upgrade/scenario.c" "$tmp/old/tests/integration/test_zz_upgrade_scenario.c"
nice make -C "$tmp/old" -j2 BUILD=build build/tally build/tests/integration/test_zz_upgrade_scenario >"$tmp/build.log" 2>&1 \
  || { tail -30 "$tmp/build.log"; exit 1; }
old_cli="$tmp/old/build/tally"

base=$("$root/tools/pg.sh" start "$tmp/pg")
TALLY_TEST_DSN="$base" TALLY_TMP="$tmp" TALLY_CLI="$old_cli" TALLY_FIXTURE_OUT="$tmp/scenario.txt" \
  "$tmp/old/build/tests/integration/test_zz_upgrade_scenario"
dsn=$(sed -n 's/^dsn //p' "$tmp/scenario.txt")
q() { "$PGBIN/psql" -X -q -tA -d "$dsn" -c "$1"; }

mkdir -p "$out"
"$PGBIN/pg_dump" --no-owner --no-privileges -d "$dsn" >"$out/upgrade_v009.sql"
grep -v '^dsn ' "$tmp/scenario.txt" >"$out/upgrade_v009.receipts"
# Every receipt (purchases, tips, refunds, grants) as its token.
for id in $(q "SELECT id FROM transfers ORDER BY id"); do
  printf 'token %s %s\n' "$id" "$("$old_cli" --dsn "$dsn" receipt "$id")" >>"$out/upgrade_v009.receipts"
done
key=$(ls "$tmp"/test-signing-*.pem)
cp "$key" "$out/upgrade_v009.pem"
cp "$key.pub" "$out/upgrade_v009.pub"
q "SELECT max(created_ms) FROM transfers" | sed 's/^/made_ms /' >"$out/upgrade_v009.meta"
printf 'commit %s\n' "$(git -C "$root" rev-parse "$commit")" >>"$out/upgrade_v009.meta"

# Facts: each query is run again on the upgraded ledger and must give the
# same value. The per-table digests cover every column the old schema had,
# so a migration may add columns and tables but not lose or change a value.
{
  cat "$root/tests/upgrade/facts.sql"
  for t in $(q "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'
                AND table_type = 'BASE TABLE' AND table_name NOT IN ('engine_lease', 'schema_migrations')
                ORDER BY 1"); do
    cols=$(q "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
              FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '$t'")
    echo "SELECT count(*) || ' ' || coalesce(md5(string_agg(x, '|' ORDER BY x)), '') FROM (SELECT ROW($cols)::text AS x FROM $t) s"
  done
  echo "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations WHERE version <= 9"
} | grep -v '^--' | grep -v '^$' | while IFS= read -r query; do
  printf '%s\t%s\n' "$query" "$(q "$query")"
done >"$out/upgrade_v009.facts"
du -sh "$out"/upgrade_v009.*
