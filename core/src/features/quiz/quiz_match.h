/* quiz_match.h — when is a quiz answer right.
 *
 * Contract (README "Quizzes", tests/unit/test_quiz_match.c):
 *   1. both texts are trimmed, and inner runs of spaces become one space;
 *   2. folded by Unicode rules (libutf8proc): full case folding, then NFKD
 *      with the combining marks removed, then case folding again (a
 *      compatibility decomposition can bring back capitals: "㎒" -> "MHz"),
 *      so "Café" = "CAFE" and "Straße" = "STRASSE";
 *   3. the given answer is right when its optimal string alignment distance
 *      (insertions, deletions, substitutions, and swaps of two neighbours,
 *      each counted 1, no substring edited twice) to an expected answer is at
 *      most floor(code points of that expected answer, folded, / 8): none
 *      up to 7 code points, one from 8, two from 16.
 * Texts longer than TALLY__QUIZ_MATCH_CP_MAX code points once folded are
 * never right (an expected one that long is refused at QUIZ START). Pure:
 * no engine state; allocates only inside libutf8proc and frees it. */
#ifndef TALLY_QUIZ_MATCH_H
#define TALLY_QUIZ_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  TALLY__QUIZ_MATCH_CP_MAX = 128, /* code points of a folded answer */
  TALLY__QUIZ_EDITS_PER_CP = 8,   /* one edit tolerated per this many code points */
};

/* Folds s[0..n) (steps 1 and 2) into cps; *count code points. TALLY_OK,
 * TALLY_EBAD_TEXT (not UTF-8), or TALLY_ETOO_LONG (over the limit). */
int tally__quiz_fold(const char *s, size_t n, int32_t cps[TALLY__QUIZ_MATCH_CP_MAX], size_t *count);
/* Optimal string alignment distance of a[0..na) and b[0..nb) (each at
 * most TALLY__QUIZ_MATCH_CP_MAX). */
uint32_t tally__quiz_distance(const int32_t *a, size_t na, const int32_t *b, size_t nb);
/* Step 3: is `given` right for `expected` (both UTF-8, NUL-terminated)? */
bool tally__quiz_match(const char *given, const char *expected);

#endif
