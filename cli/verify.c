/* verify.c — `tally verify` and `tally receipt`: build a receipt's proof
 * from the ledger, or check a receipt token offline. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tally/admin.h"

static int hex_decode(const char *hex, uint8_t out[32]) {
  if (!hex || strlen(hex) != 64) return -1;
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

static void print_proof(const tally_admin_receipt *r) {
  static const char *kinds[] = {"?", "purchase", "tip", "refund", "grant", "link", "free unit (reward)"};
  tally_admin_receipt_info info, *p = &info;
  tally_admin_receipt_info_get(r, &info);
  printf("receipt %llu: %s by %s", (unsigned long long)p->transfer_id, kinds[p->kind <= 6 ? p->kind : 0],
         p->account);
  if (p->sku[0]) printf(", %ux %s", p->qty, p->sku);
  if (p->counterparty[0]) printf(", to %s", p->counterparty);
  printf(", amount %lld (minor units), batch %llu (leaf %u of %u), key %s\n", (long long)p->amount_minor,
         (unsigned long long)p->batch_id, p->leaf_index + 1, p->leaf_count, p->key_id);
}

int cli_receipt(PGconn *c, const char *id) {
  tally_admin_receipt *r = NULL;
  char err[TALLY_ERRBUF_BYTES] = "", token[TALLY_ADMIN_RECEIPT_TOKEN_BYTES_MAX + 1];
  size_t len;
  if (tally_admin_receipt_load(c, strtoull(id, NULL, 10), &r, err, sizeof err) ||
      tally_admin_receipt_token(r, token, sizeof token, &len)) {
    fprintf(stderr, "tally receipt: %s\n", err[0] ? err : "cannot encode");
    tally_admin_receipt_free(r);
    return 1;
  }
  tally_admin_receipt_free(r);
  printf("%s\n", token);
  return 0;
}

bool cli_is_token(const char *s) {
  return s[0] == 't' && s[1] == 'r' && s[2] >= '1' && s[2] <= '9' && s[3] == '.';
}

/* what: a receipt id (looked up in the ledger) or a token (checked offline). */
int cli_verify(PGconn *c, const cli_opts *o, const char *what) {
  tally_admin_receipt *p = NULL;
  char err[TALLY_ERRBUF_BYTES] = "";
  bool is_token = cli_is_token(what);
  int rc = is_token ? tally_admin_receipt_decode(what, strlen(what), &p)
                    : tally_admin_receipt_load(c, strtoull(what, NULL, 10), &p, err, sizeof err);
  if (rc) {
    fprintf(stderr, "tally verify: %s\n", err[0] ? err : tally_strerror(rc));
    return 1;
  }
  uint8_t pub[TALLY_ADMIN_PUBKEY_BYTES];
  if (o->pubkey_hex) rc = hex_decode(o->pubkey_hex, pub) ? TALLY_EINVAL : TALLY_OK;
  else if (c) rc = tally_admin_receipt_public_key(c, p, pub);
  else rc = TALLY_EINVAL;
  if (rc) {
    tally_admin_receipt_info info;
    tally_admin_receipt_info_get(p, &info);
    fprintf(stderr, "tally verify: no public key for key id %s (give --pubkey HEX or --dsn)\n", info.key_id);
    tally_admin_receipt_free(p);
    return 1;
  }
  print_proof(p);
  rc = tally_admin_receipt_verify(p, pub);
  tally_admin_receipt_free(p);
  printf("%s\n", rc ? "INVALID: the proof does not verify" : "VALID: signed by the key, included in its batch");
  return rc ? 1 : 0;
}
