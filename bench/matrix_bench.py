#!/usr/bin/python3
"""matrix_bench.py — `make bench`'s Matrix rows: tallyd's Application
Service driven by the homeserver double (tests/e2e/matrix_double.py) on
loopback, a fresh database of the bench's PostgreSQL.

    matrix_bench.py --build BUILD --dsn DSN --pgbin DIR [--quick]

A homeserver sends one transaction at a time to an AS (Synapse does, and
AS "Pushing events" wants them linearised), so every row is sequential
transactions, as a homeserver would send them:

- matrix_txns_per_s, matrix_txn_p50_ms / _p99_ms: transactions of ONE
  command (`!wallet`) each, back to back: how many the AS records durably
  and answers 200 per second, and the PUT's time;
- matrix_events_per_s: transactions of 100 commands (Synapse's most per
  transaction), back to back: commands recorded per second;
- matrix_buys_per_s: transactions of 100 `!buy` (100 buyers who agreed
  already, one room), from the first PUT to the last "Bought" the AS posted
  to the homeserver (one request in flight per room: the answers queue);
- matrix_buy_answer_p50_ms / _p99_ms: one `!buy` per transaction, back to
  back: from the PUT's start to its answer arriving at the homeserver (the
  time a buyer waits for "Bought ... receipt N").
Prints one JSON object (bench/run.sh merges it)."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
from matrix_double import HomeserverDouble, member, message  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402

SERVER = "bench.local"
ROOM = "!bench:" + SERVER
ADMIN, CAROL = "@root:" + SERVER, "@carol:" + SERVER
SKU = "mxb"
BATCH = 100  # events per transaction (Synapse sends at most 100)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else None


class Bench:
    def __init__(self, hs):
        self.hs = hs
        self.lock = threading.Condition()
        self.answered = {}  # event id -> (monotonic time, body) of the first answer the AS posted
        orig = hs._send

        def timed(room, etype, txn, content):
            out = orig(room, etype, txn, content)
            rel = (content.get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id")
            if rel and out[0] == 200:
                with self.lock:
                    self.answered.setdefault(rel, (time.monotonic(), content.get("body", "")))
                    self.lock.notify_all()
            return out
        hs._send = timed

    def push(self, events):
        t0 = time.monotonic()
        st, js, _ = self.hs.push(events, timeout=120)
        if st != 200:
            raise RuntimeError("transaction answered %s %r" % (st, js))
        return time.monotonic() - t0

    def answers(self, ids, timeout=120):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not all(i in self.answered for i in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("%d of %d answers missing after %ss"
                                       % (sum(i not in self.answered for i in ids), len(ids), timeout))
                self.lock.wait(left)
            return [self.answered[i] for i in ids]

    def ask(self, sender, body, regex):
        ev = message(ROOM, sender, body)
        self.push([ev])
        text = self.answers([ev["event_id"]])[0][1]
        if not re.search(regex, text):
            raise RuntimeError("%s -> %r (wanted /%s/)" % (body, text, regex))
        return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n_single, n_batches, n_buy_batches, n_lat = (100, 5, 3, 100) if a.quick else (300, 10, 10, 300)
    host = re.search(r"host=(\S+)", a.dsn).group(1)
    db = "matrix_bench_%d" % os.getpid()
    subprocess.run([os.path.join(a.pgbin, "createdb"), "-h", host, "-p", "5432", "-U", "tally", db], check=True)
    dsn = re.sub(r"dbname=\S+", "dbname=" + db, a.dsn)
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="tally-mxbench-")
    reg = os.path.join(tmp, "registration.yaml")
    r = subprocess.run([os.path.join(a.build, "tally"), "--dsn", dsn, "matrix-registration", reg,
                        "http://127.0.0.1:%d" % port, SERVER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError("tally matrix-registration: %s" % r.stdout)
    vals = dict(re.findall(r'^(as_token|hs_token): "([0-9a-f]+)"$', open(reg).read(), re.M))
    hs = HomeserverDouble(vals["as_token"], vals["hs_token"], SERVER)
    hs.as_url = "http://127.0.0.1:%d" % port
    buyers = ["@buyer%03d:%s" % (i, SERVER) for i in range(BATCH)]
    hs.set_room(ROOM, dict([(hs.bot, "tally"), (ADMIN, "Root"), (CAROL, "Carol")] +
                           [(b, "Buyer %d" % i) for i, b in enumerate(buyers)]))
    keys = {"matrix_listen": "127.0.0.1:%d" % port, "matrix_registration": reg, "matrix_homeserver": hs.url,
            "matrix_server_name": SERVER, "matrix_admins": ADMIN, "rate_account": "0", "rate_channel": "0",
            "welcome_grant": "1000000", "queue_depth": "131072", "pending_timeout": "600000"}
    out = {}
    try:
        with TallydEnv(dsn, {"irc": "matrix-bench-unused-network-secret"}, extra=keys) as td:
            b = Bench(hs)
            try:
                b.ask(ADMIN, "!tally role %s creator" % CAROL, r"is now a creator")
                b.ask(CAROL, "!item add %s 1 1000000 Bench pin" % SKU, r"added")
                # Each buyer agrees once (a first purchase asks: BUY, CONFIRM).
                evs = [message(ROOM, x, "!buy %s" % SKU) for x in buyers]
                b.push(evs)
                codes = [re.search(r"(?i)confirm (\S+)", t) for _, t in b.answers([e["event_id"] for e in evs])]
                if not all(codes):
                    raise RuntimeError("not every first buy asked to confirm")
                evs = [message(ROOM, x, "!confirm %s" % c.group(1)) for x, c in zip(buyers, codes)]
                b.push(evs)
                b.answers([e["event_id"] for e in evs])
                print("bench: matrix: set up (100 buyers agreed)", file=sys.stderr)

                # One command per transaction, back to back.
                puts, t0 = [], time.monotonic()
                ids = []
                for i in range(n_single):
                    ev = message(ROOM, buyers[i % BATCH], "!wallet")
                    ids.append(ev["event_id"])
                    puts.append(b.push([ev]))
                el = time.monotonic() - t0
                b.answers(ids)
                out["matrix_txns_per_s"] = round(n_single / el, 1)
                out["matrix_txn_p50_ms"] = round(pct(puts, 50) * 1000, 2)
                out["matrix_txn_p99_ms"] = round(pct(puts, 99) * 1000, 2)

                # 100 commands per transaction, back to back.
                ids, t0 = [], time.monotonic()
                for _ in range(n_batches):
                    evs = [message(ROOM, x, "!wallet") for x in buyers]
                    ids += [e["event_id"] for e in evs]
                    b.push(evs)
                el = time.monotonic() - t0
                b.answers(ids, timeout=300)
                out["matrix_events_per_s"] = round(n_batches * BATCH / el, 1)

                # Buys: 100 per transaction, until the last answer is posted.
                ids, t0 = [], time.monotonic()
                for _ in range(n_buy_batches):
                    evs = [message(ROOM, x, "!buy %s" % SKU) for x in buyers]
                    ids += [e["event_id"] for e in evs]
                    b.push(evs)
                got = b.answers(ids, timeout=300)
                el = max(t for t, _ in got) - t0
                bought = sum(1 for _, t in got if t.startswith("Bought "))
                out["matrix_buys_per_s"] = round(bought / el, 1)
                out["matrix_buys_refused"] = len(got) - bought

                # One buy per transaction: PUT start -> answer at the homeserver.
                lat, refused = [], 0
                for i in range(n_lat):
                    ev = message(ROOM, buyers[i % BATCH], "!buy %s" % SKU)
                    t0 = time.monotonic()
                    b.push([ev])
                    t, text = b.answers([ev["event_id"]])[0]
                    lat.append(t - t0)
                    refused += not text.startswith("Bought ")
                out["matrix_buy_answer_p50_ms"] = round(pct(lat, 50) * 1000, 2)
                out["matrix_buy_answer_p99_ms"] = round(pct(lat, 99) * 1000, 2)
                out["matrix_buys_refused"] += refused
            except Exception:
                print("bench: matrix: tallyd log tail:\n%s" % td.log()[-3000:], file=sys.stderr)
                raise
    finally:
        hs.close()
    print("bench: matrix: %s" % json.dumps(out), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
