/* quiz_match.c — folding and comparing quiz answers (contract in
 * quiz_match.h). Unicode rules come from libutf8proc (Debian's
 * libutf8proc-dev) rather than our own tables: case folding and NFKD
 * change with each Unicode version, and utf8proc tracks them. */
#include "quiz_match.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tally.h"

/* Trimmed, with inner whitespace runs as one ASCII space, into out (at
 * most n bytes, the input's length bounds it). */
static size_t squeeze(const char *s, size_t n, char *out) {
  size_t k = 0;
  bool space = false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch == ' ' || ch == '\t') {
      space = k > 0;
      continue;
    }
    if (space) out[k++] = ' ';
    space = false;
    out[k++] = ch;
  }
  out[k] = 0;
  return k;
}

/* One utf8proc_map pass; *out is malloc'd by utf8proc (caller frees). */
static int fold_pass(const char *in, utf8proc_option_t opts, char **out) {
  utf8proc_uint8_t *dst = NULL;
  utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)in, 0, &dst, opts | UTF8PROC_NULLTERM | UTF8PROC_STABLE);
  if (r < 0) {
    free(dst);
    return r == UTF8PROC_ERROR_NOMEM ? TALLY_ENOMEM : TALLY_EBAD_UTF8;
  }
  *out = (char *)dst;
  return TALLY_OK;
}

int tally__quiz_fold(const char *s, size_t n, int32_t cps[TALLY__QUIZ_MATCH_CP_MAX], size_t *count) {
  *count = 0;
  char *tmp = malloc(n + 1);
  if (!tmp) return TALLY_ENOMEM;
  squeeze(s, n, tmp);
  /* Case folding first (ß -> ss), then NFKD without marks (é -> e), then
   * case folding again for what the decomposition made (㎒ -> MHz). */
  char *a = NULL, *b = NULL, *c = NULL;
  int rc = fold_pass(tmp, UTF8PROC_CASEFOLD, &a);
  if (!rc) rc = fold_pass(a, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_STRIPMARK, &b);
  if (!rc) rc = fold_pass(b, UTF8PROC_CASEFOLD, &c);
  free(tmp);
  free(a);
  free(b);
  if (rc) {
    free(c);
    return rc;
  }
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)c;
  size_t left = strlen(c);
  while (left > 0) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t used = utf8proc_iterate(p, (utf8proc_ssize_t)left, &cp);
    if (used <= 0) {
      rc = TALLY_EBAD_UTF8;
      break;
    }
    if (*count == TALLY__QUIZ_MATCH_CP_MAX) {
      rc = TALLY_ETOOBIG;
      break;
    }
    cps[(*count)++] = cp;
    p += used;
    left -= (size_t)used;
  }
  free(c);
  return rc;
}

static uint32_t min3(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t m = a < b ? a : b;
  return m < c ? m : c;
}

/* Three rows of the classic table (the swap looks two rows back), on the
 * stack: lengths are bounded by TALLY__QUIZ_MATCH_CP_MAX. */
uint32_t tally__quiz_distance(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
  enum { W = TALLY__QUIZ_MATCH_CP_MAX + 1 };
  uint32_t rows[3][W];
  if (na > TALLY__QUIZ_MATCH_CP_MAX) na = TALLY__QUIZ_MATCH_CP_MAX;
  if (nb > TALLY__QUIZ_MATCH_CP_MAX) nb = TALLY__QUIZ_MATCH_CP_MAX;
  for (size_t j = 0; j <= nb; j++) rows[0][j] = (uint32_t)j;
  for (size_t i = 1; i <= na; i++) {
    uint32_t *cur = rows[i % 3], *prev = rows[(i - 1) % 3], *prev2 = rows[(i + 1) % 3];
    cur[0] = (uint32_t)i;
    for (size_t j = 1; j <= nb; j++) {
      uint32_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < cur[j])
        cur[j] = prev2[j - 2] + 1;
    }
  }
  return rows[na % 3][nb];
}

bool tally__quiz_match(const char *given, const char *expected) {
  int32_t g[TALLY__QUIZ_MATCH_CP_MAX], x[TALLY__QUIZ_MATCH_CP_MAX];
  size_t ng, nx;
  if (tally__quiz_fold(given, strlen(given), g, &ng) || tally__quiz_fold(expected, strlen(expected), x, &nx))
    return false;
  if (nx == 0 || ng == 0) return false;
  size_t allowed = nx / TALLY__QUIZ_EDITS_PER_CP;
  /* More code points apart than allowed cannot be within it. */
  size_t gap = ng > nx ? ng - nx : nx - ng;
  if (gap > allowed) return false;
  return tally__quiz_distance(g, ng, x, nx) <= allowed;
}
