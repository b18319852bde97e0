/* matrix_http.c — the Application Service's HTTP server.
 *
 * libmicrohttpd (Debian's libmicrohttpd-dev) runs in external epoll mode:
 * its one epoll fd is watched by a uv_poll on tallyd's loop, so every
 * callback runs on the loop thread and nothing here blocks it (a request
 * waiting for its record is suspended, never waited on). Routes, from the
 * Application Service API (spec v1.x, "Application Service API"):
 *   PUT  /_matrix/app/v1/transactions/{txnId}   pushed events (matrix_txn.c)
 *   POST /_matrix/app/v1/ping                   the homeserver checks us: 200 {}
 *   GET  /_matrix/app/v1/users/{userId}         200 {} for the bot, else 404
 *   GET  /_matrix/app/v1/rooms/{roomAlias}      404: tally provisions no aliases
 * Every one needs the hs_token: `Authorization: Bearer <hs_token>` (spec
 * v1.4+, MSC2832) or the deprecated `?access_token=` of older homeservers,
 * compared in constant time (SHA-256 of both, then CRYPTO_memcmp, so not
 * even the length leaks); both given, header and query, both must be it.
 * None: 401 M_MISSING_TOKEN; wrong: 403 M_FORBIDDEN. A body over
 * matrix_body_bytes_max: 413 M_TOO_LARGE (before the body with
 * Expect: 100-continue, else after discarding it). */
#include "matrix.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum route { R_NONE, R_TXN, R_PING, R_USER, R_ROOM };

struct td_mx_req {
  int route;
  int answered;               /* status and json set (td_mx_answer) */
  int suspended;
  int too_big;
  unsigned status;
  char *json;                 /* owned */
  char *body;                 /* owned, grows to the cap */
  size_t len, cap;
  struct MHD_Connection *conn;
  char arg[TD_MX_TXN_ID_BYTES_MAX + 2]; /* txnId, userId or alias (decoded by MHD) */
  int arg_too_long;
};

static const char P_TXN[] = "/_matrix/app/v1/transactions/", P_PING[] = "/_matrix/app/v1/ping",
                  P_USER[] = "/_matrix/app/v1/users/", P_ROOM[] = "/_matrix/app/v1/rooms/";

static void kick(td_mx *m);

static int prefixed(const char *url, const char *p, td_mx_req *r) {
  size_t n = strlen(p);
  if (strncmp(url, p, n) || !url[n] || strchr(url + n, '/')) return 0;
  if (strlen(url + n) > TD_MX_TXN_ID_BYTES_MAX) r->arg_too_long = 1;
  snprintf(r->arg, sizeof r->arg, "%s", url + n);
  return 1;
}

static int route_of(const char *url, const char *method, td_mx_req *r, const char **want) {
  if (prefixed(url, P_TXN, r)) return *want = "PUT", R_TXN;
  if (!strcmp(url, P_PING)) return *want = "POST", R_PING;
  if (prefixed(url, P_USER, r)) return *want = "GET", R_USER;
  if (prefixed(url, P_ROOM, r)) return *want = "GET", R_ROOM;
  (void)method;
  return R_NONE;
}

static int token_ok(td_mx *m, const char *token) {
  uint8_t h[32];
  SHA256((const uint8_t *)token, strlen(token), h);
  return CRYPTO_memcmp(h, m->hs_token_hash, sizeof h) == 0 && m->hs_token[0];
}

/* 0 the hs_token, 401 none given, 403 a wrong one. Both the header and the
 * legacy query given: both must be the token (AS "Authorization": "should
 * ensure both match if both are provided"). */
static unsigned check_token(td_mx *m, struct MHD_Connection *c) {
  const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  const char *query = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "access_token");
  const char *token = NULL;
  if (auth && !strncmp(auth, "Bearer ", 7)) token = auth + 7;
  else if (auth) return 403; /* another scheme: credentials, but not ours */
  else token = query;
  if (!token) return 401;
  int ok = token_ok(m, token);
  if (query && token != query) ok &= token_ok(m, query); /* both compared: no early answer */
  return ok ? 0 : 403;
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, const char *json) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  enum MHD_Result rc = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned status, const char *errcode, const char *text) {
  char json[512];
  snprintf(json, sizeof json, "{\"errcode\":\"%s\",\"error\":\"%s\"}", errcode, text);
  return queue(c, status, json);
}

void td_mx_answer(td_mx *m, td_mx_req *r, unsigned status, const char *json) {
  free(r->json);
  r->json = strdup(json);
  r->status = r->json ? status : 500;
  r->answered = 1;
  if (r->suspended) {
    r->suspended = 0;
    MHD_resume_connection(r->conn);
    kick(m);
  }
}

/* The body is whole: act on it. */
static enum MHD_Result dispatch(td_mx *m, td_mx_req *r, struct MHD_Connection *c) {
  if (r->too_big) return error(c, 413, "M_TOO_LARGE", "transaction body over matrix_body_bytes_max");
  switch (r->route) {
  case R_PING: return queue(c, 200, "{}");
  case R_USER:
    if (!strcmp(r->arg, m->bot_id)) return queue(c, 200, "{}");
    return error(c, 404, "M_NOT_FOUND", "no such user in tally's namespace");
  case R_ROOM: return error(c, 404, "M_NOT_FOUND", "tally provisions no room aliases");
  default: break;
  }
  if (r->arg_too_long) return error(c, 400, "M_INVALID_PARAM", "txnId longer than 255 bytes");
  td_mx_txn_received(m, r, r->arg, r->body ? r->body : "", r->len);
  if (r->answered) return queue(c, r->status, r->json);
  r->suspended = 1;
  MHD_suspend_connection(c);
  return MHD_YES;
}

static enum MHD_Result first_call(td_mx *m, struct MHD_Connection *c, const char *url, const char *method,
                                  void **con_cls) {
  td_mx_req probe = {0};
  const char *want = NULL;
  int route = route_of(url, method, &probe, &want);
  if (route == R_NONE) return error(c, 404, "M_UNRECOGNIZED", "unknown endpoint");
  if (strcmp(method, want)) return error(c, 405, "M_UNRECOGNIZED", "method not allowed here");
  unsigned auth = check_token(m, c);
  if (auth == 401) return error(c, 401, "M_MISSING_TOKEN", "no hs_token given");
  if (auth == 403) return error(c, 403, "M_FORBIDDEN", "wrong hs_token");
  if (m->closing || m->d->stopping) return error(c, 503, "M_UNKNOWN", "tallyd is stopping; retry later");
  /* Too big by its Content-Length: answered before the body when the
   * sender waits for it (Expect: 100-continue); otherwise the body is read
   * and discarded (no memory kept), since a sender still writing would see
   * its connection reset instead of the 413. */
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
  int too_big = cl && strtoull(cl, NULL, 10) > m->d->cfg.matrix_body_bytes_max;
  if (too_big && expect && !strcasecmp(expect, "100-continue"))
    return error(c, 413, "M_TOO_LARGE", "transaction body over matrix_body_bytes_max");
  td_mx_req *r = calloc(1, sizeof *r);
  if (!r) return error(c, 503, "M_UNKNOWN", "out of memory; retry later");
  *r = probe;
  r->too_big = too_big;
  r->route = route;
  r->conn = c;
  *con_cls = r;
  return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *data, size_t *data_size, void **con_cls) {
  (void)version;
  td_mx *m = cls;
  td_mx_req *r = *con_cls;
  if (!r) return first_call(m, c, url, method, con_cls);
  if (r->answered) return queue(c, r->status, r->json); /* resumed after its record */
  if (*data_size) {
    size_t n = *data_size, max = m->d->cfg.matrix_body_bytes_max;
    *data_size = 0;
    if (r->too_big || r->len + n > max) {
      r->too_big = 1; /* read on and discard: answered at the end */
      return MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
      size_t cap = r->cap ? r->cap : 4096;
      while (cap < r->len + n + 1) cap *= 2;
      char *b = realloc(r->body, cap);
      if (!b) return MHD_NO;
      r->body = b;
      r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
  }
  return dispatch(m, r, c);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
  (void)cls;
  (void)c;
  (void)t;
  td_mx_req *r = *con_cls;
  if (!r) return;
  free(r->body);
  free(r->json);
  free(r);
  *con_cls = NULL;
}

/* ---- the loop's side ---------------------------------------------------------------- */
static void on_timer(uv_timer_t *t);

static void run_mhd(td_mx *m) {
  if (!m->mhd || !m->handles_on) return;
  MHD_run(m->mhd);
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(m->mhd, &ms) == MHD_YES) uv_timer_start(&m->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t) { run_mhd(t->data); }

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  run_mhd(p->data);
}

/* After a resume: MHD's ITC wakes the epoll fd too; running soon keeps a
 * resumed answer from waiting for the next packet. */
static void kick(td_mx *m) {
  if (m->handles_on) uv_timer_start(&m->timer, on_timer, 0, 0);
}

int td_mx_http_start(td_mx *m, char *err, size_t err_len) {
  const td_config *cfg = &m->d->cfg;
  char host[TD_PATH_BYTES_MAX];
  snprintf(host, sizeof host, "%s", cfg->matrix_listen);
  char *colon = strrchr(host, ':');
  if (!colon) {
    snprintf(err, err_len, "matrix_listen: '%s' is not HOST:PORT", cfg->matrix_listen);
    return TALLY_ECONFIG;
  }
  *colon = 0;
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (*end || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    snprintf(err, err_len, "matrix_listen: '%s' is not IPv4:PORT", cfg->matrix_listen);
    return TALLY_ECONFIG;
  }
  m->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
                            NULL, on_access, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, m, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)cfg->conns_max, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            MHD_OPTION_END);
  if (!m->mhd) {
    snprintf(err, err_len, "matrix_listen %s: cannot listen (in use?)", cfg->matrix_listen);
    return TALLY_EIO;
  }
  const union MHD_DaemonInfo *pi = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
  m->port = pi ? pi->port : (uint16_t)port;
  const union MHD_DaemonInfo *ei = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  uv_poll_init(m->d->loop, &m->poll, ei->epoll_fd);
  m->poll.data = m;
  uv_timer_init(m->d->loop, &m->timer);
  m->timer.data = m;
  uv_poll_start(&m->poll, UV_READABLE, on_poll);
  m->handles_on = 1;
  td_log(TD_INFO, "matrix: application service listening on http %s port %u", host, (unsigned)m->port);
  return TALLY_OK;
}

void td_mx_http_close(td_mx *m) {
  if (!m->handles_on) return;
  m->handles_on = 0;
  uv_close((uv_handle_t *)&m->poll, NULL);
  uv_close((uv_handle_t *)&m->timer, NULL);
}

void td_mx_http_free(td_mx *m) {
  if (m->mhd) MHD_stop_daemon(m->mhd);
  m->mhd = NULL;
}
