/* engine_loop.c — the engine thread and its loop, and the public engine API
 * (tally.h): start, submit, drain, stop, free (tally_engine_stats, a read of
 * the kernel's counters that TALLY STATS also uses, stays in engine.c).
 *
 * The runtime layer: the loop drives the kernel (kernel/engine.c: effects,
 * batches and their settlement; writer.c; loader.c) and, through the hook
 * table (kernel/hooks.h, filled in runtime.c), the dispatcher and the
 * features. The host thread only copies frames into `in` and out of `out`;
 * the engine thread drains `in` each time it is woken (uv_async) or ticks. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "abi.h"
#include "config.h"
#include "engine_internal.h"
#include "hooks.h"
#include "remote.h"
#include "runtime.h"

/* ---- the loop ------------------------------------------------------------------- */
/* Effects the next command may emit at once, at most, in out-ring bytes:
 * each of its effects at the largest frame size, and one record skipped
 * at the buffer's end per wrap. */
enum { EFFECTS_NEXT_BYTES = (TALLY__EFFECTS_PER_EVENT_MAX + 8 + 2) * TALLY__RING_RECORD_MAX };

static bool effects_room(tally__engine *e) {
  size_t count = tally__ring_count(&e->out), used = tally__ring_bytes_used(&e->out);
  size_t free_slots = tally__ring_capacity(&e->out) > count ? tally__ring_capacity(&e->out) - count : 0;
  size_t free_bytes = tally__ring_bytes_capacity(&e->out) > used ? tally__ring_bytes_capacity(&e->out) - used : 0;
  /* Per pending op: its answer, a "pending" notice, a channel line (tip
   * thanks) and a drop line (low stock, sold out), in count and in the
   * bytes each reserved for its names (effects_reserved). */
  return free_slots >= (size_t)TALLY__EFFECTS_PER_EVENT_MAX + 4u * e->ops_pending + 8u &&
         free_bytes >= e->effects_reserved + EFFECTS_NEXT_BYTES;
}

static void take_command(tally__engine *e, const uint8_t *frame, size_t len) {
  tally__command_frame cmd;
  atomic_fetch_add_explicit(&e->n_events_in, 1, memory_order_relaxed);
  if (tally__command_frame_decode(&e->dec, frame, len, &cmd) != TALLY_OK) {
    fprintf(stderr, "tally: dropped a malformed frame (%zu bytes)\n", len);
    return;
  }
  if (!e->ready) {
    if (e->fenced)
      tally__reply(e, &cmd, TALLY_ESTATE, 0, "tally is stopped here: another tally engine took over its ledger");
    else tally__reply(e, &cmd, TALLY_ESTARTING, 0, "%s", tally_strerror(TALLY_ESTARTING));
    return;
  }
  e->hooks->command(e, &cmd);
}

bool tally__engine_take_command(tally__engine *e, const uint8_t *frame, size_t len) {
  if (!effects_room(e)) return false;
  take_command(e, frame, len);
  return true;
}

static void drain_events(tally__engine *e) {
  uint32_t since_flush = 0;
  while (effects_room(e)) {
    /* Hand work to idle writers while a burst is still being drained, so
     * both connections overlap instead of one big batch at a time. */
    if (++since_flush >= TALLY__DRAIN_FLUSH_EVERY) {
      since_flush = 0;
      tally__engine_flush(e);
    }
    size_t len = tally__ring_pop(&e->in, e->frame);
    if (len == 0) break;
    take_command(e, e->frame, len); /* room was checked before the pop */
  }
  tally__engine_flush(e);
  tally__signal_host(e);
}

/* The verifier thread finished some VERIFY checks: answer them. */
static void on_verified(uv_async_t *h) {
  tally__engine *e = h->data;
  tally__verifier_collect(e->verifier, e->hooks->verify_answer, e);
  tally__signal_host(e);
}

static void on_wake(uv_async_t *h) {
  tally__engine *e = h->data;
  if (atomic_load(&e->stopping)) return;
  drain_events(e);
}

static void try_start(tally__engine *e, uint64_t now) {
  if (e->ready || now < e->next_start_ms) return;
  e->next_start_ms = now + TALLY__RECONNECT_MS * 2;
  char err[TALLY_ERRBUF_BYTES] = "";
  tally__writer *w0 = &e->writers[0];
  int rc = tally__writer_connect(w0, err, sizeof err);
  if (rc == TALLY_OK) rc = tally__engine_load(e, w0->conn, err, sizeof err);
  if (rc == TALLY_OK) rc = tally__writer_prepare(w0, err, sizeof err);
  for (uint32_t k = 1; rc == TALLY_OK && k < e->cfg.writers; k++)
    rc = tally__writer_connect(&e->writers[k], err, sizeof err);
  if (rc != TALLY_OK) {
    if (strcmp(err, e->startup_error) != 0) {
      fprintf(stderr, "tally: start: %s\n", err);
      /* A host sees why it is not starting (e.g. a config the ledger refuses). */
      tally__emit(e, TALLY_EFFECT_STATUS, rc, 0, 0, "", "", err);
    }
    snprintf(e->startup_error, sizeof e->startup_error, "%s", err);
    for (uint32_t k = 0; k < e->cfg.writers; k++) tally__writer_close(&e->writers[k]);
    return;
  }
  e->ready = true;
  tally__emit(e, TALLY_EFFECT_STATUS, TALLY_OK, 0, 0, "", "", "ready");
  /* Presence before this start is unknown: ask for the rosters of the
   * channels whose events are running. */
  for (uint32_t i = 0; i < e->st.event_count; i++)
    if (!e->st.events[i].stopped_ms)
      tally__emit_in(e, e->st.events[i].net, TALLY_EFFECT_ROSTER, TALLY_OK, 0, 0, "", e->st.events[i].channel, "");
}

static void pending_notices(tally__engine *e, uint64_t now) {
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_FREE) continue; /* open ones too: all writers may be down */
    for (uint32_t k = 0; k < b->op_count; k++) {
      tally__op *op = &b->ops[k];
      /* Only payments are "pending"; an ACK (ITEM, ROLE) just answers late. */
      if (op->type != TALLY__OP_TRANSFER || op->told_pending || !op->origin ||
          now - op->decided_mono_ms < e->cfg.pending_timeout_ms)
        continue;
      op->told_pending = true;
      tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_EPENDING, op->req_id, 0, tally__origin_str(&e->st, op->origin), op->channel,
                  tally_strerror(TALLY_EPENDING));
    }
  }
}

static void apply_live_config(tally__engine *e);

void tally__engine_tick(tally__engine *e) {
  apply_live_config(e);
  uint64_t now = tally__now_mono_ms(e);
  /* Between commands, so no pointer into the names table is held. */
  tally__names_tidy(&e->st.names);
  if (!e->ready && !e->fenced) try_start(e, now);
  if (e->ready || e->fenced) {
    e->env->tick(e, now);
    pending_notices(e, now);
  }
  if (e->ready) {
    TALLY__FEATURES_CALL(e, tick, now);
  }
  if (!atomic_load(&e->stopping)) drain_events(e);
  else tally__engine_flush(e);
  tally__signal_host(e);
}

static void on_tick(uv_timer_t *t) { tally__engine_tick(t->data); }

static bool work_in_flight(const tally__engine *e) {
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    const tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_SEALED || b->phase == TALLY__BATCH_RESOLVING) return true;
    if (b->phase == TALLY__BATCH_OPEN && b->op_count > 0) return true;
  }
  return false;
}

static void on_close(uv_handle_t *h) { (void)h; }

/* Stopping without waiting: every payment still in a batch gets its
 * "pending" answer now (unless it had it), since no other answer will come
 * from this engine. A sealed batch's outcome is decided in PostgreSQL when
 * its connection closes (committed or not, never half); an open batch was
 * never sent. Either way the ledger is the truth: the next start rebuilds
 * from it and RECEIPTS shows the buyer what happened. */
static void tell_abandoned(tally__engine *e) {
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_FREE) continue;
    for (uint32_t k = 0; k < b->op_count; k++) {
      tally__op *op = &b->ops[k];
      if (op->type != TALLY__OP_TRANSFER || op->told_pending || !op->origin) continue;
      op->told_pending = true;
      tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_EPENDING, op->req_id, 0,
                     tally__origin_str(&e->st, op->origin), op->channel, tally_strerror(TALLY_EPENDING));
    }
  }
}

static void *engine_thread(void *arg) {
  tally__engine *e = arg;
  atomic_store(&e->running, 1);
  while (!atomic_load(&e->stopping)) uv_run(&e->loop, UV_RUN_ONCE);
  /* Stopping: let in-flight batches resolve so their buyers get answers,
   * unless the host cannot wait (tally_engine_stop_within). */
  uint64_t deadline = tally__now_mono_ms(e) + TALLY__STOP_WAIT_MS;
  while (!atomic_load(&e->stop_abandon) && e->ready && work_in_flight(e) && tally__now_mono_ms(e) < deadline)
    uv_run(&e->loop, UV_RUN_ONCE);
  if (atomic_load(&e->stop_abandon)) tell_abandoned(e);
  tally__signal_host(e);
  for (uint32_t k = 0; k < e->cfg.writers; k++) tally__writer_close(&e->writers[k]);
  tally__verifier_stop(e->verifier);
  e->verifier = NULL;
  uv_close((uv_handle_t *)&e->verify_wake, on_close);
  uv_close((uv_handle_t *)&e->wake, on_close);
  uv_close((uv_handle_t *)&e->tick, on_close);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  atomic_store(&e->running, 0);
  return NULL;
}

/* ---- public API ------------------------------------------------------------------ */
static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Remote mode: the host-facing half of an engine (rings, eventfd, decoder,
 * counters) and a remote thread instead of the engine thread. */
static int remote_new(const tally_config *cfg, tally_engine **out, char *err, size_t err_len) {
  tally__engine *e = calloc(1, sizeof *e);
  if (!e) return TALLY_ENOMEM;
  int rc = tally__config_import(&e->cfg, cfg, err, err_len);
  assert(rc == TALLY_OK); /* tally_config_check imported it already */
  const char **keep[] = {&e->cfg.network, &e->cfg.address, &e->cfg.secret,     &e->cfg.instance,
                         &e->cfg.remote_ca, &e->cfg.remote_cert, &e->cfg.remote_key, &e->cfg.adapter};
  _Static_assert(sizeof keep / sizeof keep[0] == TALLY__REMOTE_STRINGS, "one copy per string");
  rc = TALLY_OK;
  for (int i = 0; i < TALLY__REMOTE_STRINGS; i++) {
    e->remote_strings[i] = strdup(*keep[i] ? *keep[i] : "");
    if (!e->remote_strings[i]) rc = TALLY_ENOMEM;
    *keep[i] = e->remote_strings[i];
  }
  e->cfg.dsn = e->cfg.signing_key_path = e->cfg.currency = e->cfg.admins = e->cfg.mode = NULL;
  e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!rc && e->efd < 0) rc = TALLY_ENOMEM;
  /* As in process: queue_depth frames in queue_bytes one way, twice that
   * the other (tallyd's answers wait here for the host's drain). */
  if (!rc) rc = tally__ring_init(&e->in, e->cfg.queue_depth, e->cfg.queue_bytes);
  if (!rc) rc = tally__ring_init(&e->out, 2u * (size_t)e->cfg.queue_depth + 1024u, 2u * (size_t)e->cfg.queue_bytes);
  if (!rc) rc = tally__decoder_init(&e->host_dec);
  if (!rc) rc = tally__remote_new(e, err, err_len);
  if (rc) {
    if (err && err_len && !err[0]) snprintf(err, err_len, "tally: %s", tally_strerror(rc));
    tally_engine_free(e);
    return rc;
  }
  pthread_mutex_init(&e->host_dec_lock, NULL);
  *out = e;
  return TALLY_OK;
}

/* Each feature's own state (hooks.h: data_size, data_slot), zeroed. */
static int features_data_new(tally__engine *e) {
  for (size_t f = 0; f < e->hooks->feature_count; f++) {
    const tally__feature_hooks *h = &e->hooks->features[f];
    if (!h->data_size) continue;
    assert(h->data_slot < TALLY__FEATURE_DATA_MAX && !e->feature_data[h->data_slot]); /* runtime.c's table */
    if (!(e->feature_data[h->data_slot] = calloc(1, h->data_size))) return TALLY_ENOMEM;
  }
  return TALLY_OK;
}

static void features_data_free(tally__engine *e) {
  for (size_t f = 0; f < e->hooks->feature_count; f++) {
    const tally__feature_hooks *h = &e->hooks->features[f];
    if (!h->data_size) continue;
    free(e->feature_data[h->data_slot]);
    e->feature_data[h->data_slot] = NULL;
  }
}

int tally__engine_new(const tally__hooks *hooks, const tally_config *cfg, tally_engine **out, char *err,
                      size_t err_len) {
  if (!cfg || !out) return TALLY_EINVAL;
  assert(hooks && hooks->command && hooks->verify_answer && hooks->grant_request && hooks->commands); /* runtime.c's table */
  int rc = tally_config_check(cfg, err, err_len);
  if (rc) return rc;
  if (cfg->size >= TALLY_SIZE_THROUGH(tally_config, mode) && cfg->mode && !strcmp(cfg->mode, "remote"))
    return remote_new(cfg, out, err, err_len);
  tally__engine *e = calloc(1, sizeof *e);
  if (!e) return TALLY_ENOMEM;
  rc = tally__config_import(&e->cfg, cfg, err, err_len); /* a host's shorter struct: defaults past it */
  assert(rc == TALLY_OK); /* tally_config_check imported it already */
  cfg = &e->cfg;
  e->hooks = hooks;
  e->env = &tally__env_real;
  e->dsn = dup_or_null(cfg->dsn);
  e->key_path = dup_or_null(cfg->signing_key_path);
  e->currency = dup_or_null(cfg->currency);
  e->network = dup_or_null(cfg->network);
  e->cfg.network = e->network;
  e->admins = dup_or_null(cfg->admins);
  e->cfg.dsn = e->dsn;
  e->cfg.signing_key_path = e->key_path;
  e->cfg.currency = e->currency;
  e->cfg.admins = e->admins;
  e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  e->batch_slots = e->cfg.writers + 1;
  e->batches = calloc(e->batch_slots, sizeof *e->batches);
  rc = (!e->dsn || !e->key_path || !e->currency || !e->network || !e->admins || e->efd < 0 || !e->batches) ? TALLY_ENOMEM : TALLY_OK;
  /* The events ring: queue_depth frames in queue_bytes. The effects ring:
   * twice that (answers and announcements waiting for the host), plus what
   * every op in flight may reserve with IRC-sized names (ops with longer
   * names reserve more and so wait earlier), plus the next command's. */
  size_t ops_max = (size_t)e->cfg.batch_max * e->batch_slots;
  size_t out_count = 2u * (size_t)e->cfg.queue_depth + TALLY__EFFECTS_PER_OP_MAX * ops_max + 1024u;
  size_t out_bytes = 2u * (size_t)e->cfg.queue_bytes +
                     ops_max * tally__effects_bytes("", "") + ops_max * TALLY__EFFECTS_PER_OP_MAX * 2u * TALLY_NAME_BYTES_MAX +
                     EFFECTS_NEXT_BYTES;
  if (!rc) rc = tally__ring_init(&e->in, e->cfg.queue_depth, e->cfg.queue_bytes);
  if (!rc) rc = tally__ring_init(&e->out, out_count, out_bytes);
  if (!rc) rc = tally__state_init(&e->st, &e->cfg);
  if (!rc) rc = features_data_new(e);
  if (!rc) rc = tally__decoder_init(&e->dec);
  if (!rc) rc = tally__decoder_init(&e->host_dec);
  for (uint32_t i = 0; !rc && i < e->batch_slots; i++) rc = tally__batch_init(&e->batches[i], e->cfg.batch_max);
  if (!rc) rc = tally__signer_open(e->key_path, &e->signer, err, err_len);
  if (rc) {
    if (err && err_len && !err[0]) snprintf(err, err_len, "tally: %s", tally_strerror(rc));
    tally_engine_free(e);
    return rc;
  }
  pthread_mutex_init(&e->host_dec_lock, NULL);
  for (int k = 0; k < TALLY__WRITERS_MAX; k++) {
    e->writers[k].engine = e;
    e->writers[k].index = k;
  }
  *out = e;
  return TALLY_OK;
}

int tally_engine_start(tally_engine *e) {
  assert(e);
  if (e->remote) return tally__remote_start(e);
  if (e->thread_started) return TALLY_ESTATE;
  if (uv_loop_init(&e->loop)) return TALLY_ENOMEM;
  uv_async_init(&e->loop, &e->wake, on_wake);
  uv_timer_init(&e->loop, &e->tick);
  e->wake.data = e->tick.data = e;
  uv_timer_start(&e->tick, on_tick, 0, TALLY__TICK_MS);
  uv_async_init(&e->loop, &e->verify_wake, on_verified);
  e->verify_wake.data = e;
  uint8_t pub[TALLY_PUBKEY_BYTES];
  tally__signer_public(e->signer, pub);
  if (tally__verifier_start(e->dsn, pub, &e->verify_wake, &e->verifier) != TALLY_OK) e->verifier = NULL;
  if (pthread_create(&e->thread, NULL, engine_thread, e) != 0) {
    tally__verifier_stop(e->verifier);
    e->verifier = NULL;
    return TALLY_ENOMEM;
  }
  e->thread_started = true;
  return TALLY_OK;
}

int tally_engine_submit(tally_engine *e, const uint8_t *frame, size_t frame_len) {
  assert(e);
  if (!frame || frame_len == 0) return TALLY_EINVAL;
  if (frame_len > TALLY_FRAME_BYTES_MAX) return TALLY_ETOOBIG;
  if (atomic_load_explicit(&e->stopping, memory_order_relaxed)) return TALLY_ESTATE;
  if (e->remote) return tally__remote_submit(e, frame, frame_len);
  int rc = tally__ring_push(&e->in, frame, frame_len);
  if (rc == TALLY_EBUSY) {
    atomic_fetch_add_explicit(&e->n_busy, 1, memory_order_relaxed);
    return rc;
  }
  if (rc == TALLY_OK && e->thread_started) uv_async_send(&e->wake);
  return rc;
}

int tally_engine_submit_command(tally_engine *e, const tally_command *cmd) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  int rc = tally_command_encode(cmd, buf, sizeof buf, &len);
  return rc ? rc : tally_engine_submit(e, buf, len);
}

/* Presence travels as a command frame that only this function can mark
 * (TALLY__ROLE_PRESENCE): the wire format stays v1, and no chat line can
 * pretend to be a presence change because adapters never set that bit. */
/* A field appended to tally_presence gets its default for older hosts here. */
static const tally_presence presence_defaults = {.size = sizeof(tally_presence), .version = TALLY_PRESENCE_VERSION};

int tally_engine_submit_presence(tally_engine *e, const tally_presence *p) {
  if (!e || !p) return TALLY_EINVAL;
  tally_presence full;
  if (tally__abi_import(&full, &presence_defaults, sizeof full, p, TALLY_PRESENCE_SIZE_V1)) return TALLY_EINVAL;
  p = &full;
  if (!p->account || !p->channel) return TALLY_EINVAL;
  if (e->remote) return tally__remote_submit_presence(e, p);
  const char *network = p->network; /* NULL for a host built before it: the configured one */
  tally_command cmd = {.size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .origin = "", .account = p->account,
                       .nick = "", .channel = p->channel, .msg_id = "", .text = p->present ? "PRESENCE JOIN" : "PRESENCE PART",
                       .roles = TALLY__ROLE_PRESENCE, .network = network};
  return tally_engine_submit_command(e, &cmd);
}

int tally_engine_fd(const tally_engine *e) { return e->efd; }

int tally_engine_drain(tally_engine *e, tally_effect_cb cb, void *ud, size_t max_effects) {
  assert(e && cb);
  uint64_t counter;
  ssize_t n = read(e->efd, &counter, sizeof counter);
  (void)n;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  tally__effect_frame f;
  int delivered = 0;
  pthread_mutex_lock(&e->host_dec_lock);
  while ((size_t)delivered < max_effects) {
    size_t len = tally__ring_pop(&e->out, buf);
    if (len == 0) break;
    int rc = tally__effect_frame_decode(&e->host_dec, buf, len, &f);
    assert(rc == TALLY_OK);
    (void)rc;
    tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = (uint32_t)f.kind,
                        .code = (int32_t)f.code, .req_id = f.req_id, .receipt_id = f.receipt_id,
                        .origin = f.origin, .channel = f.channel, .text = f.text,
                        .hint = (uint32_t)f.hint, .network = f.network, .conn = f.conn, .msg = (uint32_t)f.msg,
                        .args = f.args};
    cb(ud, &eff);
    delivered++;
  }
  pthread_mutex_unlock(&e->host_dec_lock);
  if (e->remote && delivered) tally__remote_drained(e); /* room made: a waiting effect may come */
  /* More left than max: keep the fd readable so the host comes back. */
  if (tally__ring_count(&e->out) > 0) {
    uint64_t one = 1;
    n = write(e->efd, &one, sizeof one);
  }
  return delivered;
}

void tally_engine_stop(tally_engine *e) {
  assert(e);
  if (e->remote) {
    tally__remote_stop(e);
    return;
  }
  if (!e->thread_started) return;
  atomic_store(&e->stopping, 1);
  uv_async_send(&e->wake);
  pthread_join(e->thread, NULL);
  e->thread_started = false;
  uv_loop_close(&e->loop);
}

void tally_engine_free(tally_engine *e) {
  if (!e) return;
  tally_engine_stop(e);
  if (e->hooks) TALLY__FEATURES_CALL0(e, destroy); /* the engine thread has stopped */
  if (e->hooks) features_data_free(e);
  tally__remote_free(e);
  for (int i = 0; i < TALLY__REMOTE_STRINGS; i++) free(e->remote_strings[i]);
  for (uint32_t i = 0; e->batches && i < e->batch_slots; i++) tally__batch_free(&e->batches[i]);
  free(e->batches);
  tally__state_free(&e->st);
  if (e->dec.zone.chunk_list.head) tally__decoder_free(&e->dec);
  if (e->host_dec.zone.chunk_list.head) tally__decoder_free(&e->host_dec);
  if (e->in.buf) tally__ring_free(&e->in);
  if (e->out.buf) tally__ring_free(&e->out);
  if (e->signer) tally__signer_close(e->signer);
  if (e->efd >= 0) close(e->efd);
  free(e->dsn);
  free(e->network);
  free(e->key_path);
  free(e->currency);
  free(e->admins);
  free(e);
}

/* tally_engine_stop without the wait for batches in flight (tally.h). The
 * engine thread never blocks on a batch (writers are non-blocking libpq on
 * its loop), so once told it closes its connections and leaves within a
 * few ticks; only a (re)connect in progress, bounded by libpq's
 * connect_timeout, can hold it longer: then TALLY_EBUSY, the thread still
 * runs and a later stop_within, stop or free joins it (without waiting for
 * batches either: stop_abandon stays set). */
int tally_engine_stop_within(tally_engine *e, uint32_t ms) {
  if (!e) return TALLY_EINVAL;
  if (e->remote) {
    tally__remote_stop(e);
    return TALLY_OK;
  }
  if (!e->thread_started) return TALLY_OK;
  atomic_store(&e->stop_abandon, true);
  atomic_store(&e->stopping, 1);
  uv_async_send(&e->wake);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)(ms / 1000u);
  until.tv_nsec += (long)(ms % 1000u) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  int rc = pthread_timedjoin_np(e->thread, NULL, &until);
  if (rc == ETIMEDOUT) return TALLY_EBUSY;
  if (rc != 0) return TALLY_ESTATE;
  e->thread_started = false;
  uv_loop_close(&e->loop);
  return TALLY_OK;
}

/* ---- settings that change while the engine runs (tally.h) --------------------- */
/* Only settings the engine reads afresh each time it uses them, and whose
 * change cannot make two parts of the engine disagree: rate limits (a
 * bucket refills towards the new rate), when buyers hear "pending", how
 * often a pinned highlight repeats. Not money (fee, caps, grants: a
 * command already priced would disagree with its batch), not sizes
 * (queues and tables are allocated at start), not the tip-message hold (a
 * tip decided held would be rendered unheld), not the DSN or key. */
typedef struct live_key {
  const char *key;
  size_t offset; /* a uint32_t field of tally_config */
} live_key;
static const live_key live_keys[] = {
    {"rate_account", offsetof(tally_config, rate_account_per_min)},
    {"rate_channel", offsetof(tally_config, rate_channel_per_min)},
    {"rate_global", offsetof(tally_config, rate_global_per_min)},
    {"rate_verify", offsetof(tally_config, rate_verify_per_min)},
    {"pending_timeout", offsetof(tally_config, pending_timeout_ms)},
    {"highlight_repeat", offsetof(tally_config, highlight_repeat_s)},
};
enum { LIVE_KEYS = sizeof live_keys / sizeof live_keys[0] };
_Static_assert(LIVE_KEYS <= sizeof(((tally__engine *)0)->live_values) / sizeof(uint32_t),
               "live_values too small for live_keys");

static uint32_t *cfg_u32(tally_config *cfg, size_t offset) { return (uint32_t *)(void *)((char *)cfg + offset); }

static void apply_live_config(tally__engine *e) {
  unsigned gen = atomic_load_explicit(&e->live_gen, memory_order_acquire);
  if (gen == e->live_seen) return;
  e->live_seen = gen;
  for (size_t i = 0; i < LIVE_KEYS; i++)
    *cfg_u32(&e->cfg, live_keys[i].offset) = atomic_load_explicit(&e->live_values[i], memory_order_relaxed);
}

int tally_config_key_live(const char *key) {
  for (size_t i = 0; key && i < LIVE_KEYS; i++)
    if (strcmp(key, live_keys[i].key) == 0) return 1;
  return 0;
}

int tally_engine_reconfigure(tally_engine *e, const tally_config *cfg, char *err, size_t err_len) {
  if (!e || !cfg) return TALLY_EINVAL;
  int rc = tally_config_check(cfg, err, err_len);
  if (rc) return rc;
  tally_config full;
  rc = tally__config_import(&full, cfg, err, err_len);
  if (rc) return rc;
  if (e->remote) return TALLY_ESTATE; /* tallyd's settings are its own */
  for (size_t i = 0; i < LIVE_KEYS; i++)
    atomic_store_explicit(&e->live_values[i], *cfg_u32(&full, live_keys[i].offset), memory_order_relaxed);
  atomic_fetch_add_explicit(&e->live_gen, 1, memory_order_release);
  return TALLY_OK;
}
