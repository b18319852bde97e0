#!/usr/bin/python3
"""test_irc_quiz.py — a quiz and its reward over a real IRC network
(InspIRCd + Anope + PostgreSQL), issue 14.

- the host (a creator, channel operator) saves a reward (`REWARD ADD q10
  discount=10%`), starts an event and then a quiz in #live with it;
- bob answers privately with a typo (`ANSWER amsterdan`): right (one edit in
  nine code points); carol answers in the room (`!answer Rotterdam`): not
  right, and nobody in the room sees her line (the module intercepts it);
  a second answer is refused; the room hears "N have answered" and, at the
  deadline, the answer and the winner;
- bob's REWARDS lists it; his next BUY of the host's item costs 10 % less
  (the receipt's NOTICE, then the reward's), carol pays the full price; the
  ledger has the use row, and `tally check` passes;
- then a round of two questions (QUIZ ROUND 2), the second asked privately
  naming the room (QUIZ START #live ...): the scoreboard after each, the
  winner by points.

Own database e2e_quiz_<pid>; env as in test_irc_basic.py.
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
        ask(host, "ITEM ADD pin 1 Pin", r"added")
        for c in (bob, carol):
            funded(c)
            m = ask(c, "BUY pin", r"CONFIRM (\S+)")
            ask(c, "CONFIRM %s" % re.search(r"CONFIRM (\S+)", m.text).group(1), r"receipt \d+")
        return True
    tap.run("the host sells tee (10.00); bob and carol agreed to pay once", shop)

    tap.run("REWARD ADD q10 discount=10%: saved",
            lambda: ask(host, "REWARD ADD q10 discount=10% for=10m", r"Reward q10 saved: 10% off every item"))
    tap.run("a buyer cannot define rewards (creators only)",
            lambda: ask(bob, "REWARD ADD mine discount=50%", r"no permission"))

    def event():
        say(host, "!event start 30 Quiz night", r"Event started \(id \d+\)\.")
        time.sleep(1.0)  # the roster the module reports: who is present when the quiz starts
        return True
    tap.run("the host starts an event in #live (the roster says who is present)", event)

    state = {}

    def start():
        state["mark"] = watcher.mark()
        say(host, "!quiz start 20 Capital of the Netherlands? | Amsterdam winners=1 reward=q10 min-players=2",
            r"Quiz started for 20 s")
        chan_notice(watcher, r"^QUIZ \(20 s\): Capital of the Netherlands\? - answer privately: ANSWER <text>\. "
                    r"The first 1 right answer win; each wins the reward q10", state["mark"])
        return True
    tap.run("!quiz start: the room hears the question, the reward and how to answer", start)

    tap.run("bob answers privately with a typo: accepted",
            lambda: ask(bob, "ANSWER amsterdan", r"^Right! Your answer is in \(number 1 by arrival\)"))
    tap.run("bob's second answer is refused",
            lambda: ask(bob, "ANSWER Amsterdam", r"already answered"))
    tap.run("carol's wrong answer in the room is taken, and refused as not right",
            lambda: say(carol, "!answer Rotterdam", r"Not right"))

    def hidden():
        seen = [m for m in watcher.seen[state["mark"]:] if m.command == "PRIVMSG" and "Rotterdam" in m.text]
        if seen:
            raise AssertionError("the room saw an answer: %r" % seen[0].raw)
        return True
    tap.run("nobody in the room saw the answer line", hidden)

    tap.run("the room hears how many answered, never what",
            lambda: chan_notice(watcher, r"^Quiz: \d (has|have) answered so far\.$", state["mark"]))
    tap.run("at the deadline: the answer and the winner",
            lambda: chan_notice(watcher, r"^Quiz over: the answer was Amsterdam\. 2 answered; the winner: %s" % bob.nick,
                                state["mark"], timeout=60))

    tap.run("bob's REWARDS lists the reward",
            lambda: ask(bob, "REWARDS", r"q10 from %s: 10%% off every item" % host.nick))

    def applied():
        mark = bob.mark()
        m = ask(bob, "BUY tee", r"^Bought 1x Tee \(tee\) for 9\.00 credits\. receipt (\d+)")
        receipt = int(re.search(r"receipt (\d+)", m.text).group(1))
        bob.wait_notice(r"^Reward q10 used on receipt %d: 1\.00 credits off" % receipt, 30, since=mark)
        time.sleep(0.3)
        uses = db.scalar("SELECT count(*) FROM reward_uses WHERE kind = 1 AND transfer_id = %d"
                         " AND discount_minor = 100" % receipt)
        if int(uses) != 1:
            raise AssertionError("no reward_uses row for receipt %d" % receipt)
        total = db.scalar("SELECT sum(amount_minor) FROM entries WHERE transfer_id = %d" % receipt)
        if int(total) != 0:
            raise AssertionError("the purchase's entries sum to %s" % total)
        return True
    tap.run("bob's next BUY costs 9.00: the receipt, then the reward it used; one use row; entries sum to zero",
            applied)
    tap.run("used once: bob's next BUY is at the full price",
            lambda: ask(bob, "BUY tee", r"^Bought 1x Tee \(tee\) for 10\.00 credits"))
    tap.run("carol (not a winner) pays the full price",
            lambda: ask(carol, "BUY tee", r"^Bought 1x Tee \(tee\) for 10\.00 credits"))

    # A round of two questions (sql/019): points for speed, a scoreboard after
    # each question, the winner by points; the second question is asked
    # privately, naming the room (how hosts whose rooms show every line do it).
    def round_open():
        state["mark"] = watcher.mark()
        say(host, "!quiz round 2 winners=1 min-players=2", r"Round of 2 questions opened")
        chan_notice(watcher, r"^QUIZ ROUND of 2 questions, asked one at a time: answer each privately", state["mark"])
        return True
    tap.run("!quiz round 2: the room hears how a round scores", round_open)

    def round_q1():
        say(host, "!quiz start 8 Two plus two? | 4 | four", r"Question 1 of 2 asked for 8 s")
        chan_notice(watcher, r"^QUIZ 1/2 \(8 s\): Two plus two\? - answer privately", state["mark"])
        ask(bob, "ANSWER four", r"^Right!")
        ask(carol, "ANSWER 5", r"Not right")
        chan_notice(watcher, r"^Question 1 of 2 over: the answer was 4\. 2 answered, 1 right\. Scores: %s \d+\.$"
                    % re.escape(bob.nick), state["mark"], timeout=30)
        return True
    tap.run("question 1: bob right, carol wrong; the room hears the scoreboard", round_q1)

    def round_q2():
        ask(host, "QUIZ START %s 8 Smallest prime? | 2 | two" % CHAN, r"Question 2 of 2 asked for 8 s")
        chan_notice(watcher, r"^QUIZ 2/2 \(8 s\): Smallest prime\?", state["mark"])
        ask(carol, "ANSWER 2", r"^Right!")
        ask(bob, "ANSWER two", r"^Right!")
        chan_notice(watcher, r"^Round over after 2 questions\. Final scores: %s \d+, %s \d+\. The winner: %s$"
                    % (re.escape(bob.nick), re.escape(carol.nick), re.escape(bob.nick)), state["mark"], timeout=30)
        rows = db.scalar("SELECT count(*) FROM quiz_points p JOIN quiz_round_questions x ON x.quiz_id = p.quiz_id")
        if int(rows) != 4:
            raise AssertionError("quiz_points has %s rows for the round, not 4" % rows)
        return True
    tap.run("question 2 asked privately naming #live; the round's winner by points", round_q2)


if __name__ == "__main__":
    ic.network_test("quiz", scenario, tag_extra=ic.DEMO_TAGS + ' reward_min_account_age="0"')
