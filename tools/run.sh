#!/usr/bin/env bash
# run.sh BUILD — `make run`: PostgreSQL under ./var (unless DATABASE_URL is
# set), tallyd (the engine as a daemon, on the unix socket var/tallyd/tally.sock),
# InspIRCd + Anope with the tally module in remote mode on 127.0.0.1:${TALLY_IRC_PORT:-6667}
# (services link on the next port), a permanent channel #live with a welcome
# topic, and a demo shop by the creator account "demo". Prints how to connect
# and ends with the line "tally: ready ...". Ctrl-C (or TERM) stops everything
# it started; the data in ./var stays for the next run.
#
# HOSTS=irc,xmpp (make run HOSTS=irc,xmpp) also starts Prosody with tally on
# 127.0.0.1:${TALLY_XMPP_PORT:-5222} (tools/xmpp_run.sh: host localhost, the shop
# shop@localhost, rooms on rooms.localhost, in-band registration), a client
# of the same tallyd: one shop and one ledger for both networks.
#
# HOSTS=irc,xmpp,matrix (or irc,matrix) also starts tally's Matrix Application
# Service in the same tallyd (127.0.0.1:${TALLY_MATRIX_PORT:-9009}) with the
# homeserver double of the tests standing in for a homeserver
# (tests/e2e/matrix_double.py serve, 127.0.0.1:${TALLY_MATRIX_HS_PORT:-8008},
# server name localhost, room !live:localhost hosted by @host:localhost);
# tools/matrix-say @alice '!buy tee' speaks there as a user. The registration
# file for a real homeserver is var/matrix/registration.yaml (a real Synapse
# is untested here: docs/MATRIX.md).
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
hosts=${HOSTS:-irc}
xmpp=0
matrix=0
for h in ${hosts//,/ }; do
  case "$h" in
  irc) ;;
  xmpp) xmpp=1 ;;
  matrix) matrix=1 ;;
  *) echo "run: HOSTS is a comma list of irc, xmpp and matrix, got \"$h\"" >&2; exit 2 ;;
  esac
done
mport=${TALLY_MATRIX_PORT:-9009}
hsport=${TALLY_MATRIX_HS_PORT:-8008}
case "$mport$hsport" in ''|*[!0-9]*) echo "run: TALLY_MATRIX_PORT and TALLY_MATRIX_HS_PORT must be port numbers" >&2; exit 2 ;; esac
if [ "$matrix" = 1 ] && [ "$mode" != remote ]; then
  echo "run: HOSTS with matrix needs TALLY_RUN_MODE=remote (the AS runs in tallyd)" >&2; exit 2
fi
case ",$hosts," in *,irc,*) ;; *) echo "run: HOSTS must include irc (the demo event is on IRC)" >&2; exit 2 ;; esac
xport=${TALLY_XMPP_PORT:-5222}
case "$xport" in ''|*[!0-9]*) echo "run: TALLY_XMPP_PORT must be a port number" >&2; exit 2 ;; esac
if [ "$xmpp" = 1 ] && [ "$mode" != remote ]; then
  echo "run: HOSTS with xmpp needs TALLY_RUN_MODE=remote (one tallyd serves both networks)" >&2; exit 2
fi
mkdir -p var
chmod 755 var
started_pg=0
started_irc=0
started_xmpp=0
tallyd_pid=
double_pid=
stop_all() {
  trap '' INT TERM
  if [ -n "$double_pid" ]; then kill -TERM "$double_pid" 2>/dev/null || true; wait "$double_pid" 2>/dev/null || true; rm -f var/matrix/double.url; fi
  [ "$started_xmpp" = 1 ] && { tools/xmpp_run.sh stop var/xmpp >/dev/null 2>&1 || true; }
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
  for net in irc xmpp; do
    [ -s var/tallyd/secret.$net ] || { openssl rand -hex 32 > var/tallyd/secret.$net; chmod 600 var/tallyd/secret.$net; }
  done
  key_path=$root/var/tallyd/state/tally-signing.pem
  cat > var/tallyd/tallyd.conf <<CONF
# make run's tallyd (tools/run.sh writes it at each start)
listen_unix = $root/var/tallyd/tally.sock
unix_mode = 0666
state_dir = $root/var/tallyd/state
secret.irc = $root/var/tallyd/secret.irc
secret.xmpp = $root/var/tallyd/secret.xmpp
dsn = $dsn
welcome_grant = $grant
tip_message_hold = 10
reward_min_account_age = 0
CONF
  if [ "$matrix" = 1 ]; then
    # The AS in this tallyd, and the homeserver double in front of it. The
    # registration (tokens) is made once and kept, as a homeserver keeps it.
    mkdir -p var/matrix
    [ -s var/matrix/registration.yaml ] ||
      "$build/tally" matrix-registration var/matrix/registration.yaml "http://127.0.0.1:$mport" localhost >/dev/null
    cat >> var/tallyd/tallyd.conf <<CONF
matrix_listen = 127.0.0.1:$mport
matrix_registration = $root/var/matrix/registration.yaml
matrix_homeserver = http://127.0.0.1:$hsport
matrix_server_name = localhost
matrix_admins = @admin:localhost
matrix_grant_ids = @admin:localhost
CONF
    python3 tests/e2e/matrix_double.py serve var/matrix/registration.yaml "$hsport" "http://127.0.0.1:$mport" localhost \
      > var/matrix/double.log 2>&1 &
    double_pid=$!
    echo "http://127.0.0.1:$hsport#localhost" > var/matrix/double.url
  fi
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
if [ "$xmpp" = 1 ]; then
  started_xmpp=1
  tools/xmpp_run.sh start var/xmpp "$xport" "$build" \
    "mode = \"remote\", address = \"unix:$root/var/tallyd/tally.sock\", secret = \"$(cat var/tallyd/secret.xmpp)\", network = \"xmpp\", instance = \"localhost\""
fi
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
  /quote REWARD ADD g10 discount=10%    then in #live:  !goal start 20,50 reward=g10 for=15m min-accounts=2   !goal
                  a community goal: the room's tips and purchases fill each level; everyone present at 100 % earns g10
  !event stop     the summary: sales, drops, attendance, top supporters, what each creator earned
  A quiz round in the event (players answer privately: /quote ANSWER <text>):
  !reward add q10 discount=10%    !quiz round 2 reward=q10 min-players=1
  !quiz start 20 Capital of France? | Paris    !quiz start 20 Two plus two? | 4 | four    (!quiz stop ends it early)
  Tip messages wait 10 s for moderators: channel operators (/samode #live +o you) see them first
  and can keep one off the channel with !hide <receipt>
  (in ii: /j NickServ REGISTER <password> you@example.org, /j #live, and tally commands
   without /quote: /confirm <code>, /wallet; !shop goes to ~/irc/127.0.0.1/#live/in)
Check a receipt from this shell:
  $build/tally --dsn "$dsn" verify <receipt>
  $build/tally verify --pubkey $pubkey \$($build/tally --dsn "$dsn" receipt <receipt>)
Logs: var/irc/logs/ircd.log, var/irc/anope/logs/, var/tallyd/tallyd.log (remote mode). Data stays in var/ (rm -rf var to start over).
MSG
if [ "$xmpp" = 1 ]; then
  cat <<MSG
XMPP (Prosody, the same shop and ledger through tallyd) on 127.0.0.1:$xport, domain localhost:
  Profanity:  /register you 127.0.0.1 port $xport tls allow     (then)  /connect you@localhost server 127.0.0.1 port $xport tls allow
  Gajim:      Add account -> "Sign up" on server localhost, Advanced: host 127.0.0.1 port $xport (accept the self-signed certificate)
  then message shop@localhost:  SHOP   BUY sticker   CONFIRM <code>   WALLET   RECEIPTS   TALLY HELP
  and join live@rooms.localhost:  !shop   !buy sticker   (the first to join owns the room and hosts it)
  admin@localhost (password adminpass) is a tally admin: TALLY ROLE you@localhost creator, and ad-hoc forms
Logs: var/xmpp/prosody.log
MSG
fi
if [ "$matrix" = 1 ]; then
  cat <<MSG
Matrix: tally's Application Service on 127.0.0.1:$mport, with a homeserver double on 127.0.0.1:$hsport
(tests/e2e/matrix_double.py: no homeserver is installed; server name localhost, room !live:localhost,
hosted by @host:localhost). Speak there as a user and see tally's answers:
  tools/matrix-say @alice '!shop'     tools/matrix-say @alice '!buy sticker'   then  '!confirm <code>'
  tools/matrix-say --name 'Ana (WhatsApp)' @whatsapp_15551234567 '!wallet'   (a bridged user: named by display name)
  tools/matrix-say @host '!event start 30 Launch'   (@host has power level 100: a host)
  tools/matrix-say @alice '!ship 1 Main St'  (refused in the room: the bot opens a DM)  then  tools/matrix-say --dm @alice '!wallet'
  @admin:localhost is a tally admin (matrix_admins) who may grant (matrix_grant_ids): tools/matrix-say @admin '!tally role @alice:localhost creator'
Registration file for a real homeserver: $root/var/matrix/registration.yaml (Synapse: untested here, docs/MATRIX.md)
Logs: var/matrix/double.log (every message the bot sends), var/tallyd/tallyd.log
MSG
fi
echo "tally: ready on 127.0.0.1:$port (Ctrl-C stops everything)"
while tools/irc_env.sh status var/irc >/dev/null 2>&1; do
  if [ -n "$double_pid" ] && ! kill -0 "$double_pid" 2>/dev/null; then
    echo "tally: the Matrix homeserver double stopped (see var/matrix/double.log)" >&2
    exit 1
  fi
  if [ "$xmpp" = 1 ] && ! tools/xmpp_run.sh status var/xmpp; then
    echo "tally: Prosody stopped (see var/xmpp/prosody.out, var/xmpp/prosody.log)" >&2
    exit 1
  fi
  sleep 1
done
echo "tally: the IRC server or services stopped (see var/irc/logs/ircd.out, var/irc/anope/logs/)" >&2
exit 1
