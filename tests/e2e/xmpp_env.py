"""xmpp_env.py — a private Prosody 0.12 with mod_tally, and slixmpp clients
for end-to-end tests.

    with ProsodyEnv(dsn, users={"alice": "pw"}, admins=["root"]) as px:
        a = px.client("alice")            # a connected, synchronous wrapper
        a.send_chat(px.shop, "WALLET"); m = a.wait_chat(r"^Wallet ")
        a.join(px.room("live"), "Alice"); a.send_room(px.room("live"), "!buy tee")

Prosody runs as user `prosody` (HOSTS.md) in the foreground from a temp
folder it owns, on a free loopback port, with plain auth and no TLS (a
loopback test server); the tally Lua module comes from $TALLY_BUILD/prosody
(LUA_CPATH) and mod_tally.lua from plugin/prosody. The MUC component is
rooms.tally.test; the shop is shop@tally.test. Clients are Debian's
python3-slixmpp, each on its own asyncio loop in a thread.
"""

import asyncio
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TALLY_BUILD", os.path.join(ROOT, "build"))
DOMAIN = "tally.test"
MUC = "rooms.tally.test"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def lua_str(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


class ProsodyEnv:
    def __init__(self, dsn, users, admins=(), tally=None, grant=(), keep=False, guests=False, bulk=None,
                 with_tally=True):
        self.dsn, self.users, self.admins = dsn, dict(users), list(admins)
        self.with_tally = with_tally  # False: the same server without mod_tally (the bench's baseline)
        # Accounts written straight into Prosody's internal storage before it
        # starts, in one pass (one prosodyctl call each takes ~0.5 s): a
        # herd's hundreds of users. Names of [a-z0-9] only.
        self.bulk = dict(bulk or {})
        self.tally = dict(tally or {})
        self.grant = list(grant)
        self.guests = guests  # an anonymous VirtualHost guest.tally.test
        self.keep = keep or os.environ.get("TALLY_KEEP_ENV") == "1"
        self.dir = self.proc = None
        self.clients = []

    shop = "shop@" + DOMAIN

    @staticmethod
    def room(name):
        return "%s@%s" % (name, MUC)

    @staticmethod
    def jid(user):
        return "%s@%s" % (user, DOMAIN)

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tally-xmpp-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        cfg = dict({"dsn": self.dsn, "network": "xmpp",
                    "signing_key": os.path.join(self.dir, "tally-signing.pem")}, **self.tally)
        tally_cfg = ", ".join("%s = %s" % (k, lua_str(str(v))) for k, v in cfg.items())
        conf = """-- written by tests/e2e/xmpp_env.py
pidfile = {pidfile}
data_path = {data}
log = {{ debug = {logfile} }}
plugin_paths = {{ {plugins} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster", "saslauth", "disco", "ping", "carbons", "offline", "presence", "message", "iq" }}
modules_disabled = {{ "s2s", "tls", "http", "bosh", "websocket" }}
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
s2s_require_encryption = false
authentication = "internal_plain"
storage = "internal"
admins = {{ {admins} }}
tally_config = {{ {tally} }}
tally_shop = {shop}
tally_grant_jids = {{ {grant} }}
VirtualHost "{domain}"
  modules_enabled = {{ {tally_mod} }}
{guest_host}
Component "{muc}" "muc"
  modules_enabled = {{ {tally_mod} }}
  muc_room_locking = false
  restrict_room_creation = false
""".format(pidfile=lua_str(self.dir + "/prosody.pid"), data=lua_str(self.dir + "/data"),
           logfile=lua_str(self.dir + "/prosody.log"), plugins=lua_str(os.path.join(ROOT, "plugin", "prosody")),
           port=self.port, admins=", ".join(lua_str(self.jid(a)) for a in self.admins), tally=tally_cfg,
           shop=lua_str(self.shop), grant=", ".join(lua_str(self.jid(g)) for g in self.grant),
           domain=DOMAIN, muc=MUC, tally_mod='"tally"' if self.with_tally else "",
           guest_host=('VirtualHost "guest.tally.test"\n  authentication = "anonymous"\n' if self.guests else ""))
        self.conf = os.path.join(self.dir, "prosody.cfg.lua")
        with open(self.conf, "w") as f:
            f.write(conf)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        if self.bulk:
            accounts = os.path.join(self.dir, "data", DOMAIN.replace(".", "%2e"), "accounts")
            os.makedirs(accounts)
            for user, pw in self.bulk.items():
                if not re.fullmatch(r"[a-z0-9]+", user) or '"' in pw or "\\" in pw:
                    raise ValueError("bulk user %r: names of [a-z0-9], plain passwords" % user)
                with open(os.path.join(accounts, user + ".dat"), "w") as f:
                    f.write('return {\n\t["password"] = "%s";\n};\n' % pw)
            self.users.update(self.bulk)
        subprocess.run(["chown", "-R", "prosody:prosody", self.dir], check=True)
        for user, pw in [(u, p) for u, p in self.users.items() if u not in self.bulk] + \
                [(a, "admin-pw") for a in self.admins if a not in self.users]:
            self.users.setdefault(user, pw)
            subprocess.run(["runuser", "-u", "prosody", "--", "prosodyctl", "--config", self.conf, "register",
                            user, DOMAIN, pw], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = dict(os.environ, LUA_CPATH=os.path.join(BUILD, "prosody", "?.so") + ";;")
        self.out = open(os.path.join(self.dir, "prosody.out"), "w")
        self.proc = subprocess.Popen(["runuser", "-u", "prosody", "--", "env",
                                      "LUA_CPATH=" + env["LUA_CPATH"], "prosody", "--config", self.conf, "-F"],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prosody exited %d:\n%s" % (self.proc.returncode, self.log()[-3000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("prosody did not listen:\n" + self.log()[-3000:])
        # The engine is ready once it said so in the log.
        deadline = time.monotonic() + 30
        while self.with_tally and "engine status OK" not in self.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def log(self):
        text = ""
        for name in ("prosody.out", "prosody.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def client(self, user, resource="test"):
        c = XmppClient(self.jid(user) + "/" + resource, self.users[user], self.port)
        self.clients.append(c)
        return c

    def register(self, user, pw):
        """A new account on tally.test while Prosody runs."""
        subprocess.run(["runuser", "-u", "prosody", "--", "prosodyctl", "--config", self.conf, "register",
                        user, DOMAIN, pw], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.users[user] = pw

    def guest(self):
        """An anonymous login on guest.tally.test (guests=True)."""
        c = XmppClient("guest.tally.test", "", self.port, anonymous=True)
        self.clients.append(c)
        return c

    def __exit__(self, *exc):
        for c in self.clients:
            c.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.keep:
            print("# kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


class XmppError(Exception):
    pass


class XmppClient:
    """slixmpp on its own loop in a thread; messages land in a queue."""

    def __init__(self, jid, password, port, timeout=15, anonymous=False):
        import slixmpp  # Debian's python3-slixmpp
        self.jid = jid
        self.messages = queue.Queue()
        self.seen = []
        self._subjects = []  # (room, subject) as they came
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.failed = None

        def run():
            asyncio.set_event_loop(self.loop)
            self.x = slixmpp.ClientXMPP(jid, password, sasl_mech="ANONYMOUS" if anonymous else None)
            self.x.register_plugin("xep_0045")
            self.x.register_plugin("xep_0199")
            self.x.register_plugin("xep_0030")
            self.x["feature_mechanisms"].unencrypted_plain = True
            self.x.enable_starttls = False
            self.x.enable_direct_tls = False
            self.x.enable_plaintext = True

            def on_start(_):
                self.jid = str(self.x.boundjid)
                self.x.send_presence()
                ready.set()

            def on_fail(*_):
                self.failed = "authentication failed"
                ready.set()
            self.x.add_event_handler("session_start", on_start)
            self.x.add_event_handler("failed_auth", on_fail)
            self.x.add_event_handler("message", lambda m: self.messages.put(
                (m["type"], str(m["from"]), m["body"], m["id"])))
            self.x.add_event_handler("groupchat_message", lambda m: None)
            self.x.add_event_handler("groupchat_subject", lambda m: self._subjects.append(
                (str(m["from"]).split("/")[0], m["subject"])))
            self.x.connect(("127.0.0.1", port), use_ssl=False, force_starttls=False, disable_starttls=True)
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(timeout) or self.failed:
            raise XmppError("%s could not log in: %s" % (jid, self.failed or "timeout"))

    def _call(self, fn, *args, **kw):
        self.loop.call_soon_threadsafe(lambda: fn(*args, **kw))

    @property
    def bare(self):
        return self.jid.split("/")[0]

    def send_chat(self, to, body):
        self._call(self.x.send_message, mto=to, mbody=body, mtype="chat")

    def send_room(self, room, body, msg_id=None):
        def send():
            m = self.x.make_message(mto=room, mbody=body, mtype="groupchat")
            if msg_id:
                m["id"] = msg_id
            m.send()
        self._call(send)

    def join(self, room, nick, timeout=15):
        done = threading.Event()

        def joined(presence):
            if str(presence["from"]).lower() == ("%s/%s" % (room, nick)).lower():
                done.set()
        self._call(self.x.add_event_handler, "muc::%s::got_online" % room, joined)
        self._call(self.x.plugin["xep_0045"].join_muc, room, nick)
        if not done.wait(timeout):
            raise XmppError("%s could not join %s" % (self.jid, room))

    def leave(self, room, nick):
        self._call(self.x.plugin["xep_0045"].leave_muc, room, nick)

    def subjects(self, room):
        """The subjects `room` has had since this client joined, in order."""
        return [subj for r, subj in list(self._subjects) if r == room]

    def mark(self):
        self._drain()
        return len(self.seen)

    def _drain(self, timeout=0):
        try:
            while True:
                self.seen.append(self.messages.get(timeout=timeout) if timeout else self.messages.get_nowait())
                timeout = 0
        except queue.Empty:
            pass

    def wait(self, pred, timeout=15, what="message", since=None):
        i = since if since is not None else 0
        deadline = time.monotonic() + timeout
        while True:
            while i < len(self.seen):
                if pred(self.seen[i]):
                    return self.seen[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise XmppError("%s: no %s within %ss; seen %r" % (self.jid, what, timeout, self.seen[-8:]))
            self._drain(min(left, 0.2))

    @staticmethod
    def unroom(body):
        """An answer to a room line starts "[room@muc] " (mod_tally names the
        room): the body without it."""
        return re.sub(r"^\[[^\] ]+@[^\] ]+\] ", "", body or "")

    def wait_chat(self, regex, timeout=15, since=None, sender=None):
        """A chat message matching regex (an answer's "[room] " prefix aside)."""
        rx = re.compile(regex)
        return self.wait(lambda m: m[0] in ("chat", "normal") and rx.search(self.unroom(m[2]))
                         and (sender is None or m[1].split("/")[0] == sender), timeout,
                         "chat /%s/" % regex, since)

    def wait_room(self, room, regex, timeout=15, since=None):
        rx = re.compile(regex)
        return self.wait(lambda m: m[0] == "groupchat" and m[1].split("/")[0] == room and rx.search(m[2] or ""),
                         timeout, "groupchat /%s/ in %s" % (regex, room), since)

    def ask(self, to, body, regex, timeout=30, retry=r"starting up|busy, try again"):
        """Sends body to the shop until the answer does not match retry."""
        deadline = time.monotonic() + timeout
        while True:
            mark = self.mark()
            self.send_chat(to, body)
            m = self.wait_chat(r".", max(1, deadline - time.monotonic()), mark, sender=to)
            if retry and re.search(retry, m[2]) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            if not re.search(regex, m[2]):
                raise XmppError("%s: %r answered %r (wanted /%s/)" % (self.jid, body, m[2], regex))
            return m

    def _iq(self, to, payload, timeout=15):
        """Sends an iq set with payload (an ElementTree element); its reply."""
        async def go():
            iq = self.x.make_iq_set(ito=to)
            iq.append(payload)
            return await iq.send(timeout=timeout)
        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout + 1)

    def commands(self, to=DOMAIN):
        """The ad-hoc commands (node, name) the server offers this user."""
        async def go():
            return await self.x.plugin["xep_0030"].get_items(jid=to, node="http://jabber.org/protocol/commands")
        r = asyncio.run_coroutine_threadsafe(go(), self.loop).result(16)
        return [(item[1], item[2]) for item in r["disco_items"]["items"]]

    def adhoc(self, node, values, to=DOMAIN):
        """Runs ad-hoc command node: execute, then submit the form with values.
        Returns (form field names, the completed <command/> reply)."""
        import xml.etree.ElementTree as ET
        ns = "http://jabber.org/protocol/commands"
        xd = "jabber:x:data"
        first = self._iq(to, ET.Element("{%s}command" % ns, node=node, action="execute"))
        cmd = first.xml.find("{%s}command" % ns)
        form = cmd.find("{%s}x" % xd)
        names = [f.get("var") for f in form.findall("{%s}field" % xd)] if form is not None else []
        submit = ET.Element("{%s}command" % ns, node=node, action="complete", sessionid=cmd.get("sessionid"))
        x = ET.SubElement(submit, "{%s}x" % xd, type="submit")
        for k, v in values.items():
            f = ET.SubElement(x, "{%s}field" % xd, var=k)
            ET.SubElement(f, "{%s}value" % xd).text = v
        done = self._iq(to, submit)
        return names, done.xml.find("{%s}command" % ns)

    def close(self):
        try:
            self._call(self.x.disconnect)
            time.sleep(0.1)
            self.loop.call_soon_threadsafe(self.loop.stop)
        except Exception:
            pass
