/* presence.c — merging the presence reports of several chat servers of one
 * network. Each server reports only its local users (PRESENCE local = 1);
 * one user may be seen by several (two clients, or a report repeated after
 * a reconnect). A member is (network, account, room) with the number of
 * slots that report it; the engine is told JOIN when that number goes 0 -> 1
 * and PART when it goes 1 -> 0, so a netsplit's mass quits on one server do
 * not look like users leaving while another server still has them. A slot's
 * reports are pairs (slot, member); a report repeated by the same slot
 * changes nothing. Both tables are fixed pools of `max` entries, chained in
 * hash buckets: nothing is allocated after start; a full table refuses. */
#include "tallyd.h"

#include <stdlib.h>
#include <string.h>

enum { NIL = UINT32_MAX };

typedef struct member {
  char network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
  char account[TD_KEPT_NAME_BYTES_MAX + 1];
  char room[TD_KEPT_NAME_BYTES_MAX + 1];
  uint32_t refs; /* slots reporting it; 0: free */
  uint32_t next; /* bucket chain, or free list */
} member;

typedef struct pair {
  uint32_t slot, member; /* slot 0: free */
  uint32_t next;
} pair;

struct td_presence {
  uint32_t max, buckets, count;
  member *members;
  pair *pairs;
  uint32_t *member_heads, *pair_heads;
  uint32_t member_free, pair_free;
};

static uint32_t fnv(const char *s, uint32_t h) {
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return (h ^ 0xff) * 16777619u; /* separator: "ab","c" differs from "a","bc" */
}

static uint32_t member_hash(const td_presence *p, const char *n, const char *a, const char *r) {
  return fnv(r, fnv(a, fnv(n, 2166136261u))) % p->buckets;
}

static uint32_t pair_hash(const td_presence *p, uint32_t slot, uint32_t m) {
  return (uint32_t)(((uint64_t)slot * 2654435761u) ^ ((uint64_t)m * 40503u)) % p->buckets;
}

td_presence *td_presence_new(uint32_t max) {
  td_presence *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->max = max;
  p->buckets = max;
  p->members = calloc(max, sizeof *p->members);
  p->pairs = calloc(max, sizeof *p->pairs);
  p->member_heads = malloc(max * sizeof *p->member_heads);
  p->pair_heads = malloc(max * sizeof *p->pair_heads);
  if (!p->members || !p->pairs || !p->member_heads || !p->pair_heads) {
    td_presence_free(p);
    return NULL;
  }
  for (uint32_t i = 0; i < max; i++) {
    p->member_heads[i] = p->pair_heads[i] = NIL;
    p->members[i].next = i + 1 < max ? i + 1 : NIL;
    p->pairs[i].next = i + 1 < max ? i + 1 : NIL;
  }
  p->member_free = p->pair_free = 0;
  return p;
}

void td_presence_free(td_presence *p) {
  if (!p) return;
  free(p->members);
  free(p->pairs);
  free(p->member_heads);
  free(p->pair_heads);
  free(p);
}

uint32_t td_presence_count(const td_presence *p) { return p->count; }

static uint32_t member_find(const td_presence *p, const char *n, const char *a, const char *r) {
  for (uint32_t i = p->member_heads[member_hash(p, n, a, r)]; i != NIL; i = p->members[i].next) {
    const member *m = &p->members[i];
    if (!strcmp(m->network, n) && !strcmp(m->account, a) && !strcmp(m->room, r)) return i;
  }
  return NIL;
}

static uint32_t *pair_link(td_presence *p, uint32_t slot, uint32_t m) {
  uint32_t *link = &p->pair_heads[pair_hash(p, slot, m)];
  while (*link != NIL && !(p->pairs[*link].slot == slot && p->pairs[*link].member == m)) link = &p->pairs[*link].next;
  return link;
}

static void member_release(td_presence *p, uint32_t i, td_presence_fn fn, void *ud) {
  member *m = &p->members[i];
  if (--m->refs > 0) return;
  fn(ud, m->network, m->account, m->room, 0);
  uint32_t *link = &p->member_heads[member_hash(p, m->network, m->account, m->room)];
  while (*link != i) link = &p->members[*link].next;
  *link = m->next;
  m->next = p->member_free;
  p->member_free = i;
}

static void pair_remove(td_presence *p, uint32_t *link) {
  uint32_t i = *link;
  *link = p->pairs[i].next;
  p->pairs[i].slot = 0;
  p->pairs[i].next = p->pair_free;
  p->pair_free = i;
  p->count--;
}

int td_presence_report(td_presence *p, uint32_t slot, const char *network, const char *account, const char *room,
                       int present, td_presence_fn fn, void *ud) {
  if (strlen(network) > TALLY_FRAME_NETWORK_BYTES_MAX || strlen(account) > TD_KEPT_NAME_BYTES_MAX ||
      strlen(room) > TD_KEPT_NAME_BYTES_MAX)
    return TALLY_EINVAL;
  uint32_t mi = member_find(p, network, account, room);
  if (!present) {
    if (mi == NIL) return TALLY_OK;
    uint32_t *link = pair_link(p, slot, mi);
    if (*link == NIL) return TALLY_OK; /* this slot never reported it */
    pair_remove(p, link);
    member_release(p, mi, fn, ud);
    return TALLY_OK;
  }
  if (mi != NIL && *pair_link(p, slot, mi) != NIL) return TALLY_OK; /* said before */
  if (p->pair_free == NIL || (mi == NIL && p->member_free == NIL)) return TALLY_ETOO_MANY;
  if (mi == NIL) {
    mi = p->member_free;
    member *m = &p->members[mi];
    p->member_free = m->next;
    snprintf(m->network, sizeof m->network, "%s", network);
    snprintf(m->account, sizeof m->account, "%s", account);
    snprintf(m->room, sizeof m->room, "%s", room);
    m->refs = 0;
    uint32_t h = member_hash(p, network, account, room);
    m->next = p->member_heads[h];
    p->member_heads[h] = mi;
  }
  uint32_t pi = p->pair_free;
  p->pair_free = p->pairs[pi].next;
  p->pairs[pi].slot = slot;
  p->pairs[pi].member = mi;
  uint32_t h = pair_hash(p, slot, mi);
  p->pairs[pi].next = p->pair_heads[h];
  p->pair_heads[h] = pi;
  p->count++;
  if (p->members[mi].refs++ == 0) fn(ud, network, account, room, 1);
  return TALLY_OK;
}

void td_presence_withdraw(td_presence *p, uint32_t slot, td_presence_fn fn, void *ud) {
  for (uint32_t b = 0; b < p->buckets; b++) {
    uint32_t *link = &p->pair_heads[b];
    while (*link != NIL) {
      if (p->pairs[*link].slot != slot) {
        link = &p->pairs[*link].next;
        continue;
      }
      uint32_t mi = p->pairs[*link].member;
      pair_remove(p, link);
      member_release(p, mi, fn, ud);
    }
  }
}

void td_presence_replay(td_presence *p, const char *network, const char *room, td_presence_fn fn, void *ud) {
  for (uint32_t i = 0; i < p->max; i++) {
    const member *m = &p->members[i];
    if (m->refs && !strcmp(m->network, network) && !strcmp(m->room, room)) fn(ud, m->network, m->account, m->room, 1);
  }
}
