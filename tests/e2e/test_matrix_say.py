#!/usr/bin/python3
"""test_matrix_say.py — the demo's pieces of `make run HOSTS=...,matrix`:
the homeserver double as a long-running homeserver
(`tests/e2e/matrix_double.py serve`: a room hosted by @host, the bot
invited and joined) in front of tallyd's AS, and `tools/matrix-say`, which
speaks there as a user and prints tally's answers: a host starts an event,
a bridged user is named by display name, a private command opens a DM and
`--dm` speaks in it. Then SIGTERM ends the double. Own database
e2e_matrixsay_<pid>.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
from tallyd_env import TallydEnv, free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SAY = os.path.join(ic.ROOT, "tools", "matrix-say")


def scenario(tap, env):
    def say(*args):
        r = subprocess.run([SAY] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=env, timeout=60)
        return r.returncode, r.stdout

    def joined():
        # The double pushes the bot's invite until the AS takes it; the AS
        # joins; then a command is answered.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rc, out = say("--wait", "2", "@host", "!wallet")
            if "Wallet " in out:
                return True
            time.sleep(0.3)
        raise AssertionError("no answer in the demo room: %s" % out)
    tap.run("the double's demo room: the bot invited and answering", joined)

    def host_and_names():
        rc, out = say("@host", "!event start 5 Demo")
        tap.check("matrix-say: @host (power level 100) starts an event", rc == 0 and
                  'Live event "Demo" starts now' in out, out)
        rc, out = say("--name", "Ana (WhatsApp)", "@whatsapp_15551234567", "!wallet")
        tap.check("a bridged user is named by display name", "Wallet Ana (WhatsApp)" in out, out)
        tap.check("her number is never said by tally", not [l for l in out.splitlines()
                                                            if "@tally:" in l and "15551234567" in l], out)
        return True
    tap.run("matrix-say speaks as users in the room", host_and_names)

    def dm():
        rc, out = say("--dm", "@alice", "!wallet")
        tap.check("--dm before the bot opened one: a clear error", rc != 0 and "has not opened a DM" in out, out)
        rc, out = say("@alice", "!ship 1 Main St")
        tap.check("SHIP in the room: refused, the bot opens a DM", "direct message" in out and
                  "This is your direct message" in out, out)
        rc, out = say("--dm", "@alice", "!ship 1 Main St")
        tap.check("--dm: SHIP in the DM is dispatched (not refused as public)", rc == 0 and "@tally:" in out and
                  "privately" not in out, out)
        return True
    tap.run("the DM through matrix-say", dm)


def main():
    tap = ic.Tap()
    double = None
    try:
        with ic.TestDb("matrixsay") as db:
            tmp = os.environ.get("TALLY_TMP") or "/tmp"
            os.makedirs(tmp, exist_ok=True)
            reg = os.path.join(tmp, "matrix-say-reg-%d.yaml" % os.getpid())
            if os.path.exists(reg):
                os.unlink(reg)
            port, hsport = free_port(), free_port()
            rc, out = ic.tally_cli(db.dsn, "matrix-registration", reg, "http://127.0.0.1:%d" % port, "localhost")
            tap.check("tally matrix-registration writes the file", rc == 0, out)
            log = open(os.path.join(tmp, "matrix-say-double-%d.log" % os.getpid()), "w")
            double = subprocess.Popen([sys.executable, os.path.join(HERE, "matrix_double.py"), "serve", reg,
                                       str(hsport), "http://127.0.0.1:%d" % port, "localhost"],
                                      stdout=log, stderr=subprocess.STDOUT)
            env = dict(os.environ, TALLY_MATRIX_DOUBLE="http://127.0.0.1:%d#localhost" % hsport)
            extra = {"matrix_listen": "127.0.0.1:%d" % port, "matrix_registration": reg,
                     "matrix_homeserver": "http://127.0.0.1:%d" % hsport, "matrix_server_name": "localhost",
                     "welcome_grant": "1000", "rate_account": "0", "rate_channel": "0"}
            with TallydEnv(db.dsn, {"irc": "irc-secret-0123456789"}, extra=extra) as td:
                try:
                    scenario(tap, env)
                except Exception:
                    print("# tallyd log tail:\n# " + "\n# ".join(td.log()[-3000:].splitlines()))
                    raise
                tap.check("tallyd stops cleanly", td.stop() == 0, td.log()[-2000:])
            double.send_signal(signal.SIGTERM)
            tap.check("the double ends on SIGTERM", double.wait(10) == 0, double.returncode)
            with open(log.name) as f:
                printed = f.read()
            tap.check("the double printed what the bot said", "@tally:localhost: Live event" in printed, printed[-500:])
            double = None
            os.unlink(reg)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if double:
            double.kill()
    tap.exit()


if __name__ == "__main__":
    main()
