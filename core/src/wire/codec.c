/* codec.c — generated from schemas/tally_frames_v1.h by X-macros, so the
 * codec, the public structs and docs/FRAMES.md cannot drift apart. */
#include "codec.h"

#include "abi.h"

#include "msgpack_scan.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
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
/* Works for both string pointers (NULL is "") and the char arrays of the
 * frame structs (bounded by strnlen: an array without a NUL is too big). */
static const char *codec_str(const char *s) { return s ? s : ""; }

#define ENC_STR(name, max)                                    \
  do {                                                        \
    const char *s_ = codec_str(src->name);                    \
    size_t n_ = clip ? codec_clip(s_, (max)) : strnlen(s_, (size_t)(max) + 1); \
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
/* What the effect encoder reads: tally_effect's fields plus the seq that the
 * public tally_effect does not carry. */
#define SRC_U64(name, max) uint64_t name;
#define SRC_I64(name, max) int64_t name;
#define SRC_STR(name, max) const char *name;
#define SRC_FIELD(kind, name, max, doc) SRC_##kind(name, max)
typedef struct effect_src {
  TALLY_FRAME_EFFECT_FIELDS(SRC_FIELD)
} effect_src;

DEFINE_ENCODER(encode_effect, effect_src, TALLY_FRAME_EFFECT_FIELDS,
               TALLY_FRAME_TYPE_EFFECT, 1)
DEFINE_ENCODER(encode_frame_effect, tally_frame_effect, TALLY_FRAME_EFFECT_FIELDS,
               TALLY_FRAME_TYPE_EFFECT, 0)
DEFINE_ENCODER(encode_frame_hello, tally_frame_hello, TALLY_FRAME_HELLO_FIELDS,
               TALLY_FRAME_TYPE_HELLO, 0)
DEFINE_ENCODER(encode_frame_hello_server, tally_frame_hello_server,
               TALLY_FRAME_HELLO_SERVER_FIELDS, TALLY_FRAME_TYPE_HELLO_SERVER, 0)
DEFINE_ENCODER(encode_frame_presence, tally_frame_presence, TALLY_FRAME_PRESENCE_FIELDS,
               TALLY_FRAME_TYPE_PRESENCE, 0)
DEFINE_ENCODER(encode_frame_ack, tally_frame_ack, TALLY_FRAME_ACK_FIELDS,
               TALLY_FRAME_TYPE_ACK, 0)
DEFINE_ENCODER(encode_frame_command, tally_frame_command, TALLY_FRAME_COMMAND_FIELDS,
               TALLY_FRAME_TYPE_COMMAND, 0)

/* The public structs of tally/frames.h are the schema's tables spelled out:
 * each must equal the struct the table generates, field by field (name,
 * offset, size, kind), or this file does not compile. */
#define KIND_OK_U64(e) _Generic((e), uint64_t: 1, default: 0)
#define KIND_OK_I64(e) _Generic((e), int64_t: 1, default: 0)
#define KIND_OK_STR(e) _Generic((e), char *: 1, default: 0)
#define SAME_FIELD(pub_t, gen_t, kind, name)                                       \
  _Static_assert(offsetof(pub_t, name) == offsetof(gen_t, name) &&                \
                     sizeof(((pub_t *)0)->name) == sizeof(((gen_t *)0)->name) &&  \
                     KIND_OK_##kind(((pub_t *)0)->name),                          \
                 #pub_t "." #name " differs from schemas/tally_frames_v1.h");
#define CHECK_FRAME_STRUCT(pub_t, FIELDS)                                          \
  typedef struct pub_t##_gen { FIELDS(TALLY__FIELD_) } pub_t##_gen;               \
  _Static_assert(sizeof(pub_t) == sizeof(pub_t##_gen),                            \
                 #pub_t " differs from schemas/tally_frames_v1.h");               \
  FIELDS(CHECK_FIELD_##pub_t)

#define CHECK_FIELD_tally_frame_effect(kind, name, max, doc) \
  SAME_FIELD(tally_frame_effect, tally_frame_effect_gen, kind, name)
#define CHECK_FIELD_tally_frame_hello(kind, name, max, doc) \
  SAME_FIELD(tally_frame_hello, tally_frame_hello_gen, kind, name)
#define CHECK_FIELD_tally_frame_hello_server(kind, name, max, doc) \
  SAME_FIELD(tally_frame_hello_server, tally_frame_hello_server_gen, kind, name)
#define CHECK_FIELD_tally_frame_presence(kind, name, max, doc) \
  SAME_FIELD(tally_frame_presence, tally_frame_presence_gen, kind, name)
#define CHECK_FIELD_tally_frame_ack(kind, name, max, doc) \
  SAME_FIELD(tally_frame_ack, tally_frame_ack_gen, kind, name)
CHECK_FRAME_STRUCT(tally_frame_effect, TALLY_FRAME_EFFECT_FIELDS)
CHECK_FRAME_STRUCT(tally_frame_hello, TALLY_FRAME_HELLO_FIELDS)
CHECK_FRAME_STRUCT(tally_frame_hello_server, TALLY_FRAME_HELLO_SERVER_FIELDS)
CHECK_FRAME_STRUCT(tally_frame_presence, TALLY_FRAME_PRESENCE_FIELDS)
CHECK_FRAME_STRUCT(tally_frame_ack, TALLY_FRAME_ACK_FIELDS)
#define CHECK_FIELD_tally_frame_command(kind, name, max, doc) \
  SAME_FIELD(tally_frame_command, tally_frame_command_gen, kind, name)
CHECK_FRAME_STRUCT(tally_frame_command, TALLY_FRAME_COMMAND_FIELDS)
_Static_assert(sizeof(tally__effect_frame) == sizeof(tally_frame_effect),
               "the internal and public effect frames differ");

/* The largest frame of each type, every string at its limit and every
 * integer 9 bytes: msgpack array16 header, schema version and frame type,
 * then each field (a string's header is at most 3 bytes, str16, since no
 * limit reaches 65536). TALLY_FRAME_BYTES_MAX must hold every one, so a
 * valid frame is never refused for its size. */
#define MAX_BYTES_U64(max) 9
#define MAX_BYTES_I64(max) 9
#define MAX_BYTES_STR(max) (3 + (max))
#define MAX_BYTES_FIELD(kind, name, max, doc) +MAX_BYTES_##kind(max)
#define FRAME_BYTES_WORST(FIELDS) (3 + 9 + 9 FIELDS(MAX_BYTES_FIELD))
_Static_assert(FRAME_BYTES_WORST(TALLY_FRAME_COMMAND_FIELDS) <= TALLY_FRAME_BYTES_MAX, "COMMAND fits a frame");
_Static_assert(FRAME_BYTES_WORST(TALLY_FRAME_EFFECT_FIELDS) <= TALLY_FRAME_BYTES_MAX, "EFFECT fits a frame");
_Static_assert(FRAME_BYTES_WORST(TALLY_FRAME_HELLO_FIELDS) <= TALLY_FRAME_BYTES_MAX, "HELLO fits a frame");
_Static_assert(FRAME_BYTES_WORST(TALLY_FRAME_HELLO_SERVER_FIELDS) <= TALLY_FRAME_BYTES_MAX, "HELLO_SERVER fits");
_Static_assert(FRAME_BYTES_WORST(TALLY_FRAME_PRESENCE_FIELDS) <= TALLY_FRAME_BYTES_MAX, "PRESENCE fits a frame");
_Static_assert(TALLY_ORIGIN_BYTES_MAX < 65536 && TALLY_IDENTITY_BYTES_MAX < 65536 && TALLY_ROOM_BYTES_MAX < 65536,
               "str16 headers");

/* A field appended to tally_command gets its default for older hosts here. */
static const tally_command command_defaults = {.size = sizeof(tally_command), .version = TALLY_COMMAND_VERSION};

int tally_command_encode(const tally_command *host, uint8_t *buf, size_t buf_len,
                         size_t *frame_len) {
  if (!host || !buf || !frame_len) return TALLY_EINVAL;
  /* Read only the host's `size` bytes: the fields past it take defaults. */
  tally_command full;
  if (tally__abi_import(&full, &command_defaults, sizeof full, host, TALLY_COMMAND_SIZE_V1)) return TALLY_EINVAL;
  const tally_command *cmd = &full;
  if (cmd->text && strlen(cmd->text) > TALLY_TEXT_BYTES_MAX) return TALLY_ETOOBIG;
  return encode_command(cmd, buf, buf_len, frame_len);
}

int tally__effect_encode_seq(const tally_effect *eff, uint64_t seq, uint8_t *buf, size_t cap,
                             size_t *len) {
  assert(eff && buf && len);
  effect_src src = {.kind = eff->kind, .code = eff->code, .req_id = eff->req_id,
                    .receipt_id = eff->receipt_id, .origin = eff->origin,
                    .channel = eff->channel, .text = eff->text, .seq = seq, .hint = eff->hint,
                    .network = eff->network, .conn = eff->conn,
                    .msg = eff->size >= sizeof *eff && eff->version >= 3 ? eff->msg : 0,
                    .args = eff->size >= sizeof *eff && eff->version >= 3 ? eff->args : ""};
  return encode_effect(&src, buf, cap, len);
}

int tally__effect_encode(const tally_effect *eff, uint8_t *buf, size_t cap, size_t *len) {
  return tally__effect_encode_seq(eff, 0, buf, cap, len);
}

int tally_effect_frame_encode(const tally_effect *eff, uint64_t seq, uint8_t *buf, size_t cap, size_t *len) {
  if (!eff || !buf || !len) return TALLY_EINVAL;
  return tally__effect_encode_seq(eff, seq, buf, cap, len);
}

#define PUBLIC_ENCODER(name)                                                      \
  int tally_frame_##name##_encode(const tally_frame_##name *f, uint8_t *buf,      \
                                  size_t cap, size_t *len) {                      \
    if (!f || !buf || !len) return TALLY_EINVAL;                                  \
    return encode_frame_##name(f, buf, cap, len);                                 \
  }
PUBLIC_ENCODER(effect)
PUBLIC_ENCODER(hello)
PUBLIC_ENCODER(hello_server)
PUBLIC_ENCODER(presence)
PUBLIC_ENCODER(ack)
PUBLIC_ENCODER(command)

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
 * fields after the two header elements; *present = how many it has. */
static int dec_frame(tally__decoder *dec, const uint8_t *buf, size_t len,
                     uint64_t frame_type, uint32_t fields, msgpack_object **items,
                     size_t *present) {
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
  *present = root.via.array.size - 2;
  return TALLY_OK;
}

/* A field appended after a frame's required ones (TALLY_FRAME_*_REQUIRED) may
 * be absent from an older sender's frame: it decodes as 0 or "". */
#define DEC_U64(name, max) \
  if (i >= present) out->name = 0; \
  else if (dec_u64(&items[i], &out->name)) return TALLY_EFRAME; \
  i++;
#define DEC_I64(name, max) \
  if (i >= present) out->name = 0; \
  else if (dec_i64(&items[i], &out->name)) return TALLY_EFRAME; \
  i++;
#define DEC_STR(name, max) \
  if (i >= present) out->name[0] = 0; \
  else if (dec_str(&items[i], out->name, (max))) return TALLY_EFRAME; \
  i++;
#define DEC_FIELD(kind, name, max, doc) DEC_##kind(name, max)

int tally__command_frame_decode(tally__decoder *dec, const uint8_t *buf, size_t len,
                                tally__command_frame *out) {
  msgpack_object *items;
  size_t present;
  int rc = dec_frame(dec, buf, len, TALLY_FRAME_TYPE_COMMAND, TALLY_FRAME_COMMAND_REQUIRED,
                     &items, &present);
  if (rc) return rc;
  size_t i = 0;
  TALLY_FRAME_COMMAND_FIELDS(DEC_FIELD)
  return TALLY_OK;
}

int tally__effect_frame_decode(tally__decoder *dec, const uint8_t *buf, size_t len,
                               tally__effect_frame *out) {
  msgpack_object *items;
  size_t present;
  int rc = dec_frame(dec, buf, len, TALLY_FRAME_TYPE_EFFECT, TALLY_FRAME_EFFECT_REQUIRED,
                     &items, &present);
  if (rc) return rc;
  size_t i = 0;
  TALLY_FRAME_EFFECT_FIELDS(DEC_FIELD)
  return TALLY_OK;
}

/* ---- the public frames ------------------------------------------------------ */
struct tally_frame_decoder {
  tally__decoder dec;
};

int tally_frame_decoder_new(tally_frame_decoder **out) {
  if (!out) return TALLY_EINVAL;
  *out = NULL;
  tally_frame_decoder *d = calloc(1, sizeof *d);
  if (!d) return TALLY_ENOMEM;
  if (tally__decoder_init(&d->dec) != TALLY_OK) {
    free(d);
    return TALLY_ENOMEM;
  }
  *out = d;
  return TALLY_OK;
}

void tally_frame_decoder_free(tally_frame_decoder *d) {
  if (!d) return;
  tally__decoder_free(&d->dec);
  free(d);
}

/* Reads one msgpack unsigned integer at buf[*off]; -1 if it is not one. */
static int peek_uint(const uint8_t *buf, size_t len, size_t *off, uint64_t *out) {
  if (*off >= len) return -1;
  uint8_t b = buf[(*off)++];
  size_t n;
  if (b <= 0x7f) {
    *out = b;
    return 0;
  }
  if (b == 0xcc) n = 1;
  else if (b == 0xcd) n = 2;
  else if (b == 0xce) n = 4;
  else if (b == 0xcf) n = 8;
  else return -1;
  if (len - *off < n) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | buf[(*off)++];
  *out = v;
  return 0;
}

int tally_frame_type(const uint8_t *buf, size_t len, uint64_t *type) {
  if (!buf || !type || len == 0 || len > TALLY_FRAME_BYTES_MAX) return TALLY_EFRAME;
  size_t off = 1;
  uint64_t items;
  uint8_t b = buf[0];
  if (b >= 0x90 && b <= 0x9f) items = b & 0x0f;
  else if (b == 0xdc || b == 0xdd) { /* array 16 / 32: read its count */
    size_t n = b == 0xdc ? 2 : 4;
    if (len - off < n) return TALLY_EFRAME;
    items = 0;
    for (size_t i = 0; i < n; i++) items = (items << 8) | buf[off++];
  } else return TALLY_EFRAME;
  uint64_t version, t;
  if (items < 2 || peek_uint(buf, len, &off, &version) || peek_uint(buf, len, &off, &t))
    return TALLY_EFRAME;
  if (version != TALLY_FRAME_SCHEMA_VERSION) return TALLY_EFRAME;
  *type = t;
  return TALLY_OK;
}

/* ---- peeking at a few fields without decoding --------------------------- */
static int peek_int(const uint8_t *buf, size_t len, size_t *off, int64_t *out) {
  if (*off >= len) return -1;
  uint8_t b = buf[*off];
  if (b >= 0xe0) { /* negative fixint */
    (*off)++;
    *out = (int8_t)b;
    return 0;
  }
  size_t n = b == 0xd0 ? 1 : b == 0xd1 ? 2 : b == 0xd2 ? 4 : b == 0xd3 ? 8 : 0;
  if (n == 0) {
    uint64_t u;
    if (peek_uint(buf, len, off, &u) || u > INT64_MAX) return -1;
    *out = (int64_t)u;
    return 0;
  }
  (*off)++;
  if (len - *off < n) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = (v << 8) | buf[(*off)++];
  /* Sign-extend from n bytes. */
  if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n);
  *out = (int64_t)v;
  return 0;
}

static int skip_str(const uint8_t *buf, size_t len, size_t *off) {
  if (*off >= len) return -1;
  uint8_t b = buf[(*off)++];
  size_t n, hdr = 0;
  if (b >= 0xa0 && b <= 0xbf) n = b & 0x1f;
  else if (b == 0xd9) hdr = 1;
  else if (b == 0xda) hdr = 2;
  else if (b == 0xdb) hdr = 4;
  else return -1;
  if (hdr) {
    if (len - *off < hdr) return -1;
    n = 0;
    for (size_t i = 0; i < hdr; i++) n = (n << 8) | buf[(*off)++];
  }
  if (len - *off < n) return -1;
  *off += n;
  return 0;
}

/* After the array header, schema version and frame type of a frame of
 * `type`: the offset of its first field; -1 when it is not one. */
static int peek_fields(const uint8_t *buf, size_t len, uint64_t type, size_t *off) {
  uint64_t t;
  if (tally_frame_type(buf, len, &t) != TALLY_OK || t != type) return -1;
  size_t o = buf[0] == 0xdc ? 3 : buf[0] == 0xdd ? 5 : 1;
  uint64_t version;
  if (peek_uint(buf, len, &o, &version) || peek_uint(buf, len, &o, &t)) return -1;
  *off = o;
  return 0;
}

int tally__effect_peek(const uint8_t *buf, size_t len, tally__effect_head *out) {
  size_t off;
  int64_t code;
  if (peek_fields(buf, len, TALLY_FRAME_TYPE_EFFECT, &off) || peek_uint(buf, len, &off, &out->kind) ||
      peek_int(buf, len, &off, &code) || peek_uint(buf, len, &off, &out->req_id) ||
      peek_uint(buf, len, &off, &out->receipt_id) || skip_str(buf, len, &off) || skip_str(buf, len, &off) ||
      skip_str(buf, len, &off) || peek_uint(buf, len, &off, &out->seq))
    return TALLY_EFRAME;
  out->code = code;
  return TALLY_OK;
}

int tally__command_peek_req_id(const uint8_t *buf, size_t len, uint64_t *req_id) {
  size_t off;
  if (peek_fields(buf, len, TALLY_FRAME_TYPE_COMMAND, &off) || peek_uint(buf, len, &off, req_id))
    return TALLY_EFRAME;
  return TALLY_OK;
}

#define DEFINE_DECODER(name, FIELDS, frame_type, required)                          \
  static int decode_##name(tally__decoder *dec, const uint8_t *buf, size_t len,     \
                           tally_frame_##name *out) {                               \
    msgpack_object *items;                                                          \
    size_t present;                                                                 \
    int rc = dec_frame(dec, buf, len, (frame_type), (required), &items, &present);  \
    if (rc) return rc;                                                              \
    size_t i = 0;                                                                   \
    FIELDS(DEC_FIELD)                                                               \
    return TALLY_OK;                                                                \
  }
#define ALL_(FIELDS) (0 FIELDS(COUNT_FIELD))
DEFINE_DECODER(effect, TALLY_FRAME_EFFECT_FIELDS, TALLY_FRAME_TYPE_EFFECT,
               TALLY_FRAME_EFFECT_REQUIRED)
DEFINE_DECODER(hello, TALLY_FRAME_HELLO_FIELDS, TALLY_FRAME_TYPE_HELLO,
               ALL_(TALLY_FRAME_HELLO_FIELDS))
DEFINE_DECODER(hello_server, TALLY_FRAME_HELLO_SERVER_FIELDS, TALLY_FRAME_TYPE_HELLO_SERVER,
               ALL_(TALLY_FRAME_HELLO_SERVER_FIELDS))
DEFINE_DECODER(presence, TALLY_FRAME_PRESENCE_FIELDS, TALLY_FRAME_TYPE_PRESENCE,
               ALL_(TALLY_FRAME_PRESENCE_FIELDS))
DEFINE_DECODER(ack, TALLY_FRAME_ACK_FIELDS, TALLY_FRAME_TYPE_ACK, ALL_(TALLY_FRAME_ACK_FIELDS))
DEFINE_DECODER(command, TALLY_FRAME_COMMAND_FIELDS, TALLY_FRAME_TYPE_COMMAND,
               TALLY_FRAME_COMMAND_REQUIRED)

/* Checks beyond field types, per frame: flags are 0 or 1. */
/* An effect's arguments must parse against its text, and a text-only
 * effect (msg 0) has none: an adapter may then trust every span. */
static int check_effect(const tally_frame_effect *f) {
  if (f->msg == 0 && f->args[0]) return TALLY_EFRAME;
  tally_effect_arg args[TALLY_EFFECT_ARGS_MAX];
  size_t n;
  return tally_effect_args_parse(f->text, f->args, args, TALLY_EFFECT_ARGS_MAX, &n) == TALLY_OK ? TALLY_OK
                                                                                                 : TALLY_EFRAME;
}
static int check_hello(const tally_frame_hello *f) { (void)f; return TALLY_OK; }
static int check_hello_server(const tally_frame_hello_server *f) { (void)f; return TALLY_OK; }
static int check_ack(const tally_frame_ack *f) { (void)f; return TALLY_OK; }
/* The engine checks a command's text and names itself (it answers a
 * user-facing refusal); only the frame's shape is the decoder's. */
static int check_command(const tally_frame_command *f) { (void)f; return TALLY_OK; }
static int check_presence(const tally_frame_presence *f) {
  return f->present <= 1 && f->local <= 1 ? TALLY_OK : TALLY_EFRAME;
}

#define PUBLIC_DECODER(name)                                                        \
  int tally_frame_##name##_decode(tally_frame_decoder *d, const uint8_t *buf,       \
                                  size_t len, tally_frame_##name *out) {            \
    if (!d || !out) return TALLY_EINVAL;                                            \
    int rc = decode_##name(&d->dec, buf, len, out);                                 \
    return rc ? rc : check_##name(out);                                             \
  }
PUBLIC_DECODER(effect)
PUBLIC_DECODER(hello)
PUBLIC_DECODER(hello_server)
PUBLIC_DECODER(presence)
PUBLIC_DECODER(ack)
PUBLIC_DECODER(command)
