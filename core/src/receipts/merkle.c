/* merkle.c — RFC 6962 Merkle tree hashing for signed receipt batches.
 *
 * The engine hashes one tree per committed batch (up to a few thousand
 * leaves) on its own thread, and tally__receipt_leaf hashes once per
 * purchase, so SHA-256 must not allocate. OpenSSL 3.0's EVP digests allocate
 * a provider context on every init (measured: one malloc per digest, and
 * ~35% slower for 65-byte inputs), so this file alone uses the low-level
 * SHA256_Init/Update/Final, which are deprecated in 3.x but still present
 * and allocation-free. If a future OpenSSL drops them, only tally__sha256
 * changes.
 *
 * The root is built bottom-up, pairing neighbours and carrying an odd last
 * node up unchanged; this gives exactly RFC 6962's "split at the largest
 * power of two" tree without recursion. Paths descend from the root the
 * way RFC 6962 section 2.1.1 recurses, but in a loop. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "merkle.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

enum {
  MERKLE_NODE_PREFIX = 0x01,
  /* Perfect subtrees pending in merkle_range_root: one per bit of size_t. */
  MERKLE_STACK_MAX = sizeof(size_t) * CHAR_BIT,
};

_Static_assert(TALLY_HASH_BYTES == SHA256_DIGEST_LENGTH, "SHA-256 size");
_Static_assert((int)MERKLE_STACK_MAX >= (int)TALLY_MERKLE_DEPTH_MAX, "stack vs depth");

void tally__sha256(const void *data, size_t len, uint8_t out[TALLY_HASH_BYTES]) {
  assert(out && (data || len == 0));
  SHA256_CTX ctx;
  int ok = SHA256_Init(&ctx) && SHA256_Update(&ctx, data, len) &&
           SHA256_Final(out, &ctx);
  assert(ok && "SHA256 of the default implementation cannot fail");
  (void)ok;
}

/* out = SHA256(0x01 || left || right); out may alias left or right. */
static void merkle_node(const uint8_t left[32], const uint8_t right[32],
                        uint8_t out[32]) {
  uint8_t buf[1 + 2 * TALLY_HASH_BYTES];
  buf[0] = MERKLE_NODE_PREFIX;
  memcpy(buf + 1, left, TALLY_HASH_BYTES);
  memcpy(buf + 1 + TALLY_HASH_BYTES, right, TALLY_HASH_BYTES);
  tally__sha256(buf, sizeof buf, out);
}

void tally__merkle_root(const uint8_t (*leaves)[32], size_t n,
                        uint8_t (*scratch)[32], uint8_t root[32]) {
  assert(leaves && scratch && root && n >= 1);
  assert((const void *)scratch != (const void *)leaves);
  const uint8_t (*src)[32] = leaves; /* first level reads the caller's leaves */
  size_t m = n;
  while (m > 1) {
    size_t i = 0;
    for (; i + 1 < m; i += 2) merkle_node(src[i], src[i + 1], scratch[i / 2]);
    if (i < m) memmove(scratch[i / 2], src[i], TALLY_HASH_BYTES);
    src = (const uint8_t (*)[32])scratch;
    m = (m + 1) / 2;
  }
  memcpy(root, src[0], TALLY_HASH_BYTES);
}

/* Root of leaves[lo..hi) with a stack of perfect subtrees instead of scratch:
 * after leaf number c (1-based) the stack holds one subtree per set bit of c,
 * largest first, and RFC 6962's tree is their right fold. */
static void merkle_range_root(const uint8_t (*leaves)[32], size_t lo, size_t hi,
                              uint8_t out[32]) {
  assert(lo < hi);
  uint8_t stack[MERKLE_STACK_MAX][32];
  size_t depth = 0;
  for (size_t i = lo; i < hi; i++) {
    assert(depth < MERKLE_STACK_MAX);
    memcpy(stack[depth++], leaves[i], TALLY_HASH_BYTES);
    for (size_t c = i - lo + 1; (c & 1) == 0; c >>= 1, depth--) {
      merkle_node(stack[depth - 2], stack[depth - 1], stack[depth - 2]);
    }
  }
  for (; depth > 1; depth--) {
    merkle_node(stack[depth - 2], stack[depth - 1], stack[depth - 2]);
  }
  memcpy(out, stack[0], TALLY_HASH_BYTES);
}

static size_t merkle_split(size_t n) {
  assert(n > 1);
  size_t k = 1;
  while (k < n - k) k <<= 1; /* largest power of two strictly below n */
  return k;
}

int tally__merkle_path(const uint8_t (*leaves)[32], size_t n, size_t index,
                       uint8_t (*path)[32], size_t path_cap, size_t *path_len) {
  assert(leaves && path && path_len && n >= 1);
  if (index >= n) return TALLY_EINVAL;
  size_t depth = 0;
  for (size_t m = n - 1; m > 0; m >>= 1) depth++; /* ceil(log2(n)) bound */
  size_t lo = 0, hi = n, len = 0;
  /* Siblings are found root-first; store them from the end of the path. */
  while (hi - lo > 1) {
    size_t k = merkle_split(hi - lo);
    if (len >= path_cap || len >= depth) return TALLY_EINVAL;
    uint8_t sibling[32];
    if (index < lo + k) {
      merkle_range_root(leaves, lo + k, hi, sibling);
      hi = lo + k;
    } else {
      merkle_range_root(leaves, lo, lo + k, sibling);
      lo = lo + k;
    }
    memcpy(path[len++], sibling, TALLY_HASH_BYTES);
  }
  for (size_t i = 0; i < len / 2; i++) { /* leaf-first order */
    uint8_t tmp[32];
    memcpy(tmp, path[i], 32);
    memcpy(path[i], path[len - 1 - i], 32);
    memcpy(path[len - 1 - i], tmp, 32);
  }
  *path_len = len;
  return TALLY_OK;
}

int tally__merkle_verify(const uint8_t leaf[32], size_t index, size_t n,
                         const uint8_t (*path)[32], size_t path_len,
                         const uint8_t root[32]) {
  assert(leaf && root && (path || path_len == 0));
  if (n == 0 || index >= n || path_len > TALLY_MERKLE_DEPTH_MAX) {
    return TALLY_EBADSIG;
  }
  size_t fn = index, sn = n - 1;
  uint8_t r[32];
  memcpy(r, leaf, TALLY_HASH_BYTES);
  for (size_t i = 0; i < path_len; i++) { /* RFC 9162 section 2.1.3.2 */
    if (sn == 0) return TALLY_EBADSIG;
    if ((fn & 1) || fn == sn) {
      merkle_node(path[i], r, r);
      while (!(fn & 1) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      merkle_node(r, path[i], r);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0 || CRYPTO_memcmp(r, root, TALLY_HASH_BYTES) != 0) {
    return TALLY_EBADSIG;
  }
  return TALLY_OK;
}
