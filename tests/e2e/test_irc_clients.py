#!/usr/bin/python3
"""test_irc_clients.py — where irssi and WeeChat show the answer to a `!` line.

A user types `!shop` in a channel and looks at that channel's window. Both
clients run for real, each in a detached tmux session of its own (a private
tmux socket), with a fresh home folder and their default settings; the test
types into them with `tmux send-keys` and reads the screen with `tmux
capture-pane`, the way a user would see it:

  irssi 1.4      `-irc.tally.test(tally@irc.tally.test)- [#chan] The shop is empty.`
                 in the channel window (setting notice_channel_context, on by default)
  WeeChat 3.8    `PvNotice(irc.tally.test): The shop is empty.` in the channel buffer
                 (option irc.look.notice_welcome_redirect, on by default)

Before the `[#chan]` prefix and the `<server>!tally@<server>` source, both
showed it elsewhere (irssi: the status window; WeeChat: the server buffer),
and the channel's window showed nothing. irssi, weechat (weechat-curses) and
tmux come from `make deps`; a missing one is a failure, not a skip.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
TMUX = shutil.which("tmux") or "/usr/bin/tmux"
IRSSI = shutil.which("irssi") or "/usr/bin/irssi"
WEECHAT = shutil.which("weechat") or "/usr/bin/weechat"
PANE_COLS, PANE_ROWS = 220, 50  # wide enough that no answer wraps
SCREEN_WAIT_S = 20.0
TRANSIENT = re.compile(r"starting up|busy, try again")


class Screen:
    """One client in a detached tmux session on a private socket."""

    def __init__(self, sock, name, argv):
        self.sock, self.name = sock, name
        subprocess.run([TMUX, "-S", sock, "new-session", "-d", "-s", name,
                        "-x", str(PANE_COLS), "-y", str(PANE_ROWS)] + argv, check=True)

    def type(self, line):
        # -l: literal text, so "!shop" or ";" is not a tmux key name; then Enter.
        subprocess.run([TMUX, "-S", self.sock, "send-keys", "-t", self.name, "-l", line], check=True)
        subprocess.run([TMUX, "-S", self.sock, "send-keys", "-t", self.name, "Enter"], check=True)
        time.sleep(0.3)  # one line at a time: WeeChat asks before pasting several

    def capture(self):
        r = subprocess.run([TMUX, "-S", self.sock, "capture-pane", "-p", "-t", self.name],
                           stdout=subprocess.PIPE, text=True)
        return r.stdout

    def wait(self, regex, timeout=SCREEN_WAIT_S, what=None):
        """The screen once a line on it matches regex."""
        rx = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if rx.search(screen):
                return screen
            if time.monotonic() > deadline:
                raise ic.IRCError("%s: no /%s/ on screen%s:\n%s" % (
                    self.name, regex, " (%s)" % what if what else "", tail(screen)))
            time.sleep(0.2)


def tail(screen, n=15):
    lines = [ln.rstrip() for ln in screen.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip(" │"))[-3000:] if lines else "(empty)"


def irssi_argv(home, port, nick):
    return [IRSSI, "--home=%s" % home, "-c", "127.0.0.1", "-p", str(port), "-n", nick]


def weechat_argv(home, port, nick):
    cmds = "; ".join([
        "/set irc.server_default.tls off",
        "/server add tally 127.0.0.1/%d" % port,
        "/set irc.server.tally.nicks %s" % nick,
        "/connect tally",
    ])
    return [WEECHAT, "-d", home, "-r", cmds]


def join_and_ask(screen, watcher, nick, chan):
    """Registers nick with NickServ, joins chan, waits for JOIN, as the user would."""
    screen.type("/msg NickServ REGISTER %s %s@example.org" % (PASSWORD, nick))
    if watcher.wait_account(nick) != nick:
        raise ic.IRCError("%s has no account" % nick)
    mark = watcher.mark()
    screen.type("/join %s" % chan)
    watcher.expect(lambda m: m.command == "JOIN" and m.nick == nick, 10, "%s JOIN" % nick, mark)


def scenario(tap, env, db):
    for binary in (TMUX, IRSSI, WEECHAT):
        if not tap.check("%s is installed (make deps installs it)" % os.path.basename(binary),
                         os.path.exists(binary), "%s missing" % binary):
            return
    base = tempfile.mkdtemp(prefix="tally-clients-")
    sock = os.path.join(base, "tmux.sock")
    chan = "#live%d" % os.getpid()
    watcher = env.client(ic.unique_nick("w"))
    try:
        watcher.join(chan)
        # The engine answers before the clients start, so no answer is "starting up".
        ic.tally_ask(watcher, "SHOP", ".")

        def irssi():
            nick = ic.unique_nick("ir")
            s = Screen(sock, "irssi", irssi_argv(os.path.join(base, "irssi"), env.port, nick))
            s.wait(r"Welcome to the TallyNet", what="connected")
            join_and_ask(s, watcher, nick, chan)
            s.wait(r"^\[%s\]" % re.escape(chan), what="the channel window is active")
            s.type("!shop")
            want = r"-irc\.tally\.test\(tally@irc\.tally\.test\)- \[%s\] The shop is empty\." % re.escape(chan)
            screen = s.wait(want, what="answer in the channel window")
            if not re.search(r"^\[%s\]" % re.escape(chan), screen, re.M):
                raise ic.IRCError("the answer is not in %s's window:\n%s" % (chan, tail(screen)))
            s.type("!wallet")
            return s.wait(r"\[%s\] Wallet %s: balance " % (re.escape(chan), nick),
                          what="!wallet answer in the channel window")
        tap.run("irssi: the answer to !shop in a channel is shown in that channel's window", irssi)

        def weechat():
            nick = ic.unique_nick("we")
            s = Screen(sock, "weechat", weechat_argv(os.path.join(base, "weechat"), env.port, nick))
            s.wait(r"Welcome to the TallyNet", what="connected")
            join_and_ask(s, watcher, nick, chan)
            current = r"\[irc/tally\] \d+:%s\b" % re.escape(chan)
            s.wait(current, what="the channel buffer is current")
            s.type("!shop")
            screen = s.wait(r"PvNotice\(irc\.tally\.test\): The shop is empty\.",
                            what="answer in the channel buffer")
            if not re.search(current, screen):
                raise ic.IRCError("the answer is not in %s's buffer:\n%s" % (chan, tail(screen)))
            s.type("!wallet")
            return s.wait(r"PvNotice\(irc\.tally\.test\): Wallet %s: balance " % nick,
                          what="!wallet answer in the channel buffer")
        tap.run("WeeChat: the answer to !shop in a channel is shown in that channel's buffer", weechat)
    finally:
        watcher.quit()
        subprocess.run([TMUX, "-S", sock, "kill-server"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    ic.network_test("clients", scenario)
