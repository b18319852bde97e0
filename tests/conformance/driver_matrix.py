"""driver_matrix.py — the conformance driver for tallyd's Matrix Application
Service (tallyd/matrix_*.c), driven through the homeserver double
(tests/e2e/matrix_double.py, written from the spec: no homeserver can be
installed here). One double and one tallyd for the whole run.

- an actor is a Matrix user @<account>:test.local; an "operator" is one of
  @op1..@op4:test.local, listed in tallyd's matrix_admins and
  matrix_grant_ids at start, mapped to the runner's name;
- every actor has a DM with the bot, opened the way a Matrix user opens one:
  it invites the bot with `is_direct: true` (CS "Direct Messaging"; the
  homeserver pushes the invite to the AS), and the AS joins (POST /join);
  "X says `T`" is an m.text "!T" in that DM, "in R" an m.text "!T" in R
  (the double pushes each as a transaction, AS "Pushing events", until 200);
- a room is a room of the double (!<name>:test.local) whose creator
  invited the bot (without is_direct: a room, not a DM, even while its
  host is alone there with the bot), the bot joined, and an
  m.room.power_levels in which the scenario's hosts have the
  room's state_default (50), which is also its redact level: on Matrix a host
  is a member at or above state_default, a moderator at or above redact
  (docs/MATRIX.md); "X joins R" is an m.room.member join (display name =
  the account name) pushed to the AS, "leaves" a leave;
- what the network shows is what the AS sent the double (CS "Sending events
  to a room"): a message in X's DM is "told" X; a message in R that replies
  to X's line (m.relates_to m.in_reply_to, how tally answers a line said in
  a room) is "told" X in R; a message in a moderator's DM that ends
  " (in room <room id>: say !hide there)" is "R's moderators"; any other message in R is
  "hears" R;
- answers to lines said in a room are replies IN the room (the issue's
  reply=thread, the AS's default), seen by its members: a Matrix bot cannot
  whisper inside a room. The driver reports them as "told" the asker (the
  reply names the line it answers); what a scenario checks of them, who is
  answered, with what, with which hint, holds as on every host;
- an AS cannot stop a message (its HELLO says it cannot intercept), so
  intercepts_room_lines is False: every member sees X's "!T" in R, and the
  runner expects that line (driver.py);
- names: the engine knows people by MXID. The driver writes the runner's
  names as MXIDs in what actors say, and MXIDs (also "matrix:@...") and
  room ids back as the runner's names in what it observes; in rooms tallyd
  names people by display name, which is the account name here. Commands
  the engine names are written as typed on Matrix ("!confirm K3X"): the
  driver writes them back as the engine's words ("CONFIRM K3X"), as it
  takes a hint's phrase off and names it.

Matrix shows no reply codes: an expectation's code is checked through its
text. Needs tallyd ($TALLY_SAN_BUILD's when built, so its clean stop checks
leaks), the tally CLI (the registration) and $TALLY_TEST_DSN."""

import os
import re
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import ircclient as ic  # noqa: E402  (TestDb, tally_cli)
import matrix_env  # noqa: E402
import tallyd_env  # noqa: E402
from driver import TIP_HOLD_S, Base, Obs  # noqa: E402
from matrix_double import HomeserverDouble, member, message  # noqa: E402

SERVER = "test.local"
OPERATORS = ["op%d" % i for i in range(1, 5)]
HOST_LEVEL = 50  # the rooms' state_default and redact (docs/MATRIX.md: roles)
BOT = "@tally:" + SERVER
KEEPER = "@keeper:" + SERVER  # made the rooms and invited the bot; no member of them
# tallyd's phrases for the hints (matrix_effect.c hint_phrase), taken off the
# end of a line; SEND_PRIVATELY names the DM (or says one is coming).
HINT_RX = [
    ("SEND_PRIVATELY", re.compile(r" \(send it (?:in your direct message with %s, room \S+|in a direct message "
                                  r"with %s: it has invited you to one;|to %s in a direct message:) this room is "
                                  r"public\)$" % ((re.escape(BOT),) * 3))),
    ("ADMIN_ROLE", re.compile(r"; tally's admins on Matrix are set by tallyd's matrix_admins$")),
    ("HOST_ROLE", re.compile(r" \(on Matrix: members whose power level is at least the room's state_default, "
                             r"or the host_level a host set with !room set\)$")),
    ("GRANT_PRIVILEGE", re.compile(r" \(the grant privilege is given with `tally grant`\)$")),
    ("ALREADY_SAID", re.compile(r" \(an AS cannot take a message back; a moderator can redact it\)$")),
]
# A line for a room's moderators, in each one's DM: the engine's text, then
# where it is from and where HIDE is said (matrix_effect.c moderators_effect).
MODS = re.compile(r" \(in room (\S+): say !hide there\)$")
# A command as tallyd writes it for Matrix users ("!confirm K3X"): the
# engine's word, lower case, after a "!" that starts the text or follows a
# space or an opening bracket.
TYPED = re.compile(r"(?:^|(?<=[\s(\"']))!([a-z]+)\b")


class _Tap:
    """matrix_env.fresh_registration reports through a tap: here a failure
    is the start's failure."""

    def check(self, what, ok, detail=""):
        if not ok:
            raise RuntimeError("%s: %s" % (what, detail))


def unhint(text):
    for name, rx in HINT_RX:
        m = rx.search(text)
        if m:
            return text[: m.start()], name
    return text, None


class Driver(Base):
    name = "matrix"
    deadline_s = 20.0
    quiet_s = 1.5
    intercepts_room_lines = False
    unsupported_kinds = {
        "anon": "every Matrix user is logged in to their homeserver (the MXID is the identity the homeserver "
                "vouches for in each transaction), so no command reaches the engine without an account and there "
                "is no 'not logged in' to show",
    }
    # Scenarios whose premise a Matrix room does not have (runner.py).
    not_applicable_scenarios = {
        "silence expected after a line the room or the sender got an answer to":
            "a `!word` that is not tally's, said in a Matrix room, is another bot's command: the AS leaves it alone "
            "(no answer), and the room's showing the sender's own line is what every Matrix room does (expected, "
            "intercepts_room_lines False), so nothing unexpected is shown for the check to catch; that the silence "
            "check fails when a room hears something is shown by 'silence expected when the room heard something'",
    }

    def start(self):
        self.td = self.db = self.hs = None
        self.start_logs = []
        self.sdir = tempfile.mkdtemp(prefix="tally-conf-mx-")
        try:
            self._start()
        except Exception:
            self.start_logs = self.failure_logs()
            try:
                self.stop()
            except Exception:
                pass
            self.td = self.hs = None
            raise

    def _start(self):
        san = os.environ.get("TALLY_SAN_BUILD")
        if san and os.access(os.path.join(san, "tallyd"), os.X_OK):
            tallyd_env.BUILD = san
        os.environ.setdefault("TALLY_TMP", self.sdir)
        self.db = ic.TestDb("conformance_matrix").__enter__()
        port = tallyd_env.free_port()
        reg = matrix_env.fresh_registration(_Tap(), self.db.dsn, "conformance-matrix", port, SERVER)
        as_token, hs_token = matrix_env.read_tokens(reg)
        self.hs = HomeserverDouble(as_token, hs_token, SERVER)
        self.hs.as_url = "http://127.0.0.1:%d" % port
        ops = ",".join("@%s:%s" % (u, SERVER) for u in OPERATORS)
        keys = matrix_env.as_keys(port, reg, self.hs.url, SERVER, engine=False,
                                  matrix_admins=ops, matrix_grant_ids=ops,
                                  rate_account="0", rate_channel="0", welcome_grant="0",
                                  tip_message_hold=str(TIP_HOLD_S))
        # tallyd serves a network of frames too (it needs one); nobody connects to it.
        self.td = tallyd_env.TallydEnv(self.db.dsn, secrets={"irc": "conformance-matrix-unused-secret"},
                                       extra=keys).__enter__()
        self.dms = {}      # MXID -> its DM with the bot
        self.events = {}   # event id of an actor's line -> (actor, scenario room)
        self.echo = []     # the rooms' showing of actors' own lines, not yet polled
        self.cursor = self.hs.mark()
        self.lock = threading.Lock()
        # The AS answers 503 until its outbox is loaded (push retries it);
        # then a command is answered: the run starts when an operator's is.
        op = "@%s:%s" % (OPERATORS[0], SERVER)
        dm = self._dm(op, OPERATORS[0])
        ev = message(dm, op, "!tally help")
        self._push([ev])
        self.hs.reply_to(ev["event_id"], r".", timeout=60)
        self.cursor = self.hs.mark()

    def stop(self):
        try:
            if self.td:
                rc = self.td.stop()
                if rc != 0:  # the ASan build's leak check and a clean stop
                    raise RuntimeError("tallyd exited %r:\n%s" % (rc, self.td.log()[-3000:]))
        finally:
            if self.td:
                self.td.__exit__(None, None, None)
            if self.hs:
                self.hs.close()
            if self.db:
                self.db.__exit__(None, None, None)
            shutil.rmtree(self.sdir, ignore_errors=True)

    def failure_logs(self):
        if not self.td:
            return self.start_logs
        lines = [ln for ln in self.td.log().splitlines() if " presence: " not in ln]
        return ["# tallyd: %s" % ln[:300] for ln in lines[-30:]]

    # ---- helpers -----------------------------------------------------------
    def _push(self, events):
        st, js, _ = self.hs.push(events)
        if st != 200:
            raise RuntimeError("the AS answered a transaction %s %r" % (st, js))

    def _dm(self, mxid, name):
        """The actor's DM with the bot: the actor invites the bot with
        is_direct (the homeserver pushes the invite to the AS); the AS joins."""
        if mxid in self.dms:
            return self.dms[mxid]
        dm = "!dm-%s:%s" % (mxid[1:].split(":")[0], SERVER)
        self.hs.set_room(dm, {mxid: name})
        self._push([member(dm, BOT, "invite", sender=mxid, is_direct=True)])
        self.hs.wait_for(lambda: dm in self.hs.joins, timeout=20)
        self.dms[mxid] = dm
        return dm

    def _out(self, text):
        """The runner's names as the engine knows them (MXIDs)."""
        for name, mxid in self.mxid_of.items():
            text = re.sub(r"(?<![\w@.:])%s(?![\w@:])" % re.escape(name), mxid, text)
        # A command that names a room (QUIZ START <room> ... said privately):
        # the room id, as a Matrix user names it.
        for room, rid in self.room_id.items():
            text = re.sub(r"(?<![\w!:])%s(?![\w:])" % re.escape(self.rooms[room]), rid, text)
        return text

    def _in(self, text):
        """MXIDs and room ids back as the runner's names; commands as the
        engine words them."""
        for name, mxid in self.mxid_of.items():
            text = text.replace("matrix:" + mxid, name).replace(mxid, name)
        for room, rid in self.room_id.items():
            text = text.replace(rid, self.rooms[room])
        return TYPED.sub(lambda m: m.group(1).upper(), text)

    # ---- actors ------------------------------------------------------------
    def begin(self, actors, rooms):
        self.actors, self.rooms = actors, rooms
        self.mxid_of, self.actor_of = {}, {}
        ops = list(OPERATORS)
        for name, (kind, account) in actors.items():
            local = ops.pop(0) if kind == "operator" else account
            mxid = "@%s:%s" % (local, SERVER)
            self.mxid_of[account] = mxid
            self.actor_of[mxid] = name
        self.room_id = {r: "!%s:%s" % (n.lstrip("#"), SERVER) for r, n in rooms.items()}
        hosts = {self.mxid_of[acc]: HOST_LEVEL for kind, acc in actors.values() if kind == "host"}
        for r, rid in self.room_id.items():
            # The room's creator (no actor: it left) invites the bot, without
            # is_direct: a room, not a DM, even while its host is alone there
            # with the bot; the AS joins it.
            levels = {"state_default": HOST_LEVEL, "redact": HOST_LEVEL, "users_default": 0,
                      "users": dict(hosts, **{BOT: 100})}
            self.hs.set_room(rid, {}, levels)
            self._push([member(rid, BOT, "invite", sender=KEEPER)])
            self.hs.wait_for(lambda rid=rid: rid in self.hs.joins, timeout=20)
        for name, (kind, account) in actors.items():
            self._dm(self.mxid_of[account], account)
        self.dm_actor = {self.dms[mxid]: name for mxid, name in self.actor_of.items()}
        with self.lock:
            self.cursor = self.hs.mark()
            self.echo = []

    def end(self):
        """Nothing to close: rooms are fresh per scenario (their members stay,
        as people stay in a Matrix room they no longer speak in), and DMs
        are kept for the actor's next scenario."""

    def _member(self, room, actor, membership):
        account = self.actors[actor][1]
        mxid, rid = self.mxid_of[account], self.room_id[room]
        with self.hs.lock:
            members = self.hs.rooms[rid]["members"]
            if membership == "join":
                members[mxid] = account
            else:
                members.pop(mxid, None)
        self._push([member(rid, mxid, membership, displayname=account)])

    def say(self, actor, text, room=None):
        mxid = self.mxid_of[self.actors[actor][1]]
        where = self.room_id[room] if room else self.dms[mxid]
        ev = message(where, mxid, "!" + self._out(text))
        with self.lock:
            self.events[ev["event_id"]] = (actor, room)
            if room:  # every member sees the line (an AS cannot stop it)
                self.echo.append(Obs("hears", None, room, "<%s> !%s" % (self.actors[actor][1], text)))
        self._push([ev])

    def join(self, actor, room):
        self._member(room, actor, "join")

    def leave(self, actor, room):
        self._member(room, actor, "leave")

    # ---- what the network shows -------------------------------------------
    def poll(self, timeout):
        end = time.monotonic() + max(0.0, timeout)
        while True:
            with self.lock:
                out, self.echo = self.echo, []
            with self.hs.lock:
                new = self.hs.events[self.cursor:]
                self.cursor = len(self.hs.events)
            for room_id, ev in new:
                out.extend(self._obs(room_id, ev))
            if out or time.monotonic() >= end:
                return out
            with self.hs.lock:
                if len(self.hs.events) <= self.cursor:
                    self.hs.lock.wait(min(0.05, max(0.0, end - time.monotonic())))

    def _obs(self, room_id, ev):
        c = ev.get("content") or {}
        if ev.get("type") != "m.room.message" or ev.get("sender") != BOT:
            return []
        body = c.get("body") or ""
        reply_to = ((c.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id")
        room = next((r for r, rid in self.room_id.items() if rid == room_id), None)
        dm_of = self.dm_actor.get(room_id)
        mods = MODS.search(body)
        if dm_of and mods:
            mroom = next((r for r, rid in self.room_id.items() if rid == mods.group(1)), None)
            return [Obs("moderators", None, mroom, self._in(line)) for line in body[:mods.start()].split("\n")]
        if dm_of:
            who, where = dm_of, None
        elif room and reply_to in self.events:
            who, where = self.events[reply_to][0], room
        elif room:
            return [Obs("hears", None, room, self._in(line)) for line in body.split("\n")]
        else:
            return []  # another scenario's room or DM: no actor of this one
        lines = body.split("\n")
        out = []
        for i, line in enumerate(lines):
            text, hint = unhint(line) if i == len(lines) - 1 else (line, None)
            out.append(Obs("told", who, where, self._in(text), None, hint))
        return out
