/* conn.c — one chat server's connection: its state machine and its bytes.
 *
 *   TLS    (TCP only) the TLS 1.3 handshake, through memory BIOs (tls.c)
 *   HELLO  challenge sent; the first frame must be a HELLO that answers it
 *   LIVE   welcomed: COMMAND, PRESENCE and ACK frames in; EFFECT frames out
 *   CLOSING a refusal verdict is being written; then closed
 *
 * Every refusal is logged with its reason and, before the welcome, told to
 * the peer in a HELLO_SERVER verdict; after it a protocol error just closes
 * (the stream cannot be resynchronised). Bytes are read into one
 * tally_stream_reader per connection, which yields whole frames only: a
 * frame cut by a closed connection is never applied. Writes go through a
 * window (TD_WRITE_WINDOW_BYTES not yet taken by the kernel): a peer that
 * stops reading holds at most that, plus what its slot keeps (route.c). */
#include "tallyd.h"

#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

static uint8_t read_buf[TD_READ_BYTES]; /* libuv reads into it and calls back at once */

static const char *conn_name(const td_conn *c, char *buf, size_t len) {
  if (c->slot) snprintf(buf, len, "conn %llu (%s, %s/%s)", (unsigned long long)c->id, c->peer, c->slot->network, c->slot->instance);
  else snprintf(buf, len, "conn %llu (%s)", (unsigned long long)c->id, c->peer);
  return buf;
}

/* ---- writing ------------------------------------------------------------------ */
typedef struct td_write {
  uv_write_t req;
  td_conn *c;
  uint8_t *data;
  size_t len;
} td_write;

void td_conn_out_raw(td_conn *c, const uint8_t *bytes, size_t len) {
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + len) cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p) { /* the peer misses bytes: close rather than send a broken stream */
      c->out_len = 0;
      c->closing_after_write = 1;
      return;
    }
    c->out = p;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, bytes, len);
  c->out_len += len;
}

/* Plaintext for TLS is gathered and encrypted once per flush: full TLS
 * records (up to 16 KiB) instead of one small record per frame. */
static void plain_append(td_conn *c, const uint8_t *bytes, size_t len) {
  if (c->plain_len + len > c->plain_cap) {
    size_t cap = c->plain_cap ? c->plain_cap : 4096;
    while (cap < c->plain_len + len) cap *= 2;
    uint8_t *p = realloc(c->plain, cap);
    if (!p) {
      c->plain_len = 0;
      c->closing_after_write = 1;
      return;
    }
    c->plain = p;
    c->plain_cap = cap;
  }
  memcpy(c->plain + c->plain_len, bytes, len);
  c->plain_len += len;
}

static void conn_send(td_conn *c, const uint8_t *bytes, size_t len) {
  if (c->closed) return;
  if (c->is_tls) plain_append(c, bytes, len);
  else td_conn_out_raw(c, bytes, len);
}

/* Sends one frame with its length prefix (frames tallyd makes always fit). */
static void conn_send_frame(td_conn *c, const uint8_t *frame, size_t len) {
  uint8_t wrapped[TALLY_STREAM_PREFIX_BYTES + TALLY_FRAME_BYTES_MAX];
  size_t n;
  if (tally_stream_wrap(frame, len, wrapped, sizeof wrapped, &n) == TALLY_OK) conn_send(c, wrapped, n);
}

static void write_done(uv_write_t *req, int status) {
  td_write *w = req->data;
  td_conn *c = w->c;
  c->inflight_bytes -= w->len;
  free(w->data);
  free(w);
  if (c->closed) return;
  if (status < 0) {
    char why[64];
    snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
    td_conn_close(c, why);
    return;
  }
  if (c->closing_after_write && c->inflight_bytes == 0) {
    td_conn_close(c, NULL);
    return;
  }
  td_conn_pump(c);
}

static void conn_flush(td_conn *c) {
  if (c->closed) return;
  if (c->plain_len > 0 && c->ssl) {
    td_tls_write(c, c->plain, c->plain_len);
    c->plain_len = 0;
  }
  if (c->out_len == 0) return;
  td_write *w = malloc(sizeof *w);
  if (!w) {
    td_conn_close(c, "out of memory");
    return;
  }
  w->c = c;
  w->data = c->out;
  w->len = c->out_len;
  w->req.data = w;
  c->out = NULL;
  c->out_len = c->out_cap = 0;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
  c->inflight_bytes += w->len;
  int rc = uv_write(&w->req, c->stream, &b, 1, write_done);
  if (rc < 0) {
    c->inflight_bytes -= w->len;
    free(w->data);
    free(w);
    td_conn_close(c, "write failed");
  }
}

void td_conn_pump(td_conn *c) {
  if (c->closed || c->state != TD_CONN_LIVE || !c->slot) return;
  td_slot *s = c->slot;
  uint64_t seq = c->sent_seq + 1, first = td_slot_first_seq(s);
  if (first > seq) seq = first;
  while (seq < s->next_seq && c->inflight_bytes + c->out_len + c->plain_len < TD_WRITE_WINDOW_BYTES) {
    const td_entry *e = td_slot_entry(s, seq);
    if (e) conn_send(c, e->data, e->len);
    c->sent_seq = seq++;
  }
  conn_flush(c);
}

void td_conn_pump_soon(td_conn *c) { c->pump_due = 1; }

void td_conns_pump_due(td_daemon *d) {
  for (td_conn *c = d->conns; c; c = c->next)
    if (c->pump_due) {
      c->pump_due = 0;
      td_conn_pump(c);
    }
}

/* ---- closing --------------------------------------------------------------------- */
static void conn_closed(uv_handle_t *h) {
  td_conn *c = h->data;
  free(c->out);
  free(c->plain);
  free(c);
}

void td_conn_close(td_conn *c, const char *why) {
  if (c->closed) return;
  td_daemon *d = c->d;
  char name[512];
  if (why && c->slot)
    td_log(TD_INFO, "%s: closed: %s (sent up to seq %llu of %llu, %zu bytes still in the kernel's hands)",
           conn_name(c, name, sizeof name), why, (unsigned long long)c->sent_seq,
           (unsigned long long)(c->slot->next_seq - 1), c->inflight_bytes);
  else if (why) td_log(TD_INFO, "%s: closed: %s", conn_name(c, name, sizeof name), why);
  c->closed = 1;
  for (td_conn **p = &d->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  d->conn_count--;
  if (c->slot && c->slot->conn == c) td_slot_away(d, c->slot, td_now_ms(d));
  c->slot = NULL;
  td_tls_end(c);
  uv_close((uv_handle_t *)c->stream, conn_closed);
}

/* The verdict of a refused HELLO (or of a connection refused before it). */
void td_conn_refuse(td_conn *c, int code, const char *text) {
  if (c->closed) return;
  char name[512];
  td_log(TD_WARN, "%s: refused (%s): %s", conn_name(c, name, sizeof name), tally_err_name(code), text);
  if (c->state == TD_CONN_HELLO) {
    tally_frame_hello_server v;
    memset(&v, 0, sizeof v);
    v.wire_min = TALLY_WIRE_VERSION_MIN;
    v.wire_max = TALLY_WIRE_VERSION_MAX;
    v.code = code;
    snprintf(v.server, sizeof v.server, "%s", c->d->cfg.server_id);
    snprintf(v.text, sizeof v.text, "%s", text);
    uint8_t frame[TALLY_FRAME_BYTES_MAX];
    size_t n;
    if (tally_frame_hello_server_encode(&v, frame, sizeof frame, &n) == TALLY_OK) conn_send_frame(c, frame, n);
  }
  c->state = TD_CONN_CLOSING;
  c->closing_after_write = 1;
  uv_read_stop(c->stream);
  conn_flush(c);
  if (!c->closed && c->inflight_bytes == 0) td_conn_close(c, NULL);
}

/* ---- the handshake ------------------------------------------------------------------ */
static void send_challenge(td_conn *c) {
  if (tally_hello_challenge(c->challenge) != TALLY_OK) {
    td_conn_close(c, "no randomness for a challenge");
    return;
  }
  tally_frame_hello_server h;
  memset(&h, 0, sizeof h);
  h.wire_min = TALLY_WIRE_VERSION_MIN;
  h.wire_max = TALLY_WIRE_VERSION_MAX;
  snprintf(h.server, sizeof h.server, "%s", c->d->cfg.server_id);
  memcpy(h.challenge, c->challenge, sizeof h.challenge);
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  size_t n;
  if (tally_frame_hello_server_encode(&h, frame, sizeof frame, &n) == TALLY_OK) conn_send_frame(c, frame, n);
  c->state = TD_CONN_HELLO;
}

static void welcome(td_conn *c, const tally_frame_hello *h, uint64_t chosen) {
  td_daemon *d = c->d;
  td_slot *s = td_slot_get(d, h->network, h->instance, h->acked);
  if (!s) {
    td_conn_refuse(c, TALLY_EBUSY, "tallyd serves as many chat servers as slots_max allows; try again later");
    return;
  }
  if (h->acked >= s->next_seq) {
    char why[160];
    snprintf(why, sizeof why, "HELLO acked %llu, but the last effect sent to this instance is %llu",
             (unsigned long long)h->acked, (unsigned long long)(s->next_seq - 1));
    td_conn_refuse(c, TALLY_EFRAME, why);
    return;
  }
  if (s->conn) td_conn_close(s->conn, "replaced by a new connection of the same instance");
  td_slot_ack(s, h->acked);
  uint64_t first = td_slot_first_seq(s);
  c->slot = s;
  s->conn = c;
  c->sent_seq = h->acked;
  c->state = TD_CONN_LIVE;
  c->caps = h->caps;
  tally_frame_hello_server v;
  memset(&v, 0, sizeof v);
  v.wire_min = TALLY_WIRE_VERSION_MIN;
  v.wire_max = TALLY_WIRE_VERSION_MAX;
  v.wire_chosen = chosen;
  snprintf(v.server, sizeof v.server, "%s", d->cfg.server_id);
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  size_t n;
  if (tally_frame_hello_server_encode(&v, frame, sizeof frame, &n) == TALLY_OK) conn_send_frame(c, frame, n);
  char name[512];
  td_log(TD_INFO, "%s: welcome: adapter \"%s\", wire %llu, caps %llu, acked %llu, resending %llu",
         conn_name(c, name, sizeof name), h->adapter, (unsigned long long)chosen, (unsigned long long)h->caps,
         (unsigned long long)h->acked, (unsigned long long)(first ? s->next_seq - first : 0));
  td_route_welcome(d, s);
  td_conn_pump(c);
}

static void on_hello(td_conn *c, const uint8_t *frame, size_t len) {
  td_daemon *d = c->d;
  uint64_t type;
  if (tally_frame_type(frame, len, &type) != TALLY_OK) {
    td_conn_refuse(c, TALLY_EFRAME, "garbage: not a tally frame (expected HELLO)");
    return;
  }
  if (type != TALLY_FRAME_TYPE_HELLO) {
    char why[96];
    snprintf(why, sizeof why, "frame before HELLO (frame type %llu)", (unsigned long long)type);
    td_conn_refuse(c, TALLY_EFRAME, why);
    return;
  }
  tally_frame_decoder *dec;
  if (tally_frame_decoder_new(&dec) != TALLY_OK) {
    td_conn_close(c, "out of memory");
    return;
  }
  tally_frame_hello h;
  int rc = tally_frame_hello_decode(dec, frame, len, &h);
  tally_frame_decoder_free(dec);
  if (rc != TALLY_OK) {
    td_conn_refuse(c, TALLY_EFRAME, "garbage: HELLO does not decode");
    return;
  }
  char why[TALLY_TEXT_BYTES_MAX + 1];
  uint64_t chosen;
  if (tally_hello_negotiate(h.wire_min, h.wire_max, TALLY_WIRE_VERSION_MIN, TALLY_WIRE_VERSION_MAX, &chosen, why,
                            sizeof why) != TALLY_OK) {
    td_conn_refuse(c, TALLY_EVERSION, why);
    return;
  }
  const td_secret *sec = td_config_secret(&d->cfg, h.network);
  /* The same verdict for an unknown network as for a wrong secret: the
   * peer learns nothing about which networks exist. The log tells apart. */
  if (!sec) {
    td_log(TD_WARN, "conn %llu (%s): unknown network \"%s\"", (unsigned long long)c->id, c->peer, h.network);
    td_conn_refuse(c, TALLY_EBADSIG, "authentication failed (unknown network or wrong secret)");
    return;
  }
  if (tally_hello_check(sec->bytes, sec->len, c->challenge, h.answer) != TALLY_OK) {
    td_log(TD_WARN, "conn %llu (%s): wrong secret for network \"%s\" (instance \"%s\")", (unsigned long long)c->id,
           c->peer, h.network, h.instance);
    td_conn_refuse(c, TALLY_EBADSIG, "authentication failed (unknown network or wrong secret)");
    return;
  }
  if (h.shard != 0) {
    snprintf(why, sizeof why, "shard %llu: this tallyd is the writer of shard 0 only", (unsigned long long)h.shard);
    td_conn_refuse(c, TALLY_EINVAL, why);
    return;
  }
  if (!h.instance[0]) {
    td_conn_refuse(c, TALLY_EINVAL, "HELLO without an instance id");
    return;
  }
  if (d->stopping) {
    td_conn_refuse(c, TALLY_ESTATE, "tallyd is shutting down; reconnect in a moment");
    return;
  }
  welcome(c, &h, chosen);
}

/* ---- frames of a live connection ------------------------------------------------ */
static void on_command(td_conn *c, const tally_frame_command *f) {
  td_daemon *d = c->d;
  td_slot *s = c->slot;
  char name[512];
  if (f->network[0] && strcmp(f->network, s->network)) {
    td_log(TD_WARN, "%s: refused a command for network \"%s\" (req %llu)", conn_name(c, name, sizeof name),
           f->network, (unsigned long long)f->req_id);
    char text[TALLY_TEXT_BYTES_MAX + 1];
    snprintf(text, sizeof text, "refused: this chat server may act for network %s only, not %s", s->network,
             f->network);
    td_reply(c, f, TALLY_ENETWORK, text);
    return;
  }
  /* Its room has shown the line already: a quiz answer there is not private. */
  const char *hidden = c->caps & TALLY_CAP_INTERCEPT_COMMANDS ? NULL : td_room_line_refusal(f->channel, f->text);
  if (hidden) {
    td_reply(c, f, TALLY_EBAD_SYNTAX, hidden);
    return;
  }
  char origin[TALLY_ORIGIN_BYTES_MAX + 1];
  int n = snprintf(origin, sizeof origin, "%x~%s", (unsigned)s->id, f->origin);
  if (n < 0 || (size_t)n >= sizeof origin) {
    char text[160];
    snprintf(text, sizeof text, "origin too long for tallyd: at most %zu bytes",
             sizeof origin - 1 - (size_t)snprintf(NULL, 0, "%x~", (unsigned)s->id));
    td_reply(c, f, TALLY_ETOOBIG, text);
    return;
  }
  if (d->stopping) {
    td_reply(c, f, TALLY_EBUSY, "busy: tally is restarting, try again in a moment");
    return;
  }
  if (td_slot_full(d, s)) {
    td_reply(c, f, TALLY_EBUSY, "busy, try again in a moment");
    return;
  }
  tally_command cmd = {.size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .req_id = f->req_id,
                       .origin = origin, .account = f->account, .nick = f->nick, .channel = f->channel,
                       .msg_id = f->msg_id, .text = f->text,
                       .roles = (uint32_t)f->roles & ~(uint32_t)TD_ROLE_RESERVED, .network = s->network};
  if (td_pending_add(d, s, f->req_id, f->origin, f->channel) != TALLY_OK) {
    td_reply(c, f, TALLY_EBUSY, "busy, try again in a moment");
    return;
  }
  int rc = tally_engine_submit_command(d->engine, &cmd);
  if (rc == TALLY_OK) return;
  td_pending_done(s, f->req_id);
  td_reply(c, f, rc, rc == TALLY_EBUSY ? "busy, try again in a moment" : tally_strerror(rc));
}

static void on_presence(td_conn *c, const tally_frame_presence *p) {
  td_daemon *d = c->d;
  td_slot *s = c->slot;
  char name[512];
  if (p->network[0] && strcmp(p->network, s->network)) {
    td_log(TD_WARN, "%s: refused presence for network \"%s\" (%s in %s)", conn_name(c, name, sizeof name),
           p->network, p->account, p->room);
    return;
  }
  if (!p->local) return; /* another server's user: that server reports it */
  int rc = td_presence_report(d->presence, s->id, s->network, p->account, p->room, (int)p->present,
                              td_presence_submit, d);
  if (rc != TALLY_OK)
    td_log(TD_WARN, "%s: presence table full (presence_max %u): %s in %s not counted",
           conn_name(c, name, sizeof name), d->cfg.presence_max, p->account, p->room);
}

static void on_live_frame(td_conn *c, const uint8_t *frame, size_t len) {
  static tally_frame_decoder *dec; /* one loop thread */
  if (!dec && tally_frame_decoder_new(&dec) != TALLY_OK) {
    td_conn_close(c, "out of memory");
    return;
  }
  uint64_t type;
  if (tally_frame_type(frame, len, &type) != TALLY_OK) {
    td_conn_close(c, "garbage: not a tally frame");
    return;
  }
  char why[160];
  if (type == TALLY_FRAME_TYPE_COMMAND) {
    tally_frame_command f;
    if (tally_frame_command_decode(dec, frame, len, &f) != TALLY_OK) td_conn_close(c, "garbage: COMMAND does not decode");
    else on_command(c, &f);
  } else if (type == TALLY_FRAME_TYPE_PRESENCE) {
    tally_frame_presence f;
    if (tally_frame_presence_decode(dec, frame, len, &f) != TALLY_OK) td_conn_close(c, "garbage: PRESENCE does not decode");
    else on_presence(c, &f);
  } else if (type == TALLY_FRAME_TYPE_ACK) {
    tally_frame_ack f;
    if (tally_frame_ack_decode(dec, frame, len, &f) != TALLY_OK) td_conn_close(c, "garbage: ACK does not decode");
    else if (f.seq >= c->slot->next_seq) {
      snprintf(why, sizeof why, "ACK %llu is above the last effect sent (%llu)", (unsigned long long)f.seq,
               (unsigned long long)(c->slot->next_seq - 1));
      td_conn_close(c, why);
    } else td_slot_ack(c->slot, f.seq);
  } else {
    snprintf(why, sizeof why, "unexpected frame type %llu after HELLO", (unsigned long long)type);
    td_conn_close(c, why);
  }
}

static void on_plain(td_conn *c, const uint8_t *data, size_t len) {
  while (len > 0 && !c->closed && c->state != TD_CONN_CLOSING) {
    size_t used;
    const uint8_t *frame;
    size_t frame_len;
    int rc = tally_stream_feed(&c->reader, data, len, &used, &frame, &frame_len);
    data += used;
    len -= used;
    if (rc < 0) {
      const char *why = rc == TALLY_ETOOBIG ? "oversize frame: length prefix above TALLY_FRAME_BYTES_MAX"
                                            : "garbage: zero-length frame";
      if (c->state == TD_CONN_HELLO) td_conn_refuse(c, rc, why);
      else td_conn_close(c, why);
      return;
    }
    if (rc == 0) continue;
    if (c->state == TD_CONN_HELLO) on_hello(c, frame, frame_len);
    else if (c->state == TD_CONN_LIVE) on_live_frame(c, frame, frame_len);
  }
}

/* ---- reading ----------------------------------------------------------------------- */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init((char *)read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  td_conn *c = stream->data;
  if (nread == 0 || c->closed) return;
  if (nread < 0) {
    size_t cut = tally_stream_pending(&c->reader);
    char why[160];
    if (cut) snprintf(why, sizeof why, "disconnected with a frame cut mid-way (%zu bytes): discarded, nothing applied", cut);
    else snprintf(why, sizeof why, "disconnected (%s)", nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
    td_conn_close(c, why);
    return;
  }
  const uint8_t *data = (const uint8_t *)buf->base;
  if (!c->is_tls) on_plain(c, data, (size_t)nread);
  else {
    char err[320];
    int rc = 0;
    if (c->state == TD_CONN_TLS) {
      rc = td_tls_read(c, data, (size_t)nread, NULL, err, sizeof err);
      if (rc == 1) {
        send_challenge(c);
        rc = td_tls_read(c, NULL, 0, on_plain, err, sizeof err); /* data that came with the handshake */
      }
    } else rc = td_tls_read(c, data, (size_t)nread, on_plain, err, sizeof err);
    if (rc == -1 && !c->closed) {
      conn_flush(c); /* the alert, if any */
      td_log(TD_WARN, "conn %llu (%s): refused: %s", (unsigned long long)c->id, c->peer, err);
      td_conn_close(c, NULL);
      return;
    }
  }
  conn_flush(c);
}

void td_conn_accepted(td_daemon *d, uv_stream_t *server, int is_tls) {
  td_conn *c = calloc(1, sizeof *c);
  if (!c) {
    td_log(TD_ERR, "accept: out of memory");
    return;
  }
  c->d = d;
  c->is_tls = is_tls;
  c->id = ++d->conn_seq;
  c->opened_ms = td_now_ms(d);
  tally_stream_reader_init(&c->reader);
  if (is_tls) {
    uv_tcp_init(d->loop, &c->tcp);
    c->stream = (uv_stream_t *)&c->tcp;
  } else {
    uv_pipe_init(d->loop, &c->pipe, 0);
    c->stream = (uv_stream_t *)&c->pipe;
  }
  c->stream->data = c;
  c->next = d->conns;
  d->conns = c;
  d->conn_count++;
  snprintf(c->peer, sizeof c->peer, "unix");
  if (uv_accept(server, c->stream) != 0) {
    td_conn_close(c, "accept failed");
    return;
  }
  if (!is_tls) {
    /* Effects to a unix peer queue in this socket's send buffer (212 KB by
     * default): a rush's answers would wait on wake-ups that TCP's larger
     * buffers do not need. Best effort, capped by net.core.wmem_max. */
    uv_os_fd_t fd;
    int sndbuf = TD_UNIX_SNDBUF_BYTES;
    if (uv_fileno((uv_handle_t *)c->stream, &fd) == 0) (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  if (is_tls) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[64] = "?";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
      if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
      else uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
      snprintf(c->peer, sizeof c->peer, "tls %s:%d", host,
               ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port));
    } else snprintf(c->peer, sizeof c->peer, "tls");
  }
  if (d->conn_count > d->cfg.conns_max) {
    char why[96];
    snprintf(why, sizeof why, "refused: conns_max (%u) connections already", d->cfg.conns_max);
    td_conn_close(c, why);
    return;
  }
  if (d->stopping) {
    td_conn_close(c, "refused: shutting down");
    return;
  }
  td_log(TD_DEBUG, "conn %llu (%s): accepted", (unsigned long long)c->id, c->peer);
  if (is_tls) {
    if (td_tls_begin(c, d->tls) != TALLY_OK) {
      td_conn_close(c, "TLS: out of memory");
      return;
    }
    c->state = TD_CONN_TLS;
  } else {
    send_challenge(c);
  }
  uv_read_start(c->stream, on_alloc, on_read);
  conn_flush(c);
}

void td_conn_sweep(td_daemon *d, uint64_t now_ms) {
  td_conn *next;
  for (td_conn *c = d->conns; c; c = next) {
    next = c->next;
    if (c->state == TD_CONN_LIVE || now_ms - c->opened_ms < d->cfg.hello_timeout_ms) continue;
    char why[96];
    snprintf(why, sizeof why, "no %s within %u ms", c->state == TD_CONN_TLS ? "TLS handshake" : "HELLO",
             d->cfg.hello_timeout_ms);
    if (c->state == TD_CONN_HELLO) td_conn_refuse(c, TALLY_ESTATE, why);
    else td_conn_close(c, c->state == TD_CONN_CLOSING ? "refusal not read in time" : why);
  }
}
