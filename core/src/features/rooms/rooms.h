/* rooms.h — a room's settings (ROOM SET) and room moves (ROOM MOVE), issue 13.
 *
 * Contract (docs/MATRIX.md "Room settings"):
 *   - A room (network, channel) has three network-neutral settings, set by
 *     its hosts: reply (room: answers in the room; thread: in a thread on
 *     the command; private: to the asker privately), redact (on: the
 *     adapter removes command lines where its network lets it) and
 *     host_level (0: the network's own rule for hosts; N: members at or
 *     above level N are hosts, for networks with numeric levels). Rooms
 *     never set have the defaults below.
 *   - The engine decides nothing from them: it stores them (a FACT op,
 *     sql/016), answers once committed, and tells the adapter with a
 *     TALLY_EFFECT_ROOM effect (text "reply=thread redact=on host_level=0")
 *     after each change and, at start-up, for every stored room. An adapter
 *     applies what its network can and ignores the rest (IRC, XMPP: all).
 *   - ROOM MOVE <room> (a room replaced, e.g. a Matrix room upgrade): the
 *     settings are copied to the new room and its running event moves
 *     there, in memory and (room_moves) after a restart, with its drops
 *     not closed yet (their item rows carry the room).
 *   - One change of a room in flight at a time (a second is refused busy),
 *     so a change never merges with a stale copy.
 * Engine thread only; one fixed table (limits below). */
#ifndef TALLY_ROOMS_H
#define TALLY_ROOMS_H

#include "engine_internal.h"

struct loader;

enum {
  TALLY__FDATA_ROOMS = 3,        /* index in e->feature_data (0 rewards, 1 quiz, 3 rooms, 4 goals, 5 challenges, 6 links, 7 tips) */
  TALLY__FACT_ROOM = 25,         /* op->kind of this feature's FACT ops */
  TALLY__ROOM_SETS_MAX = 512,    /* rooms with settings kept (more: refused, too many) */
  TALLY__ROOM_HOST_LEVEL_MAX = 1000000,
  /* Two rooms, each escaped at most twice its size (no control characters
   * reach here: the dispatcher refuses them), and the numbers. */
  TALLY__ROOM_JSON_BYTES = 4 * TALLY__ROOM_KEPT_BYTES_MAX + 256,
};
_Static_assert((int)TALLY__ROOM_JSON_BYTES < (int)TALLY__FACT_BYTES_MAX, "a room fact fits a FACT op");

enum tally__room_reply {
  TALLY__REPLY_ROOM = 0,    /* the default: as every adapter answered before settings */
  TALLY__REPLY_THREAD = 1,
  TALLY__REPLY_PRIVATE = 2, /* typed as "dm" too */
};
/* The defaults of a room never set (named: docs/MATRIX.md lists them). */
enum {
  TALLY__ROOM_REPLY_DEFAULT = TALLY__REPLY_ROOM,
  TALLY__ROOM_REDACT_DEFAULT = 0,
  TALLY__ROOM_HOST_LEVEL_DEFAULT = 0,
};

typedef struct tally__room_set {
  bool used, committed, saving; /* saving: its fact is in flight (`next` holds the values) */
  uint16_t net;
  uint8_t reply, redact;
  uint32_t host_level;
  uint8_t next_reply, next_redact;
  uint32_t next_host_level;
  uint64_t id;
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  char json[TALLY__ROOM_JSON_BYTES];
} tally__room_set;

typedef struct tally__rooms {
  tally__room_set r[TALLY__ROOM_SETS_MAX];
} tally__rooms;

tally__rooms *tally__rooms_of(tally__engine *e);
/* The room's entry, or NULL (never set). */
tally__room_set *tally__room_find(tally__engine *e, uint16_t net, const char *room);
/* Writes "reply=... redact=... host_level=N" of (net, room) (defaults when never set). */
void tally__room_describe(tally__engine *e, uint16_t net, const char *room, char *out, size_t cap);
/* Fills op (a FACT op the caller took) with room's new settings; from (or
 * NULL): the room it moves from (ROOM MOVE). TALLY_EBUSY (a change is in
 * flight), TALLY_ETOO_MANY (table full). */
int tally__room_save(tally__engine *e, uint16_t net, const char *room, uint8_t reply, uint8_t redact,
                     uint32_t host_level, uint32_t by, const char *from, tally__op *op);

/* Hooks (runtime.c). */
int tally__rooms_restore(struct loader *l, int64_t now_ms);
void tally__rooms_record_settled(tally__engine *e, const tally__op *op, bool ok);
void tally__rooms_destroy(tally__engine *e);

#endif
