/* codec.h — msgpack encoder and decoder for the frames in schemas/.
 *
 * Contract: encoders write into a caller's buffer and never allocate;
 * decoders take untrusted bytes (they are fuzzed), copy strings into fixed
 * arrays of the decoded struct, and return TALLY_EFRAME for anything that is
 * not exactly a v1 frame of the expected type (wrong types, oversize strings,
 * truncated input, trailing bytes, nesting). The decoder keeps one
 * msgpack_zone per codec so that, once warm, decoding does not allocate. */
#ifndef TALLY_CODEC_H
#define TALLY_CODEC_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "tally.h"
#include "tally/frames.h"
#include "tally_frames_v1.h"

#define TALLY__FIELD_U64(name, max) uint64_t name;
#define TALLY__FIELD_I64(name, max) int64_t name;
#define TALLY__FIELD_STR(name, max) char name[(max) + 1];
#define TALLY__FIELD_(kind, name, max, doc) TALLY__FIELD_##kind(name, max)

typedef struct tally__command_frame {
  TALLY_FRAME_COMMAND_FIELDS(TALLY__FIELD_)
} tally__command_frame;

typedef struct tally__effect_frame {
  TALLY_FRAME_EFFECT_FIELDS(TALLY__FIELD_)
} tally__effect_frame;

typedef struct tally__decoder {
  msgpack_zone zone;
} tally__decoder;

int tally__decoder_init(tally__decoder *dec);
void tally__decoder_free(tally__decoder *dec);

int tally__command_frame_decode(tally__decoder *dec, const uint8_t *buf, size_t len,
                                tally__command_frame *out);
int tally__effect_frame_decode(tally__decoder *dec, const uint8_t *buf, size_t len,
                               tally__effect_frame *out);
/* Encodes an effect; text longer than TALLY_TEXT_BYTES_MAX is cut at a UTF-8
 * boundary rather than refused, since the engine wrote it. Its seq is 0 (in
 * process); tally__effect_encode_seq stamps a connection's sequence number. */
int tally__effect_encode(const tally_effect *eff, uint8_t *buf, size_t cap, size_t *len);
int tally__effect_encode_seq(const tally_effect *eff, uint64_t seq, uint8_t *buf, size_t cap,
                             size_t *len);

/* The head of an effect frame (kind, code, req_id, receipt_id, seq) read in
 * place, without decoding its strings: for a relay that only routes and
 * numbers effects (libtally's remote mode). TALLY_EFRAME when the bytes are
 * not an effect frame's head; the rest is not checked (the host's decoder
 * checks the whole frame). */
typedef struct tally__effect_head {
  uint64_t kind, req_id, receipt_id, seq;
  int64_t code;
} tally__effect_head;
int tally__effect_peek(const uint8_t *buf, size_t len, tally__effect_head *out);
/* A command frame's req_id, read in place. */
int tally__command_peek_req_id(const uint8_t *buf, size_t len, uint64_t *req_id);

#endif
