#!/usr/bin/env bash
# irc_env.sh — a private IRC network in a folder: InspIRCd 3 + Anope 2.0.
#
#   tools/irc_env.sh start DIR [PORT]   write configs, start both, wait for the link
#   tools/irc_env.sh stop DIR           stop what start started (TERM, then KILL)
#   tools/irc_env.sh status DIR         exit 0 when both daemons are alive
#   tools/irc_env.sh ircd-kill DIR      SIGKILL InspIRCd only (fault tests)
#   tools/irc_env.sh ircd-start DIR     start InspIRCd again, same config and module
#
# The network looks like a real one: spanningtree, services_account, sasl,
# alias (NICKSERV/NS/IDENTIFY), helpop, cap and the IRCv3 modules, and Anope
# linked over the inspircd3 protocol so NickServ REGISTER/IDENTIFY give users
# a services account. Clients listen on 127.0.0.1:PORT (default 6667), the
# server link on 127.0.0.1:LINK_PORT (env IRC_LINK_PORT, default PORT+1).
#
# The tally module is loaded when a built m_tally.so is found (env TALLY_SO,
# else $TALLY_BUILD/m_tally.so, else build/m_tally.so); TALLY_SO=none skips
# it. Its <tally> tag gets the DSN from env TALLY_DSN (written to a file that
# only irc can read, passed as dsnfile=) plus any raw attributes in env
# TALLY_TAG_EXTRA, e.g. TALLY_TAG_EXTRA='welcome_grant="100" prefix="!"'.
# Env IRC_EXTRA_CONF holds raw InspIRCd config appended to inspircd.conf
# (make run uses it for a permanent #live channel with a topic).
# Env TALLY_SIGNING_KEY=default writes no signing_key, so the module keeps
# its key in InspIRCd's data directory as on a plain install (otherwise
# DIR/var/tally-signing.pem). Env IRC_DATADIR sets that data directory
# (default DIR/data, created here; a given one is not created, so a test
# can see the module create it).
#
# Two servers, one network (env IRC_PEER=1): a second InspIRCd,
# irc2.tally.test (SID 0T2), with its config, data and logs in DIR/peer,
# clients on 127.0.0.1:IRC_PEER_PORT (default PORT+2). It has no server
# port of its own: it links to irc.tally.test on LINK_PORT (<autoconnect>
# every 2 s, so it relinks after either side restarts), and Anope stays
# linked to irc.tally.test, so services reach the peer's users through the
# hub. Same modules as the first server (spanningtree refuses a link whose
# common modules differ). It loads the tally module too, with env
# TALLY_PEER_DSN (default TALLY_DSN) and TALLY_PEER_TAG_EXTRA (default
# TALLY_TAG_EXTRA): two servers in local mode need two databases, since one
# engine holds a ledger's writer lock. start returns once a client on the
# peer's port reaches NickServ (which proves the whole chain is linked);
# DIR/env then also names IRC_PEER_PORT. stop and status cover it;
# ircd-kill and ircd-start act on the first server only.
#
# Both daemons refuse or dislike root, so as root they run as user `irc` via
# runuser, and DIR belongs to irc. Nothing is written outside DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cmd=${1:?usage: irc_env.sh start|stop|status DIR [PORT]}
dir=${2:?usage: irc_env.sh start|stop|status DIR [PORT]}
port=${3:-6667}
link_port=${IRC_LINK_PORT:-$((port + 1))}
run_user=${IRC_ENV_USER:-irc}
ircd_name=irc.tally.test
peer_name=irc2.tally.test
svc_name=services.tally.test
link_pass=linkpass-$$-$RANDOM
peer_pass=peerpass-$$-$RANDOM
peer=${IRC_PEER:-0}
peer_port=${IRC_PEER_PORT:-$((port + 2))}
data_dir=${IRC_DATADIR:-}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

as_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$run_user" -- "$@"; else "$@"; fi
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Escapes a value for a double-quoted InspIRCd 3 config attribute.
xml_escape() {
  local s=$1
  s=${s//&/&amp;}; s=${s//\"/&quot;}; s=${s//</&lt;}; s=${s//>/&gt;}
  printf '%s' "$s"
}

find_tally_so() {
  local so=${TALLY_SO:-}
  if [ "$so" = none ]; then return 0; fi
  if [ -z "$so" ] && [ -n "${TALLY_BUILD:-}" ]; then so=$TALLY_BUILD/m_tally.so; fi
  if [ -z "$so" ]; then so=$root/build/m_tally.so; fi
  if [ -f "$so" ]; then (cd "$(dirname "$so")" && printf '%s/%s' "$(pwd)" "$(basename "$so")"); fi
}

write_moduledir() {
  local so=$1 m
  rm -rf "$dir/modules"
  mkdir -p "$dir/modules"
  for m in /usr/lib/inspircd/modules/*.so; do ln -s "$m" "$dir/modules/"; done
  if [ -n "$so" ]; then
    # A copy, not a symlink: a rebuild while the server runs must not change
    # the file under a loaded module.
    cp "$so" "$dir/modules/m_tally.so"
  fi
}

# One InspIRCd's config. $1 module path or "", $2 its folder (config, logs,
# var), $3 server name, $4 SID, $5 client port, $6 data dir, $7 raw config
# for its server links (and the server port, on the hub), $8 DSN, $9 raw
# extra <tally> attributes.
write_inspircd_conf() {
  local so=$1 sdir=$2 name=$3 sid=$4 cport=$5 sdata=$6 links=$7 dsn=$8 tag_extra=$9
  cat >"$sdir/inspircd.conf" <<CONF
# Written by tools/irc_env.sh; rewritten on every start.
<server name="$name" description="tally test server" id="$sid" network="TallyNet">
<admin name="tally" nick="tally" email="tally@localhost">
<path configdir="$sdir" datadir="$sdata" logdir="$sdir/logs" moduledir="$dir/modules">
<bind address="127.0.0.1" port="$cport" type="clients">
<power diepass="die-$link_pass" restartpass="restart-$link_pass">

<connect name="main" allow="*" timeout="60" pingfreq="120" threshold="100000"
         commandrate="100000" fakelag="no" recvq="16384" softsendq="65536"
         hardsendq="1048576" localmax="1000" globalmax="1000" maxconnwarn="off"
         resolvehostnames="no" useident="no">

<class name="Shutdown" commands="DIE RESTART REHASH LOADMODULE UNLOADMODULE RELOADMODULE">
<class name="ServerLink" commands="CONNECT SQUIT RCONNECT RSQUIT MKPASSWD">
<class name="BanControl" commands="KILL GLINE KLINE ZLINE QLINE ELINE">
<class name="ChanControl" commands="SAMODE">
<class name="TallyMoney" privs="tally/grant">
<type name="NetAdmin" classes="Shutdown ServerLink BanControl ChanControl TallyMoney" host="netadmin.tally.test">
<oper name="admin" password="adminpass" host="*@*" type="NetAdmin">
<type name="Helper" classes="BanControl" host="helper.tally.test">
<oper name="helper" password="helperpass" host="*@*" type="Helper">

<files motd="$sdir/motd.txt">
<dns server="127.0.0.1" timeout="1">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes">
<security announceinvites="dynamic" hideulines="no" flatlinks="no" maxtargets="20">
<performance quietbursts="yes" softlimit="1024" clonesonconnect="no">
<whowas groupsize="10" maxgroups="1000" maxkeep="1h">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" flush="1" target="$sdir/logs/ircd.log">

# Server links.
<module name="spanningtree">
$links
<uline server="$svc_name" silent="yes">

# What services need and what a real network runs beside them.
<module name="services_account">
<module name="sasl">
<sasl target="$svc_name">
<module name="svshold">
<module name="chghost">
<module name="chgident">
<module name="chgname">
<module name="hidechans">
<module name="servprotect">
<module name="topiclock">
<module name="mlock">
<module name="alias">
<alias text="NICKSERV" replace="SQUERY \$requirement :\$2-" requires="NickServ" uline="yes">
<alias text="NS" replace="SQUERY \$requirement :\$2-" requires="NickServ" uline="yes">
<alias text="IDENTIFY" format="*" replace="SQUERY \$requirement :IDENTIFY \$2-" requires="NickServ" uline="yes">
<badnick nick="NickServ" reason="Reserved for a network service">
<module name="helpop">
<include file="$sdir/helpop.conf">
<module name="samode">
<module name="cap">
<module name="ircv3">
<module name="ircv3_accounttag">
<module name="ircv3_batch">
<module name="ircv3_capnotify">
<module name="ircv3_chghost">
<module name="ircv3_ctctags">
<module name="ircv3_echomessage">
<module name="ircv3_invitenotify">
<module name="ircv3_labeledresponse">
<module name="ircv3_msgid">
<module name="ircv3_servertime">
<module name="namesx">
<module name="uhnames">
CONF
  if [ -n "${IRC_EXTRA_CONF:-}" ]; then
    printf '\n# Extra configuration from env IRC_EXTRA_CONF.\n%s\n' "$IRC_EXTRA_CONF" >>"$sdir/inspircd.conf"
  fi
  if [ -n "$so" ]; then
    local dsnfile=$sdir/tally.dsn key=""
    mkdir -p "$sdir/var"
    case " $tag_extra" in
    *" signing_key="*) ;;
    *) if [ "${TALLY_SIGNING_KEY:-}" != default ]; then
         key="signing_key=\"$(xml_escape "$sdir/var/tally-signing.pem")\""
       fi ;;
    esac
    printf '%s\n' "$dsn" >"$dsnfile"
    chmod 600 "$dsnfile"
    cat >>"$sdir/inspircd.conf" <<CONF

# tally: live commerce. See docs/IRC.md.
<module name="tally">
<tally dsnfile="$(xml_escape "$dsnfile")" $key $tag_extra>
CONF
  fi
  printf 'tally test network\n' >"$sdir/motd.txt"
  cp /usr/share/doc/inspircd/examples/helpop.conf.example "$sdir/helpop.conf"
}

# The hub (irc.tally.test): Anope and the peer link to it.
write_hub_conf() {
  local links
  links="<bind address=\"127.0.0.1\" port=\"$link_port\" type=\"servers\">
<link name=\"$svc_name\" ipaddr=\"127.0.0.1\" port=\"$link_port\" allowmask=\"127.0.0.0/8\"
      timeout=\"30\" sendpass=\"$link_pass\" recvpass=\"$link_pass\">"
  if [ "$peer" = 1 ]; then
    links="$links
<link name=\"$peer_name\" ipaddr=\"127.0.0.1\" port=\"$link_port\" allowmask=\"127.0.0.0/8\"
      timeout=\"30\" sendpass=\"$peer_pass\" recvpass=\"$peer_pass\">"
  fi
  write_inspircd_conf "$1" "$dir" "$ircd_name" 0TL "$port" "${data_dir:-$dir/data}" "$links" \
    "${TALLY_DSN:-}" "${TALLY_TAG_EXTRA:-}"
}

# The peer (irc2.tally.test): connects out to the hub, no server port.
write_peer_conf() {
  local links
  mkdir -p "$dir/peer/logs"
  [ -n "$data_dir" ] || mkdir -p "$dir/peer/data"
  links="<link name=\"$ircd_name\" ipaddr=\"127.0.0.1\" port=\"$link_port\" allowmask=\"127.0.0.0/8\"
      timeout=\"30\" sendpass=\"$peer_pass\" recvpass=\"$peer_pass\">
<autoconnect period=\"2s\" server=\"$ircd_name\">"
  local pdata=$dir/peer/data
  [ -z "$data_dir" ] || pdata=$data_dir-peer
  write_inspircd_conf "$1" "$dir/peer" "$peer_name" 0T2 "$peer_port" "$pdata" \
    "$links" "${TALLY_PEER_DSN:-${TALLY_DSN:-}}" "${TALLY_PEER_TAG_EXTRA:-${TALLY_TAG_EXTRA:-}}"
}

write_anope_conf() {
  mkdir -p "$dir/anope/data" "$dir/anope/logs"
  cat >"$dir/anope/services.conf" <<CONF
/* Written by tools/irc_env.sh; rewritten on every start. */
uplink
{
	host = "127.0.0.1"
	ipv6 = no
	ssl = no
	port = $link_port
	password = "$link_pass"
}
serverinfo
{
	name = "$svc_name"
	description = "tally test services"
	id = "0SV"
	pid = "$dir/anope/anope.pid"
	motd = "$dir/motd.txt"
}
module
{
	name = "inspircd3"
	use_server_side_mlock = yes
	use_server_side_topiclock = yes
}
networkinfo
{
	networkname = "TallyNet"
	nicklen = 31
	userlen = 10
	hostlen = 64
	chanlen = 32
	modelistsize = 100
	vhost_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"
	allow_undotted_vhosts = false
	disallow_start_or_end = ".-"
}
options
{
	/* Must match InspIRCd's casemapping or the link is refused at CAPAB. */
	casemap = "rfc1459"
	seed = $RANDOM$RANDOM
	strictpasswords = yes
	badpasslimit = 50
	badpasstimeout = 1h
	updatetimeout = 5m
	expiretimeout = 30m
	readtimeout = 5s
	/* Anope 2.0.12 refuses a zero warningtimeout. */
	warningtimeout = 4h
	timeoutcheck = 3s
	retrywait = 2s
	hideprivilegedcommands = yes
	hideregisteredcommands = yes
}
mail { usemail = no }
log
{
	target = "services.log"
	admin = "*"
	commands = "*"
	servers = "*"
	users = "connect disconnect nick"
	other = "*"
	rawio = no
	debug = no
}
module
{
	name = "db_flatfile"
	database = "anope.db"
	keepbackups = 0
	fork = no
}
module { name = "enc_sha256" }
module { name = "m_sasl" }

service
{
	nick = "NickServ"
	user = "services"
	host = "$svc_name"
	gecos = "Nickname Registration Service"
}
module
{
	name = "nickserv"
	client = "NickServ"
	forceemail = no
	confirmemailchanges = no
	defaults = "ns_private hide_email hide_mask"
	regdelay = 0
	expire = 21d
	secureadmins = yes
	modeonid = yes
	killquick = 20s
	kill = 60s
	enforceruser = "enforcer"
	enforcerhost = "$svc_name"
	releasetimeout = 1m
	guestnickprefix = "Guest"
	nonicknameownership = no
	passlen = 32
}
command { service = "NickServ"; name = "HELP"; command = "generic/help"; }
module { name = "ns_register"; registration = "none"; resenddelay = 90s; }
command { service = "NickServ"; name = "REGISTER"; command = "nickserv/register"; }
command { service = "NickServ"; name = "CONFIRM"; command = "nickserv/confirm"; }
module { name = "ns_identify"; maxlogins = 10; }
command { service = "NickServ"; name = "IDENTIFY"; command = "nickserv/identify"; }
command { service = "NickServ"; name = "ID"; command = "nickserv/identify"; hide = true; }
module { name = "ns_logout" }
command { service = "NickServ"; name = "LOGOUT"; command = "nickserv/logout"; }
module { name = "ns_info" }
command { service = "NickServ"; name = "INFO"; command = "nickserv/info"; }
module { name = "ns_status" }
command { service = "NickServ"; name = "STATUS"; command = "nickserv/status"; }
module { name = "ns_group"; maxaliases = 16; nogroupchange = yes; }
command { service = "NickServ"; name = "GROUP"; command = "nickserv/group"; }
command { service = "NickServ"; name = "GLIST"; command = "nickserv/glist"; }
CONF
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {
  local p=$1 pidfile=$2 i
  for i in $(seq 1 100); do
    if port_open "$p"; then return 0; fi
    if ! alive "$pidfile"; then return 1; fi
    sleep 0.1
  done
  return 1
}

fail_start() {
  echo "irc_env: $1" >&2
  for f in "$dir/logs/ircd.log" "$dir/peer/logs/ircd.log"; do
    [ -f "$f" ] || continue
    echo "--- $f (errors)" >&2
    grep -iE 'error|unable|exception|failed' "$f" | tail -10 >&2 || true
  done
  for f in "$dir/logs/ircd.out" "$dir/peer/logs/ircd.out" "$dir/anope/logs/anope.out"; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -8 "$f" >&2; }
  done
  stop_all
  exit 1
}

# $1: the server's folder (default DIR; DIR/peer for the peer).
start_ircd() {
  local sdir=${1:-$dir}
  as_user sh -c 'echo $$ >"$1/inspircd.run.pid"; exec /usr/sbin/inspircd --config="$1/inspircd.conf" --nofork --nopid' \
    sh "$sdir" >>"$sdir/logs/ircd.out" 2>&1 </dev/null &
}

stop_one() {
  local pidfile=$1 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop_all() {
  stop_one "$dir/peer/inspircd.run.pid"
  stop_one "$dir/anope.run.pid"
  stop_one "$dir/inspircd.run.pid"
}

case "$cmd" in
start)
  if alive "$dir/inspircd.run.pid" || alive "$dir/anope.run.pid"; then
    echo "irc_env: already running in $dir" >&2; exit 1
  fi
  if port_open "$port"; then echo "irc_env: port $port is taken" >&2; exit 1; fi
  if port_open "$link_port"; then echo "irc_env: port $link_port is taken" >&2; exit 1; fi
  so=$(find_tally_so)
  if [ "$peer" = 1 ] && port_open "$peer_port"; then echo "irc_env: port $peer_port is taken" >&2; exit 1; fi
  mkdir -p "$dir/logs"
  [ -n "$data_dir" ] || mkdir -p "$dir/data"
  write_moduledir "$so"
  write_hub_conf "$so"
  if [ "$peer" = 1 ]; then write_peer_conf "$so"; fi
  write_anope_conf
  printf 'IRC_PORT=%s\nIRC_LINK_PORT=%s\nTALLY_SO=%s\n' "$port" "$link_port" "${so:-none}" >"$dir/env"
  if [ "$peer" = 1 ]; then printf 'IRC_PEER_PORT=%s\n' "$peer_port" >>"$dir/env"; fi
  if [ "$(id -u)" = 0 ]; then chown -R "$run_user": "$dir"; fi
  chmod 700 "$dir"

  # The daemons run in the foreground (--nofork) under a shell that records
  # their real pid, so stop can signal the daemon itself.
  cd "$dir"
  start_ircd
  for i in $(seq 1 50); do [ -s "$dir/inspircd.run.pid" ] && break; sleep 0.05; done
  wait_port "$port" "$dir/inspircd.run.pid" || fail_start "InspIRCd did not start"
  wait_port "$link_port" "$dir/inspircd.run.pid" || fail_start "InspIRCd has no server port"

  as_user sh -c 'echo $$ >"$1/anope.run.pid"; exec /usr/sbin/anope --nofork --confdir="$1/anope" --config=services.conf --dbdir="$1/anope/data" --logdir="$1/anope/logs" --modulesdir=/usr/lib/anope' \
    sh "$dir" >"$dir/anope/logs/anope.out" 2>&1 </dev/null &
  for i in $(seq 1 50); do [ -s "$dir/anope.run.pid" ] && break; sleep 0.05; done

  # Linked means a client can reach NickServ through the server.
  if ! /usr/bin/python3 "$root/tests/e2e/ircclient.py" probe 127.0.0.1 "$port" 30 \
      "$dir/inspircd.run.pid" "$dir/anope.run.pid"; then
    alive "$dir/anope.run.pid" || fail_start "Anope exited"
    fail_start "NickServ did not answer within 30 s"
  fi
  if [ "$peer" = 1 ]; then
    start_ircd "$dir/peer"
    for i in $(seq 1 50); do [ -s "$dir/peer/inspircd.run.pid" ] && break; sleep 0.05; done
    wait_port "$peer_port" "$dir/peer/inspircd.run.pid" || fail_start "the peer InspIRCd did not start"
    # NickServ answering a client of the peer: peer -> hub -> Anope linked.
    if ! /usr/bin/python3 "$root/tests/e2e/ircclient.py" probe 127.0.0.1 "$peer_port" 30 \
        "$dir/peer/inspircd.run.pid" "$dir/inspircd.run.pid" "$dir/anope.run.pid"; then
      fail_start "the peer $peer_name did not link within 30 s"
    fi
    echo "irc_env: peer $peer_name on 127.0.0.1:$peer_port, linked to $ircd_name"
  fi
  echo "irc_env: InspIRCd on 127.0.0.1:$port, Anope linked on $link_port, tally module: ${so:-none}"
  ;;
ircd-kill)
  # Fault tests: SIGKILL InspIRCd only (Anope stays and will reconnect).
  if alive "$dir/inspircd.run.pid"; then
    pid=$(cat "$dir/inspircd.run.pid")
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  ;;
ircd-start)
  # Starts InspIRCd again with the config and module copy of the last start.
  . "$dir/env"
  port=$IRC_PORT; link_port=$IRC_LINK_PORT
  if alive "$dir/inspircd.run.pid"; then echo "irc_env: InspIRCd already runs in $dir" >&2; exit 1; fi
  rm -f "$dir/inspircd.run.pid"
  cd "$dir"
  start_ircd
  for i in $(seq 1 50); do [ -s "$dir/inspircd.run.pid" ] && break; sleep 0.05; done
  wait_port "$port" "$dir/inspircd.run.pid" || { echo "irc_env: InspIRCd did not start again" >&2; exit 1; }
  echo "irc_env: InspIRCd on 127.0.0.1:$port again"
  ;;
stop)
  stop_all
  ;;
status)
  alive "$dir/inspircd.run.pid" && alive "$dir/anope.run.pid" \
    && { ! grep -q '^IRC_PEER_PORT=' "$dir/env" 2>/dev/null || alive "$dir/peer/inspircd.run.pid"; }
  ;;
*)
  echo "usage: irc_env.sh start|stop|status|ircd-kill|ircd-start DIR [PORT]" >&2; exit 2
  ;;
esac
