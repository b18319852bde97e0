#!/usr/bin/python3
"""test_irc_live.py — a live event hosted in #live over a real IRC network.

The host is the channel's operator (the first to join a new channel gets +o
from InspIRCd) and holds the creator role (given by an IRC operator with
`TALLY ROLE`: selling needs it, channel operator status alone does not);
buyers are ordinary members with their own NickServ
accounts, a watcher has no account. Checked through the server:

- a non-op's `!event start` is refused (`no permission`), the op's works and
  the channel hears "Live event ... starts now"; `!event` shows the status;
- a drop created before the event (used for the buyers' first purchase and
  CONFIRM) is not counted in the event;
- `!drop create tee 3 2 per-user=2`: LIVE NOW, `!drop list`, a buyer takes
  2 (channel: "Only 1 left of tee!"), changes nick (same account) and is
  refused by the per-buyer limit, the other buyer takes the last one
  (channel: "SOLD OUT: tee ..."), a further buy hears `sold out`;
- a scheduled drop (`start=+1h`) refuses buys until `!drop start`, and
  `!drop stop` closes it ("Drop later closed: 1 of 5 sold.");
- a timed drop (`start=+2s for=4s`) opens and closes by itself;
- `!tip` with a message is thanked in the channel under the account name;
- `!event stop` posts the summary with the right counts and amounts;
- a second event stopped while pipelined `!buy` lines are in flight: its
  summary and "Drop rush closed" must count what the ledger holds for it
  (fails at the time of writing: totals are announced before in-flight
  purchases commit; see docs/IRC.md, "Known problem");
- the `!` lines of tally commands never reach other members, while plain
  chat and `!unknown` do;
- a de-opped host is refused;
- the ledger holds the event's transfers with event_id set (and the warm-up
  purchases without), the events row is stopped, `tally check` passes.

Own database e2e_live_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
CHAN = "#live"
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving")
TALLY_WORDS = {"SHOP", "BUY", "CONFIRM", "TIP", "WALLET", "RECEIPTS", "REFUND", "VERIFY",
               "ITEM", "TALLY", "EVENT", "DROP"}


def ask(c, line, regex=".", timeout=60):
    return ic.tally_ask(c, line, regex, timeout, retry=NOT_YET)


def say(c, text, regex=".", timeout=60):
    """Says text in #live; returns tally's private NOTICE, which must match."""
    return ic.tally_ask(c, lambda: c.privmsg(CHAN, text), regex, timeout, retry=NOT_YET)


def chan_notice(c, regex, since, timeout=30):
    """A NOTICE to #live from the server (not from a user) matching regex."""
    rx = re.compile(regex)
    return c.expect(lambda m: m.command == "NOTICE" and m.target.lower() == CHAN
                    and "!" not in m.prefix and rx.search(m.text),
                    timeout, "channel NOTICE /%s/" % regex, since)


def registered(env, prefix):
    c = env.client(ic.unique_nick(prefix))
    c.ns_register(PASSWORD)
    if c.wait_account() != c.nick:
        raise ic.IRCError("%s has no services account" % c.nick)
    return c


def funded(c, timeout=30):
    deadline = time.monotonic() + timeout
    while "balance 0.00 " in ask(c, "WALLET", r"^Wallet ").text:
        if time.monotonic() > deadline:
            raise ic.IRCError("%s never got the welcome grant" % c.nick)
        time.sleep(0.3)
    return True


def change_nick(c, new):
    mark = c.mark()
    c.send("NICK %s" % new)
    m = c.expect(lambda x: (x.command == "NICK" and x.nick == c.nick) or x.command in ("432", "433"),
                 15, "NICK", mark)
    if m.command != "NICK":
        raise ic.IRCError("NICK %s refused: %s" % (new, m.raw))
    c.nick = new


def make_creator(env, *clients):
    """Selling needs the creator role: an IRC operator gives it to each."""
    return ic.make_creators(env, [c.nick for c in clients], PASSWORD, retry=NOT_YET)


def live(tap, env, db):
    host = registered(env, "host")
    bob = registered(env, "bob")
    carol = registered(env, "carol")
    watcher = env.client(ic.unique_nick("watch"))  # no account: only listens
    clients = [host, bob, carol, watcher]
    acct = {"host": host.nick, "bob": bob.nick, "carol": carol.nick}
    state = {}
    try:
        for c in (host, bob, carol):
            funded(c)

        def op_without_role():
            # Anyone who creates a channel is its operator: that alone may
            # host an event, not sell.
            chan = "#" + ic.unique_nick("own")
            bob.join(chan)
            ic.tally_ask(bob, lambda: bob.privmsg(chan, "!drop create mine 1 1"),
                         r"^no permission: selling needs the creator role", 60, retry=NOT_YET)
            bob.send("PART %s" % chan)
            return True
        tap.run("a channel operator without the creator role: !drop create -> no permission", op_without_role)
        tap.run("an IRC operator gives the host the creator role (TALLY ROLE)", lambda: make_creator(env, host))

        def host_is_op():
            mark = host.mark()
            host.join(CHAN)  # a new channel: the first member gets +o
            names = " ".join(m.text for m in host.seen[mark:] if m.command == "353")
            if "@" + host.nick not in names.split():
                raise ic.IRCError("NAMES: %r" % names)
            return True
        tap.run("the first to join #live is its operator (@ in NAMES)", host_is_op)
        for c in (bob, carol, watcher):
            c.join(CHAN)
        w0 = watcher.mark()
        state["w0"] = w0

        # ---- before the event: a drop for the buyers' first purchase -------
        def warmup():
            mark = watcher.mark()
            say(host, "!drop create warm 10 1", r"^Drop warm created\.$")
            chan_notice(watcher, r"^LIVE NOW: drop warm - 10 units at 1\.00 credits", mark)
            for c in (bob, carol):
                m = say(c, "!buy warm", r"CONFIRM (\S+)")
                code = re.search(r"CONFIRM (\S+)", m.text).group(1)
                ask(c, "CONFIRM %s" % code, r"receipt \d+")
            return True
        tap.run("both buyers agreed to pay (first !buy of a pre-event drop + CONFIRM)", warmup)

        # ---- hosting rights ------------------------------------------------
        tap.run("a non-op's !event start is refused: no permission",
                lambda: say(bob, "!event start 30 Mine", r"^no permission"))
        tap.run("a non-op's !drop create is refused: no permission",
                lambda: say(carol, "!drop create mine 1 1", r"^no permission"))
        tap.run("!event with no event running says so",
                lambda: say(bob, "!event", r"^No event is running here\.$"))

        def start_event():
            mark = watcher.mark()
            m = say(host, "!event start 30 Launch party", r"^Event started \(id (\d+)\)\.$")
            state["event_id"] = re.search(r"id (\d+)", m.text).group(1)
            return chan_notice(watcher, r'^Live event "Launch party" starts now, for 30 min\.', mark)
        tap.run("the op's !event start 30 Launch party starts it; the channel hears it", start_event)
        tap.run("a second !event start is refused while one runs",
                lambda: say(host, "!event start 5 Again", r"already running"))
        tap.run("!event (anyone) shows the running event",
                lambda: say(carol, "!event", r'^Event "Launch party": 30 min left, 0 sales, 0 tips so far\.$'))

        # ---- a first-come drop with a per-buyer limit --------------------------
        def create_tee():
            mark = watcher.mark()
            say(host, "!drop create tee 3 2 per-user=2", r"^Drop tee created\.$")
            return chan_notice(watcher, r"^LIVE NOW: drop tee - 3 units at 2\.00 credits for 10 min "
                        r"\(limit per buyer\)\. Type: !buy tee$", mark)
        tap.run("!drop create tee 3 2 per-user=2: the channel sees LIVE NOW", create_tee)

        def list_drops():
            mark = bob.mark()
            bob.privmsg(CHAN, "!drop list")
            bob.wait_notice(r"^tee: LIVE, 0 of 3 sold, 2\.00 credits each, limit per buyer$", 30,
                            since=mark)
            return bob.wait_notice(r"^warm: LIVE, 2 of 10 sold", 30, since=mark)
        tap.run("!drop list (a non-op may) shows the live drops", list_drops)

        def bob_takes_two():
            mark = watcher.mark()
            say(bob, "!buy tee 2", r"^Bought 2x drop tee \(tee\) for 4\.00 credits\. receipt \d+")
            return chan_notice(watcher, r"^Only 1 left of tee!$", mark)
        tap.run("bob buys 2 of 3; the channel sees 'Only 1 left of tee!'", bob_takes_two)

        def nick_change_limit():
            change_nick(bob, ic.unique_nick("bobby"))
            if bob.whois_account() != acct["bob"]:
                raise ic.IRCError("bob's account after NICK: %r" % bob.whois_account())
            say(bob, "!buy tee", r"^per-buyer limit reached$")
            return ask(bob, "BUY tee", r"^per-buyer limit reached$")
        tap.run("after a NICK change (same account) bob's third unit is refused: per-buyer limit",
                nick_change_limit)

        def carol_last():
            mark = watcher.mark()
            say(carol, "!buy tee", r"^Bought 1x drop tee \(tee\) for 2\.00 credits\. receipt \d+")
            return chan_notice(watcher, r"^SOLD OUT: tee - all 3 units are gone\.$", mark)
        tap.run("carol buys the last one; the channel sees SOLD OUT", carol_last)
        tap.run("a later !buy tee hears sold out",
                lambda: say(carol, "!buy tee", r"^sold out$"))

        # ---- a scheduled drop, started and stopped by hand -----------------------
        def later_drop():
            mark = watcher.mark()
            say(host, "!drop create later 5 1 start=+1h", r"^Drop later created\.$")
            chan_notice(watcher, r"^Drop coming: later - 5 units at 1\.00 credits, starts in 3600 s\.$", mark)
            say(bob, "!buy later", r"^that drop has not started yet$")
            mark = watcher.mark()
            say(host, "!drop start later", r"^Drop later started\.$")
            chan_notice(watcher, r"^LIVE NOW: drop later - 5 units at 1\.00 credits", mark)
            say(bob, "!buy later", r"^Bought 1x drop later .* receipt \d+")
            mark = watcher.mark()
            say(host, "!drop stop later", r"^Drop later stopped\.$")
            chan_notice(watcher, r"^Drop later closed: 1 of 5 sold\.$", mark)
            return say(bob, "!buy later", r"^that drop has closed$")
        tap.run("start=+1h: not before !drop start; !drop stop closes it (1 of 5 sold)", later_drop)

        tap.run("!drop start by a non-op is refused",
                lambda: say(bob, "!drop start later", r"^no permission"))

        # ---- a drop on its own timers --------------------------------------------
        def timed_drop():
            mark = watcher.mark()
            say(host, "!drop create soon 2 1 start=+2s for=4s", r"^Drop soon created\.$")
            chan_notice(watcher, r"^Drop coming: soon - 2 units at 1\.00 credits, starts in 2 s\.$", mark)
            say(carol, "!buy soon", r"^that drop has not started yet$")
            chan_notice(watcher, r"^LIVE NOW: drop soon - 2 units at 1\.00 credits for 4 s", mark, 15)
            say(carol, "!buy soon", r"^Bought 1x drop soon .* receipt \d+")
            chan_notice(watcher, r"^Drop soon closed: 1 of 2 sold\.$", mark, 15)
            return say(carol, "!buy soon", r"^that drop has closed$")
        tap.run("start=+2s for=4s: opens and closes on its own timers", timed_drop)

        # ---- a tip with a message ------------------------------------------------
        def tip():
            mark = watcher.mark()
            say(bob, "!tip %s 1.50 great show" % acct["host"], r"^Tipped 1\.50 credits to %s\. receipt \d+"
                % re.escape(acct["host"]))
            return chan_notice(watcher, r"^Thank you %s for tipping %s 1\.50 credits: great show$"
                        % (re.escape(acct["bob"]), re.escape(acct["host"])), mark)
        tap.run("!tip host 1.50 great show is thanked in the channel (account name)", tip)

        tap.run("!event mid-way counts sales and tips",
                lambda: say(carol, "!event",
                            r'^Event "Launch party": \d+ min left, 4 sales, 1 tips so far\.$'))

        # ---- chat around the commands ----------------------------------------------
        def chat():
            mark_w, mark_c = watcher.mark(), carol.mark()
            bob.privmsg(CHAN, "hello everyone, what a show")
            bob.privmsg(CHAN, "!applause for the host")
            watcher.wait_privmsg(r"^hello everyone, what a show$", CHAN, 10, since=mark_w)
            watcher.wait_privmsg(r"^!applause for the host$", CHAN, 10, since=mark_w)
            return carol.wait_privmsg(r"^hello everyone, what a show$", CHAN, 10, since=mark_c)
        tap.run("plain chat and !unknown still reach the channel", chat)

        # ---- the end ---------------------------------------------------------------
        def stop_event():
            mark = watcher.mark()
            say(host, "!event stop", r"^Event stopped\.$")
            m = chan_notice(watcher, r'^Event "Launch party" ended:', mark)
            want = ('Event "Launch party" ended: 4 sales (8.00 credits), 1 tip (1.50 credits). '
                    'Drops: tee 3/3, later 1/5, soon 1/2. Thank you!')
            if m.text != want:
                raise ic.IRCError("summary %r, wanted %r" % (m.text, want))
            return True
        tap.run("!event stop posts the summary: 4 sales (8.00), 1 tip (1.50), drops tee 3/3, later 1/5, soon 1/2",
                stop_event)
        tap.run("!event after the stop: none running",
                lambda: say(bob, "!event", r"^No event is running here\.$"))

        # ---- stop while purchases are in flight ------------------------------------
        def encore():
            m = say(host, "!event start 10 Encore", r"^Event started \(id (\d+)\)\.$")
            ev = re.search(r"id (\d+)", m.text).group(1)
            state["encore_id"] = ev
            say(host, "!drop create rush 50 1", r"^Drop rush created\.$")
            mark = watcher.mark()
            marks = {c.nick: c.mark() for c in (bob, carol)}
            for _ in range(5):  # pipelined: the stop arrives while some are in flight
                bob.privmsg(CHAN, "!buy rush")
                carol.privmsg(CHAN, "!buy rush")
            say(host, "!event stop", r"^Event stopped\.$")
            summary = chan_notice(watcher, r'^Event "Encore" ended:', mark)
            closed = chan_notice(watcher, r"^Drop rush closed: \d+ of 50 sold\.$", mark)
            final = re.compile(r"^Bought 1x drop rush|^that drop has|^sold out|^Only \d+ left")
            bought = 0
            for c in (bob, carol):
                since = marks[c.nick]
                for _ in range(5):
                    r = c.expect(lambda x: x.command == "NOTICE" and x.target == c.nick
                                 and final.search(x.text), 30, "answer to !buy rush", since)
                    since = c.seen.index(r) + 1
                    bought += r.text.startswith("Bought")
            time.sleep(0.5)
            ledger_n = int(db.scalar("SELECT count(*) FROM transfers WHERE kind = 1 AND event_id = %s" % int(ev)))
            said_n = int(re.search(r"ended: (\d+) sales?", summary.text).group(1))
            closed_n = int(re.search(r"closed: (\d+) of", closed.text).group(1))
            print("# encore: %d receipts, ledger %d, summary %r, %r" % (bought, ledger_n, summary.text, closed.text))
            if bought != ledger_n:
                raise ic.IRCError("%d receipts but %d purchases in the ledger with the event's id" % (bought, ledger_n))
            problems = []
            if said_n != ledger_n:
                problems.append("summary says %d sales, the ledger holds %d with event_id %s"
                                % (said_n, ledger_n, ev))
            if closed_n != ledger_n:
                problems.append("'Drop rush closed' says %d sold, %d receipts" % (closed_n, ledger_n))
            if problems:
                raise ic.IRCError("; ".join(problems))
            return True
        tap.run("!event stop with purchases in flight: the summary and 'Drop closed' count "
                "what the ledger holds for the event", encore)

        def deopped():
            mark = host.mark()
            host.send("MODE %s -o %s" % (CHAN, host.nick))
            host.expect(lambda m: m.command == "MODE" and m.target.lower() == CHAN, 10, "MODE -o", mark)
            return say(host, "!event start 10 Encore", r"^no permission")
        tap.run("after MODE -o the former host is refused", deopped)

        def commands_hidden():
            time.sleep(0.5)
            for c in (watcher, carol, host):
                c.collect(0.2)
            leaked = []
            for c in (watcher, carol, host, bob):
                for m in c.seen:
                    if m.command in ("PRIVMSG", "NOTICE") and m.target.lower() == CHAN \
                            and "!" in m.prefix and m.text.startswith("!") \
                            and m.text[1:].split(" ")[0].upper() in TALLY_WORDS:
                        leaked.append("%s saw %s" % (c.nick, m.raw))
            if leaked:
                raise ic.IRCError("\n".join(leaked[:10]))
            return True
        tap.run("no !event/!drop/!buy/!tip line reached any other member", commands_hidden)

        def watcher_saw_all():
            texts = [m.text for m in watcher.seen[state["w0"]:]
                     if m.command == "NOTICE" and m.target.lower() == CHAN]
            for rx in (r"^LIVE NOW: drop tee", r"^Only 1 left of tee!", r"^SOLD OUT: tee",
                       r"^Thank you ", r'^Event "Launch party" ended'):
                if not any(re.search(rx, t) for t in texts):
                    raise ic.IRCError("watcher missed /%s/; saw %r" % (rx, texts))
            ops = [m for m in watcher.seen if m.command == "NOTICE" and m.target.lower() == CHAN]
            if any("!" in m.prefix for m in ops):
                raise ic.IRCError("an announcement came from a user: %r" % ops)
            return True
        tap.run("a member without an account saw every announcement, from the server", watcher_saw_all)
        if os.environ.get("TALLY_TEST_VERBOSE"):
            for c in clients:
                for m in c.seen:
                    if m.command in ("NOTICE", "PRIVMSG") and "NickServ" not in m.prefix:
                        print("# %s <- %s" % (c.nick, m.raw))
    finally:
        for c in clients:
            c.quit()
    return state


def ledger(tap, db, state):
    ev = state.get("event_id", "0")
    rows = db.query("SELECT t.kind, coalesce(i.sku, ''), t.qty, t.amount_minor, a.name FROM transfers t "
                    "JOIN accounts a ON a.id = t.account_id LEFT JOIN items i ON i.id = t.item_id "
                    "WHERE t.event_id = %s ORDER BY t.id" % int(ev))
    tap.check("ledger: 5 transfers with the event's id (4 purchases, 1 tip)",
              len(rows) == 5 and sorted(r[0] for r in rows) == ["1", "1", "1", "1", "2"], repr(rows))
    tap.check("ledger: every transfer with an event_id belongs to one of the two events",
              db.scalar("SELECT count(*) FROM transfers WHERE event_id IS NOT NULL AND event_id NOT IN (%s, %s)"
                        % (int(ev), int(state.get("encore_id", "0")))) == "0")
    tap.check("ledger: the event's purchases sum to 8.00 credits, the tip is 1.50",
              sum(int(r[3]) for r in rows if r[0] == "1") == 800
              and [r[3] for r in rows if r[0] == "2"] == ["150"], repr(rows))
    tap.check("ledger: the pre-event warm-up purchases have no event_id",
              db.scalar("SELECT count(*) FROM transfers t JOIN items i ON i.id = t.item_id "
                        "WHERE i.sku = 'warm' AND t.event_id IS NULL") == "2")
    tap.check("ledger: bob holds exactly 2 tee under one account",
              db.scalar("SELECT coalesce(sum(t.qty), 0) FROM transfers t JOIN items i ON i.id = t.item_id "
                        "WHERE i.sku = 'tee' AND t.kind = 1 GROUP BY t.account_id ORDER BY 1 DESC LIMIT 1")
              == "2")
    row = db.query("SELECT channel, title, stopped_ms IS NOT NULL FROM events WHERE id = %s" % int(ev))
    tap.check("events row: #live, Launch party, stopped", row == [[CHAN, "Launch party", "t"]], repr(row))


def scenario(tap, env, db):
    state = live(tap, env, db)
    time.sleep(0.5)  # the last catalog rows go with the next batch
    ledger(tap, db, state)


if __name__ == "__main__":
    ic.network_test("live", scenario, settle=0)
