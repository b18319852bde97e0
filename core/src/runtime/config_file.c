/* config_file.c — tally_config_load_file / _text: a config file read
 * through the same table as tally_config_set (config.c).
 *
 * Format: one `key = value` per line; blank lines and lines whose first
 * non-blank character is '#' are skipped; spaces and tabs around the key and
 * the value are dropped; the value is the rest of the line (no quoting, and
 * a '#' inside a value is part of it: a DSN's password may hold one). CRLF
 * line ends are accepted. A key given twice is refused, so a file never
 * means something other than what its first reader saw. The whole file is
 * checked before cfg changes: on any error cfg is as it was.
 *
 * Ownership: tally_config's strings are borrowed, so the text the values
 * point into belongs to a tally_config_file that the caller frees (after
 * tally_engine_new, which copies what it keeps). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"
#include "text.h"

struct tally_config_file {
  char *text; /* the file, NUL at each line end, values inside it */
};

/* Keys set by one file: each known key at most once, and the table has
 * fewer than this. */
enum { CONFIG_FILE_KEYS_MAX = 128 };

__attribute__((format(printf, 3, 4))) static int file_fail(char *err, size_t err_len, const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    tally__text_trim_tail(err, strlen(err)); /* a cut message stays valid UTF-8 */
  }
  return TALLY_ECONFIG;
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

static char *trim(char *s, char *end) {
  while (s < end && blank(*s)) s++;
  while (end > s && blank(end[-1])) end--;
  *end = 0;
  return s;
}

/* UTF-8 and no control characters but TAB, on line[0..len). */
static int line_text_check(const char *line, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && line[i] != '\t') continue;
    int rc = tally__text_check(line + start, i - start);
    if (rc) return rc;
    start = i + 1;
  }
  return TALLY_OK;
}

typedef struct seen_key {
  const char *key;
  unsigned line;
} seen_key;

/* Parses text (NUL-terminated, modified in place) into cfg. */
static int parse(tally_config *cfg, const char *name, char *text, char *err, size_t err_len) {
  seen_key seen[CONFIG_FILE_KEYS_MAX];
  size_t nseen = 0;
  unsigned lineno = 0;
  for (char *line = text; *line || lineno == 0;) {
    lineno++;
    char *nl = strchr(line, '\n');
    char *end = nl ? nl : line + strlen(line);
    char *next = nl ? nl + 1 : end;
    if (end > line && end[-1] == '\r') end--;
    size_t len = (size_t)(end - line);
    if (len > TALLY_CONFIG_LINE_BYTES_MAX)
      return file_fail(err, err_len, "%s:%u: line longer than %d bytes", name, lineno, TALLY_CONFIG_LINE_BYTES_MAX);
    int rc = line_text_check(line, len);
    if (rc == TALLY_EBAD_UTF8) return file_fail(err, err_len, "%s:%u: invalid UTF-8", name, lineno);
    if (rc) return file_fail(err, err_len, "%s:%u: control character", name, lineno);
    char *s = trim(line, end);
    line = next;
    if (!*s || *s == '#') {
      if (!*line) break;
      continue;
    }
    char *eq = strchr(s, '=');
    if (!eq) return file_fail(err, err_len, "%s:%u: expected 'key = value'", name, lineno);
    char *key = trim(s, eq), *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
    if (!*key) return file_fail(err, err_len, "%s:%u: expected 'key = value'", name, lineno);
    for (size_t i = 0; i < nseen; i++)
      if (strcmp(seen[i].key, key) == 0)
        return file_fail(err, err_len, "%s:%u: duplicate key '%s' (first on line %u)", name, lineno, key,
                         seen[i].line);
    char why[TALLY_ERRBUF_BYTES] = "";
    rc = tally_config_set(cfg, key, value, why, sizeof why);
    if (rc) {
      /* "config fee_bps: ..." / "config: unknown key ..." -> after "name:N: " */
      const char *msg = strncmp(why, "config: ", 8) == 0 ? why + 8 : strncmp(why, "config ", 7) == 0 ? why + 7 : why;
      return file_fail(err, err_len, "%s:%u: %s", name, lineno, msg);
    }
    /* A known key was set, so there are at most as many as the table has. */
    if (nseen < CONFIG_FILE_KEYS_MAX) seen[nseen++] = (seen_key){key, lineno};
    if (!*line) break;
  }
  return TALLY_OK;
}

int tally_config_load_text(tally_config *cfg, const char *name, const char *text, size_t len,
                           tally_config_file **out, char *err, size_t err_len) {
  if (err && err_len) err[0] = 0;
  if (!cfg || !name || (!text && len) || !out) return TALLY_EINVAL;
  *out = NULL;
  if (len > TALLY_CONFIG_FILE_BYTES_MAX)
    return file_fail(err, err_len, "%s: longer than %d bytes", name, TALLY_CONFIG_FILE_BYTES_MAX);
  if (cfg->size < TALLY_CONFIG_SIZE_V1)
    return file_fail(err, err_len, "%s: the config struct was not set up by tally_config_init", name);
  if (len && memchr(text, 0, len)) {
    const char *nul = memchr(text, 0, len);
    unsigned lineno = 1;
    for (const char *p = text; p < nul; p++) lineno += *p == '\n';
    return file_fail(err, err_len, "%s:%u: control character", name, lineno);
  }
  tally_config_file *f = calloc(1, sizeof *f);
  char *copy = malloc(len + 1);
  if (!f || !copy) {
    free(f);
    free(copy);
    return TALLY_ENOMEM;
  }
  if (len) memcpy(copy, text, len);
  copy[len] = 0;
  f->text = copy;
  /* Work on a copy of the host's struct (its size: keys past it are
   * refused by tally_config_set); cfg changes only if the whole file is
   * good. */
  size_t n = cfg->size < sizeof(tally_config) ? cfg->size : sizeof(tally_config);
  tally_config work;
  memcpy(&work, cfg, n);
  work.size = (uint32_t)n;
  int rc = parse(&work, name, copy, err, err_len);
  if (rc) {
    tally_config_file_free(f);
    return rc;
  }
  uint32_t host_size = cfg->size;
  memcpy(cfg, &work, n);
  cfg->size = host_size;
  *out = f;
  return TALLY_OK;
}

int tally_config_load_file(tally_config *cfg, const char *path, tally_config_file **out, char *err,
                           size_t err_len) {
  if (err && err_len) err[0] = 0;
  if (!cfg || !path || !out) return TALLY_EINVAL;
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    int e = errno;
    file_fail(err, err_len, "%s: %s", path, strerror(e));
    return TALLY_EIO;
  }
  /* One byte more than allowed tells "too long" from "exactly at the limit". */
  char *buf = malloc(TALLY_CONFIG_FILE_BYTES_MAX + 1);
  if (!buf) {
    fclose(fp);
    return TALLY_ENOMEM;
  }
  size_t len = fread(buf, 1, TALLY_CONFIG_FILE_BYTES_MAX + 1, fp);
  int read_error = ferror(fp);
  fclose(fp);
  int rc;
  if (read_error) {
    file_fail(err, err_len, "%s: read error", path);
    rc = TALLY_EIO;
  } else {
    rc = tally_config_load_text(cfg, path, buf, len, out, err, err_len);
  }
  free(buf);
  return rc;
}

void tally_config_file_free(tally_config_file *f) {
  if (!f) return;
  free(f->text);
  free(f);
}
