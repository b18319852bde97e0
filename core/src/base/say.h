/* say.h — a sentence of the engine with its structure: the English text
 * (the default rendering, as before) and the arguments an adapter needs to
 * render it its own way (tally.h: enum tally_msg, tally_effect_arg), so no
 * adapter parses English. Pure: no engine.
 *
 * A sentence is built with printf formats (checked by the compiler); a
 * `kinds` string names, one character per conversion, which conversions
 * are arguments: '-' none, 'a' account, 'm' amount, 't' user text,
 * 'r' room, 's' sku, 'n' count, 'R' receipt. Numbers of counts and
 * receipts are taken from the conversion; an amount's value is set with
 * tally__say_value (its text is the formatted "1.50 credits"). */
#ifndef TALLY_SAY_H
#define TALLY_SAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally.h"

typedef struct tally__say {
  uint32_t msg; /* enum tally_msg; TALLY_MSG_TEXT once the structure is lost */
  char text[TALLY_TEXT_BYTES_MAX + 1];
  size_t len;
  uint32_t count; /* arguments */
  tally_effect_arg arg[TALLY_EFFECT_ARGS_MAX];
} tally__say;

void tally__say_init(tally__say *s, uint32_t msg);
/* Appends fmt's output; each conversion whose kinds character is not '-'
 * becomes the next argument. Text that does not fit is cut as snprintf
 * cuts it, and the sentence becomes text only (msg 0, no arguments). */
__attribute__((format(printf, 3, 4))) void tally__sayf(tally__say *s, const char *kinds, const char *fmt, ...);
/* The value of argument `index` (an amount's minor units and decimals). */
void tally__say_value(tally__say *s, uint32_t index, int64_t value, uint32_t decimals);
/* Marks the text appended since offset `from` (s->len taken before) as one
 * argument of kind (a TALLY_ARG_COMMAND around "BUY %s"), placed before the
 * arguments inside it so args stay in text order. More than fit: text only. */
void tally__say_span(tally__say *s, uint32_t kind, size_t from);
/* Arguments of a piece of text built elsewhere (a list of names with
 * amounts), relative to that piece; spliced into a sentence where the piece
 * is appended. More than fit: `over`, and the sentence becomes text only. */
typedef struct tally__say_marks {
  uint32_t count;
  bool over;
  tally_effect_arg arg[TALLY_EFFECT_ARGS_MAX];
} tally__say_marks;
void tally__say_mark(tally__say_marks *m, uint32_t kind, size_t start, size_t len, int64_t value, uint32_t decimals);
/* Appends piece (as "%s") with m's arguments, shifted to where it lands. */
void tally__say_splice(tally__say *s, const char *piece, const tally__say_marks *m);
/* The arguments encoded for the effect frame (tally_effect_args_parse reads
 * them) into out (cap >= TALLY_EFFECT_ARGS_BYTES_MAX + 1); "" for msg 0. */
void tally__say_args(const tally__say *s, char *out, size_t cap);

#endif
