/* fuzz_stream.c — libFuzzer target for what tallyd will run on every byte a
 * socket gives it: the length-prefixed stream reader (core/src/wire/
 * stream.c) and the frame decoders of tally/frames.h (core/src/wire/codec.c).
 *
 * Input: byte 0 seeds the chunking (how the bytes arrive: one at a time up to
 * large reads), the rest is the stream. Properties:
 *   - the reader yields exactly the frames a reference parse of the whole
 *     input finds, in order, byte for byte, whatever the chunking; a frame
 *     cut by the end of input is never yielded, and tally_stream_pending()
 *     counts its bytes;
 *   - it is poisoned (TALLY_EFRAME for a zero length, TALLY_ETOOBIG above
 *     TALLY_FRAME_BYTES_MAX) exactly where the reference finds a bad length,
 *     and stays poisoned;
 *   - every yielded frame, given to every decoder, gives TALLY_OK or
 *     TALLY_EFRAME; tally_frame_type agrees with the decoder that accepts
 *     it; an accepted frame re-encodes, and that decodes to the same fields.
 *
 * Build and run: tests/fuzz/run.sh SECONDS stream (see docs/FUZZING.md). */
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "fuzz_check.h"
#include "tally/frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tally_frame_decoder *fuzz_dec;

#define EQ_U64(name) FUZZ_CHECK(a->name == b->name);
#define EQ_I64(name) FUZZ_CHECK(a->name == b->name);
#define EQ_STR(name) FUZZ_CHECK(strcmp(a->name, b->name) == 0);
#define EQ_FIELD(kind, name, max, doc) EQ_##kind(name)

/* Decodes with one frame's decoder; on TALLY_OK checks the type peek, then
 * re-encodes and decodes again to the same fields. Returns 1 if accepted. */
#define DEFINE_TRY(name, FIELDS, type_id)                                            \
  static int try_##name(const uint8_t *f, size_t n) {                                \
    static tally_frame_##name x, y;                                                  \
    memset(&x, 0x5a, sizeof x);                                                      \
    int rc = tally_frame_##name##_decode(fuzz_dec, f, n, &x);                        \
    FUZZ_CHECK(rc == TALLY_OK || rc == TALLY_EFRAME);                                \
    if (rc != TALLY_OK) return 0;                                                    \
    uint64_t t = 0;                                                                  \
    FUZZ_CHECK(tally_frame_type(f, n, &t) == TALLY_OK && t == (type_id));            \
    static uint8_t buf[TALLY_FRAME_BYTES_MAX];                                       \
    size_t len = 0;                                                                  \
    FUZZ_CHECK(tally_frame_##name##_encode(&x, buf, sizeof buf, &len) == TALLY_OK);  \
    memset(&y, 0xa5, sizeof y);                                                      \
    FUZZ_CHECK(tally_frame_##name##_decode(fuzz_dec, buf, len, &y) == TALLY_OK);     \
    const tally_frame_##name *a = &x, *b = &y;                                       \
    FIELDS(EQ_FIELD)                                                                 \
    return 1;                                                                        \
  }
DEFINE_TRY(effect, TALLY_FRAME_EFFECT_FIELDS, TALLY_FRAME_TYPE_EFFECT)
DEFINE_TRY(hello, TALLY_FRAME_HELLO_FIELDS, TALLY_FRAME_TYPE_HELLO)
DEFINE_TRY(hello_server, TALLY_FRAME_HELLO_SERVER_FIELDS, TALLY_FRAME_TYPE_HELLO_SERVER)
DEFINE_TRY(presence, TALLY_FRAME_PRESENCE_FIELDS, TALLY_FRAME_TYPE_PRESENCE)
DEFINE_TRY(ack, TALLY_FRAME_ACK_FIELDS, TALLY_FRAME_TYPE_ACK)

static void check_frame(const uint8_t *f, size_t n) {
  int accepted = try_effect(f, n) + try_hello(f, n) + try_hello_server(f, n) +
                 try_presence(f, n) + try_ack(f, n);
  FUZZ_CHECK(accepted <= 1); /* the frame type picks one decoder */
}

/* The reference: where the next whole frame of s[off..len) is, or why not. */
static int ref_next(const uint8_t *s, size_t len, size_t off, size_t *body, size_t *n) {
  if (len - off < TALLY_STREAM_PREFIX_BYTES) return 0;
  uint32_t v = (uint32_t)s[off] << 24 | (uint32_t)s[off + 1] << 16 |
               (uint32_t)s[off + 2] << 8 | s[off + 3];
  if (v == 0) return TALLY_EFRAME;
  if (v > TALLY_FRAME_BYTES_MAX) return TALLY_ETOOBIG;
  if (len - off - TALLY_STREAM_PREFIX_BYTES < v) return 0;
  *body = off + TALLY_STREAM_PREFIX_BYTES;
  *n = v;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fuzz_dec) FUZZ_CHECK(tally_frame_decoder_new(&fuzz_dec) == TALLY_OK);
  if (size == 0) return 0;
  uint32_t rng = data[0] * 2654435761u + 1;
  const uint8_t *s = data + 1;
  size_t len = size - 1;

  static tally_stream_reader r;
  tally_stream_reader_init(&r);
  size_t off = 0, ref_off = 0; /* bytes fed; start of the reference's next frame */
  int poisoned = 0;
  while (off < len && !poisoned) {
    rng = rng * 1103515245u + 12345u;
    size_t chunk = (data[0] & 1) ? 1 : 1 + (rng >> 16) % 700;
    if (chunk > len - off) chunk = len - off;
    const uint8_t *p = s + off;
    off += chunk;
    while (chunk > 0) {
      size_t used = 0, n = 0;
      const uint8_t *f = NULL;
      int rc = tally_stream_feed(&r, p, chunk, &used, &f, &n);
      FUZZ_CHECK(used <= chunk);
      size_t body = 0, ref_n = 0;
      int want = ref_next(s, (size_t)(p - s) + used, ref_off, &body, &ref_n);
      p += used;
      chunk -= used;
      if (rc < 0) {
        FUZZ_CHECK(rc == want); /* poisoned exactly at a bad length */
        FUZZ_CHECK(f == NULL);
        size_t u2 = 1;
        FUZZ_CHECK(tally_stream_feed(&r, s, len, &u2, &f, &n) == rc && u2 == 0);
        poisoned = 1;
        break;
      }
      if (rc == 1) {
        FUZZ_CHECK(want == 1 && n == ref_n && memcmp(f, s + body, n) == 0);
        ref_off = body + n;
        check_frame(f, n);
      } else {
        FUZZ_CHECK(rc == 0 && chunk == 0 && want == 0);
      }
    }
  }
  if (!poisoned) /* what is left is a cut frame: held, never yielded */
    FUZZ_CHECK(tally_stream_pending(&r) == len - ref_off);
  return 0;
}
