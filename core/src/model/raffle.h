/* raffle.h — the verifiable draw of a raffle drop.
 *
 * Contract (the rules anyone can recompute; docs/RAFFLE.md spells them out):
 * - commitment = SHA-256(seed), announced when the raffle opens; the 32-byte
 *   seed is revealed when it closes.
 * - entry hash = SHA-256("tally-raffle-v1" || be64(item id) || be32(n) ||
 *   for each entry in arrival (seq) order: be16(len) || account name).
 * - draw k (k = 0, 1, ...) = first 8 bytes, big-endian, of
 *   SHA-256(seed || entry hash || be64(k)); a number in [0, m) is drawn by
 *   rejection: draws >= 2^64 - (2^64 mod m) are skipped, else draw mod m.
 * - order: Fisher-Yates over the entry list: for i = 0 .. n-2, swap
 *   position i with i + (number in [0, n-i)). Winners are taken in that
 *   order; one who cannot pay is passed over for the next.
 * Pure functions: no allocation, no engine. */
#ifndef TALLY_RAFFLE_H
#define TALLY_RAFFLE_H

#include <stddef.h>
#include <stdint.h>

enum { TALLY__RAFFLE_HASH_BYTES = 32 };

typedef struct tally__raffle_rng {
  uint8_t seed[32], entry_hash[32];
  uint64_t counter;
} tally__raffle_rng;

void tally__raffle_commitment(const uint8_t seed[32], uint8_t out[32]);

/* Incremental entry hash: init, one add per entry in seq order, finish. */
typedef struct tally__raffle_hasher tally__raffle_hasher;
tally__raffle_hasher *tally__raffle_hash_begin(uint64_t item_id, uint32_t n);
int tally__raffle_hash_add(tally__raffle_hasher *h, const char *account_name);
/* Frees h; TALLY_OK with the hash in out, or TALLY_ECRYPTO. */
int tally__raffle_hash_end(tally__raffle_hasher *h, uint8_t out[32]);

void tally__raffle_rng_init(tally__raffle_rng *r, const uint8_t seed[32], const uint8_t entry_hash[32]);
/* Uniform in [0, m), m >= 1. */
uint32_t tally__raffle_uniform(tally__raffle_rng *r, uint32_t m);
/* One Fisher-Yates step over order[0..n): swaps position i with its draw. */
void tally__raffle_step(tally__raffle_rng *r, uint32_t *order, uint32_t n, uint32_t i);

void tally__hex(const uint8_t *p, size_t n, char *out); /* 2n chars and a NUL */

#endif
