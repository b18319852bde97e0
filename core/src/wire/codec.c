/* codec.c — generated from schemas/tally_frames_v1.h by X-macros, so the
 * codec, the public structs and docs/FRAMES.md cannot drift apart. */
#include "codec.h"

#include "msgpack_scan.h"

#include <assert.h>
#include <string.h>

enum { CODEC_ZONE_CHUNK_BYTES = 4096 };

typedef struct codec_buf {
  uint8_t *data;
  size_t len, cap;
  int overflow;
} codec_buf;

static int codec_write(void *ud, const char *src, size_t n) {
  codec_buf *b = ud;
  if (b->overflow || n > b->cap - b->len) {
    b->overflow = 1;
    return -1;
  }
  memcpy(b->data + b->len, src, n);
  b->len += n;
  return 0;
}

/* Longest prefix of s of at most max bytes that ends on a UTF-8 boundary. */
static size_t codec_clip(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n <= max) return n;
  while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) max--;
  return max;
}

#define ENC_U64(name, max) msgpack_pack_uint64(&pk, (uint64_t)src->name);
#define ENC_I64(name, max) msgpack_pack_int64(&pk, (int64_t)src->name);
#define ENC_STR(name, max)                                    \
  do {                                                        \
    const char *s_ = src->name ? src->name : "";              \
    size_t n_ = clip ? codec_clip(s_, (max)) : strlen(s_);    \
    if (n_ > (max)) return TALLY_ETOOBIG;                     \
    msgpack_pack_str(&pk, n_);                                \
    msgpack_pack_str_body(&pk, s_, n_);                       \
  } while (0);
#define ENC_FIELD(kind, name, max, doc) ENC_##kind(name, max)
#define COUNT_FIELD(kind, name, max, doc) +1

#define DEFINE_ENCODER(fn, type_t, FIELDS, frame_type, clip_strings)             \
  static int fn(const type_t *src, uint8_t *buf, size_t cap, size_t *len) {      \
    const int clip = (clip_strings);                                             \
    (void)clip;                                                                  \
    codec_buf b = {buf, 0, cap, 0};                                              \
    msgpack_packer pk;                                                           \
    msgpack_packer_init(&pk, &b, codec_write);                                   \
    msgpack_pack_array(&pk, 2 FIELDS(COUNT_FIELD));                              \
    msgpack_pack_uint64(&pk, TALLY_FRAME_SCHEMA_VERSION);                        \
    msgpack_pack_uint64(&pk, (frame_type));                                      \
    FIELDS(ENC_FIELD)                                                            \
    if (b.overflow) return TALLY_ETOOBIG;                                        \
    *len = b.len;                                                                \
    return TALLY_OK;                                                             \
  }

DEFINE_ENCODER(encode_command, tally_command, TALLY_FRAME_COMMAND_FIELDS,
               TALLY_FRAME_TYPE_COMMAND, 0)
DEFINE_ENCODER(encode_effect, tally_effect, TALLY_FRAME_EFFECT_FIELDS,
               TALLY_FRAME_TYPE_EFFECT, 1)

int tally_command_encode(const tally_command *cmd, uint8_t *buf, size_t buf_len,
                         size_t *frame_len) {
  if (!cmd || !buf || !frame_len || cmd->size < sizeof(tally_command)) return TALLY_EINVAL;
  if (cmd->text && strlen(cmd->text) > TALLY_TEXT_BYTES_MAX) return TALLY_ETOOBIG;
  return encode_command(cmd, buf, buf_len, frame_len);
}

int tally__effect_encode(const tally_effect *eff, uint8_t *buf, size_t cap, size_t *len) {
  assert(eff && buf && len);
  return encode_effect(eff, buf, cap, len);
}

/* ---- decoding ------------------------------------------------------------ */
int tally__decoder_init(tally__decoder *dec) {
  return msgpack_zone_init(&dec->zone, CODEC_ZONE_CHUNK_BYTES) ? TALLY_OK : TALLY_ENOMEM;
}

void tally__decoder_free(tally__decoder *dec) { msgpack_zone_destroy(&dec->zone); }

static int dec_u64(const msgpack_object *o, uint64_t *out) {
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return TALLY_EFRAME;
  *out = o->via.u64;
  return TALLY_OK;
}

static int dec_i64(const msgpack_object *o, int64_t *out) {
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) *out = o->via.i64;
  else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
    *out = (int64_t)o->via.u64;
  else return TALLY_EFRAME;
  return TALLY_OK;
}

static int dec_str(const msgpack_object *o, char *out, size_t max) {
  if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max) return TALLY_EFRAME;
  if (o->via.str.size == 0) { /* msgpack-c may give NULL for "" */
    out[0] = 0;
    return TALLY_OK;
  }
  if (memchr(o->via.str.ptr, 0, o->via.str.size)) return TALLY_EFRAME;
  memcpy(out, o->via.str.ptr, o->via.str.size);
  out[o->via.str.size] = 0;
  return TALLY_OK;
}

/* Unpacks exactly one array frame of the given type with at least `fields`
 * fields after the two header elements. */
static int dec_frame(tally__decoder *dec, const uint8_t *buf, size_t len,
                     uint64_t frame_type, uint32_t fields, msgpack_object **items) {
  if (!buf || len == 0 || len > TALLY_FRAME_BYTES_MAX) return TALLY_EFRAME;
  if (tally__msgpack_scan(buf, len) != TALLY_OK) return TALLY_EFRAME;
  msgpack_zone_clear(&dec->zone);
  msgpack_object root;
  size_t off = 0;
  msgpack_unpack_return rc =
      msgpack_unpack((const char *)buf, len, &off, &dec->zone, &root);
  if (rc != MSGPACK_UNPACK_SUCCESS || off != len) return TALLY_EFRAME;
  if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size < 2 + fields)
    return TALLY_EFRAME;
  msgpack_object *a = root.via.array.ptr;
  if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      a[0].via.u64 != TALLY_FRAME_SCHEMA_VERSION)
    return TALLY_EFRAME;
  if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 != frame_type)
    return TALLY_EFRAME;
  *items = a + 2;
  return TALLY_OK;
}

#define DEC_U64(name, max) if (dec_u64(&items[i++], &out->name)) return TALLY_EFRAME;
#define DEC_I64(name, max) if (dec_i64(&items[i++], &out->name)) return TALLY_EFRAME;
#define DEC_STR(name, max) if (dec_str(&items[i++], out->name, (max))) return TALLY_EFRAME;
#define DEC_FIELD(kind, name, max, doc) DEC_##kind(name, max)

int tally__command_frame_decode(tally__decoder *dec, const uint8_t *buf, size_t len,
                                tally__command_frame *out) {
  msgpack_object *items;
  int rc = dec_frame(dec, buf, len, TALLY_FRAME_TYPE_COMMAND,
                     0 TALLY_FRAME_COMMAND_FIELDS(COUNT_FIELD), &items);
  if (rc) return rc;
  size_t i = 0;
  TALLY_FRAME_COMMAND_FIELDS(DEC_FIELD)
  return TALLY_OK;
}

int tally__effect_frame_decode(tally__decoder *dec, const uint8_t *buf, size_t len,
                               tally__effect_frame *out) {
  msgpack_object *items;
  int rc = dec_frame(dec, buf, len, TALLY_FRAME_TYPE_EFFECT,
                     0 TALLY_FRAME_EFFECT_FIELDS(COUNT_FIELD), &items);
  if (rc) return rc;
  size_t i = 0;
  TALLY_FRAME_EFFECT_FIELDS(DEC_FIELD)
  return TALLY_OK;
}
