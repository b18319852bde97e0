/* hello.c — HELLO's version negotiation and its challenge/answer: the
 * answer is HMAC-SHA256(network secret, challenge bytes) in lowercase hex,
 * checked in constant time. What a connection does with the verdict (close,
 * log, resume from `acked`) is the daemon's (issue 11). */
#include "tally/frames.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

static int empty_range(char *err, size_t err_len, const char *who, uint64_t lo,
                       uint64_t hi) {
  if (err && err_len > 0)
    snprintf(err, err_len,
             "wire version: the %s offers an empty range %" PRIu64 "..%" PRIu64
             " (versions start at 1)",
             who, lo, hi);
  return TALLY_EVERSION;
}

int tally_hello_negotiate(uint64_t client_min, uint64_t client_max, uint64_t server_min,
                          uint64_t server_max, uint64_t *chosen, char *err, size_t err_len) {
  if (!chosen) return TALLY_EINVAL;
  *chosen = 0;
  if (err && err_len > 0) err[0] = '\0';
  if (client_min == 0 || client_min > client_max)
    return empty_range(err, err_len, "host", client_min, client_max);
  if (server_min == 0 || server_min > server_max)
    return empty_range(err, err_len, "engine", server_min, server_max);
  uint64_t lo = client_min > server_min ? client_min : server_min;
  uint64_t hi = client_max < server_max ? client_max : server_max;
  if (lo > hi) {
    if (err && err_len > 0)
      snprintf(err, err_len,
            "wire version: the host speaks %" PRIu64 "..%" PRIu64 ", the engine %" PRIu64
            "..%" PRIu64 "; no version in common: upgrade the older side",
            client_min, client_max, server_min, server_max);
    return TALLY_EVERSION;
  }
  *chosen = hi;
  return TALLY_OK;
}

static void to_hex(const uint8_t *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 0x0f];
  }
  out[2 * n] = '\0';
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* uppercase is refused: one spelling per value */
}

/* Exactly 2*n lowercase hex digits, then the end of the string. */
static int from_hex(const char *s, uint8_t *out, size_t n) {
  if (!s || strnlen(s, 2 * n + 1) != 2 * n) return -1;
  for (size_t i = 0; i < n; i++) {
    int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

int tally_hello_challenge(char out[TALLY_FRAME_HELLO_HEX_BYTES + 1]) {
  if (!out) return TALLY_EINVAL;
  uint8_t b[TALLY_HELLO_CHALLENGE_BYTES];
  if (RAND_bytes(b, sizeof b) != 1) return TALLY_ECRYPTO;
  to_hex(b, sizeof b, out);
  return TALLY_OK;
}

static int hello_mac(const uint8_t *secret, size_t secret_len, const char *challenge_hex,
                     uint8_t mac[TALLY_HELLO_ANSWER_BYTES]) {
  uint8_t ch[TALLY_HELLO_CHALLENGE_BYTES];
  if (from_hex(challenge_hex, ch, sizeof ch)) return TALLY_EFRAME;
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), secret, (int)secret_len, ch, sizeof ch, mac, &n) ||
      n != TALLY_HELLO_ANSWER_BYTES)
    return TALLY_ECRYPTO;
  return TALLY_OK;
}

_Static_assert(2 * TALLY_HELLO_CHALLENGE_BYTES == TALLY_FRAME_HELLO_HEX_BYTES &&
                   2 * TALLY_HELLO_ANSWER_BYTES == TALLY_FRAME_HELLO_HEX_BYTES,
               "HELLO's hex fields hold a challenge and an answer");

/* Secrets are bounded so the int cast for OpenSSL holds; an empty secret
 * is a configuration mistake, not a key. */
enum { HELLO_SECRET_BYTES_MAX = 4096 };

int tally_hello_answer(const uint8_t *secret, size_t secret_len, const char *challenge_hex,
                       char out[TALLY_FRAME_HELLO_HEX_BYTES + 1]) {
  if (!secret || secret_len == 0 || secret_len > HELLO_SECRET_BYTES_MAX || !out)
    return TALLY_EINVAL;
  uint8_t mac[TALLY_HELLO_ANSWER_BYTES];
  int rc = hello_mac(secret, secret_len, challenge_hex, mac);
  if (rc) return rc;
  to_hex(mac, sizeof mac, out);
  OPENSSL_cleanse(mac, sizeof mac);
  return TALLY_OK;
}

int tally_hello_check(const uint8_t *secret, size_t secret_len, const char *challenge_hex,
                      const char *answer_hex) {
  if (!secret || secret_len == 0 || secret_len > HELLO_SECRET_BYTES_MAX)
    return TALLY_EBADSIG;
  uint8_t want[TALLY_HELLO_ANSWER_BYTES], got[TALLY_HELLO_ANSWER_BYTES];
  if (hello_mac(secret, secret_len, challenge_hex, want) != TALLY_OK) return TALLY_EBADSIG;
  int ok = from_hex(answer_hex, got, sizeof got) == 0 &&
           CRYPTO_memcmp(want, got, sizeof want) == 0;
  OPENSSL_cleanse(want, sizeof want);
  return ok ? TALLY_OK : TALLY_EBADSIG;
}
