"""tallyd_env.py — a real tallyd for end-to-end tests, in a temp folder.

    with TallydEnv(dsn, secrets={"irc": "..."}) as td:
        td.unix_address       # "unix:/tmp/.../tally.sock", for <tally address=...>
        td.tag("irc")         # the <tally> attributes of remote mode for that network
        td.kill(); td.start() # SIGKILL and start again (same config, same state)

The daemon is build/tallyd (env TALLY_BUILD), run in the foreground with a
config file written here; start() waits for READY=1 on a private
NOTIFY_SOCKET (the systemd notify path), so a test never races the socket.
With tls=True it also listens on a free loopback port with a certificate
made by `openssl` for 127.0.0.1 (ca.pem signs it; td.ca names it).
Stopping is SIGTERM and a wait for exit 0 (stop() returns the code).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TALLY_BUILD", os.path.join(ROOT, "build"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_certs(folder):
    """A CA, and a server certificate for 127.0.0.1 signed by it."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tally test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(folder, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    for name in os.listdir(folder):
        os.chmod(os.path.join(folder, name), 0o644)  # the ircd (user irc) reads ca.pem


class TallydEnv:
    def __init__(self, dsn, secrets, tls=False, extra=None, keep=False, binary=None):
        # binary: another tallyd (e.g. the sanitizer build's, for its test faults)
        self.binary = binary
        self.dsn, self.secrets, self.tls = dsn, dict(secrets), tls
        self.extra = dict(extra or {})
        self.keep = keep or os.environ.get("TALLY_KEEP_ENV") == "1"
        self.dir = self.proc = None
        self.tls_port = None
        self.log_path = None

    # ---- set-up ------------------------------------------------------------
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tallyd-")
        os.chmod(self.dir, 0o755)  # the ircd runs as irc and must reach the socket
        self.sock = os.path.join(self.dir, "tally.sock")
        lines = ["listen_unix = %s" % self.sock, "unix_mode = 0666",
                 "state_dir = %s" % os.path.join(self.dir, "state"),
                 "dsn = %s" % self.dsn]
        for net, secret in self.secrets.items():
            path = os.path.join(self.dir, "secret." + net)
            with open(path, "w") as f:
                f.write(secret + "\n")
            os.chmod(path, 0o600)
            lines.append("secret.%s = %s" % (net, path))
        if self.tls:
            make_certs(self.dir)
            self.tls_port = free_port()
            lines += ["listen_tcp = 127.0.0.1:%d" % self.tls_port,
                      "tls_cert = %s" % os.path.join(self.dir, "server.pem"),
                      "tls_key = %s" % os.path.join(self.dir, "server.key")]
        for k, v in self.extra.items():
            lines.append("%s = %s" % (k, v))
        self.config = os.path.join(self.dir, "tallyd.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(self.dir, "tallyd.log")
        self.start()
        return self

    @property
    def unix_address(self):
        return "unix:" + self.sock

    @property
    def tls_address(self):
        return "tls:127.0.0.1:%d" % self.tls_port

    @property
    def tls_name_address(self):
        """By name: the module looks localhost up (off its thread) and checks the name."""
        return "tls:localhost:%d" % self.tls_port

    @property
    def ca(self):
        return os.path.join(self.dir, "ca.pem")

    def tag(self, network="irc", address=None, **more):
        attrs = {"mode": "remote", "address": address or self.unix_address,
                 "secret": self.secrets[network], "network": network}
        if address and address.startswith("tls:"):
            attrs["remote_ca"] = self.ca
        attrs.update(more)
        return " ".join('%s="%s"' % kv for kv in attrs.items())

    # ---- the process ---------------------------------------------------------
    def start(self, timeout=30):
        notify = os.path.join(self.dir, "notify.sock")
        if os.path.exists(notify):
            os.unlink(notify)
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(notify)
        env = dict(os.environ, NOTIFY_SOCKET=notify)
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary or os.path.join(BUILD, "tallyd"), "--config", self.config],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        ns.settimeout(0.2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    msg = ns.recv(4096).decode(errors="replace")
                except socket.timeout:
                    if self.proc.poll() is not None:
                        raise RuntimeError("tallyd exited %d:\n%s" % (self.proc.returncode, self.log()))
                    continue
                if "READY=1" in msg.split("\n"):
                    return
            raise RuntimeError("tallyd was not ready within %ds:\n%s" % (timeout, self.log()))
        finally:
            ns.close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=30):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __exit__(self, *exc):
        self.stop()
        if self.keep:
            print("# kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False
