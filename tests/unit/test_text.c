/* test_text.c — what users type: UTF-8 and control checks, tokens, amounts
 * (exact, overflow-checked, no signs/exponents/unicode digits), fee maths,
 * and the frame codec's refusal of malformed frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "text.h"

static int64_t amount(const char *s, uint32_t decimals) {
  int64_t v = -1;
  int rc = tally__amount_parse(s, strlen(s), decimals, &v);
  return rc ? rc : v;
}

static void test_amounts(void **state) {
  (void)state;
  assert_int_equal(amount("5", 2), 500);
  assert_int_equal(amount("5.2", 2), 520);
  assert_int_equal(amount("5.25", 2), 525);
  assert_int_equal(amount("0.01", 2), 1);
  assert_int_equal(amount("7", 0), 7);
  assert_int_equal(amount("0", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("0.00", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("-5", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("+5", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("1e3", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("5.255", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount(".5", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("5.", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("1.2.3", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("", 2), TALLY_EBAD_AMOUNT);
  assert_int_equal(amount("\xd9\xa5", 2), TALLY_EBAD_AMOUNT); /* Arabic-Indic five */
  assert_int_equal(amount("99999999999999999", 2), TALLY_EOVERFLOW);
  assert_int_equal(amount("9999999999999999999", 0), TALLY_EOVERFLOW);
  assert_int_equal(amount("99999999999999999999", 0), TALLY_EOVERFLOW);
  assert_int_equal(amount("000000000000000000001", 0), TALLY_EBAD_AMOUNT); /* 21 digits */
  /* What format prints, parse takes back (the fuzzer's finding). */
  assert_int_equal(amount("9223336847580.000000", 6), 9223336847580000000LL);
  char out[32];
  tally__amount_format(525, 2, out, sizeof out);
  assert_string_equal(out, "5.25");
  tally__amount_format(-1, 2, out, sizeof out);
  assert_string_equal(out, "-0.01");
  assert_int_equal(tally__bps_of(1000, 250), 25);
  assert_int_equal(tally__bps_of(INT64_MAX, 10000), INT64_MAX);
  assert_int_equal(tally__bps_of(39, 250), 0);
}

static void test_text_check(void **state) {
  (void)state;
  assert_int_equal(tally__text_check("BUY tee", 7), TALLY_OK);
  assert_int_equal(tally__text_check("TIP b\xc3\xa9", 7), TALLY_OK);
  assert_int_equal(tally__text_check("\xc3\x28", 2), TALLY_EBAD_UTF8);
  assert_int_equal(tally__text_check("\xc0\xaf", 2), TALLY_EBAD_UTF8);         /* overlong */
  assert_int_equal(tally__text_check("\xed\xa0\x80", 3), TALLY_EBAD_UTF8);     /* surrogate */
  assert_int_equal(tally__text_check("\xf4\x90\x80\x80", 4), TALLY_EBAD_UTF8); /* > U+10FFFF */
  assert_int_equal(tally__text_check("\xe2\x82", 2), TALLY_EBAD_UTF8);         /* truncated */
  assert_int_equal(tally__text_check("a\x01" "b", 3), TALLY_EBAD_SYNTAX);     /* CTCP */
  assert_int_equal(tally__text_check("a\rb", 3), TALLY_EBAD_SYNTAX);
  assert_int_equal(tally__text_check("a\0b", 3), TALLY_EBAD_SYNTAX);
  tally__tokens t;
  assert_int_equal(tally__tokenize("  BUY   tee  2 ", &t), TALLY_OK);
  assert_int_equal(t.count, 3);
  assert_true(tally__word_is(&t, 0, "buy"));
  assert_string_equal(t.rest[1], "tee  2 ");
  assert_int_equal(tally__tokenize("a b c d e f g h i j k l m n o p q", &t), TALLY_ETOO_MANY);
}

/* Clipping keeps whole UTF-8 characters (issue 9, #3). */
static void test_text_clip(void **state) {
  (void)state;
  char dst[6];
  /* "aé€😀" = 1 + 2 + 3 + 4 bytes: every cut lands on a boundary or before. */
  const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  for (size_t cap = 1; cap <= sizeof dst; cap++) {
    size_t n = tally__text_clip(dst, cap, s);
    assert_true(n < cap);
    assert_int_equal(strlen(dst), n);
    assert_int_equal(tally__text_check(dst, n), TALLY_OK);
  }
  assert_int_equal(tally__text_clip(dst, 3, s), 1);  /* "a" + half of é -> "a" */
  assert_int_equal(tally__text_clip(dst, 4, s), 3);  /* "aé" */
  assert_int_equal(tally__text_clip(dst, 6, s), 3);  /* € needs 3 more */
  assert_int_equal(tally__text_clip(dst, 6, "abcdefgh"), 5);
  assert_int_equal(tally__text_clip(dst, 6, NULL), 0);
  char big[16];
  assert_int_equal(tally__text_clip(big, sizeof big, s), 10); /* fits whole */
  assert_string_equal(big, s);
  char tail[8] = "ab\xf0\x9f\x98";
  assert_int_equal(tally__text_trim_tail(tail, 5), 2);
  assert_string_equal(tail, "ab");
}

static void test_codec_round_trip_and_refusals(void **state) {
  (void)state;
  tally__decoder dec;
  assert_int_equal(tally__decoder_init(&dec), TALLY_OK);
  tally_command cmd = {.size = sizeof cmd, .version = 1, .req_id = 42, .origin = "u1", .account = "bob",
                       .nick = "b", .channel = "#live", .msg_id = "m1", .text = "BUY tee", .roles = 1};
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  assert_int_equal(tally_command_encode(&cmd, buf, sizeof buf, &len), TALLY_OK);
  tally__command_frame f;
  assert_int_equal(tally__command_frame_decode(&dec, buf, len, &f), TALLY_OK);
  assert_int_equal(f.req_id, 42);
  assert_string_equal(f.text, "BUY tee");
  assert_string_equal(f.channel, "#live");
  for (size_t cut = 0; cut < len; cut++)
    assert_int_equal(tally__command_frame_decode(&dec, buf, cut, &f), TALLY_EFRAME);
  buf[len] = 0xc0; /* trailing byte */
  assert_int_equal(tally__command_frame_decode(&dec, buf, len + 1, &f), TALLY_EFRAME);
  uint8_t wrong_type[] = {0x92, 0x01, 0x02};
  assert_int_equal(tally__command_frame_decode(&dec, wrong_type, sizeof wrong_type, &f), TALLY_EFRAME);
  char big[TALLY_TEXT_BYTES_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  cmd.text = big;
  assert_int_equal(tally_command_encode(&cmd, buf, sizeof buf, &len), TALLY_ETOOBIG);
  tally__decoder_free(&dec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_amounts),
      cmocka_unit_test(test_text_check),
      cmocka_unit_test(test_text_clip),
      cmocka_unit_test(test_codec_round_trip_and_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
