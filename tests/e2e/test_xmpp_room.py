#!/usr/bin/python3
"""test_xmpp_room.py — a live event in a Prosody MUC room (mod_tally in
process), with the room's moderation and privacy rules:

1. Public lines name people by their room nick, never by their JID: a tip's
   thanks says "Thank you Bob for tipping Carol", and no JID of an occupant
   appears in the room.
2. A tip's message is held for the room's moderators (the owner gets it as
   a private message from the shop, with HIDE <receipt>); a member's HIDE is
   refused, the owner's `!hide` keeps it out of the room for good; the kept
   one is said after the hold.
3. A highlight is pinned as the room's subject (highlight_topic=1) and the
   room's own subject comes back when its time is up.
4. A guest of an anonymous host has no wallet: told to use an account on
   this server.

Own database e2e_xmpp_room_<pid>. Needs prosody and python3-slixmpp.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from xmpp_env import ProsodyEnv  # noqa: E402

HOLD_S = 3


def scenario(tap, px, db):
    root, carol, bob, dave = (px.client(u) for u in ("root", "carol", "bob", "dave"))
    shop = px.shop
    tag = "%x" % (os.getpid() & 0xFFFF)
    room = px.room("show" + tag)

    def setup():
        for c in (carol, bob):
            deadline = time.monotonic() + 30
            while "balance 0.00 " in c.ask(shop, "WALLET", r"^Wallet ")[2]:
                if time.monotonic() > deadline:
                    raise RuntimeError("no welcome grant")
                time.sleep(0.3)
        root.ask(shop, "TALLY ROLE %s creator" % carol.bare, r"is now a creator")
        carol.join(room, "Carol")  # the first in owns the room: its host, a moderator
        bob.join(room, "Bob")
        dave.join(room, "Dave")
        m0 = carol.mark()
        carol.send_room(room, "!drop create w%s 5 0.10" % tag)
        carol.wait_chat(r"^Drop w%s created" % tag, 30, m0, sender=shop)
        m = bob.ask(shop, "BUY w%s" % tag, r"CONFIRM (\S+)")
        bob.ask(shop, "CONFIRM " + re.search(r"CONFIRM (\S+)", m[2]).group(1), r"receipt \d+")
        m0 = carol.mark()
        carol.send_room(room, "!event start 30 Show night")
        carol.wait_chat(r"^Event started", 30, m0, sender=shop)
        m0 = carol.mark()
        carol.send_room(room, "!event tier gold 1 3")
        return carol.wait_chat(r"^Highlight tier priced\.$", 30, m0, sender=shop)
    tap.run("a room with an owner (creator), a consented buyer, an event with a 3 s tier", setup)
    state = {}

    def tip_held():
        d, c = dave.mark(), carol.mark()
        b = bob.mark()
        bob.send_room(room, "!tip %s 1 great set" % carol.bare)
        m = bob.wait_chat(r"^Tipped 1\.00 credits to .* receipt (\d+)", 30, b, sender=shop)
        state["kept"] = re.search(r"receipt (\d+)", m[2]).group(1)
        thanks = dave.wait_room(room, r"^Thank you .* for tipping .* 1\.00 credits", 30, d)
        tap.check("the thanks names nicks, not JIDs: %r" % thanks[2],
                  "Thank you Bob for tipping Carol 1.00 credits" in thanks[2] and "@" not in thanks[2])
        held = carol.wait_chat(r"says: great set .*HIDE %s" % state["kept"], 30, c, sender=shop)
        state["d"] = d
        return held
    tap.run("a tip's message waits for the room's moderators (the owner)", tip_held)

    def hidden():
        b, c = bob.mark(), carol.mark()
        bob.send_room(room, "!tip %s 1 rude thing" % carol.bare)
        m = bob.wait_chat(r"receipt (\d+)", 30, b, sender=shop)
        rid = re.search(r"receipt (\d+)", m[2]).group(1)
        b = bob.mark()
        bob.send_room(room, "!hide %s" % rid)
        bob.wait_chat(r"^no permission", 30, b, sender=shop)
        carol.send_room(room, "!hide %s" % rid)
        return carol.wait_chat(r"^The message of tip %s is hidden; the tip stands\.$" % rid, 30, c, sender=shop)
    tap.run("a member's HIDE is refused, the owner's hides it", hidden)

    def shown():
        dave.wait_room(room, r"'s message with the tip of 1\.00 credits to .*: great set$", 30, state["d"])
        time.sleep(HOLD_S + 1)
        leaked = [m for m in dave.seen[state["d"]:] if m[2] and ("rude thing" in m[2] or "says:" in m[2])]
        tap.check("the hidden message never reached the room", not leaked, leaked)
        jids = [m for m in dave.seen[state["d"]:] if m[0] == "groupchat" and m[2] and "@tally.test" in m[2]]
        tap.check("no occupant's JID in any public line", not jids, jids)
        return True
    tap.run("after the hold the kept message is said in the room", shown)

    def pinned():
        d = dave.mark()
        b = bob.mark()
        bob.send_room(room, "!highlight gold Look up here")
        bob.wait_chat(r"^Bought 1x highlight gold", 30, b, sender=shop)
        # A subject change is a groupchat message with <subject/>; slixmpp
        # passes it as a message without body, so wait on the room's subject.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "HIGHLIGHT from Bob: Look up here" not in dave.subjects(room):
            time.sleep(0.2)
        tap.check("the highlight is the room's subject", "HIGHLIGHT from Bob: Look up here" in dave.subjects(room),
                  dave.subjects(room))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and dave.subjects(room)[-1:] != [""]:
            time.sleep(0.2)
        return tap.check("then the room's own subject (none) comes back", dave.subjects(room)[-1:] == [""],
                         dave.subjects(room))
    tap.run("a highlight pinned as the room's subject, then taken down", pinned)

    def guest():
        g = px.guest()
        g.join(room, "Guest")
        m = g.mark()
        g.send_room(room, "!wallet")
        return g.wait_chat(r"^not logged in.*use an account on this server", 30, m, sender=shop)
    tap.run("a guest of an anonymous host has no wallet: told how to get one", guest)
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes", rc == 0, out[-2000:])


def main():
    tap = ic.Tap()
    if not os.path.isfile(os.path.join(os.environ.get("TALLY_BUILD", "build"), "prosody", "tally.so")):
        tap.check("the prosody module is built", False, "build/prosody/tally.so missing")
        tap.exit()
    try:
        with ic.TestDb("xmpp_room") as db, \
                ProsodyEnv(db.dsn, {"carol": "pw-carol", "bob": "pw-bob", "dave": "pw-dave"}, admins=["root"],
                           tally={"welcome_grant": "1000", "tip_message_hold": str(HOLD_S),
                                  "highlight_topic": "1"}, guests=True) as px:
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
