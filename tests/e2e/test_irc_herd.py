#!/usr/bin/python3
"""test_irc_herd.py — 30 IRC clients rush the last 5 units of an item.

Each client has its own services account and has already agreed to pay
(a first purchase with CONFIRM). All 30 send their BUY at once, half as a
client command, half as `!buy` in the channel. Exactly 5 get a receipt,
the other 25 hear `sold out`; the ledger holds exactly those 5 purchases
with the receipts' ids, SHOP shows the item sold out, and `tally check`
passes. Own database e2e_herd_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
CLIENTS = 30
STOCK = 5
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving")
FINAL = re.compile(r"receipt (\d+)|sold out|Only \d+ left")


def ask(c, line, regex=".", timeout=60):
    return ic.tally_ask(c, line, regex, timeout, retry=NOT_YET)


def herd(tap, env, db):
    chan = "#herd%d" % os.getpid()
    tag = "%x" % (os.getpid() & 0xFFFF)
    creator = env.client("hc" + tag)
    oper = env.client("ho" + tag)
    buyers = []
    try:
        for c in (creator, oper):
            c.ns_register(PASSWORD)
        oper.send("OPER admin adminpass")
        oper.wait_numeric("381")
        for i in range(CLIENTS):
            c = env.client("hb%s_%d" % (tag, i))
            c.ns_register(PASSWORD)
            buyers.append(c)
        for c in buyers + [creator]:
            if c.wait_account() != c.nick:
                raise ic.IRCError("%s has no account" % c.nick)
        ask(creator, "WALLET", r"^Wallet ")
        ask(oper, "TALLY ROLE %s creator" % creator.nick, r"is now a creator")
        ask(creator, "ITEM ADD warm%s 1 Warm-up sticker" % tag, r"added")
        ask(creator, "ITEM ADD last%s 5 %d The last tees" % (tag, STOCK), r"added")
        for c in buyers:
            c.join(chan)

        def consent_all():
            for c in buyers:
                deadline = time.monotonic() + 30  # the welcome grant is committed
                while "balance 0.00 " in ask(c, "WALLET", r"^Wallet ").text:
                    if time.monotonic() > deadline:
                        raise ic.IRCError("%s never got the welcome grant" % c.nick)
                    time.sleep(0.2)
                m = ask(c, "BUY warm%s" % tag, r"CONFIRM (\S+)|receipt \d+")
                code = re.search(r"CONFIRM (\S+)", m.text)
                if code:
                    ask(c, "CONFIRM %s" % code.group(1), r"receipt \d+")
            return True
        tap.run("30 accounts agreed to pay (first purchase + CONFIRM)", consent_all)

        marks = [c.mark() for c in buyers]
        t0 = time.monotonic()
        for i, c in enumerate(buyers):  # as close to "at once" as one sender gets
            if i % 2:
                c.privmsg(chan, "!buy last%s" % tag)
            else:
                c.send("BUY last%s" % tag)
        answers = {}
        for c, mark in zip(buyers, marks):
            m = c.expect(lambda x: x.command == "NOTICE" and x.target == c.nick
                         and FINAL.search(x.text), 30, "receipt or sold out", mark)
            answers[c.nick] = m.text
        took = time.monotonic() - t0
        receipts = [re.search(r"receipt (\d+)", t).group(1) for t in answers.values()
                    if re.search(r"receipt (\d+)", t)]
        sold_out = [t for t in answers.values() if "sold out" in t]
        print("# %d answers in %.3f s; %s" % (len(answers), took, sorted(set(re.sub(r"\d+", "N", t) for t in answers.values()))))
        tap.check("every client got an answer", len(answers) == CLIENTS)
        tap.check("exactly %d receipts" % STOCK, len(receipts) == STOCK, repr(answers))
        tap.check("the other %d heard 'sold out'" % (CLIENTS - STOCK),
                  len(sold_out) == CLIENTS - STOCK, repr(answers))
        rows = db.query("SELECT t.id FROM transfers t JOIN items i ON i.id = t.item_id "
                        "WHERE i.sku = 'last%s' AND t.kind = 1 ORDER BY t.id" % tag)
        tap.check("the ledger holds exactly the 5 purchases with the receipts' ids",
                  sorted(r[0] for r in rows) == sorted(receipts), "ledger %r, seen %r" % (rows, receipts))
        tap.check("no refund or double charge: units sold = %d" % STOCK,
                  db.scalar("SELECT coalesce(sum(t.qty), 0) FROM transfers t JOIN items i ON i.id = t.item_id "
                            "WHERE i.sku = 'last%s' AND t.kind = 1" % tag) == str(STOCK))

        def shop_sold_out():
            mark = creator.mark()
            creator.send("SHOP")
            return creator.wait_notice(r"^last%s - .* - sold out" % tag, 30, since=mark)
        tap.run("SHOP shows the item sold out", shop_sold_out)

        def one_more():
            return ask(buyers[0], "BUY last%s" % tag, r"^sold out$")
        tap.run("a later BUY hears 'sold out'", one_more)
    finally:
        for c in buyers + [creator, oper]:
            c.quit()


if __name__ == "__main__":
    ic.network_test("herd", herd, settle=0)
