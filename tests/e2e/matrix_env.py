"""matrix_env.py — what every Matrix end-to-end script sets up the same way:
a fresh AS registration (`tally matrix-registration`), its tokens, and the
tallyd keys that serve the Application Service on a port.

    reg = fresh_registration(tap, db.dsn, "matrix-rooms", port, SERVER)
    as_token, hs_token = read_tokens(reg)
    with TallydEnv(db.dsn, SECRETS, extra=as_keys(port, reg, hs.url, SERVER, matrix_admins=ADMIN)) as td:
        with log_on_failure(td):
            scenario(...)
"""

import contextlib
import os
import re

import ircclient as ic

# Demo-like engine keys the Matrix scripts run with (no rate limits: the
# scripts send faster than a person).
ENGINE_KEYS = {"welcome_grant": "1000", "rate_account": "0", "rate_channel": "0"}


def fresh_registration(tap, dsn, name, port, server):
    """Writes a new registration for an AS at http://127.0.0.1:port into
    $TALLY_TMP/<name>-reg-<pid>.yaml (an older one removed first: the CLI
    never overwrites); the check names the CLI's answer. Its path."""
    tmp = os.environ.get("TALLY_TMP") or "/tmp"
    os.makedirs(tmp, exist_ok=True)
    reg = os.path.join(tmp, "%s-reg-%d.yaml" % (name, os.getpid()))
    if os.path.exists(reg):
        os.unlink(reg)
    rc, out = ic.tally_cli(dsn, "matrix-registration", reg, "http://127.0.0.1:%d" % port, server)
    tap.check("tally matrix-registration writes the file", rc == 0 and os.path.isfile(reg), out)
    return reg


def read_tokens(path):
    vals = {}
    with open(path) as f:
        for line in f:
            m = re.match(r'^(as_token|hs_token): "([0-9a-f]+)"$', line.strip())
            if m:
                vals[m.group(1)] = m.group(2)
    return vals["as_token"], vals["hs_token"]


def as_keys(port, reg, homeserver, server, engine=True, **more):
    """tallyd's keys for the AS on port (and the demo engine keys unless
    engine=False), plus `more`."""
    keys = {"matrix_listen": "127.0.0.1:%d" % port, "matrix_registration": reg,
            "matrix_homeserver": homeserver, "matrix_server_name": server}
    if engine:
        keys.update(ENGINE_KEYS)
    keys.update(more)
    return keys


@contextlib.contextmanager
def log_on_failure(td):
    """On an exception, tallyd's log tail as TAP comments, then re-raised."""
    try:
        yield
    except Exception:
        print("# tallyd log tail:\n# " + "\n# ".join(td.log()[-3000:].splitlines()))
        raise


def speaker(hs, room):
    """say(sender, body, **message kwargs) pushes one message into room (its event; a
    transaction not answered 200 raises); ask(sender, body, regex) also
    waits for the bot's reply to it: (event, reply)."""
    from matrix_double import message

    def say(sender, body, **kw):
        ev = message(room, sender, body, **kw)
        st, js, _ = hs.push([ev])
        if st != 200:
            raise AssertionError("transaction answered %s %r" % (st, js))
        return ev

    def ask(sender, body, regex, timeout=20):
        ev = say(sender, body)
        return ev, hs.reply_to(ev["event_id"], regex, timeout)
    return say, ask


def tallyd_tap():
    """The script's Tap; a missing build/tallyd is a failure, and the end."""
    tap = ic.Tap()
    if not os.path.isfile(os.path.join(os.environ.get("TALLY_BUILD", "build"), "tallyd")):
        tap.check("tallyd is built", False)
        tap.exit()
    return tap


def run_script(tap, name, server, scenario, double_kw=None, **keys):
    """A whole script's frame: its database e2e_<name>_<pid>, a fresh
    registration, the double (HomeserverDouble(..., **double_kw)), tallyd
    with as_keys(...) plus keys, scenario(tap, hs, db, td), then tallyd
    stopping with 0 and `tally check`."""
    from matrix_double import HomeserverDouble
    from tallyd_env import TallydEnv, free_port
    with ic.TestDb(name.replace("-", "_")) as db:
        port = free_port()
        reg = fresh_registration(tap, db.dsn, name, port, server)
        as_token, hs_token = read_tokens(reg)
        hs = HomeserverDouble(as_token, hs_token, server, **(double_kw or {}))
        hs.as_url = "http://127.0.0.1:%d" % port
        try:
            with TallydEnv(db.dsn, {"irc": "irc-secret-0123456789"},
                           extra=as_keys(port, reg, hs.url, server, **keys)) as td:
                with log_on_failure(td):
                    scenario(tap, hs, db, td)
                tap.check("tallyd stops with 0", td.stop() == 0, td.log()[-2000:])
            rc, out = ic.tally_cli(db.dsn, "check")
            tap.check("tally check passes", rc == 0, out[-2000:])
        finally:
            hs.close()
        os.unlink(reg)
