#!/usr/bin/python3
"""test_irc_config.py — the <tally> tag as an operator sees it.

Checks the module's own keys (prefix, channel_answer_prefix, cmd_<word>
renames and disables), that
bad values stop the module with the engine's message, and what /REHASH does
(prefix, channel_answer_prefix and live engine keys such as rate_channel at
once; other engine keys named and left for /RELOADMODULE).
These checks look only at who answers (tally's server NOTICE, 421 Unknown
command, a broadcast), not at the engine's texts, except that a LIVE NOW
line names the buy command with the configured prefix and word. Skipped without a built
$TALLY_BUILD/m_tally.so. Env as in test_irc_basic.py.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402


def server_notice(client, mark, timeout=10):
    """tally's answer: a NOTICE to us from the server itself."""
    return client.expect(lambda m: m.command == "NOTICE" and m.target == client.nick
                         and "!" not in m.prefix, timeout, "tally NOTICE", mark)


def unknown_command(client, word, timeout=5):
    mark = client.mark()
    client.send("%s x 1" % word)
    return client.expect(lambda m: m.command == "421" and m.params[1].upper() == word.upper(),
                         timeout, "421 for %s" % word, mark)


def handled(client, send):
    mark = client.mark()
    send()
    m = server_notice(client, mark)
    if m.text.startswith("tally: CTCP") or "Unknown command" in m.text:
        raise ic.IRCError("not handled: %r" % m.text)
    return m


def broadcast(sender, other, chan, text):
    sender.privmsg(chan, text)
    return other.wait_privmsg("^" + re.escape(text) + "$", chan, 5)


def not_broadcast(sender, other, chan, text):
    mark = other.mark()
    answer = handled(sender, lambda: sender.privmsg(chan, text))
    sender.privmsg(chan, "fence after " + text)
    other.wait_privmsg("^fence after " + re.escape(text) + "$", chan, 5, since=mark)
    if any(m.command == "PRIVMSG" and m.text == text for m in other.seen[mark:]):
        raise ic.IRCError("%r was broadcast" % text)
    return answer


def renames_and_prefix(tap, so, dsn):
    extra = 'prefix="?" cmd_buy="PURCHASE" cmd_tip="" channel_answer_prefix="no"'
    with ic.IrcEnv(tally_so=so, dsn=dsn, tag_extra=extra) as env:
        a = env.client(ic.unique_nick("ca"))
        b = env.client(ic.unique_nick("cb"))
        chan = "#cfg%d" % os.getpid()
        try:
            a.join(chan)
            b.join(chan)
            tap.run("cmd_buy=PURCHASE: PURCHASE is handled",
                    lambda: handled(a, lambda: a.send("PURCHASE sku1 1")))
            tap.run("cmd_buy=PURCHASE: BUY is an unknown command",
                    lambda: unknown_command(a, "BUY"))
            tap.run("cmd_tip=\"\": TIP is an unknown command",
                    lambda: unknown_command(a, "TIP"))
            tap.run("prefix ?: '?purchase' is handled and not broadcast",
                    lambda: not_broadcast(a, b, chan, "?purchase sku1 1"))
            tap.run("prefix ?: '!buy' is an ordinary message",
                    lambda: broadcast(a, b, chan, "!buy sku1 1"))
            tap.run("cmd_tip=\"\": '?tip' is an ordinary message",
                    lambda: broadcast(a, b, chan, "?tip someone 5"))
            tap.run("words are case-insensitive ('?WaLlEt')",
                    lambda: not_broadcast(a, b, chan, "?WaLlEt"))

            def plain_answer():
                m = not_broadcast(a, b, chan, "?wallet")
                if not m.raw.startswith(":irc.tally.test NOTICE %s :" % a.nick) or "[#" in m.raw:
                    raise ic.IRCError("not a plain server notice: %r" % m.raw)
                return m
            tap.run("channel_answer_prefix=\"no\": the answer to '?wallet' is a plain server notice",
                    plain_answer)

            def live_line():
                """The engine names the command as it takes it (BUY cfgtee); the
                module says it as typed here: prefix ? and the renamed word."""
                host = env.client(ic.unique_nick("ch"))
                host.ns_register("Correct-Horse-42")
                if not host.wait_account():
                    raise ic.IRCError("%s has no services account" % host.nick)
                ic.make_creators(env, [host.nick], "Correct-Horse-42")
                room = "#cfgd%d" % os.getpid()
                host.join(room)  # first in: channel operator, the room's host
                b.join(room)
                mark = b.mark()
                ic.tally_ask(host, lambda: host.privmsg(room, "?drop create cfgtee 3 1"),
                             r"^Drop cfgtee created\.$", 60)
                m = b.expect(lambda m: m.command == "NOTICE" and m.target.lower() == room.lower()
                             and "!" not in m.prefix and m.text.startswith("LIVE NOW: "),
                             30, "LIVE NOW in " + room, mark)
                if not m.text.endswith(". Type: ?purchase cfgtee"):
                    raise ic.IRCError("not the command as typed here: %r" % m.text)
                return m
            tap.run("prefix ? and cmd_buy=PURCHASE: LIVE NOW says 'Type: ?purchase cfgtee'", live_line)

            def rehash():
                a.send("OPER admin adminpass")
                a.wait_numeric("381")
                conf = os.path.join(env.dir, "inspircd.conf")
                with open(conf) as f:
                    text = f.read()
                text = text.replace('prefix="?"', 'prefix="%"')
                text = text.replace('channel_answer_prefix="no"', 'channel_answer_prefix="yes"')
                text = text.replace("<tally ", '<tally fee_bps="111" rate_channel="1" ', 1)
                with open(conf, "w") as f:
                    f.write(text)
                mark = a.mark()
                a.send("REHASH")
                a.wait_notice(r"engine settings \(fee_bps\) take effect after /RELOADMODULE m_tally", 10, since=mark)
                a.wait_notice(r"^tally: applied rate_channel=1$", 10, since=mark)
                m = not_broadcast(a, b, chan, "%wallet")
                if m.context != chan:
                    raise ic.IRCError("channel_answer_prefix=yes not applied: %r" % m.raw)
                return broadcast(a, b, chan, "?wallet")
            tap.run("REHASH applies a new prefix and channel_answer_prefix, reports engine changes",
                    rehash)

            def live_rate():
                """rate_channel=1 from the rehash is live: a channel's bucket
                holds 5 lines (core's minimum), the next is refused."""
                room = "#cfgr%d" % os.getpid()
                a.join(room)
                answers = []
                for i in range(7):
                    mark = a.mark()
                    a.privmsg(room, "%wallet")
                    answers.append(server_notice(a, mark).text)
                if not any("too many requests" in t for t in answers[5:]) or \
                        any("too many requests" in t for t in answers[:5]):
                    raise ic.IRCError("rate_channel=1 not applied live: %r" % answers)
                return True
            tap.run("REHASH applies rate_channel live (no reload)", live_rate)

            def reload():
                for i in range(20):  # some answers still in flight during the reload
                    a.send("WALLET")
                mark = a.mark()
                a.send("RELOADMODULE m_tally")
                a.expect(lambda m: m.command == "975", 30, "975 reloaded", mark)
                handled(a, lambda: a.send("PURCHASE sku1 1"))
                return not_broadcast(a, b, chan, "%wallet")
            tap.run("RELOADMODULE m_tally restarts the engine with the new settings", reload)
        finally:
            a.quit()
            b.quit()


def refused(tap, so, dsn, name, extra, expect):
    def run():
        try:
            with ic.IrcEnv(tally_so=so, dsn=dsn, tag_extra=extra):
                pass
        except RuntimeError as e:
            if not re.search(expect, str(e)):
                raise ic.IRCError("start failed without /%s/:\n%s" % (expect, e))
            return True
        raise ic.IRCError("the server started with %s" % extra)
    tap.run(name, run)


def main():
    def body(tap, so, db):
        dsn = db.dsn
        renames_and_prefix(tap, so, dsn)
        refused(tap, so, dsn, "a bad engine value stops the module with its key named",
                'fee_bps="lots"', r"(Unable to load|Unable to read the configuration for) m_tally.*fee_bps")
        refused(tap, so, dsn, "an unknown key stops the module",
                'colour="blue"', r"(Unable to load|Unable to read the configuration for) m_tally.*colour")
        refused(tap, so, dsn, "a missing secret file stops the module",
                'signing_keyfile="/nonexistent/key"', r"(Unable to load|Unable to read the configuration for) m_tally.*cannot read")
        refused(tap, so, dsn, "a two-character prefix stops the module",
                'prefix="!!"', r"(Unable to load|Unable to read the configuration for) m_tally.*prefix")
        refused(tap, so, dsn, "channel_answer_prefix must be yes or no",
                'channel_answer_prefix="maybe"', r"m_tally.*channel_answer_prefix.*yes or no")
        refused(tap, so, dsn, "two commands with one name stop the module",
                'cmd_buy="TIP"', r"m_tally.*both named TIP")
    ic.own_db_main("config", body)


if __name__ == "__main__":
    main()
