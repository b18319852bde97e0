/* ring.h — bounded lock-free queue of variable-length frames, packed into
 * one byte buffer.
 *
 * Contract: the capacity is fixed at init in both records (count_max) and
 * bytes (bytes_max: the buffer, allocated once by tally__ring_init and freed
 * by tally__ring_free); the memory it holds never grows, whatever the
 * frames' sizes. Each frame takes TALLY__RING_HEADER_BYTES plus its length
 * rounded up to 8, and a frame that would cross the buffer's end starts
 * again at its beginning (the bytes skipped count until it is popped).
 * push copies a frame of 1 to TALLY_FRAME_BYTES_MAX bytes and fails with
 * TALLY_EBUSY when either capacity is full; it never blocks and never
 * allocates. Any number of threads may push at once (a CAS reserves the
 * bytes); one thread at a time pops (the engine thread for the events, the
 * draining host thread, under its lock, for the effects). A pop may report
 * empty while an earlier push is still copying; that pusher then wakes the
 * consumer (tally_engine_submit sends uv_async after every push). */
#ifndef TALLY_RING_H
#define TALLY_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tally.h"

enum {
  TALLY__RING_HEADER_BYTES = 8, /* a record's length word, 8-aligned */
  /* A record of the largest frame; bytes_max is at least two of them, so
   * the largest frame always fits an empty ring, wherever it wraps. */
  TALLY__RING_RECORD_MAX = TALLY__RING_HEADER_BYTES + ((TALLY_FRAME_BYTES_MAX + 7) & ~7),
  TALLY__RING_BYTES_MIN = 2 * TALLY__RING_RECORD_MAX,
};

typedef struct tally__ring {
  uint8_t *buf;        /* bytes_max bytes, 8-aligned */
  size_t bytes_max;    /* a multiple of 8 */
  size_t count_max;
  _Alignas(64) atomic_size_t head;  /* byte position of the next record to pop */
  _Alignas(64) atomic_size_t tail;  /* byte position after the last reserved record */
  atomic_size_t count;              /* records pushed or being pushed, not yet popped */
} tally__ring;

/* The bytes one frame of len bytes takes in a ring. */
size_t tally__ring_record_bytes(size_t len);
/* count_max >= 1; bytes_max is rounded up to a multiple of 8 and to at
 * least TALLY__RING_BYTES_MIN. TALLY_ENOMEM. */
int tally__ring_init(tally__ring *ring, size_t count_max, size_t bytes_max);
void tally__ring_free(tally__ring *ring);
/* TALLY_OK, TALLY_EBUSY (full in count or bytes), TALLY_ETOOBIG (over
 * TALLY_FRAME_BYTES_MAX), TALLY_EINVAL (len 0). */
int tally__ring_push(tally__ring *ring, const uint8_t *frame, size_t len);
/* Copies the oldest frame into out (TALLY_FRAME_BYTES_MAX bytes); returns its
 * length, or 0 when empty. One consumer at a time. */
size_t tally__ring_pop(tally__ring *ring, uint8_t *out);
/* Approximate counts, for stats and back-pressure decisions. */
size_t tally__ring_count(const tally__ring *ring);
size_t tally__ring_capacity(const tally__ring *ring); /* count_max */
size_t tally__ring_bytes_used(const tally__ring *ring);
size_t tally__ring_bytes_capacity(const tally__ring *ring);

#endif
