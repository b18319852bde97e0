#!/usr/bin/env bash
# run.sh BUILD — `make run`: PostgreSQL under ./var (unless DATABASE_URL is
# set), InspIRCd + Anope with tally loaded on 127.0.0.1:${TALLY_IRC_PORT:-6667},
# and a demo shop. Ctrl-C stops everything it started.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${TALLY_IRC_PORT:-6667}
mkdir -p var
chmod 755 var
started_pg=0
stop_all() {
  tools/irc_env.sh stop var/irc >/dev/null 2>&1 || true
  [ "$started_pg" = 1 ] && tools/pg.sh stop var/pg >/dev/null 2>&1 || true
  echo "tally: stopped"
}
trap stop_all EXIT
trap 'exit 0' INT TERM
if [ -n "${DATABASE_URL:-}" ]; then dsn=$DATABASE_URL
else dsn=$(tools/pg.sh start var/pg); started_pg=1; fi
"$build/tally" --dsn "$dsn" migrate
# Demo catalog (catalog rows, not ledger rows): a creator "demo" and three items.
psql -X -q "$dsn" -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO accounts (id, name, kind, created_ms) VALUES (100, 'user:demo', 1, 0) ON CONFLICT DO NOTHING;
INSERT INTO role_changes (account_id, role, by_account, created_ms)
  SELECT 100, 'creator', 'make run', 0 WHERE NOT EXISTS (SELECT 1 FROM role_changes WHERE account_id = 100);
INSERT INTO items (id, sku, creator_id, price_minor, stock, title, refund_window_s, version, updated_ms) VALUES
  (101, 'sticker', 100, 150, NULL, 'tally sticker', 86400, 1, 0),
  (102, 'tee', 100, 1500, 25, 'Live tour tee (limited to 25)', 86400, 1, 0),
  (103, 'pass', 100, 500, 100, 'Backstage pass', 86400, 1, 0)
ON CONFLICT DO NOTHING;
SQL
TALLY_DSN="$dsn" TALLY_BUILD="$root/$build" \
  TALLY_TAG_EXTRA="welcome_grant=\"${TALLY_WELCOME_GRANT:-10000}\" signing_key=\"$root/var/irc/tally-signing.pem\"" \
  tools/irc_env.sh start var/irc "$port"
cat <<MSG

tally is running: IRC on 127.0.0.1:$port, channel #live, demo shop by "demo".
Connect:   irssi -c 127.0.0.1 -p $port -n you      (or: ii -s 127.0.0.1 -p $port -n you)
Then:      /msg NickServ REGISTER <password> you@example.org   (gives you an account)
           /join #live
           /quote SHOP            or in #live:  !shop
           /quote BUY sticker     then  /quote CONFIRM <code>   (first purchase asks once)
           /quote WALLET   /quote RECEIPTS   /quote VERIFY <receipt>
Verify a receipt offline:  $build/tally --dsn "$dsn" verify <receipt>
New accounts get ${TALLY_WELCOME_GRANT:-10000} minor units of demo credits (welcome_grant, demo only).
tally: ready (Ctrl-C stops everything)
MSG
while tools/irc_env.sh status var/irc >/dev/null 2>&1; do sleep 2; done
echo "tally: the IRC server stopped"
