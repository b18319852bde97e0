"""driver_frame.py — the conformance driver for the engine itself: the frame
driver program (frame_driver.c, public API only) speaks a line protocol on
stdin/stdout. "told" is a REPLY effect for the actor's origin, "hears" an
ANNOUNCE effect for the room, hints are the effect's `hint` field, and codes
are shown (the only driver that checks them). Presence is what an adapter
submits: a join or part of a logged-in actor, and the members of a room when
the engine asks for its roster.

Needs $TALLY_TEST_DSN (tests/run.sh) and the frame driver built
($TALLY_SAN_BUILD/tests/conformance/frame_driver, else build/...)."""

import os
import queue
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import ircclient as ic  # noqa: E402  (TestDb: a database of this run's own)
from driver import TIP_HOLD_S, Base, Obs  # noqa: E402
from runner import HINT_NAMES, ROOT  # noqa: E402

ROLE_CHANOP, ROLE_OPER, ROLE_GRANT = 1, 2, 4
KIND_REPLY, KIND_ANNOUNCE, KIND_ROSTER, KIND_MODERATORS = 1, 2, 4, 6
READY_S = 60


def binary():
    for b in (os.environ.get("TALLY_SAN_BUILD"), os.path.join(ROOT, "build", "san"), os.path.join(ROOT, "build")):
        if b and os.access(os.path.join(b, "tests", "conformance", "frame_driver"), os.X_OK):
            return os.path.join(b, "tests", "conformance", "frame_driver")
    raise RuntimeError("frame_driver is not built (make test-build)")


class Driver(Base):
    name = "frame"
    deadline_s = 10.0
    quiet_s = 0.7

    def start(self):
        self.db = ic.TestDb("conformance_frame").__enter__()
        key = os.path.join(os.environ.get("TALLY_TMP", "/tmp"), "conformance-frame-%d.pem" % os.getpid())
        self.proc = subprocess.Popen([binary(), "dsn=" + self.db.dsn, "signing_key=" + key, "rate_account=0",
                                      "rate_channel=0", "tip_message_hold=%d" % TIP_HOLD_S], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.errors = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        self.err_thread = threading.Thread(target=self._pump_err, daemon=True)
        self.err_thread.start()
        self.req = 0
        self.by_origin = {}
        # Rooms and origins of earlier scenarios: their late effects (a drop
        # that closes later) are for nobody here and are dropped; an effect
        # for a room or origin nobody ever made is shown (a misaddressed one).
        self.old_rooms, self.old_origins = set(), set()
        while True:
            line = self.lines.get(timeout=READY_S)
            if line is None or line.startswith("STATUS"):
                raise RuntimeError("engine did not start: %r %s" % (line, self.errors[-5:]))
            if line == "READY":
                return

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def _pump_err(self):
        for line in self.proc.stderr:
            self.errors.append(line.rstrip("\n"))

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.err_thread.join(10)  # ASan's report, to its last line
        self.db.__exit__(None, None, None)
        if self.proc.returncode != 0:
            raise RuntimeError("frame_driver exited %s:\n%s" % (self.proc.returncode, "\n".join(self.errors[-40:])))

    def failure_logs(self):
        return ["# frame_driver: %s" % e for e in self.errors[-20:]]

    def _send(self, *fields):
        self.proc.stdin.write("\t".join(str(f) if str(f) else "-" for f in fields) + "\n")
        self.proc.stdin.flush()

    # ---- actors ----------------------------------------------------------
    def begin(self, actors, rooms):
        self.actors = actors
        self.rooms = rooms
        self.room_of = {v: k for k, v in rooms.items()}
        self.members = {r: [] for r in rooms}
        self.by_origin = {}
        for name, (kind, account) in actors.items():
            self.by_origin["o:" + account] = name

    def end(self):
        for room, inside in self.members.items():
            for who in list(inside):
                self.leave(who, room)
        self.old_rooms.update(self.rooms.values())
        self.old_origins.update(self.by_origin)

    def _account(self, who):
        kind, account = self.actors[who]
        return "" if kind == "anon" else account

    def say(self, actor, text, room=None):
        kind, account = self.actors[actor]
        roles = {"host": ROLE_CHANOP if room else 0, "operator": ROLE_OPER | ROLE_GRANT}.get(kind, 0)
        self.req += 1
        self._send("C", self.req, "o:" + account, self._account(actor), self.rooms[room] if room else "",
                   roles, "m%d-%d" % (os.getpid(), self.req), text)

    def _presence(self, who, room, present):
        if self._account(who):
            self._send("P", self._account(who), self.rooms[room], 1 if present else 0)

    def join(self, actor, room):
        self.members[room].append(actor)
        self._presence(actor, room, True)

    def leave(self, actor, room):
        self.members[room].remove(actor)
        self._presence(actor, room, False)

    # ---- effects ---------------------------------------------------------
    def poll(self, timeout):
        out = []
        try:
            line = self.lines.get(timeout=timeout) if timeout > 0 else self.lines.get_nowait()
            while True:
                if line is None:
                    raise RuntimeError("frame_driver exited: %s" % self.errors[-10:])
                o = self._effect(line)
                if o:
                    out.append(o)
                line = self.lines.get_nowait()
        except queue.Empty:
            pass
        return out

    def _effect(self, line):
        f = line.split("\t", 8)
        if f[0] == "ERR":
            raise RuntimeError("frame_driver refused a line: %s" % line)
        if f[0] != "E" or len(f) != 9:
            return None
        kind, code, hint, origin, channel, text = int(f[1]), f[2], int(f[5]), f[6], f[7], f[8]
        room = self.room_of.get(channel)
        if (origin in self.old_origins and origin not in self.by_origin) or \
           (channel in self.old_rooms and room is None):
            return None
        if kind == KIND_REPLY:
            # An origin of another scenario (a late answer) is still shown: to nobody here.
            return Obs("told", self.by_origin.get(origin, origin), room, text, code,
                       HINT_NAMES.get(hint) if hint else None)
        if kind == KIND_ANNOUNCE:
            return Obs("hears", None, room or channel, text)
        if kind == KIND_MODERATORS:
            return Obs("moderators", None, room or channel, text)
        if kind == KIND_ROSTER and room:
            for who in self.members[room]:
                self._presence(who, room, True)
        return None
