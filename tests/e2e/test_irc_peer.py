#!/usr/bin/python3
"""test_irc_peer.py — two InspIRCd servers of one network, each with the
module in local mode: each reports presence for its own users only.

tools/irc_env.sh with IRC_PEER=1: irc.tally.test (Anope linked to it) and
irc2.tally.test linked to it. One engine holds a ledger's writer lock, so
in local mode each server's engine has a database of its own (e2e_peer1_,
e2e_peer2_). Both run an event in the same channel #peer:

- host1 (server 1) and host2 (server 2) start the event, each on its own
  server, so each engine has one running in #peer;
- att1 joins on server 1, att2 on server 2 (att2 also parts and joins
  again, then quits: none of it is server 1's to report);
- the events stop: each server's summary counts its own two attendees
  (before, both servers counted all four: a remote join looked local);
- each database holds attendance rows for its own server's users only.

Env as in test_irc_basic.py.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
CHAN = "#peer"
NOT_YET = re.compile(r"starting up|busy, try again")


def registered(make, nick):
    c = make(nick)
    c.ns_register(PASSWORD)
    if c.wait_account(timeout=20) != c.nick:
        raise ic.IRCError("%s has no services account" % c.nick)
    return c


def make_creator(make, nick, tag):
    """An IRC operator on the same server gives nick the creator role in
    that server's engine."""
    oper = registered(make, "po%s%s" % (tag, nick[-1]))
    try:
        oper.send("OPER admin adminpass")
        oper.wait_numeric("381")
        return ic.tally_ask(oper, "TALLY ROLE %s creator" % nick, r"is now a creator", 60, retry=NOT_YET)
    finally:
        oper.quit()


def say(c, text, regex):
    return ic.tally_ask(c, lambda: c.privmsg(CHAN, text), regex, 60, retry=NOT_YET)


def summary(watcher, server, since, timeout=30):
    """The attendance line one server's engine announced in #peer."""
    return watcher.expect(lambda m: m.command == "NOTICE" and m.target.lower() == CHAN
                          and m.prefix == server and m.text.startswith("Attendance: "),
                          timeout, "Attendance line from %s" % server, since)


def rows(db, accounts):
    got = db.query("SELECT lower(c.name) FROM attendance a JOIN accounts c ON c.id = a.account_id"
                   " WHERE lower(c.name) IN (%s) ORDER BY 1"
                   % ", ".join("lower('user:%s')" % a for a in accounts))
    return sorted(r[0] for r in got)


def scenario(tap, env, db1, db2):
    tag = "%x" % (os.getpid() & 0xFFF)
    one, two = env.client, env.client2
    host1 = registered(one, "ph1" + tag)
    host2 = registered(two, "ph2" + tag)
    watcher = one("pw" + tag)
    clients = [host1, host2, watcher]
    try:
        tap.run("server 1's engine makes host1 a creator", lambda: make_creator(one, host1.nick, tag + "a"))
        tap.run("server 2's engine makes host2 a creator", lambda: make_creator(two, host2.nick, tag + "b"))
        host1.join(CHAN)  # first in: channel operator
        time.sleep(0.5)   # the channel reaches server 2 first, so host2 is not op by a race
        host2.join(CHAN)
        watcher.join(CHAN)
        mark = host2.mark()
        host1.send("MODE %s +o %s" % (CHAN, host2.nick))
        host2.expect(lambda m: m.command == "MODE" and host2.nick in m.params, 10, "+o host2", mark)
        tap.run("host1 starts the event on server 1",
                lambda: say(host1, "!event start 30 Peer night", r"^Event started"))
        tap.run("host2 starts the event on server 2 (its own engine)",
                lambda: say(host2, "!event start 30 Peer night", r"^Event started"))

        att1 = registered(one, "pa1" + tag)
        att2 = registered(two, "pa2" + tag)
        clients += [att1, att2]
        att1.join(CHAN)
        att2.join(CHAN)
        time.sleep(1.0)
        att2.send("PART %s" % CHAN)
        time.sleep(0.5)
        att2.join(CHAN)
        time.sleep(1.0)
        att2.quit()
        clients.remove(att2)
        time.sleep(0.5)

        mark = watcher.mark()
        tap.run("host1 stops server 1's event", lambda: say(host1, "!event stop", r"^Event stopped"))
        tap.run("host2 stops server 2's event", lambda: say(host2, "!event stop", r"^Event stopped"))
        for server, n in (("irc.tally.test", 2), ("irc2.tally.test", 2)):
            try:
                m = summary(watcher, server, mark)
                got = m.text
            except ic.IRCError as e:
                got = str(e)
            tap.check("%s's summary counts its own %d attendees" % (server, n),
                      got.startswith("Attendance: %d attendees" % n), got)

        time.sleep(1.0)  # attendance rows commit with the stop
        everyone = [host1.nick, host2.nick, att1.nick, att2.nick]
        r1, r2 = rows(db1, everyone), rows(db2, everyone)
        want1 = sorted("user:" + n.lower() for n in (host1.nick, att1.nick))
        want2 = sorted("user:" + n.lower() for n in (host2.nick, att2.nick))
        tap.check("server 1's ledger: attendance of server 1's users only", r1 == want1, "%r, wanted %r" % (r1, want1))
        tap.check("server 2's ledger: attendance of server 2's users only", r2 == want2, "%r, wanted %r" % (r2, want2))
        for db, name in ((db1, "server 1"), (db2, "server 2")):
            rc, out = ic.tally_cli(db.dsn, "check")
            tap.check("%s: tally check passes" % name, rc == 0, out[-2000:])
    finally:
        for c in clients:
            c.quit()


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    if not os.path.isfile(so):
        tap.check("the module is built", False, "%s not built" % so)
        tap.exit()
    try:
        with ic.TestDb("peer1") as db1, ic.TestDb("peer2") as db2, \
                ic.IrcEnv(tally_so=so, dsn=db1.dsn, peer=True, env_extra={"TALLY_PEER_DSN": db2.dsn},
                          tag_extra='rate_account="0" rate_channel="0"') as env:
            tap.check("the peer's module runs on its own database",
                      "tally: engine started" in env.peer_log(), env.peer_log()[-1500:])
            scenario(tap, env, db1, db2)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
