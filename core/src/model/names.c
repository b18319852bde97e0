/* names.c — interned names in one byte arena (names.h). A record is a
 * header (its handle, its length) and the name's bytes with a NUL, padded to
 * 8. A name whose references are all given back keeps its record until
 * compaction, which forgets it and slides the other records down, updating
 * their offsets: handles never move. */
#include "names.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"

static size_t record_bytes(size_t len) {
  return TALLY__NAMES_RECORD_HEADER + ((len + 1 + 7) & ~(size_t)7);
}

static uint64_t name_hash(uint16_t space, const char *s, size_t len) {
  uint64_t h = tally__hash_u64(UINT64_C(0x6e616d6573) ^ space);
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * UINT64_C(0x100000001b3);
  h = tally__hash_u64(h);
  return h ? h : 1; /* 0 is the map's empty key */
}

int tally__names_init(tally__names *t, size_t bytes_max, uint32_t count_max) {
  memset(t, 0, sizeof *t);
  t->bytes_max = (bytes_max + 7) & ~(size_t)7;
  t->count_max = count_max + 1; /* slot 0 is the empty name */
  t->arena = malloc(t->bytes_max ? t->bytes_max : 8);
  t->names = calloc(t->count_max, sizeof *t->names);
  t->count_top = 1;
  if (!t->arena || !t->names || tally__map_init(&t->index, count_max)) {
    tally__names_free(t);
    return TALLY_ENOMEM;
  }
  return TALLY_OK;
}

void tally__names_free(tally__names *t) {
  free(t->arena);
  free(t->names);
  if (t->index.slots) tally__map_free(&t->index);
  memset(t, 0, sizeof *t);
}

typedef struct probe {
  const tally__names *t;
  uint16_t space;
  const char *s;
  size_t len;
} probe;

static bool name_eq(const void *ud, uint32_t h) {
  const probe *p = ud;
  const tally__name *n = &p->t->names[h];
  return n->space == p->space && n->len == p->len &&
         memcmp(p->t->arena + n->off + TALLY__NAMES_RECORD_HEADER, p->s, p->len) == 0;
}

uint32_t tally__names_find(const tally__names *t, uint16_t space, const char *s, size_t len) {
  if (len == 0) return 0;
  probe p = {t, space, s, len};
  uint32_t h = tally__map_find(&t->index, name_hash(space, s, len), name_eq, &p);
  return h == TALLY__MAP_NONE ? 0 : h;
}

int tally__names_intern(tally__names *t, uint16_t space, const char *s, size_t len, uint32_t *handle) {
  if (len == 0) {
    *handle = 0;
    return TALLY_OK;
  }
  uint64_t hash = name_hash(space, s, len);
  probe p = {t, space, s, len};
  uint32_t h = tally__map_find(&t->index, hash, name_eq, &p);
  if (h != TALLY__MAP_NONE) {
    tally__names_ref(t, h);
    *handle = h;
    return TALLY_OK;
  }
  size_t rec = record_bytes(len);
  if (len > UINT32_MAX || rec > t->bytes_max - t->bytes_top) return TALLY_ENAMES_FULL;
  if (t->free_head) h = t->free_head;
  else if (t->count_top < t->count_max) h = t->count_top;
  else return TALLY_ENAMES_FULL;
  if (tally__map_put(&t->index, hash, h)) return TALLY_ENAMES_FULL;
  if (h == t->free_head) t->free_head = t->names[h].off;
  else t->count_top++;
  tally__name *n = &t->names[h];
  n->hash = hash;
  n->off = (uint32_t)t->bytes_top;
  n->refs = 1;
  n->len = (uint32_t)len;
  n->space = space;
  uint8_t *r = t->arena + t->bytes_top;
  uint32_t hdr[2] = {h, (uint32_t)len};
  memcpy(r, hdr, sizeof hdr);
  memcpy(r + TALLY__NAMES_RECORD_HEADER, s, len);
  memset(r + TALLY__NAMES_RECORD_HEADER + len, 0, rec - TALLY__NAMES_RECORD_HEADER - len);
  t->bytes_top += rec;
  t->live++;
  *handle = h;
  return TALLY_OK;
}

int tally__names_intern_kept(tally__names *t, uint16_t space, const char *s, size_t len, uint32_t *handle) {
  uint32_t h = tally__names_find(t, space, s, len);
  if (!h && len > 0 && tally__names_bytes_live(t) + record_bytes(len) > t->bytes_max - t->bytes_max / 8)
    return TALLY_ENAMES_FULL;
  return tally__names_intern(t, space, s, len, handle);
}

void tally__names_ref(tally__names *t, uint32_t h) {
  if (!h) return;
  tally__name *n = &t->names[h];
  assert(h < t->count_top && n->len > 0 && n->refs < UINT32_MAX);
  if (n->refs++ == 0) {
    t->zero_bytes -= record_bytes(n->len);
    t->zero_count--;
  }
}

void tally__names_unref(tally__names *t, uint32_t h) {
  if (!h) return;
  tally__name *n = &t->names[h];
  assert(h < t->count_top && n->len > 0 && n->refs > 0);
  if (--n->refs) return;
  t->zero_bytes += record_bytes(n->len);
  t->zero_count++;
}

const char *tally__names_str(const tally__names *t, uint32_t h) {
  if (!h) return "";
  assert(h < t->count_top && t->names[h].len > 0);
  return (const char *)t->arena + t->names[h].off + TALLY__NAMES_RECORD_HEADER;
}

uint32_t tally__names_len(const tally__names *t, uint32_t h) { return h ? t->names[h].len : 0; }

void tally__names_compact(tally__names *t) {
  size_t r = 0, w = 0;
  while (r < t->bytes_top) {
    uint32_t hdr[2];
    memcpy(hdr, t->arena + r, sizeof hdr);
    size_t rec = record_bytes(hdr[1]);
    tally__name *n = &t->names[hdr[0]];
    assert(hdr[0] && n->off == r && n->len == hdr[1]);
    if (n->refs) {
      if (w != r) memmove(t->arena + w, t->arena + r, rec);
      n->off = (uint32_t)w;
      w += rec;
    } else { /* forgotten: its slot goes to the free list */
      bool found = tally__map_del(&t->index, n->hash, hdr[0]);
      assert(found);
      (void)found;
      n->len = 0;
      n->off = t->free_head;
      t->free_head = hdr[0];
      t->live--;
    }
    r += rec;
  }
  t->bytes_top = w;
  t->zero_bytes = 0;
  t->zero_count = 0;
}

bool tally__names_tidy(tally__names *t) {
  if (!t->zero_count) return false;
  bool many = t->zero_bytes >= t->bytes_max / 16;
  bool bytes_low = t->bytes_max - t->bytes_top < t->bytes_max / 8;
  bool slots_low = t->free_head == 0 && t->count_max - t->count_top < t->count_max / 8;
  if (!many && !bytes_low && !slots_low) return false;
  tally__names_compact(t);
  return true;
}

size_t tally__names_bytes_live(const tally__names *t) { return t->bytes_top - t->zero_bytes; }
