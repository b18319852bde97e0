#!/usr/bin/python3
"""test_matrix_settings.py — a room's settings (ROOM SET, stored in the
catalog: sql/016) as tallyd's Application Service applies them, against the
homeserver double (tests/e2e/matrix_double.py, written from the spec):

1. ROOM shows the defaults; ROOM SET is for hosts only; a bad value is
   refused with its name.
2. reply=thread: answers carry m.relates_to rel_type m.thread (CS
   "Threading") on the command, or on the thread's root when the command was
   said in a thread, with the m.in_reply_to fallback.
3. reply=dm: answers go to the asker's DM, made when missing (createRoom),
   the answer waiting for it and following its first line; nothing in the room.
4. redact=on: the command line is redacted (CS "Redactions", PUT
   .../redact/{eventId}/{txnId}) when the bot's power level allows; where it
   does not, the room is told once, and nothing is redacted.
5. host_level=N overrides state_default: a member at N is a host.
6. Settings survive a restart of tallyd (read back from the catalog).
7. Held tip messages (MODERATORS) go to each moderator's DM (power level >=
   redact), never the room.
8. A room upgrade (m.room.tombstone, CS "Room Upgrades"): the bot joins the
   replacement, the room's settings and its running event go there, also
   after a restart.
9. An encrypted room is told plainly the bot cannot read it; a bridged-style
   user (@whatsapp_..., body only, no formatted_body) buys.
Own database e2e_matrixsettings_<pid>.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from matrix_double import HomeserverDouble, message, state  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402
import matrix_env  # noqa: E402

SERVER = "test.local"
ROOM, LOW, OLD, NEW, ENC = ("!%s:%s" % (n, SERVER) for n in ("set", "low", "old", "new", "enc"))
ADMIN, CAROL, BOB, MOD = ("@%s:%s" % (n, SERVER) for n in ("root", "carol", "bob", "mod"))
ANA = "@whatsapp_15551234567:" + SERVER
LEVELS = {"state_default": 50, "redact": 20, "users_default": 0, "users": {CAROL: 50, MOD: 20}}


def levels(bot_level, **more):
    pl = dict(LEVELS, **more)
    pl["users"] = dict(pl["users"])
    pl["users"]["@tally:" + SERVER] = bot_level
    return pl


def scenario(tap, hs, db, td):
    people = {hs.bot: "tally", ADMIN: "Root", CAROL: "Carol", BOB: "Bob", MOD: "Mo", ANA: "Ana (WhatsApp)"}
    hs.set_room(ROOM, people, levels(100))
    hs.set_room(LOW, people, levels(0, redact=50))

    def say(sender, body, room=ROOM, **kw):
        ev = message(room, sender, body, **kw)
        st, js, _ = hs.push([ev])
        if st != 200:
            raise AssertionError("transaction answered %s %r" % (st, js))
        return ev

    def ask(sender, body, regex, room=ROOM, timeout=20, **kw):
        ev = say(sender, body, room, **kw)
        return hs.reply_to(ev["event_id"], regex, timeout)["content"]

    def in_room(room, regex, mark, timeout=20):
        return hs.wait_event(lambda r, ev: r == room and re.search(regex, ev["content"].get("body", "")),
                             timeout, mark)[1]

    def settings():
        body = ask(BOB, "!room", r"^Room settings")["body"]
        tap.check("ROOM shows the defaults", "reply=room redact=off host_level=0 (the defaults)" in body, body)
        body = ask(BOB, "!room set reply=thread", r".")["body"]
        tap.check("ROOM SET by a member below state_default: refused", "permission" in body, body)
        body = ask(CAROL, "!room set reply=loud", r".")["body"]
        tap.check("a bad value is refused with its name", "unknown room setting" in body and "reply=loud" in body, body)
        body = ask(CAROL, "!room set reply=thread", r"^Room settings saved")["body"]
        tap.check("ROOM SET by a host: saved once committed", "reply=thread redact=off host_level=0" in body, body)
        rows = db.query("SELECT reply, redact, host_level, room FROM room_settings")
        tap.check("stored in the catalog (room_settings)", rows == [["1", "f", "0", ROOM]], rows)
        return True
    tap.run("ROOM, ROOM SET: hosts only, values checked, stored", settings)

    def thread():
        ev = say(BOB, "!wallet")
        c = hs.reply_to(ev["event_id"], r"^Wallet ")["content"]
        rel = c.get("m.relates_to", {})
        tap.check("reply=thread: the answer is in a thread on the command",
                  rel.get("rel_type") == "m.thread" and rel.get("event_id") == ev["event_id"], c)
        tap.check("with the m.in_reply_to fallback (is_falling_back)",
                  rel.get("m.in_reply_to", {}).get("event_id") == ev["event_id"] and rel.get("is_falling_back") is True,
                  rel)
        root = "$root" + ev["event_id"][1:20]
        ev2 = say(BOB, "!wallet", relates_to={"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                                               "m.in_reply_to": {"event_id": root}})
        c = hs.reply_to(ev2["event_id"], r"^Wallet ")["content"]
        rel = c.get("m.relates_to", {})
        tap.check("a command said in a thread is answered in that thread (its root)",
                  rel.get("rel_type") == "m.thread" and rel.get("event_id") == root and
                  rel.get("is_falling_back") is False, rel)
        return True
    tap.run("reply=thread: m.relates_to m.thread", thread)

    def dm():
        mark = hs.mark()
        say(CAROL, "!room set reply=dm")
        # Its own answer follows the new setting: the host's DM.
        cdm = hs.wait_for(lambda: [c["room_id"] for c in hs.created if c.get("invite") == [CAROL]])[0]
        body = in_room(cdm, r"^Room settings saved", mark)["content"]["body"]
        tap.check("ROOM SET reply=dm is itself answered in the host's DM", "reply=dm" in body, body)
        mark = hs.mark()
        ev = say(BOB, "!wallet")
        made = hs.wait_for(lambda: [c for c in hs.created if c.get("invite") == [BOB]])
        room = made[0]["room_id"]
        hello = in_room(room, r"direct message", mark)
        ans = in_room(room, r"^Wallet ", mark)
        tap.check("reply=dm: the asker's DM is made (createRoom is_direct, unencrypted)",
                  made[0].get("is_direct") is True and not made[0].get("initial_state"), made)
        with hs.lock:
            order = [e["content"]["body"][:20] for r, e in hs.events[mark:] if r == room]
            here = [e for r, e in hs.events[mark:] if r == ROOM and
                    e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == ev["event_id"]]
        tap.check("the answer waited for the DM and follows its first line",
                  hs.events.index((room, hello)) < hs.events.index((room, ans)), order)
        tap.check("the answer is in the DM, with the MXID (its owner reads it)", BOB in ans["content"]["body"],
                  ans["content"])
        tap.check("nothing answered in the room", not here, here)
        mark = hs.mark()
        say(BOB, "!wallet")
        in_room(room, r"^Wallet ", mark)
        tap.check("the next answer goes to the same DM (no second createRoom)",
                  len([c for c in hs.created if c.get("invite") == [BOB]]) == 1, hs.created)
        return True
    tap.run("reply=dm: answers in the asker's DM, made when missing", dm)

    def redact():
        ask(CAROL, "!room set reply=room redact=on", r"^Room settings saved")
        ev = say(BOB, "!wallet")
        hs.reply_to(ev["event_id"], r"^Wallet ")
        got = hs.wait_for(lambda: [x for x in hs.redactions if x[1] == ev["event_id"]])
        tap.check("redact=on: the command line is redacted (PUT .../redact/{eventId}/{txnId})",
                  got and got[0][0] == ROOM, got)
        # A room where the bot's level (0) is below redact (50).
        ask(CAROL, "!room set redact=on", r"^Room settings saved", room=LOW)
        mark = hs.mark()
        ev1 = say(BOB, "!wallet", room=LOW)
        hs.reply_to(ev1["event_id"], r"^Wallet ")
        told = in_room(LOW, r"cannot remove command lines", mark)["content"]["body"]
        tap.check("a room where the bot may not: told why, with the levels", "(0)" in told and "(50)" in told, told)
        ev2 = say(BOB, "!wallet", room=LOW)
        hs.reply_to(ev2["event_id"], r"^Wallet ")
        time.sleep(0.5)
        with hs.lock:
            again = [e for r, e in hs.events[mark:] if r == LOW and "cannot remove" in e["content"].get("body", "")]
            tried = [x for x in hs.redactions if x[0] == LOW]
        tap.check("told once, and nothing redacted there", len(again) == 1 and not tried, (again, tried))
        return True
    tap.run("redact=on: command lines redacted where the bot's level allows", redact)

    def host_level():
        body = ask(MOD, "!event start 5 Mo show", r"(?i)permission|starts")["body"]
        tap.check("power level 20 < state_default: not a host", "permission" in body, body)
        ask(CAROL, "!room set host_level=20", r"^Room settings saved")
        mark = hs.mark()
        say(MOD, "!event start 5 Mo show")
        body = in_room(ROOM, r'^Live event "Mo show" starts now', mark)["content"]["body"]
        tap.check("host_level=20: a member at 20 is a host (the event starts)", body, body)
        say(MOD, "!event stop")
        body = ask(CAROL, "!room set host_level=0", r"^Room settings saved")["body"]
        tap.check("host_level=0: back to state_default", "host_level=0" in body, body)
        return True
    tap.run("host_level=N overrides state_default", host_level)

    def restart():
        ask(CAROL, "!room set reply=thread redact=on", r"^Room settings saved")
        tap.check("tallyd stops", td.stop() == 0, td.log()[-1000:])
        td.start()
        ev = None
        deadline = time.monotonic() + 30
        while ev is None:
            ev = say(BOB, "!wallet")
            try:
                c = hs.reply_to(ev["event_id"], r"^Wallet ", timeout=5)["content"]
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                ev = None
        rel = c.get("m.relates_to", {})
        tap.check("after a restart the room's settings hold: threaded",
                  rel.get("rel_type") == "m.thread" and rel.get("event_id") == ev["event_id"], c)
        got = hs.wait_for(lambda: [x for x in hs.redactions if x[1] == ev["event_id"]])
        tap.check("and redacted", got, got)
        body = ask(BOB, "!room", r"^Room settings")["body"]
        tap.check("ROOM shows them", "reply=thread redact=on host_level=0." in body, body)
        ask(CAROL, "!room set reply=room redact=off", r"^Room settings saved")
        return True
    tap.run("settings survive a restart of tallyd", restart)

    def moderators():
        deadline = time.monotonic() + 30
        while "balance 0.00 " in ask(ANA, "!wallet", r"^Wallet ")["body"] and time.monotonic() < deadline:
            time.sleep(0.3)  # the welcome grant commits
        mark = hs.mark()
        ev = say(ANA, "!tip %s 1 rude words" % CAROL)
        hs.reply_to(ev["event_id"], r"^Tipped ")
        in_room(ROOM, r"^Thank you .* Their message follows", mark)
        dms = hs.wait_for(lambda: (lambda d: d if MOD in d and CAROL in d else None)(
            {c["invite"][0]: c["room_id"] for c in hs.created if c.get("invite") in ([MOD], [CAROL])}))
        line = in_room(dms[MOD], r"rude words", mark)["content"]
        tap.check("the held tip message goes to a moderator's DM (level 20 = redact)",
                  "HIDE" in line["body"] and ROOM in line["body"], line)
        line2 = in_room(dms[CAROL], r"rude words", mark)["content"]
        tap.check("and to every moderator (a host at 50 too), the same line", line2["body"] == line["body"], line2)
        with hs.lock:
            public = [e for r, e in hs.events[mark:] if r == ROOM and "rude words" in e["content"].get("body", "")]
            bobs = [c for c in hs.created if c.get("invite") == [BOB]]
            bob_dm = bobs[0]["room_id"] if bobs else None
            to_bob = [e for r, e in hs.events[mark:] if r == bob_dm and "rude words" in e["content"].get("body", "")]
        tap.check("never the room (before the hold ends), nor a member's DM", not public and not to_bob,
                  (public, to_bob))
        tap.check("no phone number in the moderators' line", "15551234567" not in line["body"], line)
        return True
    tap.run("held tip messages go to the moderators by DM", moderators)

    def tombstone():
        hs.set_room(OLD, people, levels(100))
        hs.set_room(NEW, {CAROL: "Carol", BOB: "Bob", MOD: "Mo"}, levels(100))
        ask(CAROL, "!room set reply=thread", r"^Room settings saved", room=OLD)
        mark = hs.mark()
        say(CAROL, "!event start 30 Upgrade show", room=OLD)
        in_room(OLD, r'^Live event "Upgrade show" starts now', mark)
        mark = hs.mark()
        ts = state(OLD, CAROL, "m.room.tombstone", "", {"body": "This room has been replaced",
                                                        "replacement_room": NEW})
        st, js, _ = hs.push([ts])
        tap.check("a tombstone: 200", st == 200, (st, js))
        joined = hs.wait_for(lambda: [r for r in hs.joins if r == NEW])
        tap.check("the bot joins the replacement room (CS \"Joining rooms\")", joined == [NEW], hs.joins)
        body = hs.reply_to(ts["event_id"], r"moved to")["content"]["body"]
        tap.check("the old room is told where it went", NEW in body and "reply=thread" in body, body)
        ev = say(BOB, "!wallet", room=NEW)
        c = hs.reply_to(ev["event_id"], r"^Wallet ")["content"]
        tap.check("the settings came along (threaded in the new room)",
                  c.get("m.relates_to", {}).get("rel_type") == "m.thread", c)
        rows = db.query("SELECT from_room, to_room FROM room_moves")
        tap.check("the move is stored (room_moves)", rows == [[OLD, NEW]], rows)
        tap.check("tallyd stops", td.stop() == 0, td.log()[-1000:])
        td.start()
        deadline = time.monotonic() + 30
        while True:
            say(CAROL, "!event stop", room=NEW)
            try:
                ended = in_room(NEW, r'^Event "Upgrade show" ended', mark, timeout=5)["content"]["body"]
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        tap.check("after a restart the running event is in the new room: it ends there", ended, ended)
        return True
    tap.run("room upgrades: the replacement joined, settings and event carried over", tombstone)

    def encrypted_and_bridged():
        hs.set_room(ENC, people, levels(100))
        mark = hs.mark()
        st, js, _ = hs.push([state(ENC, CAROL, "m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2"})])
        body = in_room(ENC, r"cannot read", mark)["content"]["body"]
        tap.check("an encrypted room is told plainly the bot cannot read it", "encrypted" in body, body)
        sku = "br%x" % (os.getpid() & 0xFFF)
        ask(ADMIN, "!tally role %s creator" % CAROL, r"is now a creator")
        ask(CAROL, "!item add %s 1 Bridge mug" % sku, r"added")
        ev = message(ROOM, ANA, "!buy %s" % sku)
        tap.check("a bridged-style message: body only, no formatted_body",
                  "formatted_body" not in ev["content"] and "format" not in ev["content"], ev["content"])
        hs.push([ev])
        body = hs.reply_to(ev["event_id"], r"!confirm (\S+)|Bought")["content"]["body"]
        m = re.search(r"!confirm (\S+)", body)
        if m:
            body = ask(ANA, "!confirm %s" % m.group(1), r"receipt \d+")["body"]
        tap.check("the bridged user buys (a receipt)", re.search(r"Bought .*receipt \d+", body), body)
        tap.check("named by display name, never the number", "15551234567" not in body, body)
        return True
    tap.run("encrypted rooms told; a bridged user (body only) buys", encrypted_and_bridged)


def main():
    tap = ic.Tap()
    hs = None
    try:
        with ic.TestDb("matrixsettings") as db:
            port = free_port()
            reg = matrix_env.fresh_registration(tap, db.dsn, "matrix-settings", port, SERVER)
            as_token, hs_token = matrix_env.read_tokens(reg)
            hs = HomeserverDouble(as_token, hs_token, SERVER)
            hs.as_url = "http://127.0.0.1:%d" % port
            extra = matrix_env.as_keys(port, reg, hs.url, SERVER, matrix_admins=ADMIN, tip_message_hold="30")
            with TallydEnv(db.dsn, {"irc": "irc-secret-0123456789"}, extra=extra) as td:
                with matrix_env.log_on_failure(td):
                    scenario(tap, hs, db, td)
                tap.check("tallyd stops cleanly", td.stop() == 0, td.log()[-2000:])
                rc, out = ic.tally_cli(db.dsn, "check")
                tap.check("tally check passes (the room facts beside the ledger)", rc == 0, out)
            os.unlink(reg)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if hs:
            hs.close()
    tap.exit()


if __name__ == "__main__":
    main()
