/* main.c — tallyd: one tally engine serving many chat servers.
 *
 * Options and logging, the engine's start and its effects fd, signals:
 *   SIGTERM/SIGINT  stop taking commands (answered busy), close listeners,
 *                   let the engine finish in-flight batches
 *                   (tally_engine_stop, on a worker thread while this loop
 *                   keeps delivering answers), write what can be written
 *                   within TD_STOP_FLUSH_MS, exit 0;
 *   SIGHUP          reload what can change without a restart (secrets, TLS
 *                   files, the component's keys) and log what could not
 *                   (listeners, engine keys).
 * It runs in the foreground; systemd learns READY=1 once the engine is
 * ready (notify.c). */
#include "tallyd.h"
#include "matrix.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* ---- logging ------------------------------------------------------------------------ */
static int use_syslog;

void td_log_syslog(int on) {
  use_syslog = on;
  if (on) openlog("tallyd", LOG_PID, LOG_DAEMON);
}

void td_log(int level, const char *fmt, ...) {
  char line[TD_LOG_BYTES_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (use_syslog) {
    syslog(level, "%s", line);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  static const char *const names[8] = {"", "", "", "error", "warn", "", "info", "debug"};
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ tallyd %s: %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
          tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level & 7], line);
}

/* ---- the engine ------------------------------------------------------------------- */
uint64_t td_now_ms(td_daemon *d) { return uv_now(d->loop); }

static void drain(td_daemon *d) {
  while (tally_engine_drain(d->engine, td_route_effect, d, TD_DRAIN_BATCH) > 0) {
  }
}

static void on_prepare(uv_prepare_t *h) { td_conns_pump_due(h->data); }

static void on_engine(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  drain(h->data);
}

void td_presence_submit(void *ud, const char *network, const char *account, const char *room, int present) {
  td_daemon *d = ud;
  if (d->stopping) return;
  tally_presence p = {.size = sizeof p, .version = TALLY_PRESENCE_VERSION, .account = account, .channel = room,
                      .present = (uint32_t)present, .network = network};
  int rc = tally_engine_submit_presence(d->engine, &p);
  td_log(TD_DEBUG, "presence: %s %s/%s in %s", present ? "join" : "part", network, account, room);
  if (rc != TALLY_OK)
    td_log(TD_WARN, "presence %s of %s in %s/%s not submitted: %s", present ? "join" : "part", account, network,
           room, tally_strerror(rc));
}

/* The state directory holds the default signing key: create it (0700) or
 * say which one is missing. */
static int state_dir_ready(td_daemon *d, char *err, size_t err_len) {
  if (strcmp(d->cfg.engine.signing_key_path, d->cfg.signing_key) != 0 || !d->cfg.state_dir[0]) return TALLY_OK;
  struct stat st;
  if (stat(d->cfg.state_dir, &st) == 0) return TALLY_OK;
  if (mkdir(d->cfg.state_dir, 0700) == 0) {
    td_log(TD_INFO, "created state directory %s", d->cfg.state_dir);
    return TALLY_OK;
  }
  int n = snprintf(err, err_len, "state directory %.400s: %s (create it, set state_dir, or set signing_key)",
                   d->cfg.state_dir, strerror(errno));
  (void)n;
  return TALLY_EIO;
}

/* ---- stopping ------------------------------------------------------------------------ */
static uv_work_t stop_work;
static uv_timer_t flush_timer;
static uint64_t flush_deadline_ms;

static void stop_engine(uv_work_t *w) {
  td_daemon *d = w->data;
  tally_engine_stop(d->engine); /* in-flight batches resolve; their answers are drained meanwhile */
}

static int all_written(td_daemon *d) {
  for (td_conn *c = d->conns; c; c = c->next)
    if (c->state == TD_CONN_LIVE && c->slot && (c->inflight_bytes || c->sent_seq + 1 < c->slot->next_seq)) return 0;
  return td_xmpp_flushed(d->xmpp);
}

static void finish(td_daemon *d) {
  td_xmpp_close(d->xmpp);
  td_conns_pump_due(d); /* what the last drain queued goes before the close */
  while (d->conns) td_conn_close(d->conns, "tallyd stopped");
  uv_close((uv_handle_t *)&d->pump_prep, NULL);
  td_mx_close(d);
  uv_close((uv_handle_t *)&flush_timer, NULL);
  uv_close((uv_handle_t *)&d->tick, NULL);
  uv_close((uv_handle_t *)&d->sig_term, NULL);
  uv_close((uv_handle_t *)&d->sig_int, NULL);
  uv_close((uv_handle_t *)&d->sig_hup, NULL);
}

static void on_flush(uv_timer_t *t) {
  td_daemon *d = t->data;
  drain(d);
  if (all_written(d) || td_now_ms(d) >= flush_deadline_ms) {
    if (!all_written(d)) td_log(TD_WARN, "stop: some answers could not be written in %d ms (kept by no one)", TD_STOP_FLUSH_MS);
    finish(d);
  }
}

static void engine_stopped(uv_work_t *w, int status) {
  (void)status;
  td_daemon *d = w->data;
  uv_poll_stop(&d->engine_poll);
  uv_close((uv_handle_t *)&d->engine_poll, NULL);
  drain(d);
  /* Commands the engine stopped without answering (still queued, or in a
   * batch that did not resolve in time) get an answer, never silence. */
  uint32_t unanswered = 0;
  for (uint32_t i = 0; i < d->cfg.slots_max; i++) {
    td_slot *s = &d->slots[i];
    if (!s->used || !s->pend_count) continue;
    unanswered += s->pend_count;
    uint32_t lost = td_pending_answer_all(d, s, TALLY_EUNKNOWN_OUTCOME,
                                          "the shop stopped before answering: the outcome is unknown; RECEIPTS "
                                          "shows it, and the same command sent again is applied at most once");
    if (lost)
      td_log(TD_WARN, "slot %x: %u unanswered commands had names too long to keep: their users are not told",
             (unsigned)s->id, lost);
  }
  td_log(TD_INFO, "engine stopped; writing the last answers (%u commands the engine left unanswered)", unanswered);
  flush_deadline_ms = td_now_ms(d) + TD_STOP_FLUSH_MS;
  uv_timer_init(d->loop, &flush_timer);
  flush_timer.data = d;
  uv_timer_start(&flush_timer, on_flush, 0, 20);
}

static void on_stop_signal(uv_signal_t *s, int signum) {
  td_daemon *d = s->data;
  if (d->stopping) return;
  d->stopping = 1;
  td_log(TD_INFO, "%s: stopping: no new commands; in-flight batches finish", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  td_notify("STOPPING=1");
  td_listen_stop(d);
  stop_work.data = d;
  if (uv_queue_work(d->loop, &stop_work, stop_engine, engine_stopped) != 0) {
    tally_engine_stop(d->engine);
    engine_stopped(&stop_work, 0);
  }
}

/* ---- reloading ------------------------------------------------------------------------ */
static void reload(td_daemon *d) {
  static td_config next; /* large; one reload at a time */
  char err[TALLY_ERRBUF_BYTES * 2];
  if (td_config_load(&next, d->cfg.path, err, sizeof err) != TALLY_OK) {
    td_log(TD_ERR, "SIGHUP: %s; nothing changed", err);
    td_config_free(&next);
    return;
  }
  if (d->tcp_on) {
    SSL_CTX *ctx = td_tls_context(&next, err, sizeof err);
    if (!ctx) {
      td_log(TD_ERR, "SIGHUP: %s; nothing changed", err);
      td_config_free(&next);
      return;
    }
    SSL_CTX_free(d->tls); /* connections keep theirs: SSL objects hold a reference */
    d->tls = ctx;
    memcpy(d->cfg.tls_cert, next.tls_cert, sizeof d->cfg.tls_cert);
    memcpy(d->cfg.tls_key, next.tls_key, sizeof d->cfg.tls_key);
    memcpy(d->cfg.tls_client_ca, next.tls_client_ca, sizeof d->cfg.tls_client_ca);
  }
  memcpy(d->cfg.secrets, next.secrets, sizeof d->cfg.secrets);
  d->cfg.secret_count = next.secret_count;
  d->cfg.hello_timeout_ms = next.hello_timeout_ms;
  d->cfg.slot_linger_s = next.slot_linger_s;
  td_log(TD_INFO, "SIGHUP: reloaded %u network secrets%s, hello_timeout, slot_linger", next.secret_count,
         d->tcp_on ? ", TLS files" : "");
  if (strcmp(next.listen_unix, d->cfg.listen_unix) || strcmp(next.listen_tcp, d->cfg.listen_tcp))
    td_log(TD_WARN, "SIGHUP: listen_unix/listen_tcp changed: needs a restart");
  if (next.value_count != d->cfg.value_count)
    td_log(TD_WARN, "SIGHUP: engine keys changed: they apply at the next restart");
  else
    for (uint32_t i = 0; i < next.value_count; i++)
      if (strcmp(next.values[i], d->cfg.values[i])) {
        td_log(TD_WARN, "SIGHUP: engine keys changed: they apply at the next restart");
        break;
      }
  if (next.slot_effects_max != d->cfg.slot_effects_max || next.slots_max != d->cfg.slots_max ||
      next.presence_max != d->cfg.presence_max || next.conns_max != d->cfg.conns_max ||
      next.slot_bytes_max != d->cfg.slot_bytes_max || next.busy_reserve != d->cfg.busy_reserve)
    td_log(TD_WARN, "SIGHUP: bounds (slots, effects, presence, conns) changed: they apply at the next restart");
  td_xmpp_reload(d, &next);
  td_mx_reload(d, &next);
  td_config_free(&next);
}

static void on_hup(uv_signal_t *s, int signum) {
  (void)signum;
  reload(s->data);
}

static void on_tick(uv_timer_t *t) {
  td_daemon *d = t->data;
  uint64_t now = td_now_ms(d);
  td_conn_sweep(d, now);
  td_slots_expire(d, now);
}

/* ---- main ------------------------------------------------------------------------------ */
static void usage(FILE *out) {
  fprintf(out,
          "usage: tallyd [--config FILE] [--syslog] [--check]\n"
          "       tallyd --help | --version\n\n"
          "One tally engine serving many chat servers over a unix socket and TLS 1.3.\n"
          "  -c, --config FILE  config file (default /etc/tally/tallyd.conf)\n"
          "      --syslog       log to syslog instead of stderr\n"
          "      --check        check the config file and exit\n"
          "  -h, --help         this text and every config key\n"
          "  -V, --version      print the version\n\n"
          "Signals: SIGTERM stops (in-flight batches finish, exit 0), SIGHUP reloads\n"
          "secrets and TLS files. See docs/DAEMON.md.\n\n");
  td_config_help(out);
}

static int start(td_daemon *d) {
  char err[TALLY_ERRBUF_BYTES * 2];
  d->slots = calloc(d->cfg.slots_max, sizeof *d->slots);
  d->presence = td_presence_new(d->cfg.presence_max);
  if (!d->slots || !d->presence) {
    td_log(TD_ERR, "out of memory for %u slots and %u presences", d->cfg.slots_max, d->cfg.presence_max);
    return 1;
  }
  /* Slot ids go into origins the engine may keep (deferred replies): seeded
   * from the clock so a restarted tallyd does not hand an old id to another
   * chat server. Never 0. */
  d->slot_next_id = ((uint32_t)time(NULL) << 8) | 1;
  if (d->cfg.listen_tcp[0] && !(d->tls = td_tls_context(&d->cfg, err, sizeof err))) {
    td_log(TD_ERR, "%s", err);
    return 1;
  }
  if (state_dir_ready(d, err, sizeof err) != TALLY_OK) {
    td_log(TD_ERR, "%s", err);
    return 1;
  }
  int rc = tally_engine_new(&d->cfg.engine, &d->engine, err, sizeof err);
  if (rc != TALLY_OK) {
    td_log(TD_ERR, "engine: %s", err);
    return 1;
  }
  if (td_listen_start(d, err, sizeof err) != TALLY_OK) {
    td_log(TD_ERR, "%s", err);
    return 1;
  }
  if (td_mx_start(d, err, sizeof err) != TALLY_OK) {
    td_log(TD_ERR, "%s", err);
    return 1;
  }
  uv_prepare_init(d->loop, &d->pump_prep);
  d->pump_prep.data = d;
  uv_prepare_start(&d->pump_prep, on_prepare);
  uv_poll_init(d->loop, &d->engine_poll, tally_engine_fd(d->engine));
  d->engine_poll.data = d;
  uv_poll_start(&d->engine_poll, UV_READABLE, on_engine);
  d->status_code = TALLY_ESTARTING;
  snprintf(d->status_text, sizeof d->status_text, "starting up, try again in a moment");
  rc = tally_engine_start(d->engine);
  if (rc != TALLY_OK) {
    td_log(TD_ERR, "engine start: %s", tally_strerror(rc));
    return 1;
  }
  if (td_xmpp_start(d, err, sizeof err) != TALLY_OK) {
    td_log(TD_ERR, "%s", err);
    return 1;
  }
  uv_timer_init(d->loop, &d->tick);
  d->tick.data = d;
  uv_timer_start(&d->tick, on_tick, 1000, 1000);
  uv_signal_t *sigs[] = {&d->sig_term, &d->sig_int, &d->sig_hup};
  int nums[] = {SIGTERM, SIGINT, SIGHUP};
  for (int i = 0; i < 3; i++) {
    uv_signal_init(d->loop, sigs[i]);
    sigs[i]->data = d;
    uv_signal_start(sigs[i], i == 2 ? on_hup : on_stop_signal, nums[i]);
  }
  td_log(TD_INFO, "%s (libtally %x) started as \"%s\": %u networks", TD_VERSION, (unsigned)tally_version(),
         d->cfg.server_id, d->cfg.secret_count);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"syslog", no_argument, 0, 's'},
                                       {"check", no_argument, 0, 'k'},        {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},      {0, 0, 0, 0}};
  const char *path = "/etc/tally/tallyd.conf";
  int check = 0, o;
  while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
    switch (o) {
    case 'c': path = optarg; break;
    case 's': td_log_syslog(1); break;
    case 'k': check = 1; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("%s (libtally %x)\n", TD_VERSION, (unsigned)tally_version()); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }
  static td_daemon d; /* large (config, secrets): not on the stack */
  char err[TALLY_ERRBUF_BYTES * 2];
  if (td_config_load(&d.cfg, path, err, sizeof err) != TALLY_OK) {
    td_log(TD_ERR, "%s", err);
    return 1;
  }
  if (check) {
    printf("%s: ok\n", path);
    td_config_free(&d.cfg);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  d.loop = uv_default_loop();
  int rc = start(&d);
  if (rc == 0) uv_run(d.loop, UV_RUN_DEFAULT);
  else {
    td_listen_stop(&d);
    if (d.engine) tally_engine_stop(d.engine);
  }
  if (d.engine) {
    tally_engine_free(d.engine);
    d.engine = NULL;
  }
  if (rc == 0) td_log(TD_INFO, "stopped; %llu effects dropped in all", (unsigned long long)d.dropped_total);
  td_mx_stop(&d);
  td_slots_free(&d);
  free(d.slots);
  td_presence_free(d.presence);
  SSL_CTX_free(d.tls);
  uv_loop_close(d.loop);
  td_config_free(&d.cfg);
  return rc;
}
