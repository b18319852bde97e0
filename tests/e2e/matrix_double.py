"""matrix_double.py — a Matrix homeserver double, written from the spec, that
drives tallyd's Application Service (no homeserver can be installed here:
see /work/shared/HOSTS.md, Matrix).

Spec references are to the Matrix specification v1.x (spec.matrix.org):
  AS   = Application Service API
  CS   = Client-Server API

Two halves:

* The homeserver -> AS side (HomeserverDouble.push): what a homeserver sends.
  - AS "Pushing events": PUT /_matrix/app/v1/transactions/{txnId}, body
    {"events": [ClientEvent...]}; the homeserver retries the same txnId
    until 200 (the AS must treat a retry as a no-op).
  - AS "Authorization" (v1.4+, MSC2832): `Authorization: Bearer <hs_token>`;
    the deprecated `?access_token=<hs_token>` query for older homeservers
    (push(..., auth="query")).
  - AS "Pinging": POST /_matrix/app/v1/ping {"transaction_id"}.
  - AS "Querying": GET /_matrix/app/v1/users/{userId},
    GET /_matrix/app/v1/rooms/{roomAlias}.
  - CS "Room event format" (ClientEvent): event_id, room_id, sender, type,
    origin_server_ts, content, unsigned.age; m.room.message content: msgtype
    (m.text, m.notice), body, format/formatted_body; CS "Event replacements":
    m.relates_to {rel_type: m.replace} marks an edit.

* The AS -> homeserver side (an HTTP server the AS's matrix_homeserver points at):
  - CS "Sending events to a room": PUT
    /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId} -> 200
    {"event_id"}; CS "Transaction identifiers": the same (access token,
    txnId) is the same request: the first event_id is returned again and no
    second event is made.
  - AS "Using the Client-Server API": the as_token as the bearer acts as the
    sender_localpart user (no user_id given).
  - CS "Client Authentication": no token 401 M_MISSING_TOKEN, an unknown
    one 401 M_UNKNOWN_TOKEN.
  - CS "Rate limiting": 429 {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms"}.
  - CS "Joining rooms": POST /_matrix/client/v3/join/{roomIdOrAlias} -> {"room_id"}.
  - CS "API Standards": an unknown endpoint is 404 M_UNRECOGNIZED.
  - CS "GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}":
    200 the state event's content; 404 M_NOT_FOUND when the room has no
    such state; 403 M_FORBIDDEN when the user is not in the room (or the
    room is unknown). The empty state key is written as a trailing "/" (or
    left out, as Synapse also accepts).
  - CS "GET /_matrix/client/v3/rooms/{roomId}/joined_members": 200
    {"joined": {userId: {"display_name", "avatar_url"}}}; 403 M_FORBIDDEN
    when the user is not in the room.
  - CS "Creation" (POST /_matrix/client/v3/createRoom): body visibility,
    preset (trusted_private_chat: the invitees get the creator's power
    level), invite [userId], is_direct, initial_state -> 200 {"room_id"};
    the invitees are invited (not joined). An m.room.encryption event in
    initial_state would make it encrypted (recorded for the tests).
  - CS "Client Config" (account data): GET/PUT
    /_matrix/client/v3/user/{userId}/account_data/{type}; GET 404
    M_NOT_FOUND when never set; PUT 200 {}; a userId other than the one
    the token acts as is 403 M_FORBIDDEN. CS "Direct Messaging": m.direct
    is {userId: [roomId...]}, kept by the client (the AS), not the server.
  - CS "Redactions": PUT
    /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}, body
    {"reason"?} -> 200 {"event_id"} of the m.room.redaction event; the
    same (token, txnId) again is the same request (CS "Transaction
    identifiers"). Redacting another user's event needs the sender's power
    level to reach the room's `redact` level (CS "m.room.power_levels":
    default 50) and the level to send an m.room.redaction at all
    (`events["m.room.redaction"]`, else `events_default`, default 0: the
    room versions' "Authorization rules" check both), else 403
    M_FORBIDDEN; a user not in the room, 403 too.
  - CS "PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"
    (the empty state key as a trailing "/"): body the content -> 200
    {"event_id"}; the content becomes the room's state (read back by the GET
    above). 403 M_FORBIDDEN when the user is not in the room, or its power
    level is below the event type's (CS "m.room.power_levels": `events`
    [type], else `state_default`, default 50). Every state PUT is kept in
    `state_puts` for the tests. CS "m.room.pinned_events": content
    {"pinned": [eventId...]}.
  - CS "Threading": m.relates_to {rel_type: m.thread, event_id: root,
    is_falling_back, m.in_reply_to} in a sent event's content is kept as
    sent (the tests read it).
  - CS "Room Upgrades": m.room.tombstone (state_key "", content body,
    replacement_room) is a state event the homeserver pushes like any other
    (state(...)).
  Connections: HTTP/1.1 persistent (RFC 9112 9.3), counted in
  `connections`; drop_idle closes each after its answer without a
  Connection: close header, as a server's idle timeout can; chunked answers
  with Transfer-Encoding: chunked (two chunks and the last), as a server may.
  HTTPS (tallyd's matrix_homeserver = https://...): HomeserverDouble(...,
  tls=(certfile, keyfile)) serves the same over TLS (Python's ssl, TLS 1.2+;
  the test makes the certificates with the openssl CLI); set_certificate
  swaps the certificate for the next connections; a handshake the AS
  refuses (or that fails) is counted in `tls_failures`, not in
  `connections`; url is https://127.0.0.1:PORT.
  Faults are scripted with fail_next(status, body): the next sends are
  answered so (429 with retry_after_ms, 502), before any event is made;
  create_fail = status answers every createRoom so (a homeserver in
  trouble: CS "API Standards", a 5xx is retried) until set back to 0.
"""

import http.client
import http.server
import json
import os
import re
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

SEND = re.compile(r"^/_matrix/client/v3/rooms/([^/]+)/send/([^/]+)/([^/]+)$")
JOIN = re.compile(r"^/_matrix/client/v3/join/([^/]+)$")
STATE = re.compile(r"^/_matrix/client/v3/rooms/([^/]+)/state/([^/]+)(?:/([^/]*))?$")
MEMBERS = re.compile(r"^/_matrix/client/v3/rooms/([^/]+)/joined_members$")
ACCOUNT_DATA = re.compile(r"^/_matrix/client/v3/user/([^/]+)/account_data/([^/]+)$")
CREATE = "/_matrix/client/v3/createRoom"
REDACT = re.compile(r"^/_matrix/client/v3/rooms/([^/]+)/redact/([^/]+)/([^/]+)$")


def new_event_id():
    # CS "Event IDs" (room versions 4+): "$" and 43 url-safe base64 characters.
    return "$" + urllib.parse.quote(os.urandom(32).hex()[:43], safe="")


def message(room, sender, body, msgtype="m.text", age_ms=100, relates_to=None, event_id=None, formatted=None):
    """A ClientEvent of type m.room.message (CS "m.room.message")."""
    content = {"msgtype": msgtype, "body": body}
    if formatted is not None:
        content.update({"format": "org.matrix.custom.html", "formatted_body": formatted})
    if relates_to is not None:
        content["m.relates_to"] = relates_to
    return {"type": "m.room.message", "event_id": event_id or new_event_id(), "room_id": room,
            "sender": sender, "origin_server_ts": int(time.time() * 1000) - age_ms,
            "unsigned": {"age": age_ms}, "content": content}


def state(room, sender, etype, key, content, age_ms=100):
    """A state ClientEvent (CS "Room event format": state_key present),
    e.g. m.room.member (state_key = the member; content membership,
    displayname) or m.room.power_levels (state_key "")."""
    return {"type": etype, "state_key": key, "event_id": new_event_id(), "room_id": room, "sender": sender,
            "origin_server_ts": int(time.time() * 1000) - age_ms, "unsigned": {"age": age_ms}, "content": content}


def member(room, user, membership="join", displayname=None, sender=None, **extra):
    content = {"membership": membership}
    if displayname is not None:
        content["displayname"] = displayname
    content.update(extra)
    return state(room, sender or user, "m.room.member", user, content)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls = None  # an ssl.SSLContext: connections are wrapped (the handshake in their thread)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ssl.SSLError, OSError)):
            return  # a refused handshake, a reset: counted or expected, not a traceback
        super().handle_error(request, client_address)


class HomeserverDouble:
    def __init__(self, as_token, hs_token, server_name="test.local", port=0, tls=None):
        self.as_token, self.hs_token, self.server_name = as_token, hs_token, server_name
        self.lock = threading.Condition()
        self.events = []          # (room, event dict) in the order made
        self.txns = {}            # (token, txnId) -> event_id  (CS "Transaction identifiers")
        self.attempts = []        # every send request: (room, txnId, status)
        self.faults = []          # scripted (status, body) for the next sends
        self.txn_seq = 0
        self.joins = []           # rooms the AS joined (CS "Joining rooms")
        self.rooms = {}           # room -> {"members": {userId: display name}, "state": {(type, key): content}}
        self.created = []         # createRoom bodies, in order, with the room_id made
        self.account_data = {}    # (userId, type) -> content
        self.gets = []            # (path) of every GET, for the tests
        self.redactions = []      # (room, event_id, txnId, reason) of each redaction made (CS "Redactions")
        self.redact_txns = {}     # (token, txnId) -> the redaction's event_id
        self.state_puts = []      # (room, type, key, content, status) of each state PUT (CS "PUT .../state/...")
        self.room_seq = 0
        self.create_fail = 0      # createRoom answered with this status while set (0: served)
        self.create_attempts = 0  # createRoom requests, served or failed
        self.connections = 0      # TCP connections the AS opened to the client API
        self.drop_idle = False    # close each connection after its answer, unannounced (a server's idle timeout)
        self.chunked = False      # answers with Transfer-Encoding: chunked instead of Content-Length
        self.tls_failures = 0     # TLS handshakes that failed (the AS refused our certificate)
        self.demo_room = None     # the demo's room (serve)
        self.as_url = None
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                # HTTP/1.1 persistent connections (RFC 9112 9.3): one
                # handler per connection, many requests on it.
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.settimeout(10)
                    try:
                        self.request.do_handshake()
                    except (ssl.SSLError, OSError):
                        with double.lock:
                            double.tls_failures += 1
                        raise
                    self.request.settimeout(None)
                super().setup()
                with double.lock:
                    double.connections += 1

            def _reply(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if double.chunked:  # RFC 9112 7.1: the body in chunks, then a 0-size one
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    half = len(data) // 2
                    for piece in (data[:half], data[half:]):
                        if piece:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if double.drop_idle:
                    self.close_connection = True

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _authed(self):
                auth = self.headers.get("Authorization")
                if not auth:
                    self._reply(401, {"errcode": "M_MISSING_TOKEN", "error": "no token"})
                    return False
                if auth != "Bearer " + double.as_token:
                    self._reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "unknown token"})
                    return False
                return True

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                with double.lock:
                    double.gets.append(path)
                if not self._authed():
                    return
                m, st = STATE.match(path), None
                if m:
                    room, etype, key = (urllib.parse.unquote(x or "") for x in m.groups())
                    with double.lock:
                        r = double.rooms.get(room)
                        if r is None or double.bot not in r["members"]:
                            return self._reply(403, {"errcode": "M_FORBIDDEN", "error": "not in the room"})
                        c = r["state"].get((etype, key))
                    if c is None:
                        return self._reply(404, {"errcode": "M_NOT_FOUND", "error": "no such state"})
                    return self._reply(200, c)
                m = MEMBERS.match(path)
                if m:
                    room = urllib.parse.unquote(m.group(1))
                    with double.lock:
                        r = double.rooms.get(room)
                        if r is None or double.bot not in r["members"]:
                            return self._reply(403, {"errcode": "M_FORBIDDEN", "error": "not in the room"})
                        joined = {u: {"display_name": n, "avatar_url": None} for u, n in r["members"].items()}
                    return self._reply(200, {"joined": joined})
                m = ACCOUNT_DATA.match(path)
                if m:
                    user, typ = (urllib.parse.unquote(x) for x in m.groups())
                    if user != double.bot:
                        return self._reply(403, {"errcode": "M_FORBIDDEN", "error": "not your account data"})
                    with double.lock:
                        c = double.account_data.get((user, typ))
                    if c is None:
                        return self._reply(404, {"errcode": "M_NOT_FOUND", "error": "no account data"})
                    return self._reply(200, c)
                return self._reply(404, {"errcode": "M_UNRECOGNIZED", "error": "unknown endpoint"})

            def do_PUT(self):
                body = self._body()
                path = urllib.parse.urlsplit(self.path).path
                m = ACCOUNT_DATA.match(path)
                if m:
                    if not self._authed():
                        return
                    user, typ = (urllib.parse.unquote(x) for x in m.groups())
                    if user != double.bot:
                        return self._reply(403, {"errcode": "M_FORBIDDEN", "error": "not your account data"})
                    with double.lock:
                        double.account_data[(user, typ)] = json.loads(body or b"{}")
                        double.lock.notify_all()
                    return self._reply(200, {})
                m = STATE.match(path)
                if m:
                    if not self._authed():
                        return
                    room, etype, key = (urllib.parse.unquote(x or "") for x in m.groups())
                    try:
                        content = json.loads(body or b"{}")
                    except ValueError:
                        return self._reply(400, {"errcode": "M_NOT_JSON", "error": "not JSON"})
                    status, reply = double._put_state(room, etype, key, content)
                    return self._reply(status, reply)
                m = REDACT.match(path)
                if m:
                    if not self._authed():
                        return
                    room, event_id, txn = (urllib.parse.unquote(x) for x in m.groups())
                    status, reply = double._redact(room, event_id, txn, json.loads(body or b"{}"))
                    return self._reply(status, reply)
                m = SEND.match(path)
                if not m:
                    return self._reply(404, {"errcode": "M_UNRECOGNIZED", "error": "unknown endpoint"})
                auth = self.headers.get("Authorization")
                if not auth:
                    return self._reply(401, {"errcode": "M_MISSING_TOKEN", "error": "no token"})
                if auth != "Bearer " + double.as_token:
                    return self._reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "unknown token"})
                room, etype, txn = (urllib.parse.unquote(x) for x in m.groups())
                status, reply = double._send(room, etype, txn, json.loads(body or b"{}"))
                self._reply(status, reply)

            def do_POST(self):
                body = self._body()
                path = urllib.parse.urlsplit(self.path).path
                m = JOIN.match(path)
                if m and self.headers.get("Authorization") == "Bearer " + double.as_token:
                    room = urllib.parse.unquote(m.group(1))
                    with double.lock:
                        double.joins.append(room)
                        double.rooms.setdefault(room, {"members": {}, "state": {}})["members"][double.bot] = "tally"
                        double.lock.notify_all()
                    return self._reply(200, {"room_id": room})
                if path == CREATE:
                    if not self._authed():
                        return
                    try:
                        req = json.loads(body or b"{}")
                    except ValueError:
                        return self._reply(400, {"errcode": "M_NOT_JSON", "error": "not JSON"})
                    with double.lock:
                        double.create_attempts += 1
                        double.lock.notify_all()
                        if double.create_fail:
                            return self._reply(double.create_fail, {"errcode": "M_UNKNOWN", "error": "scripted fault"})
                        double.room_seq += 1
                        room = "!dm%d.%d:%s" % (os.getpid(), double.room_seq, double.server_name)
                        state = {(e.get("type"), e.get("state_key", "")): e.get("content")
                                 for e in req.get("initial_state") or []}
                        double.rooms[room] = {"members": {double.bot: "tally"}, "state": state,
                                              "invited": list(req.get("invite") or [])}
                        double.created.append(dict(req, room_id=room))
                        double.lock.notify_all()
                    return self._reply(200, {"room_id": room})
                return self._reply(404, {"errcode": "M_UNRECOGNIZED", "error": "unknown endpoint"})

            def do_control(self, method):
                # Not Matrix: the demo's control (make run, tools/matrix-say):
                # POST /_double/say {sender, body, room?, dm?, name?} speaks as a
                # user; GET /_double/events?since=N&wait=MS lists what was made.
                path = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(path.query)
                if method == "POST" and path.path == "/_double/say":
                    try:
                        req = json.loads(self._body() or b"{}")
                        return self._reply(200, double.demo_say(req))
                    except (ValueError, KeyError) as e:
                        return self._reply(400, {"error": str(e)})
                if method == "GET" and path.path == "/_double/events":
                    since = int((q.get("since") or ["0"])[0])
                    wait = min(int((q.get("wait") or ["0"])[0]), 30000) / 1000.0
                    deadline = time.monotonic() + wait
                    with double.lock:
                        while len(double.events) <= since and time.monotonic() < deadline:
                            double.lock.wait(deadline - time.monotonic())
                        evs = [ev for _, ev in double.events[since:]]
                        return self._reply(200, {"events": evs, "next": len(double.events)})
                return self._reply(404, {"errcode": "M_UNRECOGNIZED", "error": "unknown endpoint"})

        orig_get, orig_post = Handler.do_GET, Handler.do_POST

        def do_get(h):
            return h.do_control("GET") if h.path.startswith("/_double/") else orig_get(h)

        def do_post(h):
            return h.do_control("POST") if h.path.startswith("/_double/") else orig_post(h)
        Handler.do_GET, Handler.do_POST = do_get, do_post

        self.server = _Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        if tls:
            self.set_certificate(*tls)
            self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_certificate(self, certfile, keyfile):
        """The certificate (chain) the next TLS connections are served with."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(certfile, keyfile)
        self.server.tls = ctx

    @property
    def bot(self):
        return "@tally:%s" % self.server_name

    # ---- AS -> homeserver ----------------------------------------------------
    def _send(self, room, etype, txn, content):
        with self.lock:
            if self.faults:
                status, body = self.faults.pop(0)
                self.attempts.append((room, txn, status))
                return status, body
            key = (self.as_token, txn)
            if key not in self.txns:  # a retried txnId makes no second event
                ev = {"type": etype, "event_id": new_event_id(), "room_id": room, "sender": self.bot,
                      "content": content, "txn_id": txn}
                self.txns[key] = ev["event_id"]
                self.events.append((room, ev))
                self.lock.notify_all()
            self.attempts.append((room, txn, 200))
            return 200, {"event_id": self.txns[key]}

    def _redact(self, room, event_id, txn, content):
        with self.lock:
            key = (self.as_token, txn)
            if key in self.redact_txns:  # CS "Transaction identifiers": the same request
                return 200, {"event_id": self.redact_txns[key]}
            r = self.rooms.get(room)
            if r is None or self.bot not in r["members"]:
                return 403, {"errcode": "M_FORBIDDEN", "error": "not in the room"}
            pl = r["state"].get(("m.room.power_levels", "")) or {}
            level = (pl.get("users") or {}).get(self.bot, pl.get("users_default", 0))
            send = (pl.get("events") or {}).get("m.room.redaction", pl.get("events_default", 0))
            if level < pl.get("redact", 50) or level < send:
                return 403, {"errcode": "M_FORBIDDEN", "error": "power level too low to redact"}
            rid = new_event_id()
            self.redact_txns[key] = rid
            self.redactions.append((room, event_id, txn, content.get("reason")))
            self.lock.notify_all()
            return 200, {"event_id": rid}

    def _put_state(self, room, etype, key, content):
        with self.lock:
            r = self.rooms.get(room)
            if r is None or self.bot not in r["members"]:
                status, reply = 403, {"errcode": "M_FORBIDDEN", "error": "not in the room"}
            else:
                pl = r["state"].get(("m.room.power_levels", "")) or {}
                level = (pl.get("users") or {}).get(self.bot, pl.get("users_default", 0))
                need = (pl.get("events") or {}).get(etype, pl.get("state_default", 50))
                if level < need:
                    status, reply = 403, {"errcode": "M_FORBIDDEN",
                                          "error": "power level %d below %d for %s" % (level, need, etype)}
                else:
                    r["state"][(etype, key)] = content
                    status, reply = 200, {"event_id": new_event_id()}
            self.state_puts.append((room, etype, key, content, status))
            self.lock.notify_all()
            return status, reply

    def set_room(self, room, members, power_levels=None):
        """The room as the homeserver knows it: members {userId: display name}
        (the bot among them when it has joined), its m.room.power_levels."""
        with self.lock:
            state = {}
            if power_levels is not None:
                state[("m.room.power_levels", "")] = power_levels
            self.rooms[room] = {"members": dict(members), "state": state}

    def wait_for(self, pred, timeout=20):
        """Waits until pred() (called under the lock) is true; returns its value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("not within %ss" % timeout)
                self.lock.wait(left)

    def fail_next(self, status, body):
        with self.lock:
            self.faults.append((status, body))

    def wait_event(self, pred, timeout=20, since=0):
        """The first event made (index >= since) for which pred(room, event) holds."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for i in range(since, len(self.events)):
                    if pred(*self.events[i]):
                        return i, self.events[i][1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no such event within %ss; made: %r" % (
                        timeout, [e[1]["content"].get("body") for e in self.events[since:]][-10:]))
                self.lock.wait(left)

    def reply_to(self, event_id, regex, timeout=20, since=0):
        """The notice answering event_id (m.in_reply_to) whose body matches regex."""
        def pred(room, ev):
            c = ev["content"]
            rel = c.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            return rel == event_id and re.search(regex, c.get("body", ""))
        return self.wait_event(pred, timeout, since)[1]

    def replies(self, event_id):
        with self.lock:
            return [ev for _, ev in self.events
                    if ev["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == event_id]

    def mark(self):
        with self.lock:
            return len(self.events)

    # ---- homeserver -> AS ----------------------------------------------------
    def push(self, events, txn_id=None, auth="header", token=None, raw=None, timeout=30):
        """PUT a transaction to the AS; returns (status, parsed JSON or None, txn_id)."""
        if txn_id is None:
            with self.lock:
                self.txn_seq += 1
                txn_id = "t%d.%d" % (os.getpid(), self.txn_seq)
        body = raw if raw is not None else json.dumps({"events": events}).encode()
        path = "/_matrix/app/v1/transactions/" + urllib.parse.quote(txn_id, safe="")
        # AS "Pushing events": a homeserver sends the same txnId again until
        # it gets 200; a 503 (tallyd starting) is retried here, as one would.
        deadline = time.monotonic() + timeout
        while True:
            st, js = self.request("PUT", path, body, auth, token, timeout)
            if st != 503 or time.monotonic() > deadline:
                return st, js, txn_id
            time.sleep(0.1)

    def request(self, method, path, body=b"", auth="header", token=None, timeout=30):
        token = self.hs_token if token is None else token
        headers = {"Content-Type": "application/json"}
        if auth == "header":
            headers["Authorization"] = "Bearer " + token
        elif auth == "query":
            path += ("&" if "?" in path else "?") + "access_token=" + urllib.parse.quote(token)
        u = urllib.parse.urlsplit(self.as_url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
        except (ConnectionError, http.client.HTTPException) as e:
            return (0, {"error": str(e)})
        finally:
            c.close()
        try:
            return (r.status, json.loads(data) if data else None)
        except ValueError:
            return (r.status, None)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # ---- the demo (make run HOSTS=...,matrix; tools/matrix-say) ---------------
    def demo_say(self, req):
        """Speaks as req["sender"] in req["room"] (or, with dm, in the DM the
        bot made for the sender): joins the sender first when not a member
        (an m.room.member event, as a homeserver would push), then the
        message, each pushed until the AS answers 200."""
        sender, body = req["sender"], req["body"]
        with self.lock:
            if req.get("dm"):
                rooms = [c["room_id"] for c in self.created if sender in (c.get("invite") or [])]
                if not rooms:
                    raise KeyError("the bot has not opened a DM with %s yet (say a private command in the room "
                                   "first, e.g. !ship 1 x)" % sender)
                room = rooms[-1]
            else:
                room = req.get("room") or self.demo_room
            r = self.rooms.setdefault(room, {"members": {}, "state": {}})
            name = req.get("name") or sender[1:].split(":")[0].capitalize()
            joining = sender not in r["members"]
            if joining:
                r["members"][sender] = name
            mark = len(self.events)
        if joining:
            self._push_until_ok([member(room, sender, displayname=name)])
        ev = message(room, sender, body)
        self._push_until_ok([ev])
        return {"event_id": ev["event_id"], "room": room, "since": mark}

    def _push_until_ok(self, events, tries=50):
        for _ in range(tries):
            st, js, _ = self.push(events)
            if st == 200:
                return
            time.sleep(0.2)
        raise KeyError("the AS did not take the transaction (HTTP %s %r)" % (st, js))


def serve(argv):
    """python3 matrix_double.py serve REGISTRATION HS_PORT AS_URL SERVER_NAME
    — the double as a long-running homeserver for `make run`: a demo room
    #live (!live:SERVER_NAME) hosted by @host:SERVER_NAME (power level 100),
    with @guest:SERVER_NAME, the bot invited to it; every message the bot sends is printed."""
    import signal
    reg, port, as_url, server_name = argv[0], int(argv[1]), argv[2], argv[3]
    vals = {}
    with open(reg) as f:
        for line in f:
            m = re.match(r'^(as_token|hs_token): "([^"]+)"$', line.strip())
            if m:
                vals[m.group(1)] = m.group(2)
    hs = HomeserverDouble(vals["as_token"], vals["hs_token"], server_name, port=port)
    hs.as_url = as_url
    host = "@host:" + server_name
    hs.demo_room = "!live:" + server_name
    # Three members with the bot: a room of two (the bot one) counts as a DM.
    hs.set_room(hs.demo_room, {host: "Host", "@guest:" + server_name: "Guest"},
                {"state_default": 50, "redact": 50, "users_default": 0, "users": {host: 100, hs.bot: 100}})
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("matrix double: homeserver %s on %s, AS at %s, room %s" % (server_name, hs.url, as_url, hs.demo_room),
          flush=True)
    # The host invites the bot (as a homeserver pushes an invite to the AS);
    # the AS joins. tallyd may still be starting: pushed until it takes it.
    invite = state(hs.demo_room, host, "m.room.member", hs.bot, {"membership": "invite"})
    for _ in range(600):
        st, _, _ = hs.push([invite], timeout=5)
        if st == 200:
            break
        time.sleep(0.2)
    seen = 0
    while True:
        with hs.lock:
            hs.lock.wait(1)
            new, seen = hs.events[seen:], len(hs.events)
        for room, ev in new:
            print("[%s] %s: %s" % (room, ev["sender"], ev["content"].get("body", "")), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
    else:
        print("usage: matrix_double.py serve REGISTRATION HS_PORT AS_URL SERVER_NAME", file=sys.stderr)
        sys.exit(2)
