#!/usr/bin/python3
"""test_irc_roles.py — generic roles over a real IRC network (InspIRCd +
Anope + PostgreSQL), with halfop loaded (customprefix, rank 20000) and
tip_message_hold="30".

The module maps channel op to the host and moderator roles and halfop to
the moderator role only; what each role may do is decided in core:

- a halfop gets a held tip message (the moderators' NOTICE goes to
  %#live, halfops and above, when halfop exists), and may `!hide` it;
- a halfop may not host: `!event start` is refused ("only the channel's
  hosts"), while the channel operator starts an event;
- a member without a rank neither hears the held message nor may hide.

Own database e2e_roles_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from test_irc_live import CHAN, funded, registered, say  # noqa: E402

HALFOP_CONF = ('<module name="customprefix">\n'
               '<customprefix name="halfop" letter="h" prefix="%" rank="20000" ranktoset="30000" '
               'ranktounset="30000" depriv="yes">')


def moderators_notice(c, regex, since, timeout=15):
    """A server NOTICE to %#live (halfops and above)."""
    rx = re.compile(regex)
    return c.expect(lambda m: m.command == "NOTICE" and m.target.lower() == "%" + CHAN
                    and "!" not in m.prefix and rx.search(m.text),
                    timeout, "NOTICE to %%%s /%s/" % (CHAN, regex), since)


def scenario(tap, env, db):
    host = registered(env, "host")
    host.join(CHAN)  # first in: channel operator
    half = registered(env, "half")
    bob = registered(env, "bob")
    for c in (half, bob):
        c.join(CHAN)
    state = {}

    def halfop():
        m = half.mark()
        host.send("MODE %s +h %s" % (CHAN, half.nick))
        return half.expect(lambda x: x.command == "MODE" and "+h" in x.raw and half.nick in x.raw,
                           15, "MODE +h", m)
    tap.run("the channel operator makes a halfop", halfop)
    tap.run("tipper and host have credits", lambda: all([funded(c) for c in (bob, host)]))

    def held():
        h, b = half.mark(), bob.mark()
        m = say(bob, "!tip %s 1 rude thing" % host.nick, r"receipt (\d+)")
        state["tip"] = re.search(r"receipt (\d+)", m.text).group(1)
        moderators_notice(half, r"^Tip %s from %s to %s says: rude thing -- " % (state["tip"], bob.nick, host.nick), h)
        leaked = [x.raw for x in bob.seen[b:] if "says: rude thing" in x.text]
        if leaked:
            raise AssertionError("a member without a rank heard it: %r" % leaked)
        return True
    tap.run("a held tip message reaches the halfop (%%%s), not a plain member" % CHAN, held)

    def hide():
        say(bob, "!hide %s" % state["tip"], r"^no permission")
        return say(half, "!hide %s" % state["tip"],
                   r"^The message of tip %s is hidden; the tip stands\.$" % state["tip"])
    tap.run("the halfop may !hide it (a plain member may not)", hide)

    tap.run("the halfop may not host: !event start refused",
            lambda: say(half, "!event start 10 Party", r"^no permission: only the channel's hosts run events"))
    tap.run("the channel operator hosts",
            lambda: say(host, "!event start 10 Party", r"^Event started \(id \d+\)\.$"))

    def ledger():
        rows = db.query("SELECT transfer_id FROM hidden_messages")
        if [r[0] for r in rows] != [state["tip"]]:
            raise AssertionError("hidden %r" % rows)
        return True
    tap.run("ledger: the halfop's hide is recorded", ledger)


if __name__ == "__main__":
    os.environ["IRC_EXTRA_CONF"] = HALFOP_CONF
    ic.network_test("roles", scenario, tag_extra=ic.DEMO_TAGS + ' tip_message_hold="30"')
