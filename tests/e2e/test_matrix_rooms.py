#!/usr/bin/python3
"""test_matrix_rooms.py — rooms as Matrix has them, against the homeserver
double (tests/e2e/matrix_double.py, written from the spec):

1. Power levels as roles: the AS reads m.room.power_levels (GET .../state/
   m.room.power_levels/ at the room's first command); members at or above
   state_default are hosts (EVENT START), at or above redact moderators
   (HIDE); a power_levels event in a transaction changes who may, from the
   next command on.
   State refused before the bot joined is read again after the join.
2. Attendance: joined members (joined_members at the first command) and
   m.room.member joins in transactions are the event's attendees.
3. Display names in public lines: a bridged user (@whatsapp_<number>) is
   named by display name in the room: her WALLET answer, the event's
   summary (Top supporters, Creators earned); one without a display name by
   the localpart with the digits hidden. No line in a room holds the number.
4. DMs: SHIP in a room is refused with a hint naming the DM; the bot makes
   the DM (createRoom is_direct, invite, trusted_private_chat, unencrypted),
   updates m.direct, says what the DM is for; SHIP in the DM is dispatched
   privately. A room the bot was invited to with is_direct, and a room of
   two members (the bot one), are DMs too. After a restart the DM is found
   again in m.direct (no second createRoom).
Own database e2e_matrixrooms_<pid>.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from matrix_double import HomeserverDouble, member, message, state  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402
import matrix_env  # noqa: E402

SERVER = "test.local"
ROOM = "!show:" + SERVER
ADMIN, CAROL, BOB, MOD = ("@%s:%s" % (n, SERVER) for n in ("root", "carol", "bob", "mod"))
ANA = "@whatsapp_15551234567:" + SERVER
TOM = "@telegram_4915112345678:" + SERVER  # no display name anywhere
NUMBERS = ("15551234567", "4915112345678")


def scenario(tap, hs, db, td):
    hs.set_room(ROOM, {hs.bot: "tally", ADMIN: "Root", CAROL: "Carol", BOB: "Bob", ANA: "Ana (WhatsApp)",
                       MOD: "Mo"},
                {"state_default": 50, "redact": 20, "users_default": 0, "users": {CAROL: 50, MOD: 20, hs.bot: 100}})

    def say(sender, body, room=ROOM):
        ev = message(room, sender, body)
        st, js, _ = hs.push([ev])
        if st != 200:
            raise AssertionError("transaction answered %s %r" % (st, js))
        return ev

    def ask(sender, body, regex, room=ROOM, timeout=20):
        ev = say(sender, body, room)
        return hs.reply_to(ev["event_id"], regex, timeout)["content"]["body"]

    def announced(regex, mark, room=ROOM, timeout=20):
        return hs.wait_event(lambda r, ev: r == room and "m.relates_to" not in ev["content"] and
                             re.search(regex, ev["content"].get("body", "")), timeout, mark)[1]["content"]["body"]

    def roles():
        body = ask(BOB, "!event start 5 Bob show", r"(?i)permission|starts")
        tap.check("power level 0 (< state_default 50): EVENT START refused", "permission" in body, body)
        tap.check("the refusal says how hosts are made on Matrix", "power level" in body, body)
        with hs.lock:
            gets = [g for g in hs.gets if "/state/m.room.power_levels" in g]
        tap.check("the AS read the room's m.room.power_levels", gets, hs.gets)
        mark = hs.mark()
        say(CAROL, "!event start 5 Carol show")
        body = announced(r'^Live event "Carol show" starts now', mark)
        tap.check("power level 50 (= state_default): a host, the event starts", body, body)
        body = ask(MOD, "!hide 999999", r".")
        tap.check("power level 20 (= redact): a moderator may HIDE", "permission" not in body, body)
        body = ask(BOB, "!hide 999999", r".")
        tap.check("power level 0: HIDE refused", "permission" in body, body)
        say(CAROL, "!event stop")
        # The room's levels change (a state event in a transaction): bob is
        # now a host, carol no longer.
        st, js, _ = hs.push([state(ROOM, ADMIN, "m.room.power_levels", "",
                                   {"state_default": 50, "redact": 20, "users": {BOB: 50, MOD: 20, hs.bot: 100}})])
        tap.check("a power_levels change: 200", st == 200, (st, js))
        body = ask(CAROL, "!event start 5 Again", r"(?i)permission|starts|running")
        tap.check("after the change carol is refused", "permission" in body, body)
        return True
    tap.run("power levels as roles: state_default hosts, redact moderators, changes followed", roles)

    def before_join():
        # A command in a room the bot is not in yet: the homeserver refuses
        # its state (403), so nobody is a host there; once the bot joins, the
        # state is read again.
        late = "!late:" + SERVER
        hs.set_room(late, {CAROL: "Carol", BOB: "Bob", ADMIN: "Root"}, {"users": {CAROL: 50}})
        body = ask(CAROL, "!event start 5 Late", r"(?i)permission|starts", room=late)
        tap.check("before the bot is in the room: no roles (its state is refused)", "permission" in body, body)
        st, js, _ = hs.push([member(late, hs.bot, "invite", sender=CAROL)])
        hs.wait_for(lambda: late in hs.joins)
        time.sleep(0.3)
        body = ask(CAROL, "!event start 5 Late", r"(?i)permission|starts|Event started", room=late)
        tap.check("after the join the state is read again: carol is a host", "permission" not in body, body)
        say(CAROL, "!event stop", room=late)
        return True
    tap.run("a room's state read before the bot joined is read again after", before_join)

    sku = "mx%x" % (os.getpid() & 0xFFF)

    def names_and_attendance():
        ask(ADMIN, "!tally role %s creator" % CAROL, r"is now a creator")
        ask(CAROL, "!item add %s 1 Matrix cap" % sku, r"added")
        mark = hs.mark()
        say(BOB, "!event start 5 Bob show")
        announced(r'^Live event "Bob show" starts now', mark)
        # Three people join while it runs (m.room.member in a transaction).
        joins = [member(ROOM, "@fan%d:%s" % (i, SERVER), displayname="Fan %d" % i) for i in range(3)]
        st, js, _ = hs.push(joins)
        tap.check("three joins: 200", st == 200, (st, js))
        deadline = time.monotonic() + 30
        while True:
            body = ask(ANA, "!wallet", r"^Wallet ")
            if "balance 0.00 " not in body or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        tap.check("a bridged user's WALLET in the room names her by display name", "Ana (WhatsApp)" in body, body)
        tap.check("and not by MXID (no phone number)", NUMBERS[0] not in body, body)
        body = ask(ANA, "!buy %s" % sku, r"reply: !confirm (\S+)")
        code = re.search(r"reply: !confirm (\S+)", body).group(1)
        ask(ANA, "!confirm %s" % code, r"receipt \d+")
        body = ask(TOM, "!wallet", r"^Wallet ")
        tap.check("no display name: the localpart with the digits hidden", "telegram_\u2026" in body and
                  NUMBERS[1] not in body, body)
        mark = hs.mark()
        say(BOB, "!event stop")
        body = announced(r"^Attendance: ", mark)
        n = int(re.search(r"Attendance: (\d+)", body).group(1))
        tap.check("attendance: the room's members and the three who joined (8)", n == 8, body)
        tap.check("the summary names the supporter by display name", "Ana (WhatsApp)" in body, body)
        tap.check("and the creator too", "Carol" in body and CAROL not in body, body)
        with hs.lock:
            public = [ev["content"] for r, ev in hs.events if r == ROOM]
        leaks = [c for c in public if any(num in c.get("body", "") + c.get("formatted_body", "") for num in NUMBERS)]
        tap.check("no line in the room holds a bridged user's number", not leaks, leaks)
        mxids = [c["body"] for c in public
                 if [x for x in re.findall(r"@[^\s:]+:[\w.-]+", c.get("body", "")) if x != hs.bot]]
        tap.check("nor anyone's MXID (\"Carol is now a creator\", not @carol:...)", not mxids, mxids)
        return True
    tap.run("display names in public lines; membership is attendance", names_and_attendance)

    def dms():
        body = ask(BOB, "!ship 1 Main Street", r"direct message")
        dm = hs.wait_for(lambda: hs.created and hs.created[0]["room_id"])
        c = hs.created[0]
        tap.check("SHIP in a room: refused with a hint to use the DM", "privately" in body, body)
        tap.check("the bot makes a DM: is_direct, the buyer invited, trusted_private_chat",
                  c.get("is_direct") is True and c.get("invite") == [BOB] and c.get("preset") == "trusted_private_chat",
                  c)
        tap.check("unencrypted (no m.room.encryption in initial_state)",
                  not [e for e in c.get("initial_state", []) if e.get("type") == "m.room.encryption"], c)
        direct = hs.wait_for(lambda: hs.account_data.get((hs.bot, "m.direct")))
        tap.check("m.direct account data lists it", direct == {BOB: [dm]}, direct)
        hello = hs.wait_event(lambda r, ev: r == dm, 20)[1]["content"]["body"]
        tap.check("the DM says what it is for", "private" in hello and "SHIP" in hello, hello)
        body = ask(BOB, "!ship 1 Main Street", r"direct message")
        tap.check("the next refusal names the DM's room", dm in body, body)
        tap.check("and makes no second DM", len(hs.created) == 1, hs.created)
        # The buyer joins the DM and sends SHIP there: dispatched privately.
        hs.rooms[dm]["members"][BOB] = "Bob"
        st, js, _ = hs.push([member(dm, BOB, displayname="Bob")])
        body = ask(BOB, "!ship 1 Main Street", r".", room=dm)
        tap.check("SHIP in the DM is not refused as public", "privately" not in body and "direct message" not in body,
                  body)
        body = ask(BOB, "!wallet", r"^Wallet ", room=dm)
        tap.check("every other command works in the DM (WALLET)", body.startswith("Wallet "), body)
        # A DM someone else made: invited with is_direct.
        dave, ddm = "@dave:" + SERVER, "!davedm:" + SERVER
        st, js, _ = hs.push([member(ddm, hs.bot, "invite", sender=dave, is_direct=True)])
        hs.wait_for(lambda: ddm in hs.joins)
        body = ask(dave, "!ship 1 Elm Street", r".", room=ddm)
        tap.check("a room the bot was invited to with is_direct is a DM", "privately" not in body, body)
        # A room of two members, the bot one.
        erin, pair = "@erin:" + SERVER, "!pair:" + SERVER
        hs.set_room(pair, {hs.bot: "tally", erin: "Erin"})
        body = ask(erin, "!delivery 1", r".", room=pair)
        tap.check("a room of two members (the bot one) is a DM", "privately" not in body, body)
        # After a restart the DM is found again in m.direct.
        tap.check("tallyd stops", td.stop() == 0, td.log()[-1000:])
        td.start()
        body = ask(BOB, "!ship 1 Main Street", r"direct message", timeout=30)
        tap.check("after a restart the refusal names the same DM (read from m.direct)", dm in body, body)
        tap.check("no new createRoom", len(hs.created) == 1, hs.created)
        return True
    tap.run("DMs: made when needed, marked m.direct, private commands work there", dms)


def main():
    tap = ic.Tap()
    hs = None
    try:
        with ic.TestDb("matrixrooms") as db:
            port = free_port()
            reg = matrix_env.fresh_registration(tap, db.dsn, "matrix-rooms", port, SERVER)
            as_token, hs_token = matrix_env.read_tokens(reg)
            hs = HomeserverDouble(as_token, hs_token, SERVER)
            hs.as_url = "http://127.0.0.1:%d" % port
            extra = matrix_env.as_keys(port, reg, hs.url, SERVER, matrix_admins=ADMIN)
            with TallydEnv(db.dsn, {"irc": "irc-secret-0123456789"}, extra=extra) as td:
                with matrix_env.log_on_failure(td):
                    scenario(tap, hs, db, td)
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
