/* receipt.c — what a buyer keeps: a leaf hash per transfer and a token that
 * carries the transfer, its Merkle audit path and the batch signature.
 *
 * The leaf is computed per purchase on the engine thread, so it is built in
 * a stack buffer of bounded size and hashed once. Tokens arrive from anyone
 * (`tally verify` pastes them from chat), so decoding is defensive in
 * layers: strict base64url, a bounds scan of the msgpack bytes before
 * msgpack-c sees them (msgpack-c reserves count * sizeof(msgpack_object)
 * for an array header before reading its elements, so a 5-byte header could
 * otherwise ask for gigabytes), typed extraction with limits, and finally a
 * re-encode that must reproduce the token byte for byte, which rejects every
 * non-canonical spelling (integer widths, padding bits, trailing bytes). */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "receipt.h"

#include "msgpack_scan.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include <msgpack.h>
#include <openssl/crypto.h>

#define RECEIPT_LEAF_TAG "tally-receipt-v1"
#define RECEIPT_LEAF_TAG_V2 "tally-receipt-v2"
#define RECEIPT_TOKEN_PREFIX "tr1."
#define RECEIPT_TOKEN_PREFIX_V2 "tr2."
enum {
  RECEIPT_LEAF_PREFIX = 0x00,
  RECEIPT_TAG_BYTES = sizeof RECEIPT_LEAF_TAG - 1,
  RECEIPT_PREFIX_BYTES = sizeof RECEIPT_TOKEN_PREFIX - 1,
  /* 0x00, tag, 7 integers (48 bytes), 3 length-prefixed strings, serial. */
  /* ... and in version 2 network, identity, shard, reward. */
  RECEIPT_LEAF_INPUT_MAX =
      1 + RECEIPT_TAG_BYTES + 48 + 3 * (2 + TALLY_RECEIPT_TEXT_BYTES_MAX) + 4 +
      (2 + TALLY_RECEIPT_NETWORK_BYTES_MAX) + (2 + TALLY_RECEIPT_TEXT_BYTES_MAX) + 4 + 8,
  RECEIPT_ZONE_CHUNK_BYTES = 4096,
  RECEIPT_B64_INVALID = 0xff,
};
_Static_assert(TALLY_RECEIPT_TEXT_BYTES_MAX <= UINT16_MAX, "u16 lengths");
_Static_assert(RECEIPT_PREFIX_BYTES == 4, "token size formula assumes 4");
_Static_assert(sizeof RECEIPT_LEAF_TAG == sizeof RECEIPT_LEAF_TAG_V2, "tags of one length");
_Static_assert(sizeof RECEIPT_TOKEN_PREFIX == sizeof RECEIPT_TOKEN_PREFIX_V2, "prefixes of one length");

static bool receipt_v2(uint32_t version) { return version >= 2; }

static const char receipt_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- leaf ---------------------------------------------------------------- */

static uint8_t *receipt_put_be(uint8_t *p, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
  return p + bytes;
}

static uint8_t *receipt_put_str(uint8_t *p, const char *s) {
  if (!s) s = "";
  size_t n = strlen(s);
  assert(n <= TALLY_RECEIPT_TEXT_BYTES_MAX);
  p = receipt_put_be(p, n, 2);
  memcpy(p, s, n);
  return p + n;
}

void tally__receipt_leaf(const tally__receipt_fields *f,
                         uint8_t leaf[TALLY_HASH_BYTES]) {
  assert(f && leaf);
  uint8_t buf[RECEIPT_LEAF_INPUT_MAX];
  uint8_t *p = buf;
  *p++ = RECEIPT_LEAF_PREFIX;
  memcpy(p, receipt_v2(f->version) ? RECEIPT_LEAF_TAG_V2 : RECEIPT_LEAF_TAG, RECEIPT_TAG_BYTES);
  p += RECEIPT_TAG_BYTES;
  p = receipt_put_be(p, f->transfer_id, 8);
  p = receipt_put_be(p, f->batch_id, 8);
  p = receipt_put_be(p, f->kind, 4);
  p = receipt_put_be(p, f->qty, 4);
  p = receipt_put_be(p, (uint64_t)f->amount_minor, 8);
  p = receipt_put_be(p, f->ref_transfer, 8);
  p = receipt_put_be(p, (uint64_t)f->created_ms, 8);
  p = receipt_put_str(p, f->account);
  p = receipt_put_str(p, f->counterparty);
  p = receipt_put_str(p, f->sku);
  p = receipt_put_be(p, f->serial, 4);
  if (receipt_v2(f->version)) {
    assert(!f->network || strlen(f->network) <= TALLY_RECEIPT_NETWORK_BYTES_MAX);
    p = receipt_put_str(p, f->network);
    p = receipt_put_str(p, f->identity);
    p = receipt_put_be(p, f->shard, 4);
    p = receipt_put_be(p, f->reward, 8);
  }
  assert((size_t)(p - buf) <= sizeof buf);
  tally__sha256(buf, (size_t)(p - buf), leaf);
}

/* ---- proof <-> fields ------------------------------------------------------ */

static int receipt_copy_strn(char *dst, const char *src, size_t max) {
  if (!src) src = "";
  size_t n = strnlen(src, max + 1);
  if (n > max) return TALLY_ETOOBIG;
  memcpy(dst, src, n);
  dst[n] = '\0';
  return TALLY_OK;
}
static int receipt_copy_str(char *dst, const char *src) {
  return receipt_copy_strn(dst, src, TALLY_RECEIPT_TEXT_BYTES_MAX);
}

int tally__receipt_proof_set_fields(tally__receipt_proof *p,
                                    const tally__receipt_fields *f) {
  assert(p && f);
  if (receipt_copy_str(p->account, f->account) != TALLY_OK ||
      receipt_copy_str(p->counterparty, f->counterparty) != TALLY_OK ||
      receipt_copy_str(p->sku, f->sku) != TALLY_OK) {
    return TALLY_ETOOBIG;
  }
  bool v2 = receipt_v2(f->version);
  if (receipt_copy_strn(p->network, v2 ? f->network : "", TALLY_RECEIPT_NETWORK_BYTES_MAX) != TALLY_OK ||
      receipt_copy_str(p->identity, v2 ? f->identity : "") != TALLY_OK)
    return TALLY_ETOOBIG;
  p->version = v2 ? 2 : 1;
  p->shard = v2 ? f->shard : 0;
  p->reward = v2 ? f->reward : 0;
  p->transfer_id = f->transfer_id;
  p->batch_id = f->batch_id;
  p->kind = f->kind;
  p->qty = f->qty;
  p->amount_minor = f->amount_minor;
  p->ref_transfer = f->ref_transfer;
  p->created_ms = f->created_ms;
  p->serial = f->serial;
  return TALLY_OK;
}

void tally__receipt_proof_fields(const tally__receipt_proof *p,
                                 tally__receipt_fields *f) {
  assert(p && f);
  *f = (tally__receipt_fields){
      .transfer_id = p->transfer_id, .batch_id = p->batch_id,
      .kind = p->kind, .qty = p->qty, .amount_minor = p->amount_minor,
      .ref_transfer = p->ref_transfer, .created_ms = p->created_ms,
      .account = p->account, .counterparty = p->counterparty, .sku = p->sku,
      .serial = p->serial, .version = p->version, .network = p->network,
      .identity = p->identity, .shard = p->shard, .reward = p->reward};
}

/* Strings terminated within their arrays and path within its limit. */
static int receipt_proof_bounded(const tally__receipt_proof *p) {
  return memchr(p->account, 0, sizeof p->account) &&
         memchr(p->counterparty, 0, sizeof p->counterparty) &&
         memchr(p->sku, 0, sizeof p->sku) &&
         memchr(p->network, 0, sizeof p->network) &&
         memchr(p->identity, 0, sizeof p->identity) &&
         p->version <= TALLY_RECEIPT_VERSION_MAX &&
         (receipt_v2(p->version) || (!p->network[0] && !p->identity[0] && !p->shard && !p->reward)) &&
         memchr(p->key_id, 0, sizeof p->key_id) &&
         p->path_len <= TALLY_MERKLE_DEPTH_MAX;
}

/* ---- encode ---------------------------------------------------------------- */

typedef struct receipt_sink {
  uint8_t *buf;
  size_t cap, len;
} receipt_sink;

static int receipt_sink_write(void *data, const char *bytes, size_t n) {
  receipt_sink *s = data;
  if (n > s->cap - s->len) return -1;
  memcpy(s->buf + s->len, bytes, n);
  s->len += n;
  return 0;
}

static int receipt_pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int receipt_pack_bin(msgpack_packer *pk, const uint8_t *b, size_t n) {
  return msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, b, n);
}

/* Packs the msgpack body of p into s; nonzero if it does not fit. */
static int receipt_pack(const tally__receipt_proof *p, receipt_sink *s) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, s, receipt_sink_write);
  bool v2 = receipt_v2(p->version);
  int bad = msgpack_pack_array(&pk, v2 ? TALLY_RECEIPT_V2_FIELD_COUNT : TALLY_RECEIPT_FIELD_COUNT) ||
            msgpack_pack_uint64(&pk, p->transfer_id) ||
            msgpack_pack_uint64(&pk, p->batch_id) ||
            msgpack_pack_uint32(&pk, p->kind) ||
            msgpack_pack_uint32(&pk, p->qty) ||
            msgpack_pack_int64(&pk, p->amount_minor) ||
            msgpack_pack_uint64(&pk, p->ref_transfer) ||
            msgpack_pack_int64(&pk, p->created_ms) ||
            receipt_pack_str(&pk, p->account) ||
            receipt_pack_str(&pk, p->counterparty) ||
            receipt_pack_str(&pk, p->sku) ||
            msgpack_pack_uint32(&pk, p->serial) ||
            (v2 && (receipt_pack_str(&pk, p->network) || receipt_pack_str(&pk, p->identity) ||
                    msgpack_pack_uint32(&pk, p->shard) || msgpack_pack_uint64(&pk, p->reward))) ||
            msgpack_pack_uint32(&pk, p->leaf_index) ||
            msgpack_pack_uint32(&pk, p->leaf_count) ||
            msgpack_pack_array(&pk, p->path_len);
  for (uint32_t i = 0; !bad && i < p->path_len; i++) {
    bad = receipt_pack_bin(&pk, p->path[i], TALLY_HASH_BYTES);
  }
  return bad || receipt_pack_bin(&pk, p->root, TALLY_HASH_BYTES) ||
         receipt_pack_bin(&pk, p->sig, TALLY_SIG_BYTES) ||
         receipt_pack_str(&pk, p->key_id);
}

static size_t receipt_b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    for (int k = 3; k >= 0; k--) out[o++] = receipt_b64[(v >> (6 * k)) & 63];
  }
  if (n - i == 1) {
    out[o++] = receipt_b64[in[i] >> 2];
    out[o++] = receipt_b64[(in[i] & 3) << 4];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
    out[o++] = receipt_b64[v >> 10];
    out[o++] = receipt_b64[(v >> 4) & 63];
    out[o++] = receipt_b64[(v & 15) << 2];
  }
  return o;
}

int tally__receipt_token_encode(const tally__receipt_proof *p, char *out,
                                size_t cap, size_t *len) {
  assert(p && out && len);
  if (!receipt_proof_bounded(p)) return TALLY_EINVAL;
  uint8_t body[TALLY_RECEIPT_PACK_BYTES_MAX];
  receipt_sink sink = {.buf = body, .cap = sizeof body, .len = 0};
  if (receipt_pack(p, &sink) != 0) return TALLY_EINVAL; /* limits say it fits */
  size_t b64_len = (sink.len * 4 + 2) / 3;
  if (cap < RECEIPT_PREFIX_BYTES + b64_len + 1) return TALLY_ETOOBIG;
  memcpy(out, receipt_v2(p->version) ? RECEIPT_TOKEN_PREFIX_V2 : RECEIPT_TOKEN_PREFIX, RECEIPT_PREFIX_BYTES);
  size_t n = receipt_b64_encode(body, sink.len, out + RECEIPT_PREFIX_BYTES);
  assert(n == b64_len);
  out[RECEIPT_PREFIX_BYTES + n] = '\0';
  *len = RECEIPT_PREFIX_BYTES + n;
  assert(*len <= TALLY_RECEIPT_TOKEN_BYTES_MAX);
  return TALLY_OK;
}

/* ---- decode ---------------------------------------------------------------- */

static uint8_t receipt_b64_value(unsigned char c) {
  const char *hit = c ? memchr(receipt_b64, c, 64) : NULL;
  return hit ? (uint8_t)(hit - receipt_b64) : RECEIPT_B64_INVALID;
}

/* Strict unpadded base64url: alphabet only, no length of 4k+1, zero spare
 * bits. *out_len receives the decoded size (at most cap). */
static int receipt_b64_decode(const char *in, size_t n, uint8_t *out,
                              size_t cap, size_t *out_len) {
  if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap) {
    return TALLY_EFRAME;
  }
  uint32_t acc = 0;
  size_t bits = 0, o = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t v = receipt_b64_value((unsigned char)in[i]);
    if (v == RECEIPT_B64_INVALID) return TALLY_EFRAME;
    acc = (acc << 6 | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  if (acc & ((1u << bits) - 1)) return TALLY_EFRAME; /* spare bits set */
  *out_len = o;
  return TALLY_OK;
}

static int receipt_get_u64(const msgpack_object *o, uint64_t max, uint64_t *out) {
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) return 0;
  *out = o->via.u64;
  return 1;
}

static int receipt_get_u32(const msgpack_object *o, uint32_t *out) {
  uint64_t v;
  if (!receipt_get_u64(o, UINT32_MAX, &v)) return 0;
  *out = (uint32_t)v;
  return 1;
}

static int receipt_get_i64(const msgpack_object *o, int64_t *out) {
  uint64_t v;
  if (receipt_get_u64(o, INT64_MAX, &v)) {
    *out = (int64_t)v;
    return 1;
  }
  if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER) return 0;
  *out = o->via.i64;
  return 1;
}

/* A str of at most cap - 1 bytes without NUL, copied and terminated. */
static int receipt_get_str(const msgpack_object *o, char *dst, size_t cap) {
  if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap) return 0;
  if (memchr(o->via.str.ptr, 0, o->via.str.size)) return 0;
  memcpy(dst, o->via.str.ptr, o->via.str.size);
  dst[o->via.str.size] = '\0';
  return 1;
}

static int receipt_get_bin(const msgpack_object *o, uint8_t *dst, size_t n) {
  if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n) return 0;
  memcpy(dst, o->via.bin.ptr, n);
  return 1;
}

static int receipt_get_path(const msgpack_object *o, tally__receipt_proof *p) {
  if (o->type != MSGPACK_OBJECT_ARRAY ||
      o->via.array.size > TALLY_MERKLE_DEPTH_MAX) {
    return 0;
  }
  p->path_len = o->via.array.size;
  for (uint32_t i = 0; i < p->path_len; i++) {
    if (!receipt_get_bin(&o->via.array.ptr[i], p->path[i], TALLY_HASH_BYTES)) {
      return 0;
    }
  }
  return 1;
}

static int receipt_get_key_id(const msgpack_object *o, char *dst) {
  if (!receipt_get_str(o, dst, TALLY_KEY_ID_CHARS + 1)) return 0;
  if (strlen(dst) != TALLY_KEY_ID_CHARS) return 0;
  return strspn(dst, "0123456789abcdef") == TALLY_KEY_ID_CHARS;
}

static int receipt_from_object(const msgpack_object *root,
                               tally__receipt_proof *p, bool v2) {
  if (root->type != MSGPACK_OBJECT_ARRAY ||
      root->via.array.size != (v2 ? TALLY_RECEIPT_V2_FIELD_COUNT : TALLY_RECEIPT_FIELD_COUNT)) {
    return 0;
  }
  const msgpack_object *e = root->via.array.ptr;
  p->version = v2 ? 2 : 1;
  if (v2) {
    if (!receipt_get_str(&e[11], p->network, sizeof p->network) ||
        !receipt_get_str(&e[12], p->identity, sizeof p->identity) ||
        !receipt_get_u32(&e[13], &p->shard) || !receipt_get_u64(&e[14], UINT64_MAX, &p->reward))
      return 0;
    e += 4; /* the rest as in version 1 */
  }
  const msgpack_object *h = root->via.array.ptr;
  return receipt_get_u64(&h[0], UINT64_MAX, &p->transfer_id) &&
         receipt_get_u64(&h[1], UINT64_MAX, &p->batch_id) &&
         receipt_get_u32(&h[2], &p->kind) && receipt_get_u32(&h[3], &p->qty) &&
         receipt_get_i64(&h[4], &p->amount_minor) &&
         receipt_get_u64(&h[5], UINT64_MAX, &p->ref_transfer) &&
         receipt_get_i64(&h[6], &p->created_ms) &&
         receipt_get_str(&h[7], p->account, sizeof p->account) &&
         receipt_get_str(&h[8], p->counterparty, sizeof p->counterparty) &&
         receipt_get_str(&h[9], p->sku, sizeof p->sku) &&
         receipt_get_u32(&h[10], &p->serial) &&
         receipt_get_u32(&e[11], &p->leaf_index) &&
         receipt_get_u32(&e[12], &p->leaf_count) &&
         receipt_get_path(&e[13], p) &&
         receipt_get_bin(&e[14], p->root, TALLY_HASH_BYTES) &&
         receipt_get_bin(&e[15], p->sig, TALLY_SIG_BYTES) &&
         receipt_get_key_id(&e[16], p->key_id);
}

static int receipt_unpack(const uint8_t *body, size_t n, tally__receipt_proof *p, bool v2) {
  msgpack_zone zone;
  if (!msgpack_zone_init(&zone, RECEIPT_ZONE_CHUNK_BYTES)) return TALLY_ENOMEM;
  msgpack_object obj;
  size_t off = 0;
  msgpack_unpack_return r =
      msgpack_unpack((const char *)body, n, &off, &zone, &obj);
  int ok = r == MSGPACK_UNPACK_SUCCESS && off == n && receipt_from_object(&obj, p, v2);
  msgpack_zone_destroy(&zone);
  return ok ? TALLY_OK : TALLY_EFRAME;
}

int tally__receipt_token_decode(const char *token, size_t len,
                                tally__receipt_proof *out) {
  assert(out && (token || len == 0));
  memset(out, 0, sizeof *out);
  uint8_t body[TALLY_RECEIPT_PACK_BYTES_MAX];
  size_t body_len = 0;
  int rc = TALLY_EFRAME;
  bool v2 = len >= RECEIPT_PREFIX_BYTES && memcmp(token, RECEIPT_TOKEN_PREFIX_V2, RECEIPT_PREFIX_BYTES) == 0;
  if (len >= RECEIPT_PREFIX_BYTES && len <= TALLY_RECEIPT_TOKEN_BYTES_MAX &&
      (v2 || memcmp(token, RECEIPT_TOKEN_PREFIX, RECEIPT_PREFIX_BYTES) == 0)) {
    rc = receipt_b64_decode(token + RECEIPT_PREFIX_BYTES,
                            len - RECEIPT_PREFIX_BYTES, body, sizeof body,
                            &body_len);
  }
  if (rc == TALLY_OK) rc = tally__msgpack_scan(body, body_len);
  if (rc == TALLY_OK) rc = receipt_unpack(body, body_len, out, v2);
  if (rc == TALLY_OK) { /* one token per proof: it must re-encode exactly */
    char again[TALLY_RECEIPT_TOKEN_BYTES_MAX + 1];
    size_t again_len = 0;
    if (tally__receipt_token_encode(out, again, sizeof again, &again_len) !=
            TALLY_OK ||
        again_len != len || memcmp(again, token, len) != 0) {
      rc = TALLY_EFRAME;
    }
  }
  if (rc != TALLY_OK) memset(out, 0, sizeof *out);
  return rc;
}

/* ---- verify ---------------------------------------------------------------- */

int tally__receipt_proof_verify(const tally__receipt_proof *p,
                                const uint8_t public_key[TALLY_PUBKEY_BYTES]) {
  assert(p && public_key);
  if (!receipt_proof_bounded(p) || p->leaf_count == 0 ||
      p->leaf_index >= p->leaf_count) {
    return TALLY_EBADSIG;
  }
  char key_id[TALLY_KEY_ID_CHARS + 1];
  tally__key_id(public_key, key_id);
  if (CRYPTO_memcmp(key_id, p->key_id, sizeof key_id) != 0) return TALLY_EBADSIG;
  tally__receipt_fields f;
  tally__receipt_proof_fields(p, &f);
  uint8_t leaf[TALLY_HASH_BYTES];
  tally__receipt_leaf(&f, leaf);
  int rc = tally__merkle_verify(leaf, p->leaf_index, p->leaf_count,
                                (const uint8_t (*)[32])p->path, p->path_len,
                                p->root);
  if (rc != TALLY_OK) return rc;
  return tally__batch_sig_verify(public_key, p->batch_id, p->leaf_count,
                                 p->root, p->sig);
}
