#!/usr/bin/python3
"""test_irc_unload.py — /UNLOADMODULE m_tally does not stall the server,
even while a purchase is stuck in PostgreSQL.

A psql session holds an ACCESS EXCLUSIVE lock on transfers (the table every
batch writes), so a BUY's batch waits inside PostgreSQL. An IRC operator
then sends UNLOADMODULE m_tally, and once it is unloaded PING: the
server answers the PING within the engine's stop limit (TALLY_ENGINE_STOP_FAST_MS, 500 ms)
plus a margin (before, the unload waited up to 10 s for the batch), and
the buyer is told the payment is pending. The lock is released, the module
loaded again: the buyer's RECEIPTS lists exactly the purchases the ledger
holds for them (the stuck one once or not at all, never twice), and
`tally check` passes. RELOADMODULE is timed the same way.

Own database e2e_unload_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
STOP_FAST_MS = 500   # TALLY_ENGINE_STOP_FAST_MS in core/include/tally.h
MARGIN_MS = 700      # a PING round trip and the server's loop on two busy cores
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving")
PENDING = re.compile(r"payment pending")


def receipts(c):
    m = ic.tally_ask(c, "RECEIPTS", r"receipts|[Nn]o receipts", retry=NOT_YET)
    return set(re.findall(r"\d+", m.text.split(":", 1)[-1])) if ":" in m.text else set()


def purchases_in_ledger(db, account):
    return int(db.scalar("SELECT count(*) FROM transfers t JOIN accounts a ON a.id = t.account_id"
                         " WHERE lower(a.name) = lower('user:%s') AND t.item_id IS NOT NULL" % account))


class TableLock:
    """A psql session holding LOCK TABLE transfers until release()."""

    def __init__(self, db):
        self.db = db
        self.p = subprocess.Popen([ic.PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", db.dsn],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        self.p.stdin.write("BEGIN;\nLOCK TABLE transfers IN ACCESS EXCLUSIVE MODE;\n"
                           "SELECT 'locked';\n")
        self.p.stdin.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            n = db.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                          " WHERE c.relname = 'transfers' AND l.mode = 'AccessExclusiveLock'"
                          " AND l.granted")
            if int(n) > 0:
                return
            time.sleep(0.05)
        raise ic.IRCError("the table lock was not taken")

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("COMMIT;\n")
            self.p.stdin.close()
            self.p.wait(10)


def engine_waits_on_lock(db, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if int(db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally-engine'"
                         " AND wait_event_type = 'Lock'")) > 0:
            return True
        time.sleep(0.05)
    return False


def timed(oper, line, numeric):
    """Sends line, then PING once `numeric` (the module unloaded or
    reloaded) arrived: milliseconds until the PONG. InspIRCd unloads at the
    end of the loop iteration that read the command, so the PONG cannot
    come before the module has stopped its engine."""
    mark = oper.mark()
    t0 = time.monotonic()
    oper.send(line)
    oper.expect(lambda m: m.command in (numeric, "972", "974"), 30, numeric, mark)
    if oper.seen[-1].command != numeric and not any(m.command == numeric for m in oper.seen[mark:]):
        raise ic.IRCError("%s refused: %r" % (line, [m.raw for m in oper.seen[mark:]][-3:]))
    oper.send("PING :unload%d" % os.getpid())
    oper.expect(lambda m: m.command == "PONG" and m.params and m.params[-1] == "unload%d" % os.getpid(),
                30, "PONG", mark)
    return (time.monotonic() - t0) * 1000.0


def scenario(tap, env, db):
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "ul" + tag
    host = env.client("uh" + tag)
    buyer = env.client("ub" + tag)
    oper = env.client("uo" + tag)
    try:
        for c in (host, buyer):
            c.ns_register(PASSWORD)
            if not c.wait_account():
                raise ic.IRCError("%s has no services account" % c.nick)
        ic.make_creators(env, [host.nick], PASSWORD)
        oper.send("OPER admin adminpass")
        oper.wait_numeric("381")
        ic.tally_ask(host, "ITEM ADD %s 1 Sticker without end" % sku, r"added")

        deadline = time.monotonic() + 30
        while ("balance 0.00 " in ic.tally_ask(buyer, "WALLET", r"^Wallet ").text
               and time.monotonic() < deadline):
            time.sleep(0.2)
        m = ic.tally_ask(buyer, "BUY %s" % sku, r"CONFIRM (\S+)", retry=NOT_YET)
        ic.tally_ask(buyer, "CONFIRM %s" % re.search(r"CONFIRM (\S+)", m.text).group(1), r"receipt \d+")
        before = receipts(buyer)
        tap.check("the buyer has one receipt before the lock", len(before) == 1, before)

        for verb, numeric, again in (("UNLOADMODULE", "973", "LOADMODULE"), ("RELOADMODULE", "975", None)):
            lock = TableLock(db)
            try:
                mark = buyer.mark()
                buyer.send("BUY %s" % sku)
                tap.check("%s: the BUY's batch waits on the lock inside PostgreSQL" % verb,
                          engine_waits_on_lock(db))
                ms = timed(oper, "%s m_tally" % verb, numeric)
                print("# %s with a stuck batch: PONG after %.0f ms" % (verb, ms))
                tap.check("%s: the server answers PING within %d ms + %d ms (took %.0f ms)"
                          % (verb, STOP_FAST_MS, MARGIN_MS, ms), ms <= STOP_FAST_MS + MARGIN_MS)
                try:
                    buyer.expect(lambda x: x.command == "NOTICE" and x.target == buyer.nick
                                 and PENDING.search(x.text), 10, "pending", mark)
                    told = True
                except ic.IRCError:
                    told = False
                tap.check("%s: the buyer was told the payment is pending" % verb, told,
                          [x.raw for x in buyer.seen[mark:]][-5:])
            finally:
                lock.release()
            if again:
                mark = oper.mark()
                oper.send("%s m_tally" % again)
                oper.expect(lambda x: x.command in ("975", "974"), 30, "module loaded", mark)
                tap.check("%s: the module is loaded again" % again,
                          oper.seen[-1].command == "975" or any(x.command == "975" for x in oper.seen[mark:]),
                          [x.raw for x in oper.seen[mark:]][-3:])
            after = receipts(buyer)
            in_ledger = purchases_in_ledger(db, buyer.nick)
            print("# %s: receipts %d -> %d, purchases in the ledger %d" % (verb, len(before), len(after), in_ledger))
            tap.check("%s: RECEIPTS lists exactly the buyer's purchases in the ledger "
                      "(the stuck one at most once)" % verb,
                      before <= after and len(after) - len(before) <= 1 and len(after) == in_ledger,
                      "before %r after %r ledger %d" % (before, after, in_ledger))
            rc, out = ic.tally_cli(db.dsn, "check")
            tap.check("%s: tally check passes" % verb, rc == 0, out[-2000:])
            tap.run("%s: buying works again" % verb,
                    lambda: ic.tally_ask(buyer, "BUY %s" % sku, r"receipt \d+", retry=NOT_YET))
            before = receipts(buyer)
        log = env.log()
        tap.check("the module logged how long each stop took",
                  len(re.findall(r"tally: engine stopped in \d+ ms", log)) >= 2,
                  re.findall(r"tally: engine stopped.*", log))
    finally:
        for c in (host, buyer, oper):
            c.quit()


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    if not os.path.isfile(so):
        tap.check("the module is built", False, "%s not built" % so)
        tap.exit()
    try:
        with ic.TestDb("unload") as db, \
                ic.IrcEnv(tally_so=so, dsn=db.dsn,
                          tag_extra='welcome_grant="1000" rate_account="0" rate_channel="0"') as env:
            scenario(tap, env, db)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
