/* stream.c — the length-prefixed framing of frames over a socket: a 4-byte
 * big-endian length, then the frame. The reader is a small state machine fed
 * any chunking of the bytes (one at a time included); it holds one frame and
 * yields it only when whole. A length of 0 or above TALLY_FRAME_BYTES_MAX
 * poisons it: after such a length nothing in the stream can be trusted to
 * start a frame, so the connection must be closed. */
#include "tally/frames.h"

#include <string.h>

int tally_stream_wrap(const uint8_t *frame, size_t frame_len, uint8_t *out, size_t cap,
                      size_t *out_len) {
  if (!frame || !out || !out_len) return TALLY_EINVAL;
  if (frame_len == 0 || frame_len > TALLY_FRAME_BYTES_MAX) return TALLY_ETOOBIG;
  if (cap < TALLY_STREAM_PREFIX_BYTES || frame_len > cap - TALLY_STREAM_PREFIX_BYTES)
    return TALLY_ETOOBIG;
  uint32_t n = (uint32_t)frame_len;
  out[0] = (uint8_t)(n >> 24);
  out[1] = (uint8_t)(n >> 16);
  out[2] = (uint8_t)(n >> 8);
  out[3] = (uint8_t)n;
  memmove(out + TALLY_STREAM_PREFIX_BYTES, frame, frame_len);
  *out_len = frame_len + TALLY_STREAM_PREFIX_BYTES;
  return TALLY_OK;
}

void tally_stream_reader_init(tally_stream_reader *r) {
  if (!r) return;
  memset(r, 0, offsetof(tally_stream_reader, frame));
}

size_t tally_stream_pending(const tally_stream_reader *r) {
  if (!r) return 0;
  return r->prefix_have + r->frame_have;
}

int tally_stream_feed(tally_stream_reader *r, const uint8_t *data, size_t len, size_t *used,
                      const uint8_t **frame, size_t *frame_len) {
  if (!r || !used || !frame || !frame_len || (!data && len > 0)) return TALLY_EINVAL;
  *used = 0;
  *frame = NULL;
  *frame_len = 0;
  if (r->error) return r->error;
  size_t off = 0;
  while (r->prefix_have < TALLY_STREAM_PREFIX_BYTES) {
    if (off == len) {
      *used = off;
      return 0;
    }
    r->prefix[r->prefix_have++] = data[off++];
    if (r->prefix_have == TALLY_STREAM_PREFIX_BYTES) {
      uint32_t n = (uint32_t)r->prefix[0] << 24 | (uint32_t)r->prefix[1] << 16 |
                   (uint32_t)r->prefix[2] << 8 | r->prefix[3];
      if (n == 0 || n > TALLY_FRAME_BYTES_MAX) {
        r->error = n == 0 ? TALLY_EFRAME : TALLY_ETOOBIG;
        *used = off;
        return r->error;
      }
      r->frame_len = n;
      r->frame_have = 0;
    }
  }
  size_t want = r->frame_len - r->frame_have;
  size_t take = len - off < want ? len - off : want;
  if (take > 0) memcpy(r->frame + r->frame_have, data + off, take);
  r->frame_have += (uint32_t)take;
  off += take;
  *used = off;
  if (r->frame_have < r->frame_len) return 0;
  /* Whole: hand it out and start the next frame's prefix. */
  *frame = r->frame;
  *frame_len = r->frame_len;
  r->prefix_have = 0;
  r->frame_have = 0;
  r->frame_len = 0;
  return 1;
}
