/* xmpp_link.c — the component's connection to the server's component port:
 * connect, read (handed to xmpp_stream.c), reconnect with backoff
 * (TD_XMPP_BACKOFF_*), the link timeout and the whitespace keepalive on one
 * timer, and td_xmpp_start / td_xmpp_close (config to rooms and domains,
 * the slot, the handles' lifetime). */
#include "xmpp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- the link ------------------------------------------------------------------------- */
/* At exit the struct holds both handles: freed once both have closed. */
static void maybe_free(td_xmpp *x) {
  if (x->closing && !x->tcp_open && !x->timer_open) free(x);
}

static void on_tcp_closed(uv_handle_t *h) {
  td_xmpp *x = h->data;
  x->tcp_open = 0;
  maybe_free(x);
}

static void on_timer_closed(uv_handle_t *h) {
  td_xmpp *x = h->data;
  x->timer_open = 0;
  maybe_free(x);
}

static void schedule(td_xmpp *x, uint64_t ms);

void td_xmpp__link_close(td_xmpp *x, const char *why) {
  if (x->state == LINK_IDLE) return;
  int was_live = x->state == LINK_LIVE;
  x->state = LINK_IDLE;
  td_log(was_live ? TD_WARN : TD_INFO, "xmpp: link to %s %s: %s; reconnecting in %llu ms", x->d->cfg.xmpp_component,
         was_live ? "lost" : "failed", why, (unsigned long long)x->backoff_ms);
  if (x->parser) {
    XML_StopParser(x->parser, XML_FALSE); /* we may be inside its handler: freed at the next connect */
  }
  for (uint32_t i = 0; i < x->room_count; i++) td_xmpp__room_forget(x, &x->rooms[i]);
  x->out_len = 0; /* a new stream starts clean; replies not yet written are lost with the link */
  x->depth = 0;
  if (x->tcp_open && !uv_is_closing((uv_handle_t *)&x->tcp)) uv_close((uv_handle_t *)&x->tcp, on_tcp_closed);
  if (!x->closing) schedule(x, x->backoff_ms);
  x->backoff_ms = x->backoff_ms * 2 > TD_XMPP_BACKOFF_MAX_MS ? TD_XMPP_BACKOFF_MAX_MS : x->backoff_ms * 2;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  static char read_buf[TD_READ_BYTES]; /* one loop thread; consumed at once */
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  td_xmpp *x = s->data;
  if (nread == 0 || x->state == LINK_IDLE) return;
  if (nread < 0) {
    td_xmpp__link_close(x, nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
    return;
  }
  td_xmpp__stream_feed(x, buf->base, (size_t)nread);
  if (x->state == LINK_IDLE) return;
  td_xmpp__flush(x);
}

static void on_connected(uv_connect_t *req, int status) {
  td_xmpp *x = req->data;
  if (x->state != LINK_CONNECTING) return;
  if (status < 0) {
    td_xmpp__link_close(x, uv_strerror(status));
    return;
  }
  if (td_xmpp__stream_open(x) != 0) {
    td_xmpp__link_close(x, "out of memory for the XML parser");
    return;
  }
  x->state = LINK_STREAM;
  uv_tcp_nodelay(&x->tcp, 1);
  uv_tcp_keepalive(&x->tcp, 1, 60);
  uv_read_start((uv_stream_t *)&x->tcp, on_alloc, on_read);
  sbuf b = {0};
  td_xmpp__sb_str(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='");
  td_xmpp__sb_text(&b, x->d->cfg.xmpp_component_domain);
  td_xmpp__sb_str(&b, "'>");
  if (!b.failed) td_xmpp__say(x, b.p, b.len, 1);
  free(b.p);
}

static void connect_now(td_xmpp *x) {
  if (x->tcp_open) { /* the previous socket is still closing: try again shortly */
    schedule(x, 50);
    return;
  }
  uv_tcp_init(x->d->loop, &x->tcp);
  x->tcp.data = x;
  x->tcp_open = 1;
  x->state = LINK_CONNECTING;
  x->link_started_ms = td_now_ms(x->d);
  x->connect_req.data = x;
  int rc = uv_tcp_connect(&x->connect_req, &x->tcp, (struct sockaddr *)&x->addr, on_connected);
  if (rc != 0) td_xmpp__link_close(x, uv_strerror(rc));
}

/* One timer: the reconnect delay while idle; the link timeout and the
 * keepalive while connected. */
static void on_timer(uv_timer_t *t) {
  td_xmpp *x = t->data;
  uint64_t now = td_now_ms(x->d);
  if (x->state == LINK_IDLE) {
    connect_now(x);
    if (x->state != LINK_IDLE) schedule(x, 1000);
    return;
  }
  if (x->state != LINK_LIVE && now - x->link_started_ms > TD_XMPP_LINK_TIMEOUT_MS) {
    td_xmpp__link_close(x, "no handshake within TD_XMPP_LINK_TIMEOUT_MS (wrong port, domain or secret?)");
    return;
  }
  if (x->state == LINK_LIVE && now - x->last_write_ms >= TD_XMPP_KEEPALIVE_MS) td_xmpp__say(x, " ", 1, 1);
  td_xmpp__flush(x);
  schedule(x, 1000);
}

static void schedule(td_xmpp *x, uint64_t ms) { uv_timer_start(&x->timer, on_timer, ms, 0); }

/* ---- start and stop ------------------------------------------------------------------------- */
static int parse_list(const char *list, char *out, size_t each, uint32_t max, uint32_t *count) {
  *count = 0;
  for (const char *p = list; *p;) {
    while (*p == ',' || *p == ' ') p++;
    size_t n = strcspn(p, ", ");
    if (!n) break;
    if (*count == max || n >= each) return -1;
    memcpy(out + (size_t)*count * each, p, n);
    out[(size_t)*count * each + n] = 0;
    (*count)++;
    p += n;
  }
  return 0;
}

/* The component's keys, parsed and checked: at start, and at SIGHUP before
 * anything changes (a bad file changes nothing). Large: heap, not stack. */
typedef struct keys {
  struct sockaddr_storage addr;
  char rooms[TD_XMPP_ROOMS_MAX][TD_XMPP_JID_BYTES_MAX + 1];
  uint32_t room_count;
  char domains[TD_XMPP_DOMAINS_MAX][TD_XMPP_DOMAIN_BYTES_MAX + 1];
  uint32_t domain_count;
  char granters[TD_XMPP_GRANTERS_MAX][TALLY_IDENTITY_BYTES_MAX + 1];
  uint32_t granter_count;
} keys;

static int parse_keys(const td_config *cfg, keys *k, char *err, size_t err_len) {
  char host[256];
  const char *colon = strrchr(cfg->xmpp_component, ':');
  size_t hl = colon ? (size_t)(colon - cfg->xmpp_component) : 0;
  if (!colon || hl == 0 || hl >= sizeof host) goto bad_addr;
  memcpy(host, cfg->xmpp_component, hl);
  host[hl] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port <= 0 || port > 65535) goto bad_addr;
  if (host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = 0;
    if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)&k->addr) != 0) goto bad_addr;
  } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&k->addr) != 0) goto bad_addr;
  if (parse_list(cfg->xmpp_rooms, &k->rooms[0][0], sizeof k->rooms[0], TD_XMPP_ROOMS_MAX, &k->room_count) != 0) {
    snprintf(err, err_len, "xmpp_rooms: at most %d rooms", TD_XMPP_ROOMS_MAX);
    return TALLY_ECONFIG;
  }
  for (uint32_t i = 0; i < k->room_count; i++)
    if (!strchr(k->rooms[i], '@') || strchr(k->rooms[i], '/') || strlen(k->rooms[i]) > TALLY_ROOM_BYTES_MAX) {
      snprintf(err, err_len, "xmpp_rooms: %.300s is not a room's bare JID (room@conference.example.org)", k->rooms[i]);
      return TALLY_ECONFIG;
    }
  if (parse_list(cfg->xmpp_domains, &k->domains[0][0], sizeof k->domains[0], TD_XMPP_DOMAINS_MAX, &k->domain_count)) {
    snprintf(err, err_len, "xmpp_domains: at most %d domains", TD_XMPP_DOMAINS_MAX);
    return TALLY_ECONFIG;
  }
  if (parse_list(cfg->xmpp_grant_jids, &k->granters[0][0], sizeof k->granters[0], TD_XMPP_GRANTERS_MAX,
                 &k->granter_count)) {
    snprintf(err, err_len, "xmpp_grant_jids: at most %d bare JIDs of at most %d bytes", TD_XMPP_GRANTERS_MAX,
             TALLY_IDENTITY_BYTES_MAX);
    return TALLY_ECONFIG;
  }
  if (!k->domain_count) { /* shop.example.org serves example.org */
    const char *dot = strchr(cfg->xmpp_component_domain, '.');
    snprintf(k->domains[0], sizeof k->domains[0], "%s", dot && dot[1] ? dot + 1 : cfg->xmpp_component_domain);
    k->domain_count = 1;
  }
  return TALLY_OK;
bad_addr:
  snprintf(err, err_len, "xmpp_component: '%.300s' is not IP:PORT ([v6]:port for IPv6)", cfg->xmpp_component);
  return TALLY_ECONFIG;
}

/* Who may use the shop and who may grant: no link change needed. */
static void take_lists(td_xmpp *x, const keys *k) {
  _Static_assert(sizeof x->domains == sizeof k->domains && sizeof x->granters == sizeof k->granters, "same lists");
  memcpy(x->domains, k->domains, sizeof x->domains);
  x->domain_count = k->domain_count;
  memcpy(x->granters, k->granters, sizeof x->granters);
  x->granter_count = k->granter_count;
}

int td_xmpp_start(td_daemon *d, char *err, size_t err_len) {
  const td_config *cfg = &d->cfg;
  if (!cfg->xmpp_component[0]) return TALLY_OK;
  td_xmpp *x = calloc(1, sizeof *x);
  keys *k = calloc(1, sizeof *k);
  if (!x || !k || !(x->arena = malloc(TD_XMPP_ARENA_BYTES))) {
    free(x);
    free(k);
    snprintf(err, err_len, "xmpp: out of memory");
    return TALLY_ENOMEM;
  }
  x->d = d;
  if (parse_keys(cfg, k, err, err_len) != TALLY_OK) goto fail;
  x->addr = k->addr;
  x->room_count = k->room_count;
  for (uint32_t i = 0; i < k->room_count; i++) snprintf(x->rooms[i].jid, sizeof x->rooms[i].jid, "%s", k->rooms[i]);
  take_lists(x, k);
  x->slot = td_slot_get(d, cfg->xmpp_network, "xmpp-component", 0);
  if (!x->slot) {
    snprintf(err, err_len, "xmpp: no slot free for the component");
    goto fail;
  }
  free(k);
  x->slot->xmpp = x;
  x->backoff_ms = TD_XMPP_BACKOFF_FIRST_MS;
  uv_timer_init(d->loop, &x->timer);
  x->timer.data = x;
  x->timer_open = 1;
  d->xmpp = x;
  td_log(TD_INFO, "xmpp: component %s for network %s via %s, %u rooms, users of %s%s", cfg->xmpp_component_domain,
         cfg->xmpp_network, cfg->xmpp_component, x->room_count, x->domains[0], x->domain_count > 1 ? ",..." : "");
  schedule(x, 0);
  return TALLY_OK;
fail:
  free(k);
  free(x->arena);
  free(x);
  return TALLY_ECONFIG;
}

/* The rooms of k, in k's order; a room kept keeps its subjects (what an
 * empty TOPIC puts back), a room dropped is forgotten. The link is down
 * (relinked), so no room has occupants. */
static int take_rooms(td_xmpp *x, const keys *k) {
  room *next = calloc(TD_XMPP_ROOMS_MAX, sizeof *next);
  if (!next) return -1;
  for (uint32_t i = 0; i < k->room_count; i++) {
    room *old = td_xmpp__room_by_jid(x, k->rooms[i]);
    if (old) {
      assert(!old->occupants && !old->joined);
      next[i] = *old;
      old->jid[0] = 0; /* taken: not freed below, not found again */
      old->subject = old->subject_before = NULL;
    }
    snprintf(next[i].jid, sizeof next[i].jid, "%s", k->rooms[i]);
  }
  for (uint32_t i = 0; i < x->room_count; i++) {
    free(x->rooms[i].subject);
    free(x->rooms[i].subject_before);
  }
  _Static_assert(sizeof x->rooms == TD_XMPP_ROOMS_MAX * sizeof *next, "the same rooms");
  memcpy(x->rooms, next, sizeof x->rooms);
  x->room_count = k->room_count;
  free(next);
  return 0;
}

void td_xmpp_reload(td_daemon *d, const td_config *next) {
  td_xmpp *x = d->xmpp;
  td_config *cfg = &d->cfg;
  if (!x) {
    if (next->xmpp_component[0])
      td_log(TD_WARN, "SIGHUP: xmpp_component set: the component starts at the next restart");
    return;
  }
  if (!next->xmpp_component[0]) {
    td_log(TD_WARN, "SIGHUP: xmpp_component removed: the component stops at the next restart; its keys unchanged");
    return;
  }
  if (strcmp(next->xmpp_network, cfg->xmpp_network))
    td_log(TD_WARN, "SIGHUP: xmpp_network changed: it applies at the next restart");
  char err[512];
  keys *k = calloc(1, sizeof *k);
  if (!k) {
    td_log(TD_ERR, "SIGHUP: xmpp: out of memory; the component's keys unchanged");
    return;
  }
  if (parse_keys(next, k, err, sizeof err) != TALLY_OK) {
    td_log(TD_ERR, "SIGHUP: %s; the component's keys unchanged", err);
    free(k);
    return;
  }
  int rooms_changed = k->room_count != x->room_count;
  for (uint32_t i = 0; i < k->room_count && !rooms_changed; i++) rooms_changed = strcasecmp(k->rooms[i], x->rooms[i].jid);
  const char *why = strcmp(next->xmpp_component, cfg->xmpp_component)               ? "xmpp_component"
                    : strcmp(next->xmpp_component_domain, cfg->xmpp_component_domain) ? "xmpp_component_domain"
                    : next->xmpp_secret.len != cfg->xmpp_secret.len ||
                            memcmp(next->xmpp_secret.bytes, cfg->xmpp_secret.bytes, cfg->xmpp_secret.len)
                        ? "the secret"
                    : strcmp(next->xmpp_nick, cfg->xmpp_nick) ? "xmpp_nick"
                    : rooms_changed                           ? "xmpp_rooms"
                                                              : NULL;
  /* The link is built from d->cfg (domain, secret, nick) and x: both change
   * together, between two loop turns, so no stanza sees half of it. */
  memcpy(cfg->xmpp_component, next->xmpp_component, sizeof cfg->xmpp_component);
  memcpy(cfg->xmpp_component_domain, next->xmpp_component_domain, sizeof cfg->xmpp_component_domain);
  memcpy(cfg->xmpp_nick, next->xmpp_nick, sizeof cfg->xmpp_nick);
  memcpy(cfg->xmpp_rooms, next->xmpp_rooms, sizeof cfg->xmpp_rooms);
  memcpy(cfg->xmpp_domains, next->xmpp_domains, sizeof cfg->xmpp_domains);
  memcpy(cfg->xmpp_grant_jids, next->xmpp_grant_jids, sizeof cfg->xmpp_grant_jids);
  memcpy(cfg->xmpp_secret.bytes, next->xmpp_secret.bytes, sizeof cfg->xmpp_secret.bytes);
  cfg->xmpp_secret.len = next->xmpp_secret.len;
  memcpy(cfg->xmpp_secret.path, next->xmpp_secret.path, sizeof cfg->xmpp_secret.path);
  take_lists(x, k);
  if (why) {
    char because[96];
    snprintf(because, sizeof because, "SIGHUP: %s changed", why);
    x->backoff_ms = TD_XMPP_BACKOFF_FIRST_MS; /* a new link at once, not after a long backoff */
    if (x->state == LINK_IDLE) schedule(x, x->backoff_ms);
    else td_xmpp__link_close(x, because);
    x->addr = k->addr;
    if (take_rooms(x, k) != 0) td_log(TD_ERR, "SIGHUP: xmpp: out of memory: xmpp_rooms unchanged");
  }
  td_log(TD_INFO, "SIGHUP: xmpp: reloaded the component's keys (%u rooms, %u user domains, %u granters)%s%s%s",
         x->room_count, x->domain_count, x->granter_count, why ? "; relinking: " : "", why ? why : "",
         why ? " changed" : "");
  free(k);
}

void td_xmpp_close(td_xmpp *x) {
  if (!x || x->closing) return;
  x->closing = 1;
  td_xmpp__link_close(x, "tallyd stopped");
  if (x->parser) XML_ParserFree(x->parser);
  x->parser = NULL;
  for (uint32_t i = 0; i < x->room_count; i++) {
    free(x->rooms[i].subject);
    free(x->rooms[i].subject_before);
  }
  if (x->slot) x->slot->xmpp = NULL;
  free(x->out);
  free(x->queue);
  free(x->arena);
  x->out = x->queue = NULL;
  x->d->xmpp = NULL;
  uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}
