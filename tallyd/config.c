/* config.c — tallyd's config file: one `key = value` a line, the same rules
 * as libtally's config files (blank lines and '#' lines skipped, spaces
 * around key and value dropped, a key given twice refused). tallyd's own
 * keys (listeners, TLS files, per-network secrets, its bounds) are in the
 * table below; every other key is the engine's and goes to
 * tally_config_set, so the engine's checks and messages apply unchanged.
 * One table drives parsing, defaults and --help. */
#include "tallyd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum td_key_type { TD_STR, TD_U32, TD_MODE };

typedef struct td_key {
  const char *name;
  int type;
  size_t offset, size; /* size: for strings, the array's */
  const char *default_text;
  uint32_t min, max;
  const char *help;
} td_key;

#define S_(f) offsetof(td_config, f), sizeof(((td_config *)0)->f)
#define U_(f) offsetof(td_config, f), 0
static const td_key keys[] = {
    {"listen_unix", TD_STR, S_(listen_unix), "/run/tally/tally.sock", 0, 0,
     "unix socket path for chat servers on this machine; empty: none"},
    {"unix_mode", TD_MODE, U_(unix_mode), "0660", 0, 0777, "permissions of the unix socket (octal)"},
    {"listen_tcp", TD_STR, S_(listen_tcp), "", 0, 0,
     "HOST:PORT for TLS 1.3 over TCP (e.g. 0.0.0.0:6790); empty: none. Port 0 picks a free one (logged)"},
    {"tls_cert", TD_STR, S_(tls_cert), "", 0, 0, "PEM certificate chain of this server (needed with listen_tcp)"},
    {"tls_key", TD_STR, S_(tls_key), "", 0, 0, "PEM private key of tls_cert"},
    {"tls_client_ca", TD_STR, S_(tls_client_ca), "", 0, 0,
     "PEM CA file: when set, every TCP client must present a certificate it signed"},
    {"server_id", TD_STR, S_(server_id), "", 0, 0, "this daemon's name in HELLO and logs; empty: the host name"},
    {"state_dir", TD_STR, S_(state_dir), "", 0, 0,
     "where the signing key lives by default; empty: $STATE_DIRECTORY or /var/lib/tally"},
    {"conns_max", TD_U32, U_(conns_max), "256", 1, 65536, "connections at once (more are closed at accept, logged)"},
    {"slots_max", TD_U32, U_(slots_max), "256", 1, 65536,
     "chat servers (network, instance) remembered at once, connected or away"},
    {"slot_effects_max", TD_U32, U_(slot_effects_max), "0", 0, 1u << 22,
     "unacknowledged effects kept per chat server; 0: queue_depth + busy_reserve. Must be at least "
     "queue_depth + busy_reserve: one chat server may carry a whole rush"},
    {"slot_bytes_max", TD_U32, U_(slot_bytes_max), "67108864", 65536, 1u << 30,
     "bytes of unacknowledged effects kept per chat server"},
    {"slot_linger", TD_U32, U_(slot_linger_s), "300", 1, 86400,
     "seconds a disconnected chat server's effects wait for it; then dropped (counted in the log) and "
     "its users' presence withdrawn"},
    {"busy_reserve", TD_U32, U_(busy_reserve), "64", 1, 65536,
     "out-queue places kept for 'busy' answers: past slot_effects_max minus this, new commands are "
     "answered busy"},
    {"presence_max", TD_U32, U_(presence_max), "65536", 16, 1u << 24,
     "(chat server, account, room) presences merged at once"},
    {"hello_timeout", TD_U32, U_(hello_timeout_ms), "10000", 100, 600000,
     "milliseconds a new connection has to finish TLS and HELLO"},
    {"xmpp_component", TD_STR, S_(xmpp_component), "", 0, 0,
     "IP:PORT ([v6]:port) of an XMPP server's XEP-0114 component port (e.g. 127.0.0.1:5347); empty: no component"},
    {"xmpp_component_domain", TD_STR, S_(xmpp_component_domain), "", 0, 0,
     "the component's domain, as the server's config names it (e.g. shop.example.org)"},
    {"xmpp_component_secret", TD_STR, S_(xmpp_secret.path), "", 0, 0,
     "file holding the component's shared secret (the server's password for that domain)"},
    {"xmpp_network", TD_STR, S_(xmpp_network), "xmpp", 0, 0,
     "the network name of the component's users (identities are (network, bare JID))"},
    {"xmpp_rooms", TD_STR, S_(xmpp_rooms), "", 0, 0,
     "MUC rooms the component joins, comma-separated (room@conference.example.org,...)"},
    {"xmpp_nick", TD_STR, S_(xmpp_nick), "tally", 0, 0, "the component's nick in those rooms"},
    {"xmpp_domains", TD_STR, S_(xmpp_domains), "", 0, 0,
     "user domains whose JIDs may use the shop, comma-separated; empty: the component's parent domain"},
    {"matrix_listen", TD_STR, S_(matrix_listen), "", 0, 0,
     "IPv4:PORT where the Matrix Application Service listens (the registration's url); empty: no Matrix"},
    {"matrix_registration", TD_STR, S_(matrix_registration), "", 0, 0,
     "the AS registration YAML (tally matrix-registration writes it): as_token, hs_token, sender_localpart"},
    {"matrix_homeserver", TD_STR, S_(matrix_homeserver), "http://127.0.0.1:8008", 0, 0,
     "http://HOST[:PORT] or https://HOST[:PORT] of the homeserver's Client-Server API, where tally's answers are sent"},
    {"matrix_server_name", TD_STR, S_(matrix_server_name), "", 0, 0,
     "the homeserver's server name (the bot is @sender_localpart:NAME)"},
    {"matrix_network", TD_STR, S_(matrix_network), "matrix", 0, 0,
     "the engine network of Matrix identities (wallets are matrix:@user:server)"},
    {"matrix_admins", TD_STR, S_(matrix_admins), "", 0, 0,
     "Matrix user ids with tally's admin role, comma separated (power levels as roles: later)"},
    /* At most half a day: an event is resubmitted only while it is younger,
     * and the engine's idempotency keys are reloaded a day back, so a
     * resubmitted event always meets its key (docs/MATRIX.md). */
    {"matrix_event_age_max", TD_U32, U_(matrix_event_age_max_s), "300", 1, 43200,
     "seconds: older events are ignored (a backlog after an outage is not a rush of purchases); at most 43200"},
    {"matrix_body_bytes_max", TD_U32, U_(matrix_body_bytes_max), "8388608", 65536, 1u << 28,
     "bytes of one transaction body; more is answered 413 M_TOO_LARGE"},
    {"matrix_invite_servers", TD_STR, S_(matrix_invite_servers), "", 0, 0,
     "servers (comma separated) whose rooms the bot joins when invited; empty: matrix_server_name only"},
    {"xmpp_grant_jids", TD_STR, S_(xmpp_grant_jids), "", 0, 0,
     "bare JIDs that hold the grant privilege (TALLY GRANT; they must be in admins too), comma-separated"},
    {"matrix_grant_ids", TD_STR, S_(matrix_grant_ids), "", 0, 0,
     "Matrix user ids that hold the grant privilege (TALLY GRANT; they must be in matrix_admins too), comma separated"},
    {"matrix_homeserver_ca", TD_STR, S_(matrix_homeserver_ca), "", 0, 0,
     "PEM CA file that signed an https:// matrix_homeserver's certificate; empty: the system CA store (SIGHUP reloads it)"},
};
#undef S_
#undef U_
enum { KEY_COUNT = sizeof keys / sizeof keys[0] };

static int fail(char *err, size_t err_len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t err_len, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return code;
}

static int set_key(td_config *cfg, const td_key *k, const char *value, char *err, size_t err_len) {
  char *field = (char *)cfg + k->offset;
  if (k->type == TD_STR) {
    if (strlen(value) >= k->size) return fail(err, err_len, TALLY_ECONFIG, "%s: longer than %zu bytes", k->name, k->size - 1);
    memcpy(field, value, strlen(value) + 1);
    return TALLY_OK;
  }
  char *end;
  errno = 0;
  unsigned long v = strtoul(value, &end, k->type == TD_MODE ? 8 : 10);
  if (!*value || *end || errno || value[0] == '-' || v < k->min || v > k->max)
    return fail(err, err_len, TALLY_ECONFIG, "%s: '%s' is not a number from %u to %u%s", k->name, value,
                k->min, k->max, k->type == TD_MODE ? " (octal)" : "");
  memcpy(field, &(uint32_t){(uint32_t)v}, sizeof(uint32_t));
  return TALLY_OK;
}

static const td_key *find_key(const char *name) {
  for (size_t i = 0; i < KEY_COUNT; i++)
    if (!strcmp(keys[i].name, name)) return &keys[i];
  return NULL;
}

static void defaults(td_config *cfg) {
  tally_config engine;
  memset(cfg, 0, sizeof *cfg);
  tally_config_init(&engine);
  cfg->engine = engine;
  char err[TALLY_ERRBUF_BYTES];
  for (size_t i = 0; i < KEY_COUNT; i++) {
    int rc = set_key(cfg, &keys[i], keys[i].default_text, err, sizeof err);
    (void)rc;
  }
}

/* Reads a secret file: its bytes, without the trailing line end or spaces. */
static int read_secret(td_secret *s, char *err, size_t err_len) {
  FILE *f = fopen(s->path, "rb");
  if (!f) return fail(err, err_len, TALLY_EIO, "secret.%s: %s: %s", s->network, s->path, strerror(errno));
  s->len = 0;
  size_t n = fread(s->bytes, 1, sizeof s->bytes, f);
  int more = fgetc(f) != EOF;
  fclose(f);
  while (n > 0 && (s->bytes[n - 1] == '\n' || s->bytes[n - 1] == '\r' || s->bytes[n - 1] == ' ' ||
                   s->bytes[n - 1] == '\t'))
    n--;
  if (more) return fail(err, err_len, TALLY_ECONFIG, "secret.%s: %s is longer than %d bytes", s->network, s->path, TD_SECRET_BYTES_MAX);
  if (n < TD_SECRET_BYTES_MIN)
    return fail(err, err_len, TALLY_ECONFIG, "secret.%s: %s holds %zu bytes; at least %d are needed (e.g. openssl rand -hex 32)",
                s->network, s->path, n, TD_SECRET_BYTES_MIN);
  s->len = n;
  return TALLY_OK;
}

/* The network names of HELLO: the engine's rule (tally.h, tally_config.network). */
static int network_name_ok(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > 32) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = n[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'));
    if (!ok) return 0;
  }
  return strcmp(n, "user") && strcmp(n, "sys");
}

static int add_secret(td_config *cfg, const char *network, const char *path, char *err, size_t err_len) {
  if (!network_name_ok(network))
    return fail(err, err_len, TALLY_ECONFIG, "secret.%s: not a network name (lower case letters, digits, '.', '_', '-', at most 32)", network);
  if (cfg->secret_count == TD_NETWORKS_MAX) return fail(err, err_len, TALLY_ECONFIG, "more than %d networks", TD_NETWORKS_MAX);
  td_secret *s = &cfg->secrets[cfg->secret_count];
  snprintf(s->network, sizeof s->network, "%s", network);
  if (strlen(path) >= sizeof s->path) return fail(err, err_len, TALLY_ECONFIG, "secret.%s: path too long", network);
  snprintf(s->path, sizeof s->path, "%s", path);
  int rc = read_secret(s, err, err_len);
  if (rc == TALLY_OK) cfg->secret_count++;
  return rc;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
  return s;
}

/* Keys seen so far, to refuse a second one (as libtally's loader does). */
typedef struct seen_keys {
  char names[TD_CONFIG_VALUES_MAX + KEY_COUNT + TD_NETWORKS_MAX][72];
  uint32_t n;
} seen_keys;

static int seen_before(seen_keys *seen, const char *key) {
  for (uint32_t i = 0; i < seen->n; i++)
    if (!strcmp(seen->names[i], key)) return 1;
  if (seen->n < sizeof seen->names / sizeof seen->names[0])
    snprintf(seen->names[seen->n++], sizeof seen->names[0], "%s", key);
  return 0;
}

static int one_line(td_config *cfg, seen_keys *seen, char *line, char *err, size_t err_len) {
  char *s = trim(line);
  if (!*s || *s == '#') return TALLY_OK;
  char *eq = strchr(s, '=');
  if (!eq) return fail(err, err_len, TALLY_ECONFIG, "expected key = value");
  *eq = 0;
  char *key = trim(s), *value = trim(eq + 1);
  if (strlen(key) >= sizeof seen->names[0]) return fail(err, err_len, TALLY_ECONFIG, "key too long");
  if (seen_before(seen, key)) return fail(err, err_len, TALLY_ECONFIG, "%s: given twice", key);
  const td_key *k = find_key(key);
  if (k) return set_key(cfg, k, value, err, err_len);
  if (!strncmp(key, "secret.", 7)) return add_secret(cfg, key + 7, value, err, err_len);
  if (cfg->value_count == TD_CONFIG_VALUES_MAX) return fail(err, err_len, TALLY_ECONFIG, "too many keys");
  char *copy = strdup(value);
  if (!copy) return fail(err, err_len, TALLY_ENOMEM, "out of memory");
  cfg->values[cfg->value_count++] = copy;
  if (!strcmp(key, "signing_key")) snprintf(cfg->signing_key, sizeof cfg->signing_key, "%s", copy);
  /* tally_config_set borrows the value: it lives in cfg->values. */
  return tally_config_set(&cfg->engine, key, copy, err, err_len);
}

/* Relations between keys, and the defaults that depend on others. */
static int finish(td_config *cfg, char *err, size_t err_len) {
  const tally_config *e = &cfg->engine;
  uint64_t floor = (uint64_t)e->queue_depth + cfg->busy_reserve;
  if (cfg->slot_effects_max == 0) cfg->slot_effects_max = (uint32_t)(floor > (1u << 22) ? (1u << 22) : floor);
  if (cfg->slot_effects_max < floor)
    return fail(err, err_len, TALLY_ECONFIG,
                "slot_effects_max %u is below queue_depth %u + busy_reserve %u: one chat server may carry a whole rush",
                cfg->slot_effects_max, e->queue_depth, cfg->busy_reserve);
  if (cfg->listen_tcp[0] && (!cfg->tls_cert[0] || !cfg->tls_key[0]))
    return fail(err, err_len, TALLY_ECONFIG, "listen_tcp needs tls_cert and tls_key (TCP is TLS 1.3 only)");
  if (!cfg->listen_tcp[0] && !cfg->listen_unix[0])
    return fail(err, err_len, TALLY_ECONFIG, "no listener: set listen_unix or listen_tcp");
  if (cfg->xmpp_component[0]) {
    if (!cfg->xmpp_component_domain[0] || !cfg->xmpp_secret.path[0])
      return fail(err, err_len, TALLY_ECONFIG, "xmpp_component needs xmpp_component_domain and xmpp_component_secret");
    if (!network_name_ok(cfg->xmpp_network))
      return fail(err, err_len, TALLY_ECONFIG, "xmpp_network: not a network name (lower case letters, digits, '.', '_', '-', at most 32)");
    if (td_config_secret(cfg, cfg->xmpp_network))
      return fail(err, err_len, TALLY_ECONFIG, "xmpp_network %s also has a secret: the component alone serves it", cfg->xmpp_network);
    snprintf(cfg->xmpp_secret.network, sizeof cfg->xmpp_secret.network, "%s", cfg->xmpp_network);
    int rc = read_secret(&cfg->xmpp_secret, err, err_len);
    if (rc != TALLY_OK) return rc;
  }
  if (cfg->secret_count == 0 && !cfg->xmpp_component[0])
    return fail(err, err_len, TALLY_ECONFIG, "no network: add secret.<network> = <file> for each network");
  if (!cfg->server_id[0] && gethostname(cfg->server_id, sizeof cfg->server_id - 1) != 0)
    snprintf(cfg->server_id, sizeof cfg->server_id, "tallyd");
  if (!cfg->state_dir[0]) {
    const char *sd = getenv("STATE_DIRECTORY"); /* systemd: may list several, ':'-separated */
    snprintf(cfg->state_dir, sizeof cfg->state_dir, "%s", sd && *sd ? sd : "/var/lib/tally");
    char *colon = strchr(cfg->state_dir, ':');
    if (colon) *colon = 0;
  }
  if (!cfg->signing_key[0]) {
    if (strlen(cfg->state_dir) + 20 >= sizeof cfg->signing_key)
      return fail(err, err_len, TALLY_ECONFIG, "state_dir: path too long");
    int n = snprintf(cfg->signing_key, sizeof cfg->signing_key, "%.1000s/tally-signing.pem", cfg->state_dir);
    (void)n;
    cfg->engine.signing_key_path = cfg->signing_key;
  }
  return tally_config_check(&cfg->engine, err, err_len);
}

int td_config_load(td_config *cfg, const char *path, char *err, size_t err_len) {
  defaults(cfg);
  snprintf(cfg->path, sizeof cfg->path, "%s", path);
  FILE *f = fopen(path, "r");
  if (!f) return fail(err, err_len, TALLY_EIO, "%s: %s", path, strerror(errno));
  static seen_keys seen; /* big: not on the stack; one load at a time (the loop thread) */
  seen.n = 0;
  char line[TALLY_CONFIG_LINE_BYTES_MAX + 2];
  char why[TALLY_ERRBUF_BYTES];
  int rc = TALLY_OK, lineno = 0;
  while (rc == TALLY_OK && fgets(line, sizeof line, f)) {
    lineno++;
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
    else if (!feof(f)) {
      rc = fail(why, sizeof why, TALLY_ECONFIG, "line longer than %d bytes", TALLY_CONFIG_LINE_BYTES_MAX);
      break;
    }
    rc = one_line(cfg, &seen, line, why, sizeof why);
  }
  fclose(f);
  if (rc != TALLY_OK) {
    snprintf(err, err_len, "%s:%d: %s", path, lineno, why);
    return rc;
  }
  rc = finish(cfg, why, sizeof why);
  if (rc != TALLY_OK) snprintf(err, err_len, "%s: %s", path, why);
  return rc;
}

void td_config_free(td_config *cfg) {
  for (uint32_t i = 0; i < cfg->value_count; i++) free(cfg->values[i]);
  cfg->value_count = 0;
}

const td_secret *td_config_secret(const td_config *cfg, const char *network) {
  for (uint32_t i = 0; i < cfg->secret_count; i++)
    if (!strcmp(cfg->secrets[i].network, network)) return &cfg->secrets[i];
  return NULL;
}

static void engine_key_help(void *ud, const char *key, const char *default_text, const char *help) {
  FILE *out = ud;
  if (!strcmp(key, "signing_key")) default_text = "<state_dir>/tally-signing.pem";
  fprintf(out, "  %-22s %s (default: %s)\n", key, help, default_text[0] ? default_text : "\"\"");
}

void td_config_help(FILE *out) {
  fprintf(out, "tallyd's keys:\n");
  for (size_t i = 0; i < KEY_COUNT; i++)
    fprintf(out, "  %-22s %s (default: %s)\n", keys[i].name, keys[i].help,
            keys[i].default_text[0] ? keys[i].default_text : "\"\"");
  fprintf(out, "  %-22s file holding the shared secret of NETWORK (HMAC key of HELLO); one line per network\n",
          "secret.NETWORK");
  fprintf(out, "\nthe engine's keys (libtally):\n");
  tally_config_describe(engine_key_help, out);
}
