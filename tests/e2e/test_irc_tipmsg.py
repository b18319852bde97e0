#!/usr/bin/python3
"""test_irc_tipmsg.py — tip messages held for moderators, over a real IRC
network (InspIRCd + Anope + PostgreSQL), with tip_message_hold="3".

- `!tip <host> 1 great set`: the channel hears the thanks at once, without
  the message; the channel's operator (the host, first to join) gets the
  message as a NOTICE to @#live (STATUSMSG), a member without ops does not;
  three seconds later the channel hears the message;
- `!tip <host> 1 rude thing` then the host's `!hide <receipt>`: the message
  never reaches the channel, the operators hear who hid it, and the tip
  stands (both tips are in the ledger, one hidden_messages row);
- `!hide` from a member without ops is refused; `!hide` of a message
  already said is refused with the reason (IRC cannot take a line back).

Own database e2e_tipmsg_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from test_irc_live import CHAN, chan_notice, funded, registered, say  # noqa: E402

HOLD_S = 3


def ops_notice(c, regex, since, timeout=15):
    """A server NOTICE to @#live (the channel's operators only)."""
    rx = re.compile(regex)
    return c.expect(lambda m: m.command == "NOTICE" and m.target.lower() == "@" + CHAN
                    and "!" not in m.prefix and rx.search(m.text),
                    timeout, "NOTICE to @%s /%s/" % (CHAN, regex), since)


def scenario(tap, env, db):
    host = registered(env, "host")
    host.join(CHAN)  # first in: channel operator
    bob = registered(env, "bob")
    watcher = env.client(ic.unique_nick("watch"))  # no account, no ops: only listens
    for c in (bob, watcher):
        c.join(CHAN)
    state = {}

    tap.run("tipper and host have credits", lambda: all([funded(c) for c in (bob, host)]))

    def held():
        w, h = watcher.mark(), host.mark()
        m = say(bob, "!tip %s 1 great set" % host.nick, r"^Tipped 1\.00 credits to %s\. receipt (\d+) - your message"
                r" is shown after the channel's moderation hold$" % host.nick)
        state["kept"] = re.search(r"receipt (\d+)", m.text).group(1)
        state["w"] = w
        chan_notice(watcher, r"^Thank you %s for tipping %s 1\.00 credits! Their message follows in %d s\.$"
                    % (bob.nick, host.nick, HOLD_S), w)
        return ops_notice(host, r"^Tip %s from %s to %s says: great set -- shown here in %d s unless a moderator"
                   r" says HIDE %s$" % (state["kept"], bob.nick, host.nick, HOLD_S, state["kept"]), h)
    tap.run("!tip with a message: thanks at once, the message to @%s only" % CHAN, held)

    def hidden():
        h = host.mark()
        m = say(bob, "!tip %s 1 rude thing" % host.nick, r"receipt (\d+)")
        state["hidden"] = re.search(r"receipt (\d+)", m.text).group(1)
        say(bob, "!hide %s" % state["hidden"], r"^no permission")
        say(host, "!hide %s" % state["hidden"], r"^The message of tip %s is hidden; the tip stands\.$"
            % state["hidden"])
        return ops_notice(host, r"^%s hid the message of tip %s from %s$" % (host.nick, state["hidden"], bob.nick), h)
    tap.run("!hide <receipt> by the channel operator (refused to a member)", hidden)

    def shown():
        chan_notice(watcher, r"^%s's message with the tip of 1\.00 credits to %s: great set$"
                    % (bob.nick, host.nick), state["w"])
        time.sleep(HOLD_S + 1)  # the hidden one's hold is over too
        leaked = [m.raw for m in watcher.seen[state["w"]:] if "rude thing" in m.text or "says:" in m.text]
        if leaked:
            raise AssertionError("seen by a member without ops: %r" % leaked)
        return say(host, "!hide %s" % state["kept"], r"cannot be taken back on IRC")
    tap.run("after the hold the kept message is said, the hidden one never; a said one cannot be hidden",
            shown)

    def ledger():
        tips = int(db.scalar("SELECT count(*) FROM transfers WHERE kind = 2"))
        rows = db.query("SELECT transfer_id FROM hidden_messages")
        if tips != 2 or [r[0] for r in rows] != [state["hidden"]]:
            raise AssertionError("tips %d, hidden %r" % (tips, rows))
        if int(db.scalar("SELECT count(*) FROM held_messages WHERE channel = '%s'" % CHAN)) != 2:
            raise AssertionError("held_messages rows missing")
        return True
    tap.run("ledger: both tips moved their money; one hidden_messages row", ledger)


if __name__ == "__main__":
    ic.network_test("tipmsg", scenario, tag_extra=ic.DEMO_TAGS + ' tip_message_hold="%d"' % HOLD_S)
