/* merkle.h — RFC 6962 Merkle trees over SHA-256, and the one SHA-256 seam.
 *
 * Contract
 * --------
 * - Leaves are 32-byte hashes that the caller has already domain-separated
 *   (tally__receipt_leaf computes SHA256(0x00 || data)). Interior nodes are
 *   SHA256(0x01 || left || right); a range of n > 1 leaves splits at the
 *   largest power of two below n (RFC 6962 section 2.1), so trees of any
 *   size are defined and a lone right node is never duplicated.
 * - Audit paths are ordered from the leaf's sibling up to the root's child,
 *   exactly as RFC 6962 section 2.1.1 builds them; verification is the
 *   iterative algorithm of RFC 9162 section 2.1.3.2 and never recurses.
 * - Nothing here allocates. tally__merkle_root uses the caller's scratch
 *   (n entries); the other functions use at most a few KiB of stack.
 * - n >= 1 and non-NULL pointers are programmer errors (asserted); a path or
 *   proof that does not match is an operating error (TALLY_EBADSIG).
 */
#ifndef TALLY_MERKLE_H
#define TALLY_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "tally.h"

enum {
  TALLY_HASH_BYTES = 32,       /* SHA-256 output */
  TALLY_MERKLE_DEPTH_MAX = 32, /* path length of a tree of 2^32 leaves */
};

/* SHA-256 of len bytes into out. Never allocates (see merkle.c for why). */
void tally__sha256(const void *data, size_t len, uint8_t out[TALLY_HASH_BYTES]);

/* Root of the tree over leaves[0..n). scratch holds n entries and may alias
 * nothing else; its content afterwards is unspecified. n >= 1. */
void tally__merkle_root(const uint8_t (*leaves)[32], size_t n,
                        uint8_t (*scratch)[32], uint8_t root[32]);

/* Audit path of leaves[index] into path[0..*path_len). TALLY_EINVAL when
 * index >= n or the path needs more than path_cap entries. */
int tally__merkle_path(const uint8_t (*leaves)[32], size_t n, size_t index,
                       uint8_t (*path)[32], size_t path_cap, size_t *path_len);

/* TALLY_OK when leaf at index of a tree of n leaves hashes up to root along
 * path; TALLY_EBADSIG otherwise, including index >= n, n == 0, a path of the
 * wrong length or longer than TALLY_MERKLE_DEPTH_MAX. */
int tally__merkle_verify(const uint8_t leaf[32], size_t index, size_t n,
                         const uint8_t (*path)[32], size_t path_len,
                         const uint8_t root[32]);

#endif
