/* map.c — linear probing with backward-shift deletion, so removals (evicted
 * idempotency keys, forgotten purchases) leave no tombstones and lookups stay
 * short under churn. */
#include "map.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tally.h"

int tally__map_init(tally__map *map, size_t entries_max) {
  assert(map && entries_max > 0);
  size_t cap = 16;
  while (cap < entries_max * 2) cap <<= 1;
  map->slots = tally__alloc_big(cap * sizeof *map->slots);
  if (!map->slots) return TALLY_ENOMEM;
  map->mask = cap - 1;
  map->count = 0;
  map->count_max = entries_max;
  return TALLY_OK;
}

void tally__map_free(tally__map *map) {
  tally__free_big(map->slots, (map->mask + 1) * sizeof *map->slots);
  map->slots = NULL;
}

uint32_t tally__map_find(const tally__map *map, uint64_t key,
                         tally__map_eq_fn eq, const void *ud) {
  assert(key != 0);
  for (size_t i = key & map->mask;; i = (i + 1) & map->mask) {
    const tally__map_slot *slot = &map->slots[i];
    if (slot->key == 0) return TALLY__MAP_NONE;
    if (slot->key == key && (!eq || eq(ud, slot->val))) return slot->val;
  }
}

int tally__map_put(tally__map *map, uint64_t key, uint32_t value) {
  assert(key != 0 && value != TALLY__MAP_NONE);
  if (map->count >= map->count_max) return TALLY_ETOO_MANY;
  size_t i = key & map->mask;
  while (map->slots[i].key != 0) i = (i + 1) & map->mask;
  map->slots[i].key = key;
  map->slots[i].val = value;
  map->count++;
  return TALLY_OK;
}

bool tally__map_del(tally__map *map, uint64_t key, uint32_t value) {
  size_t i = key & map->mask;
  for (;; i = (i + 1) & map->mask) {
    if (map->slots[i].key == 0) return false;
    if (map->slots[i].key == key && map->slots[i].val == value) break;
  }
  /* Backward shift: pull later members of the probe run into the hole. */
  size_t hole = i;
  for (size_t j = (hole + 1) & map->mask; map->slots[j].key != 0; j = (j + 1) & map->mask) {
    size_t home = map->slots[j].key & map->mask;
    bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      map->slots[hole] = map->slots[j];
      hole = j;
    }
  }
  map->slots[hole].key = 0;
  map->count--;
  return true;
}

uint64_t tally__hash_u64(uint64_t v) {
  /* splitmix64 finaliser: cheap and mixes low bits into the probe index. */
  v ^= v >> 30;
  v *= 0xbf58476d1ce4e5b9ULL;
  v ^= v >> 27;
  v *= 0x94d049bb133111ebULL;
  v ^= v >> 31;
  return v ? v : 1;
}

uint64_t tally__hash_str(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ULL;
  }
  return tally__hash_u64(h);
}

/* Large tables are probed at random, so every lookup would also miss the
 * TLB with 4 KiB pages: map them with huge pages where the kernel allows. */
void *tally__alloc_big(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (bytes >= TALLY__HUGE_PAGE_BYTES) (void)madvise(p, bytes, MADV_HUGEPAGE);
  return p; /* anonymous memory is zeroed */
}

void tally__free_big(void *p, size_t bytes) {
  if (p) munmap(p, bytes);
}
