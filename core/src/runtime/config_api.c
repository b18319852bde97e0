/* config_api.c — tally.h's tally_config_* functions on the table of every
 * registered key: the core's (base/config.c) and each feature's (its files,
 * named by runtime.c's feature table). They live here, in the top layer,
 * because only this layer may name the features; base/config.c holds the
 * code that reads any such table. */
#include "config.h"
#include "runtime.h"
#include "tally.h"

void tally_config_init_size(tally_config *cfg, size_t size) {
  tally__config_init_size_in(tally__config_table_get(), cfg, size);
}

void(tally_config_init)(tally_config *cfg) { tally_config_init_size(cfg, sizeof *cfg); }

int tally_config_set(tally_config *cfg, const char *key, const char *value, char *err, size_t err_len) {
  return tally__config_set_in(tally__config_table_get(), cfg, key, value, err, err_len);
}

/* A registered table that is not one (a key declared twice...) fails the
 * check, so no engine starts on it, with the key named. */
int tally_config_check(const tally_config *host, char *err, size_t err_len) {
  const tally__config_table *t = tally__config_table_get();
  int rc = tally__config_table_check(t, err, err_len);
  if (rc) return rc;
  return tally__config_check_in(t, host, err, err_len);
}

void tally_config_describe(tally_config_doc_cb fn, void *ud) {
  tally__config_describe_in(tally__config_table_get(), fn, ud);
}

int tally__config_import(tally_config *out, const tally_config *cfg, char *err, size_t err_len) {
  return tally__config_import_in(tally__config_table_get(), out, cfg, err, err_len);
}
