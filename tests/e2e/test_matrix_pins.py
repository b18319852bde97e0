#!/usr/bin/python3
"""test_matrix_pins.py — power levels beyond state_default and redact, on
Matrix, against the homeserver double (tests/e2e/matrix_double.py, written
from the spec):

1. Redaction override: a room whose power levels set
   `events["m.room.redaction"]` above `redact` has no moderators below it
   (HIDE refused at the redact level, allowed at the override); the bot's
   own redaction of command lines (ROOM SET redact=on) is judged the same
   way (told why, nothing redacted); an m.room.power_levels event in a
   transaction that lowers the override makes both work.
2. Highlights pinned (highlight_topic=1: the engine's TOPIC effect): the
   line is posted, then its event id is added to the room's
   m.room.pinned_events (CS "PUT .../state/m.room.pinned_events/"), keeping
   the pins the room had; HIGHLIGHT REMOVE takes ours out again, the others
   stay. In a room where the bot's level is below
   events["m.room.pinned_events"] (or state_default) the line is posted
   plainly, no state PUT, and tallyd's log says why.
3. Lines for a DM being made are queued until the DM exists, in order, and
   kept in the outbox: a tallyd stopped while the DM's createRoom cannot be
   answered delivers them after its restart, once.
4. Keep-alive: a room's answers share one connection to the homeserver; one
   the homeserver closes after each answer costs a new connection, no answer.
Then `tally check`. Own database e2e_matrix_pins_<pid>.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from matrix_double import message, state as state_event  # noqa: E402
import matrix_env  # noqa: E402

SERVER = "test.local"
RED, PIN, NOPIN, DMQ = ("!%s:%s" % (n, SERVER) for n in ("red", "pin", "nopin", "dmq"))
ROOT, HOST, MOD, SENIOR, FAN = ("@%s:%s" % (n, SERVER) for n in ("root", "host", "mod", "senior", "fan"))
BOT = "@tally:" + SERVER


def scenario(tap, hs, db, td):
    people = {BOT: "tally", ROOT: "Root", HOST: "Hana", MOD: "Mo", SENIOR: "Sen", FAN: "Fan"}

    def say(sender, body, room, **kw):
        ev = message(room, sender, body, **kw)
        st, js, _ = hs.push([ev])
        if st != 200:
            raise AssertionError("transaction answered %s %r" % (st, js))
        return ev

    def ask(sender, body, regex, room, timeout=20):
        ev = say(sender, body, room)
        text = hs.reply_to(ev["event_id"], r".", timeout)["content"]["body"]
        if not re.search(regex, text):
            raise AssertionError("%s -> %r (wanted /%s/)" % (body, text, regex))
        return text

    def in_room(room, regex, mark, timeout=20):
        return hs.wait_event(lambda r, ev: r == room and re.search(regex, ev["content"].get("body", "")),
                             timeout, mark)[1]

    def redaction_override():
        pl = {"state_default": 50, "redact": 20, "users_default": 0, "events": {"m.room.redaction": 60},
              "users": {HOST: 50, MOD: 20, SENIOR: 60, BOT: 50}}
        hs.set_room(RED, people, pl)
        text = ask(MOD, "!hide 999999", r".", RED)
        tap.check("events[m.room.redaction] 60 above redact 20: level 20 is no moderator (HIDE refused)",
                  "permission" in text, text)
        text = ask(SENIOR, "!hide 999999", r".", RED)
        tap.check("level 60 (the override) is a moderator", "permission" not in text, text)
        ask(HOST, "!room set redact=on", r"^Room settings saved", RED)
        mark = hs.mark()
        ev = say(FAN, "!wallet", RED)
        hs.reply_to(ev["event_id"], r"^Wallet ")
        told = in_room(RED, r"cannot remove command lines", mark)["content"]["body"]
        tap.check("the bot at 50 may not redact there: told, with the level the override needs",
                  re.search(r"\(50\).*\(60\b", told), told)
        time.sleep(0.3)
        with hs.lock:
            tried = [x for x in hs.redactions if x[0] == RED]
        tap.check("and nothing redacted", not tried, tried)
        # The room lowers the override (a power_levels event in a transaction).
        low = dict(pl, events={"m.room.redaction": 0})
        hs.set_room(RED, people, low)
        st, js, _ = hs.push([state_event(RED, HOST, "m.room.power_levels", "", low)])
        tap.check("a power_levels event lowering the override: 200", st == 200, (st, js))
        text = ask(MOD, "!hide 999999", r".", RED)
        tap.check("then level 20 (redact) is a moderator again", "permission" not in text, text)
        ev = say(FAN, "!wallet", RED)
        hs.reply_to(ev["event_id"], r"^Wallet ")
        got = hs.wait_for(lambda: [x for x in hs.redactions if x[1] == ev["event_id"]])
        tap.check("and the bot's redaction of a command line is made", got and got[0][0] == RED, got)
        ask(HOST, "!room set redact=off", r"^Room settings saved", RED)
        return True
    tap.run("events[m.room.redaction] decides moderators and the bot's redactions", redaction_override)

    state = {}

    def buy_highlight(buyer, room, words):
        deadline = time.monotonic() + 30
        while "balance 0.00 " in ask(buyer, "!wallet", r"^Wallet ", room):  # the welcome grant commits
            if time.monotonic() > deadline:
                raise AssertionError("no welcome grant for %s" % buyer)
            time.sleep(0.2)
        if not state.get("first"):  # a first purchase is a BUY with its CONFIRM (the consent)
            sku = "pn%x" % (os.getpid() & 0xFFF)
            ask(HOST, "!item add %s 1 Pin mug" % sku, r"added", room)
            text = ask(buyer, "!buy " + sku, r"!confirm|Bought", room)
            m = re.search(r"!confirm (\S+)", text)
            if m:
                ask(buyer, "!confirm " + m.group(1), r"Bought", room)
            state["first"] = True
        text = ask(buyer, "!highlight gold " + words, r"!confirm|Bought", room)
        m = re.search(r"!confirm (\S+)", text)
        if m:
            text = ask(buyer, "!confirm " + m.group(1), r"Bought", room)
        return text

    def pinned(room):
        with hs.lock:
            return [p for p in hs.state_puts if p[0] == room and p[1] == "m.room.pinned_events"]

    def pins():
        pl = {"state_default": 50, "redact": 20, "users_default": 0, "events": {"m.room.pinned_events": 50},
              "users": {HOST: 50, MOD: 20, BOT: 50}}
        hs.set_room(PIN, people, pl)
        with hs.lock:
            hs.rooms[PIN]["state"][("m.room.pinned_events", "")] = {"pinned": ["$theirs"]}
        for who in (HOST, SENIOR):
            ask(ROOT, "!tally role %s creator" % who, r"is now a creator", PIN)
        mark = hs.mark()
        say(HOST, "!event start 30 Pin show", PIN)
        in_room(PIN, r'^Live event "Pin show" starts now', mark)
        ask(HOST, "!event tier gold 1 60", r"^Highlight tier priced", PIN)
        text = buy_highlight(FAN, PIN, "Hello pins")
        tap.check("a highlight bought in the room", "receipt" in text, text)
        line = in_room(PIN, r"^HIGHLIGHT from Fan: Hello pins$", mark)
        puts = hs.wait_for(lambda: pinned(PIN), timeout=10)
        tap.check("its line's event id is added to m.room.pinned_events (PUT .../state/m.room.pinned_events/)",
                  puts[0][2] == "" and puts[0][4] == 200 and puts[0][3] == {"pinned": ["$theirs", line["event_id"]]},
                  puts)
        with hs.lock:
            kept = hs.rooms[PIN]["state"][("m.room.pinned_events", "")]
        tap.check("the room's own pin is kept", kept["pinned"][0] == "$theirs", kept)
        ask(MOD, "!highlight remove", r".", PIN)
        puts = hs.wait_for(lambda: (lambda p: p if len(p) >= 2 else None)(pinned(PIN)), timeout=10)
        tap.check("HIGHLIGHT REMOVE takes ours out, the room's own pin stays",
                  puts[1][3] == {"pinned": ["$theirs"]} and puts[1][4] == 200, puts)
        say(HOST, "!event stop", PIN)
        # A room where the bot may not send m.room.pinned_events (50 < 75).
        hs.set_room(NOPIN, people, dict(pl, events={"m.room.pinned_events": 75}, users={SENIOR: 50, BOT: 50}))
        mark = hs.mark()
        say(SENIOR, "!event start 30 Plain show", NOPIN)
        in_room(NOPIN, r'^Live event "Plain show" starts now', mark)
        ask(SENIOR, "!event tier gold 1 60", r"^Highlight tier priced", NOPIN)
        buy_highlight(FAN, NOPIN, "Hello plain")
        line = in_room(NOPIN, r"^HIGHLIGHT from Fan: Hello plain$", mark)
        tap.check("where the bot's level is below events[m.room.pinned_events]: the line is posted plainly",
                  line["content"].get("msgtype") == "m.notice", line)
        time.sleep(0.5)
        tap.check("and no state PUT there", not pinned(NOPIN), pinned(NOPIN))
        log = td.log()
        tap.check("tallyd's log says why", re.search(r"highlight in %s posted plainly, not pinned: .*\(50\).*\(75"
                                                       % re.escape(NOPIN), log), log[-1500:])
        say(SENIOR, "!event stop", NOPIN)
        return True
    tap.run("highlights pinned with m.room.pinned_events where the bot's level allows", pins)

    def dm_lines_durable():
        hs.set_room(DMQ, people, {"state_default": 50, "redact": 20, "users_default": 0,
                                  "users": {HOST: 50, MOD: 20, BOT: 50}})
        ask(FAN, "!wallet", r"^Wallet ", DMQ)  # the room's members and levels are read
        with hs.lock:
            had = [c for c in hs.created if set(c.get("invite") or []) & {HOST, MOD}]
        tap.check("neither moderator has a DM yet", not had, had)
        hs.create_fail = 502
        mark = hs.mark()
        ask(FAN, "!tip %s 1 quiet words" % HOST, r"Tipped 1\.00 credits", DMQ)
        hs.wait_for(lambda: hs.create_attempts >= 2, timeout=10)  # both DMs asked for, refused
        tap.check("tallyd stops while the DMs cannot be made", td.stop() == 0, td.log()[-1500:])
        rows = db.query("SELECT room_id FROM matrix_outbox o WHERE room_id LIKE '@%' AND NOT EXISTS"
                        " (SELECT 1 FROM matrix_settled s WHERE s.txn_id = o.txn_id) ORDER BY id")
        tap.check("the two moderators' lines wait in the outbox under their MXIDs",
                  sorted(r[0] for r in rows) == sorted([HOST, MOD]), rows)
        hs.create_fail = 0
        td.start()
        dms = hs.wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
            {c["invite"][0]: c["room_id"] for c in hs.created if c.get("invite") in ([HOST], [MOD])}), timeout=30)
        for who in (MOD, HOST):
            line = in_room(dms[who], r"says: quiet words", mark, timeout=20)
            with hs.lock:
                mine = [e for r, e in hs.events[mark:] if r == dms[who]]
            tap.check("after the restart %s's DM is made and gets the line, after the DM's first line" % who,
                      mine and "direct message" in mine[0]["content"]["body"] and line in mine, [e["content"]["body"][:40] for e in mine])
        time.sleep(1)
        with hs.lock:
            lines = [e for r, e in hs.events[mark:] if "says: quiet words" in e["content"].get("body", "")]
            made = [c for c in hs.created if set(c.get("invite") or []) & {HOST, MOD}]
            public = [e for r, e in hs.events[mark:] if r == DMQ and "quiet words" in e["content"].get("body", "")]
        tap.check("each line once, one DM each, none in the room", len(lines) == 2 and len(made) == 2 and not public,
                  (len(lines), made, public))
        rows = db.query("SELECT count(*) FROM matrix_outbox o WHERE room_id LIKE '@%' AND NOT EXISTS"
                        " (SELECT 1 FROM matrix_settled s WHERE s.txn_id = o.txn_id AND s.outcome = 1)")
        tap.check("and settled in the outbox as posted", rows == [["0"]], rows)
        return True
    tap.run("lines for DMs being made wait for them, in the outbox across a restart", dm_lines_durable)

    def keep_alive():
        ask(FAN, "!wallet", r"^Wallet ", RED)
        with hs.lock:
            before = hs.connections
        for _ in range(20):
            ask(FAN, "!wallet", r"^Wallet ", RED)
        with hs.lock:
            used = hs.connections - before
        tap.check("20 answers in one room go over the room's kept connection (%d opened)" % used, used <= 2, used)
        hs.drop_idle = True
        try:
            for _ in range(5):
                ask(FAN, "!wallet", r"^Wallet ", RED, timeout=10)
            with hs.lock:
                used = hs.connections - before
            tap.check("a homeserver that closes kept connections: each answer still arrives, on a new one",
                      used >= 4, used)  # the first went on the connection kept from before
        finally:
            hs.drop_idle = False
        hs.chunked = True
        try:
            with hs.lock:
                before = hs.connections
            evs = [ask(FAN, "!wallet", r"^Wallet ", RED, timeout=10) for _ in range(5)]
            with hs.lock:
                used = hs.connections - before
            # The event ids the AS read from chunked answers: a pin needs one.
            tap.check("chunked answers are read, the connection kept across them (%d opened)" % used,
                      len(evs) == 5 and used <= 1, used)
        finally:
            hs.chunked = False
        return True
    tap.run("keep-alive to the homeserver: a connection per room queue", keep_alive)


def main():
    tap = matrix_env.tallyd_tap()
    try:
        matrix_env.run_script(tap, "matrix-pins", SERVER, scenario, matrix_admins=ROOT, highlight_topic="1",
                              tip_message_hold="30")
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
