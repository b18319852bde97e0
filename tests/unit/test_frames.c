/* test_frames.c — the public wire of tally/frames.h: round trips of every
 * frame, refusals of malformed ones, HELLO version negotiation and its
 * challenge/answer, and the length-prefixed stream reader fed byte by byte,
 * in random chunks, cut, oversized and with garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "codec.h"
#include "tally/frames.h"

static tally_frame_decoder *dec;

/* Field-by-field equality from the schema's tables (bytes after a string's
 * NUL and struct padding are not part of a frame). */
#define EQ_U64(name) assert_true(a->name == b->name);
#define EQ_I64(name) assert_true(a->name == b->name);
#define EQ_STR(name) assert_string_equal(a->name, b->name);
#define EQ_FIELD(kind, name, max, doc) EQ_##kind(name)
#define DEFINE_EQ(name, FIELDS)                                                    \
  static void eq_##name(const tally_frame_##name *a, const tally_frame_##name *b) { \
    FIELDS(EQ_FIELD)                                                               \
  }
DEFINE_EQ(effect, TALLY_FRAME_EFFECT_FIELDS)
DEFINE_EQ(hello, TALLY_FRAME_HELLO_FIELDS)
DEFINE_EQ(hello_server, TALLY_FRAME_HELLO_SERVER_FIELDS)
DEFINE_EQ(presence, TALLY_FRAME_PRESENCE_FIELDS)
DEFINE_EQ(command, TALLY_FRAME_COMMAND_FIELDS)

static int setup(void **state) {
  (void)state;
  return tally_frame_decoder_new(&dec) == TALLY_OK ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  tally_frame_decoder_free(dec);
  return 0;
}

/* A string of exactly n bytes of c into an array of at least n + 1. */
static void fill(char *dst, size_t n, char c) {
  memset(dst, c, n);
  dst[n] = '\0';
}

static void test_hello_round_trip(void **state) {
  (void)state;
  tally_frame_hello h;
  memset(&h, 0, sizeof h);
  h.wire_min = 1;
  h.wire_max = UINT64_MAX;
  fill(h.network, TALLY_FRAME_NETWORK_BYTES_MAX, 'n');
  fill(h.adapter, TALLY_FRAME_ADAPTER_BYTES_MAX, 'a');
  fill(h.instance, TALLY_FRAME_INSTANCE_BYTES_MAX, 'i');
  h.shard = 7;
  h.caps = TALLY_CAP_INTERCEPT_COMMANDS | TALLY_CAP_PIN_TOPIC | TALLY_CAP_HOLD_FOR_MODERATORS;
  fill(h.answer, TALLY_FRAME_HELLO_HEX_BYTES, 'f');
  h.acked = 12345678901234ull;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  /* Every field at its limit still fits one frame. */
  assert_int_equal(tally_frame_hello_encode(&h, buf, sizeof buf, &len), TALLY_OK);
  assert_true(len <= TALLY_FRAME_BYTES_MAX);
  uint64_t type = 0;
  assert_int_equal(tally_frame_type(buf, len, &type), TALLY_OK);
  assert_int_equal(type, TALLY_FRAME_TYPE_HELLO);
  tally_frame_hello back;
  memset(&back, 0x5a, sizeof back);
  assert_int_equal(tally_frame_hello_decode(dec, buf, len, &back), TALLY_OK);
  eq_hello(&h, &back);
  /* A string one byte over its limit (no NUL inside its array) is refused. */
  memset(h.network, 'n', sizeof h.network);
  assert_int_equal(tally_frame_hello_encode(&h, buf, sizeof buf, &len), TALLY_ETOOBIG);
  /* Too small a buffer is refused, not overrun. */
  fill(h.network, 3, 'n');
  assert_int_equal(tally_frame_hello_encode(&h, buf, 40, &len), TALLY_ETOOBIG);
  assert_int_equal(tally_frame_hello_encode(NULL, buf, sizeof buf, &len), TALLY_EINVAL);
}

static void test_hello_server_round_trip(void **state) {
  (void)state;
  tally_frame_hello_server s;
  memset(&s, 0, sizeof s);
  s.wire_min = 1;
  s.wire_max = 1;
  s.wire_chosen = 0;
  s.code = TALLY_EVERSION;
  fill(s.server, TALLY_FRAME_INSTANCE_BYTES_MAX, 's');
  s.shard = UINT64_MAX;
  assert_int_equal(tally_hello_challenge(s.challenge), TALLY_OK);
  fill(s.text, TALLY_TEXT_BYTES_MAX, 'x');
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  assert_int_equal(tally_frame_hello_server_encode(&s, buf, sizeof buf, &len), TALLY_OK);
  tally_frame_hello_server back;
  memset(&back, 0x5a, sizeof back);
  assert_int_equal(tally_frame_hello_server_decode(dec, buf, len, &back), TALLY_OK);
  eq_hello_server(&s, &back);
  /* The wrong decoder refuses it. */
  tally_frame_hello h;
  assert_int_equal(tally_frame_hello_decode(dec, buf, len, &h), TALLY_EFRAME);
}

static void test_presence_round_trip(void **state) {
  (void)state;
  for (unsigned present = 0; present <= 1; present++) {
    for (unsigned local = 0; local <= 1; local++) {
      tally_frame_presence p;
      memset(&p, 0, sizeof p);
      fill(p.network, TALLY_FRAME_NETWORK_BYTES_MAX, 'n');
      fill(p.account, TALLY_NAME_BYTES_MAX, 'a');
      strcpy(p.room, "#caf\xc3\xa9");
      p.present = present;
      p.local = local;
      uint8_t buf[TALLY_FRAME_BYTES_MAX];
      size_t len = 0;
      assert_int_equal(tally_frame_presence_encode(&p, buf, sizeof buf, &len), TALLY_OK);
      tally_frame_presence back;
      memset(&back, 0x5a, sizeof back);
      assert_int_equal(tally_frame_presence_decode(dec, buf, len, &back), TALLY_OK);
      eq_presence(&p, &back);
    }
  }
  /* The flags are 0 or 1: a 2 is refused by the decoder. */
  tally_frame_presence p;
  memset(&p, 0, sizeof p);
  strcpy(p.network, "irc");
  p.present = 2;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  assert_int_equal(tally_frame_presence_encode(&p, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_presence_decode(dec, buf, len, &p), TALLY_EFRAME);
  memset(&p, 0, sizeof p);
  p.local = 9;
  assert_int_equal(tally_frame_presence_encode(&p, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_presence_decode(dec, buf, len, &p), TALLY_EFRAME);
}

static void test_ack_and_effect_round_trip(void **state) {
  (void)state;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  tally_frame_ack a = {.seq = UINT64_MAX}, a2 = {0};
  assert_int_equal(tally_frame_ack_encode(&a, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_ack_decode(dec, buf, len, &a2), TALLY_OK);
  assert_true(a2.seq == UINT64_MAX);
  /* Trailing bytes and truncation are refused. */
  buf[len] = 0xc0;
  assert_int_equal(tally_frame_ack_decode(dec, buf, len + 1, &a2), TALLY_EFRAME);
  assert_int_equal(tally_frame_ack_decode(dec, buf, len - 1, &a2), TALLY_EFRAME);

  tally_frame_effect e;
  memset(&e, 0, sizeof e);
  e.kind = TALLY_EFFECT_REPLY;
  e.code = INT64_MIN;
  e.req_id = 3;
  e.receipt_id = 4;
  fill(e.origin, TALLY_NAME_BYTES_MAX, 'o');
  fill(e.channel, TALLY_NAME_BYTES_MAX, 'c');
  fill(e.text, TALLY_TEXT_BYTES_MAX, 't');
  e.seq = 99;
  /* The largest frame: every string full, arguments too (since 1.5). More
   * than TALLY_EFFECT_ARGS_MAX arguments are refused. */
  e.msg = TALLY_MSG_BOUGHT;
  for (size_t n = 0; n + 11 <= TALLY_EFFECT_ARGS_BYTES_MAX;)
    n += (size_t)snprintf(e.args + n, sizeof e.args - n, "%s7:100+12=9", n ? "," : "");
  assert_int_equal(tally_frame_effect_encode(&e, buf, sizeof buf, &len), TALLY_OK);
  tally_frame_effect back;
  memset(&back, 0x5a, sizeof back);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_EFRAME);
  e.args[0] = 0;
  for (size_t n = 0, k = 0; k < TALLY_EFFECT_ARGS_MAX; k++)
    n += (size_t)snprintf(e.args + n, sizeof e.args - n, "%s7:100+12=9999999999", n ? "," : "");
  assert_int_equal(tally_frame_effect_encode(&e, buf, sizeof buf, &len), TALLY_OK);
  memset(&back, 0x5a, sizeof back);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_OK);
  eq_effect(&e, &back);
}

/* The public decoder refuses arguments an adapter could not trust: a span
 * past the text, arguments on a text-only effect, junk. */
static void test_effect_args_checked(void **state) {
  (void)state;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  tally_frame_effect e, back;
  memset(&e, 0, sizeof e);
  e.kind = TALLY_EFFECT_ANNOUNCE;
  snprintf(e.text, sizeof e.text, "Thank you bob for tipping alice 1.50 credits: *x*");
  e.msg = TALLY_MSG_TIP_THANKS;
  snprintf(e.args, sizeof e.args, "1:10+3,1:26+5,2:32+12=150/2,3:46+3");
  assert_int_equal(tally_frame_effect_encode(&e, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_OK);
  assert_true(back.msg == TALLY_MSG_TIP_THANKS);
  assert_string_equal(back.args, e.args);
  snprintf(e.args, sizeof e.args, "3:46+4"); /* one byte past the text */
  assert_int_equal(tally_frame_effect_encode(&e, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_EFRAME);
  snprintf(e.args, sizeof e.args, "1:10+3");
  e.msg = TALLY_MSG_TEXT;
  assert_int_equal(tally_frame_effect_encode(&e, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_EFRAME);
  e.msg = TALLY_MSG_TIP_THANKS;
  snprintf(e.args, sizeof e.args, "bob");
  assert_int_equal(tally_frame_effect_encode(&e, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_EFRAME);
}

/* What the engine encodes in process carries seq 0, and an effect of v1.0
 * (7 fields, no seq) still decodes, with seq 0; one field fewer does not. */
static void test_effect_seq_compat(void **state) {
  (void)state;
  tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION,
                      .kind = TALLY_EFFECT_ANNOUNCE, .origin = "", .channel = "#c",
                      .text = "hi"};
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  tally_frame_effect back;
  assert_int_equal(tally__effect_encode(&eff, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_OK);
  assert_true(back.seq == 0);
  assert_int_equal(tally__effect_encode_seq(&eff, 41, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_effect_decode(dec, buf, len, &back), TALLY_OK);
  assert_true(back.seq == 41);
  assert_string_equal(back.channel, "#c");

  for (int fields = 7; fields >= 6; fields--) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2 + (size_t)fields);
    msgpack_pack_uint64(&pk, TALLY_FRAME_SCHEMA_VERSION);
    msgpack_pack_uint64(&pk, TALLY_FRAME_TYPE_EFFECT);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_int64(&pk, -106);
    msgpack_pack_uint64(&pk, 5);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "u", 1);
    msgpack_pack_str(&pk, 0);
    if (fields == 7) {
      msgpack_pack_str(&pk, 8);
      msgpack_pack_str_body(&pk, "sold out", 8);
    }
    memset(&back, 0x5a, sizeof back);
    int rc = tally_frame_effect_decode(dec, (const uint8_t *)sb.data, sb.size, &back);
    if (fields == 7) {
      assert_int_equal(rc, TALLY_OK);
      assert_true(back.seq == 0);
      assert_true(back.code == -106);
      assert_string_equal(back.text, "sold out");
    } else {
      assert_int_equal(rc, TALLY_EFRAME);
    }
    msgpack_sbuffer_destroy(&sb);
  }
}

static void test_frame_type_peek(void **state) {
  (void)state;
  uint64_t t = 0;
  const uint8_t ok[] = {0x92, 0x01, 0x05};
  assert_int_equal(tally_frame_type(ok, sizeof ok, &t), TALLY_OK);
  assert_int_equal(t, 5);
  const uint8_t wide[] = {0xdc, 0x00, 0x02, 0xcc, 0x01, 0xcd, 0x01, 0x00};
  assert_int_equal(tally_frame_type(wide, sizeof wide, &t), TALLY_OK);
  assert_int_equal(t, 256);
  const uint8_t v2[] = {0x92, 0x02, 0x01};
  assert_int_equal(tally_frame_type(v2, sizeof v2, &t), TALLY_EFRAME);
  const uint8_t short1[] = {0x91, 0x01};
  assert_int_equal(tally_frame_type(short1, sizeof short1, &t), TALLY_EFRAME);
  const uint8_t cut[] = {0x92, 0x01, 0xcf, 0x00};
  assert_int_equal(tally_frame_type(cut, sizeof cut, &t), TALLY_EFRAME);
  const uint8_t map[] = {0x82, 0x01, 0x01};
  assert_int_equal(tally_frame_type(map, sizeof map, &t), TALLY_EFRAME);
  assert_int_equal(tally_frame_type(ok, 0, &t), TALLY_EFRAME);
}

static void test_negotiate(void **state) {
  (void)state;
  uint64_t v = 99;
  char err[TALLY_ERRBUF_BYTES];
  assert_int_equal(tally_hello_negotiate(1, 1, 1, 1, &v, err, sizeof err), TALLY_OK);
  assert_int_equal(v, 1);
  assert_string_equal(err, "");
  assert_int_equal(tally_hello_negotiate(1, 3, 2, 5, &v, err, sizeof err), TALLY_OK);
  assert_int_equal(v, 3);
  assert_int_equal(tally_hello_negotiate(2, 5, 1, 3, &v, NULL, 0), TALLY_OK);
  assert_int_equal(v, 3);
  assert_int_equal(tally_hello_negotiate(1, 9, 4, 4, &v, NULL, 0), TALLY_OK);
  assert_int_equal(v, 4);
  /* No overlap: refused, with both ranges in the message. */
  assert_int_equal(tally_hello_negotiate(3, 4, 1, 2, &v, err, sizeof err), TALLY_EVERSION);
  assert_int_equal(v, 0);
  assert_non_null(strstr(err, "host speaks 3..4"));
  assert_non_null(strstr(err, "engine 1..2"));
  assert_int_equal(tally_hello_negotiate(1, 1, 2, 2, &v, err, sizeof err), TALLY_EVERSION);
  /* Empty or zero ranges. */
  assert_int_equal(tally_hello_negotiate(0, 0, 1, 1, &v, err, sizeof err), TALLY_EVERSION);
  assert_non_null(strstr(err, "host offers an empty range 0..0"));
  assert_int_equal(tally_hello_negotiate(2, 1, 1, 3, &v, err, sizeof err), TALLY_EVERSION);
  assert_int_equal(tally_hello_negotiate(1, 3, 3, 1, &v, err, sizeof err), TALLY_EVERSION);
  assert_non_null(strstr(err, "engine offers an empty range 3..1"));
  /* A short error buffer is cut, not overrun. */
  char tiny[8];
  assert_int_equal(tally_hello_negotiate(3, 4, 1, 2, &v, tiny, sizeof tiny), TALLY_EVERSION);
  assert_int_equal(strlen(tiny), sizeof tiny - 1);
  assert_int_equal(tally_hello_negotiate(1, 1, 1, 1, NULL, NULL, 0), TALLY_EINVAL);
  /* This libtally against itself. */
  assert_int_equal(tally_hello_negotiate(TALLY_WIRE_VERSION_MIN, TALLY_WIRE_VERSION_MAX,
                                         TALLY_WIRE_VERSION_MIN, TALLY_WIRE_VERSION_MAX, &v,
                                         NULL, 0),
                   TALLY_OK);
  assert_int_equal(v, TALLY_FRAME_SCHEMA_VERSION);
}

static void test_hello_auth(void **state) {
  (void)state;
  const uint8_t secret[] = "network-secret";
  const size_t slen = sizeof secret - 1;
  const char *ch = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
  /* Python: hmac.new(b'network-secret', bytes(range(32)), sha256).hexdigest() */
  const char *want = "ac3bebb9057e1152139241f33132840dd131f129a7a7671c552fe290a432b49f";
  char ans[TALLY_FRAME_HELLO_HEX_BYTES + 1];
  assert_int_equal(tally_hello_answer(secret, slen, ch, ans), TALLY_OK);
  assert_string_equal(ans, want);
  assert_int_equal(tally_hello_check(secret, slen, ch, want), TALLY_OK);
  char bad[TALLY_FRAME_HELLO_HEX_BYTES + 1];
  strcpy(bad, want);
  bad[10] = bad[10] == '0' ? '1' : '0';
  assert_int_equal(tally_hello_check(secret, slen, ch, bad), TALLY_EBADSIG);
  strcpy(bad, want);
  bad[0] = 'A'; /* 'a' in uppercase: one spelling only */
  assert_int_equal(tally_hello_check(secret, slen, ch, bad), TALLY_EBADSIG);
  assert_int_equal(tally_hello_check(secret, slen, ch, ""), TALLY_EBADSIG);
  assert_int_equal(tally_hello_check(secret, slen, ch, NULL), TALLY_EBADSIG);
  strcpy(bad, want);
  bad[63] = '\0';
  assert_int_equal(tally_hello_check(secret, slen, ch, bad), TALLY_EBADSIG);
  assert_int_equal(tally_hello_check((const uint8_t *)"other", 5, ch, want), TALLY_EBADSIG);
  assert_int_equal(tally_hello_check(secret, 0, ch, want), TALLY_EBADSIG);
  /* A malformed challenge is no challenge. */
  assert_int_equal(tally_hello_answer(secret, slen, "00", ans), TALLY_EFRAME);
  assert_int_equal(tally_hello_check(secret, slen, "zz", want), TALLY_EBADSIG);
  assert_int_equal(tally_hello_answer(secret, 0, ch, ans), TALLY_EINVAL);
  /* Fresh challenges: lowercase hex, never the same twice. */
  char c1[TALLY_FRAME_HELLO_HEX_BYTES + 1], c2[TALLY_FRAME_HELLO_HEX_BYTES + 1];
  assert_int_equal(tally_hello_challenge(c1), TALLY_OK);
  assert_int_equal(tally_hello_challenge(c2), TALLY_OK);
  assert_int_equal(strlen(c1), TALLY_FRAME_HELLO_HEX_BYTES);
  assert_int_equal(strspn(c1, "0123456789abcdef"), TALLY_FRAME_HELLO_HEX_BYTES);
  assert_string_not_equal(c1, c2);
  assert_int_equal(tally_hello_answer(secret, slen, c1, ans), TALLY_OK);
  assert_int_equal(tally_hello_check(secret, slen, c1, ans), TALLY_OK);
  assert_int_equal(tally_hello_check(secret, slen, c2, ans), TALLY_EBADSIG);
}

/* ---- stream framing --------------------------------------------------------- */
enum { STREAM_FRAMES = 24, STREAM_BYTES = STREAM_FRAMES * (TALLY_FRAME_BYTES_MAX + 4) };

typedef struct stream_case {
  uint8_t wire[STREAM_BYTES];
  size_t wire_len;
  size_t frame_len[STREAM_FRAMES];
  size_t frame_off[STREAM_FRAMES]; /* of the frame's bytes in wire */
} stream_case;

/* Frames of lengths 1, the limit, and between, each a different pattern. */
static void stream_case_build(stream_case *c) {
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  c->wire_len = 0;
  for (size_t i = 0; i < STREAM_FRAMES; i++) {
    size_t n = i == 0 ? 1 : i == 1 ? TALLY_FRAME_BYTES_MAX : 1 + (i * 97) % TALLY_FRAME_BYTES_MAX;
    for (size_t k = 0; k < n; k++) frame[k] = (uint8_t)(i * 31 + k);
    size_t out = 0;
    assert_int_equal(tally_stream_wrap(frame, n, c->wire + c->wire_len,
                                       sizeof c->wire - c->wire_len, &out),
                     TALLY_OK);
    assert_int_equal(out, n + TALLY_STREAM_PREFIX_BYTES);
    c->frame_len[i] = n;
    c->frame_off[i] = c->wire_len + TALLY_STREAM_PREFIX_BYTES;
    c->wire_len += out;
  }
}

/* Feeds c's bytes in chunks chosen by next_chunk; checks that every frame
 * comes out whole, in order, and nothing else. */
static void stream_feed_all(const stream_case *c, size_t (*next_chunk)(size_t left)) {
  static tally_stream_reader r;
  tally_stream_reader_init(&r);
  size_t got = 0, off = 0;
  while (off < c->wire_len) {
    size_t chunk = next_chunk(c->wire_len - off);
    const uint8_t *p = c->wire + off;
    off += chunk;
    while (chunk > 0) {
      size_t used = 0, n = 0;
      const uint8_t *f = NULL;
      int rc = tally_stream_feed(&r, p, chunk, &used, &f, &n);
      assert_true(rc == 0 || rc == 1);
      assert_true(used <= chunk);
      p += used;
      chunk -= used;
      if (rc == 1) {
        assert_true(got < STREAM_FRAMES);
        assert_int_equal(n, c->frame_len[got]);
        assert_memory_equal(f, c->wire + c->frame_off[got], n);
        got++;
      } else {
        assert_int_equal(chunk, 0);
      }
    }
  }
  assert_int_equal(got, STREAM_FRAMES);
  assert_int_equal(tally_stream_pending(&r), 0);
}

static size_t chunk_one(size_t left) {
  (void)left;
  return 1;
}
static size_t chunk_random(size_t left) {
  size_t n = 1 + (size_t)rand() % (2 * TALLY_FRAME_BYTES_MAX + 8);
  return n < left ? n : left;
}
static size_t chunk_all(size_t left) { return left; }

/* COMMAND (tallyd's first frame after HELLO): every field at its limit round
 * trips; the public encoder and tally_command_encode write the same bytes; a
 * v1.0 command without network decodes as ""; an effect is not a command. */
static void test_command_round_trip(void **state) {
  (void)state;
  tally_frame_command c, back;
  memset(&c, 0, sizeof c);
  c.req_id = UINT64_MAX;
  c.roles = 9;
  fill(c.origin, TALLY_NAME_BYTES_MAX, 'o');
  fill(c.account, TALLY_NAME_BYTES_MAX, 'a');
  fill(c.nick, TALLY_NAME_BYTES_MAX, 'k');
  fill(c.channel, TALLY_NAME_BYTES_MAX, 'c');
  fill(c.msg_id, TALLY_NAME_BYTES_MAX, 'm');
  fill(c.text, 300, 't');
  fill(c.network, TALLY_FRAME_NETWORK_BYTES_MAX, 'n');
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  assert_int_equal(tally_frame_command_encode(&c, buf, sizeof buf, &len), TALLY_OK);
  memset(&back, 0x55, sizeof back);
  assert_int_equal(tally_frame_command_decode(dec, buf, len, &back), TALLY_OK);
  eq_command(&c, &back);
  tally_command tc = {.size = sizeof tc, .version = TALLY_COMMAND_VERSION, .req_id = c.req_id,
                      .origin = c.origin, .account = c.account, .nick = c.nick, .channel = c.channel,
                      .msg_id = c.msg_id, .text = c.text, .roles = 9, .network = c.network};
  uint8_t buf2[TALLY_FRAME_BYTES_MAX];
  size_t len2;
  assert_int_equal(tally_command_encode(&tc, buf2, sizeof buf2, &len2), TALLY_OK);
  assert_int_equal(len, len2);
  assert_memory_equal(buf, buf2, len);
  /* A v1.0 sender: eight fields, no network. */
  tc.size = TALLY_COMMAND_SIZE_V1;
  fill(c.text, 3, 't');
  assert_int_equal(tally_command_encode(&tc, buf2, sizeof buf2, &len2), TALLY_OK);
  assert_int_equal(tally_frame_command_decode(dec, buf2, len2, &back), TALLY_OK);
  assert_string_equal(back.network, "");
  /* Refusals: a string filling its array, a small buffer, another frame type. */
  memset(c.origin, 'o', sizeof c.origin); /* no NUL within the array: one byte over its limit */
  assert_int_equal(tally_frame_command_encode(&c, buf, sizeof buf, &len), TALLY_ETOOBIG);
  c.origin[TALLY_NAME_BYTES_MAX] = 0;
  assert_int_equal(tally_frame_command_encode(&c, buf, 16, &len), TALLY_ETOOBIG);
  tally_frame_ack a = {.seq = 1};
  assert_int_equal(tally_frame_ack_encode(&a, buf, sizeof buf, &len), TALLY_OK);
  assert_int_equal(tally_frame_command_decode(dec, buf, len, &back), TALLY_EFRAME);
  assert_int_equal(tally_frame_command_decode(dec, buf2, len2 - 1, &back), TALLY_EFRAME);
}

static void test_stream_chunks(void **state) {
  (void)state;
  static stream_case c;
  stream_case_build(&c);
  stream_feed_all(&c, chunk_one);
  stream_feed_all(&c, chunk_all);
  srand(20261201);
  for (int round = 0; round < 50; round++) stream_feed_all(&c, chunk_random);
}

static void test_stream_cut_frame(void **state) {
  (void)state;
  const uint8_t frame[] = {0x91, 0x01, 0x02, 0x03, 0x04};
  uint8_t wire[64];
  size_t wl = 0;
  assert_int_equal(tally_stream_wrap(frame, sizeof frame, wire, sizeof wire, &wl), TALLY_OK);
  /* Every cut point short of the whole: nothing yielded, bytes pending. */
  for (size_t cut = 1; cut < wl; cut++) {
    tally_stream_reader r;
    tally_stream_reader_init(&r);
    size_t used = 0, n = 0;
    const uint8_t *f = NULL;
    assert_int_equal(tally_stream_feed(&r, wire, cut, &used, &f, &n), 0);
    assert_int_equal(used, cut);
    assert_null(f);
    assert_int_equal(tally_stream_pending(&r), cut);
  }
  /* An empty feed is no progress and no error. */
  tally_stream_reader r;
  tally_stream_reader_init(&r);
  size_t used = 7, n = 0;
  const uint8_t *f = NULL;
  assert_int_equal(tally_stream_feed(&r, NULL, 0, &used, &f, &n), 0);
  assert_int_equal(used, 0);
  /* Two frames in one chunk come out one call each. */
  uint8_t two[128];
  size_t l1 = 0, l2 = 0;
  assert_int_equal(tally_stream_wrap(frame, sizeof frame, two, sizeof two, &l1), TALLY_OK);
  assert_int_equal(tally_stream_wrap(frame, 2, two + l1, sizeof two - l1, &l2), TALLY_OK);
  assert_int_equal(tally_stream_feed(&r, two, l1 + l2, &used, &f, &n), 1);
  assert_int_equal(used, l1);
  assert_int_equal(n, sizeof frame);
  assert_int_equal(tally_stream_feed(&r, two + used, l2, &used, &f, &n), 1);
  assert_int_equal(n, 2);
  /* The writer refuses what the reader would. */
  assert_int_equal(tally_stream_wrap(frame, 0, wire, sizeof wire, &wl), TALLY_ETOOBIG);
  static uint8_t big[TALLY_FRAME_BYTES_MAX + 8];
  assert_int_equal(tally_stream_wrap(big, TALLY_FRAME_BYTES_MAX + 1, big, sizeof big, &wl),
                   TALLY_ETOOBIG);
  assert_int_equal(tally_stream_wrap(frame, sizeof frame, wire, sizeof frame + 3, &wl),
                   TALLY_ETOOBIG);
}

/* A bad length poisons the reader: this call and every later one. */
static void poisoned(const uint8_t *prefix, int want) {
  tally_stream_reader r;
  tally_stream_reader_init(&r);
  size_t used = 0, n = 0;
  const uint8_t *f = NULL;
  /* Byte by byte: the error comes with the fourth byte. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(tally_stream_feed(&r, prefix + i, 1, &used, &f, &n), 0);
  assert_int_equal(tally_stream_feed(&r, prefix + 3, 1, &used, &f, &n), want);
  assert_null(f);
  const uint8_t good[] = {0, 0, 0, 1, 0x01};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(tally_stream_feed(&r, good, sizeof good, &used, &f, &n), want);
    assert_int_equal(used, 0);
    assert_null(f);
  }
}

static void test_stream_bad_lengths(void **state) {
  (void)state;
  const uint8_t zero[] = {0, 0, 0, 0};
  const uint8_t over[] = {0, 0, (TALLY_FRAME_BYTES_MAX + 1) >> 8, (TALLY_FRAME_BYTES_MAX + 1) & 0xff};
  const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
  const uint8_t ascii[] = {'B', 'U', 'Y', ' '}; /* a text client on the socket */
  poisoned(zero, TALLY_EFRAME);
  poisoned(over, TALLY_ETOOBIG);
  poisoned(huge, TALLY_ETOOBIG);
  poisoned(ascii, TALLY_ETOOBIG);
  /* The limit itself is a frame. */
  const uint8_t at[] = {0, 0, TALLY_FRAME_BYTES_MAX >> 8, TALLY_FRAME_BYTES_MAX & 0xff};
  tally_stream_reader r;
  tally_stream_reader_init(&r);
  size_t used = 0, n = 0;
  const uint8_t *f = NULL;
  assert_int_equal(tally_stream_feed(&r, at, sizeof at, &used, &f, &n), 0);
  static uint8_t body[TALLY_FRAME_BYTES_MAX];
  assert_int_equal(tally_stream_feed(&r, body, sizeof body, &used, &f, &n), 1);
  assert_int_equal(n, TALLY_FRAME_BYTES_MAX);
}

/* Random bytes: the reader either yields frames within the limit or poisons
 * itself; every yielded frame goes through every decoder, which answers
 * TALLY_OK or TALLY_EFRAME. */
static void test_stream_garbage(void **state) {
  (void)state;
  srand(7);
  static uint8_t junk[8192];
  int poisonings = 0, frames = 0;
  for (int round = 0; round < 200; round++) {
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rand();
    /* Small lengths now and then, so some rounds yield frames. */
    if (round % 2) junk[0] = junk[1] = 0, junk[2] &= 0x03;
    tally_stream_reader r;
    tally_stream_reader_init(&r);
    const uint8_t *p = junk;
    size_t left = sizeof junk;
    while (left > 0) {
      size_t used = 0, n = 0;
      const uint8_t *f = NULL;
      int rc = tally_stream_feed(&r, p, left, &used, &f, &n);
      if (rc < 0) {
        assert_true(rc == TALLY_EFRAME || rc == TALLY_ETOOBIG);
        poisonings++;
        break;
      }
      p += used;
      left -= used;
      if (rc == 1) {
        frames++;
        assert_true(n >= 1 && n <= TALLY_FRAME_BYTES_MAX);
        tally_frame_hello h;
        tally_frame_hello_server s;
        tally_frame_presence pr;
        tally_frame_ack a;
        tally_frame_effect e;
        int rcs[] = {tally_frame_hello_decode(dec, f, n, &h),
                     tally_frame_hello_server_decode(dec, f, n, &s),
                     tally_frame_presence_decode(dec, f, n, &pr),
                     tally_frame_ack_decode(dec, f, n, &a),
                     tally_frame_effect_decode(dec, f, n, &e)};
        for (size_t k = 0; k < sizeof rcs / sizeof rcs[0]; k++)
          assert_true(rcs[k] == TALLY_OK || rcs[k] == TALLY_EFRAME);
      }
    }
  }
  assert_true(poisonings > 0);
  assert_true(frames > 0);
}

/* The head peek (remote mode's relay) reads what the full decoder reads, for
 * codes of every msgpack width and strings of every length header, and
 * refuses what is not an effect's head. */
static void test_effect_peek_matches_decode(void **state) {
  (void)state;
  const int64_t codes[] = {0, -1, -31, -32, -33, -128, -129, -146, 5, 127, 128, 70000};
  const size_t lens[] = {0, 31, 32, 255, 256, 511};
  tally_frame_decoder *pdec;
  assert_int_equal(tally_frame_decoder_new(&pdec), TALLY_OK);
  for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++)
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
      tally_frame_effect f, back;
      memset(&f, 0, sizeof f);
      f.kind = 1 + c % 6;
      f.code = codes[c];
      f.req_id = 1000000007ull * (c + 1);
      f.receipt_id = l * 77;
      f.seq = (1ull << 40) + c * 10 + l;
      memset(f.origin, 'o', lens[l] < sizeof f.origin ? lens[l] : 0);
      memset(f.text, 't', lens[l]);
      snprintf(f.network, sizeof f.network, "irc");
      uint8_t buf[TALLY_FRAME_BYTES_MAX];
      size_t len;
      assert_int_equal(tally_frame_effect_encode(&f, buf, sizeof buf, &len), TALLY_OK);
      assert_int_equal(tally_frame_effect_decode(pdec, buf, len, &back), TALLY_OK);
      tally__effect_head h;
      assert_int_equal(tally__effect_peek(buf, len, &h), TALLY_OK);
      assert_int_equal(h.kind, back.kind);
      assert_int_equal(h.code, back.code);
      assert_int_equal(h.req_id, back.req_id);
      assert_int_equal(h.receipt_id, back.receipt_id);
      assert_int_equal(h.seq, back.seq);
      /* Cut short anywhere: never a read past the end (an exact heap copy,
       * so ASan sees one), and refused while seq is not all there. */
      for (size_t cut = 1; cut < len; cut++) {
        uint8_t *part = malloc(cut);
        memcpy(part, buf, cut);
        tally__effect_head hp;
        if (tally__effect_peek(part, cut, &hp) == TALLY_OK) assert_int_equal(hp.seq, back.seq);
        free(part);
      }
    }
  tally_frame_ack a = {.seq = 3};
  uint8_t buf[64];
  size_t len;
  assert_int_equal(tally_frame_ack_encode(&a, buf, sizeof buf, &len), TALLY_OK);
  tally__effect_head h;
  assert_int_equal(tally__effect_peek(buf, len, &h), TALLY_EFRAME); /* not an effect */
  uint64_t req = 0;
  assert_int_equal(tally__command_peek_req_id(buf, len, &req), TALLY_EFRAME);
  tally_frame_decoder_free(pdec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_effect_peek_matches_decode),
      cmocka_unit_test(test_hello_round_trip),
      cmocka_unit_test(test_hello_server_round_trip),
      cmocka_unit_test(test_presence_round_trip),
      cmocka_unit_test(test_ack_and_effect_round_trip),
      cmocka_unit_test(test_effect_seq_compat),
      cmocka_unit_test(test_effect_args_checked),
      cmocka_unit_test(test_frame_type_peek),
      cmocka_unit_test(test_negotiate),
      cmocka_unit_test(test_hello_auth),
      cmocka_unit_test(test_command_round_trip),
      cmocka_unit_test(test_stream_chunks),
      cmocka_unit_test(test_stream_cut_frame),
      cmocka_unit_test(test_stream_bad_lengths),
      cmocka_unit_test(test_stream_garbage),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
