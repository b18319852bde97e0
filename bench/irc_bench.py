#!/usr/bin/python3
"""irc_bench.py — what tally costs InspIRCd, and buys per second over IRC.

    bench/irc_bench.py --dsn DSN --build BUILD_DIR [--quick]

Prints one JSON object on stdout (progress on stderr):

  irc_msgs_per_s_without  channel PRIVMSGs per second relayed by InspIRCd
                          without the tally module (median of the rounds)
  irc_msgs_per_s_with     the same with m_tally loaded (and its engine running)
  irc_ratio               with / without (target >= 0.97)
  irc_cpu_us_per_msg_without, irc_cpu_us_per_msg_with
                          InspIRCd's own CPU time (user + system, from
                          /proc) per relayed line, median of the rounds: the
                          module's cost with less noise from other load
  irc_buys_per_s          receipts per second: IRC clients -> m_tally -> engine
                          -> PostgreSQL commit -> NOTICE back to the buyer
  irc_msgs_rounds_without, irc_msgs_rounds_with  every round's msgs/s
  irc_msgs_n, irc_msgs_senders, irc_msgs_window, irc_msgs_rounds,
  irc_buy_clients, irc_buy_window, irc_buy_seconds,
  irc_buys_refused        the parameters, and answers that were not receipts
  irc_herd_buyers, irc_herd_stock, irc_herd_sold, irc_herd_sold_out,
  irc_herd_other, irc_herd_ms
                          the drop herd: B IRC clients (own NickServ
                          accounts, consent given) rush a limited drop of
                          STOCK units the moment `!drop start` opens it:
                          units sold (must equal the stock: checked against
                          the ledger, else irc_herd_error), "sold out"
                          answers, other answers, and ms from the first BUY
                          sent until every buyer had its answer
  irc_msgs_error, irc_buys_error, irc_herd_error
                          why a part failed (its keys are then null)

Two private networks (tools/irc_env.sh, InspIRCd 3 + Anope, the same
configuration except that one loads m_tally) run side by side; the message
rounds alternate between them (without/with, then with/without, ...) so
that both see the same machine, and the median round of each counts. In a
round 16 fresh clients send N ordinary lines between them into a channel
(-n, the senders are not members) and one member counts them; the rate is
N over the time from the first byte sent to the last line received. Each
sender keeps at most WINDOW unseen lines in flight: without that limit
InspIRCd 3 stalls at ~150 lines/s per sender (see flood_round for why). A
channel line that is not a tally command costs the module one byte compare.

The buy run uses its own database (DSN's cluster, database bench_irc, made
here) on the network with the module: C clients, each its own NickServ
account and demo credits, already agreed to pay, keep W BUYs in flight
each for an unlimited item for S seconds; every receipt NOTICE counts.

The drop herd runs on the same network and database: a host (channel
operator of its own channel, identified to NickServ) opens a drop with
`!drop create` (scheduled an hour ahead) and `!drop start`; the buyers,
connected and consented beforehand (a warm-up drop), each send one BUY the
moment the host's `!drop start` is answered, all within a few ms.
"""

import argparse
import json
import os
import re
import socket
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import ircclient as ic  # noqa: E402

PASSWORD = "Bench-Horse-42"
# Message rounds: lines a sender may have sent that the receiver has not
# seen yet, and lines per write (see flood_round). WINDOW lines must stay
# under InspIRCd's default netbuffersize (10,240 bytes).
WINDOW = 120
CHUNK = 30


def log(msg):
    print("irc_bench: %s" % msg, file=sys.stderr, flush=True)


def server_cpu_s(env):
    """CPU seconds (user + system) InspIRCd has used so far."""
    with open(os.path.join(env.dir, "inspircd.run.pid")) as f:
        pid = f.read().strip()
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect_many(env, nicks):
    """Registers one client per nick, in parallel (InspIRCd answers a
    registration on its once-a-second tick, so one by one takes ~1 s each)."""
    import threading
    out, errors = [None] * len(nicks), []

    def one(i):
        try:
            out[i] = env.client(nicks[i])
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(nicks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for c in out:
            if c:
                c.quit()
        raise RuntimeError("connecting bench clients: %s" % errors[0])
    return out


def flood_round(env, senders, total, chan, tag):
    """`senders` clients send `total` ordinary lines into chan between them;
    one receiver in the channel counts them. Returns (lines/s seen by the
    receiver, InspIRCd CPU µs per line).

    Each sender keeps at most WINDOW lines that the receiver has not seen
    yet, sent in CHUNK-line writes. Why: InspIRCd 3 reads a client socket
    edge-triggered (epoll EPOLLET), at most <performance:netbuffersize>
    bytes (10,240 by default) per read; the rest is left to a "trial read"
    that runs only after the next epoll_wait, which sleeps up to 1 s when no
    other socket has news. A client that dumps more than its TCP window at
    once stops sending new segments, so no new edge comes and the server
    reads 10 KB per second (~150 lines/s: the old "stall after ~2,400
    lines"). With WINDOW lines (< 10,240 bytes) per sender the server always
    finds all of a sender's pending lines in one read, every chunk makes a
    new edge, and the server's own speed sets the pace. The senders are not
    channel members (the channel is -n): a member gets every other member's
    lines, and a sender that does not read them fills its sendq until
    InspIRCd stops processing its input (<connect:softsendq>). So every
    line is relayed to exactly one client, the strictest case for the
    module's per-line cost."""
    import select
    recv = env.client("rx" + tag)
    tx = []
    try:
        recv.join(chan)  # first in: channel operator
        recv.send("MODE %s -n" % chan)
        recv.expect(lambda m: m.command == "MODE" and "-n" in m.params[1:], what="MODE -n")
        tx.extend(connect_many(env, ["tx%s%d" % (tag, i) for i in range(senders)]))
        for c in tx:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.sock.setblocking(True)
        recv.collect(0.2)
        line = b"PRIVMSG " + chan.encode() + b" :an ordinary chat line, nothing to see here 0123456789\r\n"
        assert WINDOW * len(line) < 10240
        chunk = line * CHUNK
        per = [total // senders + (1 if i < total % senders else 0) for i in range(senders)]
        marks = [(":%s!" % c.nick).encode() for c in tx]
        sent = [0] * senders
        seen = [0] * senders
        rs = recv.sock
        rs.setblocking(False)
        tail = b""
        count = 0
        cpu0 = server_cpu_s(env)
        t0 = time.monotonic()
        deadline = t0 + 120
        while count < total:
            for i, c in enumerate(tx):
                while sent[i] < per[i] and sent[i] - seen[i] + CHUNK <= WINDOW:
                    k = min(CHUNK, per[i] - sent[i])
                    c.sock.sendall(chunk if k == CHUNK else line * k)
                    sent[i] += k
            r, _, _ = select.select([rs], [], [], 1.0)
            if not r:
                if time.monotonic() > deadline:
                    raise RuntimeError("receiver counted %d of %d lines" % (count, total))
                continue
            data = rs.recv(1 << 20)
            if not data:
                raise RuntimeError("receiver disconnected after %d lines" % count)
            data = tail + data
            cut = data.rfind(b"\n") + 1
            block, tail = data[:cut], data[cut:]
            for i, m in enumerate(marks):
                seen[i] += block.count(m)
            count = sum(seen)
            if block.startswith(b"PING") or b"\nPING" in block:
                for ln in block.split(b"\n"):
                    if ln.startswith(b"PING"):
                        recv.send(b"PONG" + ln[4:].rstrip(b"\r"))
        took = time.monotonic() - t0
        cpu = server_cpu_s(env) - cpu0
        return total / took, cpu * 1e6 / total
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


def ready_buyer(env, nick, warm):
    """A client with a NickServ account, welcome credits and consent given
    (a first purchase of the warm-up drop)."""
    c = env.client(nick)
    try:
        c.ns_register(PASSWORD)
        if c.wait_account(timeout=30) != c.nick:
            raise RuntimeError("%s has no account" % c.nick)
        deadline = time.monotonic() + 30  # the welcome grant is committed first
        while "balance 0.00 " in ic.tally_ask(c, "WALLET", r"^Wallet ").text:
            if time.monotonic() > deadline:
                raise RuntimeError("%s got no welcome credits" % c.nick)
            time.sleep(0.2)
        retry = re.compile(r"starting up|busy|welcome credits are still arriving")
        m = ic.tally_ask(c, "BUY %s" % warm, r"CONFIRM (\S+)", retry=retry)
        ic.tally_ask(c, "CONFIRM %s" % re.search(r"CONFIRM (\S+)", m.text).group(1),
                     r"receipt \d+", retry=retry)
        return c
    except BaseException:
        c.quit()
        raise


def ready_buyers(env, nicks, warm):
    """ready_buyer for every nick, PARALLEL at a time (registration is
    answered on the server's once-a-second tick)."""
    import concurrent.futures as cf
    out = []
    with cf.ThreadPoolExecutor(max_workers=64) as pool:
        futures = [pool.submit(ready_buyer, env, n, warm) for n in nicks]
        errors = []
        for f in futures:
            try:
                out.append(f.result())
            except Exception as e:  # reported below, after the others finished
                errors.append(e)
    if errors:
        for c in out:
            c.quit()
        raise RuntimeError("%d of %d buyers not ready: %s" % (len(errors), len(nicks), errors[0]))
    return out


def drop_herd(env, dsn, n_buyers, stock):
    """n_buyers rush a drop of `stock` units over IRC. Returns a dict of
    irc_herd_* keys; raises if the ledger or the answers disagree."""
    import select
    tag = "%x" % (os.getpid() & 0xFFFF)
    chan, sku, warm = "#herd" + tag, "herd" + tag, "hwarm" + tag
    host = env.client("hh" + tag)
    buyers = []
    try:
        host.ns_register(PASSWORD)
        if host.wait_account(timeout=30) != host.nick:
            raise RuntimeError("the host has no account")
        host.join(chan)  # first in: channel operator
        ic.make_creators(env, [host.nick], PASSWORD)  # selling needs the creator role too

        def host_says(text, regex):
            return ic.tally_ask(host, lambda: host.privmsg(chan, text), regex)
        host_says("!drop create %s %d 0.01" % (warm, 2 * n_buyers), r"Drop %s created" % warm)
        host_says("!drop create %s %d 0.01 start=+1h" % (sku, stock), r"Drop %s created" % sku)
        t_setup = time.monotonic()
        buyers = ready_buyers(env, ["hb%s_%d" % (tag, i) for i in range(n_buyers)], warm)
        log("herd: %d buyers ready in %.1f s" % (len(buyers), time.monotonic() - t_setup))
        for c in buyers:
            c.collect(0)
        host_says("!drop start %s" % sku, r"Drop %s started" % sku)
        line = ("BUY %s\r\n" % sku).encode()
        socks = {c.sock: c for c in buyers}
        t0 = time.monotonic()
        for s in socks:
            s.setblocking(True)
            s.sendall(line)
            s.setblocking(False)
        answer = {}  # sock -> its final NOTICE text
        tails = {s: b"" for s in socks}
        deadline = t0 + 60
        while len(answer) < len(socks) and time.monotonic() < deadline:
            r, _, _ = select.select([s for s in socks if s not in answer], [], [], 0.5)
            for s in r:
                data = s.recv(1 << 16)
                if not data:
                    raise RuntimeError("a herd buyer was disconnected")
                data = tails[s] + data
                cut = data.rfind(b"\n") + 1
                tails[s] = data[cut:]
                me = (" NOTICE %s :" % socks[s].nick).encode()
                for ln in data[:cut].split(b"\n"):
                    if ln.startswith(b"PING"):
                        s.setblocking(True)
                        s.sendall(b"PONG" + ln[4:].rstrip(b"\r") + b"\r\n")
                        s.setblocking(False)
                    elif me in ln and b"NickServ" not in ln.split(b" ", 1)[0]:
                        text = ln.split(me, 1)[1].rstrip(b"\r").decode("utf-8", "replace")
                        if not ic.PENDING.search(text) and s not in answer:
                            answer[s] = text
        took_ms = (time.monotonic() - t0) * 1000
        if len(answer) < len(socks):
            raise RuntimeError("%d of %d herd buyers got no answer in 60 s" % (len(socks) - len(answer), len(socks)))
        sold = sum(1 for t in answer.values() if re.search(r"receipt \d+", t))
        sold_out = sum(1 for t in answer.values() if "sold out" in t)
        other = [t for t in answer.values() if not re.search(r"receipt \d+", t) and "sold out" not in t]
        in_ledger = ic.psql(dsn, "SELECT coalesce(sum(t.qty), 0) FROM transfers t JOIN items i"
                                 " ON i.id = t.item_id WHERE t.kind = 1 AND i.sku = '%s'" % sku)[0][0]
        res = {"irc_herd_buyers": len(socks), "irc_herd_stock": stock, "irc_herd_sold": sold,
               "irc_herd_sold_out": sold_out, "irc_herd_other": len(other), "irc_herd_ms": round(took_ms)}
        log("herd: %d buyers, stock %d: %d sold (ledger %s), %d sold out, %d other%s; all answered in %.0f ms"
            % (len(socks), stock, sold, in_ledger, sold_out, len(other),
               " (e.g. %r)" % other[0] if other else "", took_ms))
        if sold != stock or int(in_ledger) != stock:
            raise RuntimeError("drop of %d sold %d by the answers, %s in the ledger" % (stock, sold, in_ledger))
        return res
    finally:
        for c in buyers + [host]:
            c.quit()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True, help="a DSN on the cluster to use (database bench_irc is made)")
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="msgs,buys,herd",
                    help="which rows to measure (comma-separated: msgs, buys, herd)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    so = os.path.join(os.path.abspath(args.build), "m_tally.so")
    if not os.path.isfile(so):
        log("%s is not built" % so)
        return 1
    senders = 16
    n = 300_000 if args.quick else 500_000  # lines per round (under 100,000 per sender: see flood_round)
    rounds = 5 if args.quick else 7
    clients, window = 8, 32
    # 8 s in both modes: a longer run passes InspIRCd's per-client flood
    # limit of the test network's connect class and the server disconnects
    # a buyer (seen with 20 s).
    seconds = 8
    # The herd: the test network's connect class allows 1,000 clients
    # (localmax/globalmax, softlimit 1024 descriptors); NickServ
    # registrations bound the setup time.
    herd_buyers, herd_stock = (200, 20) if args.quick else (500, 50)

    admin = re.sub(r"dbname=\S+", "", args.dsn).strip() + " dbname=postgres"
    ic.psql(admin, "DROP DATABASE IF EXISTS bench_irc")
    ic.psql(admin, "CREATE DATABASE bench_irc")
    dsn = re.sub(r"dbname=\S+", "", args.dsn).strip() + " dbname=bench_irc"

    res = {}
    log("starting two networks (without and with m_tally)")
    with ic.IrcEnv(tally_so=None) as plain, \
            ic.IrcEnv(tally_so=so, dsn=dsn,
                      tag_extra='welcome_grant="100000000" rate_account="0" rate_channel="0"') as tallied:
        # The engine is up: an answer other than "starting up" (tally_ask
        # returns a retried answer once its time is up, and the engine may
        # never start, e.g. when it cannot reach PostgreSQL's socket).
        ic.tally_ask(tallied.client(ic.unique_nick("wu")), "SHOP", r"^(?!starting up)", timeout=90)
        rates = {"without": [], "with": []}
        cpus = {"without": [], "with": []}
        nets = [("without", plain), ("with", tallied)]
        try:
            for r in range(rounds if "msgs" in parts else 0):
                # Alternate which network goes first, so that neither is
                # always the one measured right after the other.
                for name, env in (nets if r % 2 == 0 else nets[::-1]):
                    tag = "%x%d%s" % (os.getpid() & 0xFFF, r, name[1])
                    rate, cpu = flood_round(env, senders, n, "#flood%d" % r, tag)
                    rates[name].append(rate)
                    cpus[name].append(cpu)
                    log("round %d %-7s %9.0f msgs/s  %5.2f us server CPU per line" % (r + 1, name, rate, cpu))
        except (RuntimeError, OSError, ic.IRCError) as e:
            log("message rounds failed: %s" % e)
            res["irc_msgs_error"] = str(e)
            rates = {"without": [], "with": []}
        med = {k: statistics.median(v) if len(v) == rounds else None for k, v in rates.items()}
        cpu_med = {k: statistics.median(v) if len(v) == rounds else None for k, v in cpus.items()}
        res["irc_msgs_per_s_without"] = round(med["without"]) if med["without"] else None
        res["irc_msgs_per_s_with"] = round(med["with"]) if med["with"] else None
        res["irc_ratio"] = (round(med["with"] / med["without"], 3)
                            if med["without"] and med["with"] else None)
        res["irc_cpu_us_per_msg_without"] = round(cpu_med["without"], 3) if med["without"] else None
        res["irc_cpu_us_per_msg_with"] = round(cpu_med["with"], 3) if med["with"] else None
        res["irc_msgs_rounds_without"] = [round(x) for x in rates["without"]]
        res["irc_msgs_rounds_with"] = [round(x) for x in rates["with"]]
        res["irc_msgs_n"] = n
        res["irc_msgs_senders"] = senders
        res["irc_msgs_window"] = WINDOW
        res["irc_msgs_rounds"] = rounds
        log("buys: %d clients x %d in flight for %d s" % (clients, window, seconds))
        try:
            if "buys" not in parts:
                raise RuntimeError("not asked for (--parts)")
            rate, refused = buy_run(tallied, clients, window, seconds)
        except (RuntimeError, OSError, ic.IRCError) as e:
            log("buy run failed: %s" % e)
            res["irc_buys_error"] = str(e)
            rate, refused = None, None
        res["irc_buys_per_s"] = round(rate) if rate is not None else None
        res["irc_buys_refused"] = refused
        res["irc_buy_clients"] = clients
        res["irc_buy_window"] = window
        res["irc_buy_seconds"] = seconds
        if rate is not None:
            log("buys: %.0f receipts/s (%d other answers)" % (rate, refused))
        log("drop herd: %d buyers, stock %d" % (herd_buyers, herd_stock))
        keys = ("irc_herd_buyers", "irc_herd_stock", "irc_herd_sold", "irc_herd_sold_out",
                "irc_herd_other", "irc_herd_ms")
        try:
            if "herd" not in parts:
                raise RuntimeError("not asked for (--parts)")
            res.update(drop_herd(tallied, dsn, herd_buyers, herd_stock))
        except (RuntimeError, OSError, ic.IRCError) as e:
            log("drop herd failed: %s" % e)
            res["irc_herd_error"] = str(e)
            res.update({k: None for k in keys})
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
