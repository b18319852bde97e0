/* frame_driver.c — the engine itself as a host for the conformance suite
 * (tests/conformance/driver_frame.py): commands and presence changes read
 * from stdin, effects written to stdout, one tab-separated line each. It
 * uses the public API alone (tally.h; the Makefile gives it no core/src
 * include path), as an adapter does.
 *
 *   frame_driver KEY=VALUE...     config keys (dsn=..., signing_key=...)
 *
 * stdin:  C <req> <origin> <account> <channel> <roles> <msg_id> <text>
 *         P <account> <channel> <0|1>
 *         (empty fields are "-"; the text is the rest of the line)
 * stdout: READY                             the engine said STATUS OK
 *         STATUS <code name> <text>         any other status
 *         E <kind> <code name> <req> <receipt> <hint> <origin> <channel> <text>
 *         ERR <what>                        a line this driver refused
 * EOF on stdin stops the engine and exits 0. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally.h"

enum { LINE_BYTES_MAX = 2048, FIELDS_MAX = 8, DRAIN_MAX = 256, BUSY_RETRIES = 10000 };

static const char *field_or_empty(const char *s) { return strcmp(s, "-") == 0 ? "" : s; }
static const char *empty_or_dash(const char *s) { return s && s[0] ? s : "-"; }

static void on_effect(void *ud, const tally_effect *e) {
  (void)ud;
  if (e->kind == TALLY_EFFECT_STATUS) {
    if (e->code == TALLY_OK) printf("READY\n");
    else printf("STATUS\t%s\t%s\n", tally_err_name(e->code), e->text ? e->text : "");
    return;
  }
  printf("E\t%u\t%s\t%llu\t%llu\t%u\t%s\t%s\t%s\n", e->kind, tally_err_name(e->code),
         (unsigned long long)e->req_id, (unsigned long long)e->receipt_id, e->hint,
         empty_or_dash(e->origin), empty_or_dash(e->channel), e->text ? e->text : "");
}

/* Splits line at tabs into at most n fields; the last keeps its tabs. */
static int split(char *line, char **f, int n) {
  int k = 0;
  f[k++] = line;
  for (char *p = line; *p && k < n; p++)
    if (*p == '\t') {
      *p = 0;
      f[k++] = p + 1;
    }
  return k;
}

/* Retries a full queue: the runner waits for answers, so it must arrive. */
static int submit(tally_engine *eng, const tally_command *c, const tally_presence *p) {
  for (int i = 0; i < BUSY_RETRIES; i++) {
    int rc = c ? tally_engine_submit_command(eng, c) : tally_engine_submit_presence(eng, p);
    if (rc != TALLY_EBUSY) return rc;
    usleep(1000);
  }
  return TALLY_EBUSY;
}

static void handle(tally_engine *eng, char *line) {
  char *f[FIELDS_MAX];
  int n = split(line, f, FIELDS_MAX);
  int rc;
  if (f[0][0] == 'C' && n == 8) {
    tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION,
                       .req_id = strtoull(f[1], NULL, 10), .origin = field_or_empty(f[2]),
                       .account = field_or_empty(f[3]), .nick = field_or_empty(f[2]),
                       .channel = field_or_empty(f[4]), .roles = (uint32_t)strtoul(f[5], NULL, 10),
                       .msg_id = f[6], .text = f[7]};
    rc = submit(eng, &c, NULL);
  } else if (f[0][0] == 'P' && n == 4) {
    tally_presence p = {.size = sizeof p, .version = TALLY_PRESENCE_VERSION, .account = f[1],
                        .channel = f[2], .present = (uint32_t)(f[3][0] == '1')};
    rc = submit(eng, NULL, &p);
  } else {
    printf("ERR\tbad line\n");
    return;
  }
  if (rc != TALLY_OK) printf("ERR\tsubmit: %s\n", tally_err_name(rc));
}

static int configure(tally_config *cfg, int argc, char **argv) {
  char err[TALLY_ERRBUF_BYTES];
  tally_config_init(cfg);
  for (int i = 1; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) return fprintf(stderr, "frame_driver: %s is not KEY=VALUE\n", argv[i]), -1;
    *eq = 0;
    if (strcmp(argv[i], "dsn") == 0) cfg->dsn = eq + 1;
    else if (strcmp(argv[i], "signing_key") == 0) cfg->signing_key_path = eq + 1;
    else if (tally_config_set(cfg, argv[i], eq + 1, err, sizeof err) != TALLY_OK)
      return fprintf(stderr, "frame_driver: %s\n", err), -1;
  }
  return 0;
}

/* Reads what stdin has; handles each whole line. Returns 0 at EOF. */
static int read_lines(tally_engine *eng, char *buf, size_t *used) {
  ssize_t got = read(0, buf + *used, LINE_BYTES_MAX - 1 - *used);
  if (got < 0) return errno == EINTR || errno == EAGAIN;
  if (got == 0) return 0;
  *used += (size_t)got;
  buf[*used] = 0;
  char *start = buf, *nl;
  while ((nl = strchr(start, '\n'))) {
    *nl = 0;
    if (nl > start) handle(eng, start);
    start = nl + 1;
  }
  *used -= (size_t)(start - buf);
  memmove(buf, start, *used);
  if (*used == LINE_BYTES_MAX - 1) { /* a line longer than any command: refuse it */
    printf("ERR\tline too long\n");
    *used = 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  tally_config cfg;
  tally_engine *eng;
  char err[TALLY_ERRBUF_BYTES] = "";
  if (configure(&cfg, argc, argv) != 0) return 2;
  if (tally_engine_new(&cfg, &eng, err, sizeof err) != TALLY_OK || tally_engine_start(eng) != TALLY_OK) {
    fprintf(stderr, "frame_driver: %s\n", err);
    return 1;
  }
  static char buf[LINE_BYTES_MAX];
  size_t used = 0;
  int open = 1;
  while (open) {
    struct pollfd p[2] = {{0, POLLIN, 0}, {tally_engine_fd(eng), POLLIN, 0}};
    if (poll(p, 2, 100) < 0 && errno != EINTR) break;
    if (p[0].revents & (POLLIN | POLLHUP)) open = read_lines(eng, buf, &used);
    while (tally_engine_drain(eng, on_effect, NULL, DRAIN_MAX) > 0) {
    }
    fflush(stdout);
  }
  tally_engine_stop(eng);
  tally_engine_drain(eng, on_effect, NULL, DRAIN_MAX);
  fflush(stdout);
  tally_engine_free(eng);
  return 0;
}
