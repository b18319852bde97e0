#!/usr/bin/python3
"""test_irc_basic.py — tally inside a real InspIRCd 3 with real Anope services.

Starts a private network with tools/irc_env.sh on free loopback ports, loads
$TALLY_BUILD/m_tally.so with <tally> pointing at $TALLY_TEST_DSN, and checks
what a user sees. Prints `ok NAME` / `not ok NAME` per check; exits 1 on any
failure. Without a built m_tally.so the tally checks are skipped and only the
network (InspIRCd + Anope + NickServ accounts) is checked.

    TALLY_BUILD=build TALLY_TEST_DSN='host=... dbname=tally' tests/e2e/test_irc_basic.py

With no TALLY_TEST_DSN it starts its own PostgreSQL with tools/pg.sh.
TALLY_KEEP_ENV=1 keeps the network's folder (configs, logs) for a post-mortem.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
# Replies that mean "ask again shortly", not an answer to the command.
TRANSIENT = re.compile(r"starting up|busy, try again")
ENGINE_WAIT_S = 60.0


def ask(client, send, regex, timeout=ENGINE_WAIT_S):
    """Sends a line until tally's NOTICE is not a transient one; returns the
    first non-transient NOTICE, which must match regex. A reply still
    transient at the deadline fails."""
    deadline = time.monotonic() + timeout
    while True:
        mark = client.mark()
        send()
        m = client.expect(lambda x: x.command == "NOTICE" and x.target == client.nick
                          and x.nick != "NickServ", max(1.0, deadline - time.monotonic()),
                          "tally NOTICE", mark)
        if TRANSIENT.search(m.text):
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            # Still "starting up" at the deadline is no answer, whatever regex allows.
            raise ic.IRCError("still %r after %.0f s" % (m.text, timeout))
        if not re.search(regex, m.text):
            raise ic.IRCError("unexpected reply %r (wanted /%s/)" % (m.text, regex))
        return m


def network_checks(tap, env, with_tally):
    log = env.log()
    for mod in ("spanningtree", "services_account", "sasl", "alias", "helpop", "cap",
                "ircv3_msgid") + (("tally",) if with_tally else ()):
        tap.check("module %s loaded" % mod, "New module introduced: m_%s.so" % mod in log)
    tap.check("services linked", re.search(r"services\.tally\.test", log) is not None)

    def identify():
        nick = ic.unique_nick("id")
        c = env.client(nick)
        try:
            c.ns_register(PASSWORD)
            c.ns("LOGOUT", r"(?i)logged out")
            if c.whois_account() is not None:
                raise ic.IRCError("still logged in after LOGOUT")
            c.ns_identify(PASSWORD)
            acct = c.wait_account()
            if acct != nick:
                raise ic.IRCError("WHOIS 330 says %r, wanted %r" % (acct, nick))
        finally:
            c.quit()
        return True
    tap.run("NickServ REGISTER+IDENTIFY gives a services account (WHOIS 330)", identify)


def tally_checks(tap, env):
    alice = env.client(ic.unique_nick("al"), caps=("message-tags", "account-tag"))
    bob = env.client(ic.unique_nick("bo"))
    chan = "#shop%d" % os.getpid()
    try:
        alice.join(chan)
        bob.join(chan)

        # Wait until the engine answers at all (it connects to PostgreSQL first).
        tap.run("engine answers (not 'starting up')",
                lambda: ask(alice, lambda: alice.send("WALLET"), r"^not logged in"))

        def plain_message_passes():
            lines = ["hello there", "!notatallycommand x", "price is 5! ok",
                     "caf\u00e9 \u2603 !buy in the middle"]
            for text in lines:
                alice.privmsg(chan, text)
            for text in lines:
                m = bob.wait_privmsg("^" + re.escape(text) + "$", chan, 5)
                if m.nick != alice.nick:
                    raise ic.IRCError("from %r" % m.prefix)
            return True
        tap.run("other channel messages reach others unchanged", plain_message_passes)

        def buy_not_broadcast():
            mark = bob.mark()
            ask(alice, lambda: alice.privmsg(chan, "!buy sku1 1"), r".")
            alice.privmsg(chan, "!BUY sku1 1")
            alice.privmsg(chan, "after the buys")
            bob.wait_privmsg("^after the buys$", chan, 5, since=mark)
            leaked = [m.raw for m in bob.seen[mark:]
                      if m.command == "PRIVMSG" and "sku1" in m.text]
            if leaked:
                raise ic.IRCError("leaked: %r" % leaked)
            return True
        tap.run("!buy lines are not broadcast", buy_not_broadcast)

        # The engine says it neutrally and carries TALLY_HINT_LOG_IN; the
        # module adds how it is done on IRC.
        tap.run("BUY without an account -> 'not logged in', with the NickServ hint",
                lambda: ask(bob, lambda: bob.send("BUY sku1 1"),
                            r"^not logged in: log in to your account first \(/msg NickServ IDENTIFY <password>\)$"))
        tap.run("!buy without an account -> 'not logged in'",
                lambda: ask(bob, lambda: bob.privmsg(chan, "!buy sku1 1"), r"not logged in"))

        def ctcp_refused():
            mark = alice.mark()
            alice.privmsg(chan, "!buy \x01x")
            return alice.wait_notice(r"CTCP", 5, since=mark)
        tap.run("a command line with CTCP bytes is refused", ctcp_refused)

        def bad_utf8_refused():
            mark = alice.mark()
            alice.send(b"PRIVMSG " + chan.encode() + b" :!buy \xff\xfe")
            return alice.wait_notice(r"invalid UTF-8", 5, since=mark)
        tap.run("a command line with invalid UTF-8 is refused", bad_utf8_refused)

        def wallet_after_identify():
            alice.ns_register(PASSWORD)
            if alice.wait_account() != alice.nick:
                raise ic.IRCError("no account after REGISTER")
            m = ask(alice, lambda: alice.send("WALLET"), r"\d")
            if re.search(r"not logged in|unknown command|wrong arguments", m.text):
                raise ic.IRCError("WALLET refused: %r" % m.text)
            return True
        tap.run("after NickServ REGISTER, WALLET answers with a balance", wallet_after_identify)

        def channel_context_tag():
            # alice negotiated message-tags: the private answer to her !wallet
            # in the channel names that channel (+draft/channel-context).
            if "message-tags" not in alice.caps:
                raise ic.IRCError("message-tags not negotiated: %r" % alice.caps)
            m = ask(alice, lambda: alice.privmsg(chan, "!wallet"), r"\d")
            if m.tags.get("+draft/channel-context") != chan:
                raise ic.IRCError("no +draft/channel-context=%s on %r" % (chan, m.raw))
            p = ask(alice, lambda: alice.send("WALLET"), r"\d")
            if "+draft/channel-context" in p.tags:
                raise ic.IRCError("a private command's answer names a channel: %r" % p.raw)
            # bob did not: the same answer comes without any tag.
            b = ask(bob, lambda: bob.privmsg(chan, "!wallet"), r"not logged in")
            if b.raw.startswith("@"):
                raise ic.IRCError("tags sent to a client without message-tags: %r" % b.raw)
            return m
        tap.run("+draft/channel-context=<channel> on the answer to a ! line, only with message-tags",
                channel_context_tag)

        def channel_answer_prefix():
            # The answer to a ! line starts with "[#chan] " and comes from
            # <server>!tally@<server> (irssi and WeeChat show such a notice in
            # the channel's window); a private command's answer stays a plain
            # server notice. ircclient hides both for the other checks, so
            # this one reads the raw lines.
            server = "irc.tally.test"
            want = ":%s!tally@%s NOTICE %s :[%s] " % (server, server, bob.nick, chan)
            b = ask(bob, lambda: bob.privmsg(chan, "!wallet"), r"not logged in")
            if not b.raw.startswith(want) or b.context != chan:
                raise ic.IRCError("answer to !wallet is %r, wanted it to start with %r" % (b.raw, want))
            m = ask(alice, lambda: alice.privmsg(chan, "!wallet"), r"^Wallet ")
            if " :[%s] Wallet " % chan not in m.raw:
                raise ic.IRCError("no [%s] prefix on %r" % (chan, m.raw))
            p = ask(alice, lambda: alice.send("WALLET"), r"^Wallet ")
            if not p.raw.startswith(":%s NOTICE %s :Wallet " % (server, alice.nick)):
                raise ic.IRCError("a private command's answer changed: %r" % p.raw)
            return b
        tap.run("the answer to a ! line starts with [<channel>] and comes from <server>!tally@<server>",
                channel_answer_prefix)

        def quitter():
            q = env.client(ic.unique_nick("q"))
            for _ in range(10):
                q.send("SHOP")
            q.quit("gone before the answers")
            return ask(alice, lambda: alice.send("WALLET"), r"\d")
        tap.run("answers to a user who quit are dropped; the server carries on", quitter)
    finally:
        alice.quit()
        bob.quit()


def main():
    def body(tap, so, db):
        with ic.IrcEnv(tally_so=so, dsn=db.dsn, tag_extra='welcome_grant="1000"') as env:
            network_checks(tap, env, True)
            tally_checks(tap, env)
    ic.own_db_main("basic", body)


if __name__ == "__main__":
    main()
