#!/usr/bin/env bash
# xmpp_run.sh start DIR PORT BUILD TALLY_CONFIG | stop DIR | status DIR
#
# `make run HOSTS=...,xmpp`'s Prosody 0.12: VirtualHost "localhost" (the shop
# is shop@localhost) and its MUC rooms.localhost, both with mod_tally, on
# 127.0.0.1:PORT only. TALLY_CONFIG is the Lua table body of tally_config
# (e.g. mode = "remote", address = "unix:...", secret = "...", network = "xmpp").
# In-band registration is open (the server listens on loopback only) so a
# newcomer makes an account from the client; admin@localhost (password
# adminpass) is the server's admin and so a tally admin. A self-signed
# certificate for localhost lets clients use STARTTLS; plain logins are allowed
# too (loopback). Prosody runs as user prosody in the foreground under DIR,
# started in the background by this script; `stop` ends it.
set -euo pipefail
cmd=${1:?start|stop|status}
dir=${2:?dir}
case "$cmd" in
stop)
  [ -s "$dir/prosody.pid" ] && kill -TERM "$(cat "$dir/prosody.pid")" 2>/dev/null || true
  for _ in $(seq 1 100); do [ -s "$dir/prosody.pid" ] && kill -0 "$(cat "$dir/prosody.pid")" 2>/dev/null || break; sleep 0.1; done
  rm -f "$dir/prosody.pid"
  exit 0 ;;
status)
  [ -s "$dir/prosody.pid" ] && kill -0 "$(cat "$dir/prosody.pid")" 2>/dev/null
  exit ;;
start) ;;
*) echo "xmpp_run.sh: start|stop|status" >&2; exit 2 ;;
esac
port=${3:?port}
build=${4:?build}
tally_config=${5:?tally_config}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
if [ ! -s "$dir/localhost.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,DNS:rooms.localhost" \
    -keyout "$dir/localhost.key" -out "$dir/localhost.crt" 2>/dev/null
fi
umask 077
cat >"$dir/prosody.cfg.lua" <<CONF
-- written by tools/xmpp_run.sh at each start of make run
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
log = { info = "$dir/prosody.log" }
plugin_paths = { "$root/plugin/prosody" }
interfaces = { "127.0.0.1" }
c2s_ports = { $port }
s2s_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "carbons", "offline", "presence", "message",
                    "iq", "register", "vcard_legacy" }
modules_disabled = { "s2s", "http", "bosh", "websocket" }
ssl = { certificate = "$dir/localhost.crt", key = "$dir/localhost.key" }
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
allow_registration = true
registration_whitelist = { "127.0.0.1", "::1" }
whitelist_registration_only = true
authentication = "internal_hashed"
storage = "internal"
admins = { "admin@localhost" }
tally_config = { $tally_config }
tally_shop = "shop@localhost"
tally_grant_jids = { "admin@localhost" }
VirtualHost "localhost"
  modules_enabled = { "tally" }
Component "rooms.localhost" "muc"
  modules_enabled = { "tally" }
  muc_room_locking = false
  restrict_room_creation = false
CONF
chown -R prosody:prosody "$dir"
conf=$dir/prosody.cfg.lua
if [ ! -e "$dir/data/localhost/accounts/admin.dat" ]; then
  runuser -u prosody -- prosodyctl --config "$conf" register admin localhost adminpass >/dev/null
fi
runuser -u prosody -- env LUA_CPATH="$root/$build/prosody/?.so;;" prosody --config "$conf" -F \
  >"$dir/prosody.out" 2>&1 &
for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
  echo "xmpp_run.sh: prosody did not listen on 127.0.0.1:$port ($dir/prosody.out):" >&2
  tail -20 "$dir/prosody.out" >&2
  exit 1
}
for _ in $(seq 1 300); do
  grep -q "engine status OK\|linked to tallyd" "$dir/prosody.log" 2>/dev/null && break
  sleep 0.1
done
