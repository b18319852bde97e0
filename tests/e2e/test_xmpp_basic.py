#!/usr/bin/python3
"""test_xmpp_basic.py — tally inside a real Prosody 0.12 (mod_tally, in-process
engine), driven by slixmpp clients (tests/e2e/xmpp_env.py).

1. Direct messages to shop@tally.test: WALLET, an admin makes a creator
   (TALLY ROLE), the creator lists an item, a buyer's first BUY asks for
   CONFIRM, CONFIRM buys; the receipt is in the ledger under the xmpp
   network's identity (the bare JID), and VERIFY checks it.
2. In a MUC room: `!buy tee` is answered privately from the shop's JID and
   never reaches the room (another occupant does not see it), a plain line
   still does; `/wallet` (as some clients send unknown commands) works too.
3. A live event in a room: its owner (a creator) starts it and a drop;
   LIVE NOW comes from the room's tally occupant; a buyer buys; a
   private-only command in the room is refused with the shop's JID; a
   non-owner cannot host.
4. XEP-0050 ad-hoc commands on the server's JID, made from the engine's
   usage lines: ITEM ADD by form (its fields are the usage's), a host's
   DROP CREATE form refused to a buyer (roles in the engine).
5. Hostile input: an overlong and a two-line body get a specific
   refusal; an unknown word to the shop gets a hint, nothing is charged.

Own database e2e_xmpp_<pid>. Needs prosody and python3-slixmpp.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from xmpp_env import ProsodyEnv  # noqa: E402

RECEIPT = re.compile(r"receipt (\d+)")


def scenario(tap, px, db):
    admin, creator, buyer, other = (px.client(u) for u in ("root", "carol", "bob", "dave"))
    shop = px.shop
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "x" + tag

    def direct():
        buyer.ask(shop, "WALLET", r"^Wallet ")
        creator.ask(shop, "WALLET", r"^Wallet ")
        admin.ask(shop, "TALLY ROLE %s creator" % creator.bare, r"is now a creator")
        creator.ask(shop, "ITEM ADD %s 1 XMPP tee" % sku, r"added")
        deadline = time.monotonic() + 30
        while "balance 0.00 " in buyer.ask(shop, "WALLET", r"^Wallet ")[2]:
            if time.monotonic() > deadline:
                raise RuntimeError("no welcome grant")
            time.sleep(0.3)
        m = buyer.ask(shop, "BUY %s" % sku, r"CONFIRM (\S+)")
        code = re.search(r"CONFIRM (\S+)", m[2]).group(1)
        m = buyer.ask(shop, "CONFIRM %s" % code, r"receipt \d+")
        rid = RECEIPT.search(m[2]).group(1)
        who = db.scalar("SELECT n.name || ':' || i.name FROM transfers t JOIN identities i ON i.account_id = t.account_id "
                        "JOIN networks n ON n.id = i.network_id WHERE t.id = %s" % rid)
        tap.check("the purchase belongs to the xmpp identity of the bare JID", who == "xmpp:" + buyer.bare, who)
        buyer.ask(shop, "VERIFY %s" % rid, r"(?i)valid|verif")
        return rid
    tap.run("direct messages to the shop: role, item, consent, buy, verify", direct)

    room = px.room("live" + tag)

    def in_room():
        buyer.join(room, "Bob")
        other.join(room, "Dave")
        seen_by_other = other.mark()
        mark = buyer.mark()
        buyer.send_room(room, "!buy %s" % sku, msg_id="room-buy-1")
        m = buyer.wait_chat(r"receipt \d+|Bought", 30, mark, sender=shop)
        tap.check("the answer names the room", m[2].startswith("[%s] " % room), m[2])
        buyer.send_room(room, "hello everyone")
        other.wait_room(room, r"^hello everyone$", 15, seen_by_other)
        leaked = [x for x in other.seen[seen_by_other:] if x[2] and "buy" in x[2].lower()]
        tap.check("the !buy line never reached the room", not leaked, leaked)
        mark = buyer.mark()
        buyer.send_room(room, "/wallet")
        buyer.wait_chat(r"^Wallet ", 30, mark, sender=shop)
        return m
    tap.run("in a room: !buy answered privately from the shop, the line kept out of the room", in_room)

    event_room = px.room("launch" + tag)
    drop = "d" + tag

    def room_event():
        # Whoever makes a room owns it: the owner is its host; the creator
        # role (given above) lets carol sell.
        creator.join(event_room, "Carol")
        buyer.join(event_room, "Bob")
        seen = buyer.mark()
        m0 = creator.mark()
        creator.send_room(event_room, "!event start 30 XMPP launch")
        creator.wait_chat(r"(?i)event", 30, m0, sender=shop)
        creator.send_room(event_room, "!drop create %s 3 1" % drop)
        creator.wait_chat(r"^Drop %s created\.$" % drop, 30, m0, sender=shop)
        live = buyer.wait_room(event_room, r"^LIVE NOW: drop %s - 3 units at 1\.00 credits" % drop, 30, seen)
        tap.check("the announcement comes from the room's tally occupant", live[1] == event_room + "/tally", live[1])
        mark = buyer.mark()
        buyer.send_room(event_room, "!buy %s" % drop)
        m = buyer.wait_chat(r"^Bought 1x drop %s .*receipt \d+" % drop, 30, mark, sender=shop)
        # A private-only command said in a room: refused, with where to send it.
        mark = buyer.mark()
        buyer.send_room(event_room, "!ship %s 1 Main Street" % RECEIPT.search(m[2]).group(1))
        hint = buyer.wait_chat(r"send it to " + re.escape(shop), 30, mark, sender=shop)
        tap.check("a private-only command in a room is refused with the shop's JID as the hint", hint)
        # A buyer who is not the room's owner cannot run its events.
        mark = buyer.mark()
        buyer.send_room(event_room, "!drop create mine 1 1")
        buyer.wait_chat(r"^no permission", 30, mark, sender=shop)
        return m
    tap.run("a live event in a room: the owner hosts, LIVE NOW from tally, a buyer buys the drop", room_event)

    def adhoc():
        nodes = dict(creator.commands())
        for n in ("tally/item-add", "tally/drop-create", "tally/event-start", "tally/hide"):
            if n not in nodes:
                raise RuntimeError("ad-hoc command %s not offered: %r" % (n, nodes))
        mark = creator.mark()
        names, done = creator.adhoc("tally/item-add", {"sku": "a" + tag, "price": "2", "stock": "7",
                                                        "title": "Made with a form"})
        tap.check("the ITEM ADD form has the usage's fields", names == ["sku", "price", "stock", "title"], names)
        tap.check("the command completed", done is not None and done.get("status") == "completed",
                  done is not None and done.attrib)
        creator.wait_chat(r"added", 30, mark, sender=shop)
        m = buyer.ask(shop, "BUY a%s" % tag, r"^Bought 1x Made with a form .* for 2\.00 credits")
        # A host's form needs the room: the engine decides the role there.
        mark = buyer.mark()
        buyer.adhoc("tally/drop-create", {"room": event_room, "sku": "b" + tag, "qty": "1", "price": "1"})
        buyer.wait_chat(r"^no permission", 30, mark, sender=shop)
        return m
    tap.run("XEP-0050 ad-hoc forms from the engine's usage lines: ITEM ADD by form; a host form refused to a buyer",
            adhoc)

    def hostile():
        buyer.ask(shop, "BUY " + "x" * 5000, r"(?i)too long|wrong arguments|unknown sku")
        # XML carries no C0 controls but TAB, LF and CR: a two-line body.
        buyer.ask(shop, "BUY %s\nBUY %s" % (sku, sku), r"(?i)wrong arguments|control|invalid")
        buyer.ask(shop, "FROBNICATE", r"unknown command")
        return True
    tap.run("hostile lines get a specific refusal", hostile)
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes", rc == 0, out[-2000:])


def main():
    tap = ic.Tap()
    if not os.path.isfile(os.path.join(os.environ.get("TALLY_BUILD", "build"), "prosody", "tally.so")):
        tap.check("the prosody module is built", False, "build/prosody/tally.so missing")
        tap.exit()
    try:
        with ic.TestDb("xmpp") as db, \
                ProsodyEnv(db.dsn, {"carol": "pw-carol", "bob": "pw-bob", "dave": "pw-dave"}, admins=["root"],
                           tally={"welcome_grant": "1000"}) as px:
            try:
                scenario(tap, px, db)
            except Exception:
                print("# prosody log tail:\n# " + "\n# ".join(px.log()[-3000:].splitlines()))
                raise
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
