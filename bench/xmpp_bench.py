#!/usr/bin/python3
"""xmpp_bench.py — what tally costs Prosody, and buys per second over XMPP.

    bench/xmpp_bench.py --dsn DSN --build BUILD_DIR [--quick]

Prints one JSON object on stdout (progress on stderr):

  xmpp_msgs_per_s_without  room messages per second relayed by Prosody 0.12
                           without mod_tally (median of the rounds)
  xmpp_msgs_per_s_with     the same with mod_tally on the host and the MUC
                           component (its engine running)
  xmpp_ratio               with / without (target >= 0.97)
  xmpp_cpu_us_per_msg_without, xmpp_cpu_us_per_msg_with
                           CPU time (user + system, /proc) of Prosody's main
                           thread, its event loop, per relayed message,
                           median of the rounds: the module's cost with less
                           noise from other load (the engine's own threads
                           are not counted: they do not hold the loop)
  xmpp_buys_per_s          receipts per second: XMPP clients -> mod_tally ->
                           engine -> PostgreSQL commit -> chat message back
  xmpp_msgs_rounds_without, xmpp_msgs_rounds_with, xmpp_msgs_n,
  xmpp_msgs_senders, xmpp_buy_clients, xmpp_buy_window, xmpp_buy_seconds,
  xmpp_buys_refused        the parameters, every round, answers that were
                           not receipts
  xmpp_msgs_error, xmpp_buys_error  why a part failed (its keys are then null)

Two private Prosody servers (tests/e2e/xmpp_env.py, the same configuration
except that one loads mod_tally) run side by side; the rounds alternate
between them so both see the same machine. In a round S senders and one
counter, all occupants of one room, exchange N ordinary lines; each sender
keeps at most WINDOW of its lines unechoed (the room reflects every line to
its sender). The rate is N over the time from the first line sent to the
last one counted. The clients are raw sockets (SASL PLAIN, bind, MUC join),
not slixmpp, so that Python is not what is measured. A room line that is
not a tally command costs mod_tally one prefix compare.

The buy run is on the server with the module, its own database (bench_xmpp
in DSN's cluster): C clients, each with the welcome grant and consent given,
keep W BUYs in flight for an unlimited item for T seconds by direct message
to the shop; every receipt counts.
"""

import argparse
import base64
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
from xmpp_env import DOMAIN, MUC, ProsodyEnv  # noqa: E402

STREAM = ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" % DOMAIN)


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


class Raw:
    """One logged-in XMPP client on a plain socket."""

    def __init__(self, port, user, pw, resource="b"):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(30)
        self.buf = b""
        self.user = user
        self.s.sendall(STREAM.encode())
        self.until(b"</stream:features>")
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
        self.s.sendall(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % token).encode())
        self.until(b"<success")
        self.buf = b""
        self.s.sendall(STREAM.encode())
        self.until(b"</stream:features>")
        self.s.sendall(("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                        "<resource>%s</resource></bind></iq>" % resource).encode())
        self.until(b"</iq>")
        self.s.sendall(b"<presence/>")
        self.buf = b""

    def until(self, marker, timeout=30):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            if time.monotonic() > deadline:
                raise RuntimeError("%s: no %r in %r" % (self.user, marker, self.buf[-300:]))
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("%s: stream closed: %r" % (self.user, self.buf[-300:]))
            self.buf += d
        i = self.buf.index(marker) + len(marker)
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def join(self, room, nick):
        self.s.sendall(("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>"
                        "<history maxstanzas='0'/></x></presence>" % (room, nick)).encode())
        self.until(b"code='110'")

    def drain(self, quiet_s):
        """Drops what arrives until the socket stays quiet for quiet_s."""
        self.s.settimeout(quiet_s)
        try:
            while self.s.recv(262144):
                pass
        except OSError:
            pass
        self.s.settimeout(30)

    def close(self):
        try:
            self.s.sendall(b"</stream:stream>")
            self.s.close()
        except OSError:
            pass


def prosody_cpu_s(px):
    """CPU time of Prosody's main thread (its event loop: what a module can
    slow down), not of the engine's threads beside it."""
    with open(os.path.join(px.dir, "prosody.pid")) as f:
        pid = f.read().strip()
    with open("/proc/%s/task/%s/stat" % (pid, pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Counter:
    """Counts a marker in a byte stream read in chunks (a marker may straddle two)."""

    def __init__(self, marker):
        self.marker, self.tail, self.n = marker, b"", 0

    def feed(self, d):
        data = self.tail + d
        self.n += data.count(self.marker)
        # Keep what could be the start of a marker cut by the chunk's end.
        keep = len(self.marker) - 1
        cut = data.rfind(self.marker)
        rest = data[cut + len(self.marker):] if cut >= 0 else data
        self.tail = rest[-keep:] if keep else b""
        return self.n


def msgs_round(px, senders, counter, room, n, window):
    """n room lines from len(senders) senders; (lines/s, CPU us per line)."""
    per = n // len(senders)
    total = per * len(senders)
    got = [0]
    done = threading.Event()

    def count():
        seen = Counter(b"<body>bench ")
        while got[0] < total:
            d = counter.s.recv(262144)
            if not d:
                return
            got[0] = seen.feed(d)
        done.set()

    def send(i, c):
        echoes = Counter(("<body>bench %d " % i).encode())
        sent = seen = 0
        while seen < per:
            while sent < per and sent - seen < window:
                c.s.sendall(b"<message to='%s' type='groupchat'><body>bench %d %d</body></message>"
                            % (room.encode(), i, sent))
                sent += 1
            d = c.s.recv(262144)
            if not d:
                raise RuntimeError("sender %d: closed" % i)
            seen = echoes.feed(d)
    cpu0 = prosody_cpu_s(px)
    t0 = time.monotonic()
    ct = threading.Thread(target=count, daemon=True)
    ct.start()
    ts = [threading.Thread(target=send, args=(i, c), daemon=True) for i, c in enumerate(senders)]
    for t in ts:
        t.start()
    if not done.wait(120):
        raise RuntimeError("counted %d of %d lines" % (got[0], total))
    dt = time.monotonic() - t0
    for t in ts:
        t.join(30)
    cpu = prosody_cpu_s(px) - cpu0
    # The senders' sockets still hold echoes of the others' last lines: drain them.
    for c in senders:
        c.drain(0.2)
    return total / dt, cpu * 1e6 / total


def room_setup(px, names, pw, room):
    counter = Raw(px.port, "counter", pw)
    counter.join(room, "counter")
    senders = []
    for i, u in enumerate(names):
        c = Raw(px.port, u, pw)
        c.join(room, "s%d" % i)
        senders.append(c)
    # Join presences of later occupants sit in the counter's socket: drop them.
    counter.drain(0.5)
    return counter, senders


def buys(px, port, pw, clients, window, seconds):
    shop = px.shop
    raws = [Raw(port, "buyer%d" % i, pw) for i in range(clients)]
    answer = re.compile(rb"<message[^>]*from='%s[^']*'[^>]*>.*?<body>(.*?)</body>" % re.escape(shop.encode()), re.S)

    def ask(c, line, want, tries=60):
        for _ in range(tries):
            c.s.sendall(("<message to='%s' type='chat'><body>%s</body></message>" % (shop, line)).encode())
            body = b""
            while True:
                m = answer.search(c.buf)
                if m:
                    body, c.buf = m.group(1), c.buf[m.end():]
                    break
                d = c.s.recv(65536)
                if not d:
                    raise RuntimeError("closed")
                c.buf += d
            if re.search(rb"starting up|busy, try again|welcome credits are still arriving", body):
                time.sleep(0.3)
                continue
            if re.search(want, body):
                return body
            if b"balance 0.00 " in body:
                time.sleep(0.3)
                continue
            raise RuntimeError("%r answered %r" % (line, body))
        raise RuntimeError("%r: no answer matching %r" % (line, want))
    for c in raws:
        ask(c, "WALLET", rb"balance [1-9]")
        b = ask(c, "BUY bt", rb"CONFIRM (\S+)|receipt \d+")
        m = re.search(rb"CONFIRM (\S+)", b)
        if m:
            ask(c, "CONFIRM " + m.group(1).decode(), rb"receipt \d+")
    stop = time.monotonic() + seconds
    counts = [[0, 0] for _ in raws]

    def run(i, c):
        inflight = 0
        while True:
            now = time.monotonic()
            while now < stop and inflight < window:
                c.s.sendall(("<message to='%s' type='chat'><body>BUY bt</body></message>" % shop).encode())
                inflight += 1
            if inflight == 0:
                return
            d = c.s.recv(262144)
            if not d:
                return
            c.buf += d
            for m in answer.finditer(c.buf):
                inflight -= 1
                counts[i][0 if b"receipt " in m.group(1) else 1] += 1
            c.buf = c.buf[c.buf.rfind(b"</message>") + 10:] if b"</message>" in c.buf else c.buf
    t0 = time.monotonic()
    ts = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(raws)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 60)
    dt = time.monotonic() - t0
    for c in raws:
        c.close()
    return sum(x[0] for x in counts) / dt, sum(x[1] for x in counts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    os.environ.setdefault("TALLY_BUILD", os.path.abspath(a.build))
    n, senders_n, window = (4000, 8, 16) if a.quick else (12000, 16, 16)
    rounds = 3 if a.quick else 5
    clients, bwindow, bseconds = (8, 4, 4) if a.quick else (16, 4, 10)
    out = {"xmpp_msgs_n": n, "xmpp_msgs_senders": senders_n, "xmpp_buy_clients": clients,
           "xmpp_buy_window": bwindow, "xmpp_buy_seconds": bseconds}
    pw = "bench-pw"
    bulk = {"counter": pw}
    bulk.update({"sender%d" % i: pw for i in range(senders_n)})
    bulk.update({"buyer%d" % i: pw for i in range(clients)})
    host = re.search(r"host=(\S+)", a.dsn).group(1)
    db = "bench_xmpp_%d" % os.getpid()
    subprocess.run(["psql", "-X", "-q", "-h", host, "-U", "tally", "-d", "postgres", "-c",
                    "DROP DATABASE IF EXISTS %s" % db], check=True)
    subprocess.run(["psql", "-X", "-q", "-h", host, "-U", "tally", "-d", "postgres", "-c",
                    "CREATE DATABASE %s" % db], check=True)
    dsn = re.sub(r"dbname=\S+", "dbname=" + db, a.dsn)
    names = ["sender%d" % i for i in range(senders_n)]
    try:
        with ProsodyEnv(dsn, {}, bulk=dict(bulk), with_tally=False) as plain, \
                ProsodyEnv(dsn, {}, admins=["root"], bulk=dict(bulk),
                           with_tally=os.environ.get("XMPP_BENCH_AA") != "1",  # A/A: both without, the noise floor
                           tally={"welcome_grant": "100000000", "rate_account": "0", "rate_channel": "0",
                                  "rate_global": "0"}) as with_tally:
            room = "bench@" + MUC
            envs = {"without": plain, "with": with_tally}
            sides = {k: room_setup(px, names, pw, room) for k, px in envs.items()}
            res = {"without": [], "with": []}
            cpu = {"without": [], "with": []}
            try:
                for r in range(rounds):
                    order = ("without", "with") if r % 2 == 0 else ("with", "without")
                    for side in order:
                        counter, senders = sides[side]
                        rate, us = msgs_round(envs[side], senders, counter, room, n, window)
                        res[side].append(round(rate))
                        cpu[side].append(round(us, 1))
                        log("xmpp round %d %s: %.0f msgs/s, %.1f us CPU per message" % (r + 1, side, rate, us))
                w, wo = statistics.median(res["with"]), statistics.median(res["without"])
                out.update({"xmpp_msgs_per_s_without": wo, "xmpp_msgs_per_s_with": w,
                            "xmpp_ratio": round(w / wo, 3) if wo else None,
                            "xmpp_cpu_us_per_msg_without": statistics.median(cpu["without"]),
                            "xmpp_cpu_us_per_msg_with": statistics.median(cpu["with"]),
                            "xmpp_msgs_rounds_without": res["without"], "xmpp_msgs_rounds_with": res["with"]})
            except Exception as e:
                out["xmpp_msgs_error"] = "%s: %s" % (type(e).__name__, e)
            for counter, senders in sides.values():
                for c in [counter] + senders:
                    c.close()
            try:
                root = with_tally.client("root")
                creator = "sender0@" + DOMAIN
                root.ask(with_tally.shop, "TALLY ROLE %s creator" % creator, r"is now a creator")
                s0 = with_tally.client("sender0")
                s0.ask(with_tally.shop, "ITEM ADD bt 1 Bench tee", r"added")
                per_s, refused = buys(with_tally, with_tally.port, pw, clients, bwindow, bseconds)
                out.update({"xmpp_buys_per_s": round(per_s), "xmpp_buys_refused": refused})
            except Exception as e:
                out["xmpp_buys_error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        subprocess.run(["psql", "-X", "-q", "-h", host, "-U", "tally", "-d", "postgres", "-c",
                        "DROP DATABASE IF EXISTS %s" % db])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
