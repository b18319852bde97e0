#!/usr/bin/python3
"""test_irc_paths.py — the module's files follow InspIRCd's conventions.

1. A <tally> tag that names no signing_key (as on a plain install: dsn and
   a welcome grant, nothing about files), and an InspIRCd data directory
   (<path datadir>) that does not exist yet: the module loads, creates the
   data directory private (0700) and its signing key in it (0600, with the
   .pub beside it), and sells: a buyer gets a receipt. RELOADMODULE keeps
   the same key (it is read back, not made again).
2. A signing_key the admin named in a directory that does not exist: the
   module does not load, and the error names that directory.

Own database e2e_paths_<pid>; env as in test_irc_basic.py.
"""

import os
import re
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircclient as ic  # noqa: E402

PASSWORD = "Correct-Horse-42"
NOT_YET = re.compile(r"starting up|busy, try again|welcome credits are still arriving")


def default_key(tap, so, db):
    extra = {"TALLY_SIGNING_KEY": "default", "IRC_DATADIR": "{dir}/state"}
    with ic.IrcEnv(tally_so=so, dsn=db.dsn, tag_extra='welcome_grant="1000"', env_extra=extra) as env:
        data = os.path.join(env.dir, "state")
        key = os.path.join(data, "tally-signing.pem")
        conf = open(os.path.join(env.dir, "inspircd.conf")).read()
        tap.check("the <tally> tag names no signing_key", "signing_key" not in conf,
                  re.findall(r"<tally .*>", conf))
        tap.check("the module loaded and started its engine", "tally: engine started" in env.log(),
                  env.log()[-2000:])
        st = os.stat(data) if os.path.isdir(data) else None
        tap.check("the missing data directory was created, mode 0700",
                  st is not None and stat.S_IMODE(st.st_mode) == 0o700,
                  "%s: %s" % (data, oct(st.st_mode) if st else "missing"))
        ks = os.stat(key) if os.path.isfile(key) else None
        tap.check("the signing key is in the data directory, mode 0600",
                  ks is not None and stat.S_IMODE(ks.st_mode) == 0o600,
                  "%s: %s (dir: %r)" % (key, oct(ks.st_mode) if ks else "missing",
                                        os.listdir(data) if st else None))
        tap.check("its public key is beside it", os.path.isfile(key + ".pub"))
        tap.check("nothing was written under the server's working directory's var/",
                  not os.path.exists(os.path.join(env.dir, "var", "tally-signing.pem")))
        before = open(key, "rb").read() if ks else b""

        tag = "%x" % (os.getpid() & 0xFFFF)
        sku = "p" + tag
        host = env.client("ph" + tag)
        buyer = env.client("pb" + tag)
        try:
            for c in (host, buyer):
                c.ns_register(PASSWORD)
                if not c.wait_account():
                    raise ic.IRCError("%s has no services account" % c.nick)
            ic.make_creators(env, [host.nick], PASSWORD)
            tap.run("the creator adds an item",
                    lambda: ic.tally_ask(host, "ITEM ADD %s 1 Poster" % sku, r"added"))

            def buy():
                deadline = time.monotonic() + 30  # the welcome grant lands in a batch of its own
                while ("balance 0.00 " in ic.tally_ask(buyer, "WALLET", r"^Wallet ").text
                       and time.monotonic() < deadline):
                    time.sleep(0.2)
                m = ic.tally_ask(buyer, "BUY %s" % sku, r"CONFIRM (\S+)", retry=NOT_YET)
                code = re.search(r"CONFIRM (\S+)", m.text).group(1)
                return ic.tally_ask(buyer, "CONFIRM %s" % code, r"receipt \d+")
            tap.run("a buyer buys it and gets a receipt", buy)

            def reload():
                host.send("OPER admin adminpass")
                host.wait_numeric("381")
                mark = host.mark()
                host.send("RELOADMODULE m_tally")
                host.expect(lambda m: m.command == "975", 30, "975 reloaded", mark)
                return ic.tally_ask(buyer, "BUY %s" % sku, r"receipt \d+")
            tap.run("after RELOADMODULE a purchase gets a receipt again", reload)
            tap.check("RELOADMODULE kept the same signing key",
                      os.path.isfile(key) and open(key, "rb").read() == before)
        finally:
            host.quit()
            buyer.quit()
        rc, out = ic.tally_cli(db.dsn, "check")
        tap.check("tally check passes", rc == 0, out[-2000:])


def missing_dir(tap, so, db):
    where = "/nonexistent-tally-%d" % os.getpid()

    def run():
        try:
            with ic.IrcEnv(tally_so=so, dsn=db.dsn, tag_extra='signing_key="%s/key.pem"' % where):
                pass
        except RuntimeError as e:
            if not re.search(r"m_tally.*directory %s\b" % re.escape(where), str(e)):
                raise ic.IRCError("start failed without naming %s:\n%s" % (where, e))
            return True
        raise ic.IRCError("the server started with a key in %s" % where)
    tap.run("a signing_key in a missing directory stops the module, naming the directory", run)
    tap.check("that directory was not created", not os.path.exists(where))


def main():
    tap = ic.Tap()
    so = ic.tally_so()
    if not os.path.isfile(so):
        tap.check("the module is built", False, "%s not built" % so)
        tap.exit()
    try:
        with ic.TestDb("paths") as db:
            default_key(tap, so, db)
            missing_dir(tap, so, db)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
