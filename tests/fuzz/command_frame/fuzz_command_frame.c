/* fuzz_command_frame.c — libFuzzer target for the command frame decoder
 * (core/src/wire/codec.c), the first code that touches bytes from a host.
 *
 * Properties: tally__command_frame_decode never crashes, never reads past
 * the input and answers TALLY_OK or TALLY_EFRAME; a decoded frame fits the
 * field limits of schemas/tally_frames_v1.h; and re-encoding it with
 * tally_command_encode decodes to the very same fields (the host's encoder
 * and the engine's decoder agree on everything the decoder accepts).
 *
 * Build and run: tests/fuzz/run.sh (see docs/FUZZING.md); by hand:
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Icore/include -Icore/src/base -Icore/src/wire -Icore/src/receipts -Icore/src/model -Ischemas -Itests/fuzz \
 *     tests/fuzz/command_frame/fuzz_command_frame.c core/src/wire/codec.c \
 *     -lmsgpackc -o build/fuzz/fuzz_command_frame */
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tally__decoder fuzz_dec; /* one per process, like the engine's */

static void frame_check_limits(const tally__command_frame *f) {
  FUZZ_CHECK(strlen(f->origin) <= TALLY_ORIGIN_BYTES_MAX);
  FUZZ_CHECK(strlen(f->account) <= TALLY_IDENTITY_BYTES_MAX);
  FUZZ_CHECK(strlen(f->nick) <= TALLY_NICK_BYTES_MAX);
  FUZZ_CHECK(strlen(f->channel) <= TALLY_ROOM_BYTES_MAX);
  FUZZ_CHECK(strlen(f->msg_id) <= TALLY_MSG_ID_BYTES_MAX);
  FUZZ_CHECK(strlen(f->text) <= TALLY_TEXT_BYTES_MAX);
}

static void frame_round_trip(const tally__command_frame *f) {
  tally_command cmd = {
      .size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .req_id = f->req_id,
      .origin = f->origin, .account = f->account, .nick = f->nick,
      .channel = f->channel, .msg_id = f->msg_id, .text = f->text,
      .roles = (uint32_t)f->roles};
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len = 0;
  int rc = tally_command_encode(&cmd, buf, sizeof buf, &len);
  FUZZ_CHECK(rc == TALLY_OK && len > 0 && len <= sizeof buf);

  static tally__command_frame again; /* static: ~900 bytes, keep the stack small */
  memset(&again, 0xa5, sizeof again);
  FUZZ_CHECK(tally__command_frame_decode(&fuzz_dec, buf, len, &again) == TALLY_OK);
  FUZZ_CHECK(again.req_id == f->req_id);
  /* roles travels as u64 but tally_command holds 32 bits: the engine must
   * not rely on the high bits, and they are lost by design. */
  FUZZ_CHECK(again.roles == (uint32_t)f->roles);
  FUZZ_CHECK(strcmp(again.origin, f->origin) == 0);
  FUZZ_CHECK(strcmp(again.account, f->account) == 0);
  FUZZ_CHECK(strcmp(again.nick, f->nick) == 0);
  FUZZ_CHECK(strcmp(again.channel, f->channel) == 0);
  FUZZ_CHECK(strcmp(again.msg_id, f->msg_id) == 0);
  FUZZ_CHECK(strcmp(again.text, f->text) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    FUZZ_CHECK(tally__decoder_init(&fuzz_dec) == TALLY_OK);
    ready = 1;
  }
  static tally__command_frame f;
  memset(&f, 0x5a, sizeof f); /* garbage, so a field left unset shows */
  int rc = tally__command_frame_decode(&fuzz_dec, data, size, &f);
  if (rc != TALLY_OK) {
    FUZZ_CHECK(rc == TALLY_EFRAME);
    return 0;
  }
  FUZZ_CHECK(size <= TALLY_FRAME_BYTES_MAX);
  frame_check_limits(&f);
  frame_round_trip(&f);
  return 0;
}
