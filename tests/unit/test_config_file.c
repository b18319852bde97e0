/* test_config_file.c — tally_config_load_file / _text: `key = value` lines
 * through tally_config_set's table; every refusal names the file and line,
 * leaves the config as it was and hands out no file; the strings set point
 * into the tally_config_file the caller frees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tally.h"

static char err[TALLY_ERRBUF_BYTES];

/* Loads text as "tally.conf" into a fresh config; returns the code. */
static int load(tally_config *cfg, const char *text, tally_config_file **f) {
  tally_config_init(cfg);
  memset(err, 0, sizeof err);
  return tally_config_load_text(cfg, "tally.conf", text, strlen(text), f, err, sizeof err);
}

/* text is refused with a message that contains want; cfg and file untouched. */
static void refused(const char *text, const char *want) {
  tally_config cfg, fresh;
  tally_config_file *f = (tally_config_file *)&f; /* not NULL: must be reset */
  assert_int_equal(load(&cfg, text, &f), TALLY_ECONFIG);
  if (!strstr(err, want)) fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, want);
  assert_non_null(strstr(err, want));
  assert_null(f);
  tally_config_init(&fresh);
  assert_memory_equal(&cfg, &fresh, sizeof cfg);
}

static void test_loads_keys_comments_and_blanks(void **state) {
  (void)state;
  const char *text = "# tally.conf\n"
                     "\n"
                     "dsn = host=/run/pg dbname=tally password=a#b\n"
                     "   # an indented comment\n"
                     "\tfee_bps\t=\t300  \r\n"
                     "signing_key=var/k.pem\n"
                     "currency = crédits\n"
                     "daily_cap = 5000"; /* no final line end */
  tally_config cfg;
  tally_config_file *f = NULL;
  assert_int_equal(load(&cfg, text, &f), TALLY_OK);
  assert_non_null(f);
  assert_string_equal(cfg.dsn, "host=/run/pg dbname=tally password=a#b"); /* '#' inside a value is kept */
  assert_int_equal(cfg.fee_bps, 300);
  assert_string_equal(cfg.signing_key_path, "var/k.pem");
  assert_string_equal(cfg.currency, "crédits");
  assert_int_equal(cfg.daily_cap_minor, 5000);
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_OK);
  tally_config_file_free(f);
  tally_config_file_free(NULL);
  /* An empty file and one of comments only change nothing. */
  assert_int_equal(load(&cfg, "", &f), TALLY_OK);
  tally_config_file_free(f);
  assert_int_equal(load(&cfg, "# nothing\n\n", &f), TALLY_OK);
  tally_config_file_free(f);
}

static void test_bad_lines_name_file_and_line(void **state) {
  (void)state;
  refused("dsn = x\n\nfee_bpz = 250\n", "tally.conf:3: unknown key 'fee_bpz'");
  refused("fee_bps = 99999\n", "tally.conf:1: fee_bps: out of range (0..5000)");
  refused("fee_bps = -1\n", "tally.conf:1: fee_bps: '-1' is not a plain whole number");
  refused("dsn = x\nfee_bps 250\n", "tally.conf:2: expected 'key = value'");
  refused(" = 250\n", "tally.conf:1: expected 'key = value'");
  refused("fee_bps = 1\n# c\nfee_bps = 2\n", "tally.conf:3: duplicate key 'fee_bps' (first on line 1)");
  refused("currency = cr\xc3\x28" "dits\n", "tally.conf:1: invalid UTF-8");
  refused("dsn = x\ncurrency = \xed\xa0\x80\n", "tally.conf:2: invalid UTF-8"); /* a surrogate */
  refused("dsn = x\x01y\n", "tally.conf:1: control character");
  refused("dsn = x\rfee_bps = 1\n", "tally.conf:1: control character"); /* a lone CR is no line end */
  /* A NUL inside the text (a binary file). */
  tally_config cfg;
  tally_config_init(&cfg);
  tally_config_file *f = NULL;
  assert_int_equal(tally_config_load_text(&cfg, "tally.conf", "dsn = x\nfee\0_bps = 1\n", 21, &f, err, sizeof err),
                   TALLY_ECONFIG);
  assert_non_null(strstr(err, "tally.conf:2: control character"));
  assert_null(f);
}

static void test_limits(void **state) {
  (void)state;
  /* A line of exactly the limit is read; one byte more is refused. */
  size_t n = TALLY_CONFIG_LINE_BYTES_MAX;
  char *text = malloc(n + 16);
  assert_non_null(text);
  memset(text, 'a', n + 1);
  memcpy(text, "dsn=", 4);
  text[n] = '\n';
  text[n + 1] = 0;
  tally_config cfg;
  tally_config_file *f = NULL;
  assert_int_equal(load(&cfg, text, &f), TALLY_OK);
  assert_int_equal(strlen(cfg.dsn), n - 4);
  tally_config_file_free(f);
  memset(text, 'a', n + 1);
  memcpy(text, "dsn=", 4);
  text[n + 1] = '\n';
  text[n + 2] = 0;
  refused(text, "tally.conf:1: line longer than 1024 bytes");
  free(text);
  /* A file over the limit, even of blank lines. */
  size_t big = TALLY_CONFIG_FILE_BYTES_MAX + 1;
  text = malloc(big + 1);
  assert_non_null(text);
  memset(text, '\n', big);
  text[big] = 0;
  refused(text, "tally.conf: longer than 65536 bytes");
  free(text);
}

static void test_file_from_disk_and_missing_file(void **state) {
  (void)state;
  char path[256];
  snprintf(path, sizeof path, "%s/test-config-%d.conf", getenv("TALLY_TMP") ? getenv("TALLY_TMP") : "/tmp",
           (int)getpid());
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("dsn = host=/x\nsigning_key = k.pem\nwriters = 3\n", fp);
  fclose(fp);
  tally_config cfg;
  tally_config_init(&cfg);
  tally_config_file *f = NULL;
  assert_int_equal(tally_config_load_file(&cfg, path, &f, err, sizeof err), TALLY_OK);
  assert_int_equal(cfg.writers, 3);
  assert_string_equal(cfg.dsn, "host=/x");
  tally_config_file_free(f);
  /* The error names the path as given. */
  fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("writers = 3\nwriters = 9\n", fp);
  fclose(fp);
  assert_int_equal(tally_config_load_file(&cfg, path, &f, err, sizeof err), TALLY_ECONFIG);
  char want[300];
  snprintf(want, sizeof want, "%s:2: duplicate key 'writers'", path);
  assert_non_null(strstr(err, want));
  unlink(path);
  assert_int_equal(tally_config_load_file(&cfg, path, &f, err, sizeof err), TALLY_EIO);
  snprintf(want, sizeof want, "%s: No such file or directory", path);
  assert_string_equal(err, want);
  assert_null(f);
  /* Arguments a programmer must give. */
  assert_int_equal(tally_config_load_file(NULL, path, &f, err, sizeof err), TALLY_EINVAL);
  assert_int_equal(tally_config_load_file(&cfg, NULL, &f, err, sizeof err), TALLY_EINVAL);
  assert_int_equal(tally_config_load_file(&cfg, path, NULL, err, sizeof err), TALLY_EINVAL);
  /* A tiny error buffer is still terminated, and never overrun. */
  char tiny[8 + 4];
  memset(tiny, '#', sizeof tiny);
  assert_int_equal(tally_config_load_text(&cfg, "tally.conf", "x = 1", 5, &f, tiny, 8), TALLY_ECONFIG);
  assert_int_equal(tiny[7], 0);
  assert_int_equal(tiny[8], '#');
}

/* A host built against an older tally.h: keys past its struct are refused
 * with the line, and nothing is written past it. */
static void test_older_host_struct(void **state) {
  (void)state;
  size_t size = offsetof(tally_config, grant_max_major);
  tally_config *cfg = malloc(size);
  assert_non_null(cfg);
  tally_config_init_size(cfg, size);
  tally_config_file *f = NULL;
  const char *ok = "fee_bps = 10\n";
  assert_int_equal(tally_config_load_text(cfg, "old.conf", ok, strlen(ok), &f, err, sizeof err), TALLY_OK);
  assert_int_equal(cfg->fee_bps, 10);
  assert_int_equal(cfg->size, size);
  tally_config_file_free(f);
  const char *bad = "fee_bps = 20\ngrant_max = 5\n";
  assert_int_equal(tally_config_load_text(cfg, "old.conf", bad, strlen(bad), &f, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "old.conf:2: grant_max: not in this program's tally_config"));
  assert_int_equal(cfg->fee_bps, 10); /* unchanged: the whole file or nothing */
  free(cfg);
}

/* Runs `$TALLY_CLI --config path config`; its exit status, output in out. */
static int cli_config(const char *path, char *out, size_t out_len) {
  const char *cli = getenv("TALLY_CLI");
  assert_non_null(cli); /* set by tests/run.sh */
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' --config '%s' config 2>&1", cli, path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, out_len - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

/* The CLI checks a file as the engine would read it. */
static void test_cli_config_checks_a_file(void **state) {
  (void)state;
  char path[256], out[1024], want[320];
  snprintf(path, sizeof path, "%s/test-cli-%d.conf", getenv("TALLY_TMP") ? getenv("TALLY_TMP") : "/tmp", (int)getpid());
  write_file(path, "dsn = host=/x\nfee_bps = 100\n");
  assert_int_equal(cli_config(path, out, sizeof out), 0);
  snprintf(want, sizeof want, "%s: ok", path);
  assert_non_null(strstr(out, want));
  write_file(path, "dsn = host=/x\n\nfee_bpz = 100\n");
  assert_int_equal(cli_config(path, out, sizeof out), 2);
  snprintf(want, sizeof want, "%s:3: unknown key 'fee_bpz'", path);
  assert_non_null(strstr(out, want));
  /* Each line good, the whole refused by tally_config_check. */
  write_file(path, "fee_bps = 100\n");
  assert_int_equal(cli_config(path, out, sizeof out), 1);
  assert_non_null(strstr(out, "a PostgreSQL connection string is required"));
  unlink(path);
  assert_int_equal(cli_config(path, out, sizeof out), 2);
  assert_non_null(strstr(out, "No such file or directory"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loads_keys_comments_and_blanks),
      cmocka_unit_test(test_bad_lines_name_file_and_line),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_file_from_disk_and_missing_file),
      cmocka_unit_test(test_older_host_struct),
      cmocka_unit_test(test_cli_config_checks_a_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
