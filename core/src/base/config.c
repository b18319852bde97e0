/* config.c — the declarative table of engine settings, and the code that
 * reads any such table.
 *
 * Every key of the core appears once below with its type, default, bounds
 * and help line; a feature declares its own keys the same way in its files
 * (tally__config_keys, config.h), named by its entry of runtime.c's feature
 * table. Parsing, validation and `tally config` come from the table of all
 * of them (the nginx ngx_command_t idea), which runtime/config_api.c passes
 * in: base cannot name the features above it. Unknown keys are errors. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "config.h"
#include "tally.h"
#include "text.h"

#define OFF(field) offsetof(tally_config, field)
static const tally__config_key core_keys[] = {
    {"dsn", TALLY__CFG_STR, OFF(dsn), "", 0, 0, "PostgreSQL connection string (libpq)"},
    {"signing_key", TALLY__CFG_STR, OFF(signing_key_path), "var/tally-signing.pem", 0, 0,
     "Ed25519 private key (PEM) that signs receipt batches; created if absent"},
    {"currency", TALLY__CFG_STR, OFF(currency), "credits", 0, 0, "name shown after amounts"},
    {"decimals", TALLY__CFG_U32, OFF(currency_decimals), "2", 0, 6,
     "digits after the point: 2 means 1.50 is 150 minor units"},
    {"fee_bps", TALLY__CFG_U32, OFF(fee_bps), "250", 0, 5000,
     "platform fee on purchases in basis points (250 = 2.5%)"},
    {"daily_cap", TALLY__CFG_I64, OFF(daily_cap_minor), "0", 0, INT64_MAX / 4,
     "per-buyer spend per UTC day in minor units; 0 = no cap"},
    {"welcome_grant", TALLY__CFG_I64, OFF(welcome_grant_minor), "0", 0, INT64_MAX / 4,
     "DEMO ONLY: credits granted once to each newly seen account"},
    {"consent_ttl", TALLY__CFG_U32, OFF(consent_ttl_s), "120", 10, 3600,
     "seconds a first-purchase CONFIRM code stays valid"},
    {"refund_window", TALLY__CFG_U32, OFF(refund_window_s), "86400", 0, 90u * 86400u,
     "default seconds after purchase during which REFUND works"},
    {"queue_depth", TALLY__CFG_U32, OFF(queue_depth), "16384", 64, 1u << 20,
     "events waiting for the engine; beyond it users get 'busy'"},
    {"batch_max", TALLY__CFG_U32, OFF(batch_max), "4096", 1, 8192,
     "operations per group commit"},
    {"writers", TALLY__CFG_U32, OFF(writers), "2", 1, 4,
     "PostgreSQL connections writing batches in parallel"},
    {"accounts_max", TALLY__CFG_U32, OFF(accounts_max), "200000", 16, 1u << 24,
     "accounts kept in memory"},
    {"items_max", TALLY__CFG_U32, OFF(items_max), "10000", 16, 1u << 20, "items kept in memory"},
    {"keys_max", TALLY__CFG_U32, OFF(keys_max), "262144", 1024, 1u << 24,
     "idempotency keys remembered (oldest forgotten first)"},
    {"coop_purchases_max", TALLY__CFG_U32, OFF(coop_purchases_max), "32768", 16, 1u << 22,
     "co-op and referral purchases whose shares are kept for refunds (oldest forgotten first: "
     "their refunds are then refused, never taken from the primary creator alone)"},
    {"purchases_max", TALLY__CFG_U32, OFF(purchases_max), "262144", 1024, 1u << 24,
     "refundable purchases remembered (oldest forgotten first)"},
    {"rate_account", TALLY__CFG_U32, OFF(rate_account_per_min), "60", 0, 1u << 20,
     "commands per account per minute; 0 = unlimited"},
    {"rate_channel", TALLY__CFG_U32, OFF(rate_channel_per_min), "600", 0, 1u << 20,
     "commands per channel per minute; 0 = unlimited"},
    {"rate_global", TALLY__CFG_U32, OFF(rate_global_per_min), "6000000", 0, 1u << 30,
     "commands per minute from everyone together (a safety cap); 0 = unlimited"},
    {"pending_timeout", TALLY__CFG_U32, OFF(pending_timeout_ms), "3000", 100, 600000,
     "milliseconds before a buyer whose purchase is not yet committed hears 'pending'"},
    {"rate_verify", TALLY__CFG_U32, OFF(rate_verify_per_min), "600", 0, 1u << 20,
     "VERIFY <receipt> checks against the ledger per minute, everyone together (its own bucket; "
     "0 = unlimited, the bounded queue still answers busy)"},
    {"grant_max", TALLY__CFG_I64, OFF(grant_max_major), "1000", 0, INT64_C(1000000000000),
     "largest single TALLY GRANT an operator may make from chat, in whole major units (1000 = "
     "1000.00 credits at 2 decimals); 0 = no cap. The admin CLI's `tally grant` is not capped"},
    {"items_per_creator", TALLY__CFG_U32, OFF(items_per_creator), "1000", 1, 1u << 20,
     "items one creator may have, drops, highlight tiers and deleted items included "
     "(memory keeps every item)"},
    {"network", TALLY__CFG_STR, OFF(network), "irc", 0, 0,
     "network of commands that name none (the in-process adapter's): lower case letters, digits, "
     "'.', '_', '-', at most 32; \"irc\" owns the accounts written before identities existed"},
    {"admins", TALLY__CFG_STR, OFF(admins), "", 0, 0,
     "accounts that are admins whatever the chat network says (so a network without operators "
     "can have them), separated by commas or spaces, e.g. alice,bob; the grant privilege still "
     "comes from the network"},
    {"mode", TALLY__CFG_STR, OFF(mode), "local", 0, 0,
     "local: the engine runs in this process; remote: a tallyd serves it over `address`"},
    {"address", TALLY__CFG_STR, OFF(address), "", 0, 0,
     "remote mode: tallyd's socket, unix:/run/tally/tally.sock or tls:host:port"},
    {"secret", TALLY__CFG_STR, OFF(secret), "", 0, 0,
     "remote mode: this network's shared secret, as tallyd has it (at least 16 bytes)"},
    {"instance", TALLY__CFG_STR, OFF(instance), "", 0, 0,
     "remote mode: stable id of this chat server in its network, e.g. its server name; "
     "a reconnect with the same id gets the answers it missed"},
    {"command_max_age", TALLY__CFG_U32, OFF(command_max_age_ms), "30000", 1000, 600000,
     "remote mode, milliseconds: a command unanswered when the link broke is resent after the reconnect only "
     "this long after it was said; after it the user is told the outcome is unknown"},
    {"remote_ca", TALLY__CFG_STR, OFF(remote_ca), "", 0, 0,
     "remote mode over tls: CA file (PEM) that signed tallyd's certificate; empty: the system's"},
    {"remote_cert", TALLY__CFG_STR, OFF(remote_cert), "", 0, 0,
     "remote mode over tls: client certificate (PEM), when tallyd requires one"},
    {"remote_key", TALLY__CFG_STR, OFF(remote_key), "", 0, 0, "remote mode over tls: its private key (PEM)"},
    {"adapter", TALLY__CFG_STR, OFF(adapter), "", 0, 0, "remote mode: adapter name sent in HELLO (logged by tallyd)"},
    {"caps", TALLY__CFG_U32, OFF(caps), "0", 0, 7,
     "remote mode: HELLO capability bits (1 intercepts command lines, 2 can set topics, "
     "4 can tell moderators only)"},
    {"queue_bytes", TALLY__CFG_U32, OFF(queue_bytes), "4194304", 65536, 1u << 30,
     "bytes of the events queue, frames packed (queue_depth frames at most; beyond either users "
     "get 'busy'); the effects queue gets twice this plus room for every operation in flight"},
    {"names_bytes_max", TALLY__CFG_U32, OFF(names_bytes_max), "16777216", 65536, 1u << 31,
     "bytes of interned names (every account's name, and whom to answer for operations in flight "
     "and raffle entries; each name takes its length + 9, rounded up to 8); when full, a command "
     "that brings a new name is refused 'names full', others go on"},
    {"goal_cooldown", TALLY__CFG_U32, OFF(goal_cooldown_s), "300", 0, 86400,
     "seconds after a room's community goal ended before its hosts may start the next (GOAL START)"},
    {"reward_per_event_max", TALLY__CFG_U32, OFF(reward_per_event_max), "0", 0, 100000,
     "rewards one account may earn in one event (quizzes and rounds), counted from committed grants; "
     "a winner who has that many is passed over for the next; 0: no cap"},
};
#undef OFF
const tally__config_keys tally__core_config_keys = TALLY__CONFIG_KEYS(core_keys);

/* Every key of t: part by part, the core's first. */
#define EACH_KEY(t, k)                                                                  \
  for (size_t p_ = 0; p_ < (t)->count; p_++)                                            \
    for (const tally__config_key *k = (t)->parts[p_]->keys; k < (t)->parts[p_]->keys + (t)->parts[p_]->count; k++)

static const tally__config_key *key_find(const tally__config_table *t, const char *key) {
  EACH_KEY(t, k) if (strcmp(k->key, key) == 0) return k;
  return NULL;
}

__attribute__((format(printf, 3, 4))) static int cfg_fail(char *err, size_t err_len,
                                                          const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  return TALLY_ECONFIG;
}

static int cfg_apply(tally_config *cfg, const tally__config_key *e, const char *value,
                     char *err, size_t err_len) {
  char *base = (char *)cfg + e->offset;
  if (e->type == TALLY__CFG_STR) {
    *(const char **)base = value;
    return TALLY_OK;
  }
  /* Plain decimal digits only: no sign, no spaces, no exponent, no hex. */
  if (!value[0] || strspn(value, "0123456789") != strlen(value) || strlen(value) > 18)
    return cfg_fail(err, err_len, "config %s: '%s' is not a plain whole number",
                    e->key, value);
  errno = 0;
  long long v = strtoll(value, NULL, 10);
  if (errno || v < e->min || v > e->max) {
    char range[64];
    snprintf(range, sizeof range, "%" PRId64 "..%" PRId64, e->min, e->max);
    return cfg_fail(err, err_len, "config %s: out of range (%s)", e->key, range);
  }
  if (e->type == TALLY__CFG_U32) *(uint32_t *)base = (uint32_t)v;
  else *(int64_t *)base = (int64_t)v;
  return TALLY_OK;
}

/* The library's defaults, whole. */
static void config_defaults(const tally__config_table *t, tally_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->size = sizeof *cfg;
  cfg->version = TALLY_CONFIG_VERSION;
  EACH_KEY(t, k) {
    int rc = cfg_apply(cfg, k, k->default_text, NULL, 0); /* checked by tally__config_table_check */
    (void)rc;
  }
}

void tally__config_init_size_in(const tally__config_table *t, tally_config *cfg, size_t size) {
  assert(cfg && size >= TALLY_CONFIG_SIZE_V1);
  tally_config full;
  config_defaults(t, &full);
  tally__abi_export(cfg, size, &full, sizeof full);
}

/* Does the host's struct (cfg->size bytes) hold the entry's field? */
static bool cfg_has(const tally_config *cfg, const tally__config_key *e) {
  size_t width = e->type == TALLY__CFG_STR ? sizeof(const char *) : e->type == TALLY__CFG_U32 ? sizeof(uint32_t) : sizeof(int64_t);
  return e->offset + width <= cfg->size;
}

int tally__config_set_in(const tally__config_table *t, tally_config *cfg, const char *key, const char *value,
                         char *err, size_t err_len) {
  if (!cfg || !key || !value) return TALLY_EINVAL;
  if (cfg->size < TALLY_CONFIG_SIZE_V1)
    return cfg_fail(err, err_len, "config: the struct is smaller than any tally version's (size %u)",
                    (unsigned)cfg->size);
  const tally__config_key *k = key_find(t, key);
  if (!k) return cfg_fail(err, err_len, "config: unknown key '%s'", key);
  /* Never written past the host's struct: it was built before the key. */
  if (!cfg_has(cfg, k))
    return cfg_fail(err, err_len, "config %s: not in this program's tally_config (built against an older tally.h)",
                    key);
  return cfg_apply(cfg, k, value, err, err_len);
}

/* `admins`: at most TALLY__ADMINS_MAX names, each a valid account name. */
enum { TALLY__ADMINS_MAX = 64, TALLY__ADMINS_BYTES_MAX = 4096 };
static int admins_check(const char *admins, char *err, size_t err_len) {
  if (!admins) return cfg_fail(err, err_len, "config admins: must be a string (\"\" for none)");
  if (strlen(admins) > TALLY__ADMINS_BYTES_MAX)
    return cfg_fail(err, err_len, "config admins: at most %d bytes", TALLY__ADMINS_BYTES_MAX);
  int count = 0;
  for (const char *p = admins; *p;) {
    p += strspn(p, ", ");
    size_t len = strcspn(p, ", ");
    if (len == 0) break;
    if (len >= TALLY_NAME_BYTES_MAX || tally__text_check(p, len) != TALLY_OK)
      return cfg_fail(err, err_len, "config admins: '%.*s' is not an account name", (int)(len > 64 ? 64 : len), p);
    if (++count > TALLY__ADMINS_MAX)
      return cfg_fail(err, err_len, "config admins: at most %d accounts", TALLY__ADMINS_MAX);
    p += len;
  }
  return TALLY_OK;
}


int tally__config_import_in(const tally__config_table *t, tally_config *out, const tally_config *cfg, char *err,
                            size_t err_len) {
  if (!cfg || cfg->version < 1 || cfg->version > TALLY_CONFIG_VERSION)
    return cfg_fail(err, err_len, "config: built for another tally version");
  tally_config defaults;
  config_defaults(t, &defaults);
  if (tally__abi_import(out, &defaults, sizeof defaults, cfg, TALLY_CONFIG_SIZE_V1))
    return cfg_fail(err, err_len, "config: the struct is smaller than any tally version's (size %u)",
                    (unsigned)cfg->size);
  return TALLY_OK;
}

/* Remote mode: what the link needs; the engine's own keys are tallyd's. */
static int remote_check(const tally_config *cfg, char *err, size_t err_len) {
  const char *a = cfg->address ? cfg->address : "";
  if (strncmp(a, "unix:/", 6) && strncmp(a, "tls:", 4))
    return cfg_fail(err, err_len, "config address: unix:/path/to/socket or tls:host:port");
  if (!strncmp(a, "unix:", 5) && strlen(a) - 5 >= TALLY__UNIX_PATH_MAX)
    return cfg_fail(err, err_len, "config address: a unix socket path is at most %d bytes",
                    TALLY__UNIX_PATH_MAX - 1);
  if (!strncmp(a, "tls:", 4)) {
    const char *colon = strrchr(a + 4, ':');
    if (!colon || colon == a + 4 || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
      return cfg_fail(err, err_len, "config address: tls:host:port, e.g. tls:tally.example.org:6790");
  }
  if (!cfg->secret || strlen(cfg->secret) < TALLY__SECRET_BYTES_MIN)
    return cfg_fail(err, err_len, "config secret: the network's shared secret, at least %d bytes",
                    TALLY__SECRET_BYTES_MIN);
  if (!cfg->instance || !cfg->instance[0] || strlen(cfg->instance) > TALLY__INSTANCE_BYTES_MAX ||
      tally__text_check(cfg->instance, strlen(cfg->instance)) != TALLY_OK)
    return cfg_fail(err, err_len, "config instance: this chat server's stable id, 1 to %d bytes of text",
                    TALLY__INSTANCE_BYTES_MAX);
  if (!cfg->network || !tally__network_name_ok(cfg->network))
    return cfg_fail(err, err_len, "config network: 1 to 32 of a-z 0-9 . _ - (a letter or digit first), "
                    "not user or sys");
  if ((cfg->remote_cert && cfg->remote_cert[0]) != (cfg->remote_key && cfg->remote_key[0]))
    return cfg_fail(err, err_len, "config remote_cert and remote_key: give both or neither");
  if (cfg->adapter && strlen(cfg->adapter) > TALLY__ADAPTER_BYTES_MAX)
    return cfg_fail(err, err_len, "config adapter: at most %d bytes", TALLY__ADAPTER_BYTES_MAX);
  return TALLY_OK;
}

/* Checks the host's config as the engine will see it (fields past its size
 * at their defaults). */
int tally__config_check_in(const tally__config_table *t, const tally_config *host, char *err, size_t err_len) {
  tally_config full;
  int rc = tally__config_import_in(t, &full, host, err, err_len);
  if (rc) return rc;
  const tally_config *cfg = &full;
  if (!cfg->mode || (strcmp(cfg->mode, "local") && strcmp(cfg->mode, "remote")))
    return cfg_fail(err, err_len, "config mode: local or remote");
  if (!strcmp(cfg->mode, "remote")) return remote_check(cfg, err, err_len);
  if (!cfg->dsn || !cfg->dsn[0])
    return cfg_fail(err, err_len, "config dsn: a PostgreSQL connection string is required");
  if (!cfg->signing_key_path || !cfg->signing_key_path[0])
    return cfg_fail(err, err_len, "config signing_key: a key path is required");
  if (!cfg->currency || !cfg->currency[0] || strlen(cfg->currency) > 16)
    return cfg_fail(err, err_len, "config currency: 1 to 16 characters");
  if (!cfg->network || !tally__network_name_ok(cfg->network))
    return cfg_fail(err, err_len, "config network: 1 to 32 of a-z 0-9 . _ - (a letter or digit first), "
                    "not user or sys");
  if (cfg->batch_max > cfg->queue_depth)
    return cfg_fail(err, err_len, "config batch_max: must not exceed queue_depth");
  /* Operations in flight (open + sealed batches) must never reach the oldest
   * remembered key or purchase, which the rings overwrite. */
  uint64_t in_flight = (uint64_t)cfg->batch_max * (cfg->writers + 1);
  if ((uint64_t)cfg->keys_max / 2 < in_flight)
    return cfg_fail(err, err_len, "config keys_max: must be at least 2 x batch_max x (writers + 1) = %llu",
                    (unsigned long long)(2 * in_flight));
  if ((uint64_t)cfg->purchases_max < 2 * in_flight)
    return cfg_fail(err, err_len, "config purchases_max: must be at least 2 x batch_max x (writers + 1) = %llu",
                    (unsigned long long)(2 * in_flight));
  rc = admins_check(cfg->admins, err, err_len);
  if (rc) return rc;
  /* coop_purchases_max may be below what can be in flight: a co-op purchase
   * that finds its ring slot still in flight is answered "busy". */
  EACH_KEY(t, e) {
    const char *base = (const char *)cfg + e->offset;
    int64_t v = e->type == TALLY__CFG_U32 ? *(const uint32_t *)base
              : e->type == TALLY__CFG_I64 ? *(const int64_t *)base : 0;
    if (e->type != TALLY__CFG_STR && (v < e->min || v > e->max))
      return cfg_fail(err, err_len, "config %s: out of range", e->key);
  }
  return TALLY_OK;
}

void tally__config_describe_in(const tally__config_table *t, tally_config_doc_cb fn, void *ud) {
  if (!fn) return;
  EACH_KEY(t, k) fn(ud, k->key, k->default_text, k->help);
}

/* The registered keys must be a table: each name once, each field inside
 * tally_config and of its type's width, each default valid. A mistake here
 * is the library's, found by its first tally_config_check. */
int tally__config_table_check(const tally__config_table *t, char *err, size_t err_len) {
  tally_config probe;
  memset(&probe, 0, sizeof probe);
  probe.size = sizeof probe;
  EACH_KEY(t, k) {
    if (!k->key || !k->key[0] || !k->default_text || !k->help)
      return cfg_fail(err, err_len, "config: an incomplete key row (%s)", k->key ? k->key : "no name");
    if (key_find(t, k->key) != k) return cfg_fail(err, err_len, "config %s: declared twice", k->key);
    if (k->type != TALLY__CFG_STR && k->type != TALLY__CFG_U32 && k->type != TALLY__CFG_I64)
      return cfg_fail(err, err_len, "config %s: no such type", k->key);
    if (!cfg_has(&probe, k)) return cfg_fail(err, err_len, "config %s: past the end of tally_config", k->key);
    char why[TALLY_ERRBUF_BYTES];
    if (cfg_apply(&probe, k, k->default_text, why, sizeof why))
      return cfg_fail(err, err_len, "config %s: its default: %s", k->key, why);
  }
  return TALLY_OK;
}
