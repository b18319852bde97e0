"""runner.py — runs the network-neutral scenarios (scenarios.py) through one
driver (driver.py) and prints TAP: one line per scenario, then one per
negative scenario (a scenario with a deliberately wrong expectation, which
must fail exactly there: the proof that each kind of expectation can fail).

    python3 tests/conformance/test_frame.py [--only REGEX] [--no-negative]

Step grammar (one string per step; {X} is actor X's account, {R} room R's
name, {v} a value captured earlier by a (?P<v>...) group):

    U says `TEXT`                  privately to tally
    U says `TEXT` in R             in room R (U must be in R)
    U, V say `TEXT` [in R]         each sends it, back to back, before any
                                   answer is awaited (a race)
    U joins R / U leaves R
    wait N s                       real time passes (a scheduled drop opens)
    U is told [in R] [CODE] [hint HINT] [/REGEX/]
                                   a private answer to U (with "in R": one
                                   that names room R, the answer to a line
                                   said there; without, the room is not
                                   checked): its code ("OK",
                                   "ESOLD_OUT"; checked where the network
                                   shows codes), its hint (none when not
                                   named), its text (REGEX, searched; without
                                   one, a refusal's text starts with the
                                   code's tally_strerror text)
    one of U, V is told ...        as "is told", by whichever of them it is
    the other is told ...          the one of the last "one of" not matched
    R hears /REGEX/                something said in room R
    R's moderators hear /REGEX/    something said to R's moderators only
    nobody else hears anything     nothing but what was matched since the
                                   last action was shown to anyone

Each expectation matches only what arrived after the last action (says,
joins, leaves), consumes the observation it matches, and FAILS when its
deadline passes without one. "payment pending" notices are ignored.
"""

import argparse
import os
import random
import re
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import scenarios as scenario_data  # noqa: E402

TALLY_H = os.path.join(ROOT, "core", "include", "tally.h")
ACTOR_KINDS = ("user", "anon", "host", "operator")
PENDING_TEXT = re.compile(r"^payment pending; check RECEIPTS shortly$")


def _read_tally_h():
    with open(TALLY_H) as f:
        src = f.read()
    errors = {m.group(1): m.group(2) for m in re.finditer(r'X\((\w+), -?\d+, "((?:[^"\\]|\\.)*)"\)', src)}
    hints = {int(m.group(2)): m.group(1) for m in re.finditer(r"TALLY_HINT_(\w+) = (\d+)", src)}
    return errors, hints


# The reply codes' texts (TALLY_ERRNO_MAP) and the hints' names, from the
# public header: one source for the runner and every driver.
ERROR_TEXT, HINT_NAMES = _read_tally_h()


class ScenarioError(Exception):
    """The scenario itself is wrong (a step the grammar does not know)."""


class Failed(Exception):
    """An expectation was not met."""


RX_SAYS = re.compile(r"^(\w+) says `(.+)`(?: in (\w+))?$")
RX_SAY_ALL = re.compile(r"^(\w+(?:, \w+)+) say `(.+)`(?: in (\w+))?$")
RX_MOVE = re.compile(r"^(\w+) (joins|leaves) (\w+)$")
RX_WAIT = re.compile(r"^wait (\d+(?:\.\d+)?) s$")
RX_TOLD = re.compile(r"^(\w+|one of \w+(?:, \w+)+|the other) is told(?: in (\w+))?(?: (OK|E[A-Z_]+))?(?: hint ([A-Z_]+))?(?: /(.*)/)?$")
RX_HEARS = re.compile(r"^(\w+) hears /(.*)/$")
RX_MODS = re.compile(r"^(\w+)'s moderators hear /(.*)/$")
RX_QUIET = re.compile(r"^nobody else hears anything$")


class Run:
    """One scenario through one driver."""

    def __init__(self, driver, scenario, sid, tag):
        self.d, self.s = driver, scenario
        self.deadline = driver.deadline_s
        # A negative scenario's short deadline applies at its wrong step only,
        # so a slow machine cannot make it fail early, at a right one.
        self.short = (scenario["fails_at"] - 1, scenario["deadline"]) if "fails_at" in scenario else None
        self.actors = {}
        for name, kind in scenario["actors"].items():
            if kind not in ACTOR_KINDS:
                raise ScenarioError("actor %s: unknown kind %r" % (name, kind))
            self.actors[name] = (kind, "%s%d%s" % (name.lower(), sid, tag))
        self.rooms = {r: "#%s%d%s" % (r.lower(), sid, tag) for r in scenario.get("rooms", [])}
        self.vars = {}
        self.others = []
        self.members = {r: [] for r in self.rooms}
        self.pool = []      # observations since the last action, not yet matched
        self.matched = []   # what expectations matched since the last action
        self.echoes = []    # (room, text) the room shows of a sender's own line, not yet seen
        self.echoed = 0     # echoes seen (a host that cannot intercept room lines)

    # ---- text ----------------------------------------------------------
    def subst(self, text, for_regex=False):
        def one(m):
            k = m.group(1)
            if k in self.actors:
                v = self.actors[k][1]
            elif k in self.rooms:
                v = self.rooms[k]
            elif k in self.vars:
                v = self.vars[k]
            else:
                return m.group(0)
            return re.escape(v) if for_regex else v
        return re.sub(r"\{(\w+)\}", one, text)

    def actor(self, name):
        if name not in self.actors:
            raise ScenarioError("unknown actor %r" % name)
        return name

    def room(self, name):
        if name not in self.rooms:
            raise ScenarioError("unknown room %r" % name)
        return name

    # ---- observing -----------------------------------------------------
    def intake(self, timeout):
        for o in self.d.poll(timeout):
            if o.kind == "told" and (o.code == "EPENDING" or PENDING_TEXT.search(o.text)):
                continue
            if o.kind == "hears" and (o.room, o.text) in self.echoes:  # expected: the host cannot intercept
                self.echoes.remove((o.room, o.text))
                self.echoed += 1
                continue
            self.pool.append(o)

    def said_in(self, who, room, text):
        """who says text in room: a host that cannot intercept room lines
        shows it to the room, and that line is expected."""
        if room is not None and not self.d.intercepts_room_lines:
            self.echoes.append((room, self.d.room_echo(self.actors[who][1], text)))

    def action(self):
        """A new action: what the last one showed is no longer matched."""
        self.intake(0)
        self.pool, self.matched = [], []

    def expect(self, what, pred):
        end = time.monotonic() + self.deadline
        while True:
            for i, o in enumerate(self.pool):
                m = pred(o)
                if m:
                    self.matched.append(self.pool.pop(i))
                    return m
            left = end - time.monotonic()
            if left <= 0:
                raise Failed("no %s within %.0f s; shown since the last action and not matched: %s"
                             % (what, self.deadline, self.pool or "nothing"))
            self.intake(min(left, 0.2))

    def told(self, whos, room, code, hint, regex):
        if regex is None:
            if code is None or code == "OK":
                raise ScenarioError("'is told' needs a /regex/ unless it names a refusal code")
            if code not in ERROR_TEXT:
                raise ScenarioError("unknown code %s" % code)
            regex = "^" + re.escape(ERROR_TEXT[code])
        if code is not None and code not in ERROR_TEXT:
            raise ScenarioError("unknown code %s" % code)
        if hint is not None and hint not in HINT_NAMES.values():
            raise ScenarioError("unknown hint %s" % hint)
        rx = re.compile(self.subst(regex, True))

        def pred(o):
            if o.kind != "told" or o.who not in whos or o.hint != hint:
                return None
            if room is not None and o.room != room:
                return None
            if code is not None and o.code is not None and o.code != code:
                return None
            m = rx.search(o.text)
            return (m, o.who) if m else None
        what = "answer to %s%s%s%s /%s/" % ("/".join(whos), " in " + room if room else "",
                                            " " + code if code else "", " hint " + hint if hint else "",
                                            rx.pattern)
        m, who = self.expect(what, pred)
        self.others = [w for w in whos if w != who]
        self.vars.update({k: v for k, v in m.groupdict().items() if v is not None})

    def hears(self, room, regex, kind="hears"):
        if not self.members[room]:
            raise ScenarioError("nobody is in %s to hear it" % room)
        rx = re.compile(self.subst(regex, True))
        m = self.expect("%s in %s /%s/" % ("line" if kind == "hears" else "line to the moderators", room,
                                           rx.pattern),
                        lambda o: o.kind == kind and o.room == room and rx.search(o.text))
        self.vars.update({k: v for k, v in m.groupdict().items() if v is not None})

    def quiet(self):
        end = time.monotonic() + self.d.quiet_s
        while time.monotonic() < end:
            self.intake(max(0.0, min(0.2, end - time.monotonic())))
        if self.pool:
            raise Failed("somebody else heard something: %s" % self.pool)
        if self.echoes:
            raise Failed("the host says it cannot intercept room lines, yet the room did not show: %s"
                         % self.echoes)

    # ---- steps ---------------------------------------------------------
    def step(self, text):
        m = RX_SAYS.match(text)
        if m:
            who, room = self.actor(m.group(1)), m.group(3)
            if room is not None and who not in self.members[self.room(room)]:
                raise ScenarioError("%s says something in %s without being in it" % (who, room))
            self.action()
            self.said_in(who, room, self.subst(m.group(2)))
            return self.d.say(who, self.subst(m.group(2)), room)
        m = RX_SAY_ALL.match(text)
        if m:
            whos, room = [self.actor(w) for w in m.group(1).split(", ")], m.group(3)
            for who in whos:
                if room is not None and who not in self.members[self.room(room)]:
                    raise ScenarioError("%s says something in %s without being in it" % (who, room))
            self.action()
            for who in whos:
                self.said_in(who, room, self.subst(m.group(2)))
                self.d.say(who, self.subst(m.group(2)), room)
            return None
        m = RX_MOVE.match(text)
        if m:
            who, verb, room = self.actor(m.group(1)), m.group(2), self.room(m.group(3))
            inside = self.members[room]
            if verb == "joins":
                if who in inside:
                    raise ScenarioError("%s is already in %s" % (who, room))
                if self.actors[who][0] == "host" and room in self.rooms_joined:
                    raise ScenarioError("a host joins its room before anyone else (%s)" % room)
                self.rooms_joined.add(room)
                self.action()
                self.d.join(who, room)
                inside.append(who)
            else:
                if who not in inside:
                    raise ScenarioError("%s is not in %s" % (who, room))
                self.action()
                self.d.leave(who, room)
                inside.remove(who)
            return None
        m = RX_WAIT.match(text)
        if m:
            end = time.monotonic() + float(m.group(1))
            while time.monotonic() < end:  # keep reading: what comes meanwhile stays matchable
                self.intake(max(0.0, min(0.2, end - time.monotonic())))
            return None
        m = RX_TOLD.match(text)
        if m:
            room = self.room(m.group(2)) if m.group(2) else None
            subject = m.group(1)
            if subject.startswith("one of "):
                whos = [self.actor(w) for w in subject[len("one of "):].split(", ")]
            elif subject == "the other":
                if len(self.others) != 1:
                    raise ScenarioError("'the other' needs a 'one of' of two before it")
                whos = self.others
            else:
                whos = [self.actor(subject)]
            return self.told(whos, room, m.group(3), m.group(4), m.group(5))
        m = RX_HEARS.match(text)
        if m:
            return self.hears(self.room(m.group(1)), m.group(2))
        m = RX_MODS.match(text)
        if m:
            return self.hears(self.room(m.group(1)), m.group(2), "moderators")
        if RX_QUIET.match(text):
            return self.quiet()
        raise ScenarioError("a step the grammar does not know: %r" % text)

    def run(self):
        """Returns None when every step passed, else (step index, message)."""
        self.rooms_joined = set()
        self.d.begin(self.actors, self.rooms)
        try:
            for i, st in enumerate(self.s["steps"]):
                if self.short:
                    self.deadline = self.short[1] if i == self.short[0] else self.d.deadline_s
                try:
                    self.step(st)
                except Failed as e:
                    return i, "step %d %r: %s" % (i + 1, st, e)
                except ScenarioError as e:
                    return i, "step %d %r: scenario error: %s" % (i + 1, st, e)
        finally:
            self.d.end()
        return None


def check_skus(scenarios):
    """Items live in one shop for the whole run: each scenario makes its own."""
    seen = {}
    for s in scenarios:
        for st in s["steps"]:
            m = re.search(r"`(?:ITEM ADD|DROP CREATE) (\S+)", st, re.I)
            if m:
                sku = m.group(1).lower()
                if seen.get(sku, s["name"]) != s["name"]:
                    raise ScenarioError("sku %s made by %s and %s" % (sku, seen[sku], s["name"]))
                seen[sku] = s["name"]


def not_applicable(driver, scenario):
    """Why scenario cannot run on this host (an actor kind its network has
    no user for, driver.unsupported_kinds), or None."""
    why = ["%s: %s" % (k, driver.unsupported_kinds[k]) for k in sorted(set(scenario["actors"].values()))
           if k in driver.unsupported_kinds]
    if scenario["name"] in driver.not_applicable_scenarios:
        why.append(driver.not_applicable_scenarios[scenario["name"]])
    return "; ".join(why) or None


def tap_line(ok, name, detail="", skip=None):
    print("%s %s%s" % ("ok" if ok else "not ok", name, " # SKIP not applicable: %s" % skip if skip else ""),
          flush=True)
    for line in str(detail).splitlines():
        print("#   %s" % line, flush=True)


def main(driver_class):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="run only the scenarios whose name matches")
    ap.add_argument("--no-negative", action="store_true", help="skip the negative scenarios")
    args = ap.parse_args()
    only = re.compile(args.only) if args.only else None
    pick = [s for s in scenario_data.SCENARIOS if not only or only.search(s["name"])]
    negs = [] if args.no_negative else [s for s in scenario_data.NEGATIVE if not only or only.search(s["name"])]
    check_skus(scenario_data.SCENARIOS + scenario_data.NEGATIVE)
    drv = driver_class()
    failed = 0
    tag = "x%03x" % random.randrange(0x1000)
    try:
        drv.start()
    except Exception as e:
        tap_line(False, "%s: the host starts" % drv.name, "%s: %s\n%s" % (type(e).__name__, e,
                 "\n".join(drv.failure_logs())))
        # What started before the failure (a server, a database) goes too.
        try:
            drv.stop()
        except Exception as e2:
            print("# after the failed start, stop() also failed: %s: %s" % (type(e2).__name__, e2))
        sys.exit(1)
    try:
        sid = 0
        for s in pick:
            sid += 1
            na = not_applicable(drv, s)
            if na:
                tap_line(True, "%s: %s" % (drv.name, s["name"]), skip=na)
                continue
            t0 = time.monotonic()
            run = Run(drv, s, sid, tag)
            try:
                res = run.run()
            except Exception as e:  # the driver broke: a failure, with its cause
                res = (-1, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
            name = "%s: %s (%.1f s)" % (drv.name, s["name"], time.monotonic() - t0)
            note = ("the room showed %d of its senders' own lines (this host cannot intercept room lines)"
                    % run.echoed) if run.echoed else ""
            if res is not None:
                failed += 1
                tap_line(False, name, res[1] + "\n" + "\n".join(drv.failure_logs()))
            else:
                tap_line(True, name, note)
        for s in negs:
            sid += 1
            want = s["fails_at"] - 1
            name = "%s: negative: %s fails at step %d" % (drv.name, s["name"], want + 1)
            na = not_applicable(drv, s)
            if na:
                tap_line(True, name, skip=na)
                continue
            try:
                res = Run(drv, s, sid, tag).run()
            except Exception as e:
                res = (-1, "%s: %s" % (type(e).__name__, e))
            ok = res is not None and res[0] == want and "scenario error" not in res[1]
            if not ok:
                failed += 1
            tap_line(ok, name, ("caught: " + res[1]) if ok else ("not caught as intended: %r" % (res,)))
    finally:
        # The host stops cleanly: the frame driver's exit status carries
        # ASan's leak check and UBSan of the engine's shutdown.
        try:
            drv.stop()
            tap_line(True, "%s: the host stops cleanly" % drv.name)
        except Exception as e:
            failed += 1
            tap_line(False, "%s: the host stops cleanly" % drv.name, "%s: %s" % (type(e).__name__, e))
    sys.exit(1 if failed else 0)
