"""driver.py — what a conformance driver is: the interface between the
network-neutral scenarios (scenarios.py, run by runner.py) and one host.

A driver is one small file, tests/conformance/driver_<host>.py, with a class
`Driver(Base)` that implements the methods below, and a two-line
tests/conformance/test_<host>.py that calls runner.main(driver_<host>.Driver).
The runner never sees the network: it tells the driver what actors do and
reads back Obs records, which it matches against the scenario's expectations.

Vocabulary (the scenarios' terms):
- an actor is a user of one kind: "user" (logged in to an account), "anon"
  (not logged in), "host" (a logged-in user who holds the host role in every
  room it joins; it always joins a room before anyone else does), "operator"
  (a logged-in server admin allowed to grant credits);
- a room is a channel, group chat or room of the network;
- "X says `T`" sends the tally command T privately (to the service), and
  "X says `T` in R" sends it in room R the way that network addresses a
  command to tally in a room (IRC: "!" prefix);
- "X is told ..." is a private answer of tally to X (Obs kind "told"); an
  answer to a line said in a room is still private and names the room;
- "R hears ..." is whatever every member of R sees in R (Obs kind "hears"):
  tally's announcements and also any member's line that reached the room;
- "R's moderators hear ..." is what only R's moderators see (Obs kind
  "moderators"; a host that cannot say something to moderators only must
  drop it, never say it to the room);
- a hint (enum tally_hint in core/include/tally.h) is named, never phrased:
  the driver turns the network's phrase back into the hint's name.
"""


# The run's configuration that scenarios rely on, the same on every host:
# rate limits off (rate_account, rate_channel = 0), welcome_grant 0 (credits
# come from TALLY GRANT), and tip messages held this long for moderators.
TIP_HOLD_S = 5


def unhint(text, phrases):
    """(text without the host's hint phrase, the hint's name), or (text, None).
    phrases maps a hint name to what the host appends for it."""
    for name, phrase in phrases.items():
        if text.endswith(phrase):
            return text[: -len(phrase)], name
    return text, None


class Obs:
    """One thing the network showed somebody, in neutral terms.

    kind  "told" (tally to an actor, privately), "hears" (said in a room),
          "moderators" (said to a room's moderators only)
    who   the actor's scenario name for "told" (e.g. "U"); None otherwise
    room  the room's scenario name ("R"): where it was said, or for "told"
          the room the answer is about (None for a private line)
    text  the engine's text, without the driver's hint phrase
    code  the reply code's name ("OK", "ESOLD_OUT") where the network shows
          it (the frame driver), else None: then only the text is checked
    hint  the hint's name ("LOG_IN"), or None for no hint
    """

    __slots__ = ("kind", "who", "room", "text", "code", "hint")

    def __init__(self, kind, who=None, room=None, text="", code=None, hint=None):
        self.kind, self.who, self.room, self.text, self.code, self.hint = kind, who, room, text, code, hint

    def __repr__(self):
        where = " in %s" % self.room if self.room else ""
        if self.kind == "told":
            extra = "".join([" code=%s" % self.code if self.code else "",
                             " hint=%s" % self.hint if self.hint else ""])
            return "%s was told%s%s: %r" % (self.who, where, extra, self.text)
        return "%s%s: %r" % (self.kind, where, self.text)


class Base:
    """The fixed interface. Names are chosen by the runner: accounts and room
    names unique across the whole run, so one network (one server start)
    serves every scenario."""

    name = "base"
    # Bounded waits, in seconds: an expectation FAILS at its deadline; a
    # "nobody else hears anything" listens this long before it passes.
    deadline_s = 15.0
    quiet_s = 1.0

    # Capabilities: what a host can do that not every host can (a real
    # difference of the network, written in the host's docs; never a way to
    # bend a scenario). The runner reads them; it prints each use.
    #
    # intercepts_room_lines: a command said in a room is taken before the
    # room sees it (IRC, Prosody's module). False (an XEP-0114 component, a
    # Matrix bot): the room shows the sender's line, so the runner expects
    # it, as room_echo() renders it, where it would otherwise demand
    # silence, and a "nobody else hears anything" FAILS if that echo never
    # came (the host's claim is checked too). Everything else is checked as
    # on any host.
    intercepts_room_lines = True
    # unsupported_kinds: actor kinds (driver.py's vocabulary) the network
    # has no such user for, each with the reason. A scenario with such an
    # actor is reported "not applicable" with the reason (TAP "# SKIP",
    # counted as skipped by tests/run.sh, never as passed).
    unsupported_kinds = {}
    # not_applicable_scenarios: scenario names whose premise the network
    # does not have, each with the reason (reported like an unsupported
    # kind: "# SKIP", never a pass). Only for a real difference of the
    # network, said in its docs; never to hide a failure.
    not_applicable_scenarios = {}

    def room_echo(self, account, text):
        """What a room's member sees ("hears" text) when the user with this
        account says text in the room (only asked when
        intercepts_room_lines is False)."""
        return "<%s> !%s" % (account, text)

    def start(self):
        """Once per run: start the host (servers, engine, database); return
        when a command would be answered (not "starting up")."""
        raise NotImplementedError

    def stop(self):
        """Once per run: stop whatever start started."""
        raise NotImplementedError

    def begin(self, actors, rooms):
        """Before a scenario: create its actors, connected and (unless anon)
        logged in. actors maps a scenario name ("U") to (kind, account
        name); rooms maps a scenario name ("R") to the room's name."""
        raise NotImplementedError

    def end(self):
        """After a scenario: disconnect its actors."""
        raise NotImplementedError

    def say(self, actor, text, room=None):
        """actor sends text to tally, privately or in room (which it joined)."""
        raise NotImplementedError

    def join(self, actor, room):
        """actor enters room; returns once the network has it in the room."""
        raise NotImplementedError

    def leave(self, actor, room):
        """actor leaves room; returns once the network has it out."""
        raise NotImplementedError

    def poll(self, timeout):
        """Waits up to timeout seconds for what the network shows; returns
        a list of Obs (empty when nothing came)."""
        raise NotImplementedError

    def failure_logs(self):
        """Lines worth printing after a failed scenario (server logs)."""
        return []
