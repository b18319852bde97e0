"""driver_component.py — the conformance driver for tallyd's XEP-0114
component (tallyd/xmpp_*.c) on a real, private ejabberd 23.01
(tests/e2e/ejabberd_env.py), one start for the whole run, slixmpp clients.

- an actor is a client on xmpp.test; "user" and "host" register their
  account (in-band, one pass per scenario) under the name the runner gives;
  an "operator" is one of op1..op4@xmpp.test, listed in tallyd's `admins`
  and `xmpp_grant_jids` at start, mapped to the runner's name; a "host" is
  made the room's owner (affiliation) by the room's keeper before it joins;
- "anon" is not applicable: every XMPP user is logged in to their server,
  and the component refuses JIDs outside xmpp_domains itself (an XMPP
  `forbidden` error) before the engine sees a command, so the engine's
  "not logged in" is never what such a user gets (DAEMON.md);
- rooms: the component joins only the rooms of `xmpp_rooms`, at each link,
  and only local users may create rooms; so a pool of rooms
  (conf01@conference.xmpp.test...) is made at start by a keeper, which hands
  each room to its listener and leaves, and tallyd starts after; each
  scenario room takes the next unused room of the pool;
- the room's listener, keeper@keep.test (a second host, outside
  xmpp_domains: the component does not count it as present), owns every
  room, says nothing, and is what "R hears" reads; what the component tells
  it privately (it is a moderator, as owner) is not an actor's;
- "X says `T`" is a chat message T to shop.xmpp.test, "in R" a groupchat
  "!T" in R;
- "told" is a chat message from shop.xmpp.test: "[room] " names the room of
  the line it answers, "[room, moderators] " is what only R's moderators get
  (kind "moderators"); an XMPP error from the component is "told" too (text
  "error: ..."), so it is never lost;
- the component cannot intercept room lines (its caps say so): the room
  shows a member's "!T" before tally answers, so intercepts_room_lines is
  False and the runner expects that line (driver.py);
- names: the engine knows people by bare JID; the driver writes the
  runner's names as JIDs in what actors say and JIDs and room JIDs back as
  the runner's names in what it observes (room lines name occupants by
  nick, which is their account name here);
- a hint is the component's phrase after the engine's text (td_xmpp_effect),
  taken off and named.

XMPP shows no reply codes: an expectation's code is checked through its
text. Needs ejabberd, python3-slixmpp, tallyd ($TALLY_SAN_BUILD's when
built, so its clean stop checks leaks) and $TALLY_TEST_DSN."""

import asyncio
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import ircclient as ic  # noqa: E402  (TestDb)
import scenarios as scenario_data  # noqa: E402
import tallyd_env  # noqa: E402
import xmpp_env  # noqa: E402  (XmppClient)
from driver import TIP_HOLD_S, Base, Obs, unhint  # noqa: E402
from ejabberd_env import DOMAIN, EJABBERDCTL, MUC, SHOP, EjabberdEnv, register_all  # noqa: E402

KEEP_HOST = "keep.test"  # the listener's domain: not served, so never counted present
KEEPER = "keeper"        # on DOMAIN: creates the rooms (only local users may), then leaves
LISTENER = "listener"    # on KEEP_HOST: owns the rooms, hears them
OPERATORS = ["op%d" % i for i in range(1, 5)]
PREFIX = re.compile(r"^\[([^\],]+)(, moderators)?\] ")
HINT_PHRASES = {  # td_xmpp_effect's, with xmpp_component_domain = shop.xmpp.test
    "SEND_PRIVATELY": " (message %s directly: this room shows every line)" % SHOP,
    "HOST_ROLE": " (the room's owners and admins)",
    "ADMIN_ROLE": " (tally's admins: the admins key)",
    "GRANT_PRIVILEGE": " (listed in xmpp_grant_jids)",
    "ALREADY_SAID": " (a line already in the room cannot be taken back)",
}


def rooms_needed():
    """One pool room per scenario room (every room is fresh per scenario)."""
    return sum(len(s.get("rooms", [])) for s in scenario_data.SCENARIOS + scenario_data.NEGATIVE)


class Driver(Base):
    name = "component"
    deadline_s = 20.0
    quiet_s = 1.5
    intercepts_room_lines = False
    unsupported_kinds = {
        "anon": "an XMPP user is always logged in to their server; the component refuses JIDs outside "
                "xmpp_domains itself (an XMPP forbidden error), so no command reaches the engine without an "
                "account and there is no 'not logged in' to show",
    }

    def start(self):
        self.ej = self.td = self.db = self.listener = None
        self.start_logs = []
        self.sdir = tempfile.mkdtemp(prefix="tally-conf-comp-")
        try:
            self._start()
        except Exception:
            # The runner does not call stop() when start fails: stop here what
            # was started (ejabberd, epmd, tallyd), keeping the logs to print.
            self.start_logs = self.failure_logs()
            try:
                self.stop()
            except Exception:
                pass
            self.ej = self.td = None
            raise

    def _start(self):
        if not os.path.exists(EJABBERDCTL):
            raise RuntimeError("%s missing (make deps)" % EJABBERDCTL)  # fails, never passes
        san = os.environ.get("TALLY_SAN_BUILD")
        if san and os.access(os.path.join(san, "tallyd"), os.X_OK):
            tallyd_env.BUILD = san
        self.db = ic.TestDb("conformance_component").__enter__()
        secret = os.urandom(16).hex()
        self.ej = EjabberdEnv(secret, extra_hosts=[KEEP_HOST], persistent_rooms=True).__enter__()
        register_all(self.ej.c2s, dict([(KEEPER, "pw-keeper")] + [(u, "pw-" + u) for u in OPERATORS]))
        register_all(self.ej.c2s, {LISTENER: "pw-listener"}, domain=KEEP_HOST)
        self.pool = ["conf%02d@%s" % (i + 1, MUC) for i in range(rooms_needed())]
        if len(self.pool) > 32:  # TD_XMPP_ROOMS_MAX
            raise RuntimeError("the scenarios need %d rooms; the component joins at most 32" % len(self.pool))
        # The rooms exist before tallyd joins them: the keeper makes each one,
        # the listener comes in, is made its owner, and the keeper leaves.
        keeper = xmpp_env.XmppClient("%s@%s" % (KEEPER, DOMAIN), "pw-keeper", self.ej.c2s)
        self.listener = self._client("%s@%s" % (LISTENER, KEEP_HOST), "pw-listener")
        try:
            for room in self.pool:
                keeper.join(room, KEEPER)
                self.listener.join(room, LISTENER)
                self._affiliate(keeper, room, self.listener.bare, "owner")
            for room in self.pool:
                keeper.leave(room, KEEPER)
        finally:
            keeper.close()
        spath = os.path.join(self.sdir, "component.secret")
        with open(spath, "w") as f:
            f.write(secret + "\n")
        ops = ",".join("%s@%s" % (u, DOMAIN) for u in OPERATORS)
        extra = {"network": "xmpp", "admins": ops, "xmpp_grant_jids": ops,
                 "rate_account": "0", "rate_channel": "0", "welcome_grant": "0",
                 "tip_message_hold": str(TIP_HOLD_S),
                 "xmpp_component": "127.0.0.1:%d" % self.ej.comp, "xmpp_component_domain": SHOP,
                 "xmpp_component_secret": spath, "xmpp_network": "xmpp", "xmpp_rooms": ",".join(self.pool)}
        self.td = tallyd_env.TallydEnv(self.db.dsn, secrets={}, extra=extra).__enter__()
        deadline = time.monotonic() + 60
        while len(re.findall(r"xmpp: joined conf\d+@", self.td.log())) < len(self.pool):
            if time.monotonic() > deadline:
                raise RuntimeError("the component did not join its %d rooms" % len(self.pool))
            time.sleep(0.1)
        self.free_rooms = list(self.pool)
        self.clients = {}

    def stop(self):
        try:
            if self.listener:
                self.listener.close()
            if self.td:
                rc = self.td.stop()
                if rc != 0:  # the ASan build's leak check and a clean stop
                    raise RuntimeError("tallyd exited %r:\n%s" % (rc, self.td.log()[-3000:]))
        finally:
            if self.td:
                self.td.__exit__(None, None, None)
            if self.ej:
                self.ej.__exit__(None, None, None)
            if self.db:
                self.db.__exit__(None, None, None)
            shutil.rmtree(self.sdir, ignore_errors=True)

    def failure_logs(self):
        if not self.td:
            return self.start_logs
        # Presence lines come by the dozen and say little about a lost line:
        # the rest of what tallyd said (effects, stanzas, errors) first.
        lines = self.td.log().splitlines()
        mine = [ln for ln in lines if " presence: " not in ln]
        return ["# tallyd: %s" % ln[:300] for ln in mine[-30:]]

    # ---- helpers -----------------------------------------------------------
    def _client(self, jid, pw):
        c = xmpp_env.XmppClient(jid, pw, self.ej.c2s)
        # Error replies come as message_error in slixmpp: kept as type "error".
        c._call(c.x.add_event_handler, "message_error", lambda m, c=c: c.messages.put(
            ("error", str(m["from"]), "error: %s %s" % (m["error"]["condition"], m["error"]["text"]), m["id"])))
        return c

    def _affiliate(self, owner, room, jid, affiliation):
        asyncio.run_coroutine_threadsafe(owner.x.plugin["xep_0045"].set_affiliation(
            room, affiliation, jid=jid), owner.loop).result(20)

    def _room_jid(self, room):
        return self.room_jid[room]

    def _out(self, text):
        """The runner's names as the engine knows them (bare JIDs), rooms
        too (a command that names a room: QUIZ START <room> ...)."""
        for name, jid in self.jid_of.items():
            text = re.sub(r"(?<![\w@.])%s(?![\w@])" % re.escape(name), jid, text)
        for room in self.rooms:
            text = re.sub(r"(?<![\w@.])%s(?![\w@])" % re.escape(self.rooms[room]), self.room_jid[room], text)
        return text

    def _in(self, text):
        """JIDs and room JIDs back as the runner's names."""
        for name, jid in self.jid_of.items():
            text = text.replace(jid, name)
        for room, jid in self.room_jid.items():
            text = text.replace(jid, self.rooms[room])
        return text

    # ---- actors ------------------------------------------------------------
    def begin(self, actors, rooms):
        self.actors, self.rooms = actors, rooms
        self.room_jid = {}
        for r in rooms:
            if not self.free_rooms:
                raise RuntimeError("the room pool is used up")
            self.room_jid[r] = self.free_rooms.pop(0)
        self.jid_of, self.clients, self.cursor = {}, {}, {}
        ops = list(OPERATORS)
        users, login = {}, {}
        for name, (kind, account) in actors.items():
            user = ops.pop(0) if kind == "operator" else account
            if kind != "operator":
                users[user] = "pw-" + user
            login[name] = user
            self.jid_of[account] = "%s@%s" % (user, DOMAIN)
        if users:
            register_all(self.ej.c2s, users)
        for name, user in login.items():
            c = self._client("%s@%s" % (user, DOMAIN), "pw-" + user)
            self.clients[name] = c
            self.cursor[c] = c.mark()
        self.cursor[self.listener] = self.listener.mark()

    def end(self):
        for c in self.clients.values():
            c.close()

    def say(self, actor, text, room=None):
        c = self.clients[actor]
        if room:
            c.send_room(self._room_jid(room), "!" + self._out(text))
        else:
            c.send_chat(SHOP, self._out(text))

    def join(self, actor, room):
        kind, account = self.actors[actor]
        c = self.clients[actor]
        if kind == "host":  # the room's owner by affiliation: the component maps it to HOST
            self._affiliate(self.listener, self._room_jid(room), c.bare, "owner")
        c.join(self._room_jid(room), account)
        self.cursor[c] = c.mark()

    def leave(self, actor, room):
        self.clients[actor].leave(self._room_jid(room), self.actors[actor][1])
        time.sleep(0.3)

    # ---- what the network shows -------------------------------------------
    def poll(self, timeout):
        end = time.monotonic() + max(0.0, timeout)
        out = []
        while True:
            for who, c in list(self.clients.items()) + [(None, self.listener)]:
                c._drain()
                new = c.seen[self.cursor[c]:]
                self.cursor[c] = len(c.seen)
                for m in new:
                    o = self._obs(who, m)
                    if o:
                        out.append(o)
            if out or time.monotonic() >= end:
                return out
            time.sleep(0.05)

    def _obs(self, who, m):
        mtype, sender, body, _ = m
        body = body or ""
        bare = sender.split("/")[0]
        if who is None:  # the listener: what the scenario's rooms show
            room = next((r for r, jid in self.room_jid.items() if jid == bare), None)
            if mtype == "groupchat" and room and body:  # (a subject alone has no body)
                nick = sender.split("/", 1)[1] if "/" in sender else ""
                text = self._in(body)
                return Obs("hears", None, room, text if nick == "tally" else "<%s> %s" % (nick, text))
            return None  # its own copies of moderators' lines: it is no actor
        if bare != SHOP:
            return None  # presences, other users
        if mtype == "error":
            return Obs("told", who, None, self._in(body))
        if mtype not in ("chat", "normal"):
            return None
        room, kind = None, "told"
        p = PREFIX.match(body)
        if p:
            room = next((r for r, jid in self.room_jid.items() if jid == p.group(1)), None)
            body = body[p.end():]
            if p.group(2):
                kind = "moderators"
        text, hint = unhint(self._in(body), HINT_PHRASES)
        if kind == "moderators":
            return Obs("moderators", None, room, text)
        return Obs("told", who, room, text, None, hint)
