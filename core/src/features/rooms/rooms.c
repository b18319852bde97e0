/* rooms.c — rooms' settings and moves (contract in rooms.h). The table is
 * this feature's own (e->feature_data); a change is a FACT op (sql/016)
 * and takes effect in memory when its batch commits, when the adapter is
 * told (TALLY_EFFECT_ROOM). */
#include "rooms.h"
#include "hooks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "text.h"

_Static_assert(TALLY__ROOM_SETS_MAX == 512, "the LIMIT of the restore query");

/* FACT sub-kinds (op->qty); op->entry_slot is the room's slot. */
enum { RF_SET = 1, RF_MOVE = 2 };

static const char *const reply_words[] = {"room", "thread", "dm"};

tally__rooms *tally__rooms_of(tally__engine *e) { return e->feature_data[TALLY__FDATA_ROOMS]; }

tally__room_set *tally__room_find(tally__engine *e, uint16_t net, const char *room) {
  tally__rooms *z = tally__rooms_of(e);
  for (uint32_t i = 0; z && room && i < TALLY__ROOM_SETS_MAX; i++)
    if (z->r[i].used && z->r[i].net == net && strcmp(z->r[i].room, room) == 0) return &z->r[i];
  return NULL;
}

static void describe(uint8_t reply, uint8_t redact, uint32_t host_level, char *out, size_t cap) {
  snprintf(out, cap, "reply=%s redact=%s host_level=%u", reply_words[reply % 3], redact ? "on" : "off",
           (unsigned)host_level);
}

void tally__room_describe(tally__engine *e, uint16_t net, const char *room, char *out, size_t cap) {
  const tally__room_set *s = tally__room_find(e, net, room);
  if (s && s->committed) describe(s->reply, s->redact, s->host_level, out, cap);
  else describe(TALLY__ROOM_REPLY_DEFAULT, TALLY__ROOM_REDACT_DEFAULT, TALLY__ROOM_HOST_LEVEL_DEFAULT, out, cap);
}

/* The adapter of the room's network learns its settings. */
static void tell(tally__engine *e, const tally__room_set *s) {
  char text[96];
  describe(s->reply, s->redact, s->host_level, text, sizeof text);
  tally__emit_in(e, s->net, TALLY_EFFECT_ROOM, TALLY_OK, 0, 0, "", s->room, text);
}

/* A JSON string of s (UTF-8 checked by the dispatcher). False: no room. */
static bool json_str(char *out, size_t n, size_t *k, const char *s) {
  if (*k + 2 >= n) return false;
  out[(*k)++] = '"';
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (*k + 8 >= n) return false;
    if (ch == '"' || ch == '\\') {
      out[(*k)++] = '\\';
      out[(*k)++] = (char)ch;
    } else if (ch < 0x20) {
      *k += (size_t)snprintf(out + *k, n - *k, "\\u%04x", ch);
    } else {
      out[(*k)++] = (char)ch;
    }
  }
  out[(*k)++] = '"';
  out[*k] = 0;
  return true;
}

int tally__room_save(tally__engine *e, uint16_t net, const char *room, uint8_t reply, uint8_t redact,
                     uint32_t host_level, uint32_t by, const char *from, tally__op *op) {
  tally__rooms *z = tally__rooms_of(e);
  if (!z) return TALLY_ESTARTING;
  tally__room_set *s = tally__room_find(e, net, room);
  if (!s) {
    for (uint32_t i = 0; i < TALLY__ROOM_SETS_MAX && !s; i++)
      if (!z->r[i].used) s = &z->r[i];
    if (!s) return TALLY_ETOO_MANY;
    memset(s, 0, sizeof *s);
    s->used = true;
    s->net = net;
    tally__text_clip(s->room, sizeof s->room, room);
  }
  if (s->saving) return TALLY_EBUSY;
  const tally__state *st = &e->st;
  s->id = tally__state_take_id(&e->st);
  s->next_reply = reply;
  s->next_redact = redact;
  s->next_host_level = host_level;
  size_t n = sizeof s->json, k = 0;
  k += (size_t)snprintf(s->json, n,
                        "{\"k\":\"room\",\"id\":%" PRIu64 ",\"net\":%u,\"reply\":%u,\"redact\":%s,\"hl\":%u,\"by\":%" PRIu64
                        ",\"room\":",
                        s->id, (unsigned)st->networks[net].id, (unsigned)reply, redact ? "true" : "false",
                        (unsigned)host_level, by == TALLY__NONE ? (uint64_t)0 : (uint64_t)st->accounts[by].id);
  bool ok = k < n && json_str(s->json, n, &k, room);
  if (ok && from) {
    k += (size_t)snprintf(s->json + k, n - k, ",\"mid\":%" PRIu64 ",\"from\":", tally__state_take_id(&e->st));
    ok = k < n && json_str(s->json, n, &k, from);
  }
  if (ok && k + 2 < n) {
    s->json[k++] = '}';
    s->json[k] = 0;
  } else ok = false;
  if (!ok) { /* cannot happen: rooms are held to TALLY__ROOM_KEPT_BYTES_MAX */
    if (!s->committed) s->used = false;
    return TALLY_ETOOBIG;
  }
  s->saving = true;
  op->kind = TALLY__FACT_ROOM;
  op->qty = from ? RF_MOVE : RF_SET;
  op->entry_slot = (uint32_t)(s - z->r);
  op->fact = s->json;
  return TALLY_OK;
}

/* The running event of (net, from) now runs in `to`: its lines go there.
 * Its stored row keeps the first room; room_moves says where it went.
 * Drops not closed yet move too: their item rows carry the room (written
 * with the next batch, so they need no room_moves). */
static void move_event(tally__engine *e, uint16_t net, const char *from, const char *to) {
  tally__state *st = &e->st;
  for (uint32_t i = 0; i < st->event_count; i++) {
    tally__event *ev = &st->events[i];
    if (!ev->stopped_ms && ev->net == net && strcmp(ev->channel, from) == 0)
      tally__text_clip(ev->channel, sizeof ev->channel, to);
  }
  for (uint32_t i = 0; i < st->item_count; i++) {
    tally__item *it = &st->items[i];
    if ((it->drop_state == TALLY__DROP_SCHEDULED || it->drop_state == TALLY__DROP_LIVE) && it->drop_net == net &&
        strcmp(it->drop_channel, from) == 0) {
      tally__text_clip(it->drop_channel, sizeof it->drop_channel, to);
      tally__item_mark_dirty(st, i);
    }
  }
}

void tally__rooms_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (op->type != TALLY__OP_FACT || op->kind != TALLY__FACT_ROOM) return;
  tally__rooms *z = tally__rooms_of(e);
  if (!z || op->entry_slot >= TALLY__ROOM_SETS_MAX) return;
  tally__room_set *s = &z->r[op->entry_slot];
  s->saving = false;
  if (!ok) {
    if (!s->committed) s->used = false; /* never stored: as if never set */
    return;
  }
  s->committed = true;
  s->reply = s->next_reply;
  s->redact = s->next_redact;
  s->host_level = s->next_host_level;
  if (op->qty == RF_MOVE) {
    move_event(e, s->net, op->channel, s->room);
    TALLY__FEATURES_CALL(e, room_moved, s->net, op->channel, s->room, UINT64_MAX); /* quizzes, goals */
  }
  tell(e, s);
}

/* ---- restore ---------------------------------------------------------------------- */
static uint16_t net_of(const tally__state *st, int64_t id) {
  for (uint16_t n = 0; n < st->network_count; n++)
    if (st->networks[n].id == id) return n;
  return UINT16_MAX;
}

/* Running events whose room moved after they started follow the moves
 * (oldest first, so a room moved twice ends in the last one), and so do
 * the other features' quizzes and goals made before each move (rooms
 * restores after them: runtime.c). */
static int restore_moves(loader *l) {
  tally__engine *e = l->e;
  uint64_t oldest = 0;
  for (uint32_t k = 0; k < e->st.event_count; k++)
    if (!e->st.events[k].stopped_ms && (!oldest || e->st.events[k].id < oldest)) oldest = e->st.events[k].id;
  if (!oldest) return TALLY_OK; /* nothing runs: no move matters */
  char since[24];
  snprintf(since, sizeof since, "%" PRIu64, oldest);
  PGresult *q = tally__load_q(l, "SELECT network_id, from_room, to_room, id FROM room_moves WHERE id > $1::bigint ORDER BY id",
                              1, (const char *const[]){since});
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    uint16_t net = net_of(&e->st, tally__load_i64(q, i, 0));
    uint64_t id = (uint64_t)tally__load_i64(q, i, 3);
    if (net == UINT16_MAX) continue;
    for (uint32_t k = 0; k < e->st.event_count; k++) {
      tally__event *ev = &e->st.events[k];
      if (!ev->stopped_ms && ev->id < id && ev->net == net && strcmp(ev->channel, PQgetvalue(q, i, 1)) == 0)
        tally__text_clip(ev->channel, sizeof ev->channel, PQgetvalue(q, i, 2));
    }
    TALLY__FEATURES_CALL(e, room_moved, net, PQgetvalue(q, i, 1), PQgetvalue(q, i, 2), id);
  }
  PQclear(q);
  return TALLY_OK;
}

int tally__rooms_restore(loader *l, int64_t now_ms) {
  (void)now_ms;
  tally__engine *e = l->e;
  tally__rooms *z = tally__rooms_of(e);
  if (!z && !(z = calloc(1, sizeof *z))) {
    snprintf(l->err, l->err_len, "load: rooms: %s", tally_strerror(TALLY_ENOMEM));
    return TALLY_ENOMEM;
  }
  memset(z, 0, sizeof *z); /* a start that is tried again loads afresh */
  e->feature_data[TALLY__FDATA_ROOMS] = z;
  /* The newest row of each room; the rooms changed last when more are stored. */
  PGresult *q = tally__load_q(l,
                              "SELECT * FROM (SELECT DISTINCT ON (network_id, room) network_id, room, reply, redact,"
                              " host_level, id FROM room_settings ORDER BY network_id, room, id DESC) s"
                              " ORDER BY id DESC LIMIT $1::int",
                              1, (const char *const[]){"512"});
  if (!q) return TALLY_EDB;
  uint32_t n = 0;
  for (int i = 0; i < PQntuples(q); i++) {
    uint16_t net = net_of(&e->st, tally__load_i64(q, i, 0));
    if (net == UINT16_MAX || strlen(PQgetvalue(q, i, 1)) > TALLY__ROOM_KEPT_BYTES_MAX) continue;
    tally__room_set *s = &z->r[n++];
    s->used = s->committed = true;
    s->net = net;
    tally__text_clip(s->room, sizeof s->room, PQgetvalue(q, i, 1));
    int64_t reply = tally__load_i64(q, i, 2);
    s->reply = (uint8_t)(reply >= 0 && reply <= TALLY__REPLY_PRIVATE ? reply : TALLY__ROOM_REPLY_DEFAULT);
    s->redact = PQgetvalue(q, i, 3)[0] == 't';
    int64_t hl = tally__load_i64(q, i, 4);
    s->host_level = (uint32_t)(hl >= 0 && hl <= TALLY__ROOM_HOST_LEVEL_MAX ? hl : 0);
    s->id = (uint64_t)tally__load_i64(q, i, 5);
  }
  PQclear(q);
  int rc = restore_moves(l);
  if (rc) return rc;
  /* Adapters learn every stored room's settings before the engine is ready
   * (these effects precede the ready STATUS), so no command is answered
   * with the defaults by mistake. */
  for (uint32_t i = 0; i < n; i++) tell(e, &z->r[i]);
  return TALLY_OK;
}

void tally__rooms_destroy(tally__engine *e) {
  free(e->feature_data[TALLY__FDATA_ROOMS]);
  e->feature_data[TALLY__FDATA_ROOMS] = NULL;
}
