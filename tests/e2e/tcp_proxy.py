"""tcp_proxy.py — a loopback TCP proxy an end-to-end test can cut.

    p = TcpProxy("127.0.0.1", target_port); p.port   # connect here instead
    p.cut()       # closes every open connection at once (mid-frame, whatever
                  # was in flight) and refuses new ones
    p.restore()   # accepts again
    p.close()

Bytes are forwarded as they come, in both directions, by one thread per
direction; TLS passes through untouched (the proxy never sees plaintext).
"""

import socket
import threading


class TcpProxy:
    def __init__(self, host, target_port):
        self.target = (host, target_port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []
        self.refusing = False
        self.closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.refusing:
                    c.close()
                    continue
            try:
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            # The 5 s was for connecting only: a link may sit idle far longer,
            # and a recv timeout would close it as if the network had.
            s.settimeout(None)
            with self.lock:
                self.pairs.append((c, s))
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.refusing = True
            pairs, self.pairs = self.pairs, []
            self.cuts += 1
        for c, s in pairs:
            for x in (c, s):
                try:
                    # RST, not FIN: as a dead link or a crashed peer looks.
                    x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    x.shutdown(socket.SHUT_RD)  # wakes the pipe thread's recv; sends nothing
                    x.close()
                except OSError:
                    pass

    def restore(self):
        with self.lock:
            self.refusing = False

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()
