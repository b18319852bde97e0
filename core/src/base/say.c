/* say.c — sentences with their arguments (contract in say.h), and the
 * public decoder of the encoded arguments, tally_effect_args_parse. */
#include "say.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void tally__say_init(tally__say *s, uint32_t msg) {
  memset(s, 0, sizeof *s);
  s->msg = msg;
}

static void say_lost(tally__say *s) {
  s->msg = TALLY_MSG_TEXT;
  s->count = 0;
}

static uint32_t kind_of(char k) {
  switch (k) {
  case 'a': return TALLY_ARG_ACCOUNT;
  case 'm': return TALLY_ARG_AMOUNT;
  case 't': return TALLY_ARG_TEXT;
  case 'r': return TALLY_ARG_ROOM;
  case 's': return TALLY_ARG_SKU;
  case 'n': return TALLY_ARG_COUNT;
  case 'R': return TALLY_ARG_RECEIPT;
  default: return 0;
  }
}

/* One conversion (spec is "%...c", NUL-terminated) with its value from ap,
 * appended; *num gets an integer conversion's value. The spec is one of
 * the caller's own formats, which the compiler checked already. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int one_conversion(char *out, size_t cap, const char *spec, size_t n, va_list *ap, int64_t *num) {
  char conv = spec[n - 1];
  int stars = 0, w[2] = {0, 0};
  for (size_t i = 1; i < n - 1; i++)
    if (spec[i] == '*' && stars < 2) w[stars++] = va_arg(*ap, int);
  bool ll = strstr(spec, "ll") != NULL, l = !ll && strchr(spec, 'l') != NULL, z = strchr(spec, 'z') != NULL;
  *num = 0;
#define PUT(v) (stars == 2 ? snprintf(out, cap, spec, w[0], w[1], v) \
                : stars == 1 ? snprintf(out, cap, spec, w[0], v) : snprintf(out, cap, spec, v))
  switch (conv) {
  case 's': return PUT(va_arg(*ap, const char *));
  case 'c': return PUT(va_arg(*ap, int));
  case 'd': case 'i': {
    long long v = ll ? va_arg(*ap, long long) : l ? va_arg(*ap, long) : z ? (long long)va_arg(*ap, size_t)
                                                                        : va_arg(*ap, int);
    *num = (int64_t)v;
    return ll ? PUT(v) : l ? PUT((long)v) : z ? PUT((size_t)v) : PUT((int)v);
  }
  case 'u': case 'x': case 'X': {
    unsigned long long v = ll ? va_arg(*ap, unsigned long long) : l ? va_arg(*ap, unsigned long)
                         : z ? va_arg(*ap, size_t) : va_arg(*ap, unsigned);
    *num = v > (unsigned long long)INT64_MAX ? INT64_MAX : (int64_t)v;
    return ll ? PUT(v) : l ? PUT((unsigned long)v) : z ? PUT((size_t)v) : PUT((unsigned)v);
  }
  default: return -1; /* not used by the engine's sentences */
  }
#undef PUT
}
#pragma GCC diagnostic pop

void tally__sayf(tally__say *s, const char *kinds, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t cap = sizeof s->text;
  size_t k = 0; /* conversions seen */
  for (const char *p = fmt; *p;) {
    if (*p != '%' || p[1] == '%') { /* a literal run, or "%%" */
      size_t lit = *p == '%' ? 1 : strcspn(p, "%");
      size_t room = cap - 1 - s->len, put = lit < room ? lit : room;
      memcpy(s->text + s->len, p, put);
      s->len += put;
      s->text[s->len] = 0;
      if (put < lit) say_lost(s);
      p += *p == '%' ? 2 : lit;
      continue;
    }
    const char *pct = p;
    /* a conversion: '%' flags width precision length conv */
    size_t n = 1 + strspn(pct + 1, "-+ #0123456789.*hlzjt");
    char spec[32];
    if (!pct[n] || n + 1 >= sizeof spec) break; /* not one of ours */
    n++;
    memcpy(spec, pct, n);
    spec[n] = 0;
    int64_t num;
    size_t start = s->len;
    int w = one_conversion(s->text + s->len, cap - s->len, spec, n, &ap, &num);
    if (w < 0) break;
    if ((size_t)w >= cap - s->len) {
      s->len = cap - 1;
      say_lost(s);
    } else {
      s->len += (size_t)w;
    }
    char kc = kinds && k < strlen(kinds) ? kinds[k] : '-';
    uint32_t kind = kind_of(kc);
    if (kind && s->msg != TALLY_MSG_TEXT) {
      if (s->count >= TALLY_EFFECT_ARGS_MAX) {
        say_lost(s);
      } else {
        tally_effect_arg *a = &s->arg[s->count++];
        *a = (tally_effect_arg){.kind = kind, .start = (uint32_t)start, .len = (uint32_t)(s->len - start)};
        if (kind == TALLY_ARG_COUNT || kind == TALLY_ARG_RECEIPT) a->value = num;
      }
    }
    k++;
    p = pct + n;
  }
  va_end(ap);
}

void tally__say_value(tally__say *s, uint32_t index, int64_t value, uint32_t decimals) {
  if (index >= s->count) return; /* lost: text only */
  s->arg[index].value = value;
  s->arg[index].decimals = decimals;
}

void tally__say_span(tally__say *s, uint32_t kind, size_t from) {
  if (s->msg == TALLY_MSG_TEXT) return;
  if (from > s->len || s->count >= TALLY_EFFECT_ARGS_MAX) {
    say_lost(s);
    return;
  }
  uint32_t at = s->count;
  while (at > 0 && s->arg[at - 1].start >= from) at--;
  memmove(&s->arg[at + 1], &s->arg[at], (s->count - at) * sizeof s->arg[0]);
  s->arg[at] = (tally_effect_arg){.kind = kind, .start = (uint32_t)from, .len = (uint32_t)(s->len - from)};
  s->count++;
}

void tally__say_mark(tally__say_marks *m, uint32_t kind, size_t start, size_t len, int64_t value, uint32_t decimals) {
  if (m->count >= TALLY_EFFECT_ARGS_MAX) {
    m->over = true;
    return;
  }
  m->arg[m->count++] = (tally_effect_arg){.kind = kind, .start = (uint32_t)start, .len = (uint32_t)len,
                                          .decimals = decimals, .value = value};
}

void tally__say_splice(tally__say *s, const char *piece, const tally__say_marks *m) {
  size_t base = s->len;
  tally__sayf(s, "", "%s", piece);
  if (s->msg == TALLY_MSG_TEXT) return;
  if (m->over || s->count + m->count > TALLY_EFFECT_ARGS_MAX) {
    say_lost(s);
    return;
  }
  for (uint32_t i = 0; i < m->count; i++) {
    tally_effect_arg a = m->arg[i];
    a.start += (uint32_t)base;
    if (a.start + a.len > s->len) { /* cut: the piece did not fit */
      say_lost(s);
      return;
    }
    s->arg[s->count++] = a;
  }
}

void tally__say_args(const tally__say *s, char *out, size_t cap) {
  size_t len = 0;
  out[0] = 0;
  if (s->msg == TALLY_MSG_TEXT) return;
  for (uint32_t i = 0; i < s->count; i++) {
    const tally_effect_arg *a = &s->arg[i];
    char one[64];
    int n;
    if (a->kind == TALLY_ARG_AMOUNT)
      n = snprintf(one, sizeof one, "%s%u:%u+%u=%" PRId64 "/%u", i ? "," : "", a->kind, a->start, a->len, a->value,
                   a->decimals);
    else if (a->kind == TALLY_ARG_COUNT || a->kind == TALLY_ARG_RECEIPT)
      n = snprintf(one, sizeof one, "%s%u:%u+%u=%" PRId64, i ? "," : "", a->kind, a->start, a->len, a->value);
    else
      n = snprintf(one, sizeof one, "%s%u:%u+%u", i ? "," : "", a->kind, a->start, a->len);
    /* Never a part of the arguments: all of them, or none (text only). */
    if (n < 0 || (size_t)n >= cap - len || len + (size_t)n > TALLY_EFFECT_ARGS_BYTES_MAX) {
      out[0] = 0;
      return;
    }
    memcpy(out + len, one, (size_t)n + 1);
    len += (size_t)n;
  }
}

/* ---- tally_effect_args_parse -------------------------------------------------- */
/* A decimal number at *p (optionally signed) into *v; false if none or out
 * of range. */
static bool parse_num(const char **p, bool sign, int64_t *v) {
  const char *q = *p;
  bool neg = sign && *q == '-';
  if (neg) q++;
  if (*q < '0' || *q > '9') return false;
  uint64_t acc = 0;
  for (; *q >= '0' && *q <= '9'; q++) {
    if (acc > (UINT64_C(1) << 63) / 10) return false;
    acc = acc * 10 + (uint64_t)(*q - '0');
  }
  if (acc > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) return false;
  *v = neg ? (acc == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
  *p = q;
  return true;
}

int tally_effect_args_parse(const char *text, const char *args, tally_effect_arg *out, size_t max, size_t *count) {
  if (!text || !args || !count || (max && !out)) return TALLY_EINVAL;
  *count = 0;
  size_t text_len = strlen(text);
  if (strlen(args) > TALLY_EFFECT_ARGS_BYTES_MAX) return TALLY_EFRAME;
  for (const char *p = args; *p;) {
    if (*count && *p++ != ',') return TALLY_EFRAME;
    int64_t kind, start, len, value = 0, decimals = 0;
    if (!parse_num(&p, false, &kind) || *p++ != ':' || !parse_num(&p, false, &start) || *p++ != '+' ||
        !parse_num(&p, false, &len))
      return TALLY_EFRAME;
    if (kind < TALLY_ARG_ACCOUNT || kind > TALLY_ARG_KIND_LAST) return TALLY_EFRAME;
    if ((uint64_t)start > text_len || (uint64_t)len > text_len - (uint64_t)start) return TALLY_EFRAME;
    bool valued = kind == TALLY_ARG_AMOUNT || kind == TALLY_ARG_COUNT || kind == TALLY_ARG_RECEIPT;
    if (valued) {
      if (*p++ != '=' || !parse_num(&p, kind == TALLY_ARG_AMOUNT, &value)) return TALLY_EFRAME;
      if (kind == TALLY_ARG_AMOUNT && (*p++ != '/' || !parse_num(&p, false, &decimals) || decimals > 18))
        return TALLY_EFRAME;
    }
    if (*p && *p != ',') return TALLY_EFRAME;
    if (*count >= max) return TALLY_ETOOBIG;
    out[*count] = (tally_effect_arg){.kind = (uint32_t)kind, .start = (uint32_t)start, .len = (uint32_t)len,
                                     .decimals = (uint32_t)decimals, .value = value};
    (*count)++;
  }
  return TALLY_OK;
}
