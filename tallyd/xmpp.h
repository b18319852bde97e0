/* xmpp.h — the XEP-0114 external component's parts, shared by its files
 * (tallyd's public face of it, td_xmpp_start/effect/flushed/close, is in
 * tallyd.h). Internal: only tallyd/xmpp_*.c include this header.
 *
 * The contract.
 * - What it is: an adapter that lives in tallyd, so any XMPP server
 *   (ejabberd, Prosody, Openfire...) reaches the shop as a domain of its own
 *   (e.g. shop.example.org). It maps stanzas to the same tally_command the
 *   frame adapters send (identity = the sender's bare JID, network =
 *   xmpp_network, msg_id = the stanza id, so the engine scopes idempotency
 *   by (network, identity, stanza id)) and effects back to stanzas; the
 *   engine knows no XMPP. It owns one slot (route.c) whose effects come here
 *   instead of into frames; replies find it through the same "<slot id
 *   hex>~" origin prefix, and the busy bound and the answers at stop are the
 *   frame adapters' (pending.c).
 * - The link: tallyd connects out to the server's component port, opens a
 *   jabber:component:accept stream, answers the stream id with
 *   hex(SHA-1(id + secret)) and, once the server says <handshake/>, joins
 *   the configured rooms (no history) and sends what waited. Any failure
 *   closes the link and reconnects with backoff (TD_XMPP_BACKOFF_*); what is
 *   said meanwhile waits in a bounded queue.
 * - Its HELLO-equivalent capabilities (TD_XMPP_CAPS, logged at each link):
 *   it cannot intercept room lines (a room shows a command before tally sees
 *   it); it can set a room's subject (TOPIC), and say a line to a room's
 *   moderators only, as private messages to those whose real JID it sees.
 *   The engine refuses private-only commands said in a room whatever the
 *   caps (command.c), and this adapter adds its hint: message the
 *   component. A MODERATORS effect with no moderator it can reach is dropped
 *   (the engine's rule: never to the whole room).
 * - Rooms: a command in a room ("!buy tee") is taken only from an occupant
 *   whose real JID the room shows the component (a non-anonymous room, or a
 *   semi-anonymous one where the component is a moderator); otherwise it is
 *   refused by a private message in the room saying why. Delayed stanzas
 *   (XEP-0203) and the component's own echoes are ignored.
 * - Parsing: expat over the stream, one small tree per stanza in a fixed
 *   arena. Everything is bounded: a stanza over TD_XMPP_STANZA_BYTES_MAX or
 *   deeper than TD_XMPP_DEPTH_MAX is refused (an error reply to its sender,
 *   logged) and skipped without being stored; bytes expat holds without an
 *   event beyond TD_XMPP_BUFFERED_BYTES_MAX, a stanza beyond
 *   TD_XMPP_STANZA_BYTES_HARD, a DTD or an XML error close the link with a
 *   stream error (logged) and reconnect.
 * - Keys (xmpp_* in tallyd's config): parsed at start; SIGHUP
 *   (td_xmpp_reload) checks the new ones first, applies xmpp_domains and
 *   xmpp_grant_jids at once, and relinks for a new address, domain, secret,
 *   nick or room list. Who may grant is config (xmpp_grant_jids): XMPP has
 *   no rank for it.
 * - One thread: every function here runs on tallyd's loop thread; none
 *   blocks. Text going out is escaped by td_xmpp__sb_text (never raw).
 *
 * The files, one purpose each:
 *   xmpp_link.c    the socket: connect, read, backoff, keepalive, start, stop
 *   xmpp_stream.c  the expat stream: a stanza's tree, its bounds, the handshake
 *   xmpp_out.c     writing: the bounded out-queue, escaping, message/error stanzas
 *   xmpp_stanza.c  stanzas -> engine commands, effects -> stanzas; JIDs
 *   xmpp_rooms.c   MUC: joins, occupants, affiliations, the semi-anonymous
 *                  rule, subjects (TOPIC), moderators, names in room lines */
#ifndef TALLYD_XMPP_H
#define TALLYD_XMPP_H

#include "tallyd.h"

#include <expat.h>

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
  TD_XMPP_GRANTERS_MAX = 16,             /* bare JIDs in xmpp_grant_jids */
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

#define TD_XMPP_NS_STREAM "http://etherx.jabber.org/streams"
#define TD_XMPP_NS_ACCEPT "jabber:component:accept"
#define TD_XMPP_NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define TD_XMPP_NS_DELAY "urn:xmpp:delay"
#define TD_XMPP_NS_DELAY_OLD "jabber:x:delay"

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
  /* xmpp_grant_jids: XMPP has no rank for "may create credits" (IRC's oper
   * privilege tally/grant), so the config names who holds it. */
  char granters[TD_XMPP_GRANTERS_MAX][TALLY_IDENTITY_BYTES_MAX + 1];
  uint32_t granter_count;
};


/* A growable string for building one stanza. Bounded by its users: every
 * piece is at most a JID or a text, so a stanza stays a few KiB. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
  int failed;
} sbuf;

/* ---- xmpp_link.c ---------------------------------------------------------------- */
/* Closes the link (logged with why) and schedules the reconnect; a no-op
 * when idle. Safe inside an expat handler. */
void td_xmpp__link_close(td_xmpp *x, const char *why);

/* ---- xmpp_stream.c -------------------------------------------------------------- */
/* A fresh parser for a new connection: 0, or -1 without memory. */
int td_xmpp__stream_open(td_xmpp *x);
/* Gives n bytes read from the server to expat, in TD_XMPP_FEED_BYTES
 * pieces; a stanza completed goes to td_xmpp__on_stanza. An XML error or
 * a bound passed closes the link (check x->state after). */
void td_xmpp__stream_feed(td_xmpp *x, const char *bytes, size_t n);
/* A stanza's attribute, or NULL; its first child named name (in ns, or
 * any ns when ns is NULL), or NULL. */
const char *td_xmpp__attr(const xnode *n, const char *name);
const xnode *td_xmpp__child(const xnode *n, const char *ns, const char *name);

/* ---- xmpp_out.c ----------------------------------------------------------------- */
/* Appends a stanza: to the live link (or, raw_now, to the link in any state
 * past connect: stream header, handshake, stream errors), else to the queue
 * sent after the next handshake. Over TD_XMPP_OUT_BYTES_MAX: dropped, counted. */
void td_xmpp__say(td_xmpp *x, const char *stanza, size_t len, int raw_now);
void td_xmpp__flush(td_xmpp *x);
void td_xmpp__sb_raw(sbuf *b, const char *s, size_t n);
void td_xmpp__sb_str(sbuf *b, const char *s);
/* Escaped text: invalid UTF-8 as U+FFFD, XML's forbidden controls dropped. */
void td_xmpp__sb_text(sbuf *b, const char *s);
/* Says b's stanza (unless building it failed) and frees b->p. */
void td_xmpp__say_sb(td_xmpp *x, sbuf *b);
void td_xmpp__send_message(td_xmpp *x, const char *type, const char *to, const char *text);
void td_xmpp__send_error(td_xmpp *x, const char *kind, const char *to, const char *id, const char *etype,
                         const char *condition, const char *text);

/* ---- xmpp_stanza.c -------------------------------------------------------------- */
int td_xmpp__bare_of(const char *jid, char *out, size_t cap);
const char *td_xmpp__resource_of(const char *jid);
int td_xmpp__domain_served(const td_xmpp *x, const char *bare);
room *td_xmpp__room_by_jid(td_xmpp *x, const char *bare);
/* A private answer, "[channel] " first when it answers a room line. */
void td_xmpp__answer(td_xmpp *x, const char *to, const char *channel, const char *text);
/* One command line to the engine (bounds, idempotency key, busy). */
void td_xmpp__submit(td_xmpp *x, const char *origin, const char *account, const char *nick, const char *channel,
                     const char *stanza_id, const char *text, uint32_t roles);
/* A complete stanza from the server (the stream's children). */
void td_xmpp__on_stanza(td_xmpp *x, const xnode *st);

/* ---- xmpp_rooms.c --------------------------------------------------------------- */
void td_xmpp__on_groupchat(td_xmpp *x, room *r, const char *from, const char *id, const char *body);
void td_xmpp__on_subject(room *r, const xnode *subject);
void td_xmpp__on_room_presence(td_xmpp *x, room *r, const xnode *st, const char *from);
/* Forgets r's occupants (their presence reported gone) and its join. */
void td_xmpp__room_forget(td_xmpp *x, room *r);
void td_xmpp__send_join(td_xmpp *x, const room *r);
/* ANNOUNCE, TOPIC and MODERATORS effects for a room. */
void td_xmpp__room_effect(td_xmpp *x, const tally_effect *e, const char *channel);

#endif
