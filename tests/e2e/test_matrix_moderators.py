#!/usr/bin/python3
"""test_matrix_moderators.py — what only a room's moderators may see, on
Matrix, against the homeserver double (tests/e2e/matrix_double.py):

1. A DM the bot is invited to with is_direct is written to the bot's
   m.direct under the inviter (CS "Direct Messaging": the client keeps
   m.direct), so a refusal's hint names it and no second DM is made.
2. A tip with a message in a room: the room hears the thanks, never the
   held message's text; the moderator with a DM (power level >= the room's
   redact) gets "[<room>, moderators] Tip N ... says: ..." there; a
   moderator without a DM gets one made (createRoom) and the next line
   there; a member below redact gets nothing.
3. A room the bot was invited to without is_direct is a room even while its
   host is alone there with the bot (the two-member rule does not apply):
   the host's DROP CREATE is a room's, announced there.
4. matrix_grant_ids: an admin listed there may TALLY GRANT; an admin not
   listed is refused with the grant hint.
Then `tally check`. Own database e2e_matrix_mods_<pid>.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from matrix_double import HomeserverDouble, member, message  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402
import matrix_env  # noqa: E402

SERVER = "test.local"
ROOM, SOLO = "!mods:" + SERVER, "!solo:" + SERVER
ROOT, GRANTER = "@root:" + SERVER, "@granter:" + SERVER
HOST, MOD, FAN, TIPPER = ("@%s:%s" % (n, SERVER) for n in ("host", "mod", "fan", "tipper"))
HOLD_S = 2


def scenario(tap, hs, db, td):
    def push(events):
        st, js, _ = hs.push(events)
        if st != 200:
            raise AssertionError("transaction answered %s %r" % (st, js))

    def ask(sender, body, regex, room=ROOM, timeout=20):
        ev = message(room, sender, body)
        push([ev])
        text = hs.reply_to(ev["event_id"], r".", timeout)["content"]["body"]
        if not re.search(regex, text):
            raise AssertionError("%s -> %r (wanted /%s/)" % (body, text, regex))
        return text

    def bodies(room, since):
        with hs.lock:
            return [ev["content"].get("body", "") for r, ev in hs.events[since:] if r == room]

    hs.set_room(ROOM, {}, {"state_default": 50, "redact": 20, "users_default": 0,
                           "users": {HOST: 50, MOD: 20, hs.bot: 100}})
    push([member(ROOM, hs.bot, "invite", sender=HOST)])
    hs.wait_for(lambda: ROOM in hs.joins)
    for who, name in ((HOST, "Hana"), (MOD, "Mo"), (FAN, "Fan"), (TIPPER, "Tia")):
        with hs.lock:
            hs.rooms[ROOM]["members"][who] = name
        push([member(ROOM, who, displayname=name)])
    dm = "!moddm:" + SERVER

    def direct():
        hs.set_room(dm, {MOD: "Mo"})
        push([member(dm, hs.bot, "invite", sender=MOD, is_direct=True)])
        hs.wait_for(lambda: dm in hs.joins)
        got = hs.wait_for(lambda: (hs.account_data.get((hs.bot, "m.direct")) or {}).get(MOD), timeout=10)
        tap.check("the is_direct invite is in the bot's m.direct under the inviter", dm in got, got)
        before = len(hs.created)
        text = ask(MOD, "!ship 1 Elm Street", r"privately")
        tap.check("a refusal's hint names that DM", dm in text, text)
        time.sleep(0.5)
        tap.check("and no second DM is made", len(hs.created) == before, hs.created[before:])
        return True
    tap.run("an is_direct invite: the bot's m.direct names the DM", direct)

    def held_tip():
        ask(HOST, "!wallet", r"^Wallet ")
        deadline = time.monotonic() + 30
        while "balance 0.00 " in ask(TIPPER, "!wallet", r"^Wallet "):  # the welcome grant arrives
            if time.monotonic() > deadline:
                raise AssertionError("no welcome grant for the tipper")
            time.sleep(0.2)
        mark = hs.mark()
        text = ask(TIPPER, "!tip %s 1 secret words" % HOST, r"Tipped 1\.00 credits")
        tap.check("the tipper is answered in the room", "receipt" in text, text)
        # The held line as the engine says it, then where it is from and where HIDE is said.
        line = hs.wait_event(lambda r, ev: r == dm and "says: secret words" in ev["content"].get("body", ""),
                             20, mark)[1]["content"]["body"]
        tap.check("the moderator's DM gets the held message, the room named",
                  re.search(r"^Tip \d+ from Tia to Hana says: secret words .*\(in room %s: say !hide there\)$"
                            % re.escape(ROOM), line), line)
        made = hs.wait_for(lambda: [c for c in hs.created if HOST in (c.get("invite") or [])], timeout=10)
        tap.check("a moderator without a DM (the host) gets one made", made and made[0].get("is_direct") is True, made)
        time.sleep(HOLD_S + 1.5)
        room_lines = bodies(ROOM, mark)
        tap.check("the moderators' line never reaches the room",
                  not any("says: secret words" in b or "(in room " in b for b in room_lines), room_lines)
        tap.check("the message itself is shown in the room after the hold",
                  any(b.startswith("Tia's message with the tip of 1.00 credits to Hana: secret words") for b in room_lines),
                  room_lines)
        tap.check("the room hears the thanks", any(b.startswith("Thank you Tia for tipping Hana") for b in room_lines),
                  room_lines)
        with hs.lock:
            fan_dm = [c for c in hs.created if FAN in (c.get("invite") or [])]
        tap.check("a member below redact gets nothing, not even a DM", not fan_dm, fan_dm)
        host_dm = made[0]["room_id"]
        mark = hs.mark()
        ask(TIPPER, "!tip %s 1 more words" % HOST, r"Tipped 1\.00 credits")
        line = hs.wait_event(lambda r, ev: r == host_dm and "says: more words" in ev["content"].get("body", ""),
                             20, mark)[1]["content"]["body"]
        tap.check("the next held message reaches the host's new DM", "more words" in line, line)
        return True
    tap.run("held tip messages go to the moderators' DMs, never the room", held_tip)

    def solo_room():
        hs.set_room(SOLO, {}, {"state_default": 50, "redact": 50, "users": {HOST: 50, hs.bot: 100}})
        push([member(SOLO, hs.bot, "invite", sender=HOST)])
        hs.wait_for(lambda: SOLO in hs.joins)
        with hs.lock:
            hs.rooms[SOLO]["members"][HOST] = "Hana"
        push([member(SOLO, HOST, displayname="Hana")])
        ask(ROOT, "!tally role %s creator" % HOST, r"is now a creator")
        mark = hs.mark()
        text = ask(HOST, "!drop create solo%x 2 1" % (os.getpid() & 0xFFF), r"(?i)created|permission", room=SOLO)
        tap.check("the host alone with the bot in a room it was invited to (no is_direct) runs a drop",
                  "created" in text, text)
        hs.wait_event(lambda r, ev: r == SOLO and ev["content"].get("body", "").startswith("LIVE NOW"), 20, mark)
        return True
    tap.run("a room invited to without is_direct is a room, even of two", solo_room)

    def grants():
        text = ask(GRANTER, "!tally grant %s 5" % FAN, r"(?i)granted|permission|privilege")
        tap.check("an admin in matrix_grant_ids grants", text.startswith("Granted 5.00 credits"), text)
        text = ask(ROOT, "!tally grant %s 5" % FAN, r"(?i)granted|permission|privilege")
        tap.check("an admin not in it is refused, with the grant hint", "tally grant" in text and "Granted" not in text,
                  text)
        return True
    tap.run("matrix_grant_ids holds the grant privilege", grants)

    time.sleep(0.5)
    rc, out = ic.tally_cli(db.dsn, "check")
    tap.check("tally check passes", rc == 0, out[-2000:])


def main():
    tap = ic.Tap()
    if not os.path.isfile(os.path.join(os.environ.get("TALLY_BUILD", "build"), "tallyd")):
        tap.check("tallyd is built", False)
        tap.exit()
    try:
        with ic.TestDb("matrix_mods") as db:
            port = free_port()
            reg = matrix_env.fresh_registration(tap, db.dsn, "matrix-mods", port, SERVER)
            as_token, hs_token = matrix_env.read_tokens(reg)
            hs = HomeserverDouble(as_token, hs_token, SERVER)
            hs.as_url = "http://127.0.0.1:%d" % port
            try:
                keys = matrix_env.as_keys(port, reg, hs.url, SERVER, matrix_admins="%s,%s" % (ROOT, GRANTER),
                                          matrix_grant_ids=GRANTER, tip_message_hold=str(HOLD_S))
                with TallydEnv(db.dsn, {"irc": "irc-secret-0123456789"}, extra=keys) as td:
                    with matrix_env.log_on_failure(td):
                        scenario(tap, hs, db, td)
                    tap.check("tallyd stops with 0", td.stop() == 0, td.log()[-2000:])
            finally:
                hs.close()
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
