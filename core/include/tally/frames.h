/* tally/frames.h — the wire frames as C structs, their encoders and decoders,
 * HELLO version negotiation and authentication, and the length-prefixed
 * stream framing that carries frames over a socket (tallyd, issue 11).
 *
 * Contract
 * --------
 * - The frames are defined once, in schemas/tally_frames_v1.h; docs/FRAMES.md
 *   is generated from it and describes every field. The structs below are
 *   the same tables spelled out for hosts (libtally fails to compile when a
 *   struct and its table differ in a field's name, order, type or size).
 * - Encoders write into the caller's buffer and never allocate: TALLY_ETOOBIG
 *   when it does not fit or a string is over its limit (strings must be
 *   NUL-terminated within their array), TALLY_EINVAL for NULL arguments.
 * - Decoders take untrusted bytes: anything that is not exactly one v1 frame
 *   of the expected type (wrong field types, a string over its limit or with
 *   a NUL byte, a "0 or 1" field above 1, trailing bytes, truncation) is
 *   TALLY_EFRAME. A longer array (fields appended by a later v1.x) decodes;
 *   the tail is ignored. A decoder handle is used by one thread at a time;
 *   once warm it does not allocate.
 * - The stream reader yields only whole frames. A zero length or one above
 *   TALLY_FRAME_BYTES_MAX poisons it for good: the connection must be closed,
 *   since the next frame's start cannot be found.
 */
#ifndef TALLY_FRAMES_H
#define TALLY_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "tally.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Limits ---------------------------------------------------------------- */
enum {
  TALLY_FRAME_NETWORK_BYTES_MAX = 64,   /* network id ("libera") */
  TALLY_FRAME_ADAPTER_BYTES_MAX = 64,   /* adapter name and version */
  TALLY_FRAME_INSTANCE_BYTES_MAX = 255, /* server instance id: fits a DNS name */
  TALLY_HELLO_CHALLENGE_BYTES = 32,     /* random bytes of a challenge */
  TALLY_HELLO_ANSWER_BYTES = 32,        /* HMAC-SHA256 */
  TALLY_FRAME_HELLO_HEX_BYTES = 64,     /* either of them in lowercase hex */
  TALLY_STREAM_PREFIX_BYTES = 4,        /* big-endian length before each frame */
  /* The wire versions this libtally speaks (the schema version). */
  TALLY_WIRE_VERSION_MIN = 1,
  TALLY_WIRE_VERSION_MAX = 1,
};

/* Frame types (what tally_frame_type() returns), as in schemas/tally_frames_v1.h:
 * the same macros, so a translation unit that sees both gets a compile error
 * (a redefinition) if they ever differ. */
#define TALLY_FRAME_TYPE_COMMAND 1      /* host -> engine */
#define TALLY_FRAME_TYPE_EFFECT 2       /* engine -> host */
#define TALLY_FRAME_TYPE_HELLO 3        /* host -> engine, first frame */
#define TALLY_FRAME_TYPE_HELLO_SERVER 4 /* engine -> host: challenge, then verdict */
#define TALLY_FRAME_TYPE_PRESENCE 5     /* host -> engine */
#define TALLY_FRAME_TYPE_ACK 6          /* host -> engine */

/* HELLO capability bits: what the host's chat network lets it do. */
enum tally_cap {
  TALLY_CAP_INTERCEPT_COMMANDS = 1u << 0, /* sees command lines before the room does
                                             (IRC, Prosody; not a Matrix AS) */
  TALLY_CAP_PIN_TOPIC = 1u << 1,          /* can set a room's topic (TOPIC effects) */
  TALLY_CAP_HOLD_FOR_MODERATORS = 1u << 2 /* can say to moderators only (MODERATORS
                                             effects) */
};

/* ---- Frame structs (fields in wire order; see docs/FRAMES.md) -------------- */
typedef struct tally_frame_effect {
  uint64_t kind;
  int64_t code;
  uint64_t req_id;
  uint64_t receipt_id;
  char origin[TALLY_ORIGIN_BYTES_MAX + 1]; /* TALLY_NAME_BYTES_MAX before 1.6 */
  char channel[TALLY_ROOM_BYTES_MAX + 1];  /* TALLY_NAME_BYTES_MAX before 1.6 */
  char text[TALLY_TEXT_BYTES_MAX + 1];
  uint64_t seq;
  uint64_t hint; /* enum tally_hint (tally.h), since 1.4 */
  char network[TALLY_FRAME_NETWORK_BYTES_MAX + 1]; /* since 1.5 */
  uint64_t conn;                                   /* since 1.5 */
  uint64_t msg;  /* enum tally_msg (tally.h), since 1.5 */
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1]; /* tally_effect_args_parse, since 1.5 */
} tally_frame_effect;

typedef struct tally_frame_hello {
  uint64_t wire_min, wire_max;
  char network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
  char adapter[TALLY_FRAME_ADAPTER_BYTES_MAX + 1];
  char instance[TALLY_FRAME_INSTANCE_BYTES_MAX + 1];
  uint64_t shard;
  uint64_t caps; /* enum tally_cap bits */
  char answer[TALLY_FRAME_HELLO_HEX_BYTES + 1];
  uint64_t acked;
} tally_frame_hello;

typedef struct tally_frame_hello_server {
  uint64_t wire_min, wire_max;
  uint64_t wire_chosen;
  int64_t code;
  char server[TALLY_FRAME_INSTANCE_BYTES_MAX + 1];
  uint64_t shard;
  char challenge[TALLY_FRAME_HELLO_HEX_BYTES + 1];
  char text[TALLY_TEXT_BYTES_MAX + 1];
} tally_frame_hello_server;

typedef struct tally_frame_presence {
  char network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
  char account[TALLY_IDENTITY_BYTES_MAX + 1]; /* TALLY_NAME_BYTES_MAX before 1.6 */
  char room[TALLY_ROOM_BYTES_MAX + 1];        /* TALLY_NAME_BYTES_MAX before 1.6 */
  uint64_t present; /* 0 or 1 */
  uint64_t local;   /* 0 or 1 */
} tally_frame_presence;

typedef struct tally_frame_ack {
  uint64_t seq;
} tally_frame_ack;

/* A COMMAND as sent over a socket (tallyd): the wire form of tally_command
 * (in process, tally_command_encode builds the same frame). network is ""
 * when a v1.0 sender leaves it out. */
typedef struct tally_frame_command {
  uint64_t req_id;
  uint64_t roles; /* enum tally_role bits */
  char origin[TALLY_ORIGIN_BYTES_MAX + 1];
  char account[TALLY_IDENTITY_BYTES_MAX + 1];
  char nick[TALLY_NICK_BYTES_MAX + 1];
  char channel[TALLY_ROOM_BYTES_MAX + 1];
  char msg_id[TALLY_MSG_ID_BYTES_MAX + 1];
  char text[TALLY_TEXT_BYTES_MAX + 1];
  char network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
} tally_frame_command;

/* ---- Encoding and decoding --------------------------------------------------- */
typedef struct tally_frame_decoder tally_frame_decoder;
TALLY_API int tally_frame_decoder_new(tally_frame_decoder **out);
TALLY_API void tally_frame_decoder_free(tally_frame_decoder *dec);

/* The frame_type (TALLY_FRAME_TYPE_*) of a v1 frame, read from its header
 * only, to pick the decoder. TALLY_EFRAME when there is no v1 header. */
TALLY_API int tally_frame_type(const uint8_t *buf, size_t len, uint64_t *type);

#define TALLY_FRAME_CODEC_(name)                                                   \
  TALLY_API int tally_frame_##name##_encode(const tally_frame_##name *f, uint8_t *buf, \
                                            size_t cap, size_t *len);              \
  TALLY_API int tally_frame_##name##_decode(tally_frame_decoder *dec,              \
                                            const uint8_t *buf, size_t len,        \
                                            tally_frame_##name *out);
TALLY_FRAME_CODEC_(effect)
TALLY_FRAME_CODEC_(hello)
TALLY_FRAME_CODEC_(hello_server)
TALLY_FRAME_CODEC_(presence)
TALLY_FRAME_CODEC_(ack)
TALLY_FRAME_CODEC_(command)
#undef TALLY_FRAME_CODEC_

/* An effect frame straight from a tally_effect (its strings by pointer,
 * NULL read as ""), numbered `seq`: for a relay that hands the engine's
 * effects on (tallyd), without filling a tally_frame_effect's arrays. Text
 * longer than TALLY_TEXT_BYTES_MAX is cut at a UTF-8 boundary, as the engine
 * does. TALLY_EINVAL for NULL arguments, TALLY_ETOOBIG when it does not fit
 * `cap`. Since 1.7. */
TALLY_API int tally_effect_frame_encode(const tally_effect *eff, uint64_t seq, uint8_t *buf, size_t cap,
                                        size_t *len);

/* ---- HELLO ------------------------------------------------------------------ */
/* The highest version in both ranges: *chosen, TALLY_OK. TALLY_EVERSION when
 * the ranges do not overlap or one is empty (min 0 or min > max), with a
 * sentence naming both ranges in err (when err_len > 0), for the log and the
 * verdict's text. err may be NULL when err_len is 0. */
TALLY_API int tally_hello_negotiate(uint64_t client_min, uint64_t client_max,
                                    uint64_t server_min, uint64_t server_max,
                                    uint64_t *chosen, char *err, size_t err_len);
/* Fills out with a fresh challenge: TALLY_HELLO_CHALLENGE_BYTES random bytes
 * in lowercase hex, NUL-terminated. TALLY_ECRYPTO if there is no randomness. */
TALLY_API int tally_hello_challenge(char out[TALLY_FRAME_HELLO_HEX_BYTES + 1]);
/* The host's answer to a challenge: lowercase hex HMAC-SHA256(secret,
 * challenge bytes). TALLY_EFRAME when challenge_hex is not 64 hex digits. */
TALLY_API int tally_hello_answer(const uint8_t *secret, size_t secret_len,
                                 const char *challenge_hex,
                                 char out[TALLY_FRAME_HELLO_HEX_BYTES + 1]);
/* TALLY_OK when answer_hex is the answer to challenge_hex under secret,
 * compared in constant time; TALLY_EBADSIG otherwise (also for malformed
 * hex). */
TALLY_API int tally_hello_check(const uint8_t *secret, size_t secret_len,
                                const char *challenge_hex, const char *answer_hex);

/* ---- Stream framing ------------------------------------------------------------ */
/* Writes the 4-byte big-endian length of a frame of frame_len bytes and then
 * the frame into out: *out_len = frame_len + 4. TALLY_ETOOBIG when frame_len
 * is 0 or above TALLY_FRAME_BYTES_MAX or out is too small. */
TALLY_API int tally_stream_wrap(const uint8_t *frame, size_t frame_len, uint8_t *out,
                                size_t cap, size_t *out_len);

/* A reader for one connection's byte stream. Plain memory: init it, feed it,
 * no free. Its fields are private. */
typedef struct tally_stream_reader {
  uint8_t prefix[TALLY_STREAM_PREFIX_BYTES];
  uint32_t prefix_have; /* bytes of the length read so far */
  uint32_t frame_len;   /* length of the frame being read, once known */
  uint32_t frame_have;  /* bytes of it read so far */
  int error;            /* 0, or the code that poisoned the stream */
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
} tally_stream_reader;

TALLY_API void tally_stream_reader_init(tally_stream_reader *r);
/* Consumes bytes of data[0..len) until one frame is whole or the bytes run
 * out; *used = bytes consumed. Returns 1 with *frame and *frame_len set when a
 * frame is whole (the pointer is into r, valid until the next call), 0 when
 * every byte was consumed and no frame is whole yet, or a negative code once
 * the stream is poisoned (TALLY_EFRAME for a zero length, TALLY_ETOOBIG for
 * one above TALLY_FRAME_BYTES_MAX), and the same code on every later call.
 * Loop until len bytes are used:
 *     while (len > 0) { rc = tally_stream_feed(r, p, len, &used, &f, &n);
 *                       p += used; len -= used; if (rc < 0) close; if (rc) handle(f, n); } */
TALLY_API int tally_stream_feed(tally_stream_reader *r, const uint8_t *data, size_t len,
                                size_t *used, const uint8_t **frame, size_t *frame_len);
/* Bytes of a frame begun but not whole: at end of stream, non-zero means a
 * frame was cut and is discarded. */
TALLY_API size_t tally_stream_pending(const tally_stream_reader *r);

#ifdef __cplusplus
}
#endif

#endif
