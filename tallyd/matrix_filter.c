/* matrix_filter.c — which events of a transaction are commands to tally,
 * and which ask for an action after the 200.
 *
 * A command (td_mx_command_of) is an m.room.message, msgtype m.text, whose
 * body is "!<word> ..." naming one of the engine's words (in the bot's DM
 * any "!word": the engine answers an unknown one), or an m.room.tombstone
 * made into ROOM MOVE. Everything else needs no record and is ignored:
 * other event types and state events, m.notice (bots answering bots),
 * edits (m.relates_to rel_type m.replace: an edit of "!buy" must not buy
 * again), the bot's own echoes, and events older than
 * matrix_event_age_max (a backlog after an outage is not a rush of
 * purchases; age from unsigned.age, else origin_server_ts).
 *
 * A side action (td_mx_side_of) is an event that is no command but asks for
 * something once the transaction is acknowledged (matrix_txn.c does it):
 * an invite of the bot, a room upgrade to follow, an encrypted room to
 * tell. Both only read the event: nothing here sends or records. */
#include "matrix.h"

#include <ctype.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

typedef struct word_probe {
  const char *word;
  size_t len;
  int found;
} word_probe;

static void probe_word(void *ud, const tally_command_doc *doc) {
  word_probe *p = ud;
  if (strlen(doc->word) == p->len && !strncasecmp(doc->word, p->word, p->len)) p->found = 1;
}

static const char *str_of(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static int id_ok(const char *s) { return s && s[0] && strlen(s) <= TD_MX_ID_BYTES_MAX && !strchr(s, ' '); }

/* Is who one of list's ids (comma or space separated)? */
int td_mx_listed(const char *list, const char *who) {
  size_t wl = strlen(who);
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ", ");
    if (n == wl && !strncmp(p, who, n)) return 1;
    p += n;
    p += strspn(p, ", ");
  }
  return 0;
}

/* 1 when ev is a command for tally (filled into c), 0 when it needs no record. */
int td_mx_command_of(td_mx *m, json_t *ev, td_mx_cmd *c) {
  const td_config *cfg = &m->d->cfg;
  const char *type = str_of(ev, "type"), *sender = str_of(ev, "sender"), *room = str_of(ev, "room_id"),
             *id = str_of(ev, "event_id");
  json_t *content = json_object_get(ev, "content");
  if (type && !strcmp(type, "m.room.tombstone") && json_is_object(content)) {
    /* A room upgrade (CS "Room Upgrades", m.room.tombstone, state_key ""):
     * the engine moves the room's settings and running event to the
     * replacement (ROOM MOVE, said by the tombstone's sender, whose power
     * level allowed it). A command like any other: recorded, applied once. */
    const char *to = str_of(content, "replacement_room"), *key = str_of(ev, "state_key");
    if (!key || key[0] || !id_ok(to) || !id_ok(sender) || !id_ok(room) || !id_ok(id) || !strcmp(to, room)) return 0;
    memset(c, 0, sizeof *c);
    snprintf(c->event_id, sizeof c->event_id, "%s", id);
    snprintf(c->room, sizeof c->room, "%s", room);
    snprintf(c->sender, sizeof c->sender, "%s", sender);
    snprintf(c->text, sizeof c->text, "ROOM MOVE %s", to);
    c->tombstone = 1;
    return 1;
  }
  if (!type || strcmp(type, "m.room.message") || json_object_get(ev, "state_key") || !json_is_object(content))
    return 0;
  if (!id_ok(sender) || !id_ok(room) || !id_ok(id)) return 0;
  if (!strcmp(sender, m->bot_id)) return 0; /* our own echo */
  const char *msgtype = str_of(content, "msgtype"), *body = str_of(content, "body");
  if (!msgtype || strcmp(msgtype, "m.text") || !body) return 0; /* m.notice and the rest */
  json_t *rel = json_object_get(content, "m.relates_to");
  const char *rel_type = json_is_object(rel) ? str_of(rel, "rel_type") : NULL;
  if (rel_type && !strcmp(rel_type, "m.replace")) return 0; /* an edit */
  json_t *unsig = json_object_get(ev, "unsigned"), *age = json_is_object(unsig) ? json_object_get(unsig, "age") : NULL;
  json_t *ts = json_object_get(ev, "origin_server_ts");
  uint64_t max_ms = (uint64_t)cfg->matrix_event_age_max_s * 1000;
  if (json_is_integer(age) && json_integer_value(age) > 0 && (uint64_t)json_integer_value(age) > max_ms) return 0;
  if (!json_is_integer(age) && json_is_integer(ts) && json_integer_value(ts) > 0 &&
      (uint64_t)json_integer_value(ts) + max_ms < td_mx_wall_ms())
    return 0;
  if (body[0] != '!') return 0;
  size_t wl = strcspn(body + 1, " ");
  word_probe p = {body + 1, wl, 0};
  if (wl) tally_commands_describe(probe_word, &p);
  /* In a room an unknown !word is someone else's (another bot's) command;
   * in the bot's DM it can only be meant for tally: the engine answers it
   * (unknown command) rather than leave the sender without an answer. */
  if (!p.found && (!wl || !td_mx_rs_is_dm(m, td_mx_rs_get(m, room, 0)))) return 0;
  memset(c, 0, sizeof *c);
  /* Said in a thread (CS "Threading": rel_type m.thread, event_id the
   * root): a threaded answer joins that thread (threads do not nest). */
  const char *root = rel_type && !strcmp(rel_type, "m.thread") ? str_of(rel, "event_id") : NULL;
  if (id_ok(root)) snprintf(c->thread, sizeof c->thread, "%s", root);
  snprintf(c->event_id, sizeof c->event_id, "%s", id);
  snprintf(c->room, sizeof c->room, "%s", room);
  snprintf(c->sender, sizeof c->sender, "%s", sender);
  size_t len = strlen(body + 1);
  c->too_long = len > TALLY_TEXT_BYTES_MAX;
  if (!c->too_long) {
    memcpy(c->text, body + 1, len + 1);
    for (size_t i = 0; i < wl; i++) c->text[i] = (char)toupper((unsigned char)c->text[i]);
  }
  return 1;
}

/* Is server (the part after ':' of an id) one whose invites are taken? */
static int invite_server_ok(const td_config *cfg, const char *id) {
  const char *server = strchr(id, ':');
  if (!server) return 0;
  server++;
  const char *list = cfg->matrix_invite_servers[0] ? cfg->matrix_invite_servers : cfg->matrix_server_name;
  return td_mx_listed(list, server);
}

/* Events that are not commands but ask for an action after the 200: an
 * invite of the bot (AS API: the homeserver pushes it to the AS; joined
 * when the room and the inviter are on an allowed server), and encryption
 * (m.room.encryption state, m.room.encrypted events: an AS cannot read
 * them, MSC3202 not being merged, so the room is told once). */
void td_mx_side_of(td_mx *m, json_t *ev, json_t *sides) {
  const char *type = str_of(ev, "type"), *room = str_of(ev, "room_id"), *sender = str_of(ev, "sender");
  if (!type || !id_ok(room)) return;
  json_t *content = json_object_get(ev, "content");
  if (!strcmp(type, "m.room.member")) {
    const char *key = str_of(ev, "state_key"), *ms = json_is_object(content) ? str_of(content, "membership") : NULL;
    if (!key || strcmp(key, m->bot_id) || !ms || strcmp(ms, "invite")) return;
    if (!id_ok(sender) || !invite_server_ok(&m->d->cfg, room) || !invite_server_ok(&m->d->cfg, sender)) {
      td_log(TD_INFO, "matrix: invite to %s by %s not accepted (matrix_invite_servers)", room, sender ? sender : "?");
      return;
    }
    json_array_append_new(sides, json_pack("[ss]", "join", room));
  } else if (!strcmp(type, "m.room.tombstone") && json_is_object(content)) {
    /* CS "Room Upgrades": the bot follows to the replacement room when it
     * is on an allowed server, as an invite would be (the room's settings
     * and running event follow through ROOM MOVE: td_mx_command_of). */
    const char *to = str_of(content, "replacement_room"), *key = str_of(ev, "state_key");
    if (!key || key[0] || !id_ok(to)) return;
    if (!invite_server_ok(&m->d->cfg, to)) {
      td_log(TD_INFO, "matrix: %s was replaced by %s, not on an allowed server (matrix_invite_servers): not joined",
             room, to);
      return;
    }
    json_array_append_new(sides, json_pack("[ss]", "join", to));
  } else if (!strcmp(type, "m.room.encrypted") || (!strcmp(type, "m.room.encryption") && json_object_get(ev, "state_key"))) {
    json_array_append_new(sides, json_pack("[ss]", "encrypted", room));
  }
}
