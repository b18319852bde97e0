/* keys.c — the idempotency-key store: a ring of the last keys_max keys with
 * a generational hash index in front of it.
 *
 * Why generations: forgetting the oldest key one by one costs a cold cache
 * miss per buy (a delete in a large hash table). Instead the index is two
 * maps of keys_max/2 entries each; when the current one is full the older
 * one is cleared in one memset and becomes current. A map entry whose ring
 * slot was reused simply fails the string compare, so stale entries are
 * harmless. Each generation also has a Bloom filter small enough for L2:
 * a key never seen before (nearly every buy) is answered "new" without
 * touching the maps. Keys stay remembered for between keys_max/2 and
 * keys_max further keys. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

enum { KEYS_BLOOM_BITS_PER_KEY = 16, KEYS_BLOOM_HASHES = 3 };

typedef struct key_probe {
  const tally__state *st;
  const char *key;
} key_probe;

static bool key_eq(const void *ud, uint32_t slot) {
  const key_probe *p = ud;
  const tally__key *k = &p->st->keys[slot];
  return k->state != TALLY__KEY_FREE && strcmp(tally__key_text(p->st, slot), p->key) == 0;
}

enum { KEY_LONG_STRIDE = TALLY__KEY_BYTES_MAX + 1 };

static size_t keys_long_bytes(const tally__state *st) { return (size_t)st->cfg->keys_max * KEY_LONG_STRIDE; }

const char *tally__key_text(const tally__state *st, uint32_t slot) {
  const tally__key *k = &st->keys[slot];
  return k->is_long ? st->keys_long + (size_t)slot * KEY_LONG_STRIDE : k->key;
}

static uint32_t gen_entries(const tally__state *st) { return st->cfg->keys_max / 2; }

int tally__keys_init(tally__state *st) {
  size_t bits = 64;
  while (bits < (size_t)gen_entries(st) * KEYS_BLOOM_BITS_PER_KEY) bits <<= 1;
  st->key_bloom_mask = (uint32_t)(bits - 1);
  /* Reserved, not touched: a page is used only when a long key lands in it. */
  st->keys_long = tally__alloc_big(keys_long_bytes(st));
  if (!st->keys_long) return TALLY_ENOMEM;
  for (int g = 0; g < 2; g++) {
    st->key_bloom[g] = calloc(bits / 64, sizeof(uint64_t));
    if (!st->key_bloom[g] || tally__map_init(&st->key_gen[g], gen_entries(st))) return TALLY_ENOMEM;
  }
  st->key_gen_cur = 0;
  st->key_gen_count = 0;
  return TALLY_OK;
}

void tally__keys_free(tally__state *st) {
  for (int g = 0; g < 2; g++) {
    free(st->key_bloom[g]);
    st->key_bloom[g] = NULL;
    tally__map_free(&st->key_gen[g]);
  }
  if (st->keys_long) tally__free_big(st->keys_long, keys_long_bytes(st));
  st->keys_long = NULL;
}

/* Three bit positions from one 64-bit hash (21 bits each). */
static uint32_t bloom_bit(const tally__state *st, uint64_t h, int i) {
  return (uint32_t)(h >> (21 * i)) & st->key_bloom_mask;
}

static bool bloom_maybe(const tally__state *st, int g, uint64_t h) {
  const uint64_t *b = st->key_bloom[g];
  for (int i = 0; i < KEYS_BLOOM_HASHES; i++) {
    uint32_t bit = bloom_bit(st, h, i);
    if (!(b[bit >> 6] & (1ull << (bit & 63)))) return false;
  }
  return true;
}

static void bloom_add(tally__state *st, int g, uint64_t h) {
  for (int i = 0; i < KEYS_BLOOM_HASHES; i++) {
    uint32_t bit = bloom_bit(st, h, i);
    st->key_bloom[g][bit >> 6] |= 1ull << (bit & 63);
  }
}

uint32_t tally__key_find(const tally__state *st, const char *key) {
  uint64_t h = tally__hash_str(key);
  /* Nearly every key is new and the Bloom filter says so without touching
   * the maps, but tally__key_add will then write this key's home slot of
   * the current map: a cache miss in a table of megabytes. Start it now,
   * so it overlaps the rest of the decision. */
  const tally__map *cur = &st->key_gen[st->key_gen_cur];
  __builtin_prefetch(&cur->slots[h & cur->mask], 1, 3);
  key_probe p = {st, key};
  for (int k = 0; k < 2; k++) {
    int g = k == 0 ? st->key_gen_cur : !st->key_gen_cur;
    if (!bloom_maybe(st, g, h)) continue;
    uint32_t slot = tally__map_find(&st->key_gen[g], h, key_eq, &p);
    if (slot != TALLY__NONE) return slot;
  }
  return TALLY__NONE;
}

static void generation_rotate(tally__state *st) {
  int old = !st->key_gen_cur;
  tally__map *m = &st->key_gen[old];
  memset(m->slots, 0, (m->mask + 1) * sizeof *m->slots);
  m->count = 0;
  memset(st->key_bloom[old], 0, ((size_t)st->key_bloom_mask + 1) / 8);
  st->key_gen_cur = (uint8_t)old;
  st->key_gen_count = 0;
}

/* The ring would overwrite a key still in flight: only if in-flight ops
 * outgrew the ring (a writer stuck with keys_max keys behind it). */
bool tally__keys_room(const tally__state *st) {
  return st->keys[st->key_next % st->cfg->keys_max].state != TALLY__KEY_INFLIGHT;
}

uint32_t tally__key_add(tally__state *st, const char *key, uint64_t fingerprint,
                        uint64_t transfer_id, uint8_t key_state, int64_t now_ms) {
  size_t len = strlen(key);
  assert(len <= TALLY__KEY_BYTES_MAX);
  if (st->key_gen_count >= gen_entries(st)) generation_rotate(st);
  uint32_t slot = st->key_next++ % st->cfg->keys_max;
  tally__key *k = &st->keys[slot];
  /* The ring overwrites the oldest key; one still in flight is never that
   * old, because keys_max is far above the operations in flight. */
  assert(k->state != TALLY__KEY_INFLIGHT);
  k->hash = tally__hash_str(key);
  k->fingerprint = fingerprint;
  k->transfer_id = transfer_id;
  k->created_ms = now_ms;
  k->state = key_state;
  k->is_long = len > TALLY__KEY_INLINE_BYTES;
  if (k->is_long) {
    memcpy(st->keys_long + (size_t)slot * KEY_LONG_STRIDE, key, len + 1);
    k->key[0] = 0;
  } else {
    memcpy(k->key, key, len + 1);
  }
  int rc = tally__map_put(&st->key_gen[st->key_gen_cur], k->hash, slot);
  assert(rc == TALLY_OK);
  (void)rc;
  bloom_add(st, st->key_gen_cur, k->hash);
  st->key_gen_count++;
  return slot;
}

/* Forgets a key whose transfer failed, so the same command may be retried.
 * Its index entry stays until its generation is cleared, but no longer
 * matches. */
void tally__key_forget(tally__state *st, uint32_t slot) {
  tally__key *k = &st->keys[slot];
  k->state = TALLY__KEY_FREE;
  k->is_long = 0;
  k->key[0] = 0;
}
