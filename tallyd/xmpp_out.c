/* xmpp_out.c — what the component writes: the bounded out-queue and its
 * flushing to the socket, stanza building with escaping (invalid UTF-8 and
 * forbidden control characters never reach the server, which would close
 * the whole stream for one bad byte), and the message and error stanzas
 * every other part sends. */
#include "xmpp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------------- */
static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  char *p = realloc(*buf, c);
  if (!p) return -1;
  *buf = p;
  *cap = c;
  return 0;
}

/* Appends a stanza for the link: to the live out buffer, or to the queue
 * while the link is down. Over TD_XMPP_OUT_BYTES_MAX it is dropped (logged):
 * a server that does not read cannot make tallyd grow. */
void td_xmpp__say(td_xmpp *x, const char *stanza, size_t len, int raw_now) {
  assert(stanza && len > 0);
  int live = x->state == LINK_LIVE || raw_now;
  char **buf = live ? &x->out : &x->queue;
  size_t *blen = live ? &x->out_len : &x->queue_len, *bcap = live ? &x->out_cap : &x->queue_cap;
  if (x->out_len + x->queue_len + x->inflight + len > TD_XMPP_OUT_BYTES_MAX || grow(buf, bcap, *blen + len)) {
    if (x->dropped++ % 1000 == 0)
      td_log(TD_WARN, "xmpp: out-queue full (%d bytes): a stanza dropped (%llu in all)", TD_XMPP_OUT_BYTES_MAX,
             (unsigned long long)x->dropped);
    x->d->dropped_total++;
    return;
  }
  memcpy(*buf + *blen, stanza, len);
  *blen += len;
  if (live) td_xmpp__flush(x);
}

static void on_written(uv_write_t *req, int status) {
  xwrite *w = (xwrite *)req;
  td_xmpp *x = w->x;
  x->inflight -= w->len;
  free(w);
  if (status < 0 && x->state != LINK_IDLE) {
    char why[96];
    snprintf(why, sizeof why, "write failed (%s)", uv_strerror(status));
    td_xmpp__link_close(x, why);
    return;
  }
  if (x->state != LINK_IDLE) td_xmpp__flush(x);
}

void td_xmpp__flush(td_xmpp *x) {
  if (!x->out_len || x->state < LINK_STREAM || x->inflight >= TD_XMPP_WRITE_WINDOW_BYTES) return;
  assert(x->out_len + x->inflight <= TD_XMPP_OUT_BYTES_MAX);
  xwrite *w = malloc(sizeof *w + x->out_len);
  if (!w) return; /* tried again at the next write or tick */
  w->x = x;
  w->len = x->out_len;
  memcpy(w->data, x->out, x->out_len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  if (uv_write(&w->req, (uv_stream_t *)&x->tcp, &b, 1, on_written) != 0) {
    free(w);
    td_xmpp__link_close(x, "write refused");
    return;
  }
  x->inflight += w->len;
  x->out_len = 0;
  x->last_write_ms = td_now_ms(x->d);
}

void td_xmpp__sb_raw(sbuf *b, const char *s, size_t n) {
  if (b->failed || grow(&b->p, &b->cap, b->len + n + 1)) {
    b->failed = 1;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void td_xmpp__sb_str(sbuf *b, const char *s) { td_xmpp__sb_raw(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid,
 * overlong, a surrogate or above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
  if (!len || len > n) return 0;
  uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

/* XML-escapes text: invalid UTF-8 becomes U+FFFD and control characters
 * XML 1.0 forbids are dropped, since one bad byte makes a server close the
 * whole stream (and an engine text may quote what a user typed). */
void td_xmpp__sb_text(sbuf *b, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    size_t len = utf8_len(u + i, n - i);
    if (!len) {
      td_xmpp__sb_str(b, "\xef\xbf\xbd");
      i++;
      continue;
    }
    if (c == '&') td_xmpp__sb_str(b, "&amp;");
    else if (c == '<') td_xmpp__sb_str(b, "&lt;");
    else if (c == '>') td_xmpp__sb_str(b, "&gt;");
    else if (c == '\'') td_xmpp__sb_str(b, "&apos;");
    else if (c == '"') td_xmpp__sb_str(b, "&quot;");
    else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') { /* dropped */
    } else td_xmpp__sb_raw(b, s + i, len);
    i += len;
  }
}

void td_xmpp__say_sb(td_xmpp *x, sbuf *b) {
  if (!b->failed && b->len) td_xmpp__say(x, b->p, b->len, 0);
  else if (b->failed) td_log(TD_ERR, "xmpp: out of memory building a stanza; dropped");
  free(b->p);
}

/* <message type=T to=TO from=domain id=...><body>TEXT</body></message> */
void td_xmpp__send_message(td_xmpp *x, const char *type, const char *to, const char *text) {
  sbuf b = {0};
  char id[32];
  snprintf(id, sizeof id, "tally-%llu", (unsigned long long)++x->next_id);
  td_xmpp__sb_str(&b, "<message type='");
  td_xmpp__sb_str(&b, type);
  td_xmpp__sb_str(&b, "' from='");
  td_xmpp__sb_text(&b, x->d->cfg.xmpp_component_domain);
  td_xmpp__sb_str(&b, "' to='");
  td_xmpp__sb_text(&b, to);
  td_xmpp__sb_str(&b, "' id='");
  td_xmpp__sb_str(&b, id);
  td_xmpp__sb_str(&b, "'><body>");
  td_xmpp__sb_text(&b, text);
  td_xmpp__sb_str(&b, "</body></message>");
  td_xmpp__say_sb(x, &b);
}

/* An error reply to a stanza (RFC 6120 8.3): to its sender, same id. */
void td_xmpp__send_error(td_xmpp *x, const char *kind, const char *to, const char *id, const char *etype,
                       const char *condition, const char *text) {
  if (!to || !to[0]) return;
  sbuf b = {0};
  td_xmpp__sb_str(&b, "<");
  td_xmpp__sb_str(&b, kind);
  td_xmpp__sb_str(&b, " type='error' from='");
  td_xmpp__sb_text(&b, x->d->cfg.xmpp_component_domain);
  td_xmpp__sb_str(&b, "' to='");
  td_xmpp__sb_text(&b, to);
  if (id && id[0]) {
    td_xmpp__sb_str(&b, "' id='");
    td_xmpp__sb_text(&b, id);
  }
  td_xmpp__sb_str(&b, "'><error type='");
  td_xmpp__sb_str(&b, etype);
  td_xmpp__sb_str(&b, "'><");
  td_xmpp__sb_str(&b, condition);
  td_xmpp__sb_str(&b, " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                      "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>");
  td_xmpp__sb_text(&b, text);
  td_xmpp__sb_str(&b, "</text></error></");
  td_xmpp__sb_str(&b, kind);
  td_xmpp__sb_str(&b, ">");
  td_xmpp__say_sb(x, &b);
}
