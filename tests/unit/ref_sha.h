/* ref_sha.h — SHA-256 the way RFC 6962 hashes leaves, for the unit tests.
 *
 * Written here with OpenSSL's one-shot SHA256(), not the library's path, so
 * the tests that use it check libtally against an independent reference. */
#ifndef TALLY_TEST_REF_SHA_H
#define TALLY_TEST_REF_SHA_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

static inline void sha(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32]) {
  uint8_t buf[512];
  assert_true(an + bn <= sizeof buf);
  memcpy(buf, a, an);
  if (bn) memcpy(buf + an, b, bn);
  SHA256(buf, an + bn, out); /* one-shot EVP path, not the library's */
}

/* RFC 6962 section 2.1: a leaf hash is SHA-256(0x00 || data). */
static inline void leaf_of(const void *data, size_t n, uint8_t out[32]) { sha("\x00", 1, data, n, out); }

#endif
