"""driver_irc.py — the conformance driver for the InspIRCd module: a real
InspIRCd 3 + Anope network with m_tally.so loaded (tools/irc_env.sh via
tests/e2e/ircclient.py), one start for the whole run, raw IRC sockets.

- an actor is a connection; "user", "host" and "operator" register a
  NickServ account (their nick); "operator" also does OPER admin (with the
  tally/grant privilege); a host joins its room first, so it is the
  channel's operator;
- "X says `T`" is the raw client command T (/quote T), "in R" a PRIVMSG to
  R of "!" and T;
- "told" is a NOTICE from the server to X (an answer to a channel line
  comes from <server>!tally@<server> and starts with "[#room] ": that names
  the room), and the numeric 421 (the server's own "Unknown command": tally
  registers only its own words, so the server answers an unknown one);
- "hears" is what a silent member of R without an account (the room's
  listener, which joins R with its first member, first unless that member is
  the host) sees in R: server NOTICEs and any member's PRIVMSG (so a
  `!buy` line that reached the room is heard);
- a hint is the module's phrase after the engine's text (HintPhrase in
  plugin/inspircd/m_tally.cpp), taken off and named.

IRC shows no reply codes: an expectation's code is checked through its text.
Needs the plain build's m_tally.so ($TALLY_BUILD) and $TALLY_TEST_DSN."""

import os
import select
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import ircclient as ic  # noqa: E402
from driver import TIP_HOLD_S, Base, Obs, unhint  # noqa: E402

PASSWORD = "Conformance-Horse-42"
TAGS = 'rate_account="0" rate_channel="0" tip_message_hold="%d"' % TIP_HOLD_S
# What the module appends for each hint (enum tally_hint; HintPhrase).
HINT_PHRASES = {
    "LOG_IN": " (/msg NickServ IDENTIFY <password>)",
    "SEND_PRIVATELY": " (as a client command: /quote and the same words)",
    "ADMIN_ROLE": "; admins here are the IRC operators",
    "HOST_ROLE": " (on IRC: its channel operators)",
    "GRANT_PRIVILEGE": " (the oper privilege tally/grant)",
    "ALREADY_SAID": " (a message already said cannot be taken back on IRC)",
}


class Driver(Base):
    name = "irc"
    deadline_s = 20.0
    quiet_s = 1.5

    def start(self):
        self.env = None
        so = ic.tally_so()
        if not os.path.isfile(so):
            raise RuntimeError("%s is not built" % so)  # a missing module fails, never passes
        self.db = ic.TestDb("conformance_irc").__enter__()
        self.env = ic.IrcEnv(tally_so=so, dsn=self.db.dsn, tag_extra=TAGS).__enter__()
        probe = self.env.client(ic.unique_nick("probe"))
        try:
            ic.tally_ask(probe, "TALLY HELP", ".", 60)  # retried while "starting up"
        finally:
            probe.quit()

    def stop(self):
        if self.env:
            self.env.__exit__(None, None, None)
        self.db.__exit__(None, None, None)

    def failure_logs(self):
        if not self.env:
            return []
        mine = [ln for ln in self.env.log("ircd.out").splitlines() if "tally" in ln.lower()]
        return ["# ircd: %s" % ln[:300] for ln in mine[-15:]]

    # ---- actors ----------------------------------------------------------
    def begin(self, actors, rooms):
        self.actors, self.rooms = actors, rooms
        self.room_of = {v.lower(): k for k, v in rooms.items()}
        self.clients = {}    # scenario name -> IRCClient
        self.listeners = {}  # room -> IRCClient
        self.cursor = {}     # IRCClient -> index in seen already turned into Obs
        # Connect and register everyone at once: services answer each in
        # turn, so waiting one by one would add their round trips up.
        marks = {}
        for name, (kind, account) in actors.items():
            c = self.env.client(account)
            self.clients[name] = c
            if kind != "anon":
                marks[name] = c.mark()
                c.privmsg("NickServ", "REGISTER %s %s@example.org" % (PASSWORD, account))
            if kind == "operator":
                c.send("OPER admin adminpass")
        for name, mark in marks.items():
            c = self.clients[name]
            c.wait_notice(r"(?i)registered", source="NickServ", since=mark)
            if self.actors[name][0] == "operator":
                c.wait_numeric("381", since=mark)
            if c.wait_account() != c.nick:
                raise ic.IRCError("%s has no services account" % c.nick)
        for c in self.clients.values():
            c.collect(0.05)
            self.cursor[c] = c.mark()

    def end(self):
        for c in list(self.clients.values()) + list(self.listeners.values()):
            c.quit()

    def say(self, actor, text, room=None):
        c = self.clients[actor]
        if room:
            c.privmsg(self.rooms[room], "!" + text)
        else:
            c.send(text)

    def _join(self, c, room):
        c.join(self.rooms[room])
        c.collect(0.05)
        self.cursor.setdefault(c, 0)
        self.cursor[c] = max(self.cursor[c], c.mark())

    def join(self, actor, room):
        kind = self.actors[actor][0]
        if room not in self.listeners:
            listener = self.env.client("l%s" % self.rooms[room][1:])
            self.listeners[room] = listener
            if kind == "host":
                self._join(self.clients[actor], room)
            self._join(listener, room)
            if kind == "host":
                return
        self._join(self.clients[actor], room)

    def leave(self, actor, room):
        c = self.clients[actor]
        name = self.rooms[room]
        mark = c.mark()
        c.send("PART %s" % name)
        c.expect(lambda m: m.command == "PART" and m.nick == c.nick, 15, "PART %s" % name, mark)

    # ---- what the network shows -----------------------------------------
    def poll(self, timeout):
        socks = {}
        for who, c in self.clients.items():
            socks[c.sock] = (c, who)
        for room, c in self.listeners.items():
            socks[c.sock] = (c, ("listener", room))
        r, _, _ = select.select(list(socks), [], [], max(0.0, timeout))
        for s in r:
            socks[s][0]._read(time.monotonic() + 0.05)
        out = []
        for c, who in socks.values():
            new = c.seen[self.cursor[c]:]
            self.cursor[c] = len(c.seen)
            for m in new:
                o = self._obs(c, who, m)
                if o:
                    out.append(o)
        return out

    def _obs(self, c, who, m):
        from_server = "!" not in m.prefix
        target = m.target.lower()
        if isinstance(who, tuple):  # a room's listener
            room = who[1]
            if target == self.rooms[room].lower() and m.command in ("PRIVMSG", "NOTICE") and not from_server:
                return Obs("hears", None, room, "<%s> %s" % (m.nick, m.text))
            if target == self.rooms[room].lower() and m.command == "NOTICE" and from_server:
                return Obs("hears", None, room, m.text)
            if m.command == "NOTICE" and target == c.nick.lower() and from_server:
                return Obs("told", "listener of %s" % room, None, m.text)
            return None
        if m.command == "421":  # the server's "Unknown command"
            return Obs("told", who, None, m.text)
        if m.command == "NOTICE" and from_server and target.startswith("@"):
            return Obs("moderators", None, self.room_of.get(target[1:]), m.text)
        if m.command == "NOTICE" and from_server and target == c.nick.lower() and not m.text.startswith("*** "):
            text, hint = unhint(m.text, HINT_PHRASES)
            return Obs("told", who, self.room_of.get((m.context or "").lower()), text, None, hint)
        return None
