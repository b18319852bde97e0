#!/usr/bin/python3
"""test_link_matrix.py — one wallet across IRC and Matrix, end to end: ONE
tallyd serving an IRC network (InspIRCd + Anope, the module in remote mode)
and the Matrix Application Service (the homeserver double standing in for a
homeserver: tests/e2e/matrix_double.py) at once.

1. An IRC user says LINK privately and gets a code; a Matrix user (whose own
   wallet holds the demo welcome grant) says `!link <code>` in the DM she
   opened with the bot (an is_direct invite); the IRC user is told who asks
   and answers LINK CONFIRM <code>; both are told; the Matrix wallet's
   balance moved by ONE transfer (kind 5).
2. The Matrix user buys in a room (`!buy`, the person's first purchase:
   `!confirm`), the IRC user refunds that receipt: one wallet, and the
   purchase keeps the Matrix identity that made it (transfer_identities).
3. `tally check` passes (the link invariants included).

Own database e2e_link_matrix_<pid>. Needs inspircd + anope, build/tallyd,
the tally CLI.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
import matrix_env  # noqa: E402
from matrix_double import HomeserverDouble, member, message  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402

PASSWORD = "Correct-Horse-42"
SECRETS = {"irc": "irc-network-secret-for-the-matrix-link-test"}
SERVER = "test.local"
ROOM = "!shop:" + SERVER
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving|shop is unavailable"
                     r"|still being recorded|payment of its is still being recorded")


def ask(c, line, regex=".", timeout=60, retry=NOT_YET):
    return ic.tally_ask(c, line, regex, timeout, retry=retry)


def login(env, nick):
    c = env.client(nick)
    c.ns_register(PASSWORD)
    if c.wait_account() != nick:
        raise ic.IRCError("%s is not logged in" % nick)
    return c


class MatrixUser:
    """A Matrix user speaking through the double: says lines in a room (or
    her DM with the bot) and waits for the bot's reply to each."""

    def __init__(self, hs, mxid, name):
        self.hs, self.mxid, self.name = hs, mxid, name
        self.dm = "!dm-%s:%s" % (mxid[1:].split(":")[0], SERVER)
        hs.set_room(self.dm, {mxid: name})
        push_ok(hs, [member(self.dm, hs.bot, "invite", sender=mxid, is_direct=True)])
        hs.wait_for(lambda: self.dm in hs.joins)

    def ask(self, body, regex, room=None, timeout=30, retry=NOT_YET):
        deadline = time.monotonic() + timeout
        while True:
            ev = message(room or self.dm, self.mxid, body)
            push_ok(self.hs, [ev])
            text = self.hs.reply_to(ev["event_id"], r".", max(1, deadline - time.monotonic()))["content"]["body"]
            if retry and retry.search(text) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            if not re.search(regex, text):
                raise AssertionError("unexpected reply %r to %r (wanted /%s/)" % (text, body, regex))
            return text

    def wait_dm(self, regex, since, timeout=30):
        return self.hs.wait_event(lambda r, ev: r == self.dm and re.search(regex, ev["content"].get("body", "")),
                                  timeout, since)[1]["content"]["body"]


def push_ok(hs, events):
    st, js, _ = hs.push(events)
    if st != 200:
        raise AssertionError("the AS answered a transaction %s %r" % (st, js))


def scenario(tap, db, env, hs):
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "m" + tag
    creator, oper, alice = login(env, "mc" + tag), login(env, "mo" + tag), login(env, "ma" + tag)
    oper.send("OPER admin adminpass")
    oper.wait_numeric("381")
    bob_id = "@bob%s:%s" % (tag, SERVER)
    # A room of three (a room of two, the bot one, is a DM): bob buys there.
    hs.set_room(ROOM, {hs.bot: "tally", bob_id: "Bob", "@carol:" + SERVER: "Carol"})
    bob = MatrixUser(hs, bob_id, "Bob")

    def setup():
        ask(creator, "WALLET", r"^Wallet ")
        ask(oper, "TALLY ROLE %s creator" % creator.nick, r"is now a creator")
        ask(creator, "ITEM ADD %s 2 Linked tee" % sku, r"added")
        deadline = time.monotonic() + 30
        while "balance 0.00 " in ask(alice, "WALLET", r"^Wallet ").text:
            if time.monotonic() > deadline:
                raise ic.IRCError("no welcome grant for %s" % alice.nick)
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while "balance 0.00 " in bob.ask("!wallet", r"^Wallet "):
            if time.monotonic() > deadline:
                raise AssertionError("no welcome grant for the matrix user")
            time.sleep(0.3)
        return True
    tap.run("a shop on IRC; an IRC user and a Matrix user with their own wallets, one tallyd", setup)

    def link():
        m = ask(alice, "LINK", r"Your link code: (\S+)")
        code = re.search(r"Your link code: (\S+)", m.text).group(1)
        mark = alice.mark()
        text = bob.ask("!link %s" % code.lower(), r"Asked irc:%s to confirm" % alice.nick)
        tap.check("the matrix user is told whom tally asks", alice.nick in text, text)
        asked = alice.wait_notice(r"asks to join your wallet", timeout=30, since=mark)
        tap.check("the issuer is told which identity asks", ("matrix:" + bob_id) in asked.text, asked.text)
        confirm = re.search(r"LINK CONFIRM (\S+)", asked.text).group(1)
        xmark = hs.mark()
        done = ask(alice, "LINK CONFIRM %s" % confirm, r"Linked matrix:\S+ to this wallet")
        tap.check("the move is said with its receipt", re.search(r"10\.00 credits moved here by one transfer\. "
                                                                 r"receipt \d+", done.text), done.text)
        told = bob.wait_dm(r"Linked: you now use the wallet of irc:%s" % alice.nick, xmark)
        moved = db.scalar("SELECT count(*) || ':' || coalesce(sum(amount_minor), 0) FROM transfers WHERE kind = 5")
        tap.check("one transfer moved the matrix wallet's 10.00", moved == "1:1000", moved)
        return told
    tap.run("LINK on IRC, !link <code> in the Matrix DM, LINK CONFIRM on IRC: both told", link)

    def buy_matrix_refund_irc():
        w = bob.ask("!wallet", r"^Wallet ")
        tap.check("the matrix identity sees the person's wallet (20.00)", "balance 20.00 " in w, w)
        text = bob.ask("!buy %s" % sku, r"(?i)confirm (\S+)|receipt \d+", room=ROOM)
        code = re.search(r"(?i)\bconfirm ([A-Z0-9]{4,})", text)
        if code:
            text = bob.ask("!confirm " + code.group(1), r"receipt \d+", room=ROOM)
        rid = re.search(r"receipt (\d+)", text)
        if not rid:
            raise AssertionError("no receipt in the answer to the purchase: %r" % text)
        rid = rid.group(1)
        who = db.scalar("SELECT a.name || ' by ' || coalesce(n.name || ':' || i.name, '-') FROM transfers t"
                        " JOIN accounts a ON a.id = t.account_id LEFT JOIN transfer_identities ti ON ti.transfer_id = t.id"
                        " LEFT JOIN identities i ON i.id = ti.identity_id LEFT JOIN networks n ON n.id = i.network_id"
                        " WHERE t.id = %s" % rid)
        tap.check("the matrix purchase is on the person's wallet, made by the matrix identity",
                  who == "user:%s by matrix:%s" % (alice.nick, bob_id), who)
        r = ask(alice, "REFUND %s" % rid, r"Refunded 2\.00 credits for receipt %s" % rid)
        w = ask(alice, "WALLET", r"^Wallet ").text
        tap.check("refunded on IRC: the person's wallet is whole again (20.00)", "balance 20.00 " in w, w)
        w = bob.ask("!wallet", r"^Wallet ")
        tap.check("and Matrix sees the same wallet (20.00)", "balance 20.00 " in w, w)
        return r
    tap.run("a purchase on Matrix and its refund on IRC, by the same person", buy_matrix_refund_irc)

    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes (the link invariants too)", rc == 0, out[-2000:])
    for c in (creator, oper, alice):
        c.quit()


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    build = os.environ.get("TALLY_BUILD", "build")
    for f in (so, os.path.join(build, "tallyd")):
        if not os.path.isfile(f):
            tap.check("%s is built" % f, False)
            tap.exit()
    try:
        with ic.TestDb("link_matrix") as db:
            port = free_port()
            reg = matrix_env.fresh_registration(tap, db.dsn, "link-matrix", port, SERVER)
            as_token, hs_token = matrix_env.read_tokens(reg)
            hs = HomeserverDouble(as_token, hs_token, SERVER)
            hs.as_url = "http://127.0.0.1:%d" % port
            try:
                keys = matrix_env.as_keys(port, reg, hs.url, SERVER, welcome_grant="1000")
                with TallydEnv(db.dsn, SECRETS, extra=keys) as td, \
                        ic.IrcEnv(tally_so=so, dsn="", tag_extra=td.tag("irc")) as env:
                    try:
                        scenario(tap, db, env, hs)
                    except Exception:
                        print("# tallyd log tail:\n# " + "\n# ".join(td.log()[-2000:].splitlines()))
                        print("# inspircd log tail:\n# " + "\n# ".join(env.log()[-1500:].splitlines()))
                        raise
                    rc = td.stop()
                    tap.check("tallyd stops with 0", rc == 0, td.log()[-2000:])
            finally:
                hs.close()
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
