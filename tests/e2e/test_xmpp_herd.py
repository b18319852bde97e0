#!/usr/bin/python3
"""test_xmpp_herd.py — a herd of 200 JIDs on a 5-unit item in a real Prosody
with mod_tally (in process), and the money paths around it.

1. An admin grants credits with the XEP-0050 form made from the engine's
   admin usage (tally/tally-grant): the wallet shows them; a buyer's run of
   the same form is refused by the engine.
2. 200 buyers (accounts written in one pass), each funded by the welcome
   grant and agreed to pay (a first BUY + CONFIRM), buy a 5-unit item at
   once: 40 with `!buy` in the room, 160 by direct message. Exactly 5 get a
   receipt, every other one hears "sold out", nobody is left without an
   answer; the ledger holds exactly 5 purchases of it.
3. Refunds and tips: a winner refunds its receipt (the ledger has the
   refund); another buyer cannot refund it; a tip between two JIDs.
4. Stanzas of the wrong type: a groupchat-type message to the shop's JID is
   answered with a bad-request error, an error-type message is not answered
   (and charges nothing).

`tally check` after each part. Own database e2e_xmpp_herd_<pid>.
"""

import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from xmpp_env import ProsodyEnv, XmppError  # noqa: E402

BUYERS = int(os.environ.get("TALLY_XMPP_HERD", "200"))
IN_ROOM = BUYERS // 5
STOCK = 5
NOT_YET = r"starting up|busy, try again|welcome credits are still arriving"
FINAL = re.compile(r"receipt (\d+)|sold out|Only \d+ left")
RECEIPT = re.compile(r"receipt (\d+)")


def check_ledger(tap, db, part):
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("%s: tally check passes" % part, rc == 0, out[-2000:])


def balance(c, shop):
    m = c.ask(shop, "WALLET", r"^Wallet ", retry=NOT_YET)
    return m[2]


def agreed(c, shop, warm):
    deadline = time.monotonic() + 60
    while "balance 0.00 " in balance(c, shop):
        if time.monotonic() > deadline:
            raise XmppError("%s never got the welcome grant" % c.jid)
        time.sleep(0.3)
    m = c.ask(shop, "BUY %s" % warm, r"CONFIRM (\S+)|receipt \d+", retry=NOT_YET)
    code = re.search(r"CONFIRM (\S+)", m[2])
    if code:
        c.ask(shop, "CONFIRM %s" % code.group(1), r"receipt \d+", retry=NOT_YET)
    return c


def herd(tap, px, db):
    shop = px.shop
    tag = "%x" % (os.getpid() & 0xFFFF)
    warm, last = "w" + tag, "last" + tag
    admin, creator, dave = (px.client(u) for u in ("root", "carol", "dave"))

    def adhoc_grant():
        admin.ask(shop, "TALLY ROLE %s creator" % creator.bare, r"is now a creator", retry=NOT_YET)
        before = balance(dave, shop)
        deadline = time.monotonic() + 30
        while "balance 0.00 " in before and time.monotonic() < deadline:  # the welcome grant first
            time.sleep(0.3)
            before = balance(dave, shop)
        mark_admin = admin.mark()
        names, done = admin.adhoc("tally/tally-grant", {"account": dave.bare, "amount": "7"})
        tap.check("the grant form's fields are the usage's (account, amount)", names == ["account", "amount"], names)
        tap.check("the form is completed", done is not None and done.get("status") == "completed",
                  done is not None and done.attrib)
        admin.wait_chat(r"^Granted 7\.00 .*receipt \d+", 30, mark_admin, sender=shop)
        def credits(text):
            return float(re.search(r"balance ([\d.]+) ", text).group(1))
        deadline = time.monotonic() + 30
        after = before
        while after == before and time.monotonic() < deadline:
            time.sleep(0.3)
            after = balance(dave, shop)
        tap.check("the 7 granted credits are in the wallet (%s -> %s)" % (credits(before), credits(after)),
                  credits(after) == credits(before) + 7)
        m = dave.mark()
        dave.adhoc("tally/tally-grant", {"account": dave.bare, "amount": "1000"})
        refusal = dave.wait_chat(r".", 30, m, sender=shop)
        return tap.check("a buyer's grant form is refused by the engine", re.search(r"no permission", refusal[2]) is not None, refusal[2])
    tap.run("an admin grants by ad-hoc form; a buyer cannot", adhoc_grant)

    creator.ask(shop, "ITEM ADD %s 1 Warm-up sticker" % warm, r"added", retry=NOT_YET)
    creator.ask(shop, "ITEM ADD %s 1 %d Last five" % (last, STOCK), r"added", retry=NOT_YET)
    room = px.room("herd" + tag)
    creator.join(room, "Carol")
    buyers = []

    def setup():
        names = ["h%s%03d" % (tag, i) for i in range(BUYERS)]
        with ThreadPoolExecutor(16) as pool:
            buyers.extend(pool.map(px.client, names))
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda c: agreed(c, shop, warm), buyers))
        for i, c in enumerate(buyers[:IN_ROOM]):
            c.join(room, "H%d" % i, timeout=30)
        return len(buyers) == BUYERS
    tap.run("%d JIDs logged in, funded and agreed to pay; %d in the room" % (BUYERS, IN_ROOM), setup)

    answers = {}

    def the_rush():
        marks = [c.mark() for c in buyers]
        for i, c in enumerate(buyers):
            if i < IN_ROOM:
                c.send_room(room, "!buy %s" % last)
            else:
                c.send_chat(shop, "BUY %s" % last)
        for c, mark in zip(buyers, marks):
            m = c.wait(lambda x: x[0] in ("chat", "normal") and x[1].split("/")[0] == shop
                       and FINAL.search(c.unroom(x[2])), 90, "receipt or sold out", mark)
            answers[c.bare] = c.unroom(m[2])
        sold = [t for t in answers.values() if RECEIPT.search(t)]
        tap.check("every one of the %d buyers was answered" % BUYERS, len(answers) == BUYERS, len(answers))
        tap.check("exactly %d receipts" % STOCK, len(sold) == STOCK, "\n".join(sold))
        losers = [t for t in answers.values() if not RECEIPT.search(t)]
        tap.check("every other buyer heard 'sold out'", all(re.search(r"sold out|Only \d+ left", t) for t in losers),
                  losers[:5])
        n = int(db.scalar("SELECT coalesce(sum(t.qty), 0) FROM transfers t JOIN items i ON i.id = t.item_id "
                          "WHERE i.sku = '%s' AND t.kind = 1" % last))
        tap.check("the ledger holds exactly %d purchases of the item" % STOCK, n == STOCK, n)
        return len(sold) == STOCK
    tap.run("the rush: %d JIDs (%d in the room, the rest by message), one %d-unit item" % (BUYERS, IN_ROOM, STOCK),
            the_rush)
    check_ledger(tap, db, "rush")

    def refunds_and_tips():
        winners = [c for c in buyers if RECEIPT.search(answers.get(c.bare, ""))]
        loser = next(c for c in buyers if c not in winners)
        rid = RECEIPT.search(answers[winners[0].bare]).group(1)
        loser.ask(shop, "REFUND %s" % rid, r"^that receipt is not yours", retry=NOT_YET)
        m = winners[0].ask(shop, "REFUND %s" % rid, r"^Refunded .* for receipt %s\." % rid, retry=NOT_YET)
        refunds = int(db.scalar("SELECT count(*) FROM transfers WHERE kind = 3 AND ref_transfer = %s" % rid))
        tap.check("the refund is in the ledger", refunds == 1, (m[2], refunds))
        m = loser.ask(shop, "TIP %s 1 thanks" % creator.bare, r"^Tipped|receipt \d+", retry=NOT_YET)
        return RECEIPT.search(m[2])
    tap.run("a winner refunds its receipt, another buyer cannot; a tip", refunds_and_tips)
    check_ledger(tap, db, "refund")

    def wrong_types():
        import slixmpp  # noqa: F401
        got = []
        dave._call(dave.x.add_event_handler, "message_error", lambda m: got.append(m["error"]["condition"]))
        before = int(db.scalar("SELECT count(*) FROM transfers"))

        def send(mtype):
            m = dave.x.make_message(mto=shop, mbody="BUY %s" % warm, mtype=mtype)
            m.send()
        dave._call(send, "groupchat")
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
        tap.check("a groupchat-type message to the shop gets bad-request", got == ["bad-request"], got)
        mark = dave.mark()
        dave._call(send, "error")
        time.sleep(2)
        dave._drain()
        answered = [x for x in dave.seen[mark:] if x[1].split("/")[0] == shop]
        tap.check("an error-type message is not answered", not answered, answered)
        after = int(db.scalar("SELECT count(*) FROM transfers"))
        return tap.check("neither charged anything", after == before, (before, after))
    tap.run("stanzas of the wrong type", wrong_types)
    check_ledger(tap, db, "wrong types")


def main():
    tap = ic.Tap()
    t0 = time.monotonic()
    try:
        with ic.TestDb("xmpp_herd") as db:
            bulk = {"h%x%03d" % (os.getpid() & 0xFFFF, i): "pw-h%d" % i for i in range(BUYERS)}
            with ProsodyEnv(db.dsn, {"carol": "pw-carol", "dave": "pw-dave"}, admins=["root"], grant=["root"], bulk=bulk,
                            tally={"welcome_grant": "1000", "rate_account": "0", "rate_channel": "0",
                                   "rate_global": "0"}) as px:
                try:
                    herd(tap, px, db)
                except Exception as e:
                    tap.check("the herd scenario ran", False, "%s: %s\n%s" % (type(e).__name__, e, px.log()[-3000:]))
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    print("# took %.0f s" % (time.monotonic() - t0))
    tap.exit()


if __name__ == "__main__":
    main()
