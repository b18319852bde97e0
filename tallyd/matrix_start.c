/* matrix_start.c — the Application Service's start and stop.
 *
 * At the start: the registration file (`tally matrix-registration`) gives
 * the tokens and the bot's localpart; the config gives its network and
 * homeserver; a fresh boot id marks this process's rows in
 * matrix_transactions (matrix_record.c); then the Client-Server client
 * (matrix_send.c) and the HTTP server (matrix_http.c). At the stop, the
 * counters are logged and everything is freed; what is still unsent stays
 * in the outbox for the next process (matrix_outbox.c). */
#include "matrix.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

/* Reads the top-level scalars of the registration YAML that tallyd needs
 * (as written by `tally matrix-registration`: `key: "value"` lines). */
static int read_registration(td_mx *m, const char *path, char *err, size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_len, "matrix_registration %s: cannot read it", path);
    return TALLY_EIO;
  }
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == ' ' || line[0] == '-' || line[0] == '#') continue; /* nested or comment */
    char *colon = strchr(line, ':');
    if (!colon) continue;
    *colon = 0;
    char *v = colon + 1;
    v += strspn(v, " \t");
    v[strcspn(v, "\r\n")] = 0;
    size_t vl = strlen(v);
    if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
      v[vl - 1] = 0;
      v++;
    }
    char *dst = !strcmp(line, "as_token") ? m->as_token : !strcmp(line, "hs_token") ? m->hs_token
              : !strcmp(line, "sender_localpart") ? m->localpart : NULL;
    if (dst) snprintf(dst, TD_MX_TOKEN_BYTES_MAX + 1, "%s", v);
  }
  fclose(f);
  if (strlen(m->hs_token) < 16 || strlen(m->as_token) < 16 || !m->localpart[0]) {
    snprintf(err, err_len, "matrix_registration %s: as_token, hs_token (16 bytes at least) and sender_localpart "
                           "are needed (write one with `tally matrix-registration`)", path);
    return TALLY_ECONFIG;
  }
  return TALLY_OK;
}

int td_mx_start(td_daemon *d, char *err, size_t err_len) {
  const td_config *cfg = &d->cfg;
  if (!cfg->matrix_listen[0]) return TALLY_OK;
  td_mx *m = calloc(1, sizeof *m);
  if (!m) {
    snprintf(err, err_len, "matrix: out of memory");
    return TALLY_ENOMEM;
  }
  m->d = d;
  d->mx = m;
  int rc = read_registration(m, cfg->matrix_registration, err, err_len);
  if (rc != TALLY_OK) return rc;
  if (!strcmp(cfg->matrix_network, cfg->engine.network)) {
    snprintf(err, err_len, "matrix_network \"%s\" is also the engine's network: its effects would all go to "
                           "Matrix (give Matrix a network of its own)", cfg->matrix_network);
    return TALLY_ECONFIG;
  }
  if (!cfg->matrix_server_name[0]) {
    snprintf(err, err_len, "matrix_server_name: needed with matrix_listen (the homeserver's name, as in @bot:NAME)");
    return TALLY_ECONFIG;
  }
  int bl = snprintf(m->bot_id, sizeof m->bot_id, "@%.100s:%.150s", m->localpart, cfg->matrix_server_name);
  if (bl < 0 || strlen(m->localpart) > 100 || strlen(cfg->matrix_server_name) > 150) {
    snprintf(err, err_len, "matrix: sender_localpart or matrix_server_name too long for a user id");
    return TALLY_ECONFIG;
  }
  SHA256((const uint8_t *)m->hs_token, strlen(m->hs_token), m->hs_token_hash);
  uint8_t b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    snprintf(err, err_len, "matrix: no random bytes for the boot id");
    return TALLY_EIO;
  }
  for (int i = 0; i < 16; i++) snprintf(m->boot + 2 * i, 3, "%02x", b[i]);
  m->ob_add = json_array();
  m->ob_settle = json_array();
  m->told = calloc(TD_MX_TOLD_ROOMS_MAX, sizeof *m->told);
  m->direct = json_object();
  m->dm_making = json_object();
  if ((rc = td_mx_send_init(m, err, err_len)) != TALLY_OK) return rc;
  if ((rc = td_mx_http_start(m, err, err_len)) != TALLY_OK) return rc;
  td_log(TD_INFO, "matrix: bot %s, network \"%s\", homeserver %s, caps %u (cannot intercept; pins highlights; "
                  "moderators by DM)", m->bot_id, cfg->matrix_network, cfg->matrix_homeserver, (unsigned)TD_MX_CAPS);
  return TALLY_OK;
}

void td_mx_close(td_daemon *d) {
  td_mx *m = d->mx;
  if (!m) return;
  m->closing = 1;
  td_mx_http_close(m);
  td_mx_send_close(m);
}

void td_mx_stop(td_daemon *d) {
  td_mx *m = d->mx;
  if (!m) return;
  td_log(TD_INFO, "matrix: %llu transactions (%llu sent again), %llu commands submitted, %llu events ignored, "
                  "%llu messages sent, %u unsent (kept by no one: see docs/findings/matrix.md)",
         (unsigned long long)m->txns, (unsigned long long)m->txn_replays, (unsigned long long)m->events_submitted,
         (unsigned long long)m->events_ignored, (unsigned long long)m->sent, td_mx_send_pending(m));
  td_mx_http_free(m);
  td_mx_send_free(m);
  td_mx_jobs_free(m);
  json_decref(m->ob_add);
  json_decref(m->ob_settle);
  free(m->told);
  td_mx_rooms_free(m);
  json_decref(m->dm_making);
  td_mx_pending_free(m);
  td_mx_dm_wait_free(m);
  free(m);
  d->mx = NULL;
}
