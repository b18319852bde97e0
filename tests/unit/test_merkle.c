/* test_merkle.c — RFC 6962 Merkle trees: roots and audit paths.
 *
 * Reference values are computed here independently of the library: the
 * published certificate-transparency vectors for roots, and a plain
 * recursive MTH/PATH written straight from the RFC. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merkle.h"
#include "ref_sha.h"

enum { TEST_LEAVES_MAX = 8192, TEST_PATH_N_MAX = 33 };

/* ---- helpers -------------------------------------------------------------- */

static void node(const uint8_t l[32], const uint8_t r[32], uint8_t out[32]) {
  uint8_t buf[64];
  memcpy(buf, l, 32);
  memcpy(buf + 32, r, 32);
  sha("\x01", 1, buf, 64, out);
}

static size_t split(size_t n) {
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/* RFC 6962 section 2.1, recursively, exactly as written. */
static void ref_mth(const uint8_t (*d)[32], size_t n, uint8_t out[32]) {
  if (n == 1) {
    memcpy(out, d[0], 32);
    return;
  }
  size_t k = split(n);
  uint8_t l[32], r[32];
  ref_mth(d, k, l);
  ref_mth(d + k, n - k, r);
  node(l, r, out);
}

/* RFC 6962 section 2.1.1. */
static size_t ref_path(const uint8_t (*d)[32], size_t n, size_t m, uint8_t (*out)[32]) {
  if (n == 1) return 0;
  size_t k = split(n), len;
  if (m < k) {
    len = ref_path(d, k, m, out);
    ref_mth(d + k, n - k, out[len]);
  } else {
    len = ref_path(d + k, n - k, m - k, out);
    ref_mth(d, k, out[len]);
  }
  return len + 1;
}

static void hex_to(const char *hex, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static void fill_leaves(uint8_t (*leaves)[32], size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    uint32_t x = seed + (uint32_t)i;
    leaf_of(&x, sizeof x, leaves[i]);
  }
}

/* ---- Merkle --------------------------------------------------------------- */

/* certificate-transparency merkle_tree_test: roots of the first n inputs. */
static void test_merkle_ct_vectors(void **state) {
  (void)state;
  static const char *const data[8] = {
      "", "\x00", "\x10", "\x20\x21", "\x30\x31", "\x40\x41\x42\x43",
      "\x50\x51\x52\x53\x54\x55\x56\x57",
      "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
  static const size_t lens[8] = {0, 1, 1, 2, 2, 4, 8, 16};
  static const char *const roots[8] = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  uint8_t leaves[8][32], scratch[8][32], root[32], want[32];
  for (size_t i = 0; i < 8; i++) leaf_of(data[i], lens[i], leaves[i]);
  for (size_t n = 1; n <= 8; n++) {
    hex_to(roots[n - 1], want, 32);
    tally__merkle_root((const uint8_t (*)[32])leaves, n, scratch, root);
    assert_memory_equal(root, want, 32);
  }
}

/* The same shapes written out by hand for n = 1, 2, 3, 5 and 8. */
static void test_merkle_hand_built(void **state) {
  (void)state;
  uint8_t l[8][32], s[8][32], root[32], want[32], ab[32], cd[32], ef[32],
      gh[32], abcd[32], efgh[32], abc[32];
  fill_leaves(l, 8, 1000);
  tally__merkle_root((const uint8_t (*)[32])l, 1, s, root);
  assert_memory_equal(root, l[0], 32);
  node(l[0], l[1], ab);
  tally__merkle_root((const uint8_t (*)[32])l, 2, s, root);
  assert_memory_equal(root, ab, 32);
  node(ab, l[2], abc); /* not H(H(a,b), H(c,c)): no duplication */
  tally__merkle_root((const uint8_t (*)[32])l, 3, s, root);
  assert_memory_equal(root, abc, 32);
  node(l[2], l[3], cd);
  node(ab, cd, abcd);
  node(abcd, l[4], want);
  tally__merkle_root((const uint8_t (*)[32])l, 5, s, root);
  assert_memory_equal(root, want, 32);
  node(l[4], l[5], ef);
  node(l[6], l[7], gh);
  node(ef, gh, efgh);
  node(abcd, efgh, want);
  tally__merkle_root((const uint8_t (*)[32])l, 8, s, root);
  assert_memory_equal(root, want, 32);
}

static void test_merkle_root_matches_reference(void **state) {
  (void)state;
  uint8_t (*l)[32] = malloc(TEST_LEAVES_MAX * 32);
  uint8_t (*s)[32] = malloc(TEST_LEAVES_MAX * 32);
  assert_non_null(l);
  assert_non_null(s);
  fill_leaves(l, TEST_LEAVES_MAX, 7);
  static const size_t sizes[] = {1,  2,  3,  4,   5,   6,   7,   8,    9,
                                 15, 16, 17, 31,  33,  63,  100, 1000, 4095,
                                 4097, 8191, TEST_LEAVES_MAX};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    uint8_t got[32], want[32];
    tally__merkle_root((const uint8_t (*)[32])l, sizes[i], s, got);
    ref_mth((const uint8_t (*)[32])l, sizes[i], want);
    assert_memory_equal(got, want, 32);
  }
  free(l);
  free(s);
}

static void expect_bad(const uint8_t leaf[32], size_t index, size_t n,
                       const uint8_t (*path)[32], size_t len, const uint8_t root[32]) {
  assert_int_equal(tally__merkle_verify(leaf, index, n, path, len, root),
                   TALLY_EBADSIG);
}

static void check_tampering(const uint8_t (*l)[32], size_t n, size_t i,
                            uint8_t (*path)[32], size_t len, const uint8_t root[32]) {
  uint8_t bad[32];
  memcpy(bad, l[i], 32);
  bad[31] ^= 1;
  expect_bad(bad, i, n, (const uint8_t (*)[32])path, len, root);
  memcpy(bad, root, 32);
  bad[0] ^= 0x80;
  expect_bad(l[i], i, n, (const uint8_t (*)[32])path, len, bad);
  for (size_t j = 0; j < len; j++) {
    path[j][j % 32] ^= 4;
    expect_bad(l[i], i, n, (const uint8_t (*)[32])path, len, root);
    path[j][j % 32] ^= 4;
  }
  for (size_t j = 0; j < n; j++) {
    if (j != i) expect_bad(l[i], j, n, (const uint8_t (*)[32])path, len, root);
  }
  expect_bad(l[i], i, 0, (const uint8_t (*)[32])path, len, root);
  expect_bad(l[i], n + i, n, (const uint8_t (*)[32])path, len, root);
  if (len > 0) expect_bad(l[i], i, n, (const uint8_t (*)[32])path, len - 1, root);
  memcpy(path[len], root, 32); /* one element too many */
  expect_bad(l[i], i, n, (const uint8_t (*)[32])path, len + 1, root);
}

static void test_merkle_paths_every_index(void **state) {
  (void)state;
  uint8_t l[TEST_PATH_N_MAX][32], s[TEST_PATH_N_MAX][32], root[32];
  uint8_t path[TALLY_MERKLE_DEPTH_MAX + 1][32], want[TALLY_MERKLE_DEPTH_MAX][32];
  fill_leaves(l, TEST_PATH_N_MAX, 99);
  for (size_t n = 1; n <= TEST_PATH_N_MAX; n++) {
    tally__merkle_root((const uint8_t (*)[32])l, n, s, root);
    for (size_t i = 0; i < n; i++) {
      size_t len = 99;
      assert_int_equal(tally__merkle_path((const uint8_t (*)[32])l, n, i, path,
                                          TALLY_MERKLE_DEPTH_MAX, &len),
                       TALLY_OK);
      size_t want_len = ref_path((const uint8_t (*)[32])l, n, i, want);
      assert_int_equal(len, want_len);
      if (len) assert_memory_equal(path, want, len * 32);
      assert_int_equal(tally__merkle_verify(l[i], i, n, (const uint8_t (*)[32])path,
                                            len, root),
                       TALLY_OK);
      check_tampering((const uint8_t (*)[32])l, n, i, path, len, root);
    }
  }
}

static void test_merkle_path_limits(void **state) {
  (void)state;
  uint8_t l[8][32], path[8][32], root[32] = {0};
  size_t len = 0;
  fill_leaves(l, 8, 5);
  assert_int_equal(tally__merkle_path((const uint8_t (*)[32])l, 8, 8, path, 8, &len),
                   TALLY_EINVAL);
  assert_int_equal(tally__merkle_path((const uint8_t (*)[32])l, 8, 0, path, 2, &len),
                   TALLY_EINVAL);
  assert_int_equal(tally__merkle_path((const uint8_t (*)[32])l, 8, 0, path, 3, &len),
                   TALLY_OK);
  assert_int_equal(len, 3);
  uint8_t long_path[TALLY_MERKLE_DEPTH_MAX + 1][32] = {{0}};
  assert_int_equal(tally__merkle_verify(l[0], 0, SIZE_MAX,
                                        (const uint8_t (*)[32])long_path,
                                        TALLY_MERKLE_DEPTH_MAX + 1, root),
                   TALLY_EBADSIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merkle_ct_vectors),
      cmocka_unit_test(test_merkle_hand_built),
      cmocka_unit_test(test_merkle_root_matches_reference),
      cmocka_unit_test(test_merkle_paths_every_index),
      cmocka_unit_test(test_merkle_path_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
