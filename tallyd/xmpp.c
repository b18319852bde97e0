/* xmpp.c — an XEP-0114 external component served by tallyd, so any XMPP
 * server (ejabberd, Prosody, Openfire...) reaches the shop as a domain of
 * its own (e.g. shop.example.org).
 *
 * It is an adapter that happens to live in tallyd: it maps stanzas to the
 * same tally_command the frame adapters send (identity = the sender's bare
 * JID, network = xmpp_network, msg_id = the stanza id, so the engine scopes
 * idempotency by (network, identity, stanza id)) and effects back to
 * stanzas; the engine knows no XMPP. It owns one slot (route.c) whose
 * effects come here instead of into frames; replies find it through the
 * same "<slot id hex>~" origin prefix, and the busy bound and the answers
 * at stop are the frame adapters' (pending.c).
 *
 * The link: tallyd connects out to the server's component port, opens a
 * jabber:component:accept stream, answers the stream id with
 * hex(SHA-1(id + secret)) and, once the server says <handshake/>, joins the
 * configured rooms (no history) and sends what waited. Any failure closes
 * the link and reconnects with backoff (TD_XMPP_BACKOFF_*); what is said
 * meanwhile waits in a bounded queue.
 *
 * Its HELLO-equivalent capabilities (TD_XMPP_CAPS, logged at each link):
 * it cannot intercept room lines (a room shows a command before tally sees
 * it); it can set a room's subject (TOPIC), and say a line to a room's
 * moderators only, as private messages to those whose real JID it sees.
 * The engine refuses private-only commands said in a room whatever the
 * caps (command.c), and this adapter adds its hint: message the component.
 * A MODERATORS effect with no moderator it can reach is dropped (the
 * engine's rule: never to the whole room).
 *
 * Rooms: a command in a room ("!buy tee") is taken only from an occupant
 * whose real JID the room shows the component (a non-anonymous room, or a
 * semi-anonymous one where the component is a moderator); otherwise it is
 * refused by a private message in the room saying why. Delayed stanzas
 * (XEP-0203) and the component's own echoes are ignored.
 *
 * Parsing: expat over the stream, one small tree per stanza in a fixed
 * arena. Everything is bounded: a stanza over TD_XMPP_STANZA_BYTES_MAX or
 * deeper than TD_XMPP_DEPTH_MAX is refused (an error reply to its sender,
 * logged) and skipped without being stored; bytes expat holds without an
 * event beyond TD_XMPP_BUFFERED_BYTES_MAX, a stanza beyond
 * TD_XMPP_STANZA_BYTES_HARD, a DTD or an XML error close the link with a
 * stream error (logged) and reconnect. */
#include "tallyd.h"

#include <assert.h>
#include <expat.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
  TD_XMPP_STANZA_BYTES_MAX = 65536,      /* a stanza's bytes we keep and act on */
  TD_XMPP_STANZA_BYTES_HARD = 1 << 20,   /* a stanza this long is not a server's: link closed */
  TD_XMPP_DEPTH_MAX = 16,                /* elements nested inside a stanza */
  TD_XMPP_DEPTH_HARD = 1024,             /* nesting that closes the link (expat's tag stack) */
  TD_XMPP_BUFFERED_BYTES_MAX = 262144,   /* bytes expat holds without an event (one huge tag) */
  TD_XMPP_ARENA_BYTES = 2 * TD_XMPP_STANZA_BYTES_MAX, /* one stanza's tree and strings */
  TD_XMPP_FEED_BYTES = 4096,             /* bytes given to expat at a time: the checks above run often */
  TD_XMPP_OUT_BYTES_MAX = 4 << 20,       /* stanzas waiting to be written (link down or slow) */
  TD_XMPP_WRITE_WINDOW_BYTES = 65536,    /* written but not yet taken by the kernel */
  TD_XMPP_ROOMS_MAX = 32,                /* rooms in xmpp_rooms */
  TD_XMPP_OCCUPANTS_MAX = 4096,          /* occupants remembered per room */
  TD_XMPP_DOMAINS_MAX = 16,              /* user domains in xmpp_domains */
  TD_XMPP_JID_BYTES_MAX = 3071,          /* a full JID (RFC 7622) */
  TD_XMPP_BACKOFF_FIRST_MS = 500,        /* first reconnect delay; doubles */
  TD_XMPP_BACKOFF_MAX_MS = 30000,        /* reconnect delay at most */
  TD_XMPP_LINK_TIMEOUT_MS = 15000,       /* connect + stream + handshake, at most */
  TD_XMPP_KEEPALIVE_MS = 30000,          /* a whitespace ping (RFC 6120 4.6.1) when idle */
  /* What its HELLO would say (tally/frames.h): it cannot intercept room lines;
   * it can set a room's subject and tell moderators privately. */
  TD_XMPP_CAPS = TALLY_CAP_PIN_TOPIC | TALLY_CAP_HOLD_FOR_MODERATORS,
  /* One line we say: an engine text plus a room or two domains in words. */
  TD_XMPP_LINE_BYTES = TALLY_TEXT_BYTES_MAX + 2 * TD_XMPP_JID_BYTES_MAX + 512,
};

/* Relations the code relies on. */
_Static_assert(TD_XMPP_ARENA_BYTES >= TD_XMPP_STANZA_BYTES_MAX, "a kept stanza's tree fits the arena");
_Static_assert(TD_XMPP_STANZA_BYTES_MAX < TD_XMPP_STANZA_BYTES_HARD, "refused before the link is closed");
_Static_assert(TD_XMPP_DEPTH_MAX < TD_XMPP_DEPTH_HARD, "refused before the link is closed");
_Static_assert(TD_XMPP_FEED_BYTES < TD_XMPP_BUFFERED_BYTES_MAX, "the buffered check runs between feeds");
_Static_assert((int)TD_XMPP_JID_BYTES_MAX >= (int)TALLY_ROOM_BYTES_MAX && (int)TD_XMPP_JID_BYTES_MAX >= (int)TALLY_IDENTITY_BYTES_MAX,
               "a room or an identity fits a JID buffer");
_Static_assert(TD_XMPP_BACKOFF_FIRST_MS <= TD_XMPP_BACKOFF_MAX_MS, "backoff grows");

static const char NS_STREAM[] = "http://etherx.jabber.org/streams";
static const char NS_ACCEPT[] = "jabber:component:accept";
static const char NS_MUC_USER[] = "http://jabber.org/protocol/muc#user";
static const char NS_DELAY[] = "urn:xmpp:delay";
static const char NS_DELAY_OLD[] = "jabber:x:delay";

/* ---- a stanza's tree ----------------------------------------------------------- */
typedef struct xnode {
  const char *ns, *name;  /* "" ns when none */
  const char **attrs;     /* name, value, ..., NULL */
  char *text;
  size_t text_len;
  struct xnode *parent, *child, *last, *next;
} xnode;

typedef struct occupant {
  char *nick, *jid; /* jid: the real full JID, NULL when the room hides it */
  uint32_t roles;
  struct occupant *next;
} occupant;

typedef struct room {
  char jid[TD_XMPP_JID_BYTES_MAX + 1];
  int joined, moderator, asked;
  int nonanon;   /* the room shows real JIDs to everyone (status 100 at the join) */
  int rejoining; /* left on purpose to join again as a moderator */
  char *subject;        /* the room's subject as last said, NULL before any */
  char *subject_before; /* the subject before tally's first TOPIC, while one is pinned */
  int pinned;
  occupant *occupants;
  uint32_t occupant_count;
} room;

enum { LINK_IDLE, LINK_CONNECTING, LINK_STREAM, LINK_HANDSHAKE, LINK_LIVE };

typedef struct xwrite {
  uv_write_t req;
  struct td_xmpp *x;
  size_t len;
  char data[];
} xwrite;

struct td_xmpp {
  td_daemon *d;
  td_slot *slot;
  struct sockaddr_storage addr;
  uv_tcp_t tcp;
  int tcp_open;   /* tcp initialised and not yet closed */
  int timer_open; /* timer initialised and not yet closed */
  uv_connect_t connect_req;
  uv_timer_t timer;
  int state, closing;
  uint64_t link_started_ms, last_write_ms, backoff_ms;
  uint64_t links; /* handshakes done: for logs */
  XML_Parser parser;
  uint64_t fed, event_end; /* bytes given to expat; end of the last event's bytes */
  /* the stanza being read */
  uint8_t *arena;
  size_t arena_used;
  xnode *root, *cur;
  uint32_t depth;    /* 0 outside the stream, 1 inside it, 2 in a stanza */
  uint64_t stanza_start;
  const char *refused; /* why the stanza is skipped, NULL while kept */
  char refused_from[TD_XMPP_JID_BYTES_MAX + 1], refused_id[TALLY_MSG_ID_BYTES_MAX + 1];
  char refused_kind[16], refused_type[16];
  /* out */
  char *out;         /* stanzas for the live link, not yet written */
  size_t out_len, out_cap;
  char *queue;       /* stanzas said while the link is down: sent after the rooms are joined */
  size_t queue_len, queue_cap;
  size_t inflight;
  uint64_t dropped;
  uint64_t next_req, next_id;
  room rooms[TD_XMPP_ROOMS_MAX];
  uint32_t room_count;
  char domains[TD_XMPP_DOMAINS_MAX][TD_XMPP_DOMAIN_BYTES_MAX + 1];
  uint32_t domain_count;
};

static void link_close(td_xmpp *x, const char *why);
static void flush(td_xmpp *x);

static void *arena_alloc(td_xmpp *x, size_t n) {
  assert(x->arena_used <= TD_XMPP_ARENA_BYTES);
  size_t at = (x->arena_used + 7) & ~(size_t)7;
  if (at + n > TD_XMPP_ARENA_BYTES) return NULL;
  x->arena_used = at + n;
  return x->arena + at;
}

static char *arena_str(td_xmpp *x, const char *s, size_t n) {
  char *p = arena_alloc(x, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

static const char *attr(const xnode *n, const char *name) {
  for (const char **a = n ? n->attrs : NULL; a && *a; a += 2)
    if (!strcmp(a[0], name)) return a[1];
  return NULL;
}

static const xnode *child(const xnode *n, const char *ns, const char *name) {
  for (const xnode *c = n ? n->child : NULL; c; c = c->next)
    if (!strcmp(c->name, name) && (!ns || !strcmp(c->ns, ns))) return c;
  return NULL;
}

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
static void say(td_xmpp *x, const char *stanza, size_t len, int raw_now) {
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
  if (live) flush(x);
}

static void on_written(uv_write_t *req, int status) {
  xwrite *w = (xwrite *)req;
  td_xmpp *x = w->x;
  x->inflight -= w->len;
  free(w);
  if (status < 0 && x->state != LINK_IDLE) {
    char why[96];
    snprintf(why, sizeof why, "write failed (%s)", uv_strerror(status));
    link_close(x, why);
    return;
  }
  if (x->state != LINK_IDLE) flush(x);
}

static void flush(td_xmpp *x) {
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
    link_close(x, "write refused");
    return;
  }
  x->inflight += w->len;
  x->out_len = 0;
  x->last_write_ms = td_now_ms(x->d);
}

/* A growable string for building one stanza. Bounded by its users: every
 * piece is at most a JID or a text, so a stanza stays a few KiB. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
  int failed;
} sbuf;

static void sb_raw(sbuf *b, const char *s, size_t n) {
  if (b->failed || grow(&b->p, &b->cap, b->len + n + 1)) {
    b->failed = 1;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_raw(b, s, strlen(s)); }

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
static void sb_text(sbuf *b, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    size_t len = utf8_len(u + i, n - i);
    if (!len) {
      sb_str(b, "\xef\xbf\xbd");
      i++;
      continue;
    }
    if (c == '&') sb_str(b, "&amp;");
    else if (c == '<') sb_str(b, "&lt;");
    else if (c == '>') sb_str(b, "&gt;");
    else if (c == '\'') sb_str(b, "&apos;");
    else if (c == '"') sb_str(b, "&quot;");
    else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') { /* dropped */
    } else sb_raw(b, s + i, len);
    i += len;
  }
}

static void say_sb(td_xmpp *x, sbuf *b) {
  if (!b->failed && b->len) say(x, b->p, b->len, 0);
  else if (b->failed) td_log(TD_ERR, "xmpp: out of memory building a stanza; dropped");
  free(b->p);
}

/* <message type=T to=TO from=domain id=...><body>TEXT</body></message> */
static void send_message(td_xmpp *x, const char *type, const char *to, const char *text) {
  sbuf b = {0};
  char id[32];
  snprintf(id, sizeof id, "tally-%llu", (unsigned long long)++x->next_id);
  sb_str(&b, "<message type='");
  sb_str(&b, type);
  sb_str(&b, "' from='");
  sb_text(&b, x->d->cfg.xmpp_component_domain);
  sb_str(&b, "' to='");
  sb_text(&b, to);
  sb_str(&b, "' id='");
  sb_str(&b, id);
  sb_str(&b, "'><body>");
  sb_text(&b, text);
  sb_str(&b, "</body></message>");
  say_sb(x, &b);
}

/* An error reply to a stanza (RFC 6120 8.3): to its sender, same id. */
static void send_error(td_xmpp *x, const char *kind, const char *to, const char *id, const char *etype,
                       const char *condition, const char *text) {
  if (!to || !to[0]) return;
  sbuf b = {0};
  sb_str(&b, "<");
  sb_str(&b, kind);
  sb_str(&b, " type='error' from='");
  sb_text(&b, x->d->cfg.xmpp_component_domain);
  sb_str(&b, "' to='");
  sb_text(&b, to);
  if (id && id[0]) {
    sb_str(&b, "' id='");
    sb_text(&b, id);
  }
  sb_str(&b, "'><error type='");
  sb_str(&b, etype);
  sb_str(&b, "'><");
  sb_str(&b, condition);
  sb_str(&b, " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>");
  sb_text(&b, text);
  sb_str(&b, "</text></error></");
  sb_str(&b, kind);
  sb_str(&b, ">");
  say_sb(x, &b);
}

/* ---- JIDs ------------------------------------------------------------------------ */
/* Copies jid's bare part (before '/') into out; 0 if it does not fit. */
static int bare_of(const char *jid, char *out, size_t cap) {
  size_t n = strcspn(jid, "/");
  if (n == 0 || n >= cap) return 0;
  memcpy(out, jid, n);
  out[n] = 0;
  return 1;
}

static const char *resource_of(const char *jid) {
  const char *s = strchr(jid, '/');
  return s ? s + 1 : "";
}

static int domain_served(const td_xmpp *x, const char *bare) {
  const char *at = strchr(bare, '@');
  if (!at) return 0; /* a server or component, not a user */
  for (uint32_t i = 0; i < x->domain_count; i++)
    if (!strcasecmp(at + 1, x->domains[i])) return 1;
  return 0;
}

static room *room_by_jid(td_xmpp *x, const char *bare) {
  for (uint32_t i = 0; i < x->room_count; i++)
    if (!strcasecmp(x->rooms[i].jid, bare)) return &x->rooms[i];
  return NULL;
}

/* ---- commands to the engine ---------------------------------------------------------- */
static void answer(td_xmpp *x, const char *to, const char *channel, const char *text) {
  char line[2 * TD_XMPP_LINE_BYTES];
  if (channel && channel[0]) snprintf(line, sizeof line, "[%s] %s", channel, text);
  else snprintf(line, sizeof line, "%s", text);
  send_message(x, "chat", to, line);
}

/* Submits one command line. origin: whom to answer (a full JID);
 * account: the bare JID; channel: the room's bare JID or "". */
static void submit(td_xmpp *x, const char *origin, const char *account, const char *nick, const char *channel,
                   const char *stanza_id, const char *text, uint32_t roles) {
  td_daemon *d = x->d;
  td_slot *s = x->slot;
  assert(s && s->xmpp == x && origin && account && channel && text);
  if (strlen(text) > TALLY_TEXT_BYTES_MAX) {
    char why[128];
    snprintf(why, sizeof why, "tally: a command is at most %d bytes; nothing was done", TALLY_TEXT_BYTES_MAX);
    answer(x, origin, channel, why);
    return;
  }
  if (strpbrk(text, "\r\n")) {
    answer(x, origin, channel, "tally: one command per message, on one line; nothing was done");
    return;
  }
  char msg_id[TALLY_MSG_ID_BYTES_MAX + 1];
  if (stanza_id && strlen(stanza_id) > TALLY_MSG_ID_BYTES_MAX) {
    answer(x, origin, channel, "tally: the message's id is longer than 255 bytes; nothing was done");
    return;
  }
  /* No id: the command cannot be recognised when resent, so it gets a
   * fresh one (a client that wants exactly-once sends ids; all do). */
  if (stanza_id && stanza_id[0]) snprintf(msg_id, sizeof msg_id, "%s", stanza_id);
  else snprintf(msg_id, sizeof msg_id, "noid-%x-%llu", (unsigned)s->id, (unsigned long long)x->next_req + 1);
  char prefixed[TALLY_ORIGIN_BYTES_MAX + 1];
  int n = snprintf(prefixed, sizeof prefixed, "%x~%s", (unsigned)s->id, origin);
  if (n < 0 || (size_t)n >= sizeof prefixed) {
    answer(x, origin, channel, "tally: your address is too long for this shop; nothing was done");
    return;
  }
  if (d->stopping) {
    answer(x, origin, channel, "busy: tally is restarting, try again in a moment");
    return;
  }
  uint64_t req = ++x->next_req;
  if (td_slot_full(d, s) || td_pending_add(d, s, req, origin, channel) != TALLY_OK) {
    answer(x, origin, channel, "busy, try again in a moment");
    return;
  }
  tally_command cmd = {.size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .req_id = req, .origin = prefixed,
                       .account = account, .nick = nick, .channel = channel, .msg_id = msg_id, .text = text,
                       .roles = roles, .network = d->cfg.xmpp_network};
  int rc = tally_engine_submit_command(d->engine, &cmd);
  if (rc == TALLY_OK) return;
  td_pending_done(s, req);
  answer(x, origin, channel, rc == TALLY_EBUSY ? "busy, try again in a moment" : tally_strerror(rc));
}

/* A line said to the shop directly: every line is a command; a leading
 * '!' or '/' (habits from rooms) is dropped. */
static void on_direct(td_xmpp *x, const char *from, const char *id, const char *body) {
  char bare[TALLY_IDENTITY_BYTES_MAX + 1];
  if (!bare_of(from, bare, sizeof bare)) {
    send_error(x, "message", from, id, "modify", "jid-malformed", "sender address too long");
    return;
  }
  if (!domain_served(x, bare)) {
    td_log(TD_INFO, "xmpp: a command from %s refused: not a served domain", bare);
    send_error(x, "message", from, id, "auth", "forbidden",
               "this shop serves accounts of its own server only (xmpp_domains)");
    return;
  }
  while (*body == ' ' || *body == '\t') body++;
  if (*body == '!' || *body == '/') body++;
  if (!*body) return;
  /* The display name is the localpart (RFC 7622: at most 1023 bytes, the
   * engine's nick limit); a longer one, which no server accepts, is none. */
  char nick[TALLY_NICK_BYTES_MAX + 1] = "";
  size_t local = strcspn(bare, "@");
  if (local < sizeof nick) {
    memcpy(nick, bare, local);
    nick[local] = 0;
  }
  submit(x, from, bare, nick, "", id, body, 0);
}

static occupant *occupant_by_nick(room *r, const char *nick) {
  for (occupant *o = r->occupants; o; o = o->next)
    if (!strcmp(o->nick, nick)) return o;
  return NULL;
}

static void on_groupchat(td_xmpp *x, room *r, const char *from, const char *id, const char *body) {
  const char *nick = resource_of(from);
  if (!nick[0] || !strcmp(nick, x->d->cfg.xmpp_nick)) return; /* the room itself, or our own echo */
  while (*body == ' ' || *body == '\t') body++;
  if (body[0] != '!' || !body[1] || body[1] == ' ') return; /* not for tally: the room's own talk */
  occupant *o = occupant_by_nick(r, nick);
  if (!o || !o->jid) {
    /* A semi-anonymous room shows real JIDs to moderators only: without
     * them a wallet cannot be told apart from a nick anyone may take. */
    char why[TD_XMPP_LINE_BYTES];
    snprintf(why, sizeof why,
             "tally cannot see who you are in this room (it shows real addresses to moderators only, and tally "
             "is not one): nothing was done. Message %s directly, or ask a room owner to make %s a room admin.",
             x->d->cfg.xmpp_component_domain, x->d->cfg.xmpp_component_domain);
    send_message(x, "chat", from, why); /* a MUC private message to the nick */
    return;
  }
  char bare[TALLY_IDENTITY_BYTES_MAX + 1];
  if (!bare_of(o->jid, bare, sizeof bare) || !domain_served(x, bare)) {
    answer(x, o->jid, r->jid, "tally: this shop serves accounts of its own server only; nothing was done");
    return;
  }
  submit(x, o->jid, bare, nick, r->jid, id, body + 1, o->roles);
}

/* ---- stanzas ------------------------------------------------------------------------- */
static int delayed(const xnode *st) { return child(st, NS_DELAY, "delay") || child(st, NS_DELAY_OLD, "x"); }

/* A room's subject as the room says it (at the join, and after every
 * change, ours too): what a TOPIC "" puts back is the one from before
 * tally's first change. */
static void on_subject(room *r, const xnode *subject) {
  char *copy = strdup(subject->text ? subject->text : "");
  if (!copy) return;
  free(r->subject);
  r->subject = copy;
}

static void on_message(td_xmpp *x, const xnode *st) {
  const char *from = attr(st, "from"), *id = attr(st, "id"), *type = attr(st, "type");
  if (!type) type = "normal";
  char bare[TD_XMPP_JID_BYTES_MAX + 1];
  room *r = from && bare_of(from, bare, sizeof bare) ? room_by_jid(x, bare) : NULL;
  if (r && !strcmp(type, "error")) { /* most likely our subject change or a line to the room, refused */
    const xnode *e = child(st, NULL, "error");
    td_log(TD_WARN, "xmpp: room %s refused what tally said: %s", r->jid, e && e->child ? e->child->name : "?");
    return;
  }
  if (!from || !strcmp(type, "error") || !strcmp(type, "headline")) return;
  const xnode *subject = child(st, NS_ACCEPT, "subject"), *body = child(st, NS_ACCEPT, "body");
  if (r && subject && !strcmp(type, "groupchat")) on_subject(r, subject);
  if (!body || !body->text) return; /* chat states, receipts, subjects */
  if (delayed(st)) {
    td_log(TD_DEBUG, "xmpp: delayed message from %s ignored (XEP-0203)", from);
    return;
  }
  if (!r && !bare_of(from, bare, sizeof bare)) return;
  if (r && !strcmp(type, "groupchat")) on_groupchat(x, r, from, id, body->text);
  else if (r && resource_of(from)[0]) /* a private message in the room; never to the room itself */
    send_message(x, "chat", from, "tally takes commands as !word in the room, or directly at its own address");
  else if (strcmp(type, "groupchat")) on_direct(x, from, id, body->text);
}

static uint32_t roles_of(const char *affiliation, const char *role) {
  uint32_t roles = 0;
  if (affiliation && (!strcmp(affiliation, "owner") || !strcmp(affiliation, "admin"))) roles |= TALLY_ROLE_HOST;
  if (role && !strcmp(role, "moderator")) roles |= TALLY_ROLE_MODERATOR;
  return roles;
}

static void occupant_gone(td_xmpp *x, room *r, occupant **link) {
  occupant *o = *link;
  char bare[TALLY_IDENTITY_BYTES_MAX + 1];
  if (o->jid && bare_of(o->jid, bare, sizeof bare))
    td_presence_report(x->d->presence, x->slot->id, x->d->cfg.xmpp_network, bare, r->jid, 0, td_presence_submit, x->d);
  *link = o->next;
  free(o->nick);
  free(o->jid);
  free(o);
  r->occupant_count--;
}

static void room_forget(td_xmpp *x, room *r) {
  while (r->occupants) occupant_gone(x, r, &r->occupants);
  r->joined = r->moderator = r->nonanon = r->rejoining = 0;
}

static void ask_moderator(td_xmpp *x, room *r) {
  if (r->asked) return;
  r->asked = 1;
  char text[TD_XMPP_LINE_BYTES];
  snprintf(text, sizeof text,
           "tally needs to see buyers' addresses to take commands in this semi-anonymous room: a room owner can "
           "make %s a room admin (it then joins as a moderator). Until then, message %s directly.",
           x->d->cfg.xmpp_component_domain, x->d->cfg.xmpp_component_domain);
  send_message(x, "groupchat", r->jid, text);
  td_log(TD_WARN, "xmpp: room %s hides real JIDs and tally is not a moderator there: commands in it are refused",
         r->jid);
}

/* Joins r with no history: the room must not replay old lines as commands. */
static void send_join(td_xmpp *x, const room *r) {
  sbuf b = {0};
  sb_str(&b, "<presence from='");
  sb_text(&b, x->d->cfg.xmpp_component_domain);
  sb_str(&b, "' to='");
  sb_text(&b, r->jid);
  sb_str(&b, "/");
  sb_text(&b, x->d->cfg.xmpp_nick);
  sb_str(&b, "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>");
  say_sb(x, &b);
}

static void on_self_presence(td_xmpp *x, room *r, const char *type, const xnode *item, int nonanon) {
  if (type && !strcmp(type, "unavailable")) {
    int again = r->rejoining;
    room_forget(x, r);
    r->rejoining = 0;
    if (!again)
      td_log(TD_WARN, "xmpp: left room %s (kicked, banned or the room closed); rejoining at the next link", r->jid);
    return;
  }
  const char *role = attr(item, "role");
  int was = r->joined, was_moderator = r->moderator;
  r->joined = 1;
  r->moderator = role && !strcmp(role, "moderator");
  if (!was) {
    r->nonanon = nonanon;
    td_log(TD_INFO, "xmpp: joined %s as %s (%s)", r->jid, role ? role : "?",
           nonanon ? "non-anonymous" : r->moderator ? "semi-anonymous, moderator" : "semi-anonymous");
  }
  if (!r->nonanon && !r->moderator) ask_moderator(x, r);
  if (was && !r->nonanon && r->moderator && !was_moderator && !r->rejoining) {
    /* Made a moderator (a room owner made us an admin): the real JIDs come
     * with the occupant list of a join, so leave and join again. */
    td_log(TD_INFO, "xmpp: now a moderator of %s: joining again to see real JIDs", r->jid);
    r->rejoining = 1;
    sbuf b = {0};
    sb_str(&b, "<presence type='unavailable' from='");
    sb_text(&b, x->d->cfg.xmpp_component_domain);
    sb_str(&b, "' to='");
    sb_text(&b, r->jid);
    sb_str(&b, "/");
    sb_text(&b, x->d->cfg.xmpp_nick);
    sb_str(&b, "'/>");
    say_sb(x, &b);
    send_join(x, r);
  }
}

static void on_room_presence(td_xmpp *x, room *r, const xnode *st, const char *from) {
  const char *type = attr(st, "type"), *nick = resource_of(from);
  if (type && !strcmp(type, "error")) {
    const xnode *e = child(st, NULL, "error");
    td_log(TD_WARN, "xmpp: room %s refused the join: %s", r->jid, e && e->child ? e->child->name : "(no reason)");
    return;
  }
  const xnode *xu = child(st, NS_MUC_USER, "x"), *item = child(xu, NS_MUC_USER, "item");
  int self = 0, nonanon = 0;
  for (const xnode *c = xu ? xu->child : NULL; c; c = c->next)
    if (!strcmp(c->name, "status")) {
      const char *code = attr(c, "code");
      if (code && !strcmp(code, "110")) self = 1;
      if (code && (!strcmp(code, "100") || !strcmp(code, "172"))) nonanon = 1;
    }
  if (self || !strcmp(nick, x->d->cfg.xmpp_nick)) {
    on_self_presence(x, r, type, item, nonanon);
    return;
  }
  occupant **link = &r->occupants;
  while (*link && strcmp((*link)->nick, nick)) link = &(*link)->next;
  if (type && !strcmp(type, "unavailable")) {
    if (*link) occupant_gone(x, r, link);
    return;
  }
  const char *jid = attr(item, "jid");
  if (!*link) {
    if (r->occupant_count >= TD_XMPP_OCCUPANTS_MAX) {
      td_log(TD_WARN, "xmpp: room %s: more than %d occupants; %s not remembered (their commands are refused)",
             r->jid, TD_XMPP_OCCUPANTS_MAX, nick);
      return;
    }
    occupant *o = calloc(1, sizeof *o);
    if (!o || !(o->nick = strdup(nick))) {
      free(o);
      return;
    }
    o->next = r->occupants;
    r->occupants = o;
    r->occupant_count++;
    link = &r->occupants;
  }
  occupant *o = *link;
  o->roles = roles_of(attr(item, "affiliation"), attr(item, "role"));
  if (jid && (!o->jid || strcmp(o->jid, jid))) {
    free(o->jid);
    o->jid = strdup(jid);
    char bare[TALLY_IDENTITY_BYTES_MAX + 1];
    if (o->jid && bare_of(o->jid, bare, sizeof bare) && domain_served(x, bare) &&
        td_presence_report(x->d->presence, x->slot->id, x->d->cfg.xmpp_network, bare, r->jid, 1,
                           td_presence_submit, x->d) != TALLY_OK)
      td_log(TD_WARN, "xmpp: presence table full: %s in %s not counted", bare, r->jid);
  }
}

static void on_iq(td_xmpp *x, const xnode *st) {
  const char *type = attr(st, "type"), *from = attr(st, "from"), *id = attr(st, "id");
  if (!type || (strcmp(type, "get") && strcmp(type, "set"))) return; /* results and errors: nothing asked */
  const xnode *q = st->child;
  if (q && !strcmp(q->ns, "urn:xmpp:ping") && !strcmp(q->name, "ping")) {
    sbuf b = {0};
    sb_str(&b, "<iq type='result' from='");
    sb_text(&b, x->d->cfg.xmpp_component_domain);
    sb_str(&b, "' to='");
    sb_text(&b, from ? from : "");
    sb_str(&b, "' id='");
    sb_text(&b, id ? id : "");
    sb_str(&b, "'/>");
    if (from) say_sb(x, &b);
    else free(b.p);
    return;
  }
  send_error(x, "iq", from, id, "cancel", "service-unavailable", "tally answers chat messages only");
}

static void on_stanza(td_xmpp *x, const xnode *st) {
  if (!strcmp(st->ns, NS_STREAM) && !strcmp(st->name, "error")) {
    char why[256];
    const xnode *c = st->child;
    const xnode *t = child(st, "urn:ietf:params:xml:ns:xmpp-streams", "text");
    snprintf(why, sizeof why, "stream error from the server: %s%s%s", c ? c->name : "?", t && t->text ? ": " : "",
             t && t->text ? t->text : "");
    link_close(x, why);
    return;
  }
  if (strcmp(st->ns, NS_ACCEPT)) return; /* stream features and the like: nothing for a component */
  if (!strcmp(st->name, "handshake")) {
    if (x->state != LINK_HANDSHAKE) return;
    x->state = LINK_LIVE;
    x->backoff_ms = TD_XMPP_BACKOFF_FIRST_MS;
    x->links++;
    td_log(TD_INFO, "xmpp: component %s is live (link %llu): adapter \"xmpp-component\", caps %u (cannot "
                    "intercept room lines; sets subjects, tells moderators privately); joining %u rooms",
           x->d->cfg.xmpp_component_domain, (unsigned long long)x->links, (unsigned)TD_XMPP_CAPS, x->room_count);
    for (uint32_t i = 0; i < x->room_count; i++) send_join(x, &x->rooms[i]);
    if (x->queue_len) { /* said while the link was down, in order, after the joins */
      td_log(TD_INFO, "xmpp: sending %zu bytes said while the link was down", x->queue_len);
      say(x, x->queue, x->queue_len, 1);
      x->queue_len = 0;
    }
    return;
  }
  if (x->state != LINK_LIVE) return;
  const char *from = attr(st, "from");
  if (!strcmp(st->name, "message")) on_message(x, st);
  else if (!strcmp(st->name, "presence") && from) {
    char bare[TD_XMPP_JID_BYTES_MAX + 1];
    room *r = bare_of(from, bare, sizeof bare) ? room_by_jid(x, bare) : NULL;
    if (r) on_room_presence(x, r, st, from);
  } else if (!strcmp(st->name, "iq")) on_iq(x, st);
}

/* ---- expat handlers ------------------------------------------------------------------ */
static void mark_event(td_xmpp *x) {
  x->event_end = (uint64_t)XML_GetCurrentByteIndex(x->parser) + (uint64_t)XML_GetCurrentByteCount(x->parser);
}

static void fatal(td_xmpp *x, const char *why) {
  XML_StopParser(x->parser, XML_FALSE);
  link_close(x, why);
}

/* Skips the rest of the stanza, remembering enough to answer its sender. */
static void refuse(td_xmpp *x, const char *why) {
  if (x->refused) return;
  x->refused = why;
  x->root = x->cur = NULL;
}

static void split_name(const char *full, const char **ns, size_t *ns_len, const char **local) {
  const char *sp = strchr(full, ' ');
  if (sp) {
    *ns = full;
    *ns_len = (size_t)(sp - full);
    *local = sp + 1;
  } else {
    *ns = "";
    *ns_len = 0;
    *local = full;
  }
}

static void on_start_stream(td_xmpp *x, const char *name, const char **atts) {
  const char *ns, *local;
  size_t ns_len;
  split_name(name, &ns, &ns_len, &local);
  if (ns_len != strlen(NS_STREAM) || memcmp(ns, NS_STREAM, ns_len) || strcmp(local, "stream")) {
    fatal(x, "the server did not open an XMPP stream");
    return;
  }
  const char *id = NULL;
  for (const char **a = atts; *a; a += 2)
    if (!strcmp(a[0], "id")) id = a[1];
  if (!id || !id[0] || strlen(id) > 1024) {
    fatal(x, "the server's stream has no usable id");
    return;
  }
  /* XEP-0114: hex(SHA-1(stream id + secret)). */
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!md || !EVP_DigestInit_ex(md, EVP_sha1(), NULL) || !EVP_DigestUpdate(md, id, strlen(id)) ||
      !EVP_DigestUpdate(md, x->d->cfg.xmpp_secret.bytes, x->d->cfg.xmpp_secret.len) ||
      !EVP_DigestFinal_ex(md, digest, &len)) {
    EVP_MD_CTX_free(md);
    fatal(x, "SHA-1 failed");
    return;
  }
  EVP_MD_CTX_free(md);
  char hs[64 + 2 * EVP_MAX_MD_SIZE];
  int n = snprintf(hs, sizeof hs, "<handshake>");
  for (unsigned i = 0; i < len; i++) n += snprintf(hs + n, sizeof hs - (size_t)n, "%02x", digest[i]);
  n += snprintf(hs + n, sizeof hs - (size_t)n, "</handshake>");
  x->state = LINK_HANDSHAKE;
  say(x, hs, (size_t)n, 1);
}

static void XMLCALL on_start(void *ud, const char *name, const char **atts) {
  td_xmpp *x = ud;
  mark_event(x);
  x->depth++;
  if (x->depth == 1) {
    on_start_stream(x, name, atts);
    return;
  }
  if (x->depth == 2) {
    x->arena_used = 0;
    x->root = x->cur = NULL;
    x->refused = NULL;
    x->stanza_start = (uint64_t)XML_GetCurrentByteIndex(x->parser);
    /* Who to answer if it is refused later: taken now, while it is small. */
    const char *ns, *local;
    size_t ns_len;
    split_name(name, &ns, &ns_len, &local);
    snprintf(x->refused_kind, sizeof x->refused_kind, "%s", local);
    x->refused_from[0] = x->refused_id[0] = x->refused_type[0] = 0;
    for (const char **a = atts; *a; a += 2) {
      if (!strcmp(a[0], "from") && strlen(a[1]) < sizeof x->refused_from) strcpy(x->refused_from, a[1]);
      if (!strcmp(a[0], "id") && strlen(a[1]) < sizeof x->refused_id) strcpy(x->refused_id, a[1]);
      if (!strcmp(a[0], "type") && strlen(a[1]) < sizeof x->refused_type) strcpy(x->refused_type, a[1]);
    }
  }
  if (x->depth > TD_XMPP_DEPTH_HARD) {
    fatal(x, "elements nested deeper than TD_XMPP_DEPTH_HARD");
    return;
  }
  if (x->refused) return;
  if (x->depth - 1 > TD_XMPP_DEPTH_MAX) {
    refuse(x, "elements nested too deep");
    return;
  }
  xnode *n = arena_alloc(x, sizeof *n);
  size_t count = 0;
  while (atts[count]) count += 2;
  const char **av = n ? arena_alloc(x, (count + 1) * sizeof *av) : NULL;
  const char *ns, *local;
  size_t ns_len;
  split_name(name, &ns, &ns_len, &local);
  if (!av || !(n->ns = arena_str(x, ns, ns_len)) || !(n->name = arena_str(x, local, strlen(local)))) {
    refuse(x, "stanza too big");
    return;
  }
  for (size_t i = 0; i < count; i++) {
    const char *ans, *alocal;
    size_t ans_len;
    split_name(atts[i], &ans, &ans_len, &alocal);
    if (!(av[i] = arena_str(x, (i % 2) ? atts[i] : alocal, strlen((i % 2) ? atts[i] : alocal)))) {
      refuse(x, "stanza too big");
      return;
    }
  }
  av[count] = NULL;
  n->attrs = av;
  n->text = NULL;
  n->text_len = 0;
  n->child = n->last = n->next = NULL;
  n->parent = x->cur;
  if (x->cur) {
    if (x->cur->last) x->cur->last->next = n;
    else x->cur->child = n;
    x->cur->last = n;
  } else x->root = n;
  x->cur = n;
}

static void check_size(td_xmpp *x) {
  if (x->depth < 2) return;
  uint64_t size = x->event_end - x->stanza_start;
  if (size > TD_XMPP_STANZA_BYTES_HARD) fatal(x, "a stanza over TD_XMPP_STANZA_BYTES_HARD bytes");
  else if (size > TD_XMPP_STANZA_BYTES_MAX) refuse(x, "stanza too big");
}

static void XMLCALL on_text(void *ud, const char *s, int len) {
  td_xmpp *x = ud;
  mark_event(x);
  check_size(x);
  if (x->depth < 2 || x->refused || !x->cur || len <= 0) return;
  xnode *n = x->cur;
  size_t add = (size_t)len;
  if (n->text && (uint8_t *)n->text + n->text_len + 1 == x->arena + x->arena_used &&
      x->arena_used + add <= TD_XMPP_ARENA_BYTES) { /* the newest allocation: grow in place */
    memcpy(n->text + n->text_len, s, add);
    n->text_len += add;
    n->text[n->text_len] = 0;
    x->arena_used += add;
    return;
  }
  char *t = arena_alloc(x, n->text_len + add + 1);
  if (!t) {
    refuse(x, "stanza too big");
    return;
  }
  if (n->text) memcpy(t, n->text, n->text_len);
  memcpy(t + n->text_len, s, add);
  n->text_len += add;
  t[n->text_len] = 0;
  n->text = t;
}

static void XMLCALL on_end(void *ud, const char *name) {
  (void)name;
  td_xmpp *x = ud;
  mark_event(x);
  check_size(x);
  if (x->state == LINK_IDLE) return;
  if (x->depth == 1) {
    x->depth = 0;
    link_close(x, "the server closed the stream");
    return;
  }
  if (x->cur && !x->refused) x->cur = x->cur->parent;
  assert(x->depth >= 2);
  if (--x->depth != 1) return;
  assert(x->refused || !x->cur); /* back at the stanza's end: its tree is closed */
  if (x->refused) {
    td_log(TD_WARN, "xmpp: refused a %s from %s (id \"%s\"): %s (at most %d bytes, %d levels deep)",
           x->refused_kind, x->refused_from[0] ? x->refused_from : "?", x->refused_id, x->refused,
           TD_XMPP_STANZA_BYTES_MAX, TD_XMPP_DEPTH_MAX);
    if (strcmp(x->refused_type, "error") && strcmp(x->refused_type, "result") &&
        (!strcmp(x->refused_kind, "message") || !strcmp(x->refused_kind, "iq"))) {
      char text[160];
      snprintf(text, sizeof text, "tally refused this %s: %s (at most %d bytes, %d levels deep); nothing was done",
               x->refused_kind, x->refused, TD_XMPP_STANZA_BYTES_MAX, TD_XMPP_DEPTH_MAX);
      send_error(x, x->refused_kind, x->refused_from, x->refused_id, "modify", "policy-violation", text);
    }
  } else if (x->root) on_stanza(x, x->root);
  x->root = x->cur = NULL;
  x->refused = NULL;
}

static void XMLCALL on_doctype(void *ud, const char *name, const char *sysid, const char *pubid, int internal) {
  (void)name;
  (void)sysid;
  (void)pubid;
  (void)internal;
  fatal(ud, "a DTD in the stream (XMPP forbids them)");
}

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

static void link_close(td_xmpp *x, const char *why) {
  if (x->state == LINK_IDLE) return;
  int was_live = x->state == LINK_LIVE;
  x->state = LINK_IDLE;
  td_log(was_live ? TD_WARN : TD_INFO, "xmpp: link to %s %s: %s; reconnecting in %llu ms", x->d->cfg.xmpp_component,
         was_live ? "lost" : "failed", why, (unsigned long long)x->backoff_ms);
  if (x->parser) {
    XML_StopParser(x->parser, XML_FALSE); /* we may be inside its handler: freed at the next connect */
  }
  for (uint32_t i = 0; i < x->room_count; i++) room_forget(x, &x->rooms[i]);
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
    link_close(x, nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
    return;
  }
  for (ssize_t at = 0; at < nread && x->state != LINK_IDLE;) {
    int n = nread - at > TD_XMPP_FEED_BYTES ? TD_XMPP_FEED_BYTES : (int)(nread - at);
    enum XML_Status st = XML_Parse(x->parser, buf->base + at, n, XML_FALSE);
    at += n;
    if (x->state == LINK_IDLE) return; /* a handler closed the link */
    x->fed += (uint64_t)n;
    if (st == XML_STATUS_ERROR) {
      char why[200];
      snprintf(why, sizeof why, "XML error at byte %llu: %s", (unsigned long long)XML_GetCurrentByteIndex(x->parser),
               XML_ErrorString(XML_GetErrorCode(x->parser)));
      say(x, "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", 88, 1);
      link_close(x, why);
      return;
    }
    if (x->fed - x->event_end > TD_XMPP_BUFFERED_BYTES_MAX) {
      say(x, "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", 89, 1);
      link_close(x, "more than TD_XMPP_BUFFERED_BYTES_MAX bytes without a complete tag");
      return;
    }
  }
  flush(x);
}

static void on_connected(uv_connect_t *req, int status) {
  td_xmpp *x = req->data;
  if (x->state != LINK_CONNECTING) return;
  if (status < 0) {
    link_close(x, uv_strerror(status));
    return;
  }
  if (x->parser) XML_ParserFree(x->parser);
  x->parser = XML_ParserCreateNS("UTF-8", ' ');
  if (!x->parser) {
    link_close(x, "out of memory for the XML parser");
    return;
  }
  XML_SetUserData(x->parser, x);
  XML_SetElementHandler(x->parser, on_start, on_end);
  XML_SetCharacterDataHandler(x->parser, on_text);
  XML_SetStartDoctypeDeclHandler(x->parser, on_doctype);
  x->fed = x->event_end = 0;
  x->depth = 0;
  x->state = LINK_STREAM;
  uv_tcp_nodelay(&x->tcp, 1);
  uv_tcp_keepalive(&x->tcp, 1, 60);
  uv_read_start((uv_stream_t *)&x->tcp, on_alloc, on_read);
  sbuf b = {0};
  sb_str(&b, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='");
  sb_text(&b, x->d->cfg.xmpp_component_domain);
  sb_str(&b, "'>");
  if (!b.failed) say(x, b.p, b.len, 1);
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
  if (rc != 0) link_close(x, uv_strerror(rc));
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
    link_close(x, "no handshake within TD_XMPP_LINK_TIMEOUT_MS (wrong port, domain or secret?)");
    return;
  }
  if (x->state == LINK_LIVE && now - x->last_write_ms >= TD_XMPP_KEEPALIVE_MS) say(x, " ", 1, 1);
  flush(x);
  schedule(x, 1000);
}

static void schedule(td_xmpp *x, uint64_t ms) { uv_timer_start(&x->timer, on_timer, ms, 0); }

/* ---- effects ---------------------------------------------------------------------------- */
/* Says text privately to each moderator of r whose real JID tally sees,
 * once per person, "[room, moderators] " first (mod_tally's form: it is not
 * an answer to a line they said). Returns how many were told. */
static uint32_t tell_moderators(td_xmpp *x, const room *r, const char *text) {
  char line[2 * TD_XMPP_LINE_BYTES], bare[TALLY_IDENTITY_BYTES_MAX + 1], other[TALLY_IDENTITY_BYTES_MAX + 1];
  snprintf(line, sizeof line, "[%s, moderators] %s", r->jid, text);
  uint32_t told = 0;
  for (const occupant *o = r->occupants; o; o = o->next) {
    if (!(o->roles & TALLY_ROLE_MODERATOR) || !o->jid || !bare_of(o->jid, bare, sizeof bare)) continue;
    int dup = 0;
    for (const occupant *p = r->occupants; p != o && !dup; p = p->next)
      dup = (p->roles & TALLY_ROLE_MODERATOR) && p->jid && bare_of(p->jid, other, sizeof other) && !strcmp(bare, other);
    if (dup) continue;
    send_message(x, "chat", bare, line);
    told++;
  }
  return told;
}

/* TOPIC: text becomes the room's subject; "" puts back the subject from
 * before tally's first change (XEP-0045 8.1: a subject change is a
 * groupchat message with <subject/>; a room that does not let tally change
 * it answers an error, logged). */
static void set_topic(td_xmpp *x, room *r, const char *text) {
  if (text[0] && !r->pinned) {
    free(r->subject_before);
    r->subject_before = strdup(r->subject ? r->subject : "");
    if (!r->subject_before) return;
    r->pinned = 1;
  }
  if (!text[0] && !r->pinned) return; /* nothing of ours to take down */
  const char *subject = text[0] ? text : r->subject_before;
  sbuf b = {0};
  char id[32];
  snprintf(id, sizeof id, "tally-%llu", (unsigned long long)++x->next_id);
  sb_str(&b, "<message type='groupchat' from='");
  sb_text(&b, x->d->cfg.xmpp_component_domain);
  sb_str(&b, "' to='");
  sb_text(&b, r->jid);
  sb_str(&b, "' id='");
  sb_str(&b, id);
  sb_str(&b, "'><subject>");
  sb_text(&b, subject);
  sb_str(&b, "</subject></message>");
  say_sb(x, &b);
  if (!text[0]) {
    free(r->subject_before);
    r->subject_before = NULL;
    r->pinned = 0;
  }
}

/* How a room names an account: its occupant's nick there, never the JID
 * (in a semi-anonymous room the occupants do not see each other's JIDs,
 * and tally, a moderator there, must not tell them); someone not in the
 * room by the JID's localpart. */
static void name_in_room(const room *r, const char *bare, size_t len, sbuf *b) {
  char want[TALLY_IDENTITY_BYTES_MAX + 1], other[TALLY_IDENTITY_BYTES_MAX + 1];
  if (len >= sizeof want) {
    sb_raw(b, bare, len);
    return;
  }
  memcpy(want, bare, len);
  want[len] = 0;
  for (const occupant *o = r->occupants; o; o = o->next)
    if (o->jid && bare_of(o->jid, other, sizeof other) && !strcasecmp(want, other)) {
      sb_str(b, o->nick);
      return;
    }
  const char *at = memchr(bare, '@', len);
  sb_raw(b, bare, at && at > bare ? (size_t)(at - bare) : len);
}

/* The effect's text for room r: its ACCOUNT arguments (tally.h, the
 * effect's args) as names in the room. Caller frees b->p. */
static void render_for_room(const room *r, const tally_effect *e, sbuf *b) {
  const char *text = e->text ? e->text : "";
  const char *enc = TALLY_HAS_FIELD(e, tally_effect, args) && e->version >= 3 && e->args ? e->args : "";
  tally_effect_arg args[TALLY_EFFECT_ARGS_MAX];
  size_t count = 0, pos = 0;
  if (enc[0] && tally_effect_args_parse(text, enc, args, TALLY_EFFECT_ARGS_MAX, &count) != TALLY_OK) count = 0;
  for (size_t i = 0; i < count; i++) {
    if (args[i].kind != TALLY_ARG_ACCOUNT || args[i].start < pos) continue; /* inside a span already shown */
    sb_raw(b, text + pos, args[i].start - pos);
    name_in_room(r, text + args[i].start, args[i].len, b);
    pos = (size_t)args[i].start + args[i].len;
  }
  sb_str(b, text + pos);
}

static room *room_of(td_xmpp *x, const char *channel) {
  char bare[TD_XMPP_JID_BYTES_MAX + 1];
  return bare_of(channel, bare, sizeof bare) ? room_by_jid(x, bare) : NULL;
}

/* A room effect: rendered for the room, then sent its way. */
static void room_effect(td_xmpp *x, const tally_effect *e, const char *channel) {
  room *r = room_of(x, channel);
  if (!r) {
    td_log(TD_INFO, "xmpp: effect kind %u for %s, a room not in xmpp_rooms: dropped", e->kind, channel);
    return;
  }
  sbuf b = {0};
  render_for_room(r, e, &b);
  const char *text = b.failed || !b.p ? (e->text ? e->text : "") : b.p;
  if (e->kind == TALLY_EFFECT_ANNOUNCE) send_message(x, "groupchat", r->jid, text);
  else if (e->kind == TALLY_EFFECT_TOPIC) set_topic(x, r, text);
  else if (!tell_moderators(x, r, text)) /* never to the whole room instead (tally.h) */
    td_log(TD_INFO, "xmpp: a line for the moderators of %s dropped: no moderator whose JID tally sees", channel);
  free(b.p);
}

void td_xmpp_effect(td_xmpp *x, const tally_effect *e, const char *origin) {
  assert(x && e && x->slot && x->slot->xmpp == x);
  const char *text = e->text ? e->text : "", *channel = e->channel ? e->channel : "";
  int hint = TALLY_HAS_FIELD(e, tally_effect, hint) ? (int)e->hint : 0;
  char line[TD_XMPP_LINE_BYTES];
  switch (e->kind) {
  case TALLY_EFFECT_REPLY:
    if (hint == TALLY_HINT_SEND_PRIVATELY)
      snprintf(line, sizeof line, "%s (message %s directly: this room shows every line)", text,
               x->d->cfg.xmpp_component_domain);
    else if (hint == TALLY_HINT_HOST_ROLE) snprintf(line, sizeof line, "%s (the room's owners and admins)", text);
    else if (hint == TALLY_HINT_ADMIN_ROLE) snprintf(line, sizeof line, "%s (tally's admins: the admins key)", text);
    else snprintf(line, sizeof line, "%s", text);
    if (origin && origin[0]) answer(x, origin, channel, line);
    return;
  case TALLY_EFFECT_ANNOUNCE:
  case TALLY_EFFECT_TOPIC:
  case TALLY_EFFECT_MODERATORS:
    room_effect(x, e, channel);
    return;
  default: /* STATUS, ROSTER: nothing to send */
    td_log(TD_DEBUG, "xmpp: effect kind %u for %s not sent (nothing to say)", e->kind, channel);
  }
}

int td_xmpp_flushed(const td_xmpp *x) { return !x || x->state != LINK_LIVE || (!x->out_len && !x->inflight); }

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

int td_xmpp_start(td_daemon *d, char *err, size_t err_len) {
  const td_config *cfg = &d->cfg;
  if (!cfg->xmpp_component[0]) return TALLY_OK;
  td_xmpp *x = calloc(1, sizeof *x);
  if (!x || !(x->arena = malloc(TD_XMPP_ARENA_BYTES))) {
    free(x);
    snprintf(err, err_len, "xmpp: out of memory");
    return TALLY_ENOMEM;
  }
  x->d = d;
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
    if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)&x->addr) != 0) goto bad_addr;
  } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&x->addr) != 0) goto bad_addr;
  {
    char names[TD_XMPP_ROOMS_MAX][TD_XMPP_JID_BYTES_MAX + 1];
    if (parse_list(cfg->xmpp_rooms, &names[0][0], sizeof names[0], TD_XMPP_ROOMS_MAX, &x->room_count) != 0 ||
        x->room_count > TD_XMPP_ROOMS_MAX) {
      snprintf(err, err_len, "xmpp_rooms: at most %d rooms", TD_XMPP_ROOMS_MAX);
      goto fail;
    }
    for (uint32_t i = 0; i < x->room_count; i++) {
      if (!strchr(names[i], '@') || strchr(names[i], '/') || strlen(names[i]) > TALLY_ROOM_BYTES_MAX) {
        snprintf(err, err_len, "xmpp_rooms: %.300s is not a room's bare JID (room@conference.example.org)", names[i]);
        goto fail;
      }
      snprintf(x->rooms[i].jid, sizeof x->rooms[i].jid, "%s", names[i]);
    }
  }
  if (parse_list(cfg->xmpp_domains, &x->domains[0][0], sizeof x->domains[0], TD_XMPP_DOMAINS_MAX, &x->domain_count)) {
    snprintf(err, err_len, "xmpp_domains: at most %d domains", TD_XMPP_DOMAINS_MAX);
    goto fail;
  }
  if (!x->domain_count) { /* shop.example.org serves example.org */
    const char *dot = strchr(cfg->xmpp_component_domain, '.');
    snprintf(x->domains[0], sizeof x->domains[0], "%s", dot && dot[1] ? dot + 1 : cfg->xmpp_component_domain);
    x->domain_count = 1;
  }
  x->slot = td_slot_get(d, cfg->xmpp_network, "xmpp-component", 0);
  if (!x->slot) {
    snprintf(err, err_len, "xmpp: no slot free for the component");
    goto fail;
  }
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
bad_addr:
  snprintf(err, err_len, "xmpp_component: '%.300s' is not IP:PORT ([v6]:port for IPv6)", cfg->xmpp_component);
fail:
  free(x->arena);
  free(x);
  return TALLY_ECONFIG;
}

void td_xmpp_close(td_xmpp *x) {
  if (!x || x->closing) return;
  x->closing = 1;
  link_close(x, "tallyd stopped");
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
