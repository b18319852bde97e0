/* ring.h — bounded lock-free queue of fixed-size frames (Vyukov's MPMC).
 *
 * Contract: capacity is a power of two fixed at init; push copies a frame of
 * at most TALLY_FRAME_BYTES_MAX bytes and fails with TALLY_EBUSY when full,
 * never blocks, never allocates. Any number of threads may push and pop.
 * The slots are allocated once by tally__ring_init and freed by
 * tally__ring_free. */
#ifndef TALLY_RING_H
#define TALLY_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tally.h"

typedef struct tally__ring_slot {
  atomic_size_t seq;
  uint32_t len;
  uint8_t data[TALLY_FRAME_BYTES_MAX];
} tally__ring_slot;

typedef struct tally__ring {
  tally__ring_slot *slots;
  size_t mask;
  _Alignas(64) atomic_size_t head; /* next to pop */
  _Alignas(64) atomic_size_t tail; /* next to push */
} tally__ring;

/* capacity_min is rounded up to a power of two. */
int tally__ring_init(tally__ring *ring, size_t capacity_min);
void tally__ring_free(tally__ring *ring);
int tally__ring_push(tally__ring *ring, const uint8_t *frame, size_t len);
/* Copies the oldest frame into out (TALLY_FRAME_BYTES_MAX bytes); returns its
 * length, or 0 when empty. */
size_t tally__ring_pop(tally__ring *ring, uint8_t *out);
/* Approximate count, for stats and back-pressure decisions. */
size_t tally__ring_count(const tally__ring *ring);
size_t tally__ring_capacity(const tally__ring *ring);

#endif
