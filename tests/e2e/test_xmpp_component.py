#!/usr/bin/python3
"""test_xmpp_component.py — tallyd's XEP-0114 component (tallyd/xmpp_*.c)
against a real, private ejabberd 23.01 (Debian's), with slixmpp clients.

ejabberd runs from a temp folder of its own (config, spool, logs), as user
ejabberd, on loopback only: its c2s and component ports are free loopback
ports, epmd and the Erlang distribution listen on 127.0.0.1 (ERL_EPMD_ADDRESS,
INET_DIST_INTERFACE) on a private epmd port, stopped at the end. The test
users register themselves in one pass (in-band registration, loopback only),
not one ejabberdctl call each. tallyd reaches ejabberd's component port
through a TCP proxy (tests/e2e/tcp_proxy.py) the test can cut.

1. Direct messages to shop.xmpp.test: an admin makes a creator, the creator
   lists an item, a buyer's first BUY asks for CONFIRM, CONFIRM buys; the
   receipt belongs to (xmpp, bare JID).
2. A non-anonymous room: `!buy` is answered privately; an event and a drop
   by the room's owner, LIVE NOW said in the room by the component's
   occupant; a private-only command (SHIP) refused there with the hint to
   message shop.xmpp.test; a tip's message held for the room's moderators
   (told privately), then said in the room; a highlight pinned as the
   room's subject and taken down.
3. A delayed stanza (XEP-0203) in the room is ignored.
4. Hostile stanzas: a 70 KB body and a 20-deep stanza are refused with an
   XMPP error reply (same id), a 600-byte body gets a plain refusal, and the
   shop answers the next line as before.
5. A semi-anonymous room where the component is not a moderator: it says
   why in the room and refuses commands there with a private message; once
   the owner makes it a room admin it joins again and takes them.
6. The link cut (proxy) and restored: the component reconnects with
   backoff, rejoins its rooms, and takes commands again; then ejabberd
   restarted: it reconnects and serves direct messages.
7. `tally check` passes; tallyd (the ASan build under make test) stops with 0.
Before all that, `tallyd --check` on component configs names what is wrong,
and a scripted component port misbehaves once per connection (a stream
error, malformed XML, a 300 KB tag, a DTD): each is logged, the link closed
and retried, and the next good stream served.

Own database e2e_xmpp_component_<pid>. Needs ejabberd and python3-slixmpp.
"""

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
import tallyd_env  # noqa: E402
import xmpp_env  # noqa: E402  (XmppClient)
from tallyd_env import TallydEnv  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402
from ejabberd_env import DOMAIN, EJABBERDCTL, MUC, SHOP, EjabberdEnv, register_all  # noqa: E402

RECEIPT = re.compile(r"receipt (\d+)")


def wait_log(td, regex, timeout=30, count=1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(regex, td.log())) >= count:
            return True
        time.sleep(0.1)
    raise RuntimeError("tallyd log: no %d x /%s/ within %ss:\n%s" % (count, regex, timeout, td.log()[-3000:]))


def send_raw(client, xml):
    client._call(client.x.send_raw, xml)


def scenario(tap, ej, td, db, clients, proxy):
    carol, bob, dave = clients["carol"], clients["bob"], clients["dave"]
    room, semi = "live@" + MUC, "semi@" + MUC
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "x" + tag

    def direct():
        carol.ask(SHOP, "TALLY ROLE %s creator" % carol.bare, r"is now a creator")
        carol.ask(SHOP, "ITEM ADD %s 1 Component tee" % sku, r"added")
        deadline = time.monotonic() + 30
        while "balance 0.00 " in bob.ask(SHOP, "WALLET", r"^Wallet ")[2]:
            if time.monotonic() > deadline:
                raise RuntimeError("no welcome grant")
            time.sleep(0.3)
        m = bob.ask(SHOP, "BUY %s" % sku, r"CONFIRM (\S+)")
        code = re.search(r"CONFIRM (\S+)", m[2]).group(1)
        m = bob.ask(SHOP, "CONFIRM %s" % code, r"receipt \d+")
        rid = RECEIPT.search(m[2]).group(1)
        who = db.scalar("SELECT n.name || ':' || i.name FROM transfers t JOIN identities i ON i.account_id = "
                        "t.account_id JOIN networks n ON n.id = i.network_id WHERE t.id = %s" % rid)
        tap.check("the purchase belongs to (xmpp, bob's bare JID)", who == "xmpp:" + bob.bare, who)
        return rid
    tap.run("direct messages to the component: role, item, consent, buy", direct)

    state = {}

    def in_room():
        seen = dave.mark()
        mark = bob.mark()
        bob.send_room(room, "!buy %s" % sku, msg_id="room-buy-1")
        m = bob.wait_chat(r"Bought 1x .*receipt \d+", 30, mark, sender=SHOP)
        tap.check("the answer to a room line names the room", m[2].startswith("[%s] " % room), m[2])
        state["rid"] = RECEIPT.search(m[2]).group(1)
        # The same stanza id again (a client's resend): the engine's first answer, nothing charged twice.
        mark = bob.mark()
        bob.send_room(room, "!buy %s" % sku, msg_id="room-buy-1")
        m2 = bob.wait_chat(r"receipt \d+", 30, mark, sender=SHOP)
        tap.check("a resent stanza id gets the same receipt", RECEIPT.search(m2[2]).group(1) == state["rid"], m2[2])
        drop = "d" + tag
        m0 = carol.mark()
        carol.send_room(room, "!event start 30 Component launch")
        carol.wait_chat(r"(?i)event", 30, m0, sender=SHOP)
        carol.send_room(room, "!drop create %s 3 1" % drop)
        carol.wait_chat(r"^Drop %s created\.$" % drop, 30, m0, sender=SHOP)
        live = dave.wait_room(room, r"^LIVE NOW: drop %s - 3 units at 1\.00 credits" % drop, 30, seen)
        tap.check("LIVE NOW is said in the room by the component's occupant", live[1] == room + "/tally", live[1])
        mark = bob.mark()
        bob.send_room(room, "!buy %s" % drop)
        bob.wait_chat(r"Bought 1x drop %s .*receipt \d+" % drop, 30, mark, sender=SHOP)
        mark = bob.mark()
        bob.send_room(room, "!ship %s 1 Main Street" % state["rid"])
        hint = bob.wait_chat(r"privately", 30, mark, sender=SHOP)
        tap.check("a private-only command in the room is refused with the hint to message the component",
                  ("message %s directly" % SHOP) in hint[2], hint[2])
        mark = bob.mark()
        bob.send_room(room, "!drop create mine 1 1")
        bob.wait_chat(r"no permission", 30, mark, sender=SHOP)
        # A quiz here (issue 14): the component cannot hide room lines, so tallyd
        # refuses a room !answer and a room !quiz start (room_lines.c); the host
        # starts it privately naming the room, the room hears the question.
        mark = bob.mark()
        bob.send_room(room, "!answer Paris")
        m = bob.wait_chat(r"answer privately", 30, mark, sender=SHOP)
        tap.check("a room !answer is refused by tallyd: answer privately", m[2].startswith("[%s] " % room), m[2])
        mark = carol.mark()
        carol.send_room(room, "!quiz start 30 Capital of France? | Paris")
        carol.wait_chat(r"start the quiz privately", 30, mark, sender=SHOP)
        seen = dave.mark()
        carol.ask(SHOP, "QUIZ START %s 8 Capital of France? | Paris min-players=1" % room, r"^Quiz started for 8 s")
        q = dave.wait_room(room, r"^QUIZ \(8 s\): Capital of France\? - answer privately", 30, seen)
        tap.check("QUIZ START <room> privately: the room hears the question from the component",
                  q[1] == room + "/tally", q[1])
        bob.ask(SHOP, "ANSWER paris", r"^Right!")
        # A tip's message is held for the room's moderators (carol owns the room, so
        # moderates it): told privately, then said in the room; dave never sees it early.
        seen_d, mark_c, mark = dave.mark(), carol.mark(), bob.mark()
        bob.send_room(room, "!tip %s 1 great set" % carol.bare)
        bob.wait_chat(r"^Tipped 1\.00 credits to .*receipt \d+", 30, mark, sender=SHOP)
        carol.wait(lambda m: m[0] == "chat" and m[1] == SHOP and m[2].startswith("[%s, moderators] Tip " % room)
                   and m[2].endswith("unless a moderator says HIDE %s" % re.search(r"Tip (\d+)", m[2]).group(1))
                   if m[2] and "great set" in m[2] else False, 30, "the held tip for the moderators", mark_c)
        # (The room saw bob's own "!tip ... great set" line already: the component cannot
        # hold a line back. What it holds is tally's repeat of the message.)
        shown = dave.wait(lambda m: m[0] == "groupchat" and m[1] == room + "/tally" and "great set" in (m[2] or ""),
                          30, "tally's line with the tip's message", seen_d)
        dave.mark()
        leaked = [m for m in dave.seen[seen_d:] if m[0] == "chat" and ", moderators]" in (m[2] or "")]
        tap.check("a participant is not told what is for the moderators", not leaked, leaked)
        tap.check("tally says the tip's message in the room only when the hold ends",
                  re.search(r"'s message with the tip of 1\.00 credits to .*: great set$", shown[2]), shown[2])
        return True
    tap.run("a non-anonymous room: !buy, a resend, LIVE NOW from the component, SHIP refused with the hint",
            in_room)

    def pinned():
        m0 = carol.mark()
        carol.send_room(room, "!event tier gold 1 3")
        carol.wait_chat(r"^Highlight tier priced\.$", 30, m0, sender=SHOP)
        mark = bob.mark()
        bob.send_room(room, "!highlight gold Look up here")
        bob.wait_chat(r"^Bought 1x highlight gold", 30, mark, sender=SHOP)
        want = "HIGHLIGHT from Bob: Look up here"  # by nick in the room, never the JID
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and want not in dave.subjects(room):
            time.sleep(0.2)
        tap.check("the highlight is the room's subject, set by the component", want in dave.subjects(room),
                  dave.subjects(room))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and dave.subjects(room)[-1:] != [""]:
            time.sleep(0.2)
        tap.check("then the room's own subject (none) comes back", dave.subjects(room)[-1:] == [""],
                  dave.subjects(room))
        dave.mark()
        jids = [m for m in dave.seen if m[0] == "groupchat" and m[1] == room + "/tally" and "@" + DOMAIN in (m[2] or "")]
        return tap.check("tally's lines in the room name people by nick, never by JID", not jids, jids)
    tap.run("a highlight pinned as the room's subject (TOPIC), then taken down", pinned)

    def delayed():
        mark = bob.mark()
        send_raw(bob, "<message type='groupchat' to='%s' id='delayed-1'><body>!wallet</body>"
                      "<delay xmlns='urn:xmpp:delay' from='%s' stamp='2026-01-01T00:00:00Z'/></message>"
                      % (room, room))
        time.sleep(0.3)
        bob.send_room(room, "!receipts", msg_id="after-delayed")
        bob.wait_chat(r"(?i)receipt", 30, mark, sender=SHOP)
        time.sleep(1.0)
        bob.mark()
        wallets = [x for x in bob.seen[mark:] if x[2] and "Wallet" in x[2]]
        tap.check("the delayed !wallet got no answer (the next line did)", not wallets, wallets)
        return True
    tap.run("a delayed stanza (XEP-0203) in the room is ignored", delayed)

    def hostile():
        mark = bob.mark()
        send_raw(bob, "<message type='chat' to='%s' id='huge-1'><body>BUY %s</body></message>"
                      % (SHOP, "y" * 70000))
        bob.wait(lambda m: m[0] == "error" and m[3] == "huge-1", 30, "an error reply to huge-1", mark)
        deep = "".join("<n%d xmlns='urn:x:deep'>" % i for i in range(20)) + \
            "".join("</n%d>" % i for i in reversed(range(20)))
        send_raw(bob, "<message type='chat' to='%s' id='deep-1'><body>WALLET</body>%s</message>" % (SHOP, deep))
        bob.wait(lambda m: m[0] == "error" and m[3] == "deep-1", 30, "an error reply to deep-1", mark)
        bob.ask(SHOP, "BUY " + "z" * 600, r"at most 512 bytes")
        bob.ask(SHOP, "WALLET", r"^Wallet ")
        wait_log(td, r"refused a message from bob@%s/\S+ \(id \"huge-1\"\): stanza too big" % re.escape(DOMAIN))
        wait_log(td, r"refused a message .*deep-1.*nested too deep")
        return True
    tap.run("a 70 KB and a 20-deep stanza get an XMPP error reply; a long body a refusal; the shop goes on",
            hostile)

    def semi_anonymous():
        wait_log(td, r"room %s hides real JIDs" % re.escape(semi))
        mark = bob.mark()
        bob.join(semi, "Bobby")
        bob.send_room(semi, "!wallet")
        m = bob.wait(lambda x: x[0] == "chat" and x[1] == semi + "/tally", 30, "a private message in the room", mark)
        tap.check("in a semi-anonymous room the component refuses and says why",
                  "cannot see who you are" in m[2] and SHOP in m[2], m[2])
        # The owner makes the component a room admin (DAEMON.md): it joins again as a
        # moderator, sees real JIDs, and takes commands there.
        asyncio.run_coroutine_threadsafe(carol.x.plugin["xep_0045"].set_affiliation(
            semi, "admin", jid=SHOP), carol.loop).result(20)
        wait_log(td, r"now a moderator of %s" % re.escape(semi))
        wait_log(td, r"joined %s as moderator" % re.escape(semi))
        mark = bob.mark()
        bob.send_room(semi, "!wallet")
        m = bob.wait_chat(r"^Wallet ", 30, mark, sender=SHOP)
        tap.check("made a room admin, the component takes commands in the semi-anonymous room",
                  m[2].startswith("[%s] " % semi), m[2])
        return True
    tap.run("a semi-anonymous room: refused with the reason until the owner makes the component an admin",
            semi_anonymous)

    def reconnect():
        t0 = time.monotonic()
        proxy.cut()
        wait_log(td, r"xmpp: link to \S+ lost")
        time.sleep(1.0)
        proxy.restore()
        wait_log(td, r"component %s is live \(link 2\)" % re.escape(SHOP), 60)
        wait_log(td, r"joined %s " % re.escape(room), 30, count=2)
        took = time.monotonic() - t0
        mark = bob.mark()
        bob.send_room(room, "!wallet", msg_id="after-cut")
        bob.wait_chat(r"^Wallet ", 30, mark, sender=SHOP)
        bob.ask(SHOP, "RECEIPTS", r"(?i)receipt")
        print("# reconnected and rejoined in %.1f s" % took)
        return True
    tap.run("the link cut: the component reconnects, rejoins its rooms and takes commands", reconnect)

    def restart():
        t0 = time.monotonic()
        for c in list(clients.values()):
            c.close()
        clients.clear()
        ej.stop()
        wait_log(td, r"xmpp: link to \S+ (lost|failed)", 30, count=2)
        ej.start()
        wait_log(td, r"component %s is live \(link 3\)" % re.escape(SHOP), 60)
        erin = clients["bob"] = xmpp_env.XmppClient("bob@" + DOMAIN, "pw-bob", ej.c2s)
        erin.ask(SHOP, "WALLET", r"^Wallet ")
        # The rooms went with the restart (not persistent): the joins are refused and logged.
        wait_log(td, r"room live@%s refused the join" % re.escape(MUC), 30)
        print("# ejabberd restarted and the component back in %.1f s" % (time.monotonic() - t0))
        return True
    tap.run("ejabberd restarted: the component reconnects with backoff and serves direct messages", restart)

    def sighup():
        carol = clients["carol"] = xmpp_env.XmppClient("carol@" + DOMAIN, "pw-carol", ej.c2s)
        m = carol.ask(SHOP, "TALLY GRANT %s 5" % clients["bob"].bare, r"no permission")
        tap.check("without xmpp_grant_jids an admin cannot grant, and is told where the privilege comes from",
                  m[2].endswith("(listed in xmpp_grant_jids)"), m[2])
        with open(td.config) as f:
            conf = f.read()

        def hup(text, logged, count):
            with open(td.config, "w") as f:
                f.write(text)
            td.proc.send_signal(signal.SIGHUP)
            wait_log(td, logged, 30, count)
        # A list key: applied at once, the link stays.
        hup(conf + "xmpp_grant_jids = carol@%s\n" % DOMAIN, r"SIGHUP: xmpp: reloaded the component's keys "
            r"\(2 rooms, 1 user domains, 1 granters\)\n", 1)
        m = carol.ask(SHOP, "TALLY GRANT %s 5" % clients["bob"].bare, r"Granted|no permission")
        tap.check("after SIGHUP the JID in xmpp_grant_jids grants", m[2].startswith("Granted 5.00 credits"), m[2])
        tap.check("a list key does not relink", "(link 4)" not in td.log(), td.log()[-500:])
        # The secret file: a wrong one relinks and fails the handshake, the right one is live again.
        spath = re.search(r"xmpp_component_secret = (\S+)", conf).group(1)
        with open(spath) as f:
            good = f.read()
        with open(spath, "w") as f:
            f.write(os.urandom(16).hex() + "\n")
        hup(conf + "xmpp_grant_jids = carol@%s\n" % DOMAIN, r"relinking: the secret changed", 1)
        wait_log(td, r"link to \S+ failed: stream error from the server: not-authorized", 30)
        with open(spath, "w") as f:
            f.write(good)
        hup(conf + "xmpp_grant_jids = carol@%s\n" % DOMAIN, r"relinking: the secret changed", 2)
        wait_log(td, r"component %s is live \(link 4\)" % re.escape(SHOP), 30)
        clients["bob"].ask(SHOP, "WALLET", r"^Wallet ")
        return True
    tap.run("SIGHUP reloads the component's keys: xmpp_grant_jids at once, a new secret by relinking", sighup)

    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes", rc == 0, out[-2000:])


def semi_configure(client, room):
    """Makes room semi-anonymous (real JIDs for moderators only), as its owner."""
    async def go():
        muc = client.x.plugin["xep_0045"]
        form = await muc.get_room_config(room)
        fields = form.get_fields()
        if "muc#roomconfig_whois" not in fields:
            raise RuntimeError("no whois field in %s's config: %r" % (room, list(fields)))
        new = client.x.plugin["xep_0004"].make_form(ftype="submit")
        new.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
        new.add_field(var="muc#roomconfig_whois", value="moderators")
        await muc.set_room_config(room, new)
    asyncio.run_coroutine_threadsafe(go(), client.loop).result(20)


def config_checks(tap):
    """tallyd --check on component configs: what is missing is named."""
    d = tempfile.mkdtemp(prefix="tally-comp-conf-")
    try:
        secret = os.path.join(d, "s")
        with open(secret, "w") as f:
            f.write("0123456789abcdef0123\n")
        base = ["listen_unix = %s/sock" % d, "dsn = host=/nonexistent", "state_dir = %s" % d]

        def check(lines):
            conf = os.path.join(d, "tallyd.conf")
            with open(conf, "w") as f:
                f.write("\n".join(base + lines) + "\n")
            r = subprocess.run([os.path.join(tallyd_env.BUILD, "tallyd"), "--config", conf, "--check"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            return r.returncode, r.stdout
        rc, out = check(["xmpp_component = 127.0.0.1:5347", "xmpp_component_secret = " + secret])
        tap.check("a component without its domain is refused, naming the key",
                  rc == 1 and "xmpp_component_domain" in out, out)
        rc, out = check(["xmpp_component = 127.0.0.1:5347", "xmpp_component_domain = shop.x",
                         "xmpp_component_secret = " + secret, "secret.xmpp = " + secret])
        tap.check("a frame secret for the component's network is refused", rc == 1 and "alone" in out, out)
        rc, out = check(["xmpp_component = 127.0.0.1:5347", "xmpp_component_domain = shop.x",
                         "xmpp_component_secret = " + secret])
        tap.check("a tallyd serving only the component needs no secret.NETWORK", rc == 0 and "ok" in out, out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


class FakeServer:
    """A component port that misbehaves on purpose, one way per connection,
    then behaves: what ejabberd would never send (tallyd/xmpp_stream.c's hard bounds)."""
    SCRIPT = ["not-authorized", "malformed", "huge-tag", "dtd", "weird", "good"]

    def __init__(self, secret):
        import hashlib
        self.hashlib = hashlib
        self.secret = secret
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.seen = {}  # step -> what tallyd sent on that connection
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for n, step in enumerate(self.SCRIPT):
            try:
                c, _ = self.lsock.accept()
                c.settimeout(15)
                self.seen[step] = self.one(c, step, "sid%d" % n)
                c.close()
            except Exception as e:
                self.errors.append("%s: %s" % (step, e))
                return

    def weird(self, c, got):
        """Sends weird_stanzas while reading whatever tallyd answers (it must
        never block on us), then one good line, which must be answered."""
        done = threading.Event()
        box = [got]

        def reader():
            while not done.is_set():
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                box[0] += chunk
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        c.sendall(weird_stanzas(1500))
        c.sendall(b"<message from='dan@xmpp.test/r' to='shop.xmpp.test' type='chat' id='after-weird'>"
                  b"<body>RECEIPTS</body></message>")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not re.search(rb"<body>(Your recent receipts|No receipts|starting up)",
                                                              box[0][-200000:]):
            time.sleep(0.05)
        done.set()
        c.shutdown(socket.SHUT_RDWR)
        t.join(5)
        return box[0]

    def read_until(self, c, got, pattern):
        while not re.search(pattern, got):
            try:
                chunk = c.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break  # tallyd closed first: what it sent before is in got
            if not chunk:
                break
            got += chunk
        return got

    def one(self, c, step, sid):
        got = self.read_until(c, b"", rb"<stream:stream[^>]*>")
        header = ("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                  "xmlns:stream='http://etherx.jabber.org/streams' from='%s' id='%s'>" % (SHOP, sid)).encode()
        if step == "dtd":
            c.sendall(b"<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY a 'aaaaaaaa'>]>" + header[21:])
            return self.read_until(c, got, rb"$^")  # until tallyd closes
        c.sendall(header)
        got = self.read_until(c, got, rb"</handshake>")
        want = self.hashlib.sha1((sid + self.secret).encode()).hexdigest().encode()
        if b"<handshake>" + want + b"</handshake>" not in got:
            raise RuntimeError("wrong handshake: %r" % got[-200:])
        if step == "not-authorized":
            c.sendall(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                      b"</stream:error></stream:stream>")
            return self.read_until(c, got, rb"$^")
        c.sendall(b"<handshake/>")
        if step == "weird":
            return self.weird(c, got)
        if step == "malformed":
            c.sendall(b"<message from='dan@xmpp.test/r' to='shop.xmpp.test' type='chat'><body>x</bod></message>")
        elif step == "huge-tag":
            try:
                c.sendall(b"<message from='dan@xmpp.test/r' to='shop.xmpp.test' x='" + b"a" * 300000)
            except (ConnectionResetError, BrokenPipeError):
                pass  # tallyd may close before it has taken it all: that is the point
        else:
            c.sendall(b"<message from='dan@xmpp.test/r' to='shop.xmpp.test' type='chat' id='w1'>"
                      b"<body>WALLET</body></message>")
            return self.read_until(c, got, rb"to='dan@xmpp.test/r'[^>]*><body>(Wallet|starting up)[^<]*</body>")
        return self.read_until(c, got, rb"$^")


def weird_stanzas(n, seed=12):
    """n well-formed but odd stanzas (fixed seed): every kind and type, rooms'
    presences with and without JIDs, delays, subjects, long ids and bodies,
    nesting up to past the depth limit, entities and character references."""
    import random
    rnd = random.Random(seed)
    room = "r@conf.xmpp.test"
    froms = ["dan@xmpp.test/r", "eve@xmpp.test/x", "mallory@evil.test/m", "xmpp.test", "",
             room + "/Dan", room + "/tally", room, room + "/" + "n" * 300, "a" * 3000 + "@xmpp.test/r"]
    bodies = ["WALLET", "!wallet", "!buy nothing", "BUY x 2", "/help", "", "two\nlines", "z" * 600,
              "caf\u00e9 &amp; &lt;tag&gt; &#x1F600; &#65;", "!", "! spaced", "TIP dan@xmpp.test 1 hi"]

    def esc(v):
        return v.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")

    def nest(depth):
        return "".join("<e%d xmlns='urn:x:n'>" % i for i in range(depth)) + "t" + \
            "".join("</e%d>" % i for i in reversed(range(depth)))
    out = []
    for i in range(n):
        kind = rnd.choice(["message", "message", "presence", "iq"])
        attrs = {"from": rnd.choice(froms), "to": rnd.choice([SHOP, SHOP + "/x", "other.test"]),
                 "type": rnd.choice(["chat", "groupchat", "normal", "error", "headline", "bogus", "get", "set",
                                     "result", "unavailable", None]),
                 "id": rnd.choice(["w%d" % i, "", "i" * 300, None])}
        head = "<%s%s>" % (kind, "".join(" %s='%s'" % (k, esc(v)) for k, v in attrs.items() if v is not None))
        inner = ""
        if kind == "message":
            if rnd.random() < 0.8:
                inner += "<body>%s</body>" % rnd.choice(bodies).replace("&", "&amp;", 0)
            if rnd.random() < 0.2:
                inner += "<delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/>"
            if rnd.random() < 0.2:
                inner += "<subject>%s</subject>" % rnd.choice(["", "topic", "x" * 2000])
        elif kind == "presence":
            items = "<item%s%s%s/>" % (
                rnd.choice(["", " jid='dan@xmpp.test/r'", " jid='eve@xmpp.test/x'", " jid='%s'" % ("b" * 2100)]),
                rnd.choice(["", " affiliation='owner'", " affiliation='none'"]),
                rnd.choice(["", " role='moderator'", " role='participant'"]))
            codes = "".join("<status code='%s'/>" % c for c in rnd.sample(["100", "110", "172", "201"], rnd.randint(0, 2)))
            inner += "<x xmlns='http://jabber.org/protocol/muc#user'>%s%s</x>" % (items, codes)
        else:
            inner += rnd.choice(["<ping xmlns='urn:xmpp:ping'/>", "<query xmlns='jabber:iq:version'/>", ""])
        if rnd.random() < 0.15:
            inner += nest(rnd.randint(1, 24))
        out.append(head + inner + "</%s>" % kind)
    return "".join(out).encode()


def fake_server_checks(tap, secret_path, secret):
    """tallyd against FakeServer: each misbehaviour logged, the link closed and
    retried, the engine unharmed; then a good stream is served."""
    fake = FakeServer(secret)
    t0 = time.monotonic()
    try:
        with ic.TestDb("xmpp_component_fake") as db, \
                TallydEnv(db.dsn, secrets={}, extra={"xmpp_component": "127.0.0.1:%d" % fake.port,
                                                      "xmpp_component_domain": SHOP,
                                                      "xmpp_component_secret": secret_path,
                                                      "xmpp_rooms": "r@conf.xmpp.test",
                                                      "rate_account": "0", "rate_channel": "0"}) as td:
            fake.thread.join(40)
            tap.check("the misbehaving server saw every connection", not fake.errors and len(fake.seen) == 6,
                      (fake.errors, list(fake.seen)))
            log = td.log()
            for what, rx in (("a stream error", r"stream error from the server: not-authorized"),
                             ("malformed XML", r"XML error at byte \d+: mismatched tag"),
                             ("one huge tag", r"more than TD_XMPP_BUFFERED_BYTES_MAX bytes without a complete tag"),
                             ("a DTD", r"a DTD in the stream")):
                tap.check("%s: logged, link closed and retried" % what, re.search(rx, log), log[-2500:])
            tap.check("a malformed stanza gets a not-well-formed stream error",
                      b"<not-well-formed" in fake.seen.get("malformed", b""), fake.seen.get("malformed", b"")[-300:])
            weird = fake.seen.get("weird", b"")
            tap.check("1,500 odd stanzas on one link: the link stays up and the next line is answered",
                      re.search(rb"<body>(Your recent receipts|No receipts|starting up)", weird)
                      and b"stream:error" not in weird, weird[-300:])
            tap.check("the odd stanzas got error replies where due (a JID, id or depth past a limit)",
                      b"type='error'" in weird, weird[-300:])
            tap.check("a good stream is served after all that",
                      re.search(rb"<body>(Wallet|starting up)", fake.seen.get("good", b"")),
                      fake.seen.get("good", b"")[-300:])
            tap.check("tallyd stops cleanly after the misbehaving server (exit 0)", td.stop() == 0, td.log()[-1500:])
    finally:
        fake.lsock.close()
    print("# the misbehaving-server checks took %.1f s" % (time.monotonic() - t0))


def main():
    tap = ic.Tap()
    if not os.path.exists(EJABBERDCTL):
        tap.check("ejabberd is installed (make deps)", False, EJABBERDCTL + " missing")
        tap.exit()
    # The component is new code: run the sanitizer build's tallyd when there is one
    # (make test builds it), so a leak or overflow fails its clean stop below.
    san = os.environ.get("TALLY_SAN_BUILD")
    if san and os.access(os.path.join(san, "tallyd"), os.X_OK):
        tallyd_env.BUILD = san
    config_checks(tap)
    fdir = tempfile.mkdtemp(prefix="tally-comp-fake-")
    fake_secret = os.urandom(16).hex()
    with open(os.path.join(fdir, "secret"), "w") as f:
        f.write(fake_secret + "\n")
    try:
        fake_server_checks(tap, os.path.join(fdir, "secret"), fake_secret)
    except Exception as e:
        tap.check("the misbehaving-server checks ran", False, "%s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(fdir, ignore_errors=True)
    t0 = time.monotonic()
    secret = os.urandom(16).hex()
    users = {"carol": "pw-carol", "bob": "pw-bob", "dave": "pw-dave"}
    clients = {}
    proxy = None
    try:
        with ic.TestDb("xmpp_component") as db, EjabberdEnv(secret) as ej:
            try:
                register_all(ej.c2s, users)
                for u, pw in users.items():
                    c = clients[u] = xmpp_env.XmppClient("%s@%s" % (u, DOMAIN), pw, ej.c2s)
                    # Error replies come as message_error in slixmpp: queued as type "error".
                    c._call(c.x.add_event_handler, "message_error", lambda m, c=c: c.messages.put(
                        ("error", str(m["from"]), m["error"]["text"], m["id"])))
                # The rooms exist before tallyd joins them (only local users may create rooms).
                clients["carol"].join("live@" + MUC, "Carol")
                clients["bob"].join("live@" + MUC, "Bob")
                clients["dave"].join("live@" + MUC, "Dave")
                clients["carol"].join("semi@" + MUC, "Carol")
                semi_configure(clients["carol"], "semi@" + MUC)
                proxy = TcpProxy("127.0.0.1", ej.comp)
                sdir = tempfile.mkdtemp(prefix="tally-comp-secret-")
                spath = os.path.join(sdir, "component.secret")
                with open(spath, "w") as f:
                    f.write(secret + "\n")
                extra = {"network": "xmpp", "admins": "carol@" + DOMAIN, "welcome_grant": "1000", "tip_message_hold": "2", "highlight_topic": "1",
                         "xmpp_component": "127.0.0.1:%d" % proxy.port, "xmpp_component_domain": SHOP,
                         "xmpp_component_secret": spath, "xmpp_network": "xmpp",
                         "xmpp_rooms": "live@%s,semi@%s" % (MUC, MUC)}
                with TallydEnv(db.dsn, secrets={}, extra=extra) as td:
                    try:
                        wait_log(td, r"component %s is live" % re.escape(SHOP))
                        wait_log(td, r"joined live@")
                        print("# ejabberd, users, rooms and tallyd ready in %.1f s" % (time.monotonic() - t0))
                        scenario(tap, ej, td, db, clients, proxy)
                    except Exception:
                        print("# tallyd log tail:\n# " + "\n# ".join(td.log()[-4000:].splitlines()))
                        raise
                    rc = td.stop()
                    tap.check("tallyd stops cleanly (exit 0)", rc == 0, rc)
                shutil.rmtree(sdir, ignore_errors=True)
            except Exception:
                print("# ejabberd log tail:\n# " + "\n# ".join(ej.log()[-3000:].splitlines()))
                raise
            finally:
                for c in clients.values():
                    c.close()
                if proxy:
                    proxy.close()
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    print("# test_xmpp_component took %.1f s" % (time.monotonic() - t0))
    tap.exit()


if __name__ == "__main__":
    main()
