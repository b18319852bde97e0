/* text.c — the first code that touches what users type. Written to be
 * fuzzed: bounded loops, explicit lengths, no allocation. */
#include "text.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tally.h"

int tally__text_check(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    unsigned c = *p;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return TALLY_EBAD_SYNTAX;
      p++;
      continue;
    }
    size_t n;
    unsigned cp, min;
    if ((c & 0xe0) == 0xc0) n = 1, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) n = 2, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) n = 3, cp = c & 0x07, min = 0x10000;
    else return TALLY_EBAD_UTF8;
    if ((size_t)(end - p) <= n) return TALLY_EBAD_UTF8;
    for (size_t i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return TALLY_EBAD_UTF8;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return TALLY_EBAD_UTF8;
    /* C1 controls are controls too. */
    if (cp >= 0x80 && cp < 0xa0) return TALLY_EBAD_SYNTAX;
    p += n + 1;
  }
  return TALLY_OK;
}

/* Length of the UTF-8 sequence a lead byte announces; 0 for a
 * continuation byte or a byte that never starts one. */
static size_t utf8_seq_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) return 2;
  if ((c & 0xf0) == 0xe0) return 3;
  if ((c & 0xf8) == 0xf0) return 4;
  return 0;
}

size_t tally__text_trim_tail(char *s, size_t len) {
  /* Walk back over at most 3 continuation bytes to the last lead byte; keep
   * its sequence only if it is complete. */
  size_t i = len, back = 0;
  while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) i--, back++;
  if (i > 0) {
    size_t need = utf8_seq_len((unsigned char)s[i - 1]);
    if (need > 1 && need != back + 1) len = i - 1; /* lead byte cut off from its tail */
    else if (need == 0) len = i - 1;               /* a stray byte: never valid */
  } else if (back > 0) {
    len = 0; /* only continuation bytes */
  }
  s[len] = 0;
  return len;
}

size_t tally__text_clipn(char *dst, size_t dst_size, const char *src, size_t src_len) {
  assert(dst_size > 0);
  size_t n = src ? strnlen(src, src_len) : 0;
  if (n >= dst_size) n = dst_size - 1;
  memcpy(dst, src ? src : "", n);
  return tally__text_trim_tail(dst, n);
}

size_t tally__text_clip(char *dst, size_t dst_size, const char *src) {
  return tally__text_clipn(dst, dst_size, src, SIZE_MAX);
}

int tally__tokenize(const char *s, tally__tokens *out) {
  out->count = 0;
  const char *p = s;
  for (;;) {
    while (*p == ' ') p++;
    if (!*p) return TALLY_OK;
    if (out->count == TALLY__TOKENS_MAX) return TALLY_ETOO_MANY;
    const char *start = p;
    while (*p && *p != ' ') p++;
    out->word[out->count] = start;
    out->rest[out->count] = start;
    out->len[out->count] = (size_t)(p - start);
    out->count++;
  }
}

bool tally__word_is(const tally__tokens *t, int i, const char *word) {
  if (i >= t->count) return false;
  size_t n = strlen(word);
  if (t->len[i] != n) return false;
  for (size_t k = 0; k < n; k++) {
    char a = t->word[i][k], b = word[k];
    if (a >= 'a' && a <= 'z') a = (char)(a - 32);
    if (b >= 'a' && b <= 'z') b = (char)(b - 32);
    if (a != b) return false;
  }
  return true;
}

int tally__word_copy(const tally__tokens *t, int i, char *dst, size_t dst_size) {
  assert(dst_size > 0);
  if (i >= t->count) return TALLY_EBAD_SYNTAX;
  if (t->len[i] >= dst_size) return TALLY_ETOOBIG;
  memcpy(dst, t->word[i], t->len[i]);
  dst[t->len[i]] = 0;
  return TALLY_OK;
}

int tally__uint_parse(const char *s, size_t len, uint64_t max, uint64_t *out) {
  if (len == 0 || len > TALLY__UINT_DIGITS_MAX) return TALLY_EBAD_QTY;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return TALLY_EBAD_QTY;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v == 0 || v > max) return TALLY_EBAD_QTY;
  *out = v;
  return TALLY_OK;
}

int tally__amount_parse(const char *s, size_t len, uint32_t decimals, int64_t *out) {
  assert(decimals <= 6);
  /* Limited by digits, not characters, so that every amount that
   * tally__amount_format prints can be typed back; the overflow checks bound
   * the value itself. */
  if (len == 0 || len > TALLY__AMOUNT_CHARS_MAX) return TALLY_EBAD_AMOUNT;
  int64_t v = 0;
  int frac = -1, digits = 0; /* frac: digits after '.', -1 before it */
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '.') {
      if (frac >= 0 || i == 0 || i + 1 == len) return TALLY_EBAD_AMOUNT;
      frac = 0;
      continue;
    }
    if (c < '0' || c > '9' || ++digits > TALLY__AMOUNT_DIGITS_MAX) return TALLY_EBAD_AMOUNT;
    if (frac >= 0 && ++frac > (int)decimals) return TALLY_EBAD_AMOUNT;
    if (!tally__mul_i64(v, 10, &v) || !tally__add_i64(v, c - '0', &v)) return TALLY_EOVERFLOW;
  }
  for (int k = frac < 0 ? 0 : frac; k < (int)decimals; k++)
    if (!tally__mul_i64(v, 10, &v)) return TALLY_EOVERFLOW;
  if (v == 0) return TALLY_EBAD_AMOUNT;
  *out = v;
  return TALLY_OK;
}

size_t tally__amount_format(int64_t minor, uint32_t decimals, char *out, size_t out_size) {
  assert(out_size >= 32 && decimals <= 6);
  uint64_t mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
  uint64_t scale = 1;
  for (uint32_t i = 0; i < decimals; i++) scale *= 10;
  int n;
  if (decimals == 0)
    n = snprintf(out, out_size, "%s%llu", minor < 0 ? "-" : "", (unsigned long long)mag);
  else
    n = snprintf(out, out_size, "%s%llu.%0*llu", minor < 0 ? "-" : "",
                 (unsigned long long)(mag / scale), (int)decimals,
                 (unsigned long long)(mag % scale));
  return n < 0 ? 0 : (size_t)n;
}

int64_t tally__bps_of(int64_t amount, uint32_t bps) {
  assert(amount >= 0 && bps <= 10000);
  /* Split to avoid overflow: (q*10000 + r) * bps / 10000 = q*bps + r*bps/10000. */
  int64_t q = amount / 10000, r = amount % 10000;
  return q * (int64_t)bps + (r * (int64_t)bps) / 10000;
}

bool tally__network_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > TALLY__NETWORK_NAME_BYTES_MAX || strcmp(s, "user") == 0 || strcmp(s, "sys") == 0)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}
