/* names.h — the engine's interned names: every account name, and the
 * origins (who to answer) of operations in flight and raffle entries, are
 * kept once in a byte budget and referred to by a uint32 handle, so an op
 * stays small whatever the name's length (a full JID is up to 3,071 bytes)
 * and the hot path compares handles.
 *
 * Contract: only the engine thread touches a table. A name is (space, bytes):
 * the same bytes in two spaces (two networks, or an account name and an
 * origin) are two names. Handle 0 is the empty name of every space. intern
 * takes a reference (a new name, or one more on an existing one); each
 * reference is given back by unref. A name without references stays
 * readable (and is found again by intern) until the next compaction
 * forgets it and reclaims its bytes, so a caller may still read a name
 * right after giving its reference back. Budgets:
 * names_bytes_max bytes (each name takes its length + 9, rounded to 8) and
 * a fixed count of names, both set at init; full is TALLY_ENAMES_FULL,
 * never a silent cut. Pointers from tally__names_str stay valid until the
 * next tally__names_compact (the engine compacts between commands only). */
#ifndef TALLY_NAMES_H
#define TALLY_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

enum {
  TALLY__NAMES_SPACE_ACCOUNT = 0xffff, /* account names ("user:alice"): not a network index */
  TALLY__NAMES_RECORD_HEADER = 8,      /* handle and length before each name's bytes */
};

typedef struct tally__name {
  uint64_t hash;
  uint32_t off;  /* its record in the arena; the next free slot while free */
  uint32_t refs; /* 0: free */
  uint32_t len;
  uint16_t space;
} tally__name;

typedef struct tally__names {
  uint8_t *arena;
  size_t bytes_max, bytes_top;
  size_t zero_bytes;  /* records of names without references, until compaction */
  tally__name *names;
  uint32_t count_max, count_top, live, zero_count; /* live: names in the table, zero ones included */
  uint32_t free_head; /* a free slot below count_top, or 0 */
  tally__map index;
} tally__names;

int tally__names_init(tally__names *t, size_t bytes_max, uint32_t count_max);
void tally__names_free(tally__names *t);
/* The handle of (space, s[0..len)), with a reference taken: TALLY_OK,
 * TALLY_ENAMES_FULL (the budget in bytes or in names is spent). */
int tally__names_intern(tally__names *t, uint16_t space, const char *s, size_t len, uint32_t *handle);
/* The same for a name kept for good (an account's): refused once names
 * in use would pass 7/8 of the budget, so the last eighth always stays
 * for whom to answer, and a table full of accounts still serves the
 * accounts it has. */
int tally__names_intern_kept(tally__names *t, uint16_t space, const char *s, size_t len, uint32_t *handle);
/* The handle of a name already interned, without a reference; 0 if none. */
uint32_t tally__names_find(const tally__names *t, uint16_t space, const char *s, size_t len);
void tally__names_ref(tally__names *t, uint32_t handle);
void tally__names_unref(tally__names *t, uint32_t handle);
/* The name's bytes, NUL-terminated ("" for handle 0). */
const char *tally__names_str(const tally__names *t, uint32_t handle);
uint32_t tally__names_len(const tally__names *t, uint32_t handle);
/* Forgets the names without references and moves the others down over
 * their bytes. Invalidates every pointer tally__names_str returned;
 * handles of names with references stay. */
void tally__names_compact(tally__names *t);
/* Compacts when it is worth it: a sixteenth of the budget is names
 * without references, or the budget (in bytes or names) is nearly spent
 * and some can be reclaimed. Returns whether it compacted. */
bool tally__names_tidy(tally__names *t);
/* Bytes in use by live names (for stats and tests). */
size_t tally__names_bytes_live(const tally__names *t);

#endif
