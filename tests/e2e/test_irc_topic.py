#!/usr/bin/python3
"""test_irc_topic.py — paid highlights pinned as the channel topic
(`highlight_topic="1"`) on a real IRC network (InspIRCd + Anope + PostgreSQL).

- the channel has its own topic; the host prices a 3-second tier;
- `!highlight gold Look up here` sets the topic to
  "HIGHLIGHT from <nick>: Look up here" (a TOPIC line the members see);
- when the tier's time is up, the channel's own topic comes back.

Own database e2e_topic_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from test_irc_live import CHAN, ask, funded, make_creator, registered, say  # noqa: E402

TAGS = ic.DEMO_TAGS + ' highlight_topic="1"'


def topic_line(c, regex, since, timeout=30):
    rx = re.compile(regex)
    return c.expect(lambda m: m.command == "TOPIC" and m.target.lower() == CHAN and rx.search(m.text),
                    timeout, "TOPIC /%s/" % regex, since)


def scenario(tap, env, db):
    host = registered(env, "host")
    host.join(CHAN)  # first in: channel operator
    buyer = registered(env, "bea")
    watcher = env.client(ic.unique_nick("watch"))
    for c in (buyer, watcher):
        c.join(CHAN)

    def setup():
        make_creator(env, host)  # selling (drops, highlight tiers) needs the creator role
        funded(host)
        funded(buyer)
        mark = watcher.mark()
        host.send("TOPIC %s :Welcome to the show" % CHAN)
        topic_line(watcher, r"^Welcome to the show$", mark)
        say(host, "!drop create warm 5 0.10", r"^Drop warm created\.$")
        m = ask(buyer, "BUY warm", r"CONFIRM (\S+)")
        ask(buyer, "CONFIRM " + re.search(r"CONFIRM (\S+)", m.text).group(1), r"receipt \d+")
        say(host, "!event start 30 Topic night", r"^Event started")
        return say(host, "!event tier gold 1 3", r"^Highlight tier priced\.$")
    tap.run("the channel's own topic, a consented buyer, an event with a 3 s tier", setup)

    def pinned():
        mark = watcher.mark()
        say(buyer, "!highlight gold Look up here", r"^Bought 1x highlight gold")
        topic_line(watcher, r"^HIGHLIGHT from %s: Look up here$" % buyer.nick, mark)
        return topic_line(watcher, r"^Welcome to the show$", mark, timeout=30)
    tap.run("!highlight pins the message as the topic, then the channel's topic comes back", pinned)


if __name__ == "__main__":
    ic.network_test("topic", scenario, tag_extra=TAGS)
