"""ejabberd_env.py — a private ejabberd 23.01 (Debian's) for tests: its own
config, spool and logs in a temp folder, run as user ejabberd, on loopback
only (c2s and component ports are free loopback ports; epmd and the Erlang
distribution listen on 127.0.0.1 on a private epmd port, stopped at the
end), with tally's component domain SHOP on the component port.

Used by tests/e2e/test_xmpp_component.py and the conformance driver
tests/conformance/driver_component.py:

    with EjabberdEnv(secret) as ej:        # ej.c2s, ej.comp: the ports
        register_all(ej.c2s, {"bob": "pw-bob"})
        ...
        ej.stop(); ej.start()              # a restart, same spool

Users register in one pass by in-band registration over plain sockets
(register_all), not one ejabberdctl call each. Rooms on MUC may be created
by local users only, persistent if their owner says so.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DOMAIN = "xmpp.test"
MUC = "conference.xmpp.test"
SHOP = "shop.xmpp.test"
EJABBERDCTL = "/usr/sbin/ejabberdctl"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class EjabberdEnv:
    """A private ejabberd: own config folder, spool and logs under a temp dir."""

    def __init__(self, secret, extra_hosts=(), persistent_rooms=False):
        """secret: the component's password; extra_hosts: more user domains
        (each with its own conference.<host>); persistent_rooms: a room
        outlives its last occupant (not a restart: the spool is kept, but
        the tests that restart want the rooms gone)."""
        self.secret = secret
        self.hosts = [DOMAIN] + list(extra_hosts)
        self.persistent = persistent_rooms
        self.proc = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tally-ejabberd-")
        os.chmod(self.dir, 0o755)
        self.c2s, self.comp, self.epmd = free_port(), free_port(), free_port()
        self.spool, self.logs = os.path.join(self.dir, "spool"), os.path.join(self.dir, "logs")
        os.makedirs(self.spool)
        os.makedirs(self.logs)
        os.makedirs(os.path.join(self.dir, "modules.d"))
        self.yml = os.path.join(self.dir, "ejabberd.yml")
        with open(self.yml, "w") as f:
            f.write("""# written by tests/e2e/ejabberd_env.py
hosts: [{hosts}]
loglevel: info
log_rotate_count: 0
certfiles: []
auth_method: internal
auth_password_format: plain
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
  loopback:
    ip: ["127.0.0.0/8"]
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
  from_loopback:
    allow: loopback
  muc_create:
    allow: local
shaper_rules:
  c2s_shaper: none
listen:
  - port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    access: c2s
    shaper: c2s_shaper
    starttls: false
    max_stanza_size: 262144
  - port: {comp}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
      {shop}:
        password: "{secret}"
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_register:
    ip_access: from_loopback
    access: register
  mod_muc:
    host: "conference.@HOST@"
    access: all
    access_create: muc_create
    access_persistent: muc_create
    default_room_options:
      anonymous: false
      mam: false
      persistent: {persistent}
    history_size: 20
""".format(hosts=", ".join(self.hosts), persistent="true" if self.persistent else "false", c2s=self.c2s, comp=self.comp, shop=SHOP, secret=self.secret))
        self.ctl = os.path.join(self.dir, "ejabberdctl.cfg")
        self.node = "tally%d@localhost" % os.getpid()
        with open(self.ctl, "w") as f:
            f.write("ERLANG_NODE=%s\nERL_EPMD_ADDRESS=127.0.0.1\nINET_DIST_INTERFACE=127.0.0.1\n"
                    "export ERL_EPMD_PORT=%d\nEJABBERD_PID_PATH=%s\nCONTRIB_MODULES_CONF_DIR=%s\n"
                    'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\n'
                    % (self.node, self.epmd, os.path.join(self.dir, "ejabberd.pid"),
                       os.path.join(self.dir, "modules.d")))
        shutil.copy("/etc/ejabberd/inetrc", os.path.join(self.dir, "inetrc"))
        subprocess.run(["chown", "-R", "ejabberd:ejabberd", self.dir], check=True)
        self.start()
        return self

    def start(self, timeout=60):
        out = open(os.path.join(self.dir, "ejabberd.out"), "a")
        self.proc = subprocess.Popen([EJABBERDCTL, "--config-dir", self.dir, "--ctl-config", self.ctl,
                                      "--config", self.yml, "--spool", self.spool, "--logs", self.logs,
                                      "foreground"], stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.dir)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ejabberd exited %d:\n%s" % (self.proc.returncode, self.log()[-3000:]))
            try:
                socket.create_connection(("127.0.0.1", self.c2s), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.comp), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("ejabberd did not listen within %ds:\n%s" % (timeout, self.log()[-3000:]))

    def beam_pids(self):
        """The Erlang VMs of our node: su puts them in a session of their own,
        so they are found by the node's name (unique to this test process)."""
        sname = ("-sname\0%s\0" % self.node).encode()
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if sname in f.read():
                        with open("/proc/%s/stat" % pid) as st:
                            if st.read().rsplit(")", 1)[1].split()[0] != "Z":
                                pids.append(int(pid))
            except OSError:
                pass
        return pids

    def stop(self, timeout=20):
        pids = self.beam_pids()
        for pid in pids:
            os.kill(pid, signal.SIGTERM)  # the VM stops ejabberd in order (init:stop)
        deadline = time.monotonic() + timeout
        while self.beam_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.beam_pids():
            os.kill(pid, signal.SIGKILL)
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # ejabberdctl and su, if still there
            self.proc.wait()

    def log(self):
        text = ""
        for name in ("ejabberd.out", "logs/ejabberd.log", "logs/error.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += "== %s\n%s" % (name, f.read())
            except OSError:
                pass
        return text

    def __exit__(self, *exc):
        self.stop()
        # epmd outlives the node that started it: ours listens on its own port.
        r = subprocess.run(["epmd", "-kill"], env=dict(os.environ, ERL_EPMD_PORT=str(self.epmd)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print("# epmd -kill on port %d: %s" % (self.epmd, r.stdout.strip()))
        if os.environ.get("TALLY_KEEP_ENV") == "1":
            print("# kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


def register_all(port, users, timeout=20, domain=DOMAIN):
    """In-band registration (XEP-0077) of every user in one pass over plain
    sockets (slixmpp 1.8 holds any stanza back until it has logged in), all
    sockets open at once: no ejabberdctl start per user."""
    socks = {}
    for user, pw in users.items():
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                   "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
                   "<iq type='set' id='reg-%s'><query xmlns='jabber:iq:register'><username>%s</username>"
                   "<password>%s</password></query></iq>" % (domain, user, user, pw)).encode())
        socks[user] = (s, b"")
    deadline = time.monotonic() + timeout
    errors = []
    for user, (s, got) in socks.items():
        while not re.search(rb"<iq[^>]*id=['\"]reg-%s['\"]" % user.encode(), got):
            s.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        m = re.search(rb"<iq[^>]*id=['\"]reg-%s['\"][^>]*>" % user.encode(), got)
        if not m or (b"type='result'" not in m.group(0) and b'type="result"' not in m.group(0)
                     and b"conflict" not in got):
            errors.append("%s: %r" % (user, got[-400:]))
        s.sendall(b"</stream:stream>")
        s.close()
    if errors:
        raise RuntimeError("registration failed: " + "; ".join(errors))
