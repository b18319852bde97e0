/* fuzz_receipt.c — libFuzzer target for receipt tokens: decode anything,
 * and verify whatever decodes against a fixed key. Decoding must never
 * crash, hang or allocate without bound; a decoded token must re-encode to
 * the same bytes; verification must answer OK or EBADSIG.
 *
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -Icore/include \
 *     -Icore/src/base -Icore/src/wire -Icore/src/receipts -Icore/src/model tests/fuzz/receipt/fuzz_receipt.c core/src/receipts/receipt.c \
 *     core/src/receipts/merkle.c core/src/receipts/signer.c -lmsgpackc -lcrypto -o fuzz_receipt
 *   mkdir -p /tmp/rcorpus && ./fuzz_receipt -max_total_time=60 /tmp/rcorpus \
 *     tests/fuzz/receipt/corpus   (new inputs go to the first folder) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fuzz_key.h"
#include "receipt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fuzz_pub[TALLY_PUBKEY_BYTES];

static void fuzz_init(void) {
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
                                             fuzz_key_seed, sizeof fuzz_key_seed);
  size_t len = sizeof fuzz_pub;
  if (!k || EVP_PKEY_get_raw_public_key(k, fuzz_pub, &len) != 1) abort();
  EVP_PKEY_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    fuzz_init();
    ready = 1;
  }
  tally__receipt_proof p;
  int rc = tally__receipt_token_decode((const char *)data, size, &p);
  if (rc != TALLY_OK) {
    if (rc != TALLY_EFRAME) abort();
    return 0;
  }
  char again[TALLY_RECEIPT_TOKEN_BYTES_MAX + 1];
  size_t len = 0;
  if (tally__receipt_token_encode(&p, again, sizeof again, &len) != TALLY_OK ||
      len != size || memcmp(again, data, size) != 0) {
    abort(); /* one proof, one token */
  }
  rc = tally__receipt_proof_verify(&p, fuzz_pub);
  if (rc != TALLY_OK && rc != TALLY_EBADSIG) abort();
  return 0;
}
