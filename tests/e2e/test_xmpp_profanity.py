#!/usr/bin/python3
"""test_xmpp_profanity.py — a user's path with a real terminal XMPP client:
Profanity 0.13 (Debian) under tmux, against a real Prosody with mod_tally.

1. `/msg shop@tally.test WALLET` in Profanity: the shop's answer shows in
   the chat window with the shop ("shop@tally.test: Wallet bob@tally.test").
2. `/join` a room and type `!wallet` there: the answer comes in the shop's
   chat window (window 2), naming the room, and another occupant (a slixmpp client) never
   gets the line: it was not broadcast. (Profanity itself shows what it
   sent in the room window as it was typed, before any server echo.)

What the screen shows is read with `tmux capture-pane`. Own database
e2e_xmpp_prof_<pid>. Needs prosody, profanity, tmux.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402
from xmpp_env import ProsodyEnv  # noqa: E402


class Screen:
    def __init__(self, session, env):
        self.s, self.env = session, env

    def keys(self, line):
        subprocess.run(["tmux", "send-keys", "-t", self.s, "-l", line], check=True)
        subprocess.run(["tmux", "send-keys", "-t", self.s, "Enter"], check=True)

    def text(self):
        return subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", self.s], stdout=subprocess.PIPE,
                              text=True).stdout

    def wait(self, regex, timeout=20, count=1):
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(rx.findall(self.text())) >= count:
                return self.text()
            time.sleep(0.2)
        raise AssertionError("screen never showed /%s/ x%d:\n%s" % (regex, count, self.text()[-2000:]))


def scenario(tap, px):
    home = tempfile.mkdtemp(prefix="tally-prof-")
    session = "tallyprof%d" % os.getpid()
    os.makedirs(os.path.join(home, ".local/share/profanity"))
    os.makedirs(os.path.join(home, ".config/profanity"))
    with open(os.path.join(home, ".local/share/profanity/accounts"), "w") as f:
        f.write("[bob@tally.test]\nenabled=true\njid=bob@tally.test\nserver=127.0.0.1\nport=%d\n"
                "resource=prof\npassword=pw-bob\ntls.policy=disable\n" % px.port)
    env = dict(os.environ, HOME=home, XDG_DATA_HOME=home + "/.local/share", XDG_CONFIG_HOME=home + "/.config",
               TERM="xterm-256color")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "220", "-y", "60",
                    "profanity -a bob@tally.test"], env=env, check=True)
    scr = Screen(session, env)
    try:
        tap.run("Profanity logs in", lambda: scr.wait(r"logged in successfully"))

        def dm():
            scr.keys("/msg %s WALLET" % px.shop)
            return scr.wait(r"shop@tally\.test: Wallet bob@tally\.test: balance")
        tap.run("/msg shop@tally.test WALLET: the answer in the shop's window", dm)

        room = px.room("prof%x" % (os.getpid() & 0xFFFF))

        dave = px.client("dave")
        dave.join(room, "Dave")

        def in_room():
            seen = dave.mark()
            scr.keys("/join %s nick Bob" % room)
            scr.wait(r"(?i)joined|-> You have joined|Bob")
            scr.keys("!wallet")
            scr.keys("hello from profanity")
            dave.wait_room(room, r"^hello from profanity$", 20, seen)
            leaked = [m for m in dave.seen[seen:] if m[2] and "!wallet" in m[2]]
            tap.check("another occupant never got the !wallet line", not leaked, leaked)
            scr.keys("/win 2")
            return scr.wait(r"shop@tally\.test: \[%s\] Wallet bob@tally\.test: balance" % re.escape(room))
        tap.run("!wallet in a room: answered in the shop's window, not said in the room", in_room)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", home])


def main():
    tap = ic.Tap()
    for tool in ("/usr/bin/profanity", "/usr/bin/tmux"):
        if not os.path.exists(tool):
            tap.check("%s is installed" % tool, False)
            tap.exit()
    try:
        with ic.TestDb("xmpp_prof") as db, \
                ProsodyEnv(db.dsn, {"bob": "pw-bob", "dave": "pw-dave"}, tally={"welcome_grant": "1000"}) as px:
            scenario(tap, px)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
