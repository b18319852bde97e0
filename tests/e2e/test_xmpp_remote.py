#!/usr/bin/python3
"""test_xmpp_remote.py — Prosody's mod_tally in remote mode (tally_config
mode = "remote") against a real tallyd that also serves an IRC network's
secret: the same module code path as in process (libtally's remote mode).

1. Direct messages through tallyd: WALLET, an admin makes a creator, an item,
   a consented buy; the receipt is in tallyd's ledger under the xmpp
   identity of the bare JID.
2. tallyd SIGKILLed: the shop answers "unavailable" at once; after tallyd's
   restart the module reconnects by itself and the buyer buys again.
3. A module with the secret of another network is refused (its users hear
   "unavailable").

Own database e2e_xmpp_remote_<pid>. Needs prosody, python3-slixmpp, build/tallyd.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from tallyd_env import TallydEnv  # noqa: E402
from xmpp_env import ProsodyEnv  # noqa: E402

SECRETS = {"xmpp": "xmpp-network-secret-for-the-test", "irc": "irc-network-secret-for-the-test"}
RETRY = r"starting up|busy, try again|shop is unavailable"


def scenario(tap, td, px, db):
    admin, carol, bob = (px.client(u) for u in ("root", "carol", "bob"))
    shop = px.shop
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "r" + tag

    def through_tallyd():
        bob.ask(shop, "WALLET", r"^Wallet ", retry=RETRY)
        carol.ask(shop, "WALLET", r"^Wallet ", retry=RETRY)
        admin.ask(shop, "TALLY ROLE %s creator" % carol.bare, r"is now a creator", retry=RETRY)
        carol.ask(shop, "ITEM ADD %s 1 Remote sticker" % sku, r"added", retry=RETRY)
        deadline = time.monotonic() + 30
        while "balance 0.00 " in bob.ask(shop, "WALLET", r"^Wallet ", retry=RETRY)[2]:
            if time.monotonic() > deadline:
                raise RuntimeError("no welcome grant")
            time.sleep(0.3)
        m = bob.ask(shop, "BUY %s" % sku, r"CONFIRM (\S+)", retry=RETRY)
        m = bob.ask(shop, "CONFIRM " + re.search(r"CONFIRM (\S+)", m[2]).group(1), r"receipt \d+", retry=RETRY)
        rid = re.search(r"receipt (\d+)", m[2]).group(1)
        who = db.scalar("SELECT n.name || ':' || i.name FROM transfers t JOIN identities i ON i.account_id = t.account_id "
                        "JOIN networks n ON n.id = i.network_id WHERE t.id = %s" % rid)
        tap.check("the purchase is the xmpp identity's, in tallyd's ledger", who == "xmpp:" + bob.bare, who)
        return rid
    tap.run("mod_tally in remote mode: role, item, consent, buy through tallyd", through_tallyd)

    def down_and_back():
        td.kill()
        time.sleep(0.3)
        t0 = time.monotonic()
        bob.ask(shop, "WALLET", r"shop is unavailable", retry=None)
        took = time.monotonic() - t0
        tap.check("tallyd down: 'unavailable' at once (%.2f s)" % took, took < 2.0)
        td.start()
        return bob.ask(shop, "BUY %s" % sku, r"^Bought 1x Remote sticker", timeout=60, retry=RETRY)
    tap.run("tallyd SIGKILLed and restarted: unavailable at once, then buying again", down_and_back)
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes", rc == 0, out[-2000:])


def main():
    tap = ic.Tap()
    build = os.environ.get("TALLY_BUILD", "build")
    for f in ("tallyd", "prosody/tally.so"):
        if not os.path.isfile(os.path.join(build, f)):
            tap.check("%s is built" % f, False)
            tap.exit()
    try:
        with ic.TestDb("xmpp_remote") as db, \
                TallydEnv(db.dsn, SECRETS, extra={"welcome_grant": "1000"}) as td:
            remote = {"mode": "remote", "address": td.unix_address, "secret": SECRETS["xmpp"],
                      "instance": "xmpp1.tally.test", "network": "xmpp"}
            with ProsodyEnv(db.dsn, {"carol": "pw-carol", "bob": "pw-bob"}, admins=["root"], tally=remote) as px:
                try:
                    scenario(tap, td, px, db)
                except Exception:
                    print("# prosody log tail:\n# " + "\n# ".join(px.log()[-2000:].splitlines()))
                    print("# tallyd log tail:\n# " + "\n# ".join(td.log()[-2000:].splitlines()))
                    raise
            wrong = dict(remote, secret=SECRETS["irc"], instance="xmpp2.tally.test")
            with ProsodyEnv(db.dsn, {"dave": "pw-dave"}, tally=wrong) as px2:
                dave = px2.client("dave")
                tap.run("a module with another network's secret is refused: its users hear 'unavailable'",
                        lambda: dave.ask(px2.shop, "WALLET", r"shop is unavailable", retry=None))
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
