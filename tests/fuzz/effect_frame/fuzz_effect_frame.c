/* fuzz_effect_frame.c — libFuzzer target for the effect frame decoder
 * (core/src/wire/codec.c), which hosts run on every frame the engine sends.
 *
 * Properties: tally__effect_frame_decode never crashes and answers
 * TALLY_OK or TALLY_EFRAME; a decoded frame fits the limits of
 * schemas/tally_frames_v1.h; and re-encoding it with tally__effect_encode
 * decodes to the same fields (text is never cut: it already fits). Its
 * arguments (msg, args; since 1.5) either parse against its text, every
 * span inside the text, or are refused as TALLY_EFRAME / TALLY_ETOOBIG
 * (the public decoder refuses such a frame).
 *
 * Build and run: tests/fuzz/run.sh (see docs/FUZZING.md); by hand:
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Icore/include -Icore/src/base -Icore/src/wire -Icore/src/receipts -Icore/src/model -Ischemas -Itests/fuzz \
 *     tests/fuzz/effect_frame/fuzz_effect_frame.c core/src/wire/codec.c core/src/base/say.c \
 *     -lmsgpackc -o build/fuzz/fuzz_effect_frame */
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tally__decoder fuzz_dec;

static void frame_round_trip(const tally__effect_frame *f) {
  tally_effect eff = {
      .size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = (uint32_t)f->kind,
      .code = (int32_t)f->code, .req_id = f->req_id, .receipt_id = f->receipt_id,
      .origin = f->origin, .channel = f->channel, .text = f->text, .hint = (uint32_t)f->hint,
      .msg = (uint32_t)f->msg, .args = f->args};
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  FUZZ_CHECK(tally__effect_encode(&eff, buf, sizeof buf, &len) == TALLY_OK);
  FUZZ_CHECK(len > 0 && len <= sizeof buf);
  static tally__effect_frame again;
  memset(&again, 0xa5, sizeof again);
  FUZZ_CHECK(tally__effect_frame_decode(&fuzz_dec, buf, len, &again) == TALLY_OK);
  FUZZ_CHECK(again.kind == (uint32_t)f->kind && again.code == (int32_t)f->code);
  FUZZ_CHECK(again.req_id == f->req_id && again.receipt_id == f->receipt_id);
  FUZZ_CHECK(strcmp(again.origin, f->origin) == 0);
  FUZZ_CHECK(strcmp(again.channel, f->channel) == 0);
  FUZZ_CHECK(strcmp(again.text, f->text) == 0);
  FUZZ_CHECK(again.hint == (uint32_t)f->hint && again.msg == (uint32_t)f->msg);
  FUZZ_CHECK(strcmp(again.args, f->args) == 0);
}

static void args_check(const tally__effect_frame *f) {
  FUZZ_CHECK(strlen(f->args) <= TALLY_EFFECT_ARGS_BYTES_MAX);
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  size_t n = 99;
  int rc = tally_effect_args_parse(f->text, f->args, a, TALLY_EFFECT_ARGS_MAX, &n);
  FUZZ_CHECK(rc == TALLY_OK || rc == TALLY_EFRAME || rc == TALLY_ETOOBIG);
  if (rc != TALLY_OK) return;
  size_t len = strlen(f->text);
  FUZZ_CHECK(n <= TALLY_EFFECT_ARGS_MAX);
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(a[i].kind >= TALLY_ARG_ACCOUNT && a[i].kind <= TALLY_ARG_KIND_LAST);
    FUZZ_CHECK(a[i].start <= len && a[i].len <= len - a[i].start);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    FUZZ_CHECK(tally__decoder_init(&fuzz_dec) == TALLY_OK);
    ready = 1;
  }
  static tally__effect_frame f;
  memset(&f, 0x5a, sizeof f);
  int rc = tally__effect_frame_decode(&fuzz_dec, data, size, &f);
  if (rc != TALLY_OK) {
    FUZZ_CHECK(rc == TALLY_EFRAME);
    return 0;
  }
  FUZZ_CHECK(strlen(f.origin) <= TALLY_ORIGIN_BYTES_MAX);
  FUZZ_CHECK(strlen(f.channel) <= TALLY_ROOM_BYTES_MAX);
  FUZZ_CHECK(strlen(f.text) <= TALLY_TEXT_BYTES_MAX);
  frame_round_trip(&f);
  args_check(&f);
  return 0;
}
