/* xmpp_rooms.c — the component in MUC rooms (XEP-0045): joins with no
 * history, the occupant list with real JIDs (attendance, roles by
 * affiliation and role), the semi-anonymous rule (no real JID, no command;
 * ask once to be made a room admin, join again once a moderator), room
 * commands, and the room effects: announcements, the subject (TOPIC, the
 * old one put back), lines to moderators only, accounts named by nick. */
#include "xmpp.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static occupant *occupant_by_nick(room *r, const char *nick) {
  for (occupant *o = r->occupants; o; o = o->next)
    if (!strcmp(o->nick, nick)) return o;
  return NULL;
}

void td_xmpp__on_groupchat(td_xmpp *x, room *r, const char *from, const char *id, const char *body) {
  const char *nick = td_xmpp__resource_of(from);
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
    td_xmpp__send_message(x, "chat", from, why); /* a MUC private message to the nick */
    return;
  }
  char bare[TALLY_IDENTITY_BYTES_MAX + 1];
  if (!td_xmpp__bare_of(o->jid, bare, sizeof bare) || !td_xmpp__domain_served(x, bare)) {
    td_xmpp__answer(x, o->jid, r->jid, "tally: this shop serves accounts of its own server only; nothing was done");
    return;
  }
  const char *hidden = td_room_line_refusal(r->jid, body + 1); /* TD_XMPP_CAPS: no interception */
  if (hidden) {
    td_xmpp__answer(x, o->jid, r->jid, hidden);
    return;
  }
  td_xmpp__submit(x, o->jid, bare, nick, r->jid, id, body + 1, o->roles);
}

/* A room's subject as the room says it (at the join, and after every
 * change, ours too): what a TOPIC "" puts back is the one from before
 * tally's first change. */
void td_xmpp__on_subject(room *r, const xnode *subject) {
  char *copy = strdup(subject->text ? subject->text : "");
  if (!copy) return;
  free(r->subject);
  r->subject = copy;
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
  if (o->jid && td_xmpp__bare_of(o->jid, bare, sizeof bare))
    td_presence_report(x->d->presence, x->slot->id, x->d->cfg.xmpp_network, bare, r->jid, 0, td_presence_submit, x->d);
  *link = o->next;
  free(o->nick);
  free(o->jid);
  free(o);
  r->occupant_count--;
}

void td_xmpp__room_forget(td_xmpp *x, room *r) {
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
  td_xmpp__send_message(x, "groupchat", r->jid, text);
  td_log(TD_WARN, "xmpp: room %s hides real JIDs and tally is not a moderator there: commands in it are refused",
         r->jid);
}

/* Joins r with no history: the room must not replay old lines as commands. */
void td_xmpp__send_join(td_xmpp *x, const room *r) {
  sbuf b = {0};
  td_xmpp__sb_str(&b, "<presence from='");
  td_xmpp__sb_text(&b, x->d->cfg.xmpp_component_domain);
  td_xmpp__sb_str(&b, "' to='");
  td_xmpp__sb_text(&b, r->jid);
  td_xmpp__sb_str(&b, "/");
  td_xmpp__sb_text(&b, x->d->cfg.xmpp_nick);
  td_xmpp__sb_str(&b, "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>");
  td_xmpp__say_sb(x, &b);
}

static void on_self_presence(td_xmpp *x, room *r, const char *type, const xnode *item, int nonanon) {
  if (type && !strcmp(type, "unavailable")) {
    int again = r->rejoining;
    td_xmpp__room_forget(x, r);
    r->rejoining = 0;
    if (!again)
      td_log(TD_WARN, "xmpp: left room %s (kicked, banned or the room closed); rejoining at the next link", r->jid);
    return;
  }
  const char *role = td_xmpp__attr(item, "role");
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
    td_xmpp__sb_str(&b, "<presence type='unavailable' from='");
    td_xmpp__sb_text(&b, x->d->cfg.xmpp_component_domain);
    td_xmpp__sb_str(&b, "' to='");
    td_xmpp__sb_text(&b, r->jid);
    td_xmpp__sb_str(&b, "/");
    td_xmpp__sb_text(&b, x->d->cfg.xmpp_nick);
    td_xmpp__sb_str(&b, "'/>");
    td_xmpp__say_sb(x, &b);
    td_xmpp__send_join(x, r);
  }
}

void td_xmpp__on_room_presence(td_xmpp *x, room *r, const xnode *st, const char *from) {
  const char *type = td_xmpp__attr(st, "type"), *nick = td_xmpp__resource_of(from);
  if (type && !strcmp(type, "error")) {
    const xnode *e = td_xmpp__child(st, NULL, "error");
    td_log(TD_WARN, "xmpp: room %s refused the join: %s", r->jid, e && e->child ? e->child->name : "(no reason)");
    return;
  }
  const xnode *xu = td_xmpp__child(st, TD_XMPP_NS_MUC_USER, "x");
  const xnode *item = td_xmpp__child(xu, TD_XMPP_NS_MUC_USER, "item");
  int self = 0, nonanon = 0;
  for (const xnode *c = xu ? xu->child : NULL; c; c = c->next)
    if (!strcmp(c->name, "status")) {
      const char *code = td_xmpp__attr(c, "code");
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
  const char *jid = td_xmpp__attr(item, "jid");
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
  o->roles = roles_of(td_xmpp__attr(item, "affiliation"), td_xmpp__attr(item, "role"));
  if (jid && (!o->jid || strcmp(o->jid, jid))) {
    free(o->jid);
    o->jid = strdup(jid);
    char bare[TALLY_IDENTITY_BYTES_MAX + 1];
    if (o->jid && td_xmpp__bare_of(o->jid, bare, sizeof bare) && td_xmpp__domain_served(x, bare) &&
        td_presence_report(x->d->presence, x->slot->id, x->d->cfg.xmpp_network, bare, r->jid, 1,
                           td_presence_submit, x->d) != TALLY_OK)
      td_log(TD_WARN, "xmpp: presence table full: %s in %s not counted", bare, r->jid);
  }
}

/* ---- effects ---------------------------------------------------------------------------- */
/* Says text privately to each moderator of r whose real JID tally sees,
 * once per person, "[room, moderators] " first (mod_tally's form: it is not
 * an answer to a line they said). Returns how many were told. */
static uint32_t tell_moderators(td_xmpp *x, const room *r, const char *text) {
  char line[2 * TD_XMPP_LINE_BYTES], bare[TALLY_IDENTITY_BYTES_MAX + 1], other[TALLY_IDENTITY_BYTES_MAX + 1];
  snprintf(line, sizeof line, "[%s, moderators] %s", r->jid, text);
  uint32_t told = 0;
  for (const occupant *o = r->occupants; o; o = o->next) {
    if (!(o->roles & TALLY_ROLE_MODERATOR) || !o->jid || !td_xmpp__bare_of(o->jid, bare, sizeof bare)) continue;
    int dup = 0;
    for (const occupant *p = r->occupants; p != o && !dup; p = p->next)
      dup = (p->roles & TALLY_ROLE_MODERATOR) && p->jid && td_xmpp__bare_of(p->jid, other, sizeof other) &&
            !strcmp(bare, other);
    if (dup) continue;
    td_xmpp__send_message(x, "chat", bare, line);
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
  td_xmpp__sb_str(&b, "<message type='groupchat' from='");
  td_xmpp__sb_text(&b, x->d->cfg.xmpp_component_domain);
  td_xmpp__sb_str(&b, "' to='");
  td_xmpp__sb_text(&b, r->jid);
  td_xmpp__sb_str(&b, "' id='");
  td_xmpp__sb_str(&b, id);
  td_xmpp__sb_str(&b, "'><subject>");
  td_xmpp__sb_text(&b, subject);
  td_xmpp__sb_str(&b, "</subject></message>");
  td_xmpp__say_sb(x, &b);
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
    td_xmpp__sb_raw(b, bare, len);
    return;
  }
  memcpy(want, bare, len);
  want[len] = 0;
  for (const occupant *o = r->occupants; o; o = o->next)
    if (o->jid && td_xmpp__bare_of(o->jid, other, sizeof other) && !strcasecmp(want, other)) {
      td_xmpp__sb_str(b, o->nick);
      return;
    }
  const char *at = memchr(bare, '@', len);
  td_xmpp__sb_raw(b, bare, at && at > bare ? (size_t)(at - bare) : len);
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
    td_xmpp__sb_raw(b, text + pos, args[i].start - pos);
    name_in_room(r, text + args[i].start, args[i].len, b);
    pos = (size_t)args[i].start + args[i].len;
  }
  td_xmpp__sb_str(b, text + pos);
}

static room *room_of(td_xmpp *x, const char *channel) {
  char bare[TD_XMPP_JID_BYTES_MAX + 1];
  return td_xmpp__bare_of(channel, bare, sizeof bare) ? td_xmpp__room_by_jid(x, bare) : NULL;
}

/* A room effect: rendered for the room, then sent its way. */
void td_xmpp__room_effect(td_xmpp *x, const tally_effect *e, const char *channel) {
  room *r = room_of(x, channel);
  if (!r) {
    td_log(TD_INFO, "xmpp: effect kind %u for %s, a room not in xmpp_rooms: dropped", e->kind, channel);
    return;
  }
  sbuf b = {0};
  render_for_room(r, e, &b);
  const char *text = b.failed || !b.p ? (e->text ? e->text : "") : b.p;
  if (e->kind == TALLY_EFFECT_ANNOUNCE) td_xmpp__send_message(x, "groupchat", r->jid, text);
  else if (e->kind == TALLY_EFFECT_TOPIC) set_topic(x, r, text);
  else if (!tell_moderators(x, r, text)) /* never to the whole room instead (tally.h) */
    td_log(TD_INFO, "xmpp: a line for the moderators of %s dropped: no moderator whose JID tally sees", channel);
  free(b.p);
}
