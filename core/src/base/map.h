/* map.h — open-addressing hash index from a 64-bit key to a uint32 slot.
 *
 * Contract: the map stores (key, value) pairs where value is an index into
 * the caller's own array; for string keys the caller hashes the string with
 * tally__hash_str and passes an `eq` callback that compares the string at
 * that index, so collisions are resolved exactly. Capacity is fixed at init
 * (load factor <= 1/2); put fails with TALLY_ETOO_MANY when full rather
 * than growing. No allocation after init. */
#ifndef TALLY_MAP_H
#define TALLY_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TALLY__MAP_NONE UINT32_MAX

/* Key and value side by side: one cache line per probe. */
typedef struct tally__map_slot {
  uint64_t key; /* 0 = empty */
  uint32_t val;
} tally__map_slot;

typedef struct tally__map {
  tally__map_slot *slots;
  size_t mask;
  size_t count, count_max;
} tally__map;

typedef bool (*tally__map_eq_fn)(const void *ud, uint32_t value);

int tally__map_init(tally__map *map, size_t entries_max);
void tally__map_free(tally__map *map);
/* Value whose key matches and for which eq (if not NULL) returns true. */
uint32_t tally__map_find(const tally__map *map, uint64_t key,
                         tally__map_eq_fn eq, const void *ud);
int tally__map_put(tally__map *map, uint64_t key, uint32_t value);
/* Removes the pair (key, value); false if absent. */
bool tally__map_del(tally__map *map, uint64_t key, uint32_t value);

/* Zeroed memory for large tables (huge pages when possible); freed with the
 * same size. NULL when out of memory. */
enum { TALLY__HUGE_PAGE_BYTES = 2 * 1024 * 1024 };
void *tally__alloc_big(size_t bytes);
void tally__free_big(void *p, size_t bytes);

/* Never returns 0 (the empty marker). */
uint64_t tally__hash_str(const char *s);
uint64_t tally__hash_u64(uint64_t v);

#endif
