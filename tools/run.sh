#!/usr/bin/env bash
# run.sh BUILD — `make run`: PostgreSQL under ./var (unless DATABASE_URL is
# set), tallyd (the engine as a daemon, on the unix socket var/tallyd/tally.sock),
# InspIRCd + Anope with the tally module in remote mode on 127.0.0.1:${TALLY_IRC_PORT:-6667}
# (services link on the next port), a permanent channel #live with a welcome
# topic, and a demo shop by the creator account "demo". Prints how to connect
# and ends with the line "tally: ready ...". Ctrl-C (or TERM) stops everything
# it started; the data in ./var stays for the next run.
#
# Env: TALLY_IRC_PORT (default 6667), DATABASE_URL (use that database instead
# of ./var/pg), TALLY_WELCOME_GRANT (demo credits in minor units for each new
# account, default 10000 = 100.00 credits), TALLY_RUN_MODE (remote, the default:
# the module is a client of tallyd; local: the engine runs inside InspIRCd).
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${TALLY_IRC_PORT:-6667}
grant=${TALLY_WELCOME_GRANT:-10000}
case "$port" in ''|*[!0-9]*) echo "run: TALLY_IRC_PORT must be a port number" >&2; exit 2 ;; esac
case "$grant" in ''|*[!0-9]*) echo "run: TALLY_WELCOME_GRANT must be digits (minor units)" >&2; exit 2 ;; esac
mode=${TALLY_RUN_MODE:-remote}
case "$mode" in local|remote) ;; *) echo "run: TALLY_RUN_MODE is remote or local" >&2; exit 2 ;; esac
mkdir -p var
chmod 755 var
started_pg=0
started_irc=0
tallyd_pid=
stop_all() {
  trap '' INT TERM
  [ "$started_irc" = 1 ] && { tools/irc_env.sh stop var/irc >/dev/null 2>&1 || true; }
  if [ -n "$tallyd_pid" ]; then kill -TERM "$tallyd_pid" 2>/dev/null || true; wait "$tallyd_pid" 2>/dev/null || true; fi
  [ "$started_pg" = 1 ] && { tools/pg.sh stop var/pg >/dev/null 2>&1 || true; }
  echo "tally: stopped"
}
trap stop_all EXIT
trap 'exit 0' INT  # Ctrl-C is how the demo ends
trap 'exit 0' TERM

if [ -n "${DATABASE_URL:-}" ]; then dsn=$DATABASE_URL
else
  started_pg=1 # before starting, so a Ctrl-C during the start still stops it
  dsn=$(tools/pg.sh start var/pg)
fi
"$build/tally" --dsn "$dsn" migrate
# Demo catalog (catalog rows, not ledger rows): the creator "demo" and three
# items. The engine assigns ids from 1000 up, so these low ids are free; a
# rerun changes nothing.
psql -X -q "$dsn" -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO accounts (id, name, kind, created_ms) VALUES (100, 'user:demo', 1, 0), (104, 'user:guest', 1, 0)
  ON CONFLICT DO NOTHING;
INSERT INTO role_changes (account_id, role, by_account, created_ms)
  SELECT a.id, 'creator', 'make run', 0 FROM accounts a WHERE a.name IN ('user:demo', 'user:guest')
    AND NOT EXISTS (SELECT 1 FROM role_changes r WHERE r.account_id = a.id);
-- kind: 0 plain, 1 digital, 2 pass, 5 merch; split: "account id:bps,...".
INSERT INTO items (id, sku, creator_id, price_minor, stock, title, refund_window_s, version, updated_ms,
                   kind, split, delivery)
  SELECT v.id, v.sku, a.id, v.price, v.stock, v.title, 86400, 1, 0, v.kind, v.split, v.delivery
  FROM (VALUES (101, 'sticker', 150, NULL::int, 'tally sticker', 0, '', ''),
               (102, 'tee', 1500, 25, 'Live tour tee (limited to 25)', 5, '', ''),
               (103, 'pass', 500, 100, 'Backstage pass', 2, '', ''),
               (105, 'wallpaper', 100, NULL::int, 'Tour wallpaper (download)', 1, '',
                'https://example.org/tally-demo/wallpaper.png'),
               (106, 'duo', 800, 50, 'Duo print by demo and guest (co-op 60/40)', 0, '100:6000,104:4000', ''))
       AS v(id, sku, price, stock, title, kind, split, delivery)
  CROSS JOIN accounts a WHERE a.name = 'user:demo'
ON CONFLICT DO NOTHING;
INSERT INTO creator_bios (account_id, bio, version, updated_ms) VALUES (100, 'Stickers, tees and prints from the tally tour', 1, 0)
  ON CONFLICT DO NOTHING;
SQL

# tallyd: the engine for every server of the network (docs/DAEMON.md). Its
# secret for the network "irc" is made once and kept in var/tallyd.
# reward_min_account_age 0: the demo's accounts are all new, and may win its quizzes.
engine_keys="welcome_grant=\"$grant\" tip_message_hold=\"10\" reward_min_account_age=\"0\" signing_key=\"$root/var/irc/tally-signing.pem\""
key_path=$root/var/irc/tally-signing.pem
if [ "$mode" = remote ]; then
  mkdir -p var/tallyd var/irc
  chmod 755 var/tallyd
  [ -s var/tallyd/secret.irc ] || { openssl rand -hex 32 > var/tallyd/secret.irc; chmod 600 var/tallyd/secret.irc; }
  key_path=$root/var/tallyd/state/tally-signing.pem
  cat > var/tallyd/tallyd.conf <<CONF
# make run's tallyd (tools/run.sh writes it at each start)
listen_unix = $root/var/tallyd/tally.sock
unix_mode = 0666
state_dir = $root/var/tallyd/state
secret.irc = $root/var/tallyd/secret.irc
dsn = $dsn
welcome_grant = $grant
tip_message_hold = 10
reward_min_account_age = 0
CONF
  rm -f var/tallyd/notify.sock
  python3 - "$root/var/tallyd/notify.sock" "$build/tallyd" "$root/var/tallyd/tallyd.conf" "$root/var/tallyd/tallyd.log" <<'PY' &
import os, socket, subprocess, sys
# Starts tallyd with a private NOTIFY_SOCKET and waits for READY=1, then
# stays as its parent so `wait` in run.sh reaches it (exit code passed on).
sock, exe, conf, log = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
p = subprocess.Popen([exe, "--config", conf], stdout=open(log, "a"), stderr=subprocess.STDOUT,
                     env=dict(os.environ, NOTIFY_SOCKET=sock))
s.settimeout(60)
try:
    while b"READY=1" not in s.recv(4096):
        pass
    open(sock + ".ready", "w").close()
except socket.timeout:
    pass
import signal
signal.signal(signal.SIGTERM, lambda *a: p.terminate())
sys.exit(p.wait())
PY
  tallyd_pid=$!
  for _ in $(seq 1 600); do
    [ -e var/tallyd/notify.sock.ready ] && break
    kill -0 "$tallyd_pid" 2>/dev/null || { echo "run: tallyd did not start (var/tallyd/tallyd.log):" >&2; tail -20 var/tallyd/tallyd.log >&2; exit 1; }
    sleep 0.1
  done
  rm -f var/tallyd/notify.sock.ready
  # The module's copy of the secret, readable by the ircd's user only.
  install -m 600 var/tallyd/secret.irc var/tallyd/module.secret
  [ "$(id -u)" = 0 ] && chown irc: var/tallyd/module.secret
  engine_keys="mode=\"remote\" address=\"unix:$root/var/tallyd/tally.sock\" secretfile=\"$root/var/tallyd/module.secret\""
fi

topic="Welcome to the tally demo shop! Log in (/msg NickServ REGISTER password email), then type !shop here, and !buy sticker to buy. TALLY HELP lists all commands."
started_irc=1
TALLY_DSN="$dsn" TALLY_BUILD="$root/$build" \
  TALLY_TAG_EXTRA="$engine_keys" \
  IRC_EXTRA_CONF="<module name=\"permchannels\">
<permchannels channel=\"#live\" modes=\"nt\" topic=\"$topic\">" \
  tools/irc_env.sh start var/irc "$port"
credits=$(printf '%d.%02d' $((grant / 100)) $((grant % 100)))
pubkey=$(cat "$key_path.pub" 2>/dev/null || echo '<key>')
cat <<MSG

tally is running ($mode mode): IRC on 127.0.0.1:$port, channel #live (a demo shop by "demo").
Connect with any IRC client, e.g.
  irssi -c 127.0.0.1 -p $port -n you
  weechat, then: /server add tally 127.0.0.1/$port   (WeeChat 4+: add -notls)   and  /connect tally
  ii -s 127.0.0.1 -p $port -n you   (then write lines to ~/irc/127.0.0.1/in)
First steps (irssi and weechat):
  /msg NickServ REGISTER <password> you@example.org   an account: money belongs to it, not to nicks;
                                                      each new account gets $credits demo credits
  /join #live     then in #live:  !shop   and   !buy sticker
  /quote CONFIRM <code>           agree to your first purchase; the answer names your receipt
  /quote WALLET   /quote RECEIPTS   /quote VERIFY <receipt>   /quote TALLY HELP
  !shop demo      the creator's card; !buy duo (a co-op print), !buy pass then /quote REDEEM <receipt>,
                  !buy tee (merch: /quote SHIP <receipt> <address>), !buy wallpaper (digital)
Host a live event in #live (as IRC operator: /oper admin adminpass, then /quote TALLY ROLE you creator:
selling in an event, drops and highlight tiers, needs the creator role):
  !event start 30 Launch party    !drop create rush 20 2 per-user=2    !drop create vinyl 5 10 mode=raffle for=3m
  !event tier gold 3 60    !event react 0.10    then anyone: !highlight gold Hello!   !react 🔥   !tip demo 2 great show
  !event stop     the summary: sales, drops, attendance, top supporters, what each creator earned
  Tip messages wait 10 s for moderators: channel operators (/samode #live +o you) see them first
  and can keep one off the channel with !hide <receipt>
  (in ii: /j NickServ REGISTER <password> you@example.org, /j #live, and tally commands
   without /quote: /confirm <code>, /wallet; !shop goes to ~/irc/127.0.0.1/#live/in)
Check a receipt from this shell:
  $build/tally --dsn "$dsn" verify <receipt>
  $build/tally verify --pubkey $pubkey \$($build/tally --dsn "$dsn" receipt <receipt>)
Logs: var/irc/logs/ircd.log, var/irc/anope/logs/, var/tallyd/tallyd.log (remote mode). Data stays in var/ (rm -rf var to start over).
tally: ready on 127.0.0.1:$port (Ctrl-C stops everything)
MSG
while tools/irc_env.sh status var/irc >/dev/null 2>&1; do sleep 1; done
echo "tally: the IRC server or services stopped (see var/irc/logs/ircd.out, var/irc/anope/logs/)" >&2
exit 1
