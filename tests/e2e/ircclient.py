#!/usr/bin/python3
"""ircclient.py — a small stdlib-only IRC client and harness for tally's e2e tests.

The tests talk to a real InspIRCd 3 with real Anope services (tools/irc_env.sh),
so this client does what a user's client does: NICK/USER, answer PING, read
lines with IRCv3 tags, and wait for a line matching a predicate with a timeout.
Every line received is kept, so a test can also assert that something did NOT
arrive within a window (a blocked `!buy` must not reach other users).

Also usable from the shell:
    ircclient.py probe HOST PORT [SECONDS [PIDFILE...]]
        exit 0 once NickServ answers; 1 on timeout or when a PIDFILE's process died
"""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

LINE_BYTES_MAX = 8192 + 512  # tags + message, IRCv3 limit


class Msg:
    """One parsed IRC line."""

    __slots__ = ("raw", "tags", "prefix", "nick", "command", "params", "context")

    def __init__(self, raw):
        self.raw = raw
        self.tags = {}
        self.prefix = ""
        rest = raw
        if rest.startswith("@"):
            tagpart, _, rest = rest.partition(" ")
            for item in tagpart[1:].split(";"):
                k, _, v = item.partition("=")
                self.tags[k] = _unescape_tag(v)
        if rest.startswith(":"):
            self.prefix, _, rest = rest[1:].partition(" ")
        self.nick = self.prefix.split("!", 1)[0]
        params = []
        while rest:
            rest = rest.lstrip(" ")
            if rest.startswith(":"):
                params.append(rest[1:])
                break
            word, _, rest = rest.partition(" ")
            if word:
                params.append(word)
        self.command = params.pop(0).upper() if params else ""
        self.params = params
        self.context = None
        self._channel_answer()

    def _channel_answer(self):
        """tally answers a channel line (`!shop` in #live) with a NOTICE from
        `<server>!tally@<server>` whose text starts with `[#live] ` (see
        docs/IRC.md). For the tests' regexes and source checks this is made to
        look like the plain server NOTICE it once was: prefix and nick become
        the server's name, the channel goes to `context`, the text loses its
        `[#live] `. `raw` keeps the line as received."""
        nick, _, host = self.prefix.partition("!")
        if self.command != "NOTICE" or "." not in nick or host != "tally@" + nick:
            return
        m = re.match(r"\[([#&][^ \]]*)\] ", self.params[-1]) if self.params else None
        if not m:
            return
        self.prefix = self.nick = nick
        self.context = m.group(1)
        self.params[-1] = self.params[-1][m.end():]

    @property
    def text(self):
        return self.params[-1] if self.params else ""

    @property
    def target(self):
        return self.params[0] if self.params else ""

    def __repr__(self):
        return "Msg(%r)" % self.raw


def _unescape_tag(v):
    out, i = [], 0
    table = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            out.append(table.get(v[i + 1], v[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class IRCError(Exception):
    pass


class IRCClient:
    """A registered IRC connection. `seen` keeps every line received."""

    def __init__(self, host, port, nick, caps=(), timeout=10.0, user=None):
        self.host, self.port, self.nick = host, port, nick
        self.timeout = timeout
        self.seen = []
        self._cursor = 0
        self._buf = b""
        self.caps = set()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setblocking(False)
        if caps:
            self.send("CAP LS 302")
        self.send("NICK %s" % nick)
        self.send("USER %s 0 * :tally test %s" % (user or nick[:10], nick))
        if caps:
            ls = self.expect(lambda m: m.command == "CAP" and len(m.params) >= 2
                             and m.params[1] == "LS", what="CAP LS")
            offered = {c.split("=", 1)[0] for c in ls.text.split()}
            want = [c for c in caps if c in offered]
            if want:
                self.send("CAP REQ :%s" % " ".join(want))
                ack = self.expect(lambda m: m.command == "CAP" and len(m.params) >= 2
                                  and m.params[1] in ("ACK", "NAK"), what="CAP ACK")
                if ack.params[1] == "ACK":
                    self.caps = set(ack.text.split())
            self.send("CAP END")
        welcome = self.expect(lambda m: m.command in ("001", "433", "432", "ERROR"),
                              what="001 welcome")
        if welcome.command != "001":
            raise IRCError("registration failed: %s" % welcome.raw)
        self.nick = welcome.target

    # ---- raw I/O --------------------------------------------------------
    def send(self, line):
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        if b"\r" in data or b"\n" in data:
            raise ValueError("CR/LF inside one line")
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data + b"\r\n")
        finally:
            self.sock.setblocking(False)

    def _read(self, deadline):
        """Reads available lines into seen; returns False when time is up."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return True
        if not chunk:
            raise IRCError("connection closed by server (last: %r)" %
                           [m.raw for m in self.seen[-3:]])
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                continue
            msg = Msg(line)
            if msg.command == "PING":
                self.send("PONG :%s" % msg.text)
            self.seen.append(msg)
        if len(self._buf) > LINE_BYTES_MAX:
            raise IRCError("line too long from server")
        return True

    def expect(self, pred, timeout=None, what="line", since=None):
        """Returns the first unconsumed line (after `since`) matching pred."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        i = self._cursor if since is None else since
        while True:
            while i < len(self.seen):
                m = self.seen[i]
                i += 1
                if pred(m):
                    if since is None:
                        self._cursor = i
                    return m
            if not self._read(deadline):
                tail = "\n  ".join(m.raw for m in self.seen[-8:])
                raise IRCError("timed out waiting for %s; last lines:\n  %s" % (what, tail))

    def collect(self, seconds):
        """Reads for `seconds`; returns the lines received meanwhile."""
        start = len(self.seen)
        deadline = time.monotonic() + seconds
        while self._read(deadline):
            pass
        return self.seen[start:]

    def mark(self):
        """A position in `seen` to search from (see expect(since=...))."""
        return len(self.seen)

    # ---- helpers ----------------------------------------------------------
    def wait_notice(self, regex, timeout=None, source=None, since=None):
        rx = re.compile(regex)
        return self.expect(lambda m: m.command == "NOTICE" and rx.search(m.text)
                           and (source is None or m.nick.lower() == source.lower()),
                           timeout, "NOTICE /%s/" % regex, since)

    def wait_privmsg(self, regex, target=None, timeout=None, since=None):
        rx = re.compile(regex)
        return self.expect(lambda m: m.command == "PRIVMSG" and rx.search(m.text)
                           and (target is None or m.target.lower() == target.lower()),
                           timeout, "PRIVMSG /%s/" % regex, since)

    def wait_numeric(self, num, timeout=None, since=None):
        return self.expect(lambda m: m.command == num, timeout, "numeric %s" % num, since)

    def privmsg(self, target, text):
        self.send("PRIVMSG %s :%s" % (target, text))

    def join(self, channel):
        self.send("JOIN %s" % channel)
        self.expect(lambda m: m.command == "366" and len(m.params) > 1
                    and m.params[1].lower() == channel.lower(), what="JOIN %s" % channel)

    def ns(self, text, expect_regex, timeout=None):
        """Sends a NickServ command; returns NickServ's matching NOTICE."""
        mark = self.mark()
        self.privmsg("NickServ", text)
        return self.wait_notice(expect_regex, timeout, source="NickServ", since=mark)

    def ns_register(self, password, email=None):
        email = email or "%s@example.org" % self.nick.lower()
        return self.ns("REGISTER %s %s" % (password, email), r"(?i)registered")

    def ns_identify(self, password, account=None):
        arg = "%s %s" % (account, password) if account else password
        return self.ns("IDENTIFY %s" % arg, r"(?i)identified|recogni")

    def whois_account(self, nick=None, timeout=None):
        """The services account of nick from WHOIS (330), or None."""
        nick = nick or self.nick
        mark = self.mark()
        self.send("WHOIS %s" % nick)
        acct = None
        while True:
            m = self.expect(lambda x: x.command in ("330", "318", "401"), timeout,
                            "WHOIS %s" % nick, mark)
            mark = self.seen.index(m) + 1
            if m.command == "330" and len(m.params) >= 3:
                acct = m.params[2]
            if m.command in ("318", "401"):
                return acct

    def wait_account(self, nick=None, timeout=10.0):
        """Polls WHOIS until nick has an account (services can lag a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            acct = self.whois_account(nick)
            if acct or time.monotonic() > deadline:
                return acct
            time.sleep(0.2)

    def quit(self, reason="bye"):
        try:
            self.send("QUIT :%s" % reason)
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- harness: environment and TAP-like reporting ---------------------------
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IRC_ENV = os.path.join(ROOT, "tools", "irc_env.sh")


def free_port_pair():
    """Two consecutive free loopback ports (clients, server link)."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p >= 65535:
            continue
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p + 1))
        except OSError:
            continue
        finally:
            t.close()
        return p, p + 1
    raise RuntimeError("no free port pair")


class IrcEnv:
    """tools/irc_env.sh in a temp folder; use as a context manager.
    env_extra: more environment for irc_env.sh (TALLY_SIGNING_KEY,
    IRC_DATADIR, TALLY_PEER_DSN, ...; "{dir}" in a value is the env's
    folder). peer=True: a second server irc2.tally.test linked to the first
    (IRC_PEER=1), its clients on peer_port (client2)."""

    def __init__(self, tally_so=None, dsn=None, tag_extra="", keep=False, env_extra=None, peer=False):
        self.tally_so, self.dsn, self.tag_extra = tally_so, dsn, tag_extra
        self.keep = keep or os.environ.get("TALLY_KEEP_ENV") == "1"
        self.env_extra, self.peer = dict(env_extra or {}), peer
        self.dir = None
        self.port = self.link_port = self.peer_port = None

    def __enter__(self):
        base = tempfile.mkdtemp(prefix="tally-irc-")
        os.chmod(base, 0o755)  # the daemons run as irc and must reach DIR
        self.dir = os.path.join(base, "net")
        self.port, self.link_port = free_port_pair()
        env = dict(os.environ)
        env["IRC_LINK_PORT"] = str(self.link_port)
        env["TALLY_SO"] = self.tally_so or "none"
        env["TALLY_DSN"] = self.dsn or ""
        env["TALLY_TAG_EXTRA"] = self.tag_extra
        for k, v in self.env_extra.items():
            env[k] = v.replace("{dir}", self.dir)
        if self.peer:
            while self.peer_port in (None, self.port, self.link_port):
                self.peer_port = free_port_pair()[0]
            env["IRC_PEER"] = "1"
            env["IRC_PEER_PORT"] = str(self.peer_port)
        r = subprocess.run([IRC_ENV, "start", self.dir, str(self.port)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            self._cleanup()
            raise RuntimeError("irc_env start failed:\n" + r.stdout)
        return self

    def log(self, name="ircd.log"):
        path = os.path.join(self.dir, "logs", name)
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def client(self, nick, **kw):
        return IRCClient("127.0.0.1", self.port, nick, **kw)

    def client2(self, nick, **kw):
        """A client of the peer server (peer=True)."""
        return IRCClient("127.0.0.1", self.peer_port, nick, **kw)

    def peer_log(self, name="ircd.log"):
        try:
            with open(os.path.join(self.dir, "peer", "logs", name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _cleanup(self):
        subprocess.run([IRC_ENV, "stop", self.dir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if self.keep:
            print("# kept %s" % self.dir)
        else:
            shutil.rmtree(os.path.dirname(self.dir), ignore_errors=True)

    def __exit__(self, *exc):
        self._cleanup()
        return False


PG_SH = os.path.join(ROOT, "tools", "pg.sh")
PSQL = "/usr/lib/postgresql/15/bin/psql"


def psql(dsn, sql):
    """Runs one SQL statement; returns its rows as lists of text (-tA)."""
    r = subprocess.run([PSQL, "-X", "-q", "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1", dsn,
                        "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise IRCError("psql failed: %s" % r.stderr.strip())
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def dsn_param(dsn, key):
    m = re.search(r"(?:^|\s)%s=(\S+)" % key, dsn)
    return m.group(1) if m else None


class TestDb:
    """A database of its own for one e2e script: CREATE DATABASE e2e_<name>_<pid>
    on the cluster of $TALLY_TEST_DSN (like tests/lib/harness.c th_fresh_db),
    so each script's engine is the only writer of its database. Without
    TALLY_TEST_DSN it starts a private cluster with tools/pg.sh. `pgdir` is the
    cluster's folder (tools/pg.sh kill|start DIR) when it is known: $TALLY_TMP/pg,
    else the DSN's host= socket folder (pg.sh puts the socket there)."""

    def __init__(self, name, private=False):
        """private=True: a cluster of its own even under tests/run.sh, for a
        script that kills and restarts PostgreSQL (the shared cluster serves
        the scripts running beside it)."""
        self.name = "e2e_%s_%d" % (re.sub(r"[^a-z0-9_]", "_", name.lower()), os.getpid())
        self.private = private
        self.base = "" if private else os.environ.get("TALLY_TEST_DSN", "")
        self.own = None
        self.dsn = self.pgdir = None

    def __enter__(self):
        if not self.base:
            self.own = tempfile.mkdtemp(prefix="tally-pg-")
            os.chmod(self.own, 0o755)
            self.base = subprocess.run([PG_SH, "start", os.path.join(self.own, "pg")], check=True,
                                       text=True, stdout=subprocess.PIPE).stdout.strip()
        tmp = None if self.private else os.environ.get("TALLY_TMP")
        for cand in ([os.path.join(tmp, "pg")] if tmp else []) + [dsn_param(self.base, "host")]:
            if cand and os.path.isfile(os.path.join(cand, "data", "PG_VERSION")):
                self.pgdir = cand
                break
        admin = re.sub(r"dbname=\S+", "", self.base) + " dbname=postgres"
        psql(admin, "DROP DATABASE IF EXISTS %s" % self.name)
        psql(admin, "CREATE DATABASE %s" % self.name)
        self.admin = admin
        self.dsn = re.sub(r"dbname=\S+", "", self.base).strip() + " dbname=%s" % self.name
        return self

    def query(self, sql):
        return psql(self.dsn, sql)

    def scalar(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows and rows[0] else None

    def pg(self, action):
        """tools/pg.sh ACTION on this cluster (kill, start); False if unknown."""
        if not self.pgdir:
            return False
        pid = None
        try:
            with open(os.path.join(self.pgdir, "data", "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            pass
        subprocess.run([PG_SH, action, self.pgdir], check=True, stdout=subprocess.DEVNULL)
        if action == "kill" and pid:
            # The killed postmaster stays a zombie until init reaps it (seconds
            # in some sandboxes), and pg_ctl takes a zombie for a running
            # server: wait until it is gone, so that "start" really starts.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
                time.sleep(0.05)
        return True

    def __exit__(self, *exc):
        try:
            psql(self.admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)
        except Exception:
            pass
        if self.own:
            subprocess.run([PG_SH, "stop", os.path.join(self.own, "pg")])
            shutil.rmtree(self.own, ignore_errors=True)
        return False


def tally_cli(dsn, *args):
    """Runs $TALLY_BUILD/tally --dsn DSN ARGS; returns (exit code, output)."""
    build = os.environ.get("TALLY_BUILD", os.path.join(ROOT, "build"))
    r = subprocess.run([os.path.join(build, "tally"), "--dsn", dsn] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


TRANSIENT = re.compile(r"starting up|busy, try again")
# Said when a commit takes longer than pending_timeout (a loaded machine);
# the real answer follows.
PENDING = re.compile(r"^payment pending; check RECEIPTS shortly$")


DEMO_TAGS = 'welcome_grant="10000" rate_account="0" rate_channel="0"'


def network_test(name, scenario, tag_extra=DEMO_TAGS, settle=0.5):
    """The whole of an end-to-end script: its own database e2e_<name>_<pid>
    and network, scenario(tap, env, db), then `tally check` on the ledger
    (after `settle` seconds, for rows that go with the next batch). Prints
    TAP and exits with its status."""
    tap = Tap()
    so = tally_so()
    if not os.path.isfile(so):
        # A missing module is a broken build, not a reason to pass.
        tap.check("%s: the module is built" % name, False, "%s not built" % so)
        tap.exit()
    try:
        with TestDb(name) as db, IrcEnv(tally_so=so, dsn=db.dsn, tag_extra=tag_extra) as env:
            try:
                scenario(tap, env, db)
            except Exception:
                print_failure_logs(env, db)
                raise
            time.sleep(settle)
            rc, out = tally_cli(db.dsn, "check")
            tap.check("tally check passes", rc == 0, out[-2000:])
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


def own_db_main(name, body):
    """main() of a script that starts its servers itself: body(tap, so, db)
    with the module's path and a database of its own (TestDb e2e_<name>_<pid>),
    so scripts that run at once never share a ledger. Prints TAP and exits."""
    tap = Tap()
    so = tally_so()
    if not os.path.isfile(so):
        tap.check("%s: the module is built" % name, False, "%s not built" % so)
        tap.exit()
    try:
        with TestDb(name) as db:
            body(tap, so, db)
    except Exception as e:
        tap.check("environment", False, "%s: %s" % (type(e).__name__, e))
    tap.exit()


def print_failure_logs(env, db, lines=30):
    """What the module and PostgreSQL said, as TAP comments, so that a failed
    run shows its cause: tally's lines from InspIRCd's output (a failed
    batch names its error) and the cluster's errors in this database
    (tools/pg.sh puts the database name in each log line)."""
    mine = [ln for ln in env.log("ircd.out").splitlines() if "tally" in ln.lower()]
    for ln in mine[-lines:]:
        print("# ircd: %s" % ln[:300])
    if not db.pgdir:
        return
    try:
        with open(os.path.join(db.pgdir, "postgres.log"), errors="replace") as f:
            pg = [ln for ln in f if " %s " % db.name in ln and ("ERROR" in ln or "FATAL" in ln)]
    except OSError:
        return
    for ln in pg[-lines:]:
        print("# postgres: %s" % ln.rstrip()[:300])


def tally_ask(client, send, regex=".", timeout=60.0, retry=TRANSIENT):
    """Calls send() until tally's NOTICE to client does not match retry;
    returns that NOTICE, which must match regex. send is a line for the
    server or a function. A 'payment pending' notice is skipped: the
    answer after it counts."""
    deadline = time.monotonic() + timeout
    while True:
        mark = client.mark()
        if callable(send):
            send()
        else:
            client.send(send)
        while True:
            m = client.expect(lambda x: x.command == "NOTICE" and x.target == client.nick
                              and x.nick != "NickServ" and not x.prefix.startswith("NickServ"),
                              max(1.0, deadline - time.monotonic()), "tally NOTICE", mark)
            if not PENDING.search(m.text) or PENDING.search(regex):
                break
            mark = client.seen.index(m) + 1
        if retry is not None and retry.search(m.text) and time.monotonic() < deadline:
            time.sleep(0.5)
            continue
        if TRANSIENT.search(m.text) and not TRANSIENT.search(regex):
            # "starting up" or "busy" at the deadline is no answer, even to regex ".".
            raise IRCError("still %r after %.0f s" % (m.text, timeout))
        if not re.search(regex, m.text):
            raise IRCError("unexpected reply %r (wanted /%s/)" % (m.text, regex))
        return m


def make_creators(env, nicks, password, retry=TRANSIENT):
    """An IRC operator (OPER admin adminpass, logged in to a services
    account of its own: TALLY commands need one) gives each of nicks'
    accounts the creator role with TALLY ROLE, then leaves. Selling (DROP
    CREATE, EVENT TIER, EVENT REACT) needs that role, not only channel
    operator status."""
    oper = env.client(unique_nick("op"))
    answers = []
    try:
        oper.ns_register(password)
        if not oper.wait_account():
            raise IRCError("%s has no services account" % oper.nick)
        oper.send("OPER admin adminpass")
        oper.wait_numeric("381")
        for n in nicks:
            answers.append(tally_ask(oper, "TALLY ROLE %s creator" % n, r"is now a creator", 60, retry=retry))
    finally:
        oper.quit()
    return answers  # the evidence: one "is now a creator" answer per nick


def tally_so():
    build = os.environ.get("TALLY_BUILD", os.path.join(ROOT, "build"))
    return os.path.join(build, "m_tally.so")


class Tap:
    """Prints `ok NAME` / `not ok NAME`; exit code says whether all passed."""

    def __init__(self):
        self.failed = 0
        self.count = 0

    def check(self, name, cond, detail=""):
        self.count += 1
        if cond:
            print("ok %s" % name, flush=True)
        else:
            self.failed += 1
            print("not ok %s" % name, flush=True)
            for line in str(detail).splitlines():
                print("#   %s" % line, flush=True)
        return bool(cond)

    def run(self, name, fn):
        """Runs fn(); an exception is a failed check with its message. fn
        returns its evidence (the matched message, or True after its own
        checks): a scenario that returns nothing, None or False fails, so a
        check cannot pass by forgetting to look."""
        try:
            res = fn()
        except Exception as e:  # a test failure, reported not raised
            return self.check(name, False, "%s: %s" % (type(e).__name__, e))
        return self.check(name, bool(res), "returned %r: no evidence (a scenario returns the matched "
                          "message or True after its checks)" % (res,))

    def skip(self, name, why):
        self.count += 1
        print("ok %s # SKIP %s" % (name, why), flush=True)

    def exit(self):
        sys.exit(1 if self.failed else 0)


def unique_nick(prefix):
    return "%s%04x" % (prefix, (os.getpid() * 7919 + int(time.time() * 1000)) & 0xFFFF)


def _pids_alive(pidfiles):
    for pf in pidfiles:
        try:
            with open(pf) as f:
                os.kill(int(f.read().strip()), 0)
        except (OSError, ValueError):
            return False
    return True


def probe(host, port, seconds, pidfiles=()):
    """Connects and waits until NickServ answers; True on success. Gives up
    early when a process named by one of pidfiles has exited."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _pids_alive(pidfiles):
        try:
            c = IRCClient(host, port, unique_nick("probe"), timeout=5)
        except (OSError, IRCError):
            time.sleep(0.2)
            continue
        try:
            while time.monotonic() < deadline and _pids_alive(pidfiles):
                mark = c.mark()
                c.privmsg("NickServ", "HELP")
                try:
                    m = c.expect(lambda x: (x.command == "NOTICE" and x.nick == "NickServ")
                                 or x.command == "401", 2, "NickServ", mark)
                    if m.command == "NOTICE":
                        return True
                except IRCError:
                    pass
                time.sleep(0.3)
        except (OSError, IRCError):
            pass
        finally:
            c.quit()
    return False


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "probe":
        try:
            ok = probe(sys.argv[2], int(sys.argv[3]),
                       float(sys.argv[4]) if len(sys.argv) > 4 else 30, sys.argv[5:])
        except KeyboardInterrupt:  # Ctrl-C during `make run`: no traceback
            sys.exit(130)
        sys.exit(0 if ok else 1)
    print(__doc__.strip(), file=sys.stderr)
    sys.exit(2)
