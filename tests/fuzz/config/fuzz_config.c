/* fuzz_config.c — libFuzzer target for the configuration table
 * (core/src/base/config.c, the keys of every feature): tally_config_set on fuzzed keys and values, then
 * tally_config_check. `tally --set k=v` reaches exactly these two calls;
 * config files reach them through tally_config_load_text (config_file.c),
 * which the same input is also fed to whole.
 *
 * Input layout: byte 0 sets the size of the error buffer (0..255, so short
 * and absent buffers are exercised); the rest is lines "key=value" split on
 * '\n' and the first '='. A line without '=' is a key with value "".
 *
 * Properties: nothing crashes; set answers TALLY_OK or TALLY_ECONFIG (never
 * anything else for non-NULL arguments) and, when refusing, leaves a
 * NUL-terminated message inside the buffer; a numeric key accepted from
 * text is stored exactly; check answers TALLY_OK or TALLY_ECONFIG, and OK
 * only for a config whose every field is in range. load_text answers OK,
 * ECONFIG or ENOMEM; a refusal says "fuzz.conf..." inside the buffer,
 * leaves the config unchanged and hands out no file; an accepted file's
 * config then checks like any other (its strings live in the file).
 *
 * Build and run: tests/fuzz/run.sh (see docs/FUZZING.md). The features'
 * keys come with runtime.c's feature table, so the target links the plain
 * build's libtally.a besides the config sources it instruments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tally.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { CONFIG_INPUT_MAX = 4096, ERRBUF_GUARD = 8 };

typedef struct doc_probe {
  const char *key;
  int found;
} doc_probe;

static void doc_find(void *ud, const char *key, const char *default_text, const char *help) {
  doc_probe *p = ud;
  FUZZ_CHECK(key && default_text && help);
  if (strcmp(key, p->key) == 0) p->found = 1;
}

/* The error buffer sits inside a guard of known bytes: a write past
 * err_len shows as a changed guard even where ASan would not see it. */
static void check_errbuf(const char *buf, size_t err_len, int rc) {
  for (size_t i = err_len; i < err_len + ERRBUF_GUARD; i++) FUZZ_CHECK(buf[i] == '#');
  if (rc != TALLY_OK && err_len > 0) FUZZ_CHECK(memchr(buf, 0, err_len) != NULL);
}

static void check_set(tally_config *cfg, const char *key, const char *value, size_t err_len) {
  char err[256 + ERRBUF_GUARD];
  memset(err, '#', sizeof err);
  tally_config before = *cfg;
  int rc = tally_config_set(cfg, key, value, err_len ? err : NULL, err_len);
  FUZZ_CHECK(rc == TALLY_OK || rc == TALLY_ECONFIG);
  if (err_len) check_errbuf(err, err_len, rc);
  doc_probe probe = {key, 0};
  tally_config_describe(doc_find, &probe);
  if (!probe.found) FUZZ_CHECK(rc == TALLY_ECONFIG);
  if (rc != TALLY_OK) {
    FUZZ_CHECK(memcmp(&before, cfg, sizeof before) == 0); /* refusal changes nothing */
    return;
  }
  FUZZ_CHECK(cfg->size == sizeof *cfg && cfg->version == TALLY_CONFIG_VERSION);
  /* Spot-check that accepted numbers land in their field unchanged. */
  if (strcmp(key, "fee_bps") == 0) FUZZ_CHECK(cfg->fee_bps == strtoull(value, NULL, 10));
  if (strcmp(key, "decimals") == 0) FUZZ_CHECK(cfg->currency_decimals <= 6);
  if (strcmp(key, "daily_cap") == 0)
    FUZZ_CHECK(cfg->daily_cap_minor == (int64_t)strtoull(value, NULL, 10));
  if (strcmp(key, "currency") == 0) FUZZ_CHECK(cfg->currency == value);
}

/* The whole input as a config file. */
static void check_load_text(const char *text, size_t len, size_t err_len) {
  tally_config cfg, before;
  tally_config_init(&cfg);
  before = cfg;
  char err[256 + ERRBUF_GUARD];
  memset(err, '#', sizeof err);
  tally_config_file *file = NULL;
  int rc = tally_config_load_text(&cfg, "fuzz.conf", text, len, &file, err_len ? err : NULL, err_len);
  FUZZ_CHECK(rc == TALLY_OK || rc == TALLY_ECONFIG || rc == TALLY_ENOMEM);
  if (err_len) check_errbuf(err, err_len, rc);
  if (rc != TALLY_OK) {
    FUZZ_CHECK(file == NULL);
    FUZZ_CHECK(memcmp(&before, &cfg, sizeof cfg) == 0);
    if (rc == TALLY_ECONFIG && err_len > 9) FUZZ_CHECK(strncmp(err, "fuzz.conf", 9) == 0);
    return;
  }
  FUZZ_CHECK(file != NULL && cfg.size == sizeof cfg);
  rc = tally_config_check(&cfg, NULL, 0);
  FUZZ_CHECK(rc == TALLY_OK || rc == TALLY_ECONFIG);
  if (rc == TALLY_OK) FUZZ_CHECK(cfg.dsn && cfg.dsn[0] && strlen(cfg.dsn) <= TALLY_CONFIG_LINE_BYTES_MAX);
  tally_config_file_free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > CONFIG_INPUT_MAX) return 0;
  size_t err_len = data[0];
  check_load_text((const char *)data + 1, size - 1, err_len);
  /* Strings set into the config are borrowed, so the copy lives until the
   * final check. */
  char *text = malloc(size);
  FUZZ_CHECK(text);
  memcpy(text, data + 1, size - 1);
  text[size - 1] = 0;

  tally_config cfg;
  tally_config_init(&cfg);
  char err[256 + ERRBUF_GUARD];
  memset(err, '#', sizeof err);
  /* Defaults alone lack a dsn: refused with a message. */
  FUZZ_CHECK(tally_config_check(&cfg, err, 256) == TALLY_ECONFIG && err[0]);

  char *line = text, *end = text + (size - 1);
  while (line < end) {
    char *nl = memchr(line, '\n', (size_t)(end - line));
    if (nl) *nl = 0;
    char *eq = strchr(line, '=');
    const char *value = "";
    if (eq) {
      *eq = 0;
      value = eq + 1;
    }
    check_set(&cfg, line, value, err_len);
    if (!nl) break;
    line = nl + 1;
  }
  memset(err, '#', sizeof err);
  int rc = tally_config_check(&cfg, err_len ? err : NULL, err_len);
  FUZZ_CHECK(rc == TALLY_OK || rc == TALLY_ECONFIG);
  if (err_len) check_errbuf(err, err_len, rc);
  if (rc == TALLY_OK) {
    FUZZ_CHECK(cfg.dsn && cfg.dsn[0] && cfg.signing_key_path && cfg.signing_key_path[0]);
    FUZZ_CHECK(cfg.currency_decimals <= 6 && cfg.fee_bps <= 5000 && cfg.batch_max <= cfg.queue_depth);
    FUZZ_CHECK(cfg.daily_cap_minor >= 0 && cfg.welcome_grant_minor >= 0);
    FUZZ_CHECK(cfg.accounts_max >= 16 && cfg.keys_max >= 1024 && cfg.purchases_max >= 1024);
  }
  free(text);
  return 0;
}
