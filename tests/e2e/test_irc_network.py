#!/usr/bin/python3
"""test_irc_network.py — two InspIRCd servers of one network (linked, one
Anope), each loading the module in remote mode against ONE tallyd:
irc.tally.test over the unix socket, irc2.tally.test over TLS 1.3 through a
TCP proxy the test can cut.

1. The rush: 300 buyers, half on each server, all agreed to pay, send
   `!buy rush` for a 10-unit drop at once. Exactly 10 get a receipt, every
   other one hears "sold out", nobody is left without an answer; the ledger
   holds exactly 10 purchases of the drop.
2. The link cut mid-frame: 20 buyers (10 per server) keep buying an
   unlimited item while the proxy resets irc2's link (RST, whatever was in
   flight) and refuses it for 2 s. Every receipt a buyer saw is in the
   ledger, no BUY is charged twice (each buyer's purchases <= the BUYs it
   sent), irc2's buyers heard "unavailable" during the cut, not silence,
   and buying through irc2 works again.
3. tallyd SIGKILLed mid-stream and restarted: every receipt seen is in the
   ledger; buyers on both servers heard "unavailable"; buying works again.

After each phase `tally check` passes. Own database e2e_network_<pid>.
"""

import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from tallyd_env import TallydEnv  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402

PASSWORD = "Correct-Horse-42"
SECRET = "irc-network-secret-for-the-test"
BUYERS = int(os.environ.get("TALLY_NETWORK_BUYERS", "300"))
STOCK = 10
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving|shop is unavailable")
FINAL = re.compile(r"receipt (\d+)|sold out|Only \d+ left")
RECEIPT = re.compile(r"receipt (\d+)")
UNAVAILABLE = re.compile(r"shop is unavailable")


def ask(c, line, regex=".", timeout=60, retry=NOT_YET):
    return ic.tally_ask(c, line, regex, timeout, retry=retry)


def registered(make, nick):
    c = make(nick)
    c.ns_register(PASSWORD)
    if c.wait_account(timeout=30) != nick:
        raise ic.IRCError("%s has no account" % nick)
    return c


def agreed(c, warm):
    """Funded by the welcome grant, and agreed to pay (first BUY + CONFIRM)."""
    deadline = time.monotonic() + 60
    while "balance 0.00 " in ask(c, "WALLET", r"^Wallet ").text:
        if time.monotonic() > deadline:
            raise ic.IRCError("%s never got the welcome grant" % c.nick)
        time.sleep(0.3)
    m = ask(c, "BUY %s" % warm, r"CONFIRM (\S+)|receipt \d+")
    code = re.search(r"CONFIRM (\S+)", m.text)
    if code:
        ask(c, "CONFIRM %s" % code.group(1), r"receipt \d+")
    return c


def check_ledger(tap, db, phase):
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("%s: tally check passes" % phase, rc == 0, out[-2000:])


def in_ledger(db, ids):
    """How many of ids are transfers; asked 1,000 at a time (a streamed phase
    sees ~10,000 receipts: one statement of them all is too long for argv)."""
    ids, n = sorted(ids), 0
    for i in range(0, len(ids), 1000):
        n += int(db.scalar("SELECT count(*) FROM transfers WHERE id IN (%s)" % ",".join(ids[i:i + 1000])))
    return n


def purchases_of(db, sku):
    """Units sold of sku: purchase transfers (kind 1)."""
    return int(db.scalar("SELECT coalesce(sum(t.qty), 0) FROM transfers t JOIN items i ON i.id = t.item_id "
                         "WHERE i.sku = '%s' AND t.kind = 1" % sku))


class Stream:
    """Buyers that keep sending BUY sku every `interval` s, reading answers."""

    def __init__(self, buyers, sku, interval=0.25):
        self.buyers, self.sku, self.interval = buyers, sku, interval
        self.sent = {c.nick: 0 for c in buyers}
        self.marks = {c.nick: c.mark() for c in buyers}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in buyers]

    def _run(self, c):
        while not self.stop.is_set():
            try:
                c.send("BUY %s" % self.sku)
                self.sent[c.nick] += 1
                c._read(time.monotonic() + self.interval)
            except (ic.IRCError, OSError):
                time.sleep(self.interval)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        for c in self.buyers:  # answers still on their way
            try:
                c._read(time.monotonic() + 3)
            except (ic.IRCError, OSError):
                pass
        return False

    def notices(self, c):
        return [m.text for m in c.seen[self.marks[c.nick]:] if m.command == "NOTICE" and m.target == c.nick]

    def receipts(self):
        ids = set()
        for c in self.buyers:
            for t in self.notices(c):
                m = RECEIPT.search(t)
                if m and t.startswith("Bought"):
                    ids.add(m.group(1))
        return ids

    def heard(self, regex, buyers=None):
        return [c.nick for c in (buyers or self.buyers) if any(regex.search(t) for t in self.notices(c))]


def per_buyer_purchases(db, sku):
    rows = db.query("SELECT a.name, count(*) FROM transfers t JOIN items i ON i.id = t.item_id "
                    "JOIN accounts a ON a.id = t.account_id WHERE i.sku = '%s' AND t.kind = 1 "
                    "GROUP BY a.name" % sku)
    return {name.split(":", 1)[-1]: int(n) for name, n in rows}


def network(tap, td, env, proxy, db):
    tag = "%x" % (os.getpid() & 0xFFFF)
    chan = "#net" + tag
    warm, rush, flow = "w" + tag, "rush" + tag, "f" + tag
    host = registered(env.client, "nh" + tag)
    oper = registered(env.client, "no" + tag)
    oper.send("OPER admin adminpass")
    oper.wait_numeric("381")
    ask(host, "WALLET", r"^Wallet ")
    ask(oper, "TALLY ROLE %s creator" % host.nick, r"is now a creator")
    ask(host, "ITEM ADD %s 1 Warm-up sticker" % warm, r"added")
    ask(host, "ITEM ADD %s 1 Flow sticker" % flow, r"added")
    host.join(chan)  # first in: channel operator, the event's host

    buyers = []

    def setup():
        makers = [(env.client if i % 2 == 0 else env.client2, "nb%s_%d" % (tag, i)) for i in range(BUYERS)]
        with ThreadPoolExecutor(12) as pool:
            made = list(pool.map(lambda mk: registered(*mk), makers))
        buyers.extend(made)
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda c: agreed(c, warm), buyers))
        for c in buyers:
            c.join(chan)
        return len(buyers) == BUYERS
    tap.run("%d buyers on two servers (%d on irc2, over TLS through the proxy) agreed to pay"
            % (BUYERS, BUYERS // 2), setup)
    on2 = [c for i, c in enumerate(buyers) if i % 2]

    def the_rush():
        ic.tally_ask(host, lambda: host.privmsg(chan, "!event start 30 Network launch"), r"(?i)event", 60,
                     retry=NOT_YET)
        ic.tally_ask(host, lambda: host.privmsg(chan, "!drop create %s %d 1" % (rush, STOCK)),
                     r"^Drop %s created\.$" % rush, 60, retry=NOT_YET)
        marks = [c.mark() for c in buyers]
        for i, c in enumerate(buyers):
            if i % 4 < 2:
                c.privmsg(chan, "!buy %s" % rush)
            else:
                c.send("BUY %s" % rush)
        answers = {}
        for c, mark in zip(buyers, marks):
            m = c.expect(lambda x: x.command == "NOTICE" and x.target == c.nick and FINAL.search(x.text),
                         60, "receipt or sold out", mark)
            answers[c.nick] = m.text
        sold = [t for t in answers.values() if RECEIPT.search(t)]
        tap.check("every one of the %d buyers was answered" % BUYERS, len(answers) == BUYERS, len(answers))
        tap.check("exactly %d receipts" % STOCK, len(sold) == STOCK, "\n".join(sold))
        tap.check("the ledger holds exactly %d purchases of the drop" % STOCK, purchases_of(db, rush) == STOCK,
                  purchases_of(db, rush))
        ids = {RECEIPT.search(t).group(1) for t in sold}
        tap.check("each receipt is in the ledger", in_ledger(db, ids) == len(ids), ids)
        sold2 = sum(1 for c in on2 if RECEIPT.search(answers[c.nick]))
        print("# receipts: %d via irc2, %d via irc" % (sold2, len(sold) - sold2))
        return len(sold) == STOCK
    tap.run("the rush: %d buyers on two servers, one %d-unit drop, one tallyd" % (BUYERS, STOCK), the_rush)
    check_ledger(tap, db, "rush")

    streamers = buyers[:20]
    on2s = [c for c in streamers if c in on2]

    def cut_mid_frame():
        with Stream(streamers, flow) as s:
            time.sleep(2.0)
            proxy.cut()
            time.sleep(2.0)
            proxy.restore()
            time.sleep(4.0)
        seen = s.receipts()
        tap.check("cut: every receipt a buyer saw is in the ledger (%d)" % len(seen), in_ledger(db, seen) == len(seen))
        bought = per_buyer_purchases(db, flow)
        over = {n: (bought.get(n, 0), s.sent[n]) for n in s.sent if bought.get(n, 0) > s.sent[n]}
        tap.check("cut: no BUY charged twice (purchases <= BUYs sent, per buyer)", not over, over)
        heard = s.heard(UNAVAILABLE, on2s)
        tap.check("cut: irc2's buyers heard 'unavailable' (%d of %d), not silence" % (len(heard), len(on2s)),
                  len(heard) >= len(on2s) // 2, heard)
        return ask(on2s[0], "BUY %s" % flow, r"receipt \d+")
    tap.run("irc2's link to tallyd reset mid-frame and refused for 2 s while buying", cut_mid_frame)
    check_ledger(tap, db, "cut")

    def kill_mid_stream():
        with Stream(streamers, flow) as s:
            time.sleep(2.0)
            td.kill()
            time.sleep(1.5)
            td.start()
            time.sleep(5.0)
        seen = s.receipts()
        tap.check("kill: every receipt a buyer saw is in the ledger (%d)" % len(seen), in_ledger(db, seen) == len(seen))
        heard = s.heard(UNAVAILABLE)
        tap.check("kill: buyers on both servers heard 'unavailable' (%d of %d)" % (len(heard), len(streamers)),
                  any(c.nick in heard for c in on2s) and any(c.nick in heard for c in streamers if c not in on2s),
                  heard)
        ask(streamers[0], "BUY %s" % flow, r"receipt \d+")
        return ask(on2s[0], "BUY %s" % flow, r"receipt \d+")
    tap.run("tallyd SIGKILLed mid-stream and restarted", kill_mid_stream)
    check_ledger(tap, db, "kill")
    return [host, oper] + buyers


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    if not os.path.isfile(so):
        tap.check("the module is built", False, "%s not built" % so)
        tap.exit()
    clients = []
    try:
        with ic.TestDb("network") as db, \
                TallydEnv(db.dsn, {"irc": SECRET}, tls=True,
                          extra={"welcome_grant": "100000000", "rate_account": "0", "rate_channel": "0",
                                 "rate_global": "0"}) as td:
            proxy = TcpProxy("127.0.0.1", td.tls_port)
            peer_tag = td.tag("irc", address="tls:127.0.0.1:%d" % proxy.port)
            try:
                with ic.IrcEnv(tally_so=so, dsn="", tag_extra=td.tag("irc"), peer=True,
                               env_extra={"TALLY_PEER_TAG_EXTRA": peer_tag, "TALLY_PEER_DSN": ""}) as env:
                    try:
                        clients = network(tap, td, env, proxy, db)
                    finally:
                        for c in clients:
                            try:
                                c.quit()
                            except Exception:
                                pass
            finally:
                proxy.close()
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
