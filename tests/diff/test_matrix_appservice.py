#!/usr/bin/python3
"""test_matrix_appservice.py — a second opinion on tallyd's Matrix
Application Service: the homeserver double (tests/e2e/matrix_double.py)
sends the same requests to tallyd and to a reference AS built on the npm
package matrix-appservice (tests/diff/reference_as.js, pinned by
tests/diff/package-lock.json), and their authentication and
acknowledgement answers (HTTP status, errcode) must match.

The cases: a good transaction, the same txnId again, a second one and then
the first again, a wrong token, no token, the legacy `access_token` query
(right and wrong), header and query together (both right; the query
wrong), malformed JSON (with the right
and with a wrong token), a body without `events`, a body over the limit
(the reference's limit is set to tallyd's matrix_body_bytes_max).

Where the two differ on purpose, the case says so with the spec's words
(Matrix spec v1.x, spec.matrix.org: AS = Application Service API, CS =
Client-Server API) and both answers are pinned: a difference that changes
fails, like a match that breaks.

node_modules is installed here from the lock (`npm ci --ignore-scripts`)
when missing or older than the lock; if the npm registry cannot be reached
(and npm's cache does not have the packages) the test FAILS and says so:
it never passes without the reference. Own database e2e_diff_mx_<pid>.
Needs nodejs and npm (make deps), build/tallyd, the tally CLI.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import ircclient as ic  # noqa: E402  (Tap, TestDb)
import matrix_env  # noqa: E402
from matrix_double import HomeserverDouble, message  # noqa: E402
from tallyd_env import TallydEnv, free_port  # noqa: E402

SERVER = "test.local"
ROOM = "!diff:" + SERVER
BOB = "@bob:" + SERVER
BODY_MAX = 8388608     # tallyd's matrix_body_bytes_max default, given to both
NPM_TIMEOUT_S = 300
STAMP = ".tally-lock-sha256"  # in node_modules: the lock it was installed from


def lock_digest():
    with open(os.path.join(HERE, "package-lock.json"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def install(tap):
    """node_modules from the lock, unless it is installed from this lock
    already. True when the reference can run; else a failed check says why."""
    node, npm = shutil.which("node") or shutil.which("nodejs"), shutil.which("npm")
    if not node or not npm:
        tap.check("nodejs and npm are installed", False,
                  "node: %s, npm: %s: `make deps` installs Debian's nodejs and npm" % (node, npm))
        return None
    mods = os.path.join(HERE, "node_modules")
    stamp = os.path.join(mods, STAMP)
    want = lock_digest()
    try:
        with open(stamp) as f:
            if f.read().strip() == want and os.path.isdir(os.path.join(mods, "matrix-appservice")):
                return node
    except OSError:
        pass
    # --ignore-scripts: no package may run code at install (none of these has
    # an install script; a future one would not run here unseen).
    # --prefer-offline: npm's cache first, the registry for what it lacks.
    cmd = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
           "--fetch-retries=1", "--fetch-timeout=30000"]
    try:
        r = subprocess.run(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=NPM_TIMEOUT_S)
        out, rc = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), -1
    ok = rc == 0 and os.path.isdir(os.path.join(mods, "matrix-appservice"))
    if not ok:
        tap.check("npm ci installs matrix-appservice from tests/diff/package-lock.json", False,
                  "`%s` in tests/diff exited %s: the reference AS cannot be installed, so nothing was compared. "
                  "Is the npm registry reachable from here (or npm's cache filled by an earlier install)?\n%s"
                  % (" ".join(["npm"] + cmd[1:]), rc, out[-1500:]))
        return None
    with open(stamp, "w") as f:
        f.write(want + "\n")
    tap.check("npm ci installed matrix-appservice from the lock", True)
    return node


class Reference:
    """node reference_as.js, on a free port it prints; the events it handed
    to the application, counted by event id."""

    def __init__(self, node, hs_token):
        self.proc = subprocess.Popen([node, os.path.join(HERE, "reference_as.js"), hs_token, str(BODY_MAX)],
                                     cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines, self.port = [], None
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        with self.cond:
            self.cond.wait_for(lambda: self.port or self.proc.poll() is not None, timeout=30)
        if not self.port:
            self.stop()
            raise RuntimeError("the reference AS did not start:\n%s" % "\n".join(self.lines[-20:]))
        self.url = "http://127.0.0.1:%d" % self.port

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                m = re.match(r"^listening (\d+)$", line.strip())
                if m:
                    self.port = int(m.group(1))
                self.cond.notify_all()

    def processed(self, event_id):
        with self.cond:
            return sum(1 for ln in self.lines if ln == "event " + event_id)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def errcode_of(js):
    return js.get("errcode") if isinstance(js, dict) else None


def cases(hs_token):
    """(name, request, expected) in order; request(send) performs it with
    send(method, path, body, auth, token); expected is either ("same",
    status, errcode) — both must answer exactly that — or ("differs",
    (tallyd status, errcode), (reference status, errcode), why)."""
    good = message(ROOM, BOB, "!wallet")
    other = message(ROOM, BOB, "!shop")
    body = json.dumps({"events": [good]}).encode()
    body2 = json.dumps({"events": [other]}).encode()

    def fresh():  # a body of its own event: only `good` is counted below
        return json.dumps({"events": [message(ROOM, BOB, "!wallet")]}).encode()
    t1, t2 = "diff.%d.1" % os.getpid(), "diff.%d.2" % os.getpid()
    path = "/_matrix/app/v1/transactions/"
    wrong = "0" * 64
    huge = b'{"events": [], "pad": "' + b"x" * (BODY_MAX + (1 << 20)) + b'"}'
    return good, [
        ("a good transaction", lambda s: s("PUT", path + t1, body, "header", None), ("same", 200, None)),
        ("the same txnId again (AS 'Pushing events': a retry is a no-op, answered 200)",
         lambda s: s("PUT", path + t1, body, "header", None), ("same", 200, None)),
        ("a second transaction", lambda s: s("PUT", path + t2, body2, "header", None), ("same", 200, None)),
        ("the first txnId once more, after another", lambda s: s("PUT", path + t1, body, "header", None),
         ("same", 200, None)),
        ("a wrong token (AS 'Authorization': fail with M_FORBIDDEN if it does not match)",
         lambda s: s("PUT", path + "diff.w", fresh(), "header", wrong), ("same", 403, "M_FORBIDDEN")),
        ("no token", lambda s: s("PUT", path + "diff.n", fresh(), "none", None),
         ("differs", (401, "M_MISSING_TOKEN"), (403, "M_FORBIDDEN"),
          "AS 'PUT /_matrix/app/v1/transactions/{txnId}' lists 401 for 'The homeserver has not supplied "
          "credentials to the application service' and 403 for 'The credentials supplied by the homeserver were "
          "rejected'; tallyd tells the two apart (401, with the Client-Server API's code for a missing token, "
          "CS 'Standard error response' M_MISSING_TOKEN), matrix-appservice answers both 403 M_FORBIDDEN")),
        ("the legacy access_token query, right", lambda s: s("PUT", path + "diff.q", fresh(), "query", None),
         ("same", 200, None)),
        ("the legacy access_token query, wrong", lambda s: s("PUT", path + "diff.qw", fresh(), "query", wrong),
         ("same", 403, "M_FORBIDDEN")),
        ("the header and the legacy query, both right",
         lambda s: s("PUT", path + "diff.hq2?access_token=" + hs_token, fresh(), "header", None), ("same", 200, None)),
        ("the header right and the legacy query wrong",
         lambda s: s("PUT", path + "diff.hq?access_token=" + wrong, fresh(), "header", None),
         ("differs", (403, "M_FORBIDDEN"), (200, None),
          "AS 'Authorization' (its note on the legacy query): 'Application services should ensure both match "
          "if both are provided'; tallyd refuses the request when either is not the hs_token, matrix-appservice "
          "reads the header and ignores the query")),
        ("malformed JSON", lambda s: s("PUT", path + "diff.j", b'{"events": [', "header", None),
         ("differs", (400, "M_NOT_JSON"), (400, None),
          "both refuse it with 400; CS 'API Standards': errors are JSON objects with an errcode, M_NOT_JSON "
          "'Request did not contain valid JSON': tallyd says so, matrix-appservice's body parser answers "
          "express's HTML error page (no errcode)")),
        ("malformed JSON with a wrong token", lambda s: s("PUT", path + "diff.jw", b'{"events": [', "header", wrong),
         ("differs", (403, "M_FORBIDDEN"), (400, None),
          "AS 'Authorization': the AS MUST verify the token, failing the request with M_FORBIDDEN if it does not "
          "match; tallyd checks the token before it reads a byte of the body, matrix-appservice parses the body "
          "first (express middleware order) and refuses the JSON before it looks at the token")),
        ("a body without events", lambda s: s("PUT", path + "diff.e", b'{"txn": 1}', "header", None),
         ("differs", (400, "M_BAD_JSON"), (200, None),
          "AS 'PUT /_matrix/app/v1/transactions/{txnId}': the body's `events` is Required; tallyd refuses a body "
          "without it (400, CS 'Standard error response' M_BAD_JSON: 'Request contained valid JSON, but it was "
          "malformed in some way'), matrix-appservice takes it as no events (`req.body.events || []`)")),
        ("a body over the limit (both at %d bytes)" % BODY_MAX,
         lambda s: s("PUT", path + "diff.h", huge, "header", None),
         ("differs", (413, "M_TOO_LARGE"), (413, None),
          "both refuse it with 413; CS 'Standard error response' M_TOO_LARGE: 'The request or entity was too "
          "large': tallyd says so, matrix-appservice's body parser answers express's HTML error page")),
    ]


def scenario(tap, hs, ref, td_url):
    good, plan = cases(hs.hs_token)

    def sender(url):
        def send(method, path, body, auth, token):
            hs.as_url = url
            return hs.request(method, path, body, auth=auth, token=token, timeout=60)
        return send

    send_td, send_ref = sender(td_url), sender(ref.url)
    for name, request, expected in plan:
        st_t, js_t = request(send_td)
        st_r, js_r = request(send_ref)
        got_t, got_r = (st_t, errcode_of(js_t)), (st_r, errcode_of(js_r))
        if expected[0] == "same":
            want = (expected[1], expected[2])
            tap.check("%s: both answer %s %s" % (name, want[0], want[1] or ""), got_t == want and got_r == want,
                      "tallyd %r %r, matrix-appservice %r %r" % (st_t, js_t, st_r, js_r))
        else:
            _, want_t, want_r, why = expected
            tap.check("%s: tallyd %s %s, matrix-appservice %s %s (on purpose)"
                      % (name, want_t[0], want_t[1], want_r[0], want_r[1] or "(no errcode)"),
                      got_t == want_t and got_r == want_r,
                      "tallyd %r %r, matrix-appservice %r %r; the difference documented: %s"
                      % (st_t, js_t, st_r, js_r, why))
            if got_t == want_t and got_r == want_r:
                print("#   why: %s" % why)
    # What each did with the replays, beyond the answers: tallyd keeps every
    # txnId (one answer for the event, however often it came); the library
    # remembers only the last txnId, so the first one, sent again after
    # another, was handed to its application a second time (HOSTS.md, Matrix).
    replies = hs.wait_for(lambda: hs.replies(good["event_id"]), timeout=20)
    time.sleep(1.0)
    replies = hs.replies(good["event_id"])
    tap.check("tallyd answered the thrice-sent event once", len(replies) == 1,
              [r["content"].get("body") for r in replies])
    n = ref.processed(good["event_id"])
    tap.check("matrix-appservice handed that event to its application twice (it keeps only the last txnId)",
              n == 2, "processed %d times; its log: %s" % (n, ref.lines[-20:]))
    return True


def main():
    tap = ic.Tap()
    build = os.environ.get("TALLY_BUILD", "build")
    if not os.path.isfile(os.path.join(build, "tallyd")):
        tap.check("%s/tallyd is built" % build, False)
        tap.exit()
    node = install(tap)
    if not node:
        tap.exit()
    try:
        with ic.TestDb("diff_mx") as db:
            port = free_port()
            reg = matrix_env.fresh_registration(tap, db.dsn, "diff-mx", port, SERVER)
            as_token, hs_token = matrix_env.read_tokens(reg)
            hs = HomeserverDouble(as_token, hs_token, SERVER)
            ref = None
            try:
                hs.set_room(ROOM, {hs.bot: "tally", BOB: "Bob", "@carol:" + SERVER: "Carol"})
                ref = Reference(node, hs_token)
                keys = matrix_env.as_keys(port, reg, hs.url, SERVER, matrix_body_bytes_max=str(BODY_MAX))
                # The sanitizer build's tallyd when there is one: its clean stop checks leaks.
                san = os.path.join(os.environ.get("TALLY_SAN_BUILD", ""), "tallyd")
                binary = san if os.environ.get("TALLY_SAN_BUILD") and os.access(san, os.X_OK) else None
                with TallydEnv(db.dsn, secrets={"irc": "diff-matrix-unused-network-secret"}, extra=keys,
                               binary=binary) as td:
                    hs.as_url = "http://127.0.0.1:%d" % port
                    st, js, _ = hs.push([])  # 503 while the AS loads its outbox: retried
                    tap.check("tallyd's AS is up", st == 200, (st, js))
                    with matrix_env.log_on_failure(td):
                        tap.run("tallyd and matrix-appservice answer the same requests alike, "
                                "or differ as documented", lambda: scenario(tap, hs, ref, "http://127.0.0.1:%d" % port))
                    rc = td.stop()
                    tap.check("tallyd stops with 0", rc == 0, td.log()[-2000:])
            finally:
                if ref:
                    ref.stop()
                hs.close()
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


if __name__ == "__main__":
    main()
