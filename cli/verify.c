/* verify.c — `tally verify` and `tally receipt`: build a receipt's proof
 * from the ledger, or check a receipt token offline. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "receipt.h"
#include "receipt_pg.h"

static int hex_decode(const char *hex, uint8_t out[32]) {
  if (!hex || strlen(hex) != 64) return -1;
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

static void print_proof(const tally__receipt_proof *p) {
  static const char *kinds[] = {"?", "purchase", "tip", "refund", "grant"};
  printf("receipt %llu: %s by %s", (unsigned long long)p->transfer_id, kinds[p->kind <= 4 ? p->kind : 0],
         p->account);
  if (p->sku[0]) printf(", %ux %s", p->qty, p->sku);
  if (p->counterparty[0]) printf(", to %s", p->counterparty);
  printf(", amount %lld (minor units), batch %llu (leaf %u of %u), key %s\n", (long long)p->amount_minor,
         (unsigned long long)p->batch_id, p->leaf_index + 1, p->leaf_count, p->key_id);
}

int cli_receipt(PGconn *c, const char *id) {
  tally__receipt_proof p;
  char err[TALLY_ERRBUF_BYTES] = "", token[TALLY_RECEIPT_TOKEN_BYTES_MAX + 1];
  size_t len;
  if (tally__receipt_pg_load(c, strtoull(id, NULL, 10), &p, err, sizeof err) ||
      tally__receipt_token_encode(&p, token, sizeof token, &len)) {
    fprintf(stderr, "tally receipt: %s\n", err[0] ? err : "cannot encode");
    return 1;
  }
  printf("%s\n", token);
  return 0;
}

/* what: a receipt id (looked up in the ledger) or a token (checked offline). */
int cli_verify(PGconn *c, const cli_opts *o, const char *what) {
  tally__receipt_proof p;
  char err[TALLY_ERRBUF_BYTES] = "";
  bool is_token = strncmp(what, "tr1.", 4) == 0;
  int rc = is_token ? tally__receipt_token_decode(what, strlen(what), &p)
                    : tally__receipt_pg_load(c, strtoull(what, NULL, 10), &p, err, sizeof err);
  if (rc) {
    fprintf(stderr, "tally verify: %s\n", err[0] ? err : tally_strerror(rc));
    return 1;
  }
  uint8_t pub[32];
  if (o->pubkey_hex) rc = hex_decode(o->pubkey_hex, pub) ? TALLY_EINVAL : TALLY_OK;
  else if (c) rc = tally__receipt_pg_public_key(c, p.key_id, pub);
  else rc = TALLY_EINVAL;
  if (rc) {
    fprintf(stderr, "tally verify: no public key for key id %s (give --pubkey HEX or --dsn)\n", p.key_id);
    return 1;
  }
  print_proof(&p);
  rc = tally__receipt_proof_verify(&p, pub);
  printf("%s\n", rc ? "INVALID: the proof does not verify" : "VALID: signed by the key, included in its batch");
  return rc ? 1 : 0;
}
