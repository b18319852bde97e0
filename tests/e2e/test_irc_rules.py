#!/usr/bin/python3
"""test_irc_rules.py — who may do what, hostile input, and nick changes,
through a real InspIRCd 3 with real Anope and PostgreSQL.

Permissions: a logged-in user who is not a creator cannot ITEM ADD/SET/DEL;
a user who is not an IRC operator cannot TALLY GRANT (not even as channel
operator); an operator can. A channel member without ops cannot host
(`!event start` is refused with "no permission"); the channel's operator can.

Bad input: lines longer than the server keeps, invalid UTF-8, CTCP, NUL (the
server turns it into a space before any module sees it), missing and extra
arguments, amounts and quantities that are zero, negative, huge or not plain
digits. Each gets its own NOTICE; afterwards the wallet and the ledger show
that nothing was charged, and the server still relays channel lines.

Identity: BUY, then a NICK change (even to another account's nick), then
CONFIRM charges the services account, not the nick; consent follows the
account; a stranger who takes the old nick cannot pay or confirm with it.

Own database e2e_rules_<pid> on $TALLY_TEST_DSN's cluster (or a private
PostgreSQL without it). Prints `ok`/`not ok` lines; exits 1 on failure.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving")


def ask(c, line, regex=".", timeout=60):
    return ic.tally_ask(c, line, regex, timeout, retry=NOT_YET)


def registered(env, prefix):
    c = env.client(ic.unique_nick(prefix))
    c.ns_register(PASSWORD)
    if c.wait_account() != c.nick:
        raise ic.IRCError("%s has no services account" % c.nick)
    return c


def user_transfers(db, account, kind=None):
    sql = ("SELECT count(*) FROM transfers t JOIN accounts a ON a.id = t.account_id "
           "WHERE a.name = 'user:%s'" % account)
    if kind:
        sql += " AND t.kind = %d" % kind
    return int(db.scalar(sql))


def balance(c):
    m = ask(c, "WALLET", r"^Wallet ")
    return re.search(r"balance (\S+)", m.text).group(1)


def funded(c, timeout=30):
    """Waits until the demo welcome grant is in c's wallet."""
    deadline = time.monotonic() + timeout
    while balance(c) == "0.00":
        if time.monotonic() > deadline:
            raise ic.IRCError("%s never got the welcome grant" % c.nick)
        time.sleep(0.3)
    return True


def change_nick(c, new):
    """NICK new, retried while the nick is still in use; waits for the echo."""
    deadline = time.monotonic() + 15
    while True:
        mark = c.mark()
        c.send("NICK %s" % new)
        m = c.expect(lambda x: (x.command == "NICK" and x.nick == c.nick) or x.command == "433",
                     15, "NICK", mark)
        if m.command == "NICK":
            c.nick = new
            return
        if time.monotonic() > deadline:
            raise ic.IRCError("nick %s stays in use" % new)
        time.sleep(0.3)


def send_raw(c, data):
    c.sock.setblocking(True)
    try:
        c.sock.sendall(data + b"\r\n")
    finally:
        c.sock.setblocking(False)


def permissions(tap, env, db, oper, creator, plain, sku):
    chan = "#perm%d" % os.getpid()

    tap.run("creator lists an item (after TALLY ROLE by an operator)",
            lambda: ask(creator, "ITEM ADD %s 5 10 Test mug" % sku, r"^Item %s added" % sku))

    tap.run("non-creator: ITEM ADD -> no permission",
            lambda: ask(plain, "ITEM ADD pl%s 5 Plain mug" % sku,
                        r"^no permission: only creators can manage items$"))
    tap.run("non-creator: ITEM SET on someone's item -> no permission",
            lambda: ask(plain, "ITEM SET %s price 1" % sku, r"^no permission"))
    tap.run("non-creator: ITEM DEL -> no permission",
            lambda: ask(plain, "ITEM DEL %s" % sku, r"^no permission"))

    def unchanged():
        rows = db.query("SELECT price_minor, deleted FROM items WHERE sku = '%s'" % sku)
        if rows != [["500", "f"]]:
            raise ic.IRCError("item changed: %r" % rows)
        if db.scalar("SELECT count(*) FROM items WHERE sku = 'pl%s'" % sku) != "0":
            raise ic.IRCError("the non-creator's item exists")
        return True
    tap.run("refused ITEM commands changed no catalog row", unchanged)

    grants_before = user_transfers(db, plain.nick, kind=4)
    tap.run("non-oper: TALLY GRANT -> no permission: admins only (the IRC operators)",
            lambda: ask(plain, "TALLY GRANT %s 5" % plain.nick,
                        r"^no permission: admins only; admins here are the IRC operators$"))

    def chanop_not_oper():
        plain.join(chan)  # first in: +o
        mark = plain.mark()
        plain.privmsg(chan, "!tally grant %s 5" % plain.nick)
        m = plain.wait_notice(r".", 30, since=mark)
        if not m.text.startswith("no permission"):
            raise ic.IRCError("chanop got %r" % m.text)
        return True
    tap.run("channel operator (not IRC operator): !tally grant -> no permission", chanop_not_oper)
    tap.run("non-oper: TALLY ROLE -> no permission",
            lambda: ask(plain, "TALLY ROLE %s creator" % plain.nick, r"^no permission"))

    def oper_grants():
        before = balance(plain)
        ask(oper, "TALLY GRANT %s 5" % plain.nick, r"^Granted 5\.00 \S+ to %s\. receipt \d+$" % plain.nick)
        after = balance(plain)
        if float(after) != float(before) + 5:
            raise ic.IRCError("balance %s -> %s" % (before, after))
        return True
    tap.run("IRC operator: TALLY GRANT works and the wallet shows it", oper_grants)
    tap.check("ledger: exactly the operator's grant was added",
              user_transfers(db, plain.nick, kind=4) == grants_before + 1,
              "grants %d -> %d" % (grants_before, user_transfers(db, plain.nick, kind=4)))

    def non_op_cannot_host():
        hchan = "#host%d" % os.getpid()
        creator.join(hchan)  # first in: the channel's operator
        plain.join(hchan)    # a member without ops (and no IRC operator)
        m = ask(plain, lambda: plain.privmsg(hchan, "!event start 10 Mine"), r"^no permission")
        # The same line from the channel's operator starts an event: the
        # refusal is about who asks, not a broken command.
        ask(creator, lambda: creator.privmsg(hchan, "!event start 10 Theirs"), r"^(?!no permission)")
        ask(creator, lambda: creator.privmsg(hchan, "!event stop"), r"^(?!no permission)")
        hosts = db.query("SELECT a.name FROM events e JOIN accounts a ON a.id = e.host_id"
                         " WHERE e.channel = '%s'" % hchan)
        if any(row[0].lower() == "user:" + plain.nick.lower() for row in hosts):
            raise ic.IRCError("the non-op hosts an event: %r" % hosts)
        return m
    tap.run("non-op cannot host: a member's !event start in a channel is refused (no permission)",
            non_op_cannot_host)
    tap.check("ledger: the grant has an audit row naming the operator",
              db.scalar("SELECT count(*) FROM audit_log WHERE action = 'grant' AND actor = 'user:%s'"
                        % oper.nick) == "1",
              "audit rows: %s" % db.query("SELECT actor, detail FROM audit_log"))

    def oper_without_privilege():
        helper = registered(env, "hp")
        try:
            helper.send("OPER helper helperpass")  # an oper type without <class privs="tally/grant">
            helper.wait_numeric("381")
            before = user_transfers(db, plain.nick, kind=4)
            ask(helper, "TALLY GRANT %s 5" % plain.nick,
                r"^no permission: TALLY GRANT needs the grant privilege \(the oper privilege tally/grant\)$")
            if user_transfers(db, plain.nick, kind=4) != before:
                raise ic.IRCError("the unprivileged operator's grant moved money")
        finally:
            helper.quit()
        return True
    tap.run("IRC operator without tally/grant: TALLY GRANT -> no permission", oper_without_privilege)


def bad_input(tap, env, db, buyer, sku, tip_to):
    chan = "#bad%d" % os.getpid()
    watcher = env.client(ic.unique_nick("wb"))
    try:
        buyer.join(chan)
        watcher.join(chan)
        ask(buyer, "BUY %s" % sku, r"CONFIRM \S+")  # leaves a pending consent
        wallet0 = balance(buyer)
        count0 = user_transfers(db, buyer.nick)
        long_tail = b"x" * 600
        cases = [
            ("overlong command line (>512 bytes)", b"BUY " + long_tail, r"^tally: line too long"),
            ("overlong channel line (>512 bytes)",
             b"PRIVMSG " + chan.encode() + b" :!buy " + long_tail, r"^tally: line too long"),
            ("overlong TIP whose start is valid",
             ("TIP %s 1 " % tip_to).encode() + long_tail, r"^tally: line too long"),
            ("invalid UTF-8 (bare continuation bytes)", b"BUY \xff\xfe", r"^tally: invalid UTF-8$"),
            ("invalid UTF-8 (overlong encoding)", b"BUY \xc0\xaf", r"^tally: invalid UTF-8$"),
            ("invalid UTF-8 (surrogate)", b"BUY \xed\xa0\x80", r"^tally: invalid UTF-8$"),
            ("invalid UTF-8 in a channel line",
             b"PRIVMSG " + chan.encode() + b" :!buy caf\xc3", r"^tally: invalid UTF-8$"),
            ("CTCP in a command", b"BUY \x01VERSION\x01", r"^tally: CTCP is not allowed"),
            ("CTCP in a channel command",
             b"PRIVMSG " + chan.encode() + b" :!buy " + sku.encode() + b"\x01", r"^tally: CTCP is not allowed"),
            ("NUL arrives as a space (BUY sk\\0u -> BUY sk u)",
             b"BUY " + sku[:2].encode() + b"\x00" + sku[2:].encode(), r"^(unknown sku|quantity must)"),
            ("BUY without sku", b"BUY", r"^wrong arguments\. Usage: BUY <sku> \[qty\] \[max=<price>\] \[ref=<code>\] \[noreward\]$"),
            ("BUY with an extra argument", ("BUY %s 1 2" % sku).encode(), r"^wrong arguments\. Usage: BUY"),
            ("CONFIRM without code", b"CONFIRM", r"^wrong arguments\. Usage: CONFIRM <code> \| CONFIRM EXTEND$"),
            ("CONFIRM with an extra argument", b"CONFIRM AAAAAA extra", r"^wrong arguments\. Usage: CONFIRM"),
            ("CONFIRM with a wrong code", b"CONFIRM ZZZZZZ", r"^unknown or expired confirmation code$"),
            ("TIP without amount", ("TIP %s" % tip_to).encode(), r"^wrong arguments\. Usage: TIP"),
            ("REFUND without receipt", b"REFUND", r"^wrong arguments\. Usage: REFUND"),
            ("VERIFY with an extra argument", b"VERIFY 1 2", r"^wrong arguments\. Usage: VERIFY"),
            ("TIP amount zero", ("TIP %s 0" % tip_to).encode(), r"^amount must be a plain positive number$"),
            ("TIP amount 0.00", ("TIP %s 0.00" % tip_to).encode(), r"^amount must be a plain positive number$"),
            ("TIP amount negative", ("TIP %s -5" % tip_to).encode(), r"^amount must be a plain positive number$"),
            ("TIP amount with a plus sign", ("TIP %s +5" % tip_to).encode(), r"^amount must be a plain positive"),
            ("TIP amount with an exponent", ("TIP %s 1e3" % tip_to).encode(), r"^amount must be a plain positive"),
            ("TIP amount with too many decimals", ("TIP %s 1.001" % tip_to).encode(),
             r"^amount must be a plain positive"),
            ("TIP amount in fullwidth digits", ("TIP %s \uff15" % tip_to).encode(), r"^amount must be a plain positive"),
            ("TIP amount not digits", ("TIP %s five" % tip_to).encode(), r"^amount must be a plain positive"),
            ("TIP amount huge (30 digits)", ("TIP %s %s" % (tip_to, "9" * 30)).encode(),
             r"^amount must be a plain positive|^amount too large"),
            ("TIP amount that overflows in minor units", ("TIP %s 92233720368547759" % tip_to).encode(),
             r"^amount too large$"),
            ("TIP amount more than the wallet", ("TIP %s 1000000" % tip_to).encode(), r"^not enough credits"),
            ("BUY quantity zero", ("BUY %s 0" % sku).encode(), r"^quantity must be a plain positive number$"),
            ("BUY quantity negative", ("BUY %s -1" % sku).encode(), r"^quantity must be a plain positive number$"),
            ("BUY quantity not digits", ("BUY %s two" % sku).encode(), r"^quantity must be a plain positive number$"),
            ("BUY quantity fractional", ("BUY %s 1.5" % sku).encode(), r"^quantity must be a plain positive number$"),
            ("BUY quantity huge", ("BUY %s 99999999999999" % sku).encode(),
             r"^quantity must be a plain positive number$"),
            ("BUY more than the stock", ("BUY %s 11" % sku).encode(), r"^Only \d+ left of %s$" % sku),
            ("BUY unknown sku", b"BUY no-such-sku", r"^unknown sku$"),
            ("REFUND a receipt that is not a number", b"REFUND abc", r"^unknown receipt$"),
        ]
        for name, data, regex in cases:
            def one(data=data, regex=regex):
                return ask(buyer, lambda: send_raw(buyer, data), regex, timeout=30)
            tap.run("bad input: %s -> its own NOTICE" % name, one)

        tap.check("bad input: the wallet is unchanged", balance(buyer) == wallet0)
        count1 = user_transfers(db, buyer.nick)
        tap.check("bad input: no transfer was recorded", count1 == count0,
                  "transfers %d -> %d" % (count0, count1))

        def still_relays():
            mark = watcher.mark()
            buyer.privmsg(chan, "still here")
            watcher.wait_privmsg("^still here$", chan, 10, since=mark)
            leaked = [m.raw for m in watcher.seen if m.command == "PRIVMSG" and m.text.startswith("!")]
            if leaked:
                raise ic.IRCError("command lines reached the channel: %r" % leaked[:3])
            fresh = env.client(ic.unique_nick("fr"))
            fresh.quit()
            return True
        tap.run("bad input: the server still relays lines and accepts clients; no !line leaked",
                still_relays)
    finally:
        watcher.quit()


def nick_change(tap, env, db, sku):
    a = registered(env, "na")
    b = registered(env, "nb")
    d = registered(env, "nd")
    acct_a, acct_b = a.nick, b.nick
    stranger = None
    try:
        for c in (a, b, d):
            funded(c)
        wallet_b = balance(b)
        code = {}

        def consent():
            m = ask(a, "BUY %s" % sku, r"CONFIRM (\S+)")
            code["a"] = re.search(r"CONFIRM (\S+)", m.text).group(1)
            return True
        tap.run("nick change: A's BUY asks for consent", consent)

        tap.run("another account cannot use A's CONFIRM code",
                lambda: ask(d, "CONFIRM %s" % code.get("a", "X"),
                            r"^unknown or expired confirmation code$"))

        def take_b_nick():
            b.quit()
            change_nick(a, acct_b)  # a nick registered to account B
            acct = a.whois_account()
            if acct != acct_a:
                raise ic.IRCError("WHOIS says account %r after the nick change" % acct)
            return True
        tap.run("nick change: A takes B's registered nick and stays logged in as A", take_b_nick)

        receipt = {}

        def confirm():
            m = ask(a, "CONFIRM %s" % code.get("a", "X"), r"receipt (\d+)")
            receipt["id"] = re.search(r"receipt (\d+)", m.text).group(1)
            return True
        tap.run("nick change: CONFIRM under the new nick gives a receipt", confirm)

        def charged_account():
            rows = db.query("SELECT a.name FROM transfers t JOIN accounts a ON a.id = t.account_id "
                            "WHERE t.id = %s" % receipt.get("id", "0"))
            if rows != [["user:%s" % acct_a]]:
                raise ic.IRCError("receipt %s belongs to %r" % (receipt.get("id"), rows))
            if user_transfers(db, acct_b, kind=1):
                raise ic.IRCError("account B has purchases")
            return True
        tap.run("ledger: the purchase belongs to account A, not to the nick's owner B", charged_account)

        def b_untouched():
            b2 = env.client(ic.unique_nick("nb"))
            try:
                b2.ns_identify(PASSWORD, account=acct_b)
                if b2.wait_account() != acct_b:
                    raise ic.IRCError("could not log in as B")
                if balance(b2) != wallet_b:
                    raise ic.IRCError("B's wallet changed")
            finally:
                b2.quit()
            return True
        tap.run("B's wallet is unchanged", b_untouched)

        def consent_follows():
            change_nick(a, ic.unique_nick("nz"))
            ask(a, "BUY %s" % sku, r"^Bought .*receipt \d+")
            m = ask(a, "WALLET", r"^Wallet %s: " % re.escape(acct_a))
            if "balance 90.00" not in m.text:
                raise ic.IRCError("wallet: %r" % m.text)
            return True
        tap.run("consent and wallet follow the account across nick changes", consent_follows)

        def stranger_old_nick():
            nonlocal stranger
            stranger = env.client(acct_a)  # A's original (registered) nick, no account
            if stranger.nick != acct_a:
                raise ic.IRCError("got nick %s" % stranger.nick)
            before = user_transfers(db, acct_a)
            ask(stranger, "BUY %s" % sku, r"^not logged in")
            ask(stranger, "CONFIRM %s" % code.get("a", "X"), r"^not logged in")
            ask(stranger, "WALLET", r"^not logged in")
            if user_transfers(db, acct_a) != before:
                raise ic.IRCError("account A was charged")
            return True
        tap.run("a stranger on A's old nick cannot buy, confirm or see A's wallet", stranger_old_nick)
    finally:
        for c in (a, b, d, stranger):
            if c:
                c.quit()


def scenario(tap, env, db):
    sku = "m%x" % (os.getpid() & 0xFFFFF)
    oper = registered(env, "op")
    creator = registered(env, "cr")
    plain = registered(env, "pl")
    buyer = registered(env, "bi")
    try:
        for c in (creator, plain, buyer):
            funded(c)  # the engine knows the accounts and granted the demo credits
        oper.send("OPER admin adminpass")
        oper.wait_numeric("381")
        ask(oper, "TALLY ROLE %s creator" % creator.nick, r"is now a creator")
        permissions(tap, env, db, oper, creator, plain, sku)
        bad_input(tap, env, db, buyer, sku, creator.nick)
        nick_change(tap, env, db, sku)
    finally:
        for c in (oper, creator, plain, buyer):
            c.quit()


if __name__ == "__main__":
    ic.network_test("rules", scenario, settle=0)
