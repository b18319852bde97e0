/* ring.c — Dmitry Vyukov's bounded MPMC queue, with frames copied into the
 * slots so that neither side holds a pointer into the other's memory. The
 * host thread pushes events and the engine thread pushes effects; neither
 * ever waits on a lock. */
#include "ring.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int tally__ring_init(tally__ring *ring, size_t capacity_min) {
  assert(ring && capacity_min >= 2);
  size_t cap = 2;
  while (cap < capacity_min) cap <<= 1;
  ring->slots = calloc(cap, sizeof *ring->slots);
  if (!ring->slots) return TALLY_ENOMEM;
  for (size_t i = 0; i < cap; i++) atomic_init(&ring->slots[i].seq, i);
  ring->mask = cap - 1;
  atomic_init(&ring->head, 0);
  atomic_init(&ring->tail, 0);
  return TALLY_OK;
}

void tally__ring_free(tally__ring *ring) {
  free(ring->slots);
  ring->slots = NULL;
}

int tally__ring_push(tally__ring *ring, const uint8_t *frame, size_t len) {
  if (len > TALLY_FRAME_BYTES_MAX) return TALLY_ETOOBIG;
  size_t pos = atomic_load_explicit(&ring->tail, memory_order_relaxed);
  for (;;) {
    tally__ring_slot *slot = &ring->slots[pos & ring->mask];
    size_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
    intptr_t diff = (intptr_t)seq - (intptr_t)pos;
    if (diff == 0) {
      if (atomic_compare_exchange_weak_explicit(&ring->tail, &pos, pos + 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
        memcpy(slot->data, frame, len);
        slot->len = (uint32_t)len;
        atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
        return TALLY_OK;
      }
    } else if (diff < 0) {
      return TALLY_EBUSY;
    } else {
      pos = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    }
  }
}

size_t tally__ring_pop(tally__ring *ring, uint8_t *out) {
  size_t pos = atomic_load_explicit(&ring->head, memory_order_relaxed);
  for (;;) {
    tally__ring_slot *slot = &ring->slots[pos & ring->mask];
    size_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
    intptr_t diff = (intptr_t)seq - (intptr_t)(pos + 1);
    if (diff == 0) {
      if (atomic_compare_exchange_weak_explicit(&ring->head, &pos, pos + 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
        size_t len = slot->len;
        assert(len > 0 && len <= TALLY_FRAME_BYTES_MAX);
        memcpy(out, slot->data, len);
        atomic_store_explicit(&slot->seq, pos + ring->mask + 1, memory_order_release);
        return len;
      }
    } else if (diff < 0) {
      return 0;
    } else {
      pos = atomic_load_explicit(&ring->head, memory_order_relaxed);
    }
  }
}

size_t tally__ring_count(const tally__ring *ring) {
  size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
  size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
  return tail >= head ? tail - head : 0;
}

size_t tally__ring_capacity(const tally__ring *ring) { return ring->mask + 1; }
