/* remote.h — remote mode: the public tally_engine_* calls served by a tallyd
 * over a socket (config mode=remote), so an adapter has one code path for
 * both modes (engine_loop.c dispatches here when e->remote is set).
 *
 * Contract
 * --------
 * - The host thread never waits: submit copies the frame into the engine's
 *   `in` ring and pokes the remote thread; effects arrive in the engine's
 *   `out` ring and its eventfd, and tally_engine_drain hands them out
 *   exactly as in process.
 * - While the link to tallyd is not up (connecting, handshaking, refused,
 *   broken), submit returns TALLY_EUNAVAILABLE at once: the adapter tells
 *   the user "the shop is unavailable, try again in a moment". The remote
 *   thread reconnects with backoff (TALLY__REMOTE_BACKOFF_*), and reports
 *   each change of the link as a STATUS effect (the adapter logs them).
 * - Exactly once, in both directions: effects carry tallyd's sequence
 *   number for this instance; one already received is dropped, and ACK
 *   tells tallyd what was received (handed to the `out` ring), so a
 *   reconnect (HELLO.acked) resends only what is missing. A command not yet
 *   answered when the link broke is resent after the reconnect, with its
 *   idempotency key, if it was said less than command_max_age_ms ago;
 *   older ones, and those whose link stays down that long, get a REPLY
 *   TALLY_EUNKNOWN_OUTCOME ("RECEIPTS shows whether it was done").
 * - One remote thread per engine; it owns the socket and everything below
 *   the host-facing atomics. */
#ifndef TALLY_REMOTE_H
#define TALLY_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "engine_internal.h"

typedef struct tally__remote tally__remote;

enum {
  TALLY__REMOTE_BACKOFF_MIN_MS = 100,   /* first retry after a failed connect */
  TALLY__REMOTE_BACKOFF_MAX_MS = 5000,  /* retries never further apart than this */
  TALLY__REMOTE_HANDSHAKE_MS = 5000,    /* connect + TLS + HELLO must finish within it */
  TALLY__REMOTE_ACK_EVERY = 32,         /* effects received before an ACK is due */
  TALLY__REMOTE_ACK_MS = 50,            /* ...or this long after the first unacked one */
  TALLY__REMOTE_RESEND_GRACE_MS = 300,  /* after a welcome, tallyd's resent answers come
                                           first: commands still unanswered after this are
                                           resent */
  TALLY__REMOTE_WBUF_BYTES = 256 * 1024, /* bytes queued for the socket */
  TALLY__REMOTE_RBUF_BYTES = 64 * 1024,  /* one read() */
  TALLY__REMOTE_PENDING_MAX = 4096,      /* unanswered commands kept for a resend: beyond it a
                                            command is still sent but not resent after a
                                            reconnect */
  TALLY__REMOTE_PENDING_FRAME_BYTES = 2048, /* a kept command's frame at most (an IRC line is a
                                               few hundred bytes; a longer one, e.g. with a
                                               2 KiB JID, is sent but not kept): 8 MiB at most */
};

/* Sets up remote mode on a fresh engine whose cfg is imported (mode remote):
 * rings, eventfd, TLS context. TALLY_ECONFIG with err for bad TLS files. */
int tally__remote_new(tally__engine *e, char *err, size_t err_len);
int tally__remote_start(tally__engine *e);
/* A COMMAND frame from the host. TALLY_EUNAVAILABLE while the link is down,
 * TALLY_EBUSY when the queue is full. */
int tally__remote_submit(tally__engine *e, const uint8_t *frame, size_t len);
int tally__remote_submit_presence(tally__engine *e, const tally_presence *p);
/* The host's drain popped effects (host thread): wakes the remote thread if
 * an effect was waiting for that room. */
void tally__remote_drained(tally__engine *e);
/* Stops the thread at once (closing the link; tallyd keeps the outcomes). */
void tally__remote_stop(tally__engine *e);
void tally__remote_free(tally__engine *e);

#endif
