#!/usr/bin/python3
"""irc_bench.py — what tally costs InspIRCd, and buys per second over IRC.

    bench/irc_bench.py --dsn DSN --build BUILD_DIR [--quick]

Prints one JSON object on stdout (progress on stderr):

  irc_msgs_per_s_without  channel PRIVMSGs per second relayed by InspIRCd
                          without the tally module
  irc_msgs_per_s_with     the same with m_tally loaded (and its engine running)
  irc_ratio               with / without (target >= 0.97)
  irc_buys_per_s          receipts per second: IRC clients -> m_tally -> engine
                          -> PostgreSQL commit -> NOTICE back to the buyer
  irc_msgs_n, irc_msgs_senders, irc_msgs_rounds, irc_buy_clients, irc_buy_window, irc_buy_seconds,
  irc_buys_refused        the parameters, and answers that were not receipts

Two private networks (tools/irc_env.sh, InspIRCd 3 + Anope) run side by
side, one without and one with the module; the message rounds alternate
between them (without, with, without, ...) so that both see the same
machine, and the best round of each counts. In a round K clients each send
L ordinary lines into a channel at once (each within InspIRCd's per-client
flood allowance) and one more client in the channel counts them; the rate
is K*L over the time from the first byte sent to the last line received. A channel line that is not a
tally command costs the module one byte compare.

The buy run uses its own database (DSN's cluster, database bench_irc, made
here) on the network with the module: C clients, each its own NickServ
account and demo credits, already agreed to pay, keep W BUYs in flight
each for an unlimited item for S seconds; every receipt NOTICE counts.
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import ircclient as ic  # noqa: E402

PASSWORD = "Bench-Horse-42"


def log(msg):
    print("irc_bench: %s" % msg, file=sys.stderr, flush=True)


def flood_round(env, senders, per_sender, chan):
    """`senders` clients each send `per_sender` lines into chan at once; one
    receiver counts them. Returns lines/s seen by the receiver. Each sender
    stays inside InspIRCd's per-client flood allowance (about 2,400 lines at
    the test network's <connect> settings), so the server, not its
    throttle, sets the pace."""
    import select
    recv = env.client(ic.unique_nick("rx"))
    tx = []
    try:
        recv.join(chan)
        for i in range(senders):
            c = env.client(ic.unique_nick("t%d" % i))
            c.join(chan)
            tx.append(c)
        recv.collect(0.3)
        n = senders * per_sender
        line = b"PRIVMSG " + chan.encode() + b" :an ordinary chat line, nothing to see here 0123456789\r\n"
        payload = line * per_sender
        rs = recv.sock
        rs.setblocking(False)
        count = 0
        tail = b""
        t0 = time.monotonic()

        def sender():
            for c in tx:
                c.sock.setblocking(True)
                c.sock.sendall(payload)
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        deadline = t0 + 10
        while count < n and time.monotonic() < deadline:
            r, _, _ = select.select([rs], [], [], 1.0)
            if not r:
                continue
            chunk = rs.recv(1 << 20)
            if not chunk:
                raise RuntimeError("receiver disconnected after %d lines" % count)
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            count += data.count(b" PRIVMSG ", 0, cut)
            tail = data[cut:]
        took = time.monotonic() - t0
        th.join(5)
        if count < n:
            raise RuntimeError("receiver counted %d of %d lines" % (count, n))
        return n / took
    finally:
        recv.quit()
        for c in tx:
            c.quit()


def buy_run(env, clients, window, seconds):
    """Receipts per second from `clients` buyers keeping `window` BUYs in flight."""
    tag = "%x" % (os.getpid() & 0xFFFF)
    sku = "bench" + tag
    oper = env.client("bo" + tag)
    creator = env.client("bc" + tag)
    buyers = []
    try:
        for c in (oper, creator):
            c.ns_register(PASSWORD)
            c.wait_account()
        oper.send("OPER admin adminpass")
        oper.wait_numeric("381")
        ic.tally_ask(creator, "WALLET")
        ic.tally_ask(oper, "TALLY ROLE %s creator" % creator.nick, r"is now a creator")
        ic.tally_ask(creator, "ITEM ADD %s 0.01 Bench sticker" % sku, r"added")
        for i in range(clients):
            c = env.client("bb%s_%d" % (tag, i))
            c.ns_register(PASSWORD)
            buyers.append(c)
        for c in buyers:
            if c.wait_account() != c.nick:
                raise RuntimeError("%s has no account" % c.nick)
            retry = re.compile(r"starting up|busy|welcome credits are still arriving")
            deadline = time.monotonic() + 30  # the welcome grant is committed first
            while "balance 0.00 " in ic.tally_ask(c, "WALLET", r"^Wallet ").text:
                if time.monotonic() > deadline:
                    raise RuntimeError("%s got no welcome credits" % c.nick)
                time.sleep(0.2)
            m = ic.tally_ask(c, "BUY %s" % sku, r"CONFIRM (\S+)", retry=retry)
            ic.tally_ask(c, "CONFIRM %s" % re.search(r"CONFIRM (\S+)", m.text).group(1),
                         r"receipt \d+", retry=retry)
        import select
        socks = {c.sock: c for c in buyers}
        inflight = {c.sock: 0 for c in buyers}
        tails = {c.sock: b"" for c in buyers}
        buy = ("BUY %s\r\n" % sku).encode()
        receipts = refused = 0
        for s in socks:
            s.setblocking(True)
            s.sendall(buy * window)
            s.setblocking(False)
            inflight[s] = window
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            r, _, _ = select.select(list(socks), [], [], 0.5)
            for s in r:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("a buyer was disconnected")
                data = tails[s] + chunk
                cut = data.rfind(b"\n") + 1
                block = data[:cut]
                tails[s] = data[cut:]
                got = block.count(b" receipt ")
                answers = block.count(b" NOTICE ")
                if b"PING" in block:
                    for ln in block.split(b"\n"):
                        if ln.startswith(b"PING"):
                            s.setblocking(True)
                            s.sendall(b"PONG" + ln[4:].rstrip(b"\r") + b"\r\n")
                            s.setblocking(False)
                receipts += got
                refused += answers - got
                inflight[s] -= answers
                more = window - inflight[s]
                if more > 0 and time.monotonic() < end:
                    s.setblocking(True)
                    s.sendall(buy * more)
                    s.setblocking(False)
                    inflight[s] += more
        took = time.monotonic() - t0
        return receipts / took, refused
    finally:
        for c in buyers + [oper, creator]:
            c.quit()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True, help="a DSN on the cluster to use (database bench_irc is made)")
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    so = os.path.join(os.path.abspath(args.build), "m_tally.so")
    if not os.path.isfile(so):
        log("%s is not built" % so)
        return 1
    senders, per_sender = (25, 1000) if args.quick else (50, 1000)
    n = senders * per_sender
    rounds = 3 if args.quick else 5
    clients, window = 8, 32
    seconds = 8 if args.quick else 20

    admin = re.sub(r"dbname=\S+", "", args.dsn).strip() + " dbname=postgres"
    ic.psql(admin, "DROP DATABASE IF EXISTS bench_irc")
    ic.psql(admin, "CREATE DATABASE bench_irc")
    dsn = re.sub(r"dbname=\S+", "", args.dsn).strip() + " dbname=bench_irc"

    res = {}
    log("starting two networks (without and with m_tally)")
    with ic.IrcEnv(tally_so=None) as plain, \
            ic.IrcEnv(tally_so=so, dsn=dsn,
                      tag_extra='welcome_grant="100000000" rate_account="0" rate_channel="0"') as tallied:
        ic.tally_ask(tallied.client(ic.unique_nick("wu")), "SHOP")  # the engine is up
        best = {"without": 0.0, "with": 0.0}
        try:
            for r in range(rounds):
                for name, env in (("without", plain), ("with", tallied)):
                    rate = flood_round(env, senders, per_sender, "#flood%d" % r)
                    best[name] = max(best[name], rate)
                    log("round %d %-7s %9.0f msgs/s" % (r + 1, name, rate))
        except RuntimeError as e:
            # Known problem: on some machines InspIRCd stops relaying after
            # ~2,400 lines and then relays ~220 lines/s; report no figure.
            log("message rounds failed: %s" % e)
            res["irc_msgs_error"] = str(e)
            best = {"without": 0.0, "with": 0.0}
        res["irc_msgs_per_s_without"] = round(best["without"]) or None
        res["irc_msgs_per_s_with"] = round(best["with"]) or None
        res["irc_ratio"] = round(best["with"] / best["without"], 3) if best["without"] else None
        res["irc_msgs_n"] = n
        res["irc_msgs_senders"] = senders
        res["irc_msgs_rounds"] = rounds
        log("buys: %d clients x %d in flight for %d s" % (clients, window, seconds))
        rate, refused = buy_run(tallied, clients, window, seconds)
        res["irc_buys_per_s"] = round(rate)
        res["irc_buys_refused"] = refused
        res["irc_buy_clients"] = clients
        res["irc_buy_window"] = window
        res["irc_buy_seconds"] = seconds
        log("buys: %.0f receipts/s (%d other answers)" % (rate, refused))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
