/* route.c — where each engine effect goes, and exactly-once delivery.
 *
 * A slot is one chat server: (network, instance id from HELLO). It outlives
 * its connections: effects are numbered per slot (seq 1, 2, ...) and kept
 * until the host acknowledges them (ACK, or HELLO.acked on reconnect), so a
 * reconnect of the same instance is sent exactly those above what it
 * acknowledged. A slot away longer than slot_linger, or whose out-queue
 * overflows, has its effects dropped with a logged count: never sent twice,
 * since seq only grows. A fresh slot (new, or after tallyd restarted) starts
 * numbering above the host's HELLO.acked, so a host's "drop seq <= last
 * delivered" rule stays right across tallyd restarts.
 *
 * Replies find their slot through the origin: tallyd submits commands with
 * origin "<slot id hex>~<host's origin>" and strips the prefix here. The
 * engine echoes origin in every effect for a command, also later ones
 * (raffle winners, held tip messages), so deferred replies reach the chat
 * server that asked, after a reconnect too.
 *
 * Room effects (ANNOUNCE, TOPIC, MODERATORS) go to exactly one slot of the
 * room's network: the live one with the lowest id and room in its queue
 * (deterministic; the others would repeat it), else the lowest away one,
 * which gets it when it returns. ROSTER goes to every live slot of the network (each answers for
 * its local users), STATUS to every live slot. */
#include "tallyd.h"
#include "matrix.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- slots ------------------------------------------------------------------------ */
uint64_t td_slot_first_seq(const td_slot *s) { return s->count ? s->ring[s->head]->seq : 0; }

const td_entry *td_slot_entry(const td_slot *s, uint64_t seq) {
  uint64_t first = td_slot_first_seq(s);
  if (!s->count || seq < first || seq - first >= s->count) return NULL;
  return s->ring[(uint32_t)((s->head + (seq - first)) % s->ring_cap)];
}

static void slot_pop(td_slot *s) {
  td_entry *e = s->ring[s->head];
  s->bytes -= e->len;
  free(e);
  s->ring[s->head] = NULL;
  s->head = (s->head + 1) % s->ring_cap;
  s->count--;
}

static uint64_t slot_drop_all(td_slot *s) {
  uint64_t n = s->count;
  while (s->count) slot_pop(s);
  s->dropped += n;
  return n;
}

void td_slot_ack(td_slot *s, uint64_t seq) {
  while (s->count && s->ring[s->head]->seq <= seq) slot_pop(s);
}

int td_slot_full(const td_daemon *d, const td_slot *s) {
  uint64_t inflight = s->pend_count; /* their answers will need room */
  uint64_t reserve_bytes = (uint64_t)d->cfg.busy_reserve * (TALLY_FRAME_BYTES_MAX + TALLY_STREAM_PREFIX_BYTES);
  if (reserve_bytes > d->cfg.slot_bytes_max / 2) reserve_bytes = d->cfg.slot_bytes_max / 2;
  return s->count + inflight + d->cfg.busy_reserve >= d->cfg.slot_effects_max ||
         s->bytes + reserve_bytes >= d->cfg.slot_bytes_max;
}

td_slot *td_slot_by_id(td_daemon *d, uint32_t id) {
  for (uint32_t i = 0; i < d->cfg.slots_max; i++)
    if (d->slots[i].used && d->slots[i].id == id) return &d->slots[i];
  return NULL;
}

td_slot *td_slot_get(td_daemon *d, const char *network, const char *instance, uint64_t acked) {
  td_slot *free_slot = NULL;
  for (uint32_t i = 0; i < d->cfg.slots_max; i++) {
    td_slot *s = &d->slots[i];
    if (s->used && !strcmp(s->network, network) && !strcmp(s->instance, instance)) return s;
    if (!s->used && !free_slot) free_slot = s;
  }
  if (!free_slot) return NULL;
  td_slot *s = free_slot;
  td_entry **ring = calloc(d->cfg.slot_effects_max, sizeof *ring);
  if (!ring) return NULL;
  memset(s, 0, sizeof *s);
  s->ring = ring;
  s->ring_cap = d->cfg.slot_effects_max;
  s->used = 1;
  s->id = d->slot_next_id++;
  if (d->slot_next_id == 0) d->slot_next_id = 1;
  snprintf(s->network, sizeof s->network, "%s", network);
  snprintf(s->instance, sizeof s->instance, "%s", instance);
  s->next_seq = acked + 1; /* see the file comment: above what the host has */
  td_log(TD_INFO, "slot %x: %s/%s (numbering from %llu)", (unsigned)s->id, network, instance,
         (unsigned long long)s->next_seq);
  return s;
}

void td_slot_away(td_daemon *d, td_slot *s, uint64_t now_ms) {
  s->conn = NULL;
  s->away_since_ms = now_ms;
  td_log(TD_INFO, "slot %x: %s/%s away, %u effects kept for %u s", (unsigned)s->id, s->network, s->instance,
         s->count, d->cfg.slot_linger_s);
}

static void slot_free(td_daemon *d, td_slot *s, const char *why) {
  uint64_t n = slot_drop_all(s);
  d->dropped_total += n;
  td_log(n ? TD_WARN : TD_INFO, "slot %x: %s/%s %s: %llu effects dropped (never delivered), presence withdrawn",
         (unsigned)s->id, s->network, s->instance, why, (unsigned long long)n);
  td_presence_withdraw(d->presence, s->id, td_presence_submit, d);
  td_pending_free(s);
  free(s->ring);
  memset(s, 0, sizeof *s);
}

void td_slots_expire(td_daemon *d, uint64_t now_ms) {
  for (uint32_t i = 0; i < d->cfg.slots_max; i++) {
    td_slot *s = &d->slots[i];
    if (s->used && !s->conn && !s->xmpp && now_ms - s->away_since_ms >= (uint64_t)d->cfg.slot_linger_s * 1000)
      slot_free(d, s, "expired (away longer than slot_linger)");
  }
}

void td_slots_free(td_daemon *d) {
  for (uint32_t i = 0; d->slots && i < d->cfg.slots_max; i++)
    if (d->slots[i].used) {
      d->dropped_total += slot_drop_all(&d->slots[i]);
      td_pending_free(&d->slots[i]);
      free(d->slots[i].ring);
      d->slots[i].used = 0;
    }
}

/* ---- pushing an effect into a slot ------------------------------------------------ */
/* The effect as this slot's host gets it: its own origin (the slot prefix
 * taken off), the slot's network and id, numbered seq; encoded from the
 * effect's pointers (no copy into a frame struct: this runs per effect). */
static int encode(const td_slot *s, const tally_effect *e, const char *origin, uint64_t seq, uint8_t *out,
                  size_t cap, size_t *len) {
  assert(e->size >= sizeof *e); /* the library's or td_reply's: full size */
  tally_effect f = *e;
  f.origin = origin ? origin : "";
  f.network = s->network;
  f.conn = s->id;
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  size_t n;
  int rc = tally_effect_frame_encode(&f, seq, frame, sizeof frame, &n);
  if (rc != TALLY_OK && f.version >= 3 && f.msg) { /* the spans may not fit: say it plainly */
    f.msg = 0;
    f.args = "";
    rc = tally_effect_frame_encode(&f, seq, frame, sizeof frame, &n);
  }
  if (rc != TALLY_OK) return rc;
  return tally_stream_wrap(frame, n, out, cap, len);
}

void td_slot_push(td_daemon *d, td_slot *s, const tally_effect *e, const char *origin) {
  if (s->xmpp) { /* an adapter inside tallyd: no frames, its own bounded out-queue */
    td_xmpp_effect(s->xmpp, e, origin);
    return;
  }
  uint8_t data[TALLY_STREAM_PREFIX_BYTES + TALLY_FRAME_BYTES_MAX];
  size_t len;
  if (encode(s, e, origin, s->next_seq, data, sizeof data, &len) != TALLY_OK) {
    d->dropped_total++;
    td_log(TD_ERR, "slot %x: an effect (kind %u) does not encode; dropped", (unsigned)s->id, e->kind);
    return;
  }
  if (s->count == s->ring_cap || s->bytes + len > d->cfg.slot_bytes_max) {
    uint64_t n = slot_drop_all(s);
    d->dropped_total += n;
    td_log(TD_WARN, "slot %x: %s/%s out-queue overflow (slot_effects_max %u, slot_bytes_max %u): %llu "
                    "unacknowledged effects dropped, never delivered",
           (unsigned)s->id, s->network, s->instance, d->cfg.slot_effects_max, d->cfg.slot_bytes_max,
           (unsigned long long)n);
    if (s->conn) td_conn_close(s->conn, "out-queue overflow: the host does not read or acknowledge");
  }
  td_entry *en = malloc(sizeof *en + len);
  if (!en) {
    d->dropped_total++;
    td_log(TD_ERR, "slot %x: out of memory: an effect dropped", (unsigned)s->id);
    return;
  }
  en->seq = s->next_seq++;
  en->len = (uint32_t)len;
  memcpy(en->data, data, len);
  s->ring[(s->head + s->count) % s->ring_cap] = en;
  s->count++;
  s->bytes += len;
  if (s->conn) td_conn_pump_soon(s->conn); /* written with the rest of this loop turn's */
}

/* ---- routing ------------------------------------------------------------------------ */
/* The slot a room's effect goes to: the live one with the lowest id whose
 * out-queue has room (a stalled server must not silence its network's
 * rooms), else the lowest live one, else the lowest away one (it gets the
 * effect when it returns). Deterministic: one server says it, not all. */
static td_slot *room_slot(td_daemon *d, const char *network) {
  td_slot *roomy = NULL, *live = NULL, *away = NULL;
  for (uint32_t i = 0; i < d->cfg.slots_max; i++) {
    td_slot *s = &d->slots[i];
    if (!s->used || strcmp(s->network, network)) continue;
    td_slot **best = s->conn || s->xmpp ? (td_slot_full(d, s) ? &live : &roomy) : &away;
    if (!*best || s->id < (*best)->id) *best = s;
  }
  return roomy ? roomy : live ? live : away;
}

static void route_reply(td_daemon *d, const tally_effect *e) {
  const char *o = e->origin ? e->origin : "";
  char *end;
  unsigned long id = strtoul(o, &end, 16);
  td_slot *s = end != o && *end == '~' && (size_t)(end - o) <= TD_SLOT_ID_HEX_MAX ? td_slot_by_id(d, (uint32_t)id) : NULL;
  if (!s) {
    d->dropped_total++;
    td_log(TD_WARN, "reply to \"%s\" (req %llu): its chat server is no longer known; dropped", o,
           (unsigned long long)e->req_id);
    return;
  }
  if (e->code != TALLY_EPENDING) td_pending_done(s, e->req_id);
  td_slot_push(d, s, e, end + 1);
}

static void route_status(td_daemon *d, const tally_effect *e) {
  d->status_code = e->code;
  snprintf(d->status_text, sizeof d->status_text, "%s", e->text ? e->text : "");
  if (e->code == TALLY_OK && !d->engine_ready) {
    d->engine_ready = 1;
    td_log(TD_INFO, "engine ready: %s", d->status_text);
    if (td_notify("READY=1\nSTATUS=serving") != 0) td_log(TD_WARN, "sd_notify READY=1 failed");
    td_mx_ready(d);
  } else if (e->code != TALLY_OK) {
    td_log(TD_WARN, "engine status %s: %s", tally_err_name(e->code), d->status_text);
  }
  for (uint32_t i = 0; i < d->cfg.slots_max; i++)
    if (d->slots[i].used && d->slots[i].conn) td_slot_push(d, &d->slots[i], e, "");
}

void td_route_effect(void *ud, const tally_effect *e) {
  td_daemon *d = ud;
  const char *network = TALLY_HAS_FIELD(e, tally_effect, network) && e->network && e->network[0]
                            ? e->network
                            : d->cfg.engine.network;
  if (e->kind != TALLY_EFFECT_STATUS && td_mx_owns(d, network)) {
    td_mx_effect(d, e); /* the Matrix AS in this process (matrix_effect.c) */
    return;
  }
  switch (e->kind) {
  case TALLY_EFFECT_REPLY:
    route_reply(d, e);
    return;
  case TALLY_EFFECT_STATUS:
    route_status(d, e);
    return;
  case TALLY_EFFECT_ROSTER:
    td_presence_replay(d->presence, network, e->channel ? e->channel : "", td_presence_submit, d);
    for (uint32_t i = 0; i < d->cfg.slots_max; i++) {
      td_slot *s = &d->slots[i];
      if (s->used && s->conn && !strcmp(s->network, network)) td_slot_push(d, s, e, "");
    }
    return;
  default: { /* ANNOUNCE, TOPIC, MODERATORS and kinds to come: one server of the network */
    td_slot *s = room_slot(d, network);
    if (!s) {
      d->dropped_total++;
      td_log(TD_INFO, "effect kind %u for %s in network %s: no chat server of that network; dropped", e->kind,
             e->channel ? e->channel : "", network);
      return;
    }
    td_slot_push(d, s, e, "");
  }
  }
}

void td_reply(td_conn *c, const tally_frame_command *cmd, int code, const char *text) {
  td_slot *s = c->slot;
  if (s->count + s->pend_count >= c->d->cfg.slot_effects_max) {
    /* Even the busy reserve is used up: this host sends commands but does
     * not read the answers. Closed; its slot keeps what it was sent (a
     * reconnect resumes), and the commands it sent after this were never
     * read, so never applied: its adapter tells those users. */
    char why[200];
    snprintf(why, sizeof why, "busy reserve used up (%u effects unacknowledged): the host sends commands but does "
                              "not read its answers; its slot keeps them for a reconnect", s->count);
    td_conn_close(c, why);
    return;
  }
  tally_effect e = {.size = sizeof e, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_REPLY, .code = code,
                    .req_id = cmd->req_id, .origin = cmd->origin, .channel = cmd->channel, .text = text,
                    .network = s->network, .args = ""};
  td_slot_push(c->d, s, &e, cmd->origin);
  /* tallyd's own answers (busy, refusals) come while this host's commands
   * are read, and the read may end in a close (the busy reserve): they go
   * out now, not with the next loop turn's effects. */
  td_conn_pump(c);
}

void td_route_welcome(td_daemon *d, td_slot *s) {
  int ready = d->engine_ready || d->status_code != TALLY_OK;
  tally_effect e = {.size = sizeof e, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_STATUS,
                    .code = ready ? d->status_code : TALLY_ESTARTING,
                    .text = ready ? d->status_text : "starting up, try again in a moment", .origin = "",
                    .channel = "", .network = s->network, .args = ""};
  td_slot_push(d, s, &e, "");
}
