/* raffle.c — commitment, entry hash and draw order of a raffle (raffle.h). */
#include "raffle.h"

#include <assert.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#include "tally.h"

static const char raffle_tag[] = "tally-raffle-v1";

void tally__raffle_commitment(const uint8_t seed[32], uint8_t out[32]) { SHA256(seed, 32, out); }

struct tally__raffle_hasher {
  EVP_MD_CTX *md;
};

static void be_put(uint8_t *p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* The handle is the EVP context itself; no separate allocation. */
tally__raffle_hasher *tally__raffle_hash_begin(uint64_t item_id, uint32_t n) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  uint8_t head[12];
  be_put(head, item_id, 8);
  be_put(head + 8, n, 4);
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
      EVP_DigestUpdate(md, raffle_tag, sizeof raffle_tag - 1) != 1 ||
      EVP_DigestUpdate(md, head, sizeof head) != 1) {
    EVP_MD_CTX_free(md);
    return NULL;
  }
  return (tally__raffle_hasher *)md;
}

int tally__raffle_hash_add(tally__raffle_hasher *h, const char *account_name) {
  size_t len = strlen(account_name);
  assert(len <= UINT16_MAX);
  uint8_t l2[2];
  be_put(l2, len, 2);
  EVP_MD_CTX *md = (EVP_MD_CTX *)h;
  if (!md || EVP_DigestUpdate(md, l2, 2) != 1 || EVP_DigestUpdate(md, account_name, len) != 1)
    return TALLY_ECRYPTO;
  return TALLY_OK;
}

int tally__raffle_hash_end(tally__raffle_hasher *h, uint8_t out[32]) {
  EVP_MD_CTX *md = (EVP_MD_CTX *)h;
  unsigned int n = 0;
  int ok = md && EVP_DigestFinal_ex(md, out, &n) == 1 && n == 32;
  EVP_MD_CTX_free(md);
  return ok ? TALLY_OK : TALLY_ECRYPTO;
}

void tally__raffle_rng_init(tally__raffle_rng *r, const uint8_t seed[32], const uint8_t entry_hash[32]) {
  memcpy(r->seed, seed, 32);
  memcpy(r->entry_hash, entry_hash, 32);
  r->counter = 0;
}

static uint64_t rng_next(tally__raffle_rng *r) {
  uint8_t block[72], out[32];
  memcpy(block, r->seed, 32);
  memcpy(block + 32, r->entry_hash, 32);
  be_put(block + 64, r->counter++, 8);
  SHA256(block, sizeof block, out);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | out[i];
  return v;
}

uint32_t tally__raffle_uniform(tally__raffle_rng *r, uint32_t m) {
  assert(m >= 1);
  /* 2^64 mod m, and the largest multiple of m that fits: no modulo bias. */
  uint64_t rem = (UINT64_MAX % m + 1) % m;
  uint64_t limit = rem ? UINT64_MAX - rem + 1 : 0; /* 0: every draw is fine */
  for (;;) {
    uint64_t x = rng_next(r);
    if (limit == 0 || x < limit) return (uint32_t)(x % m);
  }
}

void tally__raffle_step(tally__raffle_rng *r, uint32_t *order, uint32_t n, uint32_t i) {
  assert(i < n);
  if (i + 1 >= n) return; /* the last position has nothing to swap with */
  uint32_t j = i + tally__raffle_uniform(r, n - i);
  uint32_t t = order[i];
  order[i] = order[j];
  order[j] = t;
}

void tally__hex(const uint8_t *p, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[p[i] >> 4];
    out[2 * i + 1] = hex[p[i] & 15];
  }
  out[2 * n] = 0;
}
