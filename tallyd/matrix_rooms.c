/* matrix_rooms.c — what the AS knows of each room: members and their
 * display names, power levels, whether it is a DM; and the bot's own DMs.
 *
 * Sources, all on tallyd's loop thread:
 *   - state events in transactions (m.room.member, m.room.power_levels),
 *     applied as they arrive, so a change of levels or names counts from the
 *     next command on;
 *   - at a room's first command (or join): GET
 *     /_matrix/client/v3/rooms/{roomId}/state/m.room.power_levels/ and GET
 *     /rooms/{roomId}/joined_members (CS "Getting events for a room"), in the
 *     room's queue; the room's commands wait for both answers (matrix_txn.c);
 *   - the bot's m.direct account data (CS "Direct Messaging"), read when the
 *     engine is ready and written whenever the bot makes a DM.
 * Roles (docs/MATRIX.md): a member at or above the room's state_default is a
 * host (TALLY_ROLE_HOST), at or above its redact level a moderator (or at
 * events["m.room.redaction"] when that is higher: redact_level). Spec
 * defaults ("m.room.power_levels"): state_default 50, redact 50,
 * users_default 0; a room with no power_levels event (404): only its creator
 * has 100, and tally does not track the creator, so nobody there is a host.
 * A DM: a room the bot's m.direct lists, one it was invited to with
 * is_direct, or one whose joined members are two, the bot included (unless
 * the bot was invited to it without is_direct: then a room). */
#include "matrix.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct td_mx_rs {
  char id[TD_MX_ID_BYTES_MAX + 1];
  int direct;          /* m.direct or is_direct invite */
  int invited_room;    /* the bot was invited without is_direct: a room, even of two */
  int loaded, loading; /* the state fetches answered / asked */
  int answers;         /* of the two fetches */
  int pl_known;
  int seeding; /* joined_members being read: presence reported after */
  int failed;  /* a fetch was refused or unanswered: asked again after TD_MX_STATE_RETRY_MS */
  uint64_t fetched_ms; /* uv_now when the fetches answered */
  json_int_t state_default, redact, users_default, events_default;
  json_t *levels; /* users: {mxid: level} of the power_levels event */
  json_t *events; /* events: {event type: level} of the power_levels event */
  json_t *names;  /* {mxid: display name} of members (joined or not) */
  json_t *joined; /* {mxid: true} */
  /* The room's settings (ROOM SET, told by the engine: TALLY_EFFECT_ROOM). */
  int set_reply;            /* TD_MX_REPLY_* */
  int set_redact;           /* remove command lines (when the bot's level allows) */
  json_int_t set_host_level; /* 0: state_default decides */
  int redact_told;      /* the room was told once that the bot may not redact */
  /* A highlight pinned (TALLY_EFFECT_TOPIC as m.room.pinned_events). */
  char pin_want[TD_MX_ID_BYTES_MAX + 1]; /* our event that should be pinned now, or "" */
  char pin_put[TD_MX_ID_BYTES_MAX + 1];  /* our event in the list we last PUT, or "" */
  char pin_sent[TD_MX_ID_BYTES_MAX + 1]; /* pin_want when the PUT in flight was made */
  int pin_live;                          /* a highlight shows (TOPIC text) and may be pinned */
  int pin_busy;                          /* a GET/PUT of the pinned events is queued */
  int pin_again;                         /* pin_want changed while busy: synced again after */
};

static void dm_add(td_mx *m, const char *peer, const char *room);

static int json_level(json_t *o, const char *key, json_int_t def, json_int_t *out) {
  json_t *v = json_object_get(o, key);
  /* Levels are integers; old rooms may carry them as strings ("50"). */
  if (json_is_integer(v)) *out = json_integer_value(v);
  else if (json_is_string(v)) *out = strtoll(json_string_value(v), NULL, 10);
  else *out = def;
  return 1;
}

td_mx_rs *td_mx_rs_get(td_mx *m, const char *room, int create) {
  for (uint32_t i = 0; i < m->rs_count; i++)
    if (!strcmp(m->rs[i]->id, room)) return m->rs[i];
  if (!create || m->rs_count >= TD_MX_ROOMS_MAX || strlen(room) > TD_MX_ID_BYTES_MAX) return NULL;
  if (!m->rs) m->rs = calloc(TD_MX_ROOMS_MAX, sizeof *m->rs);
  td_mx_rs *r = m->rs ? calloc(1, sizeof *r) : NULL;
  if (!r) return NULL;
  snprintf(r->id, sizeof r->id, "%s", room);
  r->levels = json_object();
  r->events = json_object();
  r->names = json_object();
  r->joined = json_object();
  r->state_default = r->redact = 50;
  if (m->direct) {
    const char *peer;
    json_t *rooms;
    json_object_foreach(m->direct, peer, rooms) {
      size_t i;
      json_t *v;
      json_array_foreach(rooms, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), room)) r->direct = 1;
    }
  }
  m->rs[m->rs_count++] = r;
  return r;
}

static void set_levels(td_mx_rs *r, json_t *c) {
  if (!json_is_object(c)) return;
  r->pl_known = 1;
  json_level(c, "state_default", 50, &r->state_default);
  json_level(c, "redact", 50, &r->redact);
  json_level(c, "users_default", 0, &r->users_default);
  json_level(c, "events_default", 0, &r->events_default);
  json_t *users = json_object_get(c, "users"), *events = json_object_get(c, "events");
  json_object_clear(r->levels);
  if (json_is_object(users)) json_object_update(r->levels, users);
  json_object_clear(r->events);
  if (json_is_object(events)) json_object_update(r->events, events);
}

/* The level to send an event of type (CS "m.room.power_levels": `events`
 * overrides; else state_default for a state event, events_default for
 * the others). */
static json_int_t send_level(const td_mx_rs *r, const char *type, int is_state) {
  json_int_t level = 0;
  json_level(r->events, type, is_state ? r->state_default : r->events_default, &level);
  return level;
}

/* The level that redacts another member's event: `redact`, and the level
 * to send an m.room.redaction at all (`events["m.room.redaction"]`, else
 * events_default), since the homeserver's authorization rules check both
 * (CS "m.room.power_levels", room versions' "Authorization rules"): a room
 * that sets events["m.room.redaction"] above `redact` has no moderators
 * below it. */
static json_int_t redact_level(const td_mx_rs *r) {
  json_int_t send = send_level(r, "m.room.redaction", 0);
  return send > r->redact ? send : r->redact;
}

static void set_member(td_mx *m, td_mx_rs *r, const char *who, const char *membership, const char *name) {
  if (!who || strlen(who) > TD_MX_ID_BYTES_MAX) return;
  int was = json_object_get(r->joined, who) != NULL, now = membership && !strcmp(membership, "join");
  if (now && !was && json_object_size(r->joined) < TD_MX_MEMBERS_MAX) json_object_set_new(r->joined, who, json_true());
  if (!now && was) json_object_del(r->joined, who);
  if (name && name[0] && strlen(name) <= TD_MX_NAME_BYTES_MAX && json_object_size(r->names) < TD_MX_MEMBERS_MAX)
    json_object_set_new(r->names, who, json_string(name));
  /* Attendance: a join or a leave of a person (not the bot) in a room that
   * is not a DM; the engine counts it only while an event runs there. */
  if (was != now && !r->seeding && strcmp(who, m->bot_id) && !td_mx_rs_is_dm(m, r)) {
    const td_config *cfg = &m->d->cfg;
    if (td_presence_report(m->d->presence, TD_MX_PRESENCE_SLOT, cfg->matrix_network, who, r->id, now,
                           td_presence_submit, m->d) != TALLY_OK)
      td_log(TD_WARN, "matrix: presence of %s in %s not counted (table full or too long)", who, r->id);
  }
}

void td_mx_rs_event(td_mx *m, json_t *ev) {
  const char *type = json_string_value(json_object_get(ev, "type"));
  const char *room = json_string_value(json_object_get(ev, "room_id"));
  json_t *sk = json_object_get(ev, "state_key"), *c = json_object_get(ev, "content");
  if (!type || !room || !json_is_string(sk) || !json_is_object(c)) return;
  if (!strcmp(type, "m.room.power_levels") && !json_string_value(sk)[0]) {
    td_mx_rs *r = td_mx_rs_get(m, room, 1);
    if (r) set_levels(r, c);
  } else if (!strcmp(type, "m.room.member")) {
    td_mx_rs *r = td_mx_rs_get(m, room, 1);
    if (!r) return;
    const char *who = json_string_value(sk), *membership = json_string_value(json_object_get(c, "membership"));
    /* An invite of the bot marked is_direct (CS "Direct Messaging"): a DM. */
    if (!strcmp(who, m->bot_id) && membership && !strcmp(membership, "invite") &&
        json_is_true(json_object_get(c, "is_direct"))) {
      r->direct = 1;
      /* CS "Direct Messaging": a client that joins a DM invite adds the room
       * to its m.direct under the inviter; so the bot names this DM in its
       * hints (and sends moderators' lines there) instead of making another. */
      dm_add(m, json_string_value(json_object_get(ev, "sender")), room);
    } else if (!strcmp(who, m->bot_id) && membership && !strcmp(membership, "invite")) {
      /* Invited without is_direct: the inviter says it is no DM (CS
       * "Direct Messaging" marks a DM invite), so the two-member rule below
       * does not apply: a room whose host is alone with the bot at first
       * is still a room. Kept in memory (a restart forgets it). */
      r->invited_room = 1;
    }
    set_member(m, r, who, membership, json_string_value(json_object_get(c, "displayname")));
  }
}

/* As td_mx_rs_is_dm, with the members just read counted as loaded. */
static int is_dm_known(td_mx *m, const td_mx_rs *r) {
  return r->direct ||
         (!r->invited_room && json_object_size(r->joined) == 2 && json_object_get(r->joined, m->bot_id));
}

int td_mx_rs_is_dm(td_mx *m, const td_mx_rs *r) {
  return r && (r->direct || (r->loaded && !r->invited_room && json_object_size(r->joined) == 2 &&
                              json_object_get(r->joined, m->bot_id)));
}

static json_int_t td_mx_rs_level(const td_mx_rs *r, const char *who) {
  json_int_t level = r->users_default;
  json_level(r->levels, who, r->users_default, &level);
  return level;
}

uint32_t td_mx_rs_roles(const td_mx_rs *r, const char *who) {
  if (!r || !r->pl_known) return 0;
  json_int_t level = td_mx_rs_level(r, who);
  uint32_t roles = 0;
  /* ROOM SET host_level=N overrides state_default (0: state_default). */
  if (level >= (r->set_host_level > 0 ? r->set_host_level : r->state_default)) roles |= TALLY_ROLE_HOST;
  if (level >= redact_level(r)) roles |= TALLY_ROLE_MODERATOR;
  return roles;
}

/* ---- settings (ROOM SET) ------------------------------------------------------------ */
/* text: "reply=room|thread|dm redact=on|off host_level=N" (tally.h,
 * TALLY_EFFECT_ROOM); keys not known here are ignored. */
void td_mx_rs_settings(td_mx *m, const char *room, const char *text) {
  td_mx_rs *r = td_mx_rs_get(m, room, 1);
  if (!r) {
    td_log(TD_WARN, "matrix: settings of %s not kept (TD_MX_ROOMS_MAX rooms)", room);
    return;
  }
  for (const char *p = text; *p;) {
    size_t n = strcspn(p, " ");
    if (n == 12 && !strncmp(p, "reply=thread", 12)) r->set_reply = TD_MX_REPLY_THREAD;
    else if (n == 8 && !strncmp(p, "reply=dm", 8)) r->set_reply = TD_MX_REPLY_DM;
    else if (n > 6 && !strncmp(p, "reply=", 6)) r->set_reply = TD_MX_REPLY_ROOM;
    else if (n == 9 && !strncmp(p, "redact=on", 9)) r->set_redact = 1;
    else if (n > 7 && !strncmp(p, "redact=", 7)) r->set_redact = 0;
    else if (n > 11 && !strncmp(p, "host_level=", 11)) r->set_host_level = strtoll(p + 11, NULL, 10);
    p += n;
    p += strspn(p, " ");
  }
  if (!r->set_redact) r->redact_told = 0; /* set on again later: said again if still not allowed */
  td_log(TD_INFO, "matrix: settings of %s: %s", room, text);
}

int td_mx_rs_reply(const td_mx_rs *r) { return r ? r->set_reply : TD_MX_REPLY_ROOM; }

/* redact=on in room r: 1, with the bot's level and the room's redact
 * level (spec default 50 without a power_levels event) and whether the
 * room was told already that the bot may not (then marked told). */
int td_mx_rs_redact(td_mx *m, td_mx_rs *r, long long *bot_level, long long *needed, int *told) {
  if (!r || !r->set_redact) return 0;
  *bot_level = r->pl_known ? (long long)td_mx_rs_level(r, m->bot_id) : 0;
  *needed = (long long)(r->pl_known ? redact_level(r) : r->redact);
  *told = r->redact_told;
  if (*bot_level < *needed) r->redact_told = 1;
  return 1;
}

void td_mx_rs_each_moderator(td_mx *m, const td_mx_rs *r, void (*fn)(td_mx *, const char *, void *), void *ud) {
  if (!r || !r->pl_known) return;
  const char *who;
  json_t *v;
  json_object_foreach(r->joined, who, v) {
    if (strcmp(who, m->bot_id) && (td_mx_rs_roles(r, who) & TALLY_ROLE_MODERATOR)) fn(m, who, ud);
  }
}

/* ---- highlights as pinned events (TALLY_EFFECT_TOPIC) ------------------------------ */
/* CS "m.room.pinned_events" (state_key "", content {"pinned": [eventId]}):
 * the room's pins are read and written whole, so ours is added to (and
 * later taken out of) what the room has, never replacing others' pins.
 * One read-then-write at a time per room (pin_busy), in the room's queue,
 * so it is ordered after the line it pins. */
static void pin_sync(td_mx *m, td_mx_rs *r);

static void on_pins_put(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)ud;
  td_mx_rs *r = td_mx_rs_get(m, queue, 0);
  if (!r) return;
  r->pin_busy = 0;
  if (status >= 200 && status < 300) {
    snprintf(r->pin_put, sizeof r->pin_put, "%s", r->pin_sent);
    td_log(TD_INFO, "matrix: pinned events of %s: %s%s", r->id, r->pin_put[0] ? "pinned " : "ours taken out",
           r->pin_put);
  } else {
    td_log(TD_WARN, "matrix: pinned events of %s not written (HTTP %d): %.200s", r->id, status, body ? body : "");
  }
  if (r->pin_again) pin_sync(m, r);
}

static void on_pins_read(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)ud;
  td_mx_rs *r = td_mx_rs_get(m, queue, 0);
  if (!r) return;
  json_t *j = status == 200 && body ? json_loads(body, 0, NULL) : NULL;
  if (status != 404 && !json_is_object(j)) { /* 404: the room pins nothing yet */
    td_log(TD_WARN, "matrix: pinned events of %s not read (HTTP %d): %.200s", r->id, status, body ? body : "");
    json_decref(j);
    r->pin_busy = 0;
    if (r->pin_again) pin_sync(m, r);
    return;
  }
  json_t *had = json_object_get(j, "pinned"), *pinned = json_array(), *o = json_object();
  size_t i;
  json_t *v;
  json_array_foreach(had, i, v) {
    const char *id = json_string_value(v);
    if (id && strcmp(id, r->pin_put) && strcmp(id, r->pin_want)) json_array_append(pinned, v);
  }
  if (r->pin_want[0]) json_array_append_new(pinned, json_string(r->pin_want));
  json_object_set_new(o, "pinned", pinned);
  char *json = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  json_decref(j);
  if (!json) {
    r->pin_busy = 0;
    td_log(TD_ERR, "matrix: out of memory: pinned events of %s not written", r->id);
    return;
  }
  snprintf(r->pin_sent, sizeof r->pin_sent, "%s", r->pin_want);
  char enc[3 * TD_MX_ID_BYTES_MAX + 1], path[3 * TD_MX_ID_BYTES_MAX + 128];
  td_mx_urlenc(r->id, enc, sizeof enc);
  snprintf(path, sizeof path, "/_matrix/client/v3/rooms/%s/state/m.room.pinned_events/", enc);
  td_mx_request(m, r->id, "PUT", path, json, on_pins_put, NULL);
  free(json);
}

static void pin_sync(td_mx *m, td_mx_rs *r) {
  if (r->pin_busy) {
    r->pin_again = 1;
    return;
  }
  r->pin_again = 0;
  if (!strcmp(r->pin_want, r->pin_put)) return;
  r->pin_busy = 1;
  char enc[3 * TD_MX_ID_BYTES_MAX + 1], path[3 * TD_MX_ID_BYTES_MAX + 128];
  td_mx_urlenc(r->id, enc, sizeof enc);
  snprintf(path, sizeof path, "/_matrix/client/v3/rooms/%s/state/m.room.pinned_events/", enc);
  td_mx_request(m, r->id, "GET", path, NULL, on_pins_read, NULL);
}

int td_mx_rs_pin_begin(td_mx *m, const char *room, char *why, size_t cap) {
  td_mx_rs *r = td_mx_rs_get(m, room, 0);
  if (!r || !r->pl_known) {
    snprintf(why, cap, "the room's power levels are not known");
    return 0;
  }
  json_int_t have = td_mx_rs_level(r, m->bot_id), need = send_level(r, "m.room.pinned_events", 1);
  if (have < need) {
    snprintf(why, cap, "the bot's power level (%lld) is below the room's level for m.room.pinned_events (%lld: "
                       "events[m.room.pinned_events], else state_default)", (long long)have, (long long)need);
    return 0;
  }
  r->pin_live = 1;
  return 1;
}

void td_mx_rs_pin_posted(td_mx *m, const char *room, int status, const char *body, void *ud) {
  (void)ud;
  td_mx_rs *r = td_mx_rs_get(m, room, 0);
  json_t *j = status >= 200 && status < 300 && body ? json_loads(body, 0, NULL) : NULL;
  const char *id = json_string_value(json_object_get(j, "event_id"));
  if (r && r->pin_live && id && strlen(id) <= TD_MX_ID_BYTES_MAX) {
    snprintf(r->pin_want, sizeof r->pin_want, "%s", id);
    pin_sync(m, r);
  } else if (r && r->pin_live) {
    td_log(TD_WARN, "matrix: the highlight in %s is not pinned: its line was not posted (HTTP %d)", room, status);
  }
  json_decref(j);
}

void td_mx_rs_unpin(td_mx *m, const char *room) {
  td_mx_rs *r = td_mx_rs_get(m, room, 0);
  if (!r) return;
  r->pin_live = 0;
  r->pin_want[0] = 0;
  pin_sync(m, r); /* nothing of ours pinned: nothing to take down */
}

/* Someone's name where no display name is known: the MXID's localpart with
 * every run of 4 or more digits hidden (bridged ids carry phone numbers:
 * @whatsapp_15551234567 -> "whatsapp_…"). */
static void masked_localpart(const char *mxid, size_t len, char *out, size_t cap) {
  size_t o = 0, i = mxid[0] == '@' ? 1 : 0;
  for (; i < len && mxid[i] != ':' && o + 4 < cap;) {
    size_t d = 0;
    while (i + d < len && mxid[i + d] >= '0' && mxid[i + d] <= '9') d++;
    if (d >= 4) {
      memcpy(out + o, "\xe2\x80\xa6", 3); /* U+2026 */
      o += 3;
      i += d;
    } else if (d) {
      memcpy(out + o, mxid + i, d < cap - o - 1 ? d : cap - o - 1);
      o += d < cap - o - 1 ? d : cap - o - 1;
      i += d;
    } else {
      out[o++] = mxid[i++];
    }
  }
  out[o] = 0;
}

const char *td_mx_rs_name(td_mx *m, const char *room, const char *mxid, size_t len, char *buf, size_t cap) {
  char id[TD_MX_ID_BYTES_MAX + 1];
  if (len > TD_MX_ID_BYTES_MAX) len = TD_MX_ID_BYTES_MAX;
  memcpy(id, mxid, len);
  id[len] = 0;
  td_mx_rs *r = room ? td_mx_rs_get(m, room, 0) : NULL;
  const char *n = r ? json_string_value(json_object_get(r->names, id)) : NULL;
  for (uint32_t i = 0; !n && i < m->rs_count; i++) n = json_string_value(json_object_get(m->rs[i]->names, id));
  if (n) snprintf(buf, cap, "%s", n);
  else masked_localpart(id, strlen(id), buf, cap);
  return buf;
}

/* ---- the state fetches ------------------------------------------------------------ */
static void fetched(td_mx *m, td_mx_rs *r, int status) {
  /* 404 is an answer (no power_levels event); a 403 (the bot not in the
   * room yet), a 5xx given up or no answer are asked again later. */
  if (status != 200 && status != 404) r->failed = 1;
  if (++r->answers < 2) return;
  r->fetched_ms = uv_now(m->d->loop);
  r->loaded = 1;
  r->loading = 0;
  td_mx_room_loaded(m, r->id);
}

static void on_levels(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)ud;
  td_mx_rs *r = td_mx_rs_get(m, queue, 0);
  if (!r) return;
  if (status == 200) {
    json_t *c = body ? json_loads(body, 0, NULL) : NULL;
    set_levels(r, c);
    json_decref(c);
  } else {
    td_log(TD_INFO, "matrix: power levels of %s: HTTP %d (no hosts there until an m.room.power_levels arrives)",
           r->id, status);
  }
  fetched(m, r, status);
}

static void on_members(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)ud;
  td_mx_rs *r = td_mx_rs_get(m, queue, 0);
  if (!r) return;
  json_t *j = status == 200 && body ? json_loads(body, 0, NULL) : NULL;
  json_t *joined = json_object_get(j, "joined");
  const char *who;
  json_t *v;
  if (json_is_object(joined)) {
    json_object_foreach(joined, who, v) {
      const char *name = json_string_value(json_object_get(v, "display_name"));
      if (name && name[0] && strlen(name) <= TD_MX_NAME_BYTES_MAX) json_object_set_new(r->names, who, json_string(name));
      r->seeding = 1; /* DM or not is decided once all are in */
      set_member(m, r, who, "join", NULL);
      r->seeding = 0;
    }
  } else {
    td_log(TD_INFO, "matrix: joined members of %s: HTTP %d", r->id, status);
  }
  json_decref(j);
  /* The members present now count as attendance unless it is a DM. */
  if (!is_dm_known(m, r)) {
    const td_config *cfg = &m->d->cfg;
    json_object_foreach(r->joined, who, v) {
      if (strcmp(who, m->bot_id))
        td_presence_report(m->d->presence, TD_MX_PRESENCE_SLOT, cfg->matrix_network, who, r->id, 1,
                           td_presence_submit, m->d);
    }
  }
  fetched(m, r, status);
}

int td_mx_rs_ready(td_mx *m, const char *room) {
  td_mx_rs *r = td_mx_rs_get(m, room, 1);
  if (!r) return 1; /* no room for it: commands go without roles rather than wait */
  if (r->loaded && r->failed && uv_now(m->d->loop) - r->fetched_ms >= TD_MX_STATE_RETRY_MS) r->loaded = 0;
  if (r->loaded) return 1;
  if (!r->loading) {
    char enc[3 * TD_MX_ID_BYTES_MAX + 1], path[3 * TD_MX_ID_BYTES_MAX + 128];
    td_mx_urlenc(room, enc, sizeof enc);
    r->loading = 1;
    r->answers = 0;
    r->failed = 0;
    snprintf(path, sizeof path, "/_matrix/client/v3/rooms/%s/state/m.room.power_levels/", enc);
    td_mx_request(m, room, "GET", path, NULL, on_levels, NULL);
    snprintf(path, sizeof path, "/_matrix/client/v3/rooms/%s/joined_members", enc);
    td_mx_request(m, room, "GET", path, NULL, on_members, NULL);
  }
  return 0;
}

void td_mx_rs_joined(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)ud;
  if (status < 200 || status >= 300)
    td_log(TD_WARN, "matrix: joining %s failed (HTTP %d): %.200s", queue, status, body ? body : "");
  td_mx_rs *r = status >= 200 && status < 300 ? td_mx_rs_get(m, queue, 0) : NULL;
  /* Read before the bot was in the room (refused): read again now. */
  if (r && r->loaded && r->failed) r->loaded = 0;
}

/* ---- the bot's DMs ---------------------------------------------------------------- */
const char *td_mx_dm_of(td_mx *m, const char *peer) {
  json_t *rooms = json_object_get(m->direct, peer);
  size_t n = json_array_size(rooms);
  return n ? json_string_value(json_array_get(rooms, n - 1)) : NULL;
}

static void put_direct(td_mx *m) {
  char enc[3 * TD_MX_ID_BYTES_MAX + 1], path[3 * TD_MX_ID_BYTES_MAX + 128];
  td_mx_urlenc(m->bot_id, enc, sizeof enc);
  snprintf(path, sizeof path, "/_matrix/client/v3/user/%s/account_data/m.direct", enc);
  char *json = json_dumps(m->direct, JSON_COMPACT);
  if (json) td_mx_request(m, "account_data", "PUT", path, json, NULL, NULL);
  free(json);
}

/* room becomes peer's latest DM in m.direct (written back when it is new). */
static void dm_add(td_mx *m, const char *peer, const char *room) {
  if (!m->direct || !peer || strlen(peer) > TD_MX_ID_BYTES_MAX || !strcmp(peer, m->bot_id)) return;
  json_t *rooms = json_object_get(m->direct, peer);
  size_t i;
  json_t *v;
  json_array_foreach(rooms, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), room)) return;
  if (!json_is_array(rooms)) {
    if (json_object_size(m->direct) >= TD_MX_DMS_MAX) return;
    rooms = json_array();
    json_object_set_new(m->direct, peer, rooms);
  }
  json_array_append_new(rooms, json_string(room));
  put_direct(m);
}

static void on_created(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)ud;
  const char *peer = queue + 3; /* "dm <mxid>" */
  json_t *j = status == 200 && body ? json_loads(body, 0, NULL) : NULL;
  const char *room = json_string_value(json_object_get(j, "room_id"));
  if (!room || strlen(room) > TD_MX_ID_BYTES_MAX) {
    td_log(TD_WARN, "matrix: createRoom for a DM with %s: HTTP %d %.200s", peer, status, body ? body : "");
    json_decref(j);
    td_mx_dm_made(m, peer, NULL);
    return;
  }
  json_t *rooms = json_object_get(m->direct, peer);
  if (!json_is_array(rooms)) {
    rooms = json_array();
    json_object_set_new(m->direct, peer, rooms);
  }
  json_array_append_new(rooms, json_string(room));
  td_mx_rs *r = td_mx_rs_get(m, room, 1);
  if (r) {
    r->direct = 1;
    r->loaded = 1; /* the bot made it: no power levels to read for a DM */
    json_object_set_new(r->joined, m->bot_id, json_true());
  }
  td_log(TD_INFO, "matrix: made the DM %s with %s", room, peer);
  put_direct(m);
  td_mx_dm_made(m, peer, room);
  json_decref(j);
}

void td_mx_dm_create(td_mx *m, const char *peer) {
  char queue[TD_MX_ID_BYTES_MAX + 4];
  snprintf(queue, sizeof queue, "dm %s", peer);
  /* CS "Creation" (POST /createRoom) and "Direct Messaging": is_direct,
   * the peer invited, trusted_private_chat (the invitee gets the creator's
   * level); no m.room.encryption in initial_state: unencrypted, since an AS
   * cannot read an encrypted room. */
  json_t *o = json_pack("{s:b, s:[s], s:s, s:s, s:[]}", "is_direct", 1, "invite", peer, "preset",
                        "trusted_private_chat", "visibility", "private", "initial_state");
  char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (json) td_mx_request(m, queue, "POST", "/_matrix/client/v3/createRoom", json, on_created, NULL);
  else td_mx_dm_made(m, peer, NULL);
  free(json);
}

static void on_direct(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)queue;
  (void)ud;
  json_t *j = status == 200 && body ? json_loads(body, 0, NULL) : NULL;
  if (json_is_object(j)) {
    json_object_update(m->direct, j);
    const char *peer;
    json_t *rooms;
    json_object_foreach(j, peer, rooms) {
      size_t i;
      json_t *v;
      json_array_foreach(rooms, i, v) {
        td_mx_rs *r = json_is_string(v) ? td_mx_rs_get(m, json_string_value(v), 0) : NULL;
        if (r) r->direct = 1;
      }
    }
  } else if (status != 404) {
    td_log(TD_INFO, "matrix: the bot's m.direct: HTTP %d (DMs are made again when needed)", status);
  }
  json_decref(j);
  td_mx_dm_direct_read(m); /* lines that waited for it (the outbox's, for DMs not made yet) */
}

void td_mx_rooms_start(td_mx *m) {
  if (!m->direct) m->direct = json_object();
  char enc[3 * TD_MX_ID_BYTES_MAX + 1], path[3 * TD_MX_ID_BYTES_MAX + 128];
  td_mx_urlenc(m->bot_id, enc, sizeof enc);
  snprintf(path, sizeof path, "/_matrix/client/v3/user/%s/account_data/m.direct", enc);
  td_mx_request(m, "account_data", "GET", path, NULL, on_direct, NULL);
}

void td_mx_rooms_free(td_mx *m) {
  for (uint32_t i = 0; i < m->rs_count; i++) {
    json_decref(m->rs[i]->levels);
    json_decref(m->rs[i]->events);
    json_decref(m->rs[i]->names);
    json_decref(m->rs[i]->joined);
    free(m->rs[i]);
  }
  free(m->rs);
  m->rs = NULL;
  m->rs_count = 0;
  json_decref(m->direct);
  m->direct = NULL;
}

