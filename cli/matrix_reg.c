/* matrix_reg.c — `tally matrix-registration FILE URL SERVER_NAME`: writes the
 * Application Service registration YAML (Application Service API,
 * "Registration") that the homeserver loads (Synapse:
 * app_service_config_files) and tallyd reads (matrix_registration):
 * id, url, as_token, hs_token, sender_localpart, rate_limited: false and the
 * namespaces (the bot's own user id, exclusive). The two tokens are 32 fresh
 * random bytes each (OpenSSL RAND_bytes), in hex. The file is created 0600
 * and never overwritten: new tokens mean a new registration on the
 * homeserver too, so replacing it is a deliberate `rm` first. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli.h"

enum { TOKEN_BYTES = 32, NAME_BYTES_MAX = 150 };

static int token(char out[2 * TOKEN_BYTES + 1]) {
  unsigned char b[TOKEN_BYTES];
  if (RAND_bytes(b, sizeof b) != 1) return -1;
  for (int i = 0; i < TOKEN_BYTES; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
  return 0;
}

/* A server name as a regex: dots (and anything else special) escaped. */
static void regex_quote(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (; *in && o + 3 < cap; in++) {
    if (strchr(".^$*+?()[]{}|\\", *in)) out[o++] = '\\';
    out[o++] = *in;
  }
  out[o] = 0;
}

static int name_ok(const char *s) {
  if (!*s || strlen(s) > NAME_BYTES_MAX) return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s == '"' || *s == '\\' || *s == 0x7f) return 0;
  return 1;
}

int cli_matrix_registration(const char *path, const char *url, const char *server_name) {
  if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
    fprintf(stderr, "tally matrix-registration: URL '%s' must start with http:// (where tallyd's matrix_listen is)\n", url);
    return 2;
  }
  if (!name_ok(url) || !name_ok(server_name)) {
    fprintf(stderr, "tally matrix-registration: URL and SERVER_NAME must be 1 to %d bytes without spaces or quotes\n",
            NAME_BYTES_MAX);
    return 2;
  }
  char as[2 * TOKEN_BYTES + 1], hs[2 * TOKEN_BYTES + 1], re[2 * NAME_BYTES_MAX + 1];
  if (token(as) || token(hs)) {
    fprintf(stderr, "tally matrix-registration: no random bytes\n");
    return 1;
  }
  regex_quote(server_name, re, sizeof re);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    fprintf(stderr, "tally matrix-registration: %s: %s%s\n", path, strerror(errno),
            errno == EEXIST ? " (never overwritten: its tokens are registered on the homeserver; remove it first)" : "");
    return 1;
  }
  FILE *f = fdopen(fd, "w");
  fprintf(f,
          "# Matrix Application Service registration for tally (tally matrix-registration).\n"
          "# The homeserver loads it (Synapse: app_service_config_files); tallyd reads it\n"
          "# (matrix_registration). Keep it secret: the tokens are the AS's credentials.\n"
          "id: \"tally\"\n"
          "url: \"%s\"\n"
          "as_token: \"%s\"\n"
          "hs_token: \"%s\"\n"
          "sender_localpart: \"tally\"\n"
          "rate_limited: false\n"
          "namespaces:\n"
          "  users:\n"
          "    - exclusive: true\n"
          "      regex: '@tally:%s'\n"
          "  aliases: []\n"
          "  rooms: []\n",
          url, as, hs, re);
  if (fclose(f) != 0) {
    fprintf(stderr, "tally matrix-registration: %s: %s\n", path, strerror(errno));
    return 1;
  }
  printf("%s\n", path);
  return 0;
}
