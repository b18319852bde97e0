/* text.h — checks and conversions for text that users type.
 *
 * Contract: every parser here takes untrusted bytes, never reads past the
 * given length, never allocates, and returns a specific TALLY_E* code.
 * Amounts are parsed into integer minor units with overflow checks: plain
 * ASCII digits with at most `decimals` digits after one '.', nothing else
 * (no sign, no exponent, no spaces, no unicode digits, no thousands marks). */
#ifndef TALLY_TEXT_H
#define TALLY_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  TALLY__TOKENS_MAX = 16,        /* words in one command line */
  TALLY__AMOUNT_DIGITS_MAX = 19,                         /* int64 has 19 digits */
  TALLY__AMOUNT_CHARS_MAX = TALLY__AMOUNT_DIGITS_MAX + 1, /* and one '.' */
  TALLY__UINT_DIGITS_MAX = 18,                           /* always inside uint64 */
  TALLY__QTY_MAX = 100,          /* units in one BUY */
};

/* Well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF) and no control
 * characters (C0, DEL); TALLY_OK, TALLY_EBAD_UTF8, or TALLY_EBAD_SYNTAX for
 * control characters (NUL, CR, LF, CTCP \x01 ...). */
int tally__text_check(const char *s, size_t len);

/* Copies src into dst (dst_size > 0 bytes, always NUL-terminated), cut if
 * needed at the last whole UTF-8 character that fits, so a valid text stays
 * valid (PostgreSQL refuses a batch holding half a character: 22021).
 * Returns the length copied. */
size_t tally__text_clip(char *dst, size_t dst_size, const char *src);
/* The same for the first src_len bytes of src. */
size_t tally__text_clipn(char *dst, size_t dst_size, const char *src, size_t src_len);
/* Drops an incomplete UTF-8 sequence at the end of s[0..len) (what a
 * bounded snprintf leaves when it cut a character); NUL-terminates there and
 * returns the new length. */
size_t tally__text_trim_tail(char *s, size_t len);

typedef struct tally__tokens {
  int count;
  const char *word[TALLY__TOKENS_MAX];
  size_t len[TALLY__TOKENS_MAX];
  const char *rest[TALLY__TOKENS_MAX]; /* the line from word i to its end */
} tally__tokens;

/* Splits on spaces; TALLY_ETOO_MANY past TALLY__TOKENS_MAX words. */
/* A network name: ^[a-z0-9][a-z0-9._-]{0,31}$ and not "user" or "sys"
 * (account names start "user:" or "sys:"; sql/010's CHECK is the same). */
enum { TALLY__NETWORK_NAME_BYTES_MAX = 32 };
bool tally__network_name_ok(const char *s);

int tally__tokenize(const char *s, tally__tokens *out);
/* ASCII case-insensitive equality of a token with a NUL-terminated word. */
bool tally__word_is(const tally__tokens *t, int i, const char *word);
/* Copies token i into dst (NUL-terminated); TALLY_ETOOBIG if it is longer. */
int tally__word_copy(const tally__tokens *t, int i, char *dst, size_t dst_size);

/* "5", "5.2", "5.25" with decimals=2 -> 500, 520, 525. Zero is refused. */
int tally__amount_parse(const char *s, size_t len, uint32_t decimals, int64_t *out);
/* Positive whole number up to max. */
int tally__uint_parse(const char *s, size_t len, uint64_t max, uint64_t *out);
/* 525 with decimals=2 -> "5.25". Always NUL-terminates; returns length. */
size_t tally__amount_format(int64_t minor, uint32_t decimals, char *out, size_t out_size);

/* Overflow-checked money arithmetic: false on overflow. */
static inline bool tally__add_i64(int64_t a, int64_t b, int64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}
static inline bool tally__mul_i64(int64_t a, int64_t b, int64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
/* amount * bps / 10000, rounded down, exact for any int64 amount. */
int64_t tally__bps_of(int64_t amount, uint32_t bps);

#endif
