#!/usr/bin/python3
"""test_irc_challenge.py — a challenge, its badge and its reward over a real
IRC network (InspIRCd + Anope + PostgreSQL), issue 14.

- the host (a creator, channel operator) saves a reward, starts an event in
  #live and, in the room, a challenge bound to it (`!challenge add big
  spent=10 event reward=r5 badge=Big`); a buyer cannot set one;
- bob's purchase outside the event does not count; his `!buy tee` in the
  room does: the room hears that he reached it, once (a second purchase
  says nothing more);
- WALLET shows his badge, REWARDS the reward, SHOP <host> the challenge on
  the host's card, CHALLENGE LIST the rule;
- the event's summary names who reached what; CHALLENGE DEL removes it;
  one achievement row, one grant, and `tally check` passes.

Own database e2e_challenge_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from test_irc_live import CHAN, ask, chan_notice, funded, make_creator, registered, say  # noqa: E402


def scenario(tap, env, db):
    host = registered(env, "host")
    host.join(CHAN)  # first in: channel operator
    bob, carol = registered(env, "bob"), registered(env, "carol")
    watcher = env.client(ic.unique_nick("watch"))
    for c in (bob, carol, watcher):
        c.join(CHAN)
    tap.run("an IRC operator gives the host the creator role", lambda: make_creator(env, host))

    def shop():
        ask(host, "ITEM ADD tee 10 Tee", r"added")
        for c in (bob, carol):
            funded(c)
            m = ask(c, "BUY tee", r"CONFIRM (\S+)")
            ask(c, "CONFIRM %s" % re.search(r"CONFIRM (\S+)", m.text).group(1), r"receipt \d+")
        ask(host, "REWARD ADD r5 discount=5% for=1h", r"Reward r5 saved")
        return True
    tap.run("the host sells tee (10.00) with a reward r5; bob and carol bought once, outside any event", shop)

    def event():
        say(host, "!event start 30 Challenge night", r"Event started \(id \d+\)\.")
        time.sleep(1.0)
        return True
    tap.run("the host starts an event in #live", event)

    tap.run("a buyer cannot set a challenge (hosts and creators only)",
            lambda: ask(bob, "CHALLENGE ADD mine spent=1 badge=Me", r"no permission.*hosts and creators"))
    tap.run("the host's challenge in the room, bound to the event: saved",
            lambda: say(host, "!challenge add big spent=10 event reward=r5 badge=Big",
                        r"^Challenge big saved: buy for 10\.00 credits in one event\. Reaching it earns the badge Big and "
                        r"the reward r5, once per account\."))
    tap.run("a refusal names its reason (two kinds in one challenge)",
            lambda: say(host, "!challenge add two spent=1 tipped=1 badge=X", r"one of minutes=, spent="))
    tap.run("CHALLENGE LIST shows it to anyone",
            lambda: ask(carol, "CHALLENGE LIST", r"big by %s: buy for 10\.00 credits in one event, badge Big, reward r5"
                        % re.escape(host.nick)))

    state = {}

    def reached():
        state["mark"] = watcher.mark()
        say(bob, "!buy tee", r"^Bought 1x Tee \(tee\) for 10\.00 credits")
        chan_notice(watcher, r"^%s reached the challenge big \(buy for 10\.00 credits in one event\), badge Big, "
                    r"reward r5 \(REWARDS shows it\)\." % re.escape(bob.nick), state["mark"])
        return True
    tap.run("bob's purchase in the room reaches it: the room hears it", reached)

    def once():
        mark = watcher.mark()
        say(bob, "!buy tee", r"^Bought 1x Tee")
        time.sleep(2.5)
        again = [m for m in watcher.seen[mark:] if m.command == "NOTICE" and "reached the challenge" in m.text]
        if again:
            raise AssertionError("reached twice: %r" % again[0].raw)
        return True
    tap.run("a second purchase reaches nothing more", once)

    tap.run("WALLET shows bob's badge", lambda: ask(bob, "WALLET", r"Badges: Big$"))
    tap.run("carol has none", lambda: ask(carol, "WALLET", r"daily cap: [^)]*\)$"))
    tap.run("REWARDS lists the reward the challenge gave",
            lambda: ask(bob, "REWARDS", r"r5 from %s: 5%% off every item" % re.escape(host.nick)))

    def card():
        mark = carol.mark()
        carol.send("SHOP %s" % host.nick)
        carol.wait_notice(r"^Challenges: Big \(buy for 10\.00 credits in one event\)", 30, since=mark)
        return True
    tap.run("the host's shop card lists the challenge", card)

    def summary():
        mark = watcher.mark()
        say(host, "!event stop", r".")
        chan_notice(watcher, r"^Challenges reached: %s \(Big\)\.$" % re.escape(bob.nick), mark)
        return True
    tap.run("the event's summary names who reached what", summary)

    tap.run("CHALLENGE DEL removes it",
            lambda: ask(host, "CHALLENGE DEL big", r"^Challenge big deleted"))
    tap.run("the ledger: one achievement, one grant from it",
            lambda: db.scalar("SELECT count(*) FROM challenge_achievements") == "1"
            and db.scalar("SELECT count(*) FROM reward_grants g JOIN challenge_defs d ON d.id = g.quiz_id") == "1")


if __name__ == "__main__":
    ic.network_test("challenge", scenario, tag_extra=ic.DEMO_TAGS + ' reward_min_account_age="0"')
