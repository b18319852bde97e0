#!/usr/bin/python3
"""test_matrix_pgdown.py — acknowledged means durable, on Matrix: while
PostgreSQL is down, tallyd's Application Service never answers a transaction
200 (it cannot record it); the homeserver's retries get 200 once PostgreSQL
is back, and the command applies once.

A private PostgreSQL cluster of its own (tools/pg.sh, killed and started
here): the shared test cluster must not go down under the tests running
beside this one. Homeserver: tests/e2e/matrix_double.py.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from matrix_double import HomeserverDouble, message  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402
from test_matrix_as import read_tokens  # noqa: E402

SERVER = "test.local"
ROOM = "!pg:" + SERVER
BOB = "@bob:" + SERVER


def scenario(tap, hs, db, td):
    ev = message(ROOM, BOB, "!wallet")
    st, js, _ = hs.push([ev])
    tap.check("with PostgreSQL up: 200", st == 200, (st, js))
    hs.reply_to(ev["event_id"], r"^Wallet ")

    tap.check("PostgreSQL killed", db.pg("kill"), db.pgdir)
    ev2 = message(ROOM, BOB, "!wallet")
    st, js, txn = hs.push([ev2], timeout=60)
    tap.check("while it is down: not 200 (500 M_UNKNOWN, the homeserver retries)",
              st == 500 and (js or {}).get("errcode") == "M_UNKNOWN", (st, js))
    st, js, _ = hs.push([ev2], txn_id=txn, timeout=60)
    tap.check("the retry while it is down: not 200 either", st == 500, (st, js))

    tap.check("PostgreSQL started again", db.pg("start"), db.pgdir)
    deadline = time.monotonic() + 60
    while True:  # the homeserver's retry loop
        st, js, _ = hs.push([ev2], txn_id=txn, timeout=30)
        if st == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    tap.check("once it is back: 200", st == 200 and js == {}, (st, js))
    hs.reply_to(ev2["event_id"], r"^Wallet ", timeout=60)
    n = db.scalar("SELECT count(*) FROM matrix_events WHERE event_id = '%s'" % ev2["event_id"])
    tap.check("the event recorded once", n == "1", n)
    time.sleep(1)
    tap.check("answered once", len(hs.replies(ev2["event_id"])) == 1, hs.replies(ev2["event_id"]))
    return True


def main():
    tap = ic.Tap()
    hs = None
    try:
        # A cluster of its own: the shared one serves the scripts beside it.
        with ic.TestDb("matrix_pgdown", private=True) as db:
            own = os.path.join(db.own, "pg") if db.own else None
            if not own or db.pgdir != own:
                raise RuntimeError("no private cluster (%r): not killing a shared one" % own)
            tmp = os.environ.get("TALLY_TMP") or "/tmp"
            os.makedirs(tmp, exist_ok=True)
            reg = os.path.join(tmp, "matrix-pgdown-reg-%d.yaml" % os.getpid())
            if os.path.exists(reg):
                os.unlink(reg)
            port = free_port()
            rc, out = ic.tally_cli(db.dsn, "matrix-registration", reg, "http://127.0.0.1:%d" % port, SERVER)
            tap.check("registration written", rc == 0, out)
            as_token, hs_token = read_tokens(reg)
            hs = HomeserverDouble(as_token, hs_token, SERVER)
            hs.as_url = "http://127.0.0.1:%d" % port
            extra = {"matrix_listen": "127.0.0.1:%d" % port, "matrix_registration": reg,
                     "matrix_homeserver": hs.url, "matrix_server_name": SERVER,
                     "rate_account": "0", "rate_channel": "0"}
            with TallydEnv(db.dsn, {"irc": "irc-secret-0123456789"}, extra=extra) as td:
                try:
                    tap.run("PostgreSQL down: no 200 until the transaction is recorded", lambda: scenario(tap, hs, db, td))
                except Exception:
                    print("# tallyd log tail:\n# " + "\n# ".join(td.log()[-3000:].splitlines()))
                    raise
                rc, out = ic.tally_cli(db.dsn, "check")
                tap.check("tally check passes", rc == 0, out[-2000:])
            os.unlink(reg)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if hs:
            hs.close()
    tap.exit()


if __name__ == "__main__":
    main()
