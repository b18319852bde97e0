#!/usr/bin/python3
"""test_matrix_as.py — tallyd's Matrix Application Service against the
homeserver double (tests/e2e/matrix_double.py, written from the spec).

1. Authentication: no token 401 M_MISSING_TOKEN, a wrong one 403
   M_FORBIDDEN (header and legacy ?access_token=), the right one 200; ping,
   the users and rooms queries.
2. Bad bodies: not JSON 400 M_NOT_JSON, no events array 400 M_BAD_JSON, a
   body over matrix_body_bytes_max 413 M_TOO_LARGE; none of them recorded.
3. A purchase with consent in a room: an admin (matrix_admins) makes a
   creator, who lists an item; a buyer's `!buy` (m.text) is answered as an
   m.notice (body and formatted_body, a reply to the command) asking to
   CONFIRM, `!confirm` buys; the transfer belongs to the matrix identity
   (the MXID).
4. A replayed transaction (same txnId) is answered 200 and applies once; the
   same event in another transaction applies once too.
5. Ignored: unknown event types, state events, m.notice, an edit
   (m.replace), the bot's own echo, an event older than the bound, someone
   else's !command: 200, no answer, nothing recorded for them.
6. 100 events at once (100 buyers' WALLET): all answered, in order.
7. The homeserver answers 429 (retry_after_ms) then 502, then takes it:
   the answer is posted exactly once, all attempts with one txnId.
8. A private-only command in a room is refused with the DM hint.
Then `tally check`. Own database e2e_matrix_<pid>.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from matrix_double import HomeserverDouble, message, new_event_id  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402
import matrix_env  # noqa: E402

SERVER = "test.local"
ROOM = "!live:" + SERVER
ADMIN, CAROL, BOB = "@root:" + SERVER, "@carol:" + SERVER, "@bob:" + SERVER


read_tokens = matrix_env.read_tokens


def scenario(tap, hs, db, td):
    say, ask = matrix_env.speaker(hs, ROOM)

    def auth():
        ev = [message(ROOM, BOB, "!wallet")]
        st, js, _ = hs.push(ev, auth="none")
        tap.check("no token: 401 M_MISSING_TOKEN", st == 401 and js.get("errcode") == "M_MISSING_TOKEN", (st, js))
        st, js, _ = hs.push(ev, token="0" * 64)
        tap.check("a wrong token: 403 M_FORBIDDEN", st == 403 and js.get("errcode") == "M_FORBIDDEN", (st, js))
        st, js, _ = hs.push(ev, auth="query", token="1" * 64)
        tap.check("a wrong legacy access_token: 403 M_FORBIDDEN", st == 403 and js.get("errcode") == "M_FORBIDDEN",
                  (st, js))
        st, js, _ = hs.push([], auth="query")
        tap.check("the right legacy access_token: 200", st == 200 and js == {}, (st, js))
        st, js = hs.request("POST", "/_matrix/app/v1/ping", b'{"transaction_id":"p1"}')
        tap.check("ping: 200 {}", st == 200 and js == {}, (st, js))
        st, js = hs.request("POST", "/_matrix/app/v1/ping", b"{}", auth="none")
        tap.check("ping without a token: 401", st == 401, (st, js))
        st, js = hs.request("GET", "/_matrix/app/v1/users/" + hs.bot)
        tap.check("users: the bot exists", st == 200, (st, js))
        st, js = hs.request("GET", "/_matrix/app/v1/users/@nobody:" + SERVER)
        tap.check("users: another id is 404", st == 404 and js.get("errcode") == "M_NOT_FOUND", (st, js))
        st, js = hs.request("GET", "/_matrix/app/v1/rooms/%23shop:" + SERVER)
        tap.check("rooms: an unknown alias is 404", st == 404, (st, js))
        st, js = hs.request("GET", "/_matrix/app/v1/nothing")
        tap.check("an unknown endpoint: 404 M_UNRECOGNIZED", st == 404 and js.get("errcode") == "M_UNRECOGNIZED",
                  (st, js))
        n = db.scalar("SELECT count(*) FROM matrix_events")
        tap.check("nothing refused was recorded", n == "0", n)
        return True
    tap.run("authentication, ping and the query endpoints", auth)

    def bad_bodies():
        st, js, _ = hs.push(None, raw=b"{not json")
        tap.check("malformed JSON: 400 M_NOT_JSON", st == 400 and js.get("errcode") == "M_NOT_JSON", (st, js))
        st, js, _ = hs.push(None, raw=b'{"evnts": []}')
        tap.check("no events array: 400 M_BAD_JSON", st == 400 and js.get("errcode") == "M_BAD_JSON", (st, js))
        st, js, _ = hs.push(None, raw=b'["events"]')
        tap.check("a JSON array: 400 M_BAD_JSON", st == 400 and js.get("errcode") == "M_BAD_JSON", (st, js))
        huge = b'{"events": [], "pad": "' + b"x" * (9 * 1024 * 1024) + b'"}'
        st, js, _ = hs.push(None, raw=huge)
        tap.check("a 9 MiB body: 413 M_TOO_LARGE", st == 413 and (js or {}).get("errcode") == "M_TOO_LARGE", (st, js))
        st, js, _ = hs.push([])
        tap.check("tallyd still answers after them", st == 200, (st, js))
        return True
    tap.run("bad bodies get specific errors", bad_bodies)

    sku = "tee%x" % (os.getpid() & 0xFFF)

    def purchase():
        ask(ADMIN, "!tally role %s creator" % CAROL, r"is now a creator")
        ask(CAROL, "!item add %s 1 Matrix tee" % sku, r"added")
        deadline = time.monotonic() + 30
        while True:
            _, ans = ask(BOB, "!wallet", r"^Wallet ")
            if "balance 0.00 " not in ans["content"]["body"]:
                break
            if time.monotonic() > deadline:
                raise AssertionError("no welcome grant: %r" % ans["content"])
            time.sleep(0.3)
        ev, ans = ask(BOB, "!buy %s" % sku, r"reply: !confirm (\S+)")
        c = ans["content"]
        tap.check("the answer is an m.notice", c.get("msgtype") == "m.notice" and ans["type"] == "m.room.message", c)
        tap.check("with formatted_body (HTML)", c.get("format") == "org.matrix.custom.html" and c.get("formatted_body"),
                  c)
        tap.check("in the room it was asked in", ans["room_id"] == ROOM, ans["room_id"])
        # The code to type is a command span: said as Matrix users type it.
        tap.check("the consent names the command as typed here (!confirm)", "reply: !confirm " in c["body"]
                  and "CONFIRM" not in c["body"], c["body"])
        code = re.search(r"reply: !confirm (\S+)", c["body"]).group(1)
        ev, ans = ask(BOB, "!confirm %s" % code, r"receipt \d+")
        rid = re.search(r"receipt (\d+)", ans["content"]["body"]).group(1)
        who = db.scalar("SELECT n.name || ':' || i.name FROM transfers t JOIN identities i ON i.account_id = t.account_id "
                        "JOIN networks n ON n.id = i.network_id WHERE t.id = %s" % rid)
        tap.check("the purchase belongs to the matrix identity of the MXID", who == "matrix:" + BOB, who)
        rec = db.scalar("SELECT count(*) FROM matrix_events WHERE event_id = '%s'" % ev["event_id"])
        tap.check("the command event was recorded", rec == "1", rec)
        return rid
    tap.run("a purchase with consent in a room: !buy in m.text, answered as m.notice", purchase)

    def drop():
        # A live event and a drop hosted by an admin; the announcement names
        # the command as it is typed on Matrix; a buyer buys from it.
        d = "d%x" % (os.getpid() & 0xFFF)
        ask(ADMIN, "!tally role %s creator" % ADMIN, r"is now a creator")
        ask(ADMIN, "!event start 30 Matrix launch", r"(?i)event")
        mark = hs.mark()
        ask(ADMIN, "!drop create %s 3 1" % d, r"^Drop %s created\.$" % d)
        _, live = hs.wait_event(lambda room, ev: ev["content"]["body"].startswith("LIVE NOW") and
                                "m.relates_to" not in ev["content"], 20, mark)
        c = live["content"]
        tap.check("LIVE NOW is said in the room as an m.notice", live["room_id"] == ROOM and c["msgtype"] == "m.notice",
                  live)
        tap.check("it names the command as typed here: !buy", c["body"].endswith("Type: !buy %s" % d), c["body"])
        tap.check("as <code> in the HTML", "<code>!buy %s</code>" % d in c.get("formatted_body", ""), c)
        ask(BOB, "!buy %s" % d, r"^Bought 1x drop %s .*receipt \d+" % d)
        return True
    tap.run("a live event and a drop in a Matrix room: LIVE NOW with !buy, a buyer buys", drop)

    def bought():
        return int(db.scalar("SELECT count(*) FROM transfers t JOIN identities i ON i.account_id = t.account_id "
                             "WHERE i.name = '%s' AND t.kind = 1" % BOB) or 0)

    def replay():
        before = bought()
        ev = message(ROOM, BOB, "!buy %s" % sku)
        st, js, txn = hs.push([ev])
        tap.check("first delivery: 200", st == 200, (st, js))
        hs.reply_to(ev["event_id"], r"receipt \d+")
        for _ in range(3):
            st, js, _ = hs.push([ev], txn_id=txn)
            tap.check("the same txnId again: 200", st == 200 and js == {}, (st, js))
        st, js, _ = hs.push([ev])  # the same event in another transaction
        tap.check("the same event in a new transaction: 200", st == 200, (st, js))
        time.sleep(2)
        tap.check("applied once", bought() == before + 1, (before, bought()))
        n = db.scalar("SELECT count(*) FROM matrix_transactions WHERE txn_id = '%s'" % txn)
        tap.check("the transaction recorded once", n == "1", n)
        rs = [r for r in hs.replies(ev["event_id"]) if "receipt" in r["content"]["body"]]
        tap.check("one receipt posted", len(rs) == 1, rs)
        return True
    tap.run("a replayed transaction applies once", replay)

    def reordered():
        # Transactions arrive out of order (the second before the first, then
        # the first twice): each applies once, whatever the order.
        before = bought()
        e1, e2 = message(ROOM, BOB, "!buy %s" % sku), message(ROOM, BOB, "!buy %s" % sku)
        t1, t2 = "ro1.%d" % os.getpid(), "ro2.%d" % os.getpid()
        for evs, txn in (([e2], t2), ([e1], t1), ([e1], t1), ([e2], t2)):
            st, js, _ = hs.push(evs, txn_id=txn)
            tap.check("transaction %s: 200" % txn, st == 200, (st, js))
        for e in (e1, e2):
            hs.reply_to(e["event_id"], r"receipt \d+")
        time.sleep(1)
        tap.check("two purchases, one per event", bought() == before + 2, (before, bought()))
        long = message(ROOM, BOB, "!buy " + "x" * 600)
        st, js, _ = hs.push([long])
        ans = hs.reply_to(long["event_id"], r"too long")
        tap.check("a command over 512 bytes is answered, nothing done", "nothing was done" in ans["content"]["body"],
                  ans["content"])
        tap.check("and charged nothing", bought() == before + 2, (before, bought()))
        return True
    tap.run("transactions reordered and replayed apply once each; an overlong command is refused", reordered)

    def ignored():
        mark = hs.mark()
        old = message(ROOM, BOB, "!wallet", age_ms=3600 * 1000)
        evs = [
            {"type": "m.typing", "room_id": ROOM, "content": {"user_ids": [BOB]}},
            {"type": "com.example.unknown", "event_id": "$unknown1", "room_id": ROOM, "sender": BOB,
             "content": {"body": "!wallet"}},
            {"type": "m.room.message", "event_id": "$state1", "room_id": ROOM, "sender": BOB, "state_key": "",
             "content": {"msgtype": "m.text", "body": "!wallet"}},
            message(ROOM, BOB, "!wallet", msgtype="m.notice"),
            message(ROOM, BOB, "!wallet", relates_to={"rel_type": "m.replace", "event_id": "$x"}),
            message(ROOM, hs.bot, "!wallet"),
            old,
            message(ROOM, BOB, "!someoneelse do it"),
            "not an event",
            {"type": "m.room.message", "event_id": 7, "room_id": ROOM, "sender": BOB, "content": {"body": "!wallet"}},
        ]
        st, js, _ = hs.push(evs)
        tap.check("a transaction of events tally ignores: 200", st == 200 and js == {}, (st, js))
        probe = say(BOB, "!wallet")
        hs.reply_to(probe["event_id"], r"^Wallet ", since=mark)
        made = [ev["content"]["body"] for _, ev in hs.events[mark:]]
        tap.check("only the probe was answered", len(made) == 1, made)
        n = db.scalar("SELECT count(*) FROM matrix_events WHERE event_id = '%s'" % old["event_id"])
        tap.check("the old event was not recorded", n == "0", n)
        return True
    tap.run("unknown types, state, m.notice, edits, own echoes, old events: ignored", ignored)

    def hundred():
        mark = hs.mark()
        evs = [message(ROOM, "@u%03d:%s" % (i, SERVER), "!wallet") for i in range(100)]
        t0 = time.monotonic()
        st, js, _ = hs.push(evs)
        tap.check("100 events in one transaction: 200", st == 200, (st, js))
        tap.check("answered within 5 s (the record is one insert)", time.monotonic() - t0 < 5, time.monotonic() - t0)
        want = {e["event_id"] for e in evs}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = [ev["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] for _, ev in hs.events[mark:]
                   if "m.relates_to" in ev["content"]]
            if want <= set(got):
                break
            time.sleep(0.2)
        tap.check("all 100 answered", want <= set(got), len(want - set(got)))
        order = [g for g in got if g in want]
        tap.check("in the order they came", order == [e["event_id"] for e in evs], order[:5])
        n = db.scalar("SELECT count(*) FROM matrix_events WHERE received_ms > 0 AND sender LIKE '@u%%'")
        tap.check("100 events recorded", n == "100", n)
        return True
    tap.run("100 events at once", hundred)

    def limited():
        hs.fail_next(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 400})
        hs.fail_next(502, {"errcode": "M_UNKNOWN", "error": "bad gateway"})
        hs.fail_next(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 200})
        t0 = time.monotonic()
        ev, ans = ask(BOB, "!wallet", r"^Wallet ", timeout=30)
        took = time.monotonic() - t0
        txn = ans["txn_id"]
        tries = [a for a in hs.attempts if a[1] == txn]
        tap.check("the send was tried 4 times with one txnId (429, 502, 429, 200)",
                  [a[2] for a in tries] == [429, 502, 429, 200], tries)
        tap.check("retry_after_ms honoured (>= 0.6 s in all)", took >= 0.6, took)
        time.sleep(1)
        tap.check("posted exactly once", len(hs.replies(ev["event_id"])) == 1, hs.replies(ev["event_id"]))
        return True
    tap.run("429 with retry_after_ms, then 502, then success: posted exactly once", limited)

    def restart_replay():
        # The homeserver never saw the 200 (tallyd went away) and sends the
        # transaction again to a new tallyd process: the record says an
        # earlier process took it, so its events are submitted again, and the
        # engine's key (the event id) applies the purchase once; the answer
        # derives its txnId from the event and the text, so it is posted once.
        before = bought()
        ev = message(ROOM, BOB, "!buy %s" % sku)
        st, js, txn = hs.push([ev])
        first = hs.reply_to(ev["event_id"], r"receipt \d+")
        tap.check("tallyd stops", td.stop() == 0, td.log()[-1000:])
        td.start()
        st, js, _ = hs.push([ev], txn_id=txn)
        tap.check("the same txnId to a new tallyd: 200", st == 200 and js == {}, (st, js))
        probe = say(BOB, "!wallet")
        hs.reply_to(probe["event_id"], r"^Wallet ")
        time.sleep(1)
        tap.check("the purchase applied once", bought() == before + 1, (before, bought()))
        again = hs.replies(ev["event_id"])
        tap.check("its answer posted once (the same derived txnId)", len(again) == 1,
                  [(r["txn_id"], r["content"]["body"]) for r in again] + [first["txn_id"]])
        return True
    tap.run("a transaction sent again to a restarted tallyd applies once", restart_replay)

    def outbox_restart():
        # The homeserver is down (502) when the answer is ready; tallyd is
        # killed (SIGKILL) with it unposted. The next process finds it in the
        # outbox and posts it once the homeserver is back, with the same txnId.
        with hs.lock:
            n0 = len(hs.attempts)
        for _ in range(100):
            hs.fail_next(502, {"errcode": "M_UNKNOWN", "error": "bad gateway"})
        ev = say(BOB, "!wallet")
        deadline = time.monotonic() + 20
        q = ("SELECT count(*) FROM matrix_outbox o WHERE content LIKE '%%%s%%' AND NOT EXISTS "
             "(SELECT 1 FROM matrix_settled s WHERE s.txn_id = o.txn_id)" % ev["event_id"])
        while time.monotonic() < deadline and not (db.scalar(q) == "1" and len(hs.attempts) > n0):
            time.sleep(0.1)
        with hs.lock:
            failed = [a for a in hs.attempts[n0:] if a[2] == 502]
        tap.check("the answer met a 502 and waits in the outbox", failed and db.scalar(q) == "1", (failed, db.scalar(q)))
        td.kill()
        with hs.lock:
            hs.faults.clear()
        td.start()
        ans = hs.reply_to(ev["event_id"], r"^Wallet ", timeout=30)
        tap.check("posted by the next tallyd with the txnId of the first tries", ans["txn_id"] == failed[0][1],
                  (ans["txn_id"], failed[:1]))
        time.sleep(1)
        tap.check("posted exactly once", len(hs.replies(ev["event_id"])) == 1, hs.replies(ev["event_id"]))
        tap.check("and settled", db.scalar(q) == "0", db.scalar(q))
        return True
    tap.run("an unposted answer survives a SIGKILL of tallyd (the outbox)", outbox_restart)

    def crash_after_record():
        # tallyd dies after the record committed, before its 200 and before
        # the engine saw the command (a crash point of the test build). The
        # homeserver sends the transaction again to the next process: the
        # record names the earlier process, so the command is submitted and
        # applied, once.
        san = os.environ.get("TALLY_SAN_BUILD")
        binary = os.path.join(san, "tallyd") if san else None
        tap.check("the test build's tallyd (TALLY_SAN_BUILD) is there for the crash point",
                  binary and os.path.isfile(binary), binary)
        before = bought()
        td.stop()
        td.binary = binary
        os.environ["TALLYD_TEST_CRASH"] = "matrix-after-record"
        try:
            td.start()
        finally:
            del os.environ["TALLYD_TEST_CRASH"]
        ev = message(ROOM, BOB, "!buy %s" % sku)
        st, js, txn = hs.push([ev], timeout=10)
        tap.check("no answer: tallyd died before the 200", st == 0, (st, js))
        td.proc.wait(10)
        tap.check("it died at the crash point", td.proc.returncode == 9, td.log()[-500:])
        rec = db.scalar("SELECT count(*) FROM matrix_events WHERE event_id = '%s' AND txn_id = '%s'"
                        % (ev["event_id"], txn))
        tap.check("the event was recorded before the crash", rec == "1", rec)
        tap.check("and not applied", bought() == before, (before, bought()))
        td.start()
        st, js, _ = hs.push([ev], txn_id=txn)
        tap.check("the same transaction to the next tallyd: 200", st == 200 and js == {}, (st, js))
        hs.reply_to(ev["event_id"], r"receipt \d+")
        st, js, _ = hs.push([ev], txn_id=txn)
        time.sleep(1)
        tap.check("applied exactly once", bought() == before + 1, (before, bought()))
        rs = hs.replies(ev["event_id"])
        tap.check("answered once", len(rs) == 1, [r["content"]["body"] for r in rs])
        return True
    tap.run("tallyd killed between the record's commit and the 200: the retry applies once", crash_after_record)

    def invites_and_encryption():
        def member(room, sender):
            return {"type": "m.room.member", "event_id": new_event_id(), "room_id": room, "sender": sender,
                    "state_key": hs.bot, "content": {"membership": "invite"}}
        near, far = "!new:" + SERVER, "!far:evil.example"
        st, js, _ = hs.push([member(near, ADMIN), member(far, "@x:evil.example")])
        tap.check("invites: 200", st == 200, (st, js))
        deadline = time.monotonic() + 20
        while near not in hs.joins and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        tap.check("the bot joins a room of its server it is invited to", near in hs.joins, hs.joins)
        tap.check("and not a room of another server", far not in hs.joins, hs.joins)
        enc = "!enc:" + SERVER
        encrypted = [{"type": "m.room.encrypted", "event_id": new_event_id(), "room_id": enc, "sender": BOB,
                      "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA"}} for _ in range(3)]
        state = {"type": "m.room.encryption", "event_id": new_event_id(), "room_id": enc, "sender": ADMIN,
                 "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        mark = hs.mark()
        st, js, _ = hs.push([state] + encrypted)
        st2, js2, _ = hs.push(encrypted[:1] + [dict(encrypted[0], event_id=new_event_id())])
        tap.check("encrypted events: 200", st == 200 and st2 == 200, (st, js, st2, js2))
        _, told = hs.wait_event(lambda room, ev: room == enc, 20, mark)
        tap.check("the room is told plainly that tally cannot read it", "encrypted" in told["content"]["body"],
                  told["content"])
        time.sleep(1)
        n = len([1 for room, _ in hs.events[mark:] if room == enc])
        tap.check("once", n == 1, n)
        return True
    tap.run("invites accepted for the allowed server; encrypted rooms told once", invites_and_encryption)

    def private_only():
        ev, ans = ask(BOB, "!ship 1 Main Street", r"direct message")
        tap.check("the hint names the bot", hs.bot in ans["content"]["body"], ans["content"]["body"])
        return True
    tap.run("a private-only command in a room is refused with the DM hint", private_only)

    def quiz_lines():
        # An AS sees a room line after the room did (issue 14): tallyd refuses a
        # room !answer and !quiz start (room_lines.c) before the engine sees them.
        ask(BOB, "!answer Paris", r"^answer privately: ")
        ask(BOB, "!quiz start 30 Capital? | Paris", r"^start the quiz privately: ")
        return True
    tap.run("a quiz answer or start said in a Matrix room is refused: answer or start privately", quiz_lines)


def bad_configs(tap, db, reg, port):
    """tallyd refuses a Matrix config it cannot serve, saying why, before it listens."""
    import subprocess
    import tempfile
    build = os.environ.get("TALLY_BUILD", os.path.join(ic.ROOT, "build"))
    d = tempfile.mkdtemp(prefix="tallyd-mx-")
    sec = os.path.join(d, "secret")
    with open(sec, "w") as f:
        f.write("irc-secret-0123456789\n")
    base = ["listen_unix = %s" % os.path.join(d, "s.sock"), "state_dir = %s" % d, "dsn = %s" % db.dsn,
            "secret.irc = %s" % sec, "matrix_listen = 127.0.0.1:%d" % port]
    cases = [("no registration file", ["matrix_registration = %s" % os.path.join(d, "none.yaml"),
                                        "matrix_server_name = x"], "matrix_registration"),
             ("no server name", ["matrix_registration = %s" % reg], "matrix_server_name"),
             ("the engine's own network", ["matrix_registration = %s" % reg, "matrix_server_name = x",
                                           "matrix_network = irc"], "also the engine's network"),
             ("a homeserver URL neither http nor https", ["matrix_registration = %s" % reg, "matrix_server_name = x",
                                                           "matrix_homeserver = ftp://127.0.0.1:8448"],
              "must be http://HOST[:PORT] or https://HOST[:PORT]"),
             ("an https homeserver with a CA file that is not there",
              ["matrix_registration = %s" % reg, "matrix_server_name = x", "matrix_homeserver = https://127.0.0.1:8448",
               "matrix_homeserver_ca = %s" % os.path.join(d, "none.pem")], "matrix_homeserver_ca %s" % d)]
    for name, lines, want in cases:
        conf = os.path.join(d, "c.conf")
        with open(conf, "w") as f:
            f.write("\n".join(base + lines) + "\n")
        r = subprocess.run([os.path.join(build, "tallyd"), "--config", conf], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        tap.check("refused at start: %s" % name, r.returncode == 1 and want in r.stdout, (r.returncode, r.stdout[-500:]))
    subprocess.run(["rm", "-rf", d])


def main():
    tap = ic.Tap()
    hs = None
    try:
        with ic.TestDb("matrix") as db:
            port = free_port()
            reg = matrix_env.fresh_registration(tap, db.dsn, "matrix", port, SERVER)
            tap.check("mode 0600", os.stat(reg).st_mode & 0o777 == 0o600, oct(os.stat(reg).st_mode))
            with open(reg) as f:
                text = f.read()
            for key in ("id:", "url:", "as_token:", "hs_token:", "sender_localpart:", "rate_limited: false",
                        "namespaces:"):
                tap.check("the registration has %s" % key, key in text, text)
            as_token, hs_token = read_tokens(reg)
            rc2, out2 = ic.tally_cli(db.dsn, "matrix-registration", reg, "http://127.0.0.1:1", SERVER)
            tap.check("an existing registration is never overwritten", rc2 != 0 and read_tokens(reg) == (as_token, hs_token),
                      out2)
            bad_configs(tap, db, reg, port)
            hs = HomeserverDouble(as_token, hs_token, SERVER)
            hs.as_url = "http://127.0.0.1:%d" % port
            extra = matrix_env.as_keys(port, reg, hs.url, SERVER, matrix_admins=ADMIN)
            with TallydEnv(db.dsn, {"irc": "irc-secret-0123456789"}, extra=extra) as td:
                with matrix_env.log_on_failure(td):
                    scenario(tap, hs, db, td)
                time.sleep(0.5)
                rc, out = ic.tally_cli(db.dsn, "check")
                tap.check("tally check passes", rc == 0, out[-2000:])
                tap.check("tallyd stops cleanly", td.stop() == 0, td.log()[-2000:])
            os.unlink(reg)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if hs:
            hs.close()
    tap.exit()


if __name__ == "__main__":
    main()
