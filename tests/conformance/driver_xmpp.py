"""driver_xmpp.py — the conformance driver for Prosody's mod_tally: a real
Prosody 0.12 with the module in process (tests/e2e/xmpp_env.py), one start
for the whole run, slixmpp clients.

- an actor is a client; "user" and "host" get an account on tally.test
  (registered with prosodyctl as the scenario begins), named as the runner
  names it; an "operator" is one of the server admins configured at start
  (admins and tally_grant_jids are static in Prosody's config), mapped to
  the runner's name; "anon" logs in on the anonymous host guest.tally.test;
  a host joins its room first, so it owns the room;
- a room "#name" is the MUC room name@rooms.tally.test;
- "X says `T`" is a chat message T to shop@tally.test, "in R" a groupchat
  "!T" in R;
- "told" is a chat message from the shop: "[room@muc] " names the room of
  the line it answers, "[room@muc, moderators] " is what only R's
  moderators get (kind "moderators");
- "hears" is what a silent guest in R (which joins R with its first member,
  after the host) gets as groupchat in R;
- names: the engine knows people by bare JID (u3ab@tally.test); the driver
  writes the runner's names as JIDs in what actors say, and writes JIDs and
  room JIDs back as the runner's names in what it observes (a room line
  names occupants by nick, which is their account name here);
- a hint is mod_tally's phrase after the engine's text, taken off and named.

XMPP shows no reply codes: an expectation's code is checked through its text.
Needs the plain build's prosody/tally.so ($TALLY_BUILD) and $TALLY_TEST_DSN."""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import ircclient as ic  # noqa: E402
from driver import TIP_HOLD_S, Base, Obs, unhint  # noqa: E402
from xmpp_env import DOMAIN, MUC, ProsodyEnv  # noqa: E402

OPERATORS = ["op%d" % i for i in range(1, 5)]
SHOP = "shop@" + DOMAIN
HINT_PHRASES = {  # mod_tally.lua's HINTS, with tally_shop = shop@tally.test
    "LOG_IN": " (use an account on this server: guests and other servers have no wallet here)",
    "SEND_PRIVATELY": " (send it to %s)" % SHOP,
    "ADMIN_ROLE": " (the server's admins)",
    "HOST_ROLE": " (the room's owners and admins)",
    "GRANT_PRIVILEGE": " (listed in tally_grant_jids)",
    "ALREADY_SAID": " (a message already in the room cannot be taken back)",
}
PREFIX = re.compile(r"^\[([^\],]+)(, moderators)?\] ")


class Driver(Base):
    name = "xmpp"
    deadline_s = 20.0
    quiet_s = 1.5

    def start(self):
        self.px = None
        so = os.path.join(os.environ.get("TALLY_BUILD", "build"), "prosody", "tally.so")
        if not os.path.isfile(so):
            raise RuntimeError("%s is not built" % so)  # a missing module fails, never passes
        self.db = ic.TestDb("conformance_xmpp").__enter__()
        self.px = ProsodyEnv(self.db.dsn, {}, admins=OPERATORS, grant=OPERATORS, guests=True,
                             tally={"rate_account": "0", "rate_channel": "0", "welcome_grant": "0",
                                    "tip_message_hold": str(TIP_HOLD_S)}).__enter__()
        self.ops_free = list(OPERATORS)

    def stop(self):
        if self.px:
            self.px.__exit__(None, None, None)
        self.db.__exit__(None, None, None)

    def failure_logs(self):
        if not self.px:
            return []
        mine = [ln for ln in self.px.log().splitlines() if "tally" in ln.lower()]
        return ["# prosody: %s" % ln[:300] for ln in mine[-15:]]

    # ---- names ---------------------------------------------------------
    def _room_jid(self, room):
        return "%s@%s" % (self.rooms[room].lstrip("#"), MUC)

    def _out(self, text):
        """The runner's names as the engine knows them (bare JIDs), rooms
        too (a command that names a room: QUIZ START <room> ...)."""
        for name, jid in self.jid_of.items():
            text = re.sub(r"(?<![\w@.])%s(?![\w@])" % re.escape(name), jid, text)
        for room in self.rooms:
            text = re.sub(r"(?<![\w@.])%s(?![\w@])" % re.escape(self.rooms[room]), self._room_jid(room), text)
        return text

    def _in(self, text):
        """JIDs and room JIDs back as the runner's names."""
        for name, jid in self.jid_of.items():
            text = text.replace(jid, name)
        for room in self.rooms:
            text = text.replace(self._room_jid(room), self.rooms[room])
        return text

    # ---- actors ----------------------------------------------------------
    def begin(self, actors, rooms):
        self.actors, self.rooms = actors, rooms
        self.clients, self.listeners, self.cursor = {}, {}, {}
        self.jid_of = {}
        ops = list(OPERATORS)
        for name, (kind, account) in actors.items():
            if kind == "operator":
                user = ops.pop(0)
                self.px.users.setdefault(user, "admin-pw")
            elif kind != "anon":
                user = account
                self.px.register(user, "pw-" + user)
            if kind == "anon":
                c = self.px.guest()
            else:
                c = self.px.client(user, resource="conf")
                self.jid_of[account] = "%s@%s" % (user, DOMAIN)
            self.clients[name] = c
            self.cursor[c] = c.mark()

    def end(self):
        for c in list(self.clients.values()) + list(self.listeners.values()):
            c.close()

    def say(self, actor, text, room=None):
        c = self.clients[actor]
        if room:
            c.send_room(self._room_jid(room), "!" + self._out(text))
        else:
            c.send_chat(SHOP, self._out(text))

    def _join(self, c, room, nick):
        c.join(self._room_jid(room), nick)
        self.cursor[c] = c.mark()

    def join(self, actor, room):
        kind, account = self.actors[actor]
        if room not in self.listeners:
            if kind == "host":
                self._join(self.clients[actor], room, account)
            listener = self.px.guest()
            self.listeners[room] = listener
            self._join(listener, room, "listener")
            if kind == "host":
                return
        self._join(self.clients[actor], room, account)

    def leave(self, actor, room):
        c = self.clients[actor]
        c.leave(self._room_jid(room), self.actors[actor][1])
        time.sleep(0.3)

    # ---- what the network shows -----------------------------------------
    def poll(self, timeout):
        end = time.monotonic() + max(0.0, timeout)
        out = []
        while True:
            for who, c in list(self.clients.items()) + [(("listener", r), c) for r, c in self.listeners.items()]:
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
        if isinstance(who, tuple):  # a room's listener
            room = who[1]
            if mtype == "groupchat" and sender.split("/")[0] == self._room_jid(room):
                nick = sender.split("/", 1)[1] if "/" in sender else ""
                text = self._in(body)
                return Obs("hears", None, room, text if nick == "tally" else "<%s> %s" % (nick, text))
            return None
        if mtype not in ("chat", "normal") or sender.split("/")[0] != SHOP:
            return None
        room = None
        p = PREFIX.match(body)
        kind = "told"
        if p:
            room = next((r for r in self.rooms if self._room_jid(r) == p.group(1)), None)
            body = body[p.end():]
            if p.group(2):
                kind = "moderators"
        text, hint = unhint(self._in(body), HINT_PHRASES)
        if kind == "moderators":
            return Obs("moderators", None, room, text)
        return Obs("told", who, room, text, None, hint)
