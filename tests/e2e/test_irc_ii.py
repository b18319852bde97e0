#!/usr/bin/python3
"""test_irc_ii.py — a user's path with a real IRC client, suckless `ii`.

ii is driven through its FIFOs: `/PRIVMSG NickServ :REGISTER ...` and an
unknown `/wallet` go raw to the server, and a line written to a channel's `in`
is a channel message. Server NOTICEs (tally's answers to client commands)
land in the server's `out` file; the answer to a `!` line in a channel comes
from `irc.tally.test!tally@irc.tally.test` (see docs/IRC.md), so ii files it
under that "nick": `irc.tally.test/out`, starting with `[#channel] `. A
second, scripted client in the channel checks what others see. Without a
built m_tally.so, only the NickServ part runs. Env as in test_irc_basic.py.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

II_BIN = shutil.which("ii") or "/usr/bin/ii"
TRANSIENT = re.compile(r"starting up|busy, try again")
ANSWER_SOURCE = "irc.tally.test"  # ii's folder for notices from irc.tally.test!tally@...


class II:
    def __init__(self, port, nick, base):
        self.nick = nick
        self.root = os.path.join(base, "ii")
        self.srv = os.path.join(self.root, "127.0.0.1")
        self.proc = subprocess.Popen([II_BIN, "-s", "127.0.0.1", "-p", str(port), "-n", nick,
                                      "-i", self.root], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait_file(os.path.join(self.srv, "in"))
        self.wait_out(os.path.join(self.srv, "out"), r" 001 |Welcome", 10)

    def wait_file(self, path, timeout=10):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise ic.IRCError("ii did not create %s" % path)
            time.sleep(0.05)

    def write(self, where, line):
        path = os.path.join(self.srv, where, "in") if where else os.path.join(self.srv, "in")
        self.wait_file(path)
        with open(path, "w") as f:
            f.write(line + "\n")

    @staticmethod
    def lines(path):
        try:
            with open(path, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def wait_out(self, path, regex, timeout=10, start=0):
        """The first line at index >= start of an out file matching regex."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines(path)
            for i in range(start, len(lines)):
                if rx.search(lines[i]):
                    return i, lines[i]
            if time.monotonic() > deadline:
                raise ic.IRCError("no /%s/ in %s; tail: %r" % (regex, path, lines[-5:]))
            time.sleep(0.1)

    def ask(self, where, line, regex, timeout=60, out_dir=""):
        """Writes line; returns tally's first non-transient reply (in the out
        file of out_dir, by default the server's)."""
        out = os.path.join(self.srv, out_dir, "out")
        deadline = time.monotonic() + timeout
        while True:
            start = len(self.lines(out))
            self.write(where, line)
            _, reply = self.wait_out(out, r"^\d+ \S",
                                     max(1, deadline - time.monotonic()), start)
            reply = reply.split(" ", 1)[1]  # drop ii's timestamp
            if TRANSIENT.search(reply):
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                raise ic.IRCError("still %r after %.0f s" % (reply, timeout))
            if not re.search(regex, reply):
                raise ic.IRCError("unexpected reply %r (wanted /%s/)" % (reply, regex))
            return reply

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    if not os.path.exists(II_BIN):
        tap = ic.Tap()
        tap.check("ii is installed (make deps installs it)", False, "%s missing" % II_BIN)
        tap.exit()

    def body(tap, so, db):
        base = tempfile.mkdtemp(prefix="tally-ii-")
        client = watcher = None
        try:
            with ic.IrcEnv(tally_so=so, dsn=db.dsn, tag_extra='welcome_grant="1000"') as env:
                nick = ic.unique_nick("ii")
                chan = "#iishop%d" % os.getpid()
                client = II(env.port, nick, base)
                watcher = env.client(ic.unique_nick("w"))
                watcher.join(chan)

                def register():
                    client.write("", "/PRIVMSG NickServ :REGISTER Correct-Horse-42 %s@example.org" % nick)
                    if watcher.wait_account(nick) != nick:
                        raise ic.IRCError("ii user has no account")
                    return True
                tap.run("ii: NickServ REGISTER gives an account", register)

                def join():
                    client.write("", "/j %s" % chan)
                    return watcher.expect(lambda m: m.command == "JOIN" and m.nick == nick, 10, "ii JOIN")
                tap.run("ii: joins the channel", join)
                tally_checks(tap, client, watcher, chan)
        finally:
            if watcher:
                watcher.quit()
            if client:
                client.stop()
            shutil.rmtree(base, ignore_errors=True)
    ic.own_db_main("ii", body)


def tally_checks(tap, client, watcher, chan):
    tap.run("ii: raw /wallet is answered by tally",
            lambda: client.ask("", "/wallet", r"\d"))

    def channel_wallet():
        mark = watcher.mark()
        reply = client.ask(chan, "!wallet", r"\d", out_dir=ANSWER_SOURCE)
        if "[%s] " % chan not in reply:
            raise ic.IRCError("no [%s] in %r" % (chan, reply))
        client.write(chan, "plain words from ii")
        watcher.wait_privmsg("^plain words from ii$", chan, 10, since=mark)
        if any(m.command == "PRIVMSG" and m.text.startswith("!wallet")
               for m in watcher.seen[mark:]):
            raise ic.IRCError("!wallet reached the channel")
        return True
    tap.run("ii: !wallet in the channel is answered privately ([channel] prefix), not broadcast",
            channel_wallet)


if __name__ == "__main__":
    main()
