#!/usr/bin/python3
"""soak_daemon.py — `make soak-daemon` (not in `make test`): steady buying and
chatting through one tallyd from two linked InspIRCd servers (remote mode),
with timed drops opening and closing, for SOAK_MINUTES (default 30).

Every minute it samples the resident memory of tallyd and of both InspIRCd
processes and the p99 of BUY -> receipt over that minute, and prints a row.
At the end it checks that nothing grew: the last third's mean RSS of each
process is at most 1.2 x the first third's + 8 MiB, and the last third's p99
at most 2 x the first third's + 20 ms (absolute times on these shared
machines vary by tens of percent, a leak or a queue that grows does not
stop at that). `tally check` must pass. Env: SOAK_MINUTES, SOAK_BUYERS
(default 20, half per server), SOAK_INTERVAL (seconds between one buyer's
buys, default 0.5).
"""

import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import ircclient as ic  # noqa: E402
from tallyd_env import TallydEnv  # noqa: E402

PASSWORD = "Correct-Horse-42"
SECRET = "irc-network-secret-for-the-soak"
MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
BUYERS = int(os.environ.get("SOAK_BUYERS", "20"))
INTERVAL = float(os.environ.get("SOAK_INTERVAL", "0.5"))
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving|shop is unavailable")
RECEIPT = re.compile(r"^Bought .*receipt (\d+)")


def ask(c, line, regex=".", timeout=60):
    return ic.tally_ask(c, line, regex, timeout, retry=NOT_YET)


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pid_of(path):
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return 0


def registered(make, nick):
    c = make(nick)
    c.ns_register(PASSWORD)
    if c.wait_account(timeout=30) != nick:
        raise ic.IRCError("%s has no account" % nick)
    return c


class Buyer(threading.Thread):
    def __init__(self, c, sku, chan, lat, lock):
        super().__init__(daemon=True)
        self.c, self.sku, self.chan, self.lat, self.lock = c, sku, chan, lat, lock
        self.stop = threading.Event()
        self.errors = 0

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            mark = self.c.mark()
            t0 = time.monotonic()
            try:
                self.c.send("BUY %s" % self.sku)
                self.c.expect(lambda m: m.command == "NOTICE" and m.target == self.c.nick
                              and RECEIPT.search(m.text), 30, "receipt", mark)
                with self.lock:
                    self.lat.append((time.monotonic(), (time.monotonic() - t0) * 1000))
                if n % 4 == 0:  # chatting: a plain line the module must let through
                    self.c.privmsg(self.chan, "still here, line %d" % n)
            except (ic.IRCError, OSError):
                self.errors += 1
            self.stop.wait(INTERVAL)


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else 0.0


def soak(tap, td, env, db):
    tag = "%x" % (os.getpid() & 0xFFFF)
    chan, sku = "#soak" + tag, "s" + tag
    host = registered(env.client, "sh" + tag)
    oper = registered(env.client, "so" + tag)
    oper.send("OPER admin adminpass")
    oper.wait_numeric("381")
    ask(host, "WALLET", r"^Wallet ")
    ask(oper, "TALLY ROLE %s creator" % host.nick, r"is now a creator")
    ask(host, "ITEM ADD %s 1 Soak sticker" % sku, r"added")
    host.join(chan)
    ic.tally_ask(host, lambda: host.privmsg(chan, "!event start %d Soak" % int(MINUTES + 5)), r"(?i)event", 60,
                 retry=NOT_YET)
    buyers = []
    for i in range(BUYERS):
        c = registered(env.client if i % 2 == 0 else env.client2, "sb%s_%d" % (tag, i))
        m = ask(c, "BUY %s" % sku, r"CONFIRM (\S+)|receipt \d+")
        code = re.search(r"CONFIRM (\S+)", m.text)
        if code:
            ask(c, "CONFIRM %s" % code.group(1), r"receipt \d+")
        c.join(chan)
        buyers.append(c)
    lat, lock = [], threading.Lock()
    threads = [Buyer(c, sku, chan, lat, lock) for c in buyers]
    for t in threads:
        t.start()
    pids = {"tallyd": td.proc.pid, "irc": pid_of(os.path.join(env.dir, "inspircd.run.pid")),
            "irc2": pid_of(os.path.join(env.dir, "peer", "inspircd.run.pid"))}
    rows = []
    start = time.monotonic()
    minute = 0
    print("# minute  buys  p99_ms  " + "  ".join("%s_rss_mib" % k for k in pids), flush=True)
    while time.monotonic() - start < MINUTES * 60:
        minute += 1
        if minute % 2 == 1:  # a timed drop opens and closes within the minute
            host.privmsg(chan, "!drop create d%s%d 5 1 for=30s" % (tag, minute))
        # The host and the operator read what comes (the channel's chat, the
        # drops' lines, PINGs): a client that never reads is dropped by
        # InspIRCd once its send queue fills (SendQ exceeded), as any
        # server does.
        until = time.monotonic() + 60
        while time.monotonic() < until:
            for c in (host, oper):
                c._read(min(until, time.monotonic() + 0.5))
                del c.seen[:-200]  # the last lines are enough; 30 minutes of chat are not kept
        with lock:
            recent = [ms for t, ms in lat if t >= time.monotonic() - 60]
        row = {"minute": minute, "buys": len(recent), "p99_ms": p99(recent),
               "rss": {k: rss_kib(p) / 1024.0 for k, p in pids.items()}}
        rows.append(row)
        print("# %6d %5d %7.1f  %s" % (minute, row["buys"], row["p99_ms"],
                                        "  ".join("%10.1f" % row["rss"][k] for k in pids)), flush=True)
    for t in threads:
        t.stop.set()
    for t in threads:
        t.join(35)
    third = max(1, len(rows) // 3)
    first, last = rows[:third], rows[-third:]
    for k in pids:
        a = sum(r["rss"][k] for r in first) / len(first)
        b = sum(r["rss"][k] for r in last) / len(last)
        tap.check("%s memory flat: %.1f MiB -> %.1f MiB" % (k, a, b), b <= a * 1.2 + 8, rows)
    a = max(r["p99_ms"] for r in first)
    b = max(r["p99_ms"] for r in last)
    tap.check("p99 flat: %.1f ms -> %.1f ms" % (a, b), b <= a * 2 + 20)
    tap.check("every minute sold", all(r["buys"] > 0 for r in rows), rows)
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes", rc == 0, out[-2000:])
    return [host, oper] + buyers


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    clients = []
    try:
        with ic.TestDb("soak_daemon") as db, \
                TallydEnv(db.dsn, {"irc": SECRET}, tls=True,
                          extra={"welcome_grant": "10000000", "rate_account": "0"}) as td:
            with ic.IrcEnv(tally_so=so, dsn="", tag_extra=td.tag("irc"), peer=True,
                           env_extra={"TALLY_PEER_TAG_EXTRA": td.tag("irc", address=td.tls_address),
                                      "TALLY_PEER_DSN": ""}) as env:
                try:
                    clients = soak(tap, td, env, db)
                finally:
                    for c in clients:
                        try:
                            c.quit()
                        except Exception:
                            pass
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
