#!/usr/bin/python3
"""test_irc_freeunit.py — a free unit a quiz gives, over a real IRC network
(InspIRCd + Anope + PostgreSQL), issue 14 (sql/020).

- the host (a creator, channel operator) sells tee (10.00, 2 in stock) and
  saves a reward that is one free tee (`REWARD ADD gift free=tee`); bob wins
  it in a quiz in #live;
- bob's BUY tee is "for 0.00": the receipt's NOTICE, then the reward's
  ("your tee is free ... never refunded"); the ledger has a kind 6 transfer
  of amount 0 with two zero legs and the use row; REFUND of it is refused,
  saying why; carol (not a winner) pays 10.00 and takes the last tee.

Own database e2e_freeunit_<pid>; env as in test_irc_basic.py.
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
        ask(host, "ITEM ADD tee 10 2 Tee", r"added")
        ask(host, "ITEM ADD pin 1 Pin", r"added")
        for c in (bob, carol):
            funded(c)
            m = ask(c, "BUY pin", r"CONFIRM (\S+)")
            ask(c, "CONFIRM %s" % re.search(r"CONFIRM (\S+)", m.text).group(1), r"receipt \d+")
        return True
    tap.run("the host sells tee (10.00, 2 in stock); bob and carol agreed to pay once", shop)

    tap.run("REWARD ADD gift free=tee: saved",
            lambda: ask(host, "REWARD ADD gift free=tee for=10m", r"Reward gift saved: one tee free"))
    tap.run("a free unit goes without a discount",
            lambda: ask(host, "REWARD ADD bad free=tee discount=10%", r"free=<sku> and access=<sku> go without"))

    state = {}

    def quiz():
        say(host, "!event start 30 Quiz night", r"Event started \(id \d+\)\.")
        time.sleep(1.0)  # the roster the module reports: who is present when the quiz starts
        state["mark"] = watcher.mark()
        say(host, "!quiz start 6 Two plus two? | four | 4 winners=1 reward=gift min-players=2", r"Quiz started for 6 s")
        chan_notice(watcher, r"^QUIZ \(6 s\): Two plus two\?", state["mark"])
        ask(bob, "ANSWER four", r"^Right!")
        ask(carol, "ANSWER five", r"Not right")
        chan_notice(watcher, r"^Quiz over: the answer was four\. 2 answered; the winner: %s" % re.escape(bob.nick),
                    state["mark"], timeout=60)
        return True
    tap.run("bob wins the free tee in a quiz", quiz)

    tap.run("bob's REWARDS lists it",
            lambda: ask(bob, "REWARDS", r"gift from %s: one tee free" % re.escape(host.nick)))

    def free():
        mark = bob.mark()
        m = ask(bob, "BUY tee", r"^Bought 1x Tee \(tee\) for 0\.00 credits\. receipt (\d+)")
        receipt = int(re.search(r"receipt (\d+)", m.text).group(1))
        bob.wait_notice(r"^Reward gift used on receipt %d: your tee is free \(the creator's gift; never refunded\)"
                        % receipt, 30, since=mark)
        time.sleep(0.3)
        row = db.scalar("SELECT count(*) FROM transfers WHERE id = %d AND kind = 6 AND amount_minor = 0 AND qty = 1"
                        " AND leg_amounts = ARRAY[0, 0]::bigint[]" % receipt)
        if int(row) != 1:
            raise AssertionError("receipt %d is not a kind 6 transfer of 0 with two zero legs" % receipt)
        uses = db.scalar("SELECT count(*) FROM reward_uses WHERE kind = 1 AND transfer_id = %d AND discount_minor = 0"
                         % receipt)
        if int(uses) != 1:
            raise AssertionError("no reward_uses row for receipt %d" % receipt)
        state["receipt"] = receipt
        return True
    tap.run("bob's BUY tee is free: the receipt, then the reward; a kind 6 transfer and its use row", free)

    tap.run("REFUND of the free unit is refused, saying why",
            lambda: ask(bob, "REFUND %d" % state["receipt"], r"never refunded"))
    tap.run("carol (not a winner) pays the full price for the last tee",
            lambda: ask(carol, "BUY tee", r"^Bought 1x Tee \(tee\) for 10\.00 credits"))
    tap.run("then tee is sold out (the free unit took stock)",
            lambda: ask(bob, "BUY tee", r"sold out"))


if __name__ == "__main__":
    ic.network_test("freeunit", scenario, tag_extra=ic.DEMO_TAGS + ' reward_min_account_age="0"')
