/* test_ring.c — the byte-packed frame ring (core/src/base/ring.c): its
 * memory is its byte budget whatever the frames' sizes, it is busy when
 * full in bytes or in count, it keeps order and content across wraps, and
 * several producers with one consumer lose, duplicate or reorder nothing. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ring.h"

static void fill(uint8_t *buf, size_t len, uint32_t seed) {
  for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(seed * 31u + i * 7u);
}

static void check(const uint8_t *buf, size_t len, uint32_t seed) {
  for (size_t i = 0; i < len; i++) assert_int_equal(buf[i], (uint8_t)(seed * 31u + i * 7u));
}

/* Big frames fill the bytes long before the count: the ring holds what its
 * budget holds and no more. 1.5's rings gave every frame a
 * TALLY_FRAME_BYTES_MAX slot, so the same budget held a fixed count. */
static void test_bytes_bound(void **state) {
  (void)state;
  tally__ring r;
  const size_t budget = 4 * TALLY__RING_BYTES_MIN;
  assert_int_equal(tally__ring_init(&r, 1u << 20, budget), TALLY_OK);
  assert_int_equal(tally__ring_bytes_capacity(&r), budget);
  static uint8_t frame[TALLY_FRAME_BYTES_MAX], out[TALLY_FRAME_BYTES_MAX];
  const size_t len = 1000;
  fill(frame, len, 1);
  size_t n = 0;
  while (tally__ring_push(&r, frame, len) == TALLY_OK) {
    n++;
    assert_true(tally__ring_bytes_used(&r) <= budget);
  }
  assert_true(n * tally__ring_record_bytes(len) <= budget);
  assert_true((n + 1) * tally__ring_record_bytes(len) > budget);
  assert_int_equal(tally__ring_push(&r, frame, len), TALLY_EBUSY);
  assert_int_equal(tally__ring_count(&r), n);
  /* Small frames still fit where a big one does not. */
  size_t room = budget - tally__ring_bytes_used(&r);
  if (room >= tally__ring_record_bytes(1)) {
    assert_int_equal(tally__ring_push(&r, frame, 1), TALLY_OK);
    n++;
  }
  for (size_t i = 0; i < n; i++) assert_true(tally__ring_pop(&r, out) > 0);
  assert_int_equal(tally__ring_pop(&r, out), 0);
  assert_int_equal(tally__ring_bytes_used(&r), 0);
  /* The largest frame fits an empty ring of the smallest budget, wherever
   * the ring wraps. */
  tally__ring_free(&r);
  assert_int_equal(tally__ring_init(&r, 16, 1), TALLY_OK);
  assert_int_equal(tally__ring_bytes_capacity(&r), TALLY__RING_BYTES_MIN);
  fill(frame, sizeof frame, 9);
  for (size_t shift = 1; shift < 40; shift++) {
    assert_int_equal(tally__ring_push(&r, frame, shift * 40), TALLY_OK);
    assert_int_equal(tally__ring_pop(&r, out), shift * 40);
    assert_int_equal(tally__ring_push(&r, frame, sizeof frame), TALLY_OK);
    assert_int_equal(tally__ring_pop(&r, out), sizeof frame);
    check(out, sizeof frame, 9);
  }
  tally__ring_free(&r);
}

static void test_count_bound_and_refusals(void **state) {
  (void)state;
  tally__ring r;
  assert_int_equal(tally__ring_init(&r, 10, 1u << 20), TALLY_OK);
  uint8_t f[4] = {1, 2, 3, 4}, out[TALLY_FRAME_BYTES_MAX];
  for (int i = 0; i < 10; i++) assert_int_equal(tally__ring_push(&r, f, sizeof f), TALLY_OK);
  assert_int_equal(tally__ring_push(&r, f, sizeof f), TALLY_EBUSY);
  assert_int_equal(tally__ring_count(&r), 10);
  assert_int_equal(tally__ring_pop(&r, out), 4);
  assert_int_equal(tally__ring_push(&r, f, sizeof f), TALLY_OK);
  static uint8_t big[TALLY_FRAME_BYTES_MAX + 1];
  assert_int_equal(tally__ring_push(&r, big, sizeof big), TALLY_ETOOBIG);
  assert_int_equal(tally__ring_push(&r, f, 0), TALLY_EINVAL);
  tally__ring_free(&r);
}

/* Random sizes through many wraps, one thread: first in, first out, whole. */
static void test_order_across_wraps(void **state) {
  (void)state;
  tally__ring r;
  assert_int_equal(tally__ring_init(&r, 64, 3 * TALLY__RING_BYTES_MIN + 8), TALLY_OK);
  static uint8_t frame[TALLY_FRAME_BYTES_MAX], out[TALLY_FRAME_BYTES_MAX];
  uint32_t pushed = 0, popped = 0;
  size_t lens[64 * 2];
  srand(7);
  for (int step = 0; step < 200000; step++) {
    if (rand() % 2) {
      size_t len = 1 + (size_t)rand() % (rand() % 8 == 0 ? TALLY_FRAME_BYTES_MAX : 300);
      fill(frame, len, pushed);
      int rc = tally__ring_push(&r, frame, len);
      if (rc == TALLY_OK) lens[pushed++ % 128] = len;
      else assert_int_equal(rc, TALLY_EBUSY);
    } else {
      size_t n = tally__ring_pop(&r, out);
      if (n == 0) {
        assert_int_equal(popped, pushed);
        continue;
      }
      assert_int_equal(n, lens[popped % 128]);
      check(out, n, popped);
      popped++;
    }
    assert_true(tally__ring_bytes_used(&r) <= tally__ring_bytes_capacity(&r));
    assert_true(pushed - popped <= 64);
  }
  assert_true(popped > 10000);
  tally__ring_free(&r);
}

enum { PRODUCERS = 4, PER_PRODUCER = 20000 };
static tally__ring mp_ring;

static void *producer(void *arg) {
  uint32_t id = (uint32_t)(uintptr_t)arg;
  uint8_t frame[300];
  for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
    size_t len = 8 + (seq * 37u + id) % 280u;
    memcpy(frame, &id, 4);
    memcpy(frame + 4, &seq, 4);
    fill(frame + 8, len - 8, seq ^ id);
    while (tally__ring_push(&mp_ring, frame, len) == TALLY_EBUSY) sched_yield();
  }
  return NULL;
}

/* Several pushers at once (as host threads submit), one popper. */
static void test_producers_one_consumer(void **state) {
  (void)state;
  assert_int_equal(tally__ring_init(&mp_ring, 256, TALLY__RING_BYTES_MIN), TALLY_OK);
  pthread_t t[PRODUCERS];
  for (uintptr_t i = 0; i < PRODUCERS; i++) assert_int_equal(pthread_create(&t[i], NULL, producer, (void *)i), 0);
  uint32_t next[PRODUCERS] = {0};
  uint8_t out[TALLY_FRAME_BYTES_MAX];
  for (uint32_t got = 0; got < PRODUCERS * PER_PRODUCER;) {
    size_t n = tally__ring_pop(&mp_ring, out);
    if (n == 0) {
      sched_yield();
      continue;
    }
    uint32_t id, seq;
    memcpy(&id, out, 4);
    memcpy(&seq, out + 4, 4);
    assert_true(id < PRODUCERS);
    assert_int_equal(seq, next[id]);
    assert_int_equal(n, 8 + (seq * 37u + id) % 280u);
    check(out + 8, n - 8, seq ^ id);
    next[id]++;
    got++;
    assert_true(tally__ring_bytes_used(&mp_ring) <= tally__ring_bytes_capacity(&mp_ring));
  }
  for (int i = 0; i < PRODUCERS; i++) pthread_join(t[i], NULL);
  assert_int_equal(tally__ring_pop(&mp_ring, out), 0);
  tally__ring_free(&mp_ring);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bytes_bound),
      cmocka_unit_test(test_count_bound_and_refusals),
      cmocka_unit_test(test_order_across_wraps),
      cmocka_unit_test(test_producers_one_consumer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
