/* fuzz_text.c — libFuzzer target for core/src/base/text.c, the parsers of what
 * users type: UTF-8 and control checks, tokenizing, amounts, quantities.
 *
 * Input layout: byte 0 picks the currency decimals (0..6); bytes 1..8 are a
 * little-endian 64-bit number (the `max` of tally__uint_parse, an amount to
 * format, a bps for tally__bps_of); the rest is the text.
 *
 * Properties: nothing crashes or reads past the text's length; every answer
 * is one of the documented codes and agrees with a slow reference written
 * here from the contract in text.h; format(parse(x)) parses back to the same
 * value; tally__bps_of is exact.
 *
 * Build and run: tests/fuzz/run.sh (see docs/FUZZING.md); by hand:
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Icore/include -Icore/src/base -Icore/src/wire -Icore/src/receipts -Icore/src/model -Ischemas -Itests/fuzz \
 *     tests/fuzz/text/fuzz_text.c core/src/base/text.c -o build/fuzz/fuzz_text */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tally.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { TEXT_BYTES_MAX = 4096 };

/* Reference UTF-8 check, one code point at a time (RFC 3629 table 4). */
static int ref_text_check(const unsigned char *p, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = p[i];
    if (c < 0x20 || c == 0x7f) return TALLY_EBAD_SYNTAX;
    if (c < 0x80) { i++; continue; }
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c == 0xe0) n = 2, lo = 0xa0;
    else if (c >= 0xe1 && c <= 0xec) n = 2;
    else if (c == 0xed) n = 2, hi = 0x9f;
    else if (c >= 0xee && c <= 0xef) n = 2;
    else if (c == 0xf0) n = 3, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3) n = 3;
    else if (c == 0xf4) n = 3, hi = 0x8f;
    else return TALLY_EBAD_UTF8;
    if (len - i <= n) return TALLY_EBAD_UTF8;
    if (p[i + 1] < lo || p[i + 1] > hi) return TALLY_EBAD_UTF8;
    for (size_t k = 2; k <= n; k++)
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return TALLY_EBAD_UTF8;
    if (c == 0xc2 && p[i + 1] < 0xa0) return TALLY_EBAD_SYNTAX; /* C1 controls */
    i += n + 1;
  }
  return TALLY_OK;
}

static void check_text(const char *s, size_t len) {
  int rc = tally__text_check(s, len);
  int want = ref_text_check((const unsigned char *)s, len);
  /* Both classes are refusals; only their order may legitimately differ
   * when one string has both a bad sequence and a control character. */
  if (want == TALLY_OK) FUZZ_CHECK(rc == TALLY_OK);
  else FUZZ_CHECK(rc == TALLY_EBAD_UTF8 || rc == TALLY_EBAD_SYNTAX);
  if (rc == TALLY_OK) FUZZ_CHECK(want == TALLY_OK);
}

static void check_tokenize(const char *z) {
  tally__tokens t;
  memset(&t, 0x5a, sizeof t);
  int rc = tally__tokenize(z, &t);
  int words = 0;
  for (const char *p = z; *p;) {
    while (*p == ' ') p++;
    if (!*p) break;
    words++;
    while (*p && *p != ' ') p++;
  }
  if (words > TALLY__TOKENS_MAX) {
    FUZZ_CHECK(rc == TALLY_ETOO_MANY);
    return;
  }
  FUZZ_CHECK(rc == TALLY_OK && t.count == words);
  const char *end = z + strlen(z), *prev = z;
  for (int i = 0; i < t.count; i++) {
    FUZZ_CHECK(t.word[i] >= prev && t.word[i] + t.len[i] <= end && t.len[i] > 0);
    FUZZ_CHECK(memchr(t.word[i], ' ', t.len[i]) == NULL);
    FUZZ_CHECK(t.word[i][t.len[i]] == ' ' || t.word[i][t.len[i]] == 0);
    FUZZ_CHECK(t.rest[i] == t.word[i]);
    char buf[8];
    int crc = tally__word_copy(&t, i, buf, sizeof buf);
    if (t.len[i] < sizeof buf) FUZZ_CHECK(crc == TALLY_OK && strlen(buf) == t.len[i]);
    else FUZZ_CHECK(crc == TALLY_ETOOBIG);
    prev = t.word[i] + t.len[i];
  }
  FUZZ_CHECK(!tally__word_is(&t, t.count, "x"));
}

/* Reference amount parser: digits, at most one '.' with digits on both
 * sides and at most `decimals` after it, at most TALLY__AMOUNT_DIGITS_MAX
 * digits; exact value in 128 bits. Refusals come in text.c's order: the
 * first offending character decides between EBAD_AMOUNT and EOVERFLOW. */
static int ref_amount(const char *s, size_t len, uint32_t decimals, int64_t *out) {
  if (len == 0 || len > TALLY__AMOUNT_CHARS_MAX) return TALLY_EBAD_AMOUNT;
  __int128 v = 0;
  int frac = -1, digits = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '.') {
      if (frac >= 0 || i == 0 || i + 1 == len) return TALLY_EBAD_AMOUNT;
      frac = 0;
      continue;
    }
    if (s[i] < '0' || s[i] > '9' || ++digits > TALLY__AMOUNT_DIGITS_MAX) return TALLY_EBAD_AMOUNT;
    if (frac >= 0 && ++frac > (int)decimals) return TALLY_EBAD_AMOUNT;
    v = v * 10 + (s[i] - '0');
    if (v > INT64_MAX) return TALLY_EOVERFLOW;
  }
  for (int k = frac < 0 ? 0 : frac; k < (int)decimals; k++)
    if ((v *= 10) > INT64_MAX) return TALLY_EOVERFLOW;
  if (v == 0) return TALLY_EBAD_AMOUNT;
  *out = (int64_t)v;
  return TALLY_OK;
}

/* The shape of tally__amount_format's output: [-]digits[.decimals digits]. */
static void check_format_shape(const char *f, size_t n, int64_t minor, uint32_t decimals) {
  FUZZ_CHECK(n == strlen(f) && n > 0);
  const char *p = f;
  if (minor < 0) FUZZ_CHECK(*p++ == '-');
  size_t digits = strspn(p, "0123456789");
  FUZZ_CHECK(digits > 0);
  if (decimals == 0) {
    FUZZ_CHECK(p[digits] == 0);
  } else {
    FUZZ_CHECK(p[digits] == '.');
    FUZZ_CHECK(strspn(p + digits + 1, "0123456789") == decimals && p[digits + 1 + decimals] == 0);
  }
}

static void check_amount(const char *s, size_t len, uint32_t decimals) {
  int64_t v = -1, want = -2;
  int rc = tally__amount_parse(s, len, decimals, &v);
  int wrc = ref_amount(s, len, decimals, &want);
  FUZZ_CHECK(rc == wrc);
  if (rc != TALLY_OK) return;
  FUZZ_CHECK(v == want && v > 0);
  /* Whatever a user may type, the engine may print, and the user may type
   * what the engine printed. */
  char f[64];
  size_t n = tally__amount_format(v, decimals, f, sizeof f);
  check_format_shape(f, n, v, decimals);
  int64_t back = -1;
  int brc = tally__amount_parse(f, n, decimals, &back);
  if (brc != TALLY_OK)
    fprintf(stderr, "amount '%.*s' decimals %u -> %lld -> '%s' -> %s\n", (int)len, s, decimals,
            (long long)v, f, tally_err_name(brc));
  FUZZ_CHECK(brc == TALLY_OK && back == v);
}

static void check_format_any(int64_t minor, uint32_t decimals) {
  char f[64];
  size_t n = tally__amount_format(minor, decimals, f, sizeof f);
  check_format_shape(f, n, minor, decimals);
  /* A small value re-parses; large ones may exceed the typing limit. */
  if (minor > 0 && minor < 1000000000000LL) {
    int64_t back = -1;
    FUZZ_CHECK(tally__amount_parse(f, n, decimals, &back) == TALLY_OK && back == minor);
  }
}

static void check_uint(const char *s, size_t len, uint64_t max) {
  uint64_t v = 0, want = 0;
  int rc = tally__uint_parse(s, len, max, &v);
  int wrc = TALLY_OK;
  if (len == 0 || len > TALLY__UINT_DIGITS_MAX) wrc = TALLY_EBAD_QTY;
  for (size_t i = 0; wrc == TALLY_OK && i < len; i++) {
    if (s[i] < '0' || s[i] > '9') wrc = TALLY_EBAD_QTY;
    else want = want * 10 + (uint64_t)(s[i] - '0');
  }
  if (wrc == TALLY_OK && (want == 0 || want > max)) wrc = TALLY_EBAD_QTY;
  FUZZ_CHECK(rc == wrc);
  if (rc == TALLY_OK) FUZZ_CHECK(v == want);
}

static void check_bps(int64_t amount, uint32_t bps) {
  if (amount < 0) amount = -(amount + 1);
  bps %= 10001;
  int64_t got = tally__bps_of(amount, bps);
  __int128 want = (__int128)amount * bps / 10000;
  FUZZ_CHECK(got == (int64_t)want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > TEXT_BYTES_MAX) return 0;
  uint8_t head[9] = {0};
  memcpy(head, data, size < 9 ? size : 9);
  uint32_t decimals = head[0] % 7;
  uint64_t num = 0;
  for (int i = 8; i >= 1; i--) num = num << 8 | head[i];
  size_t len = size > 9 ? size - 9 : 0;
  /* An exact-size heap copy, so ASan sees any read past `len`. */
  char *s = malloc(len ? len : 1);
  char *z = malloc(len + 1);
  FUZZ_CHECK(s && z);
  if (len) memcpy(s, data + 9, len);
  if (len) memcpy(z, data + 9, len);
  z[len] = 0;

  check_text(s, len);
  check_tokenize(z);
  check_amount(s, len, decimals);
  check_uint(s, len, num);
  check_uint(s, len, TALLY__QTY_MAX);
  check_format_any((int64_t)num, decimals);
  check_bps((int64_t)num, (uint32_t)(num >> 40));
  /* Words of the line, as the command parser will see them. */
  tally__tokens t;
  if (tally__tokenize(z, &t) == TALLY_OK)
    for (int i = 0; i < t.count; i++) {
      check_amount(t.word[i], t.len[i], decimals);
      check_uint(t.word[i], t.len[i], TALLY__QTY_MAX);
    }
  free(s);
  free(z);
  return 0;
}
