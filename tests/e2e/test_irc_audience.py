#!/usr/bin/python3
"""test_irc_audience.py — an event's audience over a real IRC network
(InspIRCd + Anope + PostgreSQL): attendance from real joins, parts and the
roster, attendees-only drops, paid highlights, paid reactions, the privacy
opt-out and the summary.

- `!event start`: members already in #live count as attending (the module
  answers the engine's roster request with the channel's members);
- `!event tier gold 1 60`: `!highlight gold Hello world` is pinned in the
  channel ("HIGHLIGHT from <nick>: Hello world"); a second highlight waits
  behind it, and when the event stops first it is refunded by the engine;
- `!event react 0.05`: two `!react 🔥` are shown aggregated when the event
  ends ("Reactions in the last minute: 2 🔥");
- `!drop create vip 3 1 attendees-only`: a buyer outside the channel is
  refused ("only for those attending the event"); once he joins #live he
  may buy;
- `!tally privacy on`: the summary does not name that supporter;
- the summary counts the attendees; the ledger holds the attendance rows,
  the memo of the highlight, the refund of the unshown one; `tally check`.

Own database e2e_audience_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from test_irc_live import CHAN, ask, chan_notice, funded, make_creator, registered, say  # noqa: E402

FIRE = "\U0001F525"


def scenario(tap, env, db):
    host = registered(env, "host")
    host.join(CHAN)  # first in: channel operator
    bob, carol, dave = (registered(env, p) for p in ("bob", "carol", "dave"))
    watcher = env.client(ic.unique_nick("watch"))
    for c in (bob, carol, watcher):
        c.join(CHAN)
    state = {}
    tap.run("an IRC operator gives the host the creator role (selling needs it)",
            lambda: make_creator(env, host))

    def warmup():
        for c in (host, bob, carol, dave):
            funded(c)
        mark = watcher.mark()
        say(host, "!drop create warm 20 0.10", r"^Drop warm created\.$")
        chan_notice(watcher, r"^LIVE NOW: drop warm", mark)
        for c in (bob, carol, dave):
            m = ask(c, "BUY warm", r"CONFIRM (\S+)")
            code = re.search(r"CONFIRM (\S+)", m.text).group(1)
            ask(c, "CONFIRM %s" % code, r"receipt \d+")
        return True
    tap.run("three buyers agreed to pay (a first purchase with CONFIRM)", warmup)

    def start():
        mark = watcher.mark()
        say(host, "!event start 30 Audience night", r"^Event started")
        chan_notice(watcher, r'^Live event "Audience night" starts now', mark)
        state["w"] = watcher.mark()
        return True
    tap.run("!event start (members already here count as attending)", start)

    def highlight():
        mark = watcher.mark()
        say(host, "!event tier gold 1 60", r"^Highlight tier priced\.$")
        chan_notice(watcher, r"^Highlights on sale: gold pins your message for 60 s, 1\.00 credits\. "
                    r"Type: !highlight gold <message>$", mark)
        say(bob, "!highlight gold Hello world", r"^Bought 1x highlight gold .* receipt \d+")
        chan_notice(watcher, r"^HIGHLIGHT from %s: Hello world$" % bob.nick, mark)
        m = say(carol, "!highlight gold Me next", r"^Bought 1x highlight gold .* receipt (\d+)")
        state["queued"] = re.search(r"receipt (\d+)", m.text).group(1)
        return True
    tap.run("!highlight gold Hello world is pinned in the channel; a second one waits its turn", highlight)

    def react():
        mark = watcher.mark()
        say(host, "!event react 0.05", r"^Reactions priced\.$")
        chan_notice(watcher, r"^Paid reactions on sale: 0\.05 credits each\. Type: !react <emote>$", mark)
        for _ in range(2):
            say(carol, "!react " + FIRE, r"^Bought 1x reaction")
        return True
    tap.run("!event react 0.05: two paid reactions", react)

    def attendees_only():
        say(host, "!drop create vip 3 1 attendees-only", r"^Drop vip created\.$")
        ask(dave, "BUY vip", r"^only for those attending the event")
        dave.join(CHAN)
        time.sleep(0.5)  # the join reaches the engine as a presence frame
        return ask(dave, "BUY vip", r"^Bought 1x drop vip")
    tap.run("an attendees-only drop refuses a buyer outside #live, sells once he joins", attendees_only)

    tap.run("!tally privacy on", lambda: say(carol, "!tally privacy on", r"^Event summaries will not name you\.$"))

    def stop():
        mark = state["w"]
        say(host, "!event stop", r"^Event stopped\.$")
        chan_notice(watcher, r"^Reactions in the last minute: 2 %s$" % FIRE, mark)
        return chan_notice(watcher, r"^Attendance: 4 attendees, \d+ min on average\. Top supporters: .*"
                    r"and 1 who prefers not to be named\.", mark)
    tap.run("!event stop: reactions aggregated, 4 attendees, the private supporter unnamed", stop)

    def ledger():
        time.sleep(1.5)  # the refund of the unshown highlight commits
        n = int(db.scalar("SELECT count(*) FROM attendance a JOIN accounts c ON c.id = a.account_id"
                          " WHERE c.name IN ('user:%s', 'user:%s', 'user:%s', 'user:%s')"
                          % (host.nick, bob.nick, carol.nick, dave.nick)))
        if n != 4:
            raise AssertionError("attendance rows: %d" % n)
        if int(db.scalar("SELECT count(*) FROM transfers WHERE memo = 'Hello world'")) != 1:
            raise AssertionError("the highlight's text is not on its purchase")
        refunds = int(db.scalar("SELECT count(*) FROM transfers WHERE kind = 3 AND idem_key = 'hl-refund:%s'"
                                % state["queued"]))
        if refunds != 1:
            raise AssertionError("the unshown highlight was not refunded (%d)" % refunds)
        return True
    tap.run("ledger: 4 attendance rows, the highlight's memo, the unshown highlight refunded", ledger)


if __name__ == "__main__":
    ic.network_test("audience", scenario)
