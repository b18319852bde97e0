/* matrix_send.c — tally's answers through the Client-Server API.
 *
 * Each message is `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
 * (Client-Server API, "Sending events to a room") with the as_token as the
 * bearer (Application Service API, "Using the Client-Server API": the
 * as_token acts as the sender_localpart user). The txnId comes from the
 * effect (matrix_effect.c), and a retry reuses it, so the homeserver keeps one
 * event however often a send is repeated ("Transaction identifiers": the
 * same txnId with the same access token is the same request).
 *
 * Order per room: a room has one request in flight at a time and its queue
 * is FIFO; a failed send is retried before anything after it. Answers:
 *   2xx             sent; the next one goes;
 *   429             M_LIMIT_EXCEEDED: wait retry_after_ms (capped), retry;
 *   5xx, no answer  retry after a backoff (doubling, bounded), at most
 *                   TD_MX_ATTEMPTS_MAX attempts, then dropped (logged);
 *   other 4xx       the homeserver refuses it for good (not in the room,
 *                   bad event): dropped, logged.
 * Plain HTTP/1.1 over libuv, a connection per room queue kept between its
 * requests (RFC 9112 9.3; at most TD_MX_IDLE_CONNS_MAX idle, each for
 * TD_MX_IDLE_MS): answers are read by Content-Length or chunked; one the
 * homeserver closed while idle is opened again, and a request on a kept
 * connection that closes before any answer goes again at once on a new
 * one (every request here is safe to repeat: PUTs with txnIds, GETs, joins;
 * createRoom was already retried on 5xx).
 * HTTPS (matrix_homeserver = https://...): the same connections carry TLS
 * through memory BIOs (matrix_tls.c); the request goes once the handshake
 * is done, and a kept connection keeps its session. A handshake refused
 * (the certificate's CA or name is wrong) is logged with its reason and
 * counts as "no answer": backoff, bounded; a message given up that way is
 * not settled but left in the outbox (the next start, or a SIGHUP with the
 * right matrix_homeserver_ca before the attempts run out, posts it).
 * Every message is also written to the outbox (sql/014: matrix_outbox, by
 * the worker of matrix_record.c, without waiting for it) and settled there
 * when the homeserver takes it or it is given up; the next tallyd process
 * posts the unsettled ones again, with their txnIds. */
#include "matrix.h"

#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

typedef struct td_mx_out {
  struct td_mx_out *next;
  char *request; /* the whole HTTP request */
  size_t len;
  uint32_t attempts;
  int outboxed; /* a message of the outbox (settled there); a join is not */
  char txn[64];
  td_mx_done_fn done; /* td_mx_request: told the final answer (2xx, refused, given up) */
  void *ud;
} td_mx_out;

struct td_mx_room {
  td_mx *m;
  char id[TD_MX_ID_BYTES_MAX + 1];
  td_mx_out *head, *tail;
  uint32_t count;
  int busy;       /* a request in flight, or waiting to retry */
  struct td_mx_http *conn; /* the room's connection to the homeserver (kept alive between requests), or NULL */
  int timer_on;
  uv_timer_t timer;
  uint32_t backoff_ms;
  int tls_failed; /* the last attempt's TLS handshake was refused (nothing was sent) */
};

/* One connection to the homeserver, kept by its room between requests
 * (HTTP/1.1 persistent connections, RFC 9112 9.3): a request in flight, or
 * idle until the room's next request, TD_MX_IDLE_MS, or the homeserver
 * closes it. */
typedef struct td_mx_http {
  struct td_mx_http *next, *prev;
  td_mx_room *room;
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  uv_timer_t timeout;
  char *resp;
  size_t resp_len;
  int handles_open;
  int closed;    /* its handles are closing: nothing more on it */
  int inflight;  /* a request is on it (counted in m->inflight) */
  int connected; /* the TCP connect succeeded */
  int reused;    /* the request in flight is not the connection's first */
  int reusable;  /* the answer allows another request after it */
  SSL *ssl;      /* https: the session over memory BIOs (matrix_tls.c), else NULL */
  int tls_open;  /* its handshake is done: the request can go */
} td_mx_http;

static td_mx_http *active; /* one tallyd, one AS: the requests in flight */
static struct sockaddr_storage hs_addr;

static void room_pump(td_mx_room *r);
static void queue_out(td_mx *m, td_mx_room *r, td_mx_out *out);

int td_mx_send_init(td_mx *m, char *err, size_t err_len) {
  const char *url = m->d->cfg.matrix_homeserver;
  int https = !strncmp(url, "https://", 8);
  if (strncmp(url, "http://", 7) && !https) {
    snprintf(err, err_len, "matrix_homeserver: '%s' must be http://HOST[:PORT] or https://HOST[:PORT]", url);
    return TALLY_ECONFIG;
  }
  char host[TD_PATH_BYTES_MAX];
  snprintf(host, sizeof host, "%s", url + (https ? 8 : 7));
  host[strcspn(host, "/")] = 0;
  char *colon = strrchr(host, ':');
  snprintf(m->hs_port, sizeof m->hs_port, "%.7s", colon ? colon + 1 : https ? "443" : "80");
  if (colon) *colon = 0;
  snprintf(m->hs_host, sizeof m->hs_host, "%.255s", host);
  /* Resolved once, at start (the loop is not serving yet). */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(m->hs_host, m->hs_port, &hints, &res);
  if (rc != 0 || !res) {
    snprintf(err, err_len, "matrix_homeserver %s: %s", url, gai_strerror(rc));
    return TALLY_ECONFIG;
  }
  memcpy(&hs_addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (https && !(m->hs_tls = td_mx_tls_context(&m->d->cfg, err, err_len))) return TALLY_ECONFIG;
  m->rooms = calloc(TD_MX_ROOMS_MAX, sizeof *m->rooms);
  if (!m->rooms) {
    snprintf(err, err_len, "matrix: out of memory for %d rooms", TD_MX_ROOMS_MAX);
    return TALLY_ENOMEM;
  }
  return TALLY_OK;
}

uint32_t td_mx_send_pending(const td_mx *m) { return m->out_count; }

static td_mx_room *room_get(td_mx *m, const char *id) {
  for (uint32_t i = 0; i < m->room_count; i++)
    if (!strcmp(m->rooms[i].id, id)) return &m->rooms[i];
  if (m->room_count == TD_MX_ROOMS_MAX) return NULL;
  td_mx_room *r = &m->rooms[m->room_count++];
  r->m = m;
  snprintf(r->id, sizeof r->id, "%s", id);
  return r;
}

static void urlenc(const char *in, char *out, size_t cap) {
  static const char x[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = x[*p >> 4];
      out[o++] = x[*p & 15];
    }
  }
  out[o] = 0;
}

/* An m.notice's content (CS "m.room.message", "Rich replies"): body,
 * formatted_body, and m.in_reply_to when reply_to is set. NULL: no memory. */
char *td_mx_notice_json(const char *body, const char *html, const char *reply_to) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "msgtype", "m.notice", "body", body, "format",
                        "org.matrix.custom.html", "formatted_body", html);
  if (o && reply_to && reply_to[0])
    json_object_set_new(o, "m.relates_to", json_pack("{s:{s:s}}", "m.in_reply_to", "event_id", reply_to));
  char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return json;
}

void td_mx_send(td_mx *m, const char *room, const char *txn_id, const char *body, const char *html,
                const char *reply_to) {
  td_mx_send_done(m, room, txn_id, body, html, reply_to, NULL);
}

void td_mx_send_done(td_mx *m, const char *room, const char *txn_id, const char *body, const char *html,
                     const char *reply_to, td_mx_done_fn done) {
  char *json = td_mx_notice_json(body, html, reply_to);
  if (!json) {
    m->dropped++;
    td_log(TD_ERR, "matrix: out of memory: message %s dropped", txn_id);
    if (done) done(m, room, -1, NULL, NULL);
    return;
  }
  td_mx_send_content_done(m, room, txn_id, json, 1, done);
  free(json);
}

/* A threaded answer (CS "Threading"): m.relates_to rel_type m.thread with
 * the thread's root (the command itself when it was not said in a thread),
 * and m.in_reply_to the command for clients without threads
 * (is_falling_back when the command is the root: then the reply is only
 * that fallback; else it is a real reply inside the thread). */
void td_mx_send_thread(td_mx *m, const char *room, const char *txn_id, const char *body, const char *html,
                       const char *reply_to, const char *root) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:b, s:{s:s}}}", "msgtype", "m.notice", "body", body, "format",
                        "org.matrix.custom.html", "formatted_body", html, "m.relates_to", "rel_type", "m.thread",
                        "event_id", root, "is_falling_back", !strcmp(root, reply_to), "m.in_reply_to", "event_id",
                        reply_to);
  char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!json) {
    m->dropped++;
    td_log(TD_ERR, "matrix: out of memory: message %s dropped", txn_id);
    return;
  }
  td_mx_send_content(m, room, txn_id, json, 1);
  free(json);
}

void td_mx_send_content(td_mx *m, const char *room, const char *txn_id, const char *json, int persist) {
  td_mx_send_content_done(m, room, txn_id, json, persist, NULL);
}

void td_mx_send_content_done(td_mx *m, const char *room, const char *txn_id, const char *json, int persist,
                             td_mx_done_fn done) {
  if (m->closing) { /* stopping: the next process posts it (done is not told: nothing follows it) */
    if (persist) td_mx_outbox_add(m, txn_id, room, json);
    td_log(TD_INFO, "matrix: message %s for %s kept in the outbox for the next start", txn_id, room);
    return;
  }
  td_mx_room *r = room_get(m, room);
  if (!r || m->out_count >= TD_MX_OUT_MAX) {
    m->dropped++;
    td_log(TD_WARN, "matrix: message %s for %s dropped: %s", txn_id, room,
           r ? "TD_MX_OUT_MAX messages queued" : "TD_MX_ROOMS_MAX rooms");
    if (done) done(m, room, -1, NULL, NULL);
    return;
  }
  char room_enc[3 * TD_MX_ID_BYTES_MAX + 1], txn_enc[3 * 64 + 1];
  urlenc(room, room_enc, sizeof room_enc);
  urlenc(txn_id, txn_enc, sizeof txn_enc);
  td_mx_out *out = calloc(1, sizeof *out);
  size_t cap = strlen(json) + strlen(room_enc) + strlen(txn_enc) + strlen(m->as_token) + 512;
  if (out) out->request = malloc(cap);
  if (!out || !out->request) {
    if (out) free(out->request);
    free(out);
    m->dropped++;
    td_log(TD_ERR, "matrix: out of memory: message %s dropped", txn_id);
    if (done) done(m, room, -1, NULL, NULL);
    return;
  }
  int n = snprintf(out->request, cap,
                   "PUT /_matrix/client/v3/rooms/%s/send/m.room.message/%s HTTP/1.1\r\n"
                   "Host: %s:%s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   room_enc, txn_enc, m->hs_host, m->hs_port, m->as_token, strlen(json), json);
  out->len = (size_t)n;
  out->outboxed = 1;
  out->done = done;
  snprintf(out->txn, sizeof out->txn, "%s", txn_id);
  if (persist) td_mx_outbox_add(m, txn_id, room, json);
  queue_out(m, r, out);
}

/* Joins room (CS "Joining rooms": POST /_matrix/client/v3/join/{roomIdOrAlias}),
 * in the room's queue, so its answers wait for it. Not in the outbox: an
 * invite lost with the process is accepted at its next delivery or by hand. */
void td_mx_join(td_mx *m, const char *room) {
  td_mx_room *r = m->closing ? NULL : room_get(m, room);
  if (!r || m->out_count >= TD_MX_OUT_MAX) {
    td_log(TD_WARN, "matrix: join of %s not queued (stopping or full)", room);
    return;
  }
  char room_enc[3 * TD_MX_ID_BYTES_MAX + 1];
  urlenc(room, room_enc, sizeof room_enc);
  td_mx_out *out = calloc(1, sizeof *out);
  size_t cap = strlen(room_enc) + strlen(m->as_token) + 512;
  if (out) out->request = malloc(cap);
  if (!out || !out->request) {
    if (out) free(out->request);
    free(out);
    td_log(TD_ERR, "matrix: out of memory: join of %s dropped", room);
    return;
  }
  out->len = (size_t)snprintf(out->request, cap,
                              "POST /_matrix/client/v3/join/%s HTTP/1.1\r\nHost: %s:%s\r\n"
                              "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                              "Content-Length: 2\r\n\r\n{}",
                              room_enc, m->hs_host, m->hs_port, m->as_token);
  snprintf(out->txn, sizeof out->txn, "join");
  out->done = td_mx_rs_joined;
  queue_out(m, r, out);
}

/* Any other Client-Server request (state, joined_members, createRoom,
 * account data), in queue's order; done gets the final answer. Not in the
 * outbox: each is asked again when needed. */
void td_mx_request(td_mx *m, const char *queue, const char *method, const char *path, const char *json,
                   td_mx_done_fn done, void *ud) {
  td_mx_room *r = m->closing ? NULL : room_get(m, queue);
  td_mx_out *out = r && m->out_count < TD_MX_OUT_MAX ? calloc(1, sizeof *out) : NULL;
  size_t jl = json ? strlen(json) : 0, cap = jl + strlen(path) + strlen(m->as_token) + 512;
  if (out) out->request = malloc(cap);
  if (!out || !out->request) {
    if (out) free(out->request);
    free(out);
    td_log(TD_WARN, "matrix: %s %s not queued (stopping, full or out of memory)", method, path);
    if (done) done(m, queue, -1, NULL, ud);
    return;
  }
  int n = snprintf(out->request, cap,
                   "%s %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
                   "%sContent-Length: %zu\r\n\r\n%s",
                   method, path, m->hs_host, m->hs_port, m->as_token, json ? "Content-Type: application/json\r\n" : "",
                   jl, json ? json : "");
  out->len = (size_t)n;
  out->done = done;
  out->ud = ud;
  snprintf(out->txn, sizeof out->txn, "%.12s", method);
  queue_out(m, r, out);
}

void td_mx_urlenc(const char *in, char *out, size_t cap) { urlenc(in, out, cap); }

static void queue_out(td_mx *m, td_mx_room *r, td_mx_out *out) {
  if (r->tail) r->tail->next = out;
  else r->head = out;
  r->tail = out;
  r->count++;
  m->out_count++;
  room_pump(r);
}

/* ---- one request ------------------------------------------------------------------------ */
static void pop(td_mx_room *r) {
  td_mx_out *o = r->head;
  r->head = o->next;
  if (!r->head) r->tail = NULL;
  r->count--;
  r->m->out_count--;
  free(o->request);
  free(o);
}

static void on_retry(uv_timer_t *t) {
  td_mx_room *r = t->data;
  r->busy = 0;
  room_pump(r);
}

static void retry_later(td_mx_room *r, uint32_t ms) {
  if (!r->timer_on) {
    uv_timer_init(r->m->d->loop, &r->timer);
    r->timer.data = r;
    r->timer_on = 1;
  }
  r->busy = 1;
  uv_timer_start(&r->timer, on_retry, ms, 0);
}

static void pump_all(td_mx *m) {
  for (uint32_t i = 0; i < m->room_count && m->inflight < TD_MX_SENDS_INFLIGHT_MAX; i++) room_pump(&m->rooms[i]);
}

/* The answer (status, or 0 for none) decides: next, retry, or drop. */
static void settle(td_mx_room *r, int status, const char *body) {
  td_mx *m = r->m;
  td_mx_out *o = r->head;
  r->busy = 0;
  int tls_refused = status == 0 && r->tls_failed;
  if (status != 0) r->tls_failed = 0;
  if (status >= 200 && status < 300) {
    m->sent++;
    r->backoff_ms = 0;
    td_log(TD_DEBUG, "matrix: sent %s to %s", o->txn, r->id);
    if (o->outboxed) td_mx_outbox_settle(m, o->txn, 1);
    /* Off the queue before its handler runs: the handler may queue the
     * room's next request, which may go at once on the kept connection. */
    td_mx_done_fn done = o->done;
    void *ud = o->ud;
    pop(r);
    if (done) done(m, r->id, status, body, ud);
    return;
  }
  o->attempts++;
  if (status == 429) {
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    json_t *ra = j ? json_object_get(j, "retry_after_ms") : NULL;
    json_int_t ms = json_is_integer(ra) ? json_integer_value(ra) : TD_MX_BACKOFF_MIN_MS;
    json_decref(j);
    if (ms < 0) ms = 0;
    if (ms > TD_MX_RETRY_AFTER_MAX_MS) ms = TD_MX_RETRY_AFTER_MAX_MS;
    td_log(TD_INFO, "matrix: %s to %s rate limited: again in %lld ms", o->txn, r->id, (long long)ms);
    if (o->attempts < TD_MX_ATTEMPTS_MAX) {
      retry_later(r, (uint32_t)ms);
      return;
    }
  } else if ((status == 0 || status >= 500) && o->attempts < TD_MX_ATTEMPTS_MAX) {
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : TD_MX_BACKOFF_MIN_MS;
    if (r->backoff_ms > TD_MX_BACKOFF_MAX_MS) r->backoff_ms = TD_MX_BACKOFF_MAX_MS;
    td_log(TD_INFO, "matrix: %s to %s: %s %d: again in %u ms", o->txn, r->id, status ? "HTTP" : "no answer", status,
           r->backoff_ms);
    retry_later(r, r->backoff_ms);
    return;
  }
  /* A request with its own answer handler (state, account data: a 404 is
   * an answer there) is that handler's to judge and log. */
  int judged = o->done && !o->outboxed; /* a message is ours to count and warn of, with a handler or not */
  if (tls_refused && o->outboxed) { /* never reached the homeserver: not given up, the outbox keeps it */
    td_log(TD_WARN, "matrix: %s to %s: the homeserver's TLS refused %u times: left in the outbox (the next start "
           "posts it)", o->txn, r->id, o->attempts);
    td_mx_done_fn done = o->done;
    void *ud = o->ud;
    pop(r);
    if (done) done(m, r->id, status, NULL, ud);
    return;
  }
  if (!judged) m->dropped++;
  td_log(judged ? TD_DEBUG : TD_WARN, "matrix: %s to %s dropped after %u attempts (HTTP %d): %.200s", o->txn, r->id,
         o->attempts, status, body ? body : "");
  if (o->outboxed) td_mx_outbox_settle(m, o->txn, 2);
  td_mx_done_fn done = o->done;
  void *ud = o->ud;
  pop(r);
  if (done) done(m, r->id, status, body, ud);
}

static uint32_t idle_count; /* connections kept without a request on them */

static void http_closed(uv_handle_t *h) {
  td_mx_http *q = h->data;
  if (--q->handles_open) return;
  if (q->ssl) SSL_free(q->ssl);
  free(q->resp);
  free(q);
}

/* Ends the connection (its request, if any, is the caller's to settle). */
static void conn_close(td_mx_http *q) {
  if (q->closed) return;
  q->closed = 1;
  if (q->prev) q->prev->next = q->next;
  else active = q->next;
  if (q->next) q->next->prev = q->prev;
  if (q->room->conn == q) q->room->conn = NULL;
  if (!q->inflight) idle_count--;
  uv_close((uv_handle_t *)&q->tcp, http_closed);
  uv_close((uv_handle_t *)&q->timeout, http_closed);
}

static void on_timeout(uv_timer_t *t);

/* The request on q is over: status (-1: stopping, not settled; 0: no
 * answer) and body. The connection is kept for the room's next request
 * when the answer allows it, else closed. */
static void http_finish(td_mx_http *q, int status, const char *body) {
  if (q->closed || !q->inflight) return;
  td_mx_room *r = q->room;
  td_mx *m = r->m;
  q->inflight = 0;
  m->inflight--;
  uv_timer_stop(&q->timeout);
  int keep = status > 0 && q->reusable && !m->closing && idle_count < TD_MX_IDLE_CONNS_MAX;
  if (keep) {
    idle_count++;
    uv_timer_start(&q->timeout, on_timeout, TD_MX_IDLE_MS, 0);
  } else {
    idle_count++; /* conn_close counts an idle one down */
    conn_close(q);
  }
  /* The answer's buffer (body points into it) is taken off the
   * connection first: settling may put the next request on it. */
  char *resp = q->resp;
  q->resp = NULL;
  q->resp_len = 0;
  if (status >= 0) settle(r, status, body);
  free(resp);
  if (!m->closing) {
    room_pump(r);
    pump_all(m);
  }
}

static int header_has(const char *head, size_t len, const char *name, const char *value) {
  size_t nl = strlen(name);
  for (const char *p = memchr(head, '\n', len); p && (size_t)(p - head) < len; p = memchr(p, '\n', len - (size_t)(p - head))) {
    p++;
    if ((size_t)(p - head) + nl < len && !strncasecmp(p, name, nl) && p[nl] == ':') {
      const char *v = p + nl + 1, *end = memchr(v, '\r', len - (size_t)(v - head));
      size_t vl = end ? (size_t)(end - v) : 0;
      for (size_t i = 0; value && i + strlen(value) <= vl; i++)
        if (!strncasecmp(v + i, value, strlen(value))) return 1;
      if (!value) return 1;
    }
  }
  return 0;
}

/* Is the answer in q->resp complete? 1 with status and body (NUL ended in
 * place), 0 not yet, -1 only EOF tells (no length given). Content-Length
 * and chunked bodies (RFC 9112 6, 7.1) are read; the connection is
 * reusable unless the answer says Connection: close or has no length. */
static int answer_complete(td_mx_http *q, int *status, const char **body) {
  char *sep = q->resp ? strstr(q->resp, "\r\n\r\n") : NULL;
  if (!sep || q->resp_len < 12 || strncmp(q->resp, "HTTP/1.", 7)) return 0;
  size_t head = (size_t)(sep - q->resp) + 4;
  *status = atoi(q->resp + 9);
  q->reusable = !header_has(q->resp, head, "Connection", "close") && strncmp(q->resp, "HTTP/1.0", 8);
  char *b = q->resp + head;
  size_t have = q->resp_len - head;
  if (header_has(q->resp, head, "Transfer-Encoding", "chunked")) {
    /* Complete when the last (size 0) chunk and its CRLF are in (no
     * trailers are asked for); only then decoded, in place. */
    for (size_t in = 0;;) {
      char *crlf = in < have ? strstr(b + in, "\r\n") : NULL;
      if (!crlf) return 0;
      unsigned long n = strtoul(b + in, NULL, 16);
      size_t data = (size_t)(crlf - b) + 2;
      if (n == 0) {
        if (have < data + 2) return 0;
        break;
      }
      if (n > have || have < data + n + 2) return 0;
      in = data + n + 2;
    }
    size_t out = 0;
    for (size_t in = 0;;) {
      char *crlf = strstr(b + in, "\r\n");
      unsigned long n = strtoul(b + in, NULL, 16);
      size_t data = (size_t)(crlf - b) + 2;
      if (n == 0) break;
      memmove(b + out, b + data, n);
      out += n;
      in = data + n + 2;
    }
    b[out] = 0;
    *body = b;
    return 1;
  }
  char *cl = NULL;
  for (char *p = q->resp; p && p < sep; p = strstr(p, "\r\n")) {
    p += 2;
    if (!strncasecmp(p, "Content-Length:", 15)) {
      cl = p + 15;
      break;
    }
  }
  if (!cl) {
    if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200)) {
      *body = b;
      return 1;
    }
    q->reusable = 0;
    return -1;
  }
  size_t want = (size_t)strtoul(cl, NULL, 10);
  if (have < want) return 0;
  b[want] = 0;
  *body = b;
  return 1;
}

static void quick_ack(td_mx_http *q);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

/* n bytes of the answer (plaintext), 0 none, or < 0 the connection ended. */
static void got(td_mx_http *q, ssize_t n, const char *data) {
  if (n > 0 && q->inflight && !q->closed && q->resp_len + (size_t)n > TD_MX_RESPONSE_BYTES_MAX) {
    /* Longer than we read: the status counts, the body not (a handler
     * sees none), and the rest is not read off this connection. */
    int status = q->resp && !strncmp(q->resp, "HTTP/1.", 7) && q->resp_len > 12 ? atoi(q->resp + 9) : 0;
    q->reusable = 0;
    http_finish(q, status, NULL);
    return;
  }
  if (n > 0 && q->inflight && q->resp_len + (size_t)n <= TD_MX_RESPONSE_BYTES_MAX) {
    char *b = realloc(q->resp, q->resp_len + (size_t)n + 1);
    if (b) {
      memcpy(b + q->resp_len, data, (size_t)n);
      q->resp = b;
      q->resp_len += (size_t)n;
      q->resp[q->resp_len] = 0;
    }
  }
  if (q->closed) return;
  if (n > 0 && q->inflight) quick_ack(q); /* the ACK of this piece goes now (a pending one is sent) */
  if (!q->inflight) { /* idle: the homeserver closed it (or said something unasked) */
    if (n != 0) conn_close(q);
    return;
  }
  int status = 0;
  const char *body = NULL;
  int done = n > 0 ? answer_complete(q, &status, &body) : 0;
  if (done == 1) {
    http_finish(q, status, body);
    return;
  }
  if (n >= 0) return;
  /* EOF or an error with the answer incomplete. A kept connection the
   * homeserver closed before answering anything: the request never got
   * there (or is idempotent: every request here is PUT with a txnId, a GET,
   * or a join): again at once on a new connection, no attempt counted. */
  if (q->reused && !q->resp_len) {
    td_mx_room *r = q->room;
    q->inflight = 0;
    r->m->inflight--;
    idle_count++;
    conn_close(q);
    r->busy = 0;
    room_pump(r);
    return;
  }
  q->reusable = 0;
  done = answer_complete(q, &status, &body);
  if (done == 0 || status == 0) { /* nothing usable */
    status = 0;
    body = NULL;
  } else if (done == -1) {
    char *sep = strstr(q->resp, "\r\n\r\n");
    body = sep ? sep + 4 : NULL; /* read to EOF (no length given) */
  }
  http_finish(q, status, body);
}

static void send_on(td_mx_http *q);
static void tls_flush(td_mx_http *q);

/* https: ciphertext in; the handshake's end sends the request; plaintext
 * goes to got(). A refused handshake is logged with its reason and is "no
 * answer" for the request (nothing reached the homeserver). */
static void tls_in(td_mx_http *q, ssize_t n, const char *data) {
  char *plain = NULL, why[256];
  size_t len = 0;
  int rc = td_mx_tls_feed(q->ssl, data, (size_t)n, &plain, &len, why, sizeof why);
  tls_flush(q); /* handshake records, an alert */
  if (q->closed) {
    free(plain);
    return;
  }
  if (rc < 0 && !q->tls_open) {
    td_mx_room *r = q->room;
    td_log(TD_WARN, "matrix: TLS to the homeserver %s:%s refused: %s; nothing sent (%s stays queued)",
           r->m->hs_host, r->m->hs_port, why, r->head ? r->head->txn : "-");
    r->tls_failed = 1;
    q->reusable = 0;
    http_finish(q, 0, NULL);
    return;
  }
  if (rc == 1 && !q->tls_open) {
    q->tls_open = 1;
    if (q->inflight) send_on(q);
  }
  if (len) got(q, (ssize_t)len, plain);
  free(plain);
  if (rc < 0 && !q->closed) got(q, UV_EOF, NULL); /* an open session ended: as EOF */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  td_mx_http *q = s->data;
  if (q->ssl && n > 0 && !q->closed) tls_in(q, n, buf->base);
  else if (q->ssl && n < 0 && !q->tls_open && q->inflight && !q->closed) { /* closed mid-handshake */
    td_mx_room *r = q->room;
    td_log(TD_WARN, "matrix: TLS to the homeserver %s:%s refused: closed during the handshake (%s); nothing sent",
           r->m->hs_host, r->m->hs_port, uv_strerror((int)n));
    r->tls_failed = 1;
    q->reusable = 0;
    http_finish(q, 0, NULL);
  } else got(q, n, buf->base);
  free(buf->base);
}

static void write_failed(td_mx_http *q, int status) {
  if (status < 0 && !q->closed) {
    q->reusable = 0;
    if (q->reused && !q->resp_len && q->inflight) { /* a kept connection gone: as in on_read */
      td_mx_room *r = q->room;
      q->inflight = 0;
      r->m->inflight--;
      idle_count++;
      conn_close(q);
      r->busy = 0;
      room_pump(r);
      return;
    }
    http_finish(q, 0, NULL);
  }
}

static void on_write(uv_write_t *w, int status) { write_failed(w->data, status); }

/* https: what OpenSSL has to send, each piece with its own write request
 * (several may be queued: handshake records, then the request). */
typedef struct {
  uv_write_t w;
  char *data;
} tls_piece;

static void on_tls_write(uv_write_t *w, int status) {
  tls_piece *p = (tls_piece *)w;
  td_mx_http *q = w->data;
  free(p->data);
  free(p);
  write_failed(q, status);
}

static void tls_flush(td_mx_http *q) {
  char *data;
  size_t n;
  while (!q->closed && (n = td_mx_tls_take(q->ssl, &data)) > 0) {
    tls_piece *p = malloc(sizeof *p);
    uv_buf_t b = uv_buf_init(data, (unsigned)n);
    if (p) {
      p->data = data;
      p->w.data = q;
    }
    if (!p || uv_write(&p->w, (uv_stream_t *)&q->tcp, &b, 1, on_tls_write) != 0) {
      free(data);
      free(p);
      q->reusable = 0;
      if (q->inflight) http_finish(q, 0, NULL);
      else conn_close(q);
      return;
    }
  }
}

/* A kept connection waits for an answer that a server may write in two
 * pieces (head, then body): with Nagle's algorithm on its side the body
 * waits for our ACK of the head, which delayed ACKs hold back ~40 ms, per
 * request (measured: 22 buys/s instead of 1,500 in one room). So the
 * answer's segments are ACKed at once (TCP_QUICKACK, which Linux clears
 * again by itself: set before each request), and ours go unbuffered. */
static void quick_ack(td_mx_http *q) {
#ifdef TCP_QUICKACK
  uv_os_fd_t fd;
  int one = 1;
  if (uv_fileno((uv_handle_t *)&q->tcp, &fd) == 0) (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
  (void)q;
#endif
}

static void send_on(td_mx_http *q) {
  td_mx_out *o = q->room->head;
  if (q->ssl) { /* after the handshake (tls_in sends it then) */
    if (!q->tls_open) return;
    quick_ack(q);
    if (td_mx_tls_write(q->ssl, o->request, o->len) != TALLY_OK) {
      q->reusable = 0;
      http_finish(q, 0, NULL);
      return;
    }
    tls_flush(q);
    return;
  }
  quick_ack(q);
  uv_buf_t b = uv_buf_init(o->request, (unsigned)o->len);
  q->write.data = q;
  if (uv_write(&q->write, (uv_stream_t *)&q->tcp, &b, 1, on_write) != 0) {
    q->reusable = 0;
    http_finish(q, 0, NULL);
  }
}

static void on_connect(uv_connect_t *c, int status) {
  td_mx_http *q = c->data;
  if (q->closed) return;
  if (status < 0) {
    http_finish(q, 0, NULL);
    return;
  }
  q->connected = 1;
  uv_tcp_nodelay(&q->tcp, 1);
  td_mx *m = q->room->m;
  if (m->hs_tls && !(q->ssl = td_mx_tls_new(m->hs_tls, m->hs_host))) {
    td_log(TD_ERR, "matrix: cannot make a TLS session for %s (out of memory?)", m->hs_host);
    http_finish(q, 0, NULL);
    return;
  }
  uv_read_start((uv_stream_t *)&q->tcp, on_alloc, on_read);
  if (q->ssl) tls_in(q, 0, NULL); /* the ClientHello */
  else send_on(q);
}

static void on_timeout(uv_timer_t *t) {
  td_mx_http *q = t->data;
  if (q->inflight) {
    q->reusable = 0;
    http_finish(q, 0, NULL);
  } else {
    conn_close(q); /* idle TD_MX_IDLE_MS */
  }
}

static void room_pump(td_mx_room *r) {
  td_mx *m = r->m;
  if (r->busy || !r->head || m->closing || m->inflight >= TD_MX_SENDS_INFLIGHT_MAX) return;
  td_mx_http *q = r->conn;
  if (q && !q->closed && !q->inflight) { /* the room's kept connection */
    idle_count--;
    q->inflight = 1;
    q->reused = 1;
    q->reusable = 0;
    r->busy = 1;
    m->inflight++;
    uv_timer_start(&q->timeout, on_timeout, TD_MX_SEND_TIMEOUT_MS, 0);
    send_on(q);
    return;
  }
  q = calloc(1, sizeof *q);
  if (!q) {
    retry_later(r, TD_MX_BACKOFF_MIN_MS);
    return;
  }
  q->room = r;
  uv_tcp_init(m->d->loop, &q->tcp);
  uv_timer_init(m->d->loop, &q->timeout);
  q->tcp.data = q->timeout.data = q->connect.data = q;
  q->handles_open = 2;
  q->inflight = 1;
  q->next = active;
  if (active) active->prev = q;
  active = q;
  r->conn = q;
  r->busy = 1;
  m->inflight++;
  uv_timer_start(&q->timeout, on_timeout, TD_MX_SEND_TIMEOUT_MS, 0);
  if (uv_tcp_connect(&q->connect, &q->tcp, (const struct sockaddr *)&hs_addr, on_connect) != 0)
    http_finish(q, 0, NULL);
}

void td_mx_send_close(td_mx *m) {
  m->closing = 1;
  while (active) { /* a message in flight stays queued (counted as unsent) */
    td_mx_http *q = active;
    http_finish(q, -1, NULL);
    conn_close(q);
  }
  for (uint32_t i = 0; i < m->room_count; i++)
    if (m->rooms[i].timer_on) {
      m->rooms[i].timer_on = 0;
      uv_close((uv_handle_t *)&m->rooms[i].timer, NULL);
    }
}

void td_mx_send_free(td_mx *m) {
  for (uint32_t i = 0; m->rooms && i < m->room_count; i++)
    while (m->rooms[i].head) pop(&m->rooms[i]);
  free(m->rooms);
  m->rooms = NULL;
  SSL_CTX_free(m->hs_tls);
  m->hs_tls = NULL;
}

void td_mx_send_tls_context(td_mx *m, SSL_CTX *ctx) {
  SSL_CTX_free(m->hs_tls); /* kept connections hold their own reference */
  m->hs_tls = ctx;
  for (uint32_t i = 0; i < m->room_count; i++) {
    td_mx_room *r = &m->rooms[i];
    if (!r->tls_failed || !r->timer_on || !r->busy || (r->conn && r->conn->inflight)) continue;
    r->backoff_ms = 0;
    uv_timer_start(&r->timer, on_retry, 0, 0); /* waiting only for a certificate that may verify now */
  }
}
