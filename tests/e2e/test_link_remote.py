#!/usr/bin/python3
"""test_link_remote.py — one wallet across networks, end to end: ONE tallyd
serving an IRC network (InspIRCd + Anope, the module in remote mode) and an
XMPP network (Prosody, mod_tally in remote mode) at once.

1. An IRC user says LINK privately and gets a code; an XMPP user (whose own
   wallet holds the demo welcome grant) says LINK <code> to the shop's JID;
   the IRC user is told who asks and answers LINK CONFIRM <code>; both are
   told; the XMPP wallet's balance moved by ONE transfer (kind 5).
2. The XMPP user buys (the person's first purchase: CONFIRM), the IRC user
   refunds that receipt: one wallet, and the purchase keeps the XMPP
   identity that made it (transfer_identities).
3. `tally check` passes (the link invariants included).

Own database e2e_link_remote_<pid>. Needs inspircd + anope, prosody,
python3-slixmpp (run with /usr/bin/python3), build/tallyd.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from tallyd_env import TallydEnv  # noqa: E402
from xmpp_env import ProsodyEnv  # noqa: E402

PASSWORD = "Correct-Horse-42"
SECRETS = {"irc": "irc-network-secret-for-the-link-test", "xmpp": "xmpp-network-secret-for-the-link-test"}
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving|shop is unavailable"
                     r"|still being recorded|payment of its is still being recorded")
XRETRY = NOT_YET.pattern


def ask(c, line, regex=".", timeout=60, retry=NOT_YET):
    return ic.tally_ask(c, line, regex, timeout, retry=retry)


def login(env, nick):
    c = env.client(nick)
    c.ns_register(PASSWORD)
    if c.wait_account() != nick:
        raise ic.IRCError("%s is not logged in" % nick)
    return c


def scenario(tap, db, env, px):
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "l" + tag
    creator, oper, alice = login(env, "lc" + tag), login(env, "lo" + tag), login(env, "la" + tag)
    oper.send("OPER admin adminpass")
    oper.wait_numeric("381")
    bob = px.client("bob")
    shop = px.shop

    def funded_irc(c):
        deadline = time.monotonic() + 30
        while "balance 0.00 " in ask(c, "WALLET", r"^Wallet ").text:
            if time.monotonic() > deadline:
                raise ic.IRCError("no welcome grant for %s" % c.nick)
            time.sleep(0.2)

    def setup():
        ask(creator, "WALLET", r"^Wallet ")
        ask(oper, "TALLY ROLE %s creator" % creator.nick, r"is now a creator")
        ask(creator, "ITEM ADD %s 2 Linked tee" % sku, r"added")
        funded_irc(alice)
        deadline = time.monotonic() + 30
        while "balance 0.00 " in bob.ask(shop, "WALLET", r"^Wallet ", retry=XRETRY)[2]:
            if time.monotonic() > deadline:
                raise RuntimeError("no welcome grant for the xmpp user")
            time.sleep(0.3)
        return True
    tap.run("a shop on IRC; an IRC user and an XMPP user with their own wallets, one tallyd", setup)

    def link():
        m = ask(alice, "LINK", r"Your link code: (\S+)")
        code = re.search(r"Your link code: (\S+)", m.text).group(1)
        mark = alice.mark()
        bob.ask(shop, "LINK %s" % code.lower(), r"Asked irc:%s to confirm" % alice.nick, retry=XRETRY)
        asked = alice.wait_notice(r"asks to join your wallet", timeout=30, since=mark)
        tap.check("the issuer is told which identity asks", ("xmpp:" + bob.bare) in asked.text, asked.text)
        confirm = re.search(r"LINK CONFIRM (\S+)", asked.text).group(1)
        xmark = bob.mark()
        done = ask(alice, "LINK CONFIRM %s" % confirm, r"Linked xmpp:\S+ to this wallet")
        tap.check("the move is said with its receipt", re.search(r"10\.00 credits moved here by one transfer\. receipt \d+",
                                                                  done.text), done.text)
        told = bob.wait_chat(r"Linked: you now use the wallet of irc:%s" % alice.nick, timeout=30, since=xmark)
        moved = db.scalar("SELECT count(*) || ':' || coalesce(sum(amount_minor), 0) FROM transfers WHERE kind = 5")
        tap.check("one transfer moved the xmpp wallet's 10.00", moved == "1:1000", moved)
        return told
    tap.run("LINK on IRC, LINK <code> on XMPP, LINK CONFIRM on IRC: both told", link)

    def buy_xmpp_refund_irc():
        w = bob.ask(shop, "WALLET", r"^Wallet ", retry=XRETRY)[2]
        tap.check("the xmpp identity sees the person's wallet (20.00)", "balance 20.00 " in w, w)
        m = bob.ask(shop, "BUY %s" % sku, r"CONFIRM (\S+)|receipt \d+", retry=XRETRY)
        code = re.search(r"CONFIRM (\S+)", m[2])
        if code:
            m = bob.ask(shop, "CONFIRM " + code.group(1), r"receipt \d+", retry=XRETRY)
        rid = re.search(r"receipt (\d+)", m[2]).group(1)
        who = db.scalar("SELECT a.name || ' by ' || coalesce(n.name || ':' || i.name, '-') FROM transfers t"
                        " JOIN accounts a ON a.id = t.account_id LEFT JOIN transfer_identities ti ON ti.transfer_id = t.id"
                        " LEFT JOIN identities i ON i.id = ti.identity_id LEFT JOIN networks n ON n.id = i.network_id"
                        " WHERE t.id = %s" % rid)
        tap.check("the xmpp purchase is on the person's wallet, made by the xmpp identity",
                  who == "user:%s by xmpp:%s" % (alice.nick, bob.bare), who)
        r = ask(alice, "REFUND %s" % rid, r"Refunded 2\.00 credits for receipt %s" % rid)
        w = ask(alice, "WALLET", r"^Wallet ").text
        tap.check("refunded on IRC: the person's wallet is whole again (20.00)", "balance 20.00 " in w, w)
        return r
    tap.run("a purchase on XMPP and its refund on IRC, by the same person", buy_xmpp_refund_irc)

    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes (the link invariants too)", rc == 0, out[-2000:])
    for c in (creator, oper, alice):
        c.quit()


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    build = os.environ.get("TALLY_BUILD", "build")
    for f in (so, os.path.join(build, "tallyd"), os.path.join(build, "prosody/tally.so")):
        if not os.path.isfile(f):
            tap.check("%s is built" % f, False)
            tap.exit()
    try:
        with ic.TestDb("link_remote") as db, \
                TallydEnv(db.dsn, SECRETS, extra={"welcome_grant": "1000", "rate_account": "0"}) as td:
            remote = {"mode": "remote", "address": td.unix_address, "secret": SECRETS["xmpp"],
                      "instance": "xmpp-link.tally.test", "network": "xmpp"}
            with ic.IrcEnv(tally_so=so, dsn="", tag_extra=td.tag("irc")) as env, \
                    ProsodyEnv(db.dsn, {"bob": "pw-bob"}, tally=remote) as px:
                try:
                    scenario(tap, db, env, px)
                except Exception:
                    print("# prosody log tail:\n# " + "\n# ".join(px.log()[-1500:].splitlines()))
                    print("# tallyd log tail:\n# " + "\n# ".join(td.log()[-1500:].splitlines()))
                    print("# inspircd log tail:\n# " + "\n# ".join(env.log()[-1500:].splitlines()))
                    raise
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
