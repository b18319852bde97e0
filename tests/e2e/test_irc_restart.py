#!/usr/bin/python3
"""test_irc_restart.py — InspIRCd and PostgreSQL die while buys are in flight.

8 buyers (own accounts, already consented) keep sending BUY for an
unlimited item, ~50 per second together.

1. InspIRCd is killed with SIGKILL mid-stream (the engine inside it dies
   with its open batch) and started again with the same config and the same
   database. Every receipt a buyer saw before the kill is in the ledger;
   after the restart the buyers log in again and buying works.
2. PostgreSQL (a cluster of this script's own: the shared test cluster
   serves the scripts running beside it) is killed with SIGKILL mid-stream and started again while
   the buyers keep sending. Every receipt a buyer saw is in the ledger, and
   buying works again once PostgreSQL is back.

After each phase `tally check` passes. Own database e2e_restart_<pid>.
Without a known cluster folder the PostgreSQL phase is skipped.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
BUYERS = 8
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving")
# Answers that mean "try again later" while PostgreSQL is away or returning.
DB_AWAY = re.compile(r"starting up|busy, try again|could not be recorded|database unavailable"
                     r"|payment pending")
RECEIPT = re.compile(r"receipt (\d+)")


def ask(c, line, regex=".", timeout=60, retry=NOT_YET):
    return ic.tally_ask(c, line, regex, timeout, retry=retry)


def login(env, nick, register):
    c = env.client(nick)
    if register:
        c.ns_register(PASSWORD)
    else:
        c.ns_identify(PASSWORD, account=nick)
    if c.wait_account() != nick:
        raise ic.IRCError("%s is not logged in" % nick)
    return c


def pump(c):
    """Reads what has arrived; False once the connection is gone."""
    try:
        c._read(time.monotonic() + 0.002)
        return True
    except (ic.IRCError, OSError):
        return False


def drive(buyers, sku, rounds, interval, actions):
    """Each round every live buyer sends one BUY; actions[round]() runs
    before that round. Returns (marks, sent counts)."""
    marks = [c.mark() for c in buyers]
    sent = [0] * len(buyers)
    alive = [True] * len(buyers)
    for r in range(rounds):
        if r in actions:
            actions[r]()
        for i, c in enumerate(buyers):
            if not alive[i]:
                continue
            try:
                c.send("BUY %s" % sku)
                sent[i] += 1
            except OSError:
                alive[i] = False
                continue
            alive[i] = pump(c)
        if not any(alive):
            break
        time.sleep(interval)
    return marks, sent


def settle(buyers, quiet=5.0, limit=60.0):
    """Reads until no line arrived for `quiet` seconds (or `limit`)."""
    end = time.monotonic() + limit
    last = time.monotonic()
    while time.monotonic() < end and time.monotonic() - last < quiet:
        before = sum(len(c.seen) for c in buyers)
        for c in buyers:
            pump(c)
        if sum(len(c.seen) for c in buyers) != before:
            last = time.monotonic()
        time.sleep(0.05)


def seen_receipts(buyers, marks):
    ids = set()
    for c, mark in zip(buyers, marks):
        for m in c.seen[mark:]:
            if m.command == "NOTICE" and m.target == c.nick:
                r = RECEIPT.search(m.text)
                if r:
                    ids.add(r.group(1))
    return ids


def answer_kinds(buyers, marks):
    kinds = {}
    for c, mark in zip(buyers, marks):
        for m in c.seen[mark:]:
            if m.command == "NOTICE" and m.target == c.nick and not m.prefix.startswith("NickServ"):
                k = "receipt" if RECEIPT.search(m.text) else re.sub(r"\d+", "N", m.text)[:60]
                kinds[k] = kinds.get(k, 0) + 1
    return kinds


def in_ledger(db, ids):
    if not ids:
        return 0
    return int(db.scalar("SELECT count(*) FROM transfers WHERE id IN (%s)" % ",".join(sorted(ids))))


def check_ledger(tap, db, phase):
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("%s: tally check passes" % phase, rc == 0, out[-2000:])


def restarts(tap, env, db):
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "u" + tag
    nicks = ["rb%s_%d" % (tag, i) for i in range(BUYERS)]
    creator = login(env, "rc" + tag, True)
    oper = login(env, "ro" + tag, True)  # TALLY ROLE needs an account too
    oper.send("OPER admin adminpass")
    oper.wait_numeric("381")
    ask(creator, "WALLET")
    ask(oper, "TALLY ROLE %s creator" % creator.nick, r"is now a creator")
    ask(creator, "ITEM ADD %s 1 Sticker without end" % sku, r"added")
    oper.quit()
    creator.quit()
    buyers = [login(env, n, True) for n in nicks]
    for c in buyers:
        deadline = time.monotonic() + 30
        while "balance 0.00 " in ask(c, "WALLET", r"^Wallet ").text and time.monotonic() < deadline:
            time.sleep(0.2)
        m = ask(c, "BUY %s" % sku, r"CONFIRM (\S+)")
        ask(c, "CONFIRM %s" % re.search(r"CONFIRM (\S+)", m.text).group(1), r"receipt \d+")

    # ---- 1. InspIRCd killed mid-stream ------------------------------------
    def kill_ircd():
        subprocess.run([ic.IRC_ENV, "ircd-kill", env.dir], check=True)
    marks, sent = drive(buyers, sku, rounds=200, interval=0.02, actions={40: kill_ircd})
    settle(buyers, quiet=1.0, limit=5)
    before = seen_receipts(buyers, marks)
    print("# ircd kill: sent %d, answers %r" % (sum(sent), answer_kinds(buyers, marks)))
    for c in buyers:
        c.close()
    tap.check("ircd kill: buyers saw receipts before the kill", len(before) > 0)
    tap.check("ircd kill: some BUYs were still unanswered at the kill",
              sum(sent) > len(before), "sent %d, receipts %d" % (sum(sent), len(before)))

    def restart_ircd():
        r = subprocess.run([ic.IRC_ENV, "ircd-start", env.dir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode:
            raise ic.IRCError(r.stdout)
        if not ic.probe("127.0.0.1", env.port, 60):
            raise ic.IRCError("NickServ did not come back")
        return True
    tap.run("ircd kill: InspIRCd starts again with the same config and database; Anope relinks",
            restart_ircd)
    tap.check("ircd kill: every receipt a buyer saw is in the ledger (%d)" % len(before),
              in_ledger(db, before) == len(before), "in ledger %d of %d" % (in_ledger(db, before), len(before)))
    check_ledger(tap, db, "ircd kill")

    buyers = [login(env, n, False) for n in nicks]
    tap.run("ircd kill: after the restart BUY gives a receipt again",
            lambda: ask(buyers[0], "BUY %s" % sku, r"^Bought .*receipt \d+"))

    # ---- 2. PostgreSQL killed mid-stream -----------------------------------
    if not db.pgdir:
        tap.skip("PostgreSQL restart", "cluster folder unknown (set TALLY_TMP)")
        return buyers
    down = {}

    def kill_pg():
        db.pg("kill")
        down["at"] = time.monotonic()

    def start_pg():
        db.pg("start")
        down["s"] = time.monotonic() - down["at"]
    marks, sent = drive(buyers, sku, rounds=150, interval=0.02, actions={30: kill_pg, 60: start_pg})
    settle(buyers, quiet=5.0, limit=90)
    seen = seen_receipts(buyers, marks)
    print("# pg kill: down %.1f s, sent %d, answers %r" % (down.get("s", -1), sum(sent),
                                                          answer_kinds(buyers, marks)))
    tap.check("pg kill: buyers saw receipts", len(seen) > 0)

    def buys_again():
        return ask(buyers[1], "BUY %s" % sku, r"^Bought .*receipt \d+", timeout=90, retry=DB_AWAY)
    tap.run("pg kill: once PostgreSQL is back, BUY gives a receipt again", buys_again)
    settle(buyers, quiet=2.0, limit=30)
    seen = seen_receipts(buyers, marks)
    tap.check("pg kill: every receipt a buyer saw is in the ledger (%d)" % len(seen),
              in_ledger(db, seen) == len(seen), "in ledger %d of %d" % (in_ledger(db, seen), len(seen)))

    def receipts_listed():
        for c in buyers:
            m = ask(c, "RECEIPTS", r"receipts")
            ids = set(re.findall(r"\d+", m.text.split(":", 1)[-1]))
            if in_ledger(db, ids) != len(ids):
                raise ic.IRCError("%s: RECEIPTS lists ids not in the ledger: %r" % (c.nick, m.text))
        return True
    tap.run("pg kill: every id RECEIPTS lists is in the ledger", receipts_listed)
    check_ledger(tap, db, "pg kill")
    return buyers


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    if not os.path.isfile(so):
        tap.check("the module is built", False, "%s not built" % so)
        tap.exit()
    buyers = []
    try:
        with ic.TestDb("restart", private=True) as db, \
                ic.IrcEnv(tally_so=so, dsn=db.dsn,
                          tag_extra='welcome_grant="1000000" rate_account="0" rate_channel="0"') as env:
            try:
                buyers = restarts(tap, env, db)
            finally:
                for c in buyers or []:
                    c.quit()
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
