/* room_lines.c — room lines tallyd refuses from hosts that cannot hide
 * them (issue 14: quizzes).
 *
 * An IRC or Prosody host intercepts a command line before the room sees
 * it (its HELLO has TALLY_CAP_INTERCEPT_COMMANDS); a Matrix AS, the XMPP
 * component and any frame client whose HELLO lacks that bit cannot: the
 * room has seen the line already. A quiz answer said there is everyone's,
 * and a QUIZ START line there shows the answers with the question. So
 * those two are refused here, before the engine sees them, and their
 * sender is told to say them privately (QUIZ START <room> ...,
 * ANSWER <text>). Everything else goes on as it is. */
#include <string.h>
#include <strings.h>

#include "tallyd.h"

/* The word at *s after spaces (and one leading '!' or '/' for the first):
 * its start, its length in *n; *s moves past it. */
static const char *next_word(const char **s, size_t *n) {
  const char *p = *s;
  while (*p == ' ' || *p == '\t') p++;
  const char *w = p;
  while (*p && *p != ' ' && *p != '\t') p++;
  *n = (size_t)(p - w);
  *s = p;
  return w;
}

static int word_is(const char *w, size_t n, const char *word) {
  return n == strlen(word) && strncasecmp(w, word, n) == 0;
}

const char *td_room_line_refusal(const char *channel, const char *text) {
  if (!channel || !channel[0] || !text) return NULL; /* a private line: nothing to hide */
  const char *p = text;
  while (*p == ' ' || *p == '\t') p++;
  if (*p == '!' || *p == '/') p++;
  size_t n;
  const char *w = next_word(&p, &n);
  if (word_is(w, n, "ANSWER"))
    return "answer privately: this room shows every line to everyone, so send ANSWER <text> to tally in a "
           "private message (nothing was done)";
  if (word_is(w, n, "QUIZ")) {
    w = next_word(&p, &n);
    if (word_is(w, n, "START"))
      return "start the quiz privately: this room shows every line, answers included, so send "
             "QUIZ START <room> <seconds> <question> | <answer> to tally in a private message (nothing was done)";
  }
  return NULL;
}
