/* test_abi.c — the `size, version` promise of tally.h: a host built against
 * an older (shorter) or newer (longer) struct than the library's works.
 * Inputs are read only up to their `size` (fields past it take defaults);
 * outputs are written only up to the host's size; a struct shorter than its
 * version-1 prefix is refused. Host structs are heap blocks of exactly the
 * host's size, so ASan reports any byte read or written past them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_internal.h"
#include "tally.h"

/* A host built before grant_max and the table shares were appended. */
#define OLD_CONFIG_SIZE offsetof(tally_config, grant_max_major)

static tally_config *old_config(void) {
  tally_config *cfg = malloc(OLD_CONFIG_SIZE);
  assert_non_null(cfg);
  tally_config_init_size(cfg, OLD_CONFIG_SIZE);
  return cfg;
}

static void test_config_init_writes_only_the_hosts_size(void **state) {
  (void)state;
  tally_config *cfg = old_config(); /* ASan: a write past OLD_CONFIG_SIZE fails here */
  assert_int_equal(cfg->size, OLD_CONFIG_SIZE);
  assert_int_equal(cfg->version, TALLY_CONFIG_VERSION);
  assert_int_equal(cfg->fee_bps, 250);
  assert_int_equal(cfg->rate_verify_per_min, 600);
  free(cfg);
  /* A newer host's longer struct: the library's prefix, the rest zeroed,
   * size = what the library filled. */
  unsigned char big[sizeof(tally_config) + 32];
  memset(big, 0xAB, sizeof big);
  tally_config_init_size((tally_config *)(void *)big, sizeof big);
  tally_config full;
  tally_config_init(&full);
  assert_int_equal(full.size, sizeof full);
  assert_int_equal(((tally_config *)(void *)big)->size, sizeof full);
  for (size_t i = sizeof full; i < sizeof big; i++) assert_int_equal(big[i], 0);
  assert_int_equal(((tally_config *)(void *)big)->items_per_creator, full.items_per_creator);
}

static void test_config_set_refuses_a_key_past_the_hosts_size(void **state) {
  (void)state;
  tally_config *cfg = old_config();
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally_config_set(cfg, "fee_bps", "300", err, sizeof err), TALLY_OK);
  assert_int_equal(cfg->fee_bps, 300);
  assert_int_equal(tally_config_set(cfg, "items_per_creator", "5", err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "items_per_creator: not in this program's tally_config"));
  assert_int_equal(tally_config_set(cfg, "grant_max", "5", err, sizeof err), TALLY_ECONFIG);
  free(cfg);
}

static void on_effect(void *ud, const tally_effect *eff) {
  ++*(int *)ud;
  assert_int_equal(eff->size, sizeof *eff);
  assert_true(TALLY_HAS_FIELD(eff, tally_effect, hint));
  assert_true(TALLY_HAS_FIELD(eff, tally_effect, text));
  assert_string_equal(eff->text, "hello");
  /* As a host would see a library that predates `hint`. */
  tally_effect old = *eff;
  old.size = TALLY_EFFECT_SIZE_V1;
  assert_false(TALLY_HAS_FIELD(&old, tally_effect, hint));
}

static void test_config_check_and_engine_new_take_defaults_past_size(void **state) {
  (void)state;
  tally_config *cfg = old_config();
  char key[256], err[TALLY_ERRBUF_BYTES] = "";
  snprintf(key, sizeof key, "%s/test-abi-%d.pem", getenv("TALLY_TMP") ? getenv("TALLY_TMP") : "/tmp", (int)getpid());
  cfg->dsn = "host=/nonexistent dbname=none";
  cfg->signing_key_path = key;
  assert_int_equal(tally_config_check(cfg, err, sizeof err), TALLY_OK);
  tally_engine *e = NULL;
  assert_int_equal(tally_engine_new(cfg, &e, err, sizeof err), TALLY_OK);
  /* The engine's copy: the host's fields, and the defaults past them. */
  assert_int_equal(e->cfg.size, sizeof(tally_config));
  assert_int_equal(e->cfg.items_per_creator, 1000);
  assert_int_equal(e->cfg.grant_max_major, 1000);
  assert_int_equal(e->cfg.coop_purchases_max, 32768);

  /* tally_stats of version 1, and a newer host's longer one. */
  tally_stats *s = malloc(TALLY_STATS_SIZE_V1);
  assert_non_null(s);
  tally_engine_stats_size(e, s, TALLY_STATS_SIZE_V1);
  assert_int_equal(s->size, TALLY_STATS_SIZE_V1);
  assert_int_equal(s->version, TALLY_STATS_VERSION);
  free(s);
  unsigned char big[sizeof(tally_stats) + 16];
  memset(big, 0xAB, sizeof big);
  tally_engine_stats_size(e, (tally_stats *)(void *)big, sizeof big);
  assert_int_equal(((tally_stats *)(void *)big)->size, sizeof(tally_stats));
  for (size_t i = sizeof(tally_stats); i < sizeof big; i++) assert_int_equal(big[i], 0);

  /* An effect is delivered whole; its size tells a host what it holds. */
  tally__emit(e, TALLY_EFFECT_ANNOUNCE, TALLY_OK, 0, 0, "", "#c", "hello");
  int delivered = 0;
  assert_int_equal(tally_engine_drain(e, on_effect, &delivered, 8), 1);
  assert_int_equal(delivered, 1);
  tally_engine_free(e);
  unlink(key);
  free(cfg);
}

static void test_config_smaller_than_v1_is_refused(void **state) {
  (void)state;
  tally_config cfg;
  tally_config_init(&cfg);
  cfg.dsn = "x";
  cfg.signing_key_path = "y";
  char err[TALLY_ERRBUF_BYTES] = "";
  cfg.size = TALLY_CONFIG_SIZE_V1 - 1;
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "smaller than any tally version"));
  assert_int_equal(tally_config_set(&cfg, "fee_bps", "1", err, sizeof err), TALLY_ECONFIG);
  tally_engine *e = NULL;
  assert_int_equal(tally_engine_new(&cfg, &e, err, sizeof err), TALLY_ECONFIG);
  assert_null(e);
  cfg.size = sizeof cfg;
  cfg.version = TALLY_CONFIG_VERSION + 1;
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_ECONFIG);
}

/* A command is read only up to its size; a newer host's longer struct is
 * read up to the library's; below the version-1 prefix it is refused. */
static void test_command_read_only_up_to_its_size(void **state) {
  (void)state;
  tally_command full = {.size = sizeof full, .version = TALLY_COMMAND_VERSION, .req_id = 7, .origin = "o",
                        .account = "a", .nick = "n", .channel = "", .msg_id = "m", .text = "WALLET",
                        .roles = TALLY_ROLE_OPER};
  uint8_t want[TALLY_FRAME_BYTES_MAX], got[TALLY_FRAME_BYTES_MAX];
  size_t want_len, got_len;
  assert_int_equal(tally_command_encode(&full, want, sizeof want, &want_len), TALLY_OK);
  /* Exactly the version-1 prefix, in a block of that size. */
  tally_command *v1 = malloc(TALLY_COMMAND_SIZE_V1);
  assert_non_null(v1);
  memcpy(v1, &full, TALLY_COMMAND_SIZE_V1);
  v1->size = TALLY_COMMAND_SIZE_V1;
  assert_int_equal(tally_command_encode(v1, got, sizeof got, &got_len), TALLY_OK);
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got, want, want_len);
  v1->size = TALLY_COMMAND_SIZE_V1 - 1;
  assert_int_equal(tally_command_encode(v1, got, sizeof got, &got_len), TALLY_EINVAL);
  v1->size = 0;
  assert_int_equal(tally_command_encode(v1, got, sizeof got, &got_len), TALLY_EINVAL);
  free(v1);
  /* A newer host: fields the library does not know are ignored. */
  unsigned char big[sizeof(tally_command) + 24];
  memset(big, 0xEE, sizeof big);
  memcpy(big, &full, sizeof full);
  ((tally_command *)(void *)big)->size = sizeof big;
  assert_int_equal(tally_command_encode((tally_command *)(void *)big, got, sizeof got, &got_len), TALLY_OK);
  assert_memory_equal(got, want, want_len);
}

static void test_presence_read_only_up_to_its_size(void **state) {
  (void)state;
  tally_presence *p = malloc(TALLY_PRESENCE_SIZE_V1);
  assert_non_null(p);
  /* A host of version 1: its struct ends at `present` (no network). */
  const tally_presence v1 = {.size = TALLY_PRESENCE_SIZE_V1 - 1, .version = TALLY_PRESENCE_VERSION,
                             .account = "a", .channel = "#c", .present = 1};
  memcpy(p, &v1, TALLY_PRESENCE_SIZE_V1);
  /* Refused on the size alone, before the engine is looked at: no engine
   * is running here, so an accepted one would be TALLY_ESTATE or a queue. */
  tally_engine *e = NULL;
  tally_config cfg;
  tally_config_init(&cfg);
  char key[256], err[TALLY_ERRBUF_BYTES] = "";
  snprintf(key, sizeof key, "%s/test-abi-p-%d.pem", getenv("TALLY_TMP") ? getenv("TALLY_TMP") : "/tmp", (int)getpid());
  cfg.dsn = "host=/nonexistent";
  cfg.signing_key_path = key;
  assert_int_equal(tally_engine_new(&cfg, &e, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_engine_submit_presence(e, p), TALLY_EINVAL);
  p->size = TALLY_PRESENCE_SIZE_V1;
  assert_int_equal(tally_engine_submit_presence(e, p), TALLY_OK); /* queued for the engine */
  tally_engine_free(e);
  unlink(key);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_init_writes_only_the_hosts_size),
      cmocka_unit_test(test_config_set_refuses_a_key_past_the_hosts_size),
      cmocka_unit_test(test_config_check_and_engine_new_take_defaults_past_size),
      cmocka_unit_test(test_config_smaller_than_v1_is_refused),
      cmocka_unit_test(test_command_read_only_up_to_its_size),
      cmocka_unit_test(test_presence_read_only_up_to_its_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
