/* make_corpus.c — writes the committed seed corpus of fuzz_receipt: valid
 * tokens signed with fuzz_key.h's key (one per transfer kind and tree
 * shape) and a few invalid ones. Rerun after a format change:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -Icore/include -Icore/src/base -Icore/src/wire -Icore/src/receipts -Icore/src/model \
 *     tests/fuzz/receipt/make_corpus.c core/src/receipts/receipt.c core/src/receipts/merkle.c \
 *     core/src/receipts/signer.c -lmsgpackc -lcrypto -o /tmp/make_corpus &&
 *   /tmp/make_corpus tests/fuzz/receipt/corpus */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fuzz_key.h"
#include "receipt.h"

enum { CORPUS_BATCH = 5 };

static void corpus_write(const char *dir, const char *name, const char *data,
                         size_t len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static void corpus_sign(const uint8_t root[32], uint64_t batch_id,
                        uint32_t count, uint8_t sig[64]) {
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
                                             fuzz_key_seed, 32);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  uint8_t msg[TALLY_BATCH_MSG_BYTES];
  size_t sig_len = 64;
  tally__batch_message(batch_id, count, root, msg);
  if (!k || !ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
      EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof msg) != 1) {
    exit(1);
  }
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(k);
}

/* One signed batch of CORPUS_BATCH receipts of leaf version `version`
 * (2: they name a network and identity), written as <prefix>0.. */
static int corpus_batch(const char *dir, uint32_t version, const char *prefix);

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  if (corpus_batch(argv[1], 1, "valid-") || corpus_batch(argv[1], 2, "valid-v2-")) return 1;
  corpus_write(argv[1], "bad-empty-array", "tr1.kA", 6);
  corpus_write(argv[1], "bad-array32-bomb", "tr1.3f____8", 11);
  corpus_write(argv[1], "bad-prefix", "tr3.kA", 6);
  return 0;
}

static int corpus_batch(const char *dir, uint32_t version, const char *prefix) {
  static const char *const skus[CORPUS_BATCH] = {"mug", "", "", "", "poster-xl"};
  tally__receipt_fields f[CORPUS_BATCH];
  uint8_t leaves[CORPUS_BATCH][32], scratch[CORPUS_BATCH][32], root[32], sig[64];
  for (int i = 0; i < CORPUS_BATCH; i++) {
    f[i] = (tally__receipt_fields){
        .transfer_id = 8192 + (uint64_t)i, .batch_id = 3,
        .kind = 1 + (uint32_t)i % 4, .qty = i % 4 == 0 ? 2 : 0,
        .amount_minor = 250 * (i + 1), .ref_transfer = i % 4 == 2 ? 8192 : 0,
        .created_ms = 1700000000000 + i, .account = "user:alice",
        .counterparty = i % 4 == 1 ? "user:streamer" : "", .sku = skus[i],
        .serial = i == 4 ? 17 : 0, .version = version, .network = i % 2 ? "matrix" : "irc",
        .identity = i == 2 ? "" : "@alice:example.org", .reward = i == 3 ? 5 : 0};
    tally__receipt_leaf(&f[i], leaves[i]);
  }
  tally__merkle_root((const uint8_t (*)[32])leaves, CORPUS_BATCH, scratch, root);
  corpus_sign(root, 3, CORPUS_BATCH, sig);
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, fuzz_key_seed, 32);
  uint8_t pub[32];
  size_t pub_len = 32;
  if (!k || EVP_PKEY_get_raw_public_key(k, pub, &pub_len) != 1) return 1;
  EVP_PKEY_free(k);
  char tok[TALLY_RECEIPT_TOKEN_BYTES_MAX + 1], name[32];
  size_t len = 0;
  for (int i = 0; i < CORPUS_BATCH; i++) {
    tally__receipt_proof p;
    memset(&p, 0, sizeof p);
    size_t path_len = 0;
    if (tally__receipt_proof_set_fields(&p, &f[i]) != TALLY_OK ||
        tally__merkle_path((const uint8_t (*)[32])leaves, CORPUS_BATCH, (size_t)i,
                           p.path, TALLY_MERKLE_DEPTH_MAX, &path_len) != TALLY_OK) {
      return 1;
    }
    p.path_len = (uint32_t)path_len;
    p.leaf_index = (uint32_t)i;
    p.leaf_count = CORPUS_BATCH;
    memcpy(p.root, root, 32);
    memcpy(p.sig, sig, 64);
    tally__key_id(pub, p.key_id);
    if (tally__receipt_proof_verify(&p, pub) != TALLY_OK ||
        tally__receipt_token_encode(&p, tok, sizeof tok, &len) != TALLY_OK) {
      return 1;
    }
    snprintf(name, sizeof name, "%s%d", prefix, i);
    corpus_write(dir, name, tok, len);
    if (i == 0 && version == 1) { /* invalid relatives of the first token */
      corpus_write(dir, "bad-truncated", tok, len / 2);
      tok[len - 3] = tok[len - 3] == 'A' ? 'B' : 'A';
      corpus_write(dir, "bad-flipped", tok, len);
      tok[len - 3] = '=';
      corpus_write(dir, "bad-char", tok, len);
    }
    if (i == 1 && version == 2) { /* a v2 body under the v1 prefix */
      tok[2] = '1';
      corpus_write(dir, "bad-v2-as-v1", tok, len);
    }
  }
  return 0;
}
