/* xmpp_stanza.c — stanzas to engine commands and effects back to stanzas.
 * A direct message is a command from the sender's bare JID (msg_id the
 * stanza id); room lines go to xmpp_rooms.c; iq pings are answered, other
 * iqs refused. REPLY effects become private chat messages with the
 * component's hint phrases; room effects go to xmpp_rooms.c. Also the
 * dispatch of what the stream hands over (the handshake, stream errors). */
#include "xmpp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- JIDs ------------------------------------------------------------------------ */
/* Copies jid's bare part (before '/') into out; 0 if it does not fit. */
int td_xmpp__bare_of(const char *jid, char *out, size_t cap) {
  size_t n = strcspn(jid, "/");
  if (n == 0 || n >= cap) return 0;
  memcpy(out, jid, n);
  out[n] = 0;
  return 1;
}

const char *td_xmpp__resource_of(const char *jid) {
  const char *s = strchr(jid, '/');
  return s ? s + 1 : "";
}

int td_xmpp__domain_served(const td_xmpp *x, const char *bare) {
  const char *at = strchr(bare, '@');
  if (!at) return 0; /* a server or component, not a user */
  for (uint32_t i = 0; i < x->domain_count; i++)
    if (!strcasecmp(at + 1, x->domains[i])) return 1;
  return 0;
}

room *td_xmpp__room_by_jid(td_xmpp *x, const char *bare) {
  for (uint32_t i = 0; i < x->room_count; i++)
    if (!strcasecmp(x->rooms[i].jid, bare)) return &x->rooms[i];
  return NULL;
}

/* ---- commands to the engine ---------------------------------------------------------- */
void td_xmpp__answer(td_xmpp *x, const char *to, const char *channel, const char *text) {
  char line[2 * TD_XMPP_LINE_BYTES];
  if (channel && channel[0]) snprintf(line, sizeof line, "[%s] %s", channel, text);
  else snprintf(line, sizeof line, "%s", text);
  td_xmpp__send_message(x, "chat", to, line);
}

/* Submits one command line. origin: whom to answer (a full JID);
 * account: the bare JID; channel: the room's bare JID or "". */
void td_xmpp__submit(td_xmpp *x, const char *origin, const char *account, const char *nick, const char *channel,
                   const char *stanza_id, const char *text, uint32_t roles) {
  td_daemon *d = x->d;
  td_slot *s = x->slot;
  assert(s && s->xmpp == x && origin && account && channel && text);
  if (strlen(text) > TALLY_TEXT_BYTES_MAX) {
    char why[128];
    snprintf(why, sizeof why, "tally: a command is at most %d bytes; nothing was done", TALLY_TEXT_BYTES_MAX);
    td_xmpp__answer(x, origin, channel, why);
    return;
  }
  if (strpbrk(text, "\r\n")) {
    td_xmpp__answer(x, origin, channel, "tally: one command per message, on one line; nothing was done");
    return;
  }
  char msg_id[TALLY_MSG_ID_BYTES_MAX + 1];
  if (stanza_id && strlen(stanza_id) > TALLY_MSG_ID_BYTES_MAX) {
    td_xmpp__answer(x, origin, channel, "tally: the message's id is longer than 255 bytes; nothing was done");
    return;
  }
  /* No id: the command cannot be recognised when resent, so it gets a
   * fresh one (a client that wants exactly-once sends ids; all do). */
  if (stanza_id && stanza_id[0]) snprintf(msg_id, sizeof msg_id, "%s", stanza_id);
  else snprintf(msg_id, sizeof msg_id, "noid-%x-%llu", (unsigned)s->id, (unsigned long long)x->next_req + 1);
  char prefixed[TALLY_ORIGIN_BYTES_MAX + 1];
  int n = snprintf(prefixed, sizeof prefixed, "%x~%s", (unsigned)s->id, origin);
  if (n < 0 || (size_t)n >= sizeof prefixed) {
    td_xmpp__answer(x, origin, channel, "tally: your address is too long for this shop; nothing was done");
    return;
  }
  if (d->stopping) {
    td_xmpp__answer(x, origin, channel, "busy: tally is restarting, try again in a moment");
    return;
  }
  for (uint32_t i = 0; i < x->granter_count; i++)
    if (!strcasecmp(x->granters[i], account)) roles |= TALLY_ROLE_GRANT; /* ADMIN still from `admins` */
  uint64_t req = ++x->next_req;
  if (td_slot_full(d, s) || td_pending_add(d, s, req, origin, channel) != TALLY_OK) {
    td_xmpp__answer(x, origin, channel, "busy, try again in a moment");
    return;
  }
  tally_command cmd = {.size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .req_id = req, .origin = prefixed,
                       .account = account, .nick = nick, .channel = channel, .msg_id = msg_id, .text = text,
                       .roles = roles, .network = d->cfg.xmpp_network};
  int rc = tally_engine_submit_command(d->engine, &cmd);
  if (rc == TALLY_OK) return;
  td_pending_done(s, req);
  td_xmpp__answer(x, origin, channel, rc == TALLY_EBUSY ? "busy, try again in a moment" : tally_strerror(rc));
}

/* A line said to the shop directly: every line is a command; a leading
 * '!' or '/' (habits from rooms) is dropped. */
static void on_direct(td_xmpp *x, const char *from, const char *id, const char *body) {
  char bare[TALLY_IDENTITY_BYTES_MAX + 1];
  if (!td_xmpp__bare_of(from, bare, sizeof bare)) {
    td_xmpp__send_error(x, "message", from, id, "modify", "jid-malformed", "sender address too long");
    return;
  }
  if (!td_xmpp__domain_served(x, bare)) {
    td_log(TD_INFO, "xmpp: a command from %s refused: not a served domain", bare);
    td_xmpp__send_error(x, "message", from, id, "auth", "forbidden",
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
  td_xmpp__submit(x, from, bare, nick, "", id, body, 0);
}

/* ---- stanzas ------------------------------------------------------------------------- */
static int delayed(const xnode *st) {
  return td_xmpp__child(st, TD_XMPP_NS_DELAY, "delay") || td_xmpp__child(st, TD_XMPP_NS_DELAY_OLD, "x");
}

static void on_message(td_xmpp *x, const xnode *st) {
  const char *from = td_xmpp__attr(st, "from"), *id = td_xmpp__attr(st, "id"), *type = td_xmpp__attr(st, "type");
  if (!type) type = "normal";
  char bare[TD_XMPP_JID_BYTES_MAX + 1];
  room *r = from && td_xmpp__bare_of(from, bare, sizeof bare) ? td_xmpp__room_by_jid(x, bare) : NULL;
  if (r && !strcmp(type, "error")) { /* most likely our subject change or a line to the room, refused */
    const xnode *e = td_xmpp__child(st, NULL, "error");
    td_log(TD_WARN, "xmpp: room %s refused what tally said: %s", r->jid, e && e->child ? e->child->name : "?");
    return;
  }
  if (!from || !strcmp(type, "error") || !strcmp(type, "headline")) return;
  const xnode *subject = td_xmpp__child(st, TD_XMPP_NS_ACCEPT, "subject");
  const xnode *body = td_xmpp__child(st, TD_XMPP_NS_ACCEPT, "body");
  if (r && subject && !strcmp(type, "groupchat")) td_xmpp__on_subject(r, subject);
  if (!body || !body->text) return; /* chat states, receipts, subjects */
  if (delayed(st)) {
    td_log(TD_DEBUG, "xmpp: delayed message from %s ignored (XEP-0203)", from);
    return;
  }
  if (!r && !td_xmpp__bare_of(from, bare, sizeof bare)) return;
  if (r && !strcmp(type, "groupchat")) td_xmpp__on_groupchat(x, r, from, id, body->text);
  else if (r && td_xmpp__resource_of(from)[0]) /* a private message in the room; never to the room itself */
    td_xmpp__send_message(x, "chat", from, "tally takes commands as !word in the room, or directly at its own address");
  else if (strcmp(type, "groupchat")) on_direct(x, from, id, body->text);
}

static void on_iq(td_xmpp *x, const xnode *st) {
  const char *type = td_xmpp__attr(st, "type"), *from = td_xmpp__attr(st, "from"), *id = td_xmpp__attr(st, "id");
  if (!type || (strcmp(type, "get") && strcmp(type, "set"))) return; /* results and errors: nothing asked */
  const xnode *q = st->child;
  if (q && !strcmp(q->ns, "urn:xmpp:ping") && !strcmp(q->name, "ping")) {
    sbuf b = {0};
    td_xmpp__sb_str(&b, "<iq type='result' from='");
    td_xmpp__sb_text(&b, x->d->cfg.xmpp_component_domain);
    td_xmpp__sb_str(&b, "' to='");
    td_xmpp__sb_text(&b, from ? from : "");
    td_xmpp__sb_str(&b, "' id='");
    td_xmpp__sb_text(&b, id ? id : "");
    td_xmpp__sb_str(&b, "'/>");
    if (from) td_xmpp__say_sb(x, &b);
    else free(b.p);
    return;
  }
  td_xmpp__send_error(x, "iq", from, id, "cancel", "service-unavailable", "tally answers chat messages only");
}

void td_xmpp__on_stanza(td_xmpp *x, const xnode *st) {
  if (!strcmp(st->ns, TD_XMPP_NS_STREAM) && !strcmp(st->name, "error")) {
    char why[256];
    const xnode *c = st->child;
    const xnode *t = td_xmpp__child(st, "urn:ietf:params:xml:ns:xmpp-streams", "text");
    snprintf(why, sizeof why, "stream error from the server: %s%s%s", c ? c->name : "?", t && t->text ? ": " : "",
             t && t->text ? t->text : "");
    td_xmpp__link_close(x, why);
    return;
  }
  if (strcmp(st->ns, TD_XMPP_NS_ACCEPT)) return; /* stream features and the like: nothing for a component */
  if (!strcmp(st->name, "handshake")) {
    if (x->state != LINK_HANDSHAKE) return;
    x->state = LINK_LIVE;
    x->backoff_ms = TD_XMPP_BACKOFF_FIRST_MS;
    x->links++;
    td_log(TD_INFO, "xmpp: component %s is live (link %llu): adapter \"xmpp-component\", caps %u (cannot "
                    "intercept room lines; sets subjects, tells moderators privately); joining %u rooms",
           x->d->cfg.xmpp_component_domain, (unsigned long long)x->links, (unsigned)TD_XMPP_CAPS, x->room_count);
    for (uint32_t i = 0; i < x->room_count; i++) td_xmpp__send_join(x, &x->rooms[i]);
    if (x->queue_len) { /* said while the link was down, in order, after the joins */
      td_log(TD_INFO, "xmpp: sending %zu bytes said while the link was down", x->queue_len);
      td_xmpp__say(x, x->queue, x->queue_len, 1);
      x->queue_len = 0;
    }
    return;
  }
  if (x->state != LINK_LIVE) return;
  const char *from = td_xmpp__attr(st, "from");
  if (!strcmp(st->name, "message")) on_message(x, st);
  else if (!strcmp(st->name, "presence") && from) {
    char bare[TD_XMPP_JID_BYTES_MAX + 1];
    room *r = td_xmpp__bare_of(from, bare, sizeof bare) ? td_xmpp__room_by_jid(x, bare) : NULL;
    if (r) td_xmpp__on_room_presence(x, r, st, from);
  } else if (!strcmp(st->name, "iq")) on_iq(x, st);
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
    else if (hint == TALLY_HINT_GRANT_PRIVILEGE) snprintf(line, sizeof line, "%s (listed in xmpp_grant_jids)", text);
    else if (hint == TALLY_HINT_ALREADY_SAID)
      snprintf(line, sizeof line, "%s (a line already in the room cannot be taken back)", text);
    else snprintf(line, sizeof line, "%s", text);
    if (origin && origin[0]) td_xmpp__answer(x, origin, channel, line);
    return;
  case TALLY_EFFECT_ANNOUNCE:
  case TALLY_EFFECT_TOPIC:
  case TALLY_EFFECT_MODERATORS:
    td_xmpp__room_effect(x, e, channel);
    return;
  default: /* STATUS, ROSTER: nothing to send */
    td_log(TD_DEBUG, "xmpp: effect kind %u for %s not sent (nothing to say)", e->kind, channel);
  }
}

int td_xmpp_flushed(const td_xmpp *x) { return !x || x->state != LINK_LIVE || (!x->out_len && !x->inflight); }
