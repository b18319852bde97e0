/* ring.c — a multi-producer, single-consumer byte ring of length-prefixed
 * records. Frames are copied in and out, so neither side holds a pointer
 * into the other's memory; the host threads push events and the engine
 * thread pushes effects, and nobody waits on a lock.
 *
 * A record is an 8-byte header word and the frame, padded to 8. The header
 * is 0 while the record is being written, (len << 8) | READY once it is, or
 * SKIP when the rest of the buffer is unused (the next record starts at 0).
 * A producer reserves its bytes by a CAS on tail (byte positions grow for
 * ever; the offset is position % bytes_max), copies the frame, then
 * publishes the header with a release store. The consumer reads the header
 * at head with an acquire load, copies the frame out, zeroes the record's
 * bytes (any 8-aligned word of it may be a later record's header) and only
 * then moves head on with a release store, which producers read (acquire)
 * before reusing those bytes. Sizes were a fixed TALLY_FRAME_BYTES_MAX
 * slot per frame before (1.6), which made bigger frames multiply the
 * queues' memory. */
#include "ring.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

enum { RING_READY = 1, RING_SKIP = 2 };

static uint64_t *header_at(const tally__ring *ring, size_t off) {
  return (uint64_t *)(void *)(ring->buf + off);
}

size_t tally__ring_record_bytes(size_t len) { return TALLY__RING_HEADER_BYTES + ((len + 7) & ~(size_t)7); }

int tally__ring_init(tally__ring *ring, size_t count_max, size_t bytes_max) {
  assert(ring && count_max >= 1);
  bytes_max = (bytes_max + 7) & ~(size_t)7;
  if (bytes_max < TALLY__RING_BYTES_MIN) bytes_max = TALLY__RING_BYTES_MIN;
  ring->buf = aligned_alloc(64, (bytes_max + 63) & ~(size_t)63);
  if (!ring->buf) return TALLY_ENOMEM;
  memset(ring->buf, 0, bytes_max);
  ring->bytes_max = bytes_max;
  ring->count_max = count_max;
  atomic_init(&ring->head, 0);
  atomic_init(&ring->tail, 0);
  atomic_init(&ring->count, 0);
  return TALLY_OK;
}

void tally__ring_free(tally__ring *ring) {
  free(ring->buf);
  ring->buf = NULL;
}

int tally__ring_push(tally__ring *ring, const uint8_t *frame, size_t len) {
  if (len == 0) return TALLY_EINVAL;
  if (len > TALLY_FRAME_BYTES_MAX) return TALLY_ETOOBIG;
  /* The count first: a push that then finds no bytes gives it back. */
  if (atomic_fetch_add_explicit(&ring->count, 1, memory_order_relaxed) >= ring->count_max) {
    atomic_fetch_sub_explicit(&ring->count, 1, memory_order_relaxed);
    return TALLY_EBUSY;
  }
  const size_t rec = tally__ring_record_bytes(len), cap = ring->bytes_max;
  size_t pos = atomic_load_explicit(&ring->tail, memory_order_relaxed), off, skip;
  for (;;) {
    size_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    off = pos % cap;
    skip = off + rec > cap ? cap - off : 0;
    if (pos + skip + rec - head > cap) {
      atomic_fetch_sub_explicit(&ring->count, 1, memory_order_relaxed);
      return TALLY_EBUSY;
    }
    if (atomic_compare_exchange_weak_explicit(&ring->tail, &pos, pos + skip + rec, memory_order_acq_rel,
                                              memory_order_relaxed))
      break;
  }
  if (skip) {
    __atomic_store_n(header_at(ring, off), (uint64_t)RING_SKIP, __ATOMIC_RELEASE);
    off = 0;
  }
  memcpy(ring->buf + off + TALLY__RING_HEADER_BYTES, frame, len);
  __atomic_store_n(header_at(ring, off), ((uint64_t)len << 8) | RING_READY, __ATOMIC_RELEASE);
  return TALLY_OK;
}

size_t tally__ring_pop(tally__ring *ring, uint8_t *out) {
  const size_t cap = ring->bytes_max;
  size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed); /* only we move it */
  size_t off = head % cap;
  uint64_t h = __atomic_load_n(header_at(ring, off), __ATOMIC_ACQUIRE);
  if (h == RING_SKIP) {
    *header_at(ring, off) = 0;
    head += cap - off;
    atomic_store_explicit(&ring->head, head, memory_order_release);
    off = 0;
    h = __atomic_load_n(header_at(ring, 0), __ATOMIC_ACQUIRE);
  }
  if ((h & 0xff) != RING_READY) return 0; /* empty, or its pusher is still copying */
  size_t len = (size_t)(h >> 8);
  assert(len > 0 && len <= TALLY_FRAME_BYTES_MAX);
  memcpy(out, ring->buf + off + TALLY__RING_HEADER_BYTES, len);
  size_t rec = tally__ring_record_bytes(len);
  memset(ring->buf + off, 0, rec);
  atomic_store_explicit(&ring->head, head + rec, memory_order_release);
  atomic_fetch_sub_explicit(&ring->count, 1, memory_order_release);
  return len;
}

size_t tally__ring_count(const tally__ring *ring) {
  return atomic_load_explicit(&ring->count, memory_order_relaxed);
}

size_t tally__ring_capacity(const tally__ring *ring) { return ring->count_max; }

size_t tally__ring_bytes_used(const tally__ring *ring) {
  size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
  size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
  return tail >= head ? tail - head : 0;
}

size_t tally__ring_bytes_capacity(const tally__ring *ring) { return ring->bytes_max; }
