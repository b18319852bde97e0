/* cmd_room.c — ROOM (this room's settings), ROOM SET and ROOM MOVE by a
 * host. The settings are network-neutral; the rules and the table live in
 * features/rooms/rooms.c (contract in rooms.h); this file parses and answers. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "rooms.h"
#include "text.h"

static const char room_usage[] =
    "ROOM | ROOM SET reply=room|thread|dm redact=on|off host_level=<level, 0: the network's rule> | ROOM MOVE <room>";

static bool value_is(const char *v, size_t n, const char *word) { return strlen(word) == n && !strncmp(v, word, n); }

/* One key=value of ROOM SET into the new settings; false: refused (answered). */
static bool set_one(tally__cmd *c, int k, uint8_t *reply, uint8_t *redact, uint32_t *host_level) {
  const char *w = c->t.word[k];
  size_t n = c->t.len[k];
  const char *eq = memchr(w, '=', n);
  size_t kl = eq ? (size_t)(eq - w) : n, vl = eq ? n - kl - 1 : 0;
  const char *v = eq ? eq + 1 : "";
  bool ok = false;
  if (value_is(w, kl, "reply")) {
    ok = true;
    if (value_is(v, vl, "room")) *reply = TALLY__REPLY_ROOM;
    else if (value_is(v, vl, "thread")) *reply = TALLY__REPLY_THREAD;
    else if (value_is(v, vl, "dm") || value_is(v, vl, "private")) *reply = TALLY__REPLY_PRIVATE;
    else ok = false;
  } else if (value_is(w, kl, "redact")) {
    ok = true;
    if (value_is(v, vl, "on")) *redact = 1;
    else if (value_is(v, vl, "off")) *redact = 0;
    else ok = false;
  } else if (value_is(w, kl, "host_level")) {
    uint64_t level = 0;
    /* 0 is allowed (back to the network's rule); tally__uint_parse refuses it. */
    ok = value_is(v, vl, "0") || (vl > 0 && !tally__uint_parse(v, vl, TALLY__ROOM_HOST_LEVEL_MAX, &level));
    if (ok) *host_level = (uint32_t)level;
  }
  if (!ok)
    tally__reply(c->e, c->cmd, TALLY_EROOM_SETTING, 0, "%s: %.*s. %s", tally_strerror(TALLY_EROOM_SETTING), (int)n, w,
                 room_usage);
  return ok;
}

static void save(tally__cmd *c, const char *room, uint8_t reply, uint8_t redact, uint32_t host_level, const char *from) {
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  int rc = tally__room_save(c->e, c->net, room, reply, redact, host_level, c->account, from, op);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EBUSY)
      tally__reply(c->e, c->cmd, rc, 0, "%s: a change of this room's settings is being saved; send it again in a moment",
                   tally_strerror(rc));
    else tally__cmd_refuse(c, rc);
    return;
  }
  char now[64]; /* "reply=thread redact=off host_level=1000000" */
  snprintf(now, sizeof now, "reply=%s redact=%s host_level=%u",
           reply == TALLY__REPLY_THREAD ? "thread" : reply == TALLY__REPLY_PRIVATE ? "dm" : "room",
           redact ? "on" : "off", (unsigned)host_level);
  if (from)
    snprintf(op->note, sizeof op->note, "This room moved to %.*s: its settings (%s) and its running event go there.",
             120, room, now); /* the room's name clipped: the note is short */
  else snprintf(op->note, sizeof op->note, "Room settings saved: %s.", now);
  tally__cmd_fact_added(c, op);
}

void tally__cmd_room(tally__cmd *c) {
  const char *room = c->cmd->channel;
  if (!room[0]) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "%s: say ROOM in the room it is about",
                 tally_strerror(TALLY_ENOT_IN_CHANNEL));
    return;
  }
  if (!tally__rooms_of(c->e)) {
    tally__cmd_refuse(c, TALLY_ESTARTING);
    return;
  }
  const tally__room_set *s = tally__room_find(c->e, c->net, room);
  bool set = s && s->committed;
  uint8_t reply = set ? s->reply : TALLY__ROOM_REPLY_DEFAULT, redact = set ? s->redact : TALLY__ROOM_REDACT_DEFAULT;
  uint32_t host_level = set ? s->host_level : TALLY__ROOM_HOST_LEVEL_DEFAULT;
  if (c->t.count == 1) {
    char now[96];
    tally__room_describe(c->e, c->net, room, now, sizeof now);
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "Room settings here: %s%s. %s", now, set ? "" : " (the defaults)", room_usage);
    return;
  }
  if (tally__word_is(&c->t, 1, "SET") && c->t.count >= 3) {
    for (int k = 2; k < c->t.count; k++)
      if (!set_one(c, k, &reply, &redact, &host_level)) return;
    save(c, room, reply, redact, host_level, NULL);
    return;
  }
  if (tally__word_is(&c->t, 1, "MOVE") && c->t.count == 3) {
    char to[TALLY__ROOM_KEPT_BYTES_MAX + 1];
    if (tally__word_copy(&c->t, 2, to, sizeof to) != TALLY_OK) {
      tally__cmd_refuse(c, TALLY_ETOOBIG);
      return;
    }
    if (!strcmp(to, room)) {
      tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: a room cannot move to itself",
                   tally_strerror(TALLY_EBAD_SYNTAX));
      return;
    }
    save(c, to, reply, redact, host_level, room);
    return;
  }
  tally__cmd_usage(c, room_usage);
}
