#!/usr/bin/python3
"""test_irc_remote.py — InspIRCd + Anope with the module in remote mode
(<tally mode="remote">) against a real tallyd (tests/e2e/tallyd_env.py).

1. Over the unix socket: a creator lists an item, a buyer agrees to pay and
   buys; the receipt is in the ledger tallyd writes. The module was loaded
   with no DSN at all: the engine is tallyd's.
2. tallyd is SIGKILLed: every command is answered at once (within 2 s) with
   "the shop is unavailable"; tallyd starts again, the module reconnects by
   itself and the buyer buys again; `tally check` passes.
3. A second InspIRCd whose module has the wrong secret: tallyd refuses it
   (its log names the refusal) and its users hear "unavailable", while the
   first server keeps selling.
4. Over TLS 1.3 to tls:localhost:PORT (a certificate for 127.0.0.1 and
   localhost made by openssl): a buy through a third server that looks the
   name up and verifies tallyd's certificate and name against the test CA.

Own database e2e_remote_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from tallyd_env import TallydEnv  # noqa: E402

PASSWORD = "Correct-Horse-42"
SECRET = "irc-network-secret-for-the-test"
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving|shop is unavailable")
UNAVAILABLE = re.compile(r"the shop is unavailable, try again in a moment")
RECEIPT = re.compile(r"receipt (\d+)")


def ask(c, line, regex=".", timeout=60, retry=NOT_YET):
    return ic.tally_ask(c, line, regex, timeout, retry=retry)


def login(env, nick):
    c = env.client(nick)
    c.ns_register(PASSWORD)
    if c.wait_account() != nick:
        raise ic.IRCError("%s is not logged in" % nick)
    return c


def buy(c, sku):
    """BUY, with CONFIRM when it is the first purchase; the receipt id."""
    m = ask(c, "BUY %s" % sku, r"CONFIRM (\S+)|receipt \d+")
    code = re.search(r"CONFIRM (\S+)", m.text)
    if code:
        m = ask(c, "CONFIRM %s" % code.group(1), r"receipt \d+")
    return RECEIPT.search(m.text).group(1)


def in_ledger(db, rid):
    return int(db.scalar("SELECT count(*) FROM transfers WHERE id = %s" % rid)) == 1


def scenario(tap, td, db, so):
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "r" + tag
    with ic.IrcEnv(tally_so=so, dsn="", tag_extra=td.tag("irc")) as env:
        creator = login(env, "rc" + tag)
        oper = login(env, "ro" + tag)
        buyer = login(env, "rb" + tag)
        oper.send("OPER admin adminpass")
        oper.wait_numeric("381")

        def first_buy():
            ask(creator, "WALLET", r"^Wallet ")
            ask(oper, "TALLY ROLE %s creator" % creator.nick, r"is now a creator")
            ask(creator, "ITEM ADD %s 1 Remote tee" % sku, r"added")
            deadline = time.monotonic() + 30
            while "balance 0.00 " in ask(buyer, "WALLET", r"^Wallet ").text:
                if time.monotonic() > deadline:
                    raise ic.IRCError("no welcome grant")
                time.sleep(0.2)
            rid = buy(buyer, sku)
            tap.check("the receipt is in tallyd's ledger", in_ledger(db, rid), rid)
            return rid
        tap.run("unix socket: list, agree, buy through tallyd (module has no DSN)", first_buy)
        tap.check("the module logged its link to tallyd", "linked to tallyd" in env.log(), env.log()[-1500:])

        def down_and_back():
            td.kill()
            time.sleep(0.3)
            t0 = time.monotonic()
            m = ask(buyer, "WALLET", UNAVAILABLE.pattern, timeout=10, retry=None)
            took = time.monotonic() - t0
            tap.check("tallyd down: answered 'unavailable' at once (%.2f s)" % took, took < 2.0, m.text)
            td.start()
            rid = buy(buyer, sku)  # retries while the module reconnects
            tap.check("after tallyd's restart the receipt is in the ledger", in_ledger(db, rid), rid)
            return rid
        tap.run("tallyd SIGKILLed and restarted: unavailable at once, then buying again", down_and_back)

        def wrong_secret():
            bad = td.tag("irc", secret="not-the-secret-of-this-network", instance="irc-bad.tally.test")
            with ic.IrcEnv(tally_so=so, dsn="", tag_extra=bad) as env2:
                u = login(env2, "rw" + tag)
                m = ask(u, "WALLET", UNAVAILABLE.pattern, timeout=10, retry=None)
                rid = buy(buyer, sku)  # the good server carries on
                tap.check("the good server still sells", in_ledger(db, rid), rid)
                deadline = time.monotonic() + 5
                while "refused" not in env2.log() and time.monotonic() < deadline:
                    time.sleep(0.2)
                tap.check("the refused module logged why", re.search(r"refused \(EBADSIG\)", env2.log()),
                          env2.log()[-1500:])
                tap.check("tallyd logged the refusal", re.search(r"(?i)secret|EBADSIG|answer", td.log()),
                          td.log()[-1500:])
                return m
        tap.run("a server with the wrong secret is refused; its users hear 'unavailable'", wrong_secret)

        def over_tls():
            extra = td.tag("irc", address=td.tls_name_address, instance="irc-tls.tally.test")
            with ic.IrcEnv(tally_so=so, dsn="", tag_extra=extra) as env3:
                u = login(env3, "rt" + tag)
                deadline = time.monotonic() + 30
                while "balance 0.00 " in ask(u, "WALLET", r"^Wallet ").text:
                    if time.monotonic() > deadline:
                        raise ic.IRCError("no welcome grant over TLS")
                    time.sleep(0.2)
                rid = buy(u, sku)
                tap.check("TLS: the receipt is in the ledger", in_ledger(db, rid), rid)
                return rid
        tap.run("TLS 1.3 to tallyd, its certificate checked against the CA", over_tls)

        rc, out = ic.tally_cli(db.dsn, "check")
        tap.check("tally check passes", rc == 0, out[-2000:])
        for c in (creator, oper, buyer):
            c.quit()


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    if not os.path.isfile(so):
        tap.check("the module is built", False, "%s not built" % so)
        tap.exit()
    try:
        with ic.TestDb("remote") as db, \
                TallydEnv(db.dsn, {"irc": SECRET}, tls=True,
                          extra={"welcome_grant": "1000", "rate_account": "0"}) as td:
            try:
                scenario(tap, td, db, so)
            finally:
                code = td.stop()
                tap.check("tallyd exits 0 on SIGTERM", code == 0, "exit %r\n%s" % (code, td.log()[-1500:]))
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
