#!/usr/bin/python3
"""test_matrix_tls.py — HTTPS from tallyd's Application Service to the
homeserver (matrix_homeserver = https://..., matrix_homeserver_ca), against
the homeserver double serving TLS (tests/e2e/matrix_double.py, tls=) with
certificates this test makes with the openssl CLI:

  ca.pem      the CA tallyd is given first; server.pem (IP:127.0.0.1,
              DNS:localhost) is signed by it;
  rogue-ca    another CA; rogue.pem (IP:127.0.0.1) is signed by it, and
              elsewhere.pem (DNS:elsewhere.test only) too.

1. A purchase answered over HTTPS (BUY, CONFIRM, the receipt), and a room's
   answers share one kept TLS connection.
2. A certificate from a CA tallyd does not trust: the handshake is refused,
   tallyd's log says why, nothing is posted; tallyd given that CA (its
   matrix_homeserver_ca file rewritten, SIGHUP) posts the line, once.
3. A certificate for another name (signed by a trusted CA): refused with
   the name mismatch logged, nothing posted; the homeserver's right
   certificate back, the retry posts it, once.
4. A refused line survives a restart: tallyd stopped while refused, started
   again with the right CA: the outbox posts it, once.
Then `tally check`. Own database e2e_matrix_tls_<pid>.
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
import ircclient as ic  # noqa: E402  (Tap, TestDb, tally_cli)
import matrix_env  # noqa: E402

SERVER = "test.local"
ROOM = "!tls:" + SERVER
ADMIN, CAROL, BOB = "@root:" + SERVER, "@carol:" + SERVER, "@bob:" + SERVER


def make_certs(folder):
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ca(name):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=%s" % name)

    def leaf(name, signer, san):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s" % name)
        with open(os.path.join(folder, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        run("x509", "-req", "-in", name + ".csr", "-CA", signer + ".pem", "-CAkey", signer + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")
    ca("ca")
    ca("rogue-ca")
    leaf("server", "ca", "IP:127.0.0.1,DNS:localhost")
    leaf("rogue", "rogue-ca", "IP:127.0.0.1")
    leaf("elsewhere", "rogue-ca", "DNS:elsewhere.test")

    def cert(name):
        return os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    return cert


def scenario(tap, hs, db, td, cert, ca_file, folder):
    say, ask = matrix_env.speaker(hs, ROOM)

    def log_wait(regex, since, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(regex, td.log()[since:])
            if m:
                return m.group(0)
            time.sleep(0.1)
        raise AssertionError("no log line /%s/" % regex)

    def drop_kept():
        """The kept connection closes after one more answer (a new one, with
        the certificate served from now on, carries the next)."""
        hs.drop_idle = True
        try:
            ask(BOB, "!wallet", r"^Wallet ")
            time.sleep(0.5)  # the event is made before the answer is written and the connection closed
        finally:
            hs.drop_idle = False

    def hup(ca_src):
        shutil.copy(os.path.join(folder, ca_src), ca_file)
        at = len(td.log())
        td.proc.send_signal(signal.SIGHUP)
        log_wait(r"SIGHUP: matrix_homeserver_ca reloaded", at)

    def refused(sender, body, why):
        """A line while the handshake is refused: the reason logged, nothing posted."""
        at = len(td.log())
        with hs.lock:
            failures = hs.tls_failures
        ev = say(sender, body)
        line = log_wait(r"TLS to the homeserver 127\.0\.0\.1:%d refused: [^\n]*" % hs.port, at)
        tap.check("refused, with the reason logged: %s" % line, re.search(why, line), line)
        time.sleep(1.0)
        with hs.lock:
            failed = hs.tls_failures - failures
        tap.check("the double saw the handshake fail (%d)" % failed, failed >= 1, failed)
        tap.check("and nothing was posted for the command", not hs.replies(ev["event_id"]), hs.replies(ev["event_id"]))
        return ev

    def once(ev, regex, timeout=30):
        hs.reply_to(ev["event_id"], regex, timeout)
        time.sleep(1.0)  # a second post would come now
        got = hs.replies(ev["event_id"])
        tap.check("posted exactly once (%d)" % len(got), len(got) == 1, got)

    sku = "tls%x" % (os.getpid() & 0xFFF)

    def purchase():
        ask(ADMIN, "!tally role %s creator" % CAROL, r"is now a creator")
        ask(CAROL, "!item add %s 1 TLS tee" % sku, r"added")
        deadline = time.monotonic() + 30
        while "balance 0.00 " in ask(BOB, "!wallet", r"^Wallet ")[1]["content"]["body"]:
            if time.monotonic() > deadline:
                raise AssertionError("no welcome grant")
            time.sleep(0.3)
        _, ans = ask(BOB, "!buy %s" % sku, r"reply: !confirm (\S+)")
        code = re.search(r"reply: !confirm (\S+)", ans["content"]["body"]).group(1)
        _, ans = ask(BOB, "!confirm %s" % code, r"receipt \d+")
        rid = re.search(r"receipt (\d+)", ans["content"]["body"]).group(1)
        who = db.scalar("SELECT n.name || ':' || i.name FROM transfers t JOIN identities i ON i.account_id = "
                        "t.account_id JOIN networks n ON n.id = i.network_id WHERE t.id = %s" % rid)
        tap.check("a purchase answered over HTTPS (receipt %s, matrix:%s)" % (rid, BOB), who == "matrix:" + BOB, who)
        with hs.lock:
            before = hs.connections
        for _ in range(10):
            ask(BOB, "!wallet", r"^Wallet ")
        with hs.lock:
            used = hs.connections - before
        tap.check("10 answers in one room over the kept TLS connection (%d opened)" % used, used <= 1, used)
        return True
    tap.run("a purchase over HTTPS, keep-alive over TLS", purchase)

    def refused_then_once(serve, why, fix):
        """The kept connection closed, the homeserver serves the certificate
        serve: refused (why logged), nothing posted; after fix(), once."""
        drop_kept()
        hs.set_certificate(*cert(serve))
        ev = refused(BOB, "!wallet", why)
        fix()
        once(ev, r"^Wallet ")
        return True
    # An untrusted CA; tallyd then given the CA that signed it.
    tap.run("a certificate from an untrusted CA: refused, logged; posted once after SIGHUP with its CA",
            lambda: refused_then_once("rogue", r"certificate refused: (unable to get local issuer|self.signed)",
                                      lambda: hup("rogue-ca.pem")))
    # Another name (its CA trusted now); then the homeserver's right certificate again.
    tap.run("a certificate for another name: refused, logged; posted once with the right one",
            lambda: refused_then_once("elsewhere", r"certificate refused: IP address mismatch",
                                      lambda: hs.set_certificate(*cert("rogue"))))

    def restart():
        drop_kept()
        hs.set_certificate(*cert("server"))  # signed by ca.pem, which tallyd no longer trusts
        ev = refused(BOB, "!wallet", r"certificate refused")
        tap.check("tallyd stops with 0 while refused", td.stop() == 0, td.log()[-2000:])
        shutil.copy(os.path.join(folder, "ca.pem"), ca_file)
        td.start()
        once(ev, r"^Wallet ")
        left = db.scalar("SELECT count(*) FROM matrix_outbox o LEFT JOIN matrix_settled s"
                         " ON s.txn_id = o.txn_id AND s.outcome = 1 WHERE s.txn_id IS NULL")
        tap.check("every outbox line settled as posted (%s not)" % left, left == "0", left)
        return True
    tap.run("a line refused at the handshake survives a restart: the outbox posts it once", restart)


def main():
    tap = matrix_env.tallyd_tap()
    folder = tempfile.mkdtemp(prefix="matrix-tls-")
    try:
        cert = make_certs(folder)
        ca_file = os.path.join(folder, "hs-ca.pem")
        shutil.copy(os.path.join(folder, "ca.pem"), ca_file)

        def script(tap, hs, db, td):
            tap.check("the double serves https", hs.url.startswith("https://127.0.0.1:"), hs.url)
            scenario(tap, hs, db, td, cert, ca_file, folder)
        matrix_env.run_script(tap, "matrix-tls", SERVER, script, double_kw={"tls": cert("server")},
                              matrix_admins=ADMIN, matrix_homeserver_ca=ca_file)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    tap.exit()


if __name__ == "__main__":
    main()
