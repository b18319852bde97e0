/* test_receipt.c — the batch signer, receipt leaves and tokens (Merkle trees: test_merkle.c).
 *
 * Reference values are computed here independently of the library:
 * hand-built canonical leaf bytes, and a token body packed with msgpack-c's
 * own sbuffer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <openssl/sha.h>

#include "merkle.h"
#include "receipt.h"
#include "signer.h"

#include "ref_sha.h"

enum { TEST_BATCH = 7 };

/* ---- signer --------------------------------------------------------------- */

typedef struct fixture {
  char dir[64];
  char key[128];
} fixture;

static int fixture_setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/tally-receipt-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->key, sizeof f->key, "%s/batch.pem", f->dir);
  *state = f;
  return 0;
}

static int fixture_teardown(void **state) {
  fixture *f = *state;
  DIR *d = opendir(f->dir);
  struct dirent *e;
  char p[512];
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(f->dir);
  free(f);
  return 0;
}

static tally__signer *open_signer(const char *path) {
  tally__signer *s = NULL;
  char err[TALLY_ERRBUF_BYTES] = "";
  int rc = tally__signer_open(path, &s, err, sizeof err);
  if (rc != TALLY_OK) fail_msg("signer_open %s: %d %s", path, rc, err);
  return s;
}

static void test_signer_create_reload(void **state) {
  fixture *f = *state;
  tally__signer *s = open_signer(f->key);
  struct stat st;
  assert_int_equal(stat(f->key, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  uint8_t pub[32], pub2[32], h[32];
  tally__signer_public(s, pub);
  char id[17];
  snprintf(id, sizeof id, "%s", tally__signer_key_id(s));
  sha(pub, 32, NULL, 0, h);
  char want_id[17];
  for (int i = 0; i < 8; i++) snprintf(want_id + 2 * i, 3, "%02x", h[i]);
  assert_string_equal(id, want_id);
  char pub_path[160], line[128] = "", want_line[80];
  snprintf(pub_path, sizeof pub_path, "%s.pub", f->key);
  FILE *pf = fopen(pub_path, "r");
  assert_non_null(pf);
  assert_non_null(fgets(line, sizeof line, pf));
  fclose(pf);
  for (int i = 0; i < 32; i++) snprintf(want_line + 2 * i, 3, "%02x", pub[i]);
  strcat(want_line, "\n");
  assert_string_equal(line, want_line);
  tally__signer_close(s);
  s = open_signer(f->key); /* reload: same key, file untouched */
  tally__signer_public(s, pub2);
  assert_memory_equal(pub, pub2, 32);
  assert_string_equal(tally__signer_key_id(s), id);
  assert_int_equal(stat(f->key, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  tally__signer_close(s);
}

static void test_signer_sign_verify(void **state) {
  fixture *f = *state;
  tally__signer *s = open_signer(f->key);
  char other_path[160];
  snprintf(other_path, sizeof other_path, "%s/other.pem", f->dir);
  tally__signer *o = open_signer(other_path);
  uint8_t pub[32], opub[32], root[32], sig[64], sig2[64];
  tally__signer_public(s, pub);
  tally__signer_public(o, opub);
  assert_memory_not_equal(pub, opub, 32);
  assert_string_not_equal(tally__signer_key_id(s), tally__signer_key_id(o));
  leaf_of("r", 1, root);
  assert_int_equal(tally__signer_sign_batch(s, 42, 9, root, sig), TALLY_OK);
  assert_int_equal(tally__batch_sig_verify(pub, 42, 9, root, sig), TALLY_OK);
  assert_int_equal(tally__signer_sign_batch(s, 42, 9, root, sig2), TALLY_OK);
  assert_memory_equal(sig, sig2, 64); /* Ed25519 is deterministic */
  assert_int_equal(tally__batch_sig_verify(opub, 42, 9, root, sig), TALLY_EBADSIG);
  assert_int_equal(tally__batch_sig_verify(pub, 43, 9, root, sig), TALLY_EBADSIG);
  assert_int_equal(tally__batch_sig_verify(pub, 42, 8, root, sig), TALLY_EBADSIG);
  root[5] ^= 1;
  assert_int_equal(tally__batch_sig_verify(pub, 42, 9, root, sig), TALLY_EBADSIG);
  root[5] ^= 1;
  sig[63] ^= 0x10;
  assert_int_equal(tally__batch_sig_verify(pub, 42, 9, root, sig), TALLY_EBADSIG);
  /* The signed bytes are exactly the documented layout. */
  uint8_t msg[TALLY_BATCH_MSG_BYTES], want[TALLY_BATCH_MSG_BYTES];
  tally__batch_message(0x0102030405060708ull, 0x0a0b0c0du, root, msg);
  memcpy(want, "tally-batch-v1", 14);
  memcpy(want + 14, "\x01\x02\x03\x04\x05\x06\x07\x08\x0a\x0b\x0c\x0d", 12);
  memcpy(want + 26, root, 32);
  assert_memory_equal(msg, want, sizeof want);
  tally__signer_close(o);
  tally__signer_close(s);
}

static void test_signer_rejects_bad_files(void **state) {
  fixture *f = *state;
  FILE *k = fopen(f->key, "w");
  assert_non_null(k);
  fputs("not a key\n", k);
  fclose(k);
  assert_int_equal(chmod(f->key, 0600), 0);
  tally__signer *s = (tally__signer *)1;
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally__signer_open(f->key, &s, err, sizeof err), TALLY_ECRYPTO);
  assert_null(s);
  assert_true(strlen(err) > 0);
  char missing[160];
  snprintf(missing, sizeof missing, "%s/no/such/dir/key.pem", f->dir);
  assert_int_equal(tally__signer_open(missing, &s, err, sizeof err), TALLY_EIO);
}

/* Issue 9 #19: a private key that group or others may read is refused,
 * naming the file and the fix, and loads again once it is 0600. */
static void test_signer_refuses_a_key_open_to_others(void **state) {
  fixture *f = *state;
  tally__signer *s = open_signer(f->key); /* created 0600 */
  tally__signer_close(s);
  static const mode_t modes[] = {0644, 0640, 0604, 0620, 0602, 0660};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    assert_int_equal(chmod(f->key, modes[i]), 0);
    char err[TALLY_ERRBUF_BYTES] = "";
    s = (tally__signer *)1;
    assert_int_equal(tally__signer_open(f->key, &s, err, sizeof err), TALLY_ECONFIG);
    assert_null(s);
    assert_non_null(strstr(err, f->key));
    assert_non_null(strstr(err, "chmod 600"));
  }
  assert_int_equal(chmod(f->key, 0400), 0); /* owner-only read is fine */
  tally__signer_close(open_signer(f->key));
  assert_int_equal(chmod(f->key, 0600), 0);
  tally__signer_close(open_signer(f->key));
}

static void write_text(const char *path, const char *text) {
  FILE *p = fopen(path, "w");
  assert_non_null(p);
  fputs(text, p);
  fclose(p);
}

/* Issue 9 #19: an existing .pub that is not the key's public key is
 * refused (not trusted, not silently rewritten); deleting it writes the
 * right one again. */
static void test_signer_refuses_a_pub_of_another_key(void **state) {
  fixture *f = *state;
  tally__signer *s = open_signer(f->key);
  uint8_t pub[32];
  tally__signer_public(s, pub);
  tally__signer_close(s);
  char pub_path[300], right[80], text[160];
  snprintf(pub_path, sizeof pub_path, "%s.pub", f->key);
  for (int i = 0; i < 32; i++) snprintf(right + 2 * i, 3, "%02x", pub[i]);
  snprintf(text, sizeof text, "%s\n", right);
  char other[80];
  snprintf(other, sizeof other, "%s", right);
  other[0] = other[0] == '0' ? '1' : '0';
  /* another key, empty, trailing junk, one hex digit short */
  char wrong[4][200];
  snprintf(wrong[0], sizeof wrong[0], "%s\n", other);
  snprintf(wrong[1], sizeof wrong[1], "%s", "");
  snprintf(wrong[2], sizeof wrong[2], "%s\nextra\n", right);
  snprintf(wrong[3], sizeof wrong[3], "%.63s\n", right);
  for (int i = 0; i < 4; i++) {
    write_text(pub_path, wrong[i]);
    char err[TALLY_ERRBUF_BYTES] = "";
    s = (tally__signer *)1;
    assert_int_equal(tally__signer_open(f->key, &s, err, sizeof err), TALLY_ECONFIG);
    assert_null(s);
    assert_non_null(strstr(err, pub_path));
    FILE *p = fopen(pub_path, "r");
    char got[200] = "";
    assert_non_null(p);
    size_t n = fread(got, 1, sizeof got - 1, p);
    fclose(p);
    got[n] = 0;
    assert_string_equal(got, wrong[i]); /* left as it was */
  }
  write_text(pub_path, right); /* the right key without its newline is accepted */
  tally__signer_close(open_signer(f->key));
  assert_int_equal(unlink(pub_path), 0);
  tally__signer_close(open_signer(f->key));
  FILE *p = fopen(pub_path, "r");
  char got[200] = "";
  assert_non_null(p);
  size_t n = fread(got, 1, sizeof got - 1, p);
  fclose(p);
  got[n] = 0;
  assert_string_equal(got, text);
}

/* ---- leaves ---------------------------------------------------------------- */

static tally__receipt_fields sample_fields(uint64_t id) {
  return (tally__receipt_fields){.transfer_id = id, .batch_id = 77, .kind = 1,
                                 .qty = 2, .amount_minor = 1500,
                                 .ref_transfer = 0, .created_ms = 1700000000123,
                                 .account = "user:alice", .counterparty = "",
                                 .sku = "mug-blue", .serial = 0};
}

static void test_receipt_leaf_canonical(void **state) {
  (void)state;
  tally__receipt_fields f = sample_fields(0x1122334455667788ull);
  f.amount_minor = -2; /* two's complement, big-endian */
  f.serial = 0xdeadbeef;
  static const uint8_t want_bytes[] =
      "tally-receipt-v1"
      "\x11\x22\x33\x44\x55\x66\x77\x88" "\x00\x00\x00\x00\x00\x00\x00\x4d"
      "\x00\x00\x00\x01" "\x00\x00\x00\x02"
      "\xff\xff\xff\xff\xff\xff\xff\xfe" "\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x01\x8b\xcf\xe5\x68\x7b"
      "\x00\x0a" "user:alice" "\x00\x00" "\x00\x08" "mug-blue"
      "\xde\xad\xbe\xef";
  uint8_t want[32], got[32];
  leaf_of(want_bytes, sizeof want_bytes - 1, want);
  tally__receipt_leaf(&f, got);
  assert_memory_equal(got, want, 32);
  /* Every field is committed to. */
  tally__receipt_fields g;
  uint8_t other[32];
  for (int i = 0; i < 11; i++) {
    g = f;
    switch (i) {
    case 0: g.transfer_id++; break;
    case 1: g.batch_id++; break;
    case 2: g.kind = 3; break;
    case 3: g.qty = 3; break;
    case 4: g.amount_minor = 2; break;
    case 5: g.ref_transfer = 1; break;
    case 6: g.created_ms++; break;
    case 7: g.account = "user:alicf"; break;
    case 8: g.counterparty = "user:bob"; break;
    case 9: g.sku = "mug-blu"; break;
    default: g.serial = 1; break;
    }
    tally__receipt_leaf(&g, other);
    assert_memory_not_equal(other, got, 32);
  }
  /* Length prefixes keep field boundaries: "ab"+"" differs from "a"+"b". */
  g = f;
  g.account = "ab";
  g.counterparty = "";
  tally__receipt_leaf(&g, got);
  g.account = "a";
  g.counterparty = "b";
  tally__receipt_leaf(&g, other);
  assert_memory_not_equal(other, got, 32);
}

/* ---- tokens ---------------------------------------------------------------- */

typedef struct batch_fixture {
  tally__signer *signer;
  uint8_t pub[32];
  tally__receipt_proof proofs[TEST_BATCH];
} batch_fixture;

/* The leaf version make_batch signs (2: the network and identity named). */
static uint32_t batch_version = 1;

/* A signed batch of TEST_BATCH transfers with a proof for each. */
static void make_batch(const char *key_path, batch_fixture *b) {
  b->signer = open_signer(key_path);
  tally__signer_public(b->signer, b->pub);
  uint8_t leaves[TEST_BATCH][32], scratch[TEST_BATCH][32], root[32], sig[64];
  static const char *const accounts[TEST_BATCH] = {
      "user:alice", "user:bob", "user:ca\xc3\xa9", "user:d", "user:e",
      "user:fffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      "user:g"};
  for (int i = 0; i < TEST_BATCH; i++) {
    tally__receipt_fields f = sample_fields(4096 + (uint64_t)i);
    f.account = accounts[i];
    f.kind = 1 + (uint32_t)i % 4;
    f.counterparty = f.kind == 2 ? "user:streamer" : "";
    f.ref_transfer = f.kind == 3 ? 4096 : 0;
    f.amount_minor = (int64_t)1 << (i * 9);
    f.created_ms = i == 4 ? -5 : f.created_ms;
    f.version = batch_version;
    f.network = i % 2 ? "matrix" : "irc";
    f.identity = i == 3 ? "" : accounts[i] + 5;
    f.reward = (uint64_t)i << 40;
    memset(&b->proofs[i], 0, sizeof b->proofs[i]);
    assert_int_equal(tally__receipt_proof_set_fields(&b->proofs[i], &f), TALLY_OK);
    tally__receipt_leaf(&f, leaves[i]);
  }
  tally__merkle_root((const uint8_t (*)[32])leaves, TEST_BATCH, scratch, root);
  assert_int_equal(tally__signer_sign_batch(b->signer, 77, TEST_BATCH, root, sig),
                   TALLY_OK);
  for (int i = 0; i < TEST_BATCH; i++) {
    tally__receipt_proof *p = &b->proofs[i];
    size_t len = 0;
    assert_int_equal(tally__merkle_path((const uint8_t (*)[32])leaves, TEST_BATCH,
                                        (size_t)i, p->path,
                                        TALLY_MERKLE_DEPTH_MAX, &len),
                     TALLY_OK);
    p->path_len = (uint32_t)len;
    p->leaf_index = (uint32_t)i;
    p->leaf_count = TEST_BATCH;
    memcpy(p->root, root, 32);
    memcpy(p->sig, sig, 64);
    snprintf(p->key_id, sizeof p->key_id, "%s", tally__signer_key_id(b->signer));
  }
}

static void test_token_round_trip(void **state) {
  fixture *f = *state;
  batch_fixture b;
  make_batch(f->key, &b);
  for (int i = 0; i < TEST_BATCH; i++) {
    char tok[TALLY_RECEIPT_TOKEN_BYTES_MAX + 1];
    size_t len = 0;
    assert_int_equal(tally__receipt_token_encode(&b.proofs[i], tok, sizeof tok, &len),
                     TALLY_OK);
    assert_int_equal(strlen(tok), len);
    assert_memory_equal(tok, "tr1.", 4);
    assert_int_equal(strspn(tok + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                     "qrstuvwxyz0123456789-_"),
                     len - 4);
    tally__receipt_proof back;
    assert_int_equal(tally__receipt_token_decode(tok, len, &back), TALLY_OK);
    assert_memory_equal(&back, &b.proofs[i], sizeof back);
    assert_int_equal(tally__receipt_proof_verify(&back, b.pub), TALLY_OK);
    /* Too small a buffer is refused, never overrun. */
    assert_int_equal(tally__receipt_token_encode(&b.proofs[i], tok, len, &len),
                     TALLY_ETOOBIG);
  }
  tally__signer_close(b.signer);
}

/* Version 2 (sql/011): "tally-receipt-v2" names the network and identity
 * (then shard and reward); its token is "tr2." with those after serial. */
static void test_receipt_v2(void **state) {
  fixture *fx = *state;
  tally__receipt_fields f = sample_fields(0x1122334455667788ull);
  f.amount_minor = -2;
  f.serial = 0xdeadbeef;
  f.version = 2;
  f.network = "matrix";
  f.identity = "@al:x.org";
  f.shard = 7;
  f.reward = 9;
  static const uint8_t want_bytes[] =
      "tally-receipt-v2"
      "\x11\x22\x33\x44\x55\x66\x77\x88" "\x00\x00\x00\x00\x00\x00\x00\x4d"
      "\x00\x00\x00\x01" "\x00\x00\x00\x02"
      "\xff\xff\xff\xff\xff\xff\xff\xfe" "\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x01\x8b\xcf\xe5\x68\x7b"
      "\x00\x0a" "user:alice" "\x00\x00" "\x00\x08" "mug-blue"
      "\xde\xad\xbe\xef"
      "\x00\x06" "matrix" "\x00\x09" "@al:x.org" "\x00\x00\x00\x07"
      "\x00\x00\x00\x00\x00\x00\x00\x09";
  uint8_t want[32], got[32], v1[32];
  leaf_of(want_bytes, sizeof want_bytes - 1, want);
  tally__receipt_leaf(&f, got);
  assert_memory_equal(got, want, 32);
  /* Each new field is committed to; version 1 ignores them. */
  tally__receipt_fields g = f;
  g.version = 1;
  tally__receipt_leaf(&g, v1);
  assert_memory_not_equal(v1, got, 32);
  g.network = "irc";
  g.identity = "x";
  uint8_t other[32];
  tally__receipt_leaf(&g, other);
  assert_memory_equal(other, v1, 32);
  for (int i = 0; i < 4; i++) {
    g = f;
    if (i == 0) g.network = "matrax";
    if (i == 1) g.identity = "@al:x.orf";
    if (i == 2) g.shard = 8;
    if (i == 3) g.reward = 10;
    tally__receipt_leaf(&g, other);
    assert_memory_not_equal(other, got, 32);
  }
  /* Tokens: tr2., one per proof, verified with the key; a tr2 body read as
   * tr1 (or the other way round) is not a token. */
  batch_fixture b;
  batch_version = 2;
  make_batch(fx->key, &b);
  batch_version = 1;
  for (int i = 0; i < TEST_BATCH; i++) {
    char tok[TALLY_RECEIPT_TOKEN_BYTES_MAX + 1];
    size_t len = 0;
    assert_int_equal(tally__receipt_token_encode(&b.proofs[i], tok, sizeof tok, &len), TALLY_OK);
    assert_memory_equal(tok, "tr2.", 4);
    tally__receipt_proof back;
    assert_int_equal(tally__receipt_token_decode(tok, len, &back), TALLY_OK);
    assert_memory_equal(&back, &b.proofs[i], sizeof back);
    assert_int_equal(back.version, 2);
    assert_int_equal(tally__receipt_proof_verify(&back, b.pub), TALLY_OK);
    tok[2] = '1';
    assert_int_equal(tally__receipt_token_decode(tok, len, &back), TALLY_EFRAME);
    tally__receipt_proof p = b.proofs[i];
    p.network[0] = p.network[0] == 'i' ? 'j' : 'i';
    assert_int_equal(tally__receipt_proof_verify(&p, b.pub), TALLY_EBADSIG);
    p = b.proofs[i];
    p.reward++;
    assert_int_equal(tally__receipt_proof_verify(&p, b.pub), TALLY_EBADSIG);
    p = b.proofs[i];
    p.version = 1; /* the same proof claimed as v1: names nothing, fails */
    assert_int_equal(tally__receipt_proof_verify(&p, b.pub), TALLY_EBADSIG);
  }
  tally__signer_close(b.signer);
}

static void test_proof_tampering(void **state) {
  fixture *f = *state;
  batch_fixture b;
  make_batch(f->key, &b);
  tally__receipt_proof p;
  const tally__receipt_proof *good = &b.proofs[3];
  assert_int_equal(tally__receipt_proof_verify(good, b.pub), TALLY_OK);
  for (int t = 0; t < 16; t++) {
    p = *good;
    switch (t) {
    case 0: p.amount_minor++; break;
    case 1: p.account[5] ^= 1; break;
    case 2: p.transfer_id++; break;
    case 3: p.batch_id++; break;
    case 4: p.leaf_index ^= 1; break;
    case 5: p.leaf_count++; break; /* the path alone would still fit */
    case 6: p.leaf_count = p.leaf_index; break;
    case 7: p.root[0] ^= 1; break;
    case 8: p.sig[0] ^= 1; break;
    case 9: p.path[0][0] ^= 1; break;
    case 10: p.path_len--; break;
    case 11: p.key_id[0] = p.key_id[0] == '0' ? '1' : '0'; break;
    case 12: p.path_len = TALLY_MERKLE_DEPTH_MAX + 1; break;
    case 13: memset(p.sku, 'x', sizeof p.sku); break; /* unterminated */
    case 14: p.serial = 1; break;
    default: p.leaf_count = 0; break;
    }
    assert_int_equal(tally__receipt_proof_verify(&p, b.pub), TALLY_EBADSIG);
  }
  uint8_t other[32];
  memcpy(other, b.pub, 32);
  other[0] ^= 1;
  assert_int_equal(tally__receipt_proof_verify(good, other), TALLY_EBADSIG);
  tally__signer_close(b.signer);
}

/* ---- decoding hostile tokens --------------------------------------------- */

static size_t b64url(const uint8_t *in, size_t n, char *out) {
  static const char a[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    acc = acc << 8 | in[i];
    bits += 8;
    while (bits >= 6) out[o++] = a[(acc >> (bits -= 6)) & 63];
  }
  if (bits) out[o++] = a[(acc << (6 - bits)) & 63];
  out[o] = '\0';
  return o;
}

enum variant {
  V_EXACT, V_WIDE_INT, V_TRAILING, V_STR_KIND, V_LONG_ACCOUNT, V_PATH_33,
  V_UPPER_KEY, V_SHORT_ARRAY, V_NUL_IN_SKU, V_BIN31_ROOT, V_NIL_SERIAL,
  V_COUNT
};

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

/* The token body packed independently with msgpack-c's sbuffer, or one
 * of its malformed variants. Returns the token in tok. */
static size_t pack_variant(const tally__receipt_proof *p, enum variant v, char *tok) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, v == V_SHORT_ARRAY ? 16 : 17);
  msgpack_pack_uint64(&pk, p->transfer_id);
  msgpack_pack_uint64(&pk, p->batch_id);
  if (v == V_STR_KIND) pack_str(&pk, "1", 1); else msgpack_pack_uint32(&pk, p->kind);
  msgpack_pack_uint32(&pk, p->qty);
  if (v == V_WIDE_INT) {
    msgpack_sbuffer_write(&sb, "\xd3\x00\x00\x00\x00\x00\x00\x00", 8);
    uint8_t lo = (uint8_t)p->amount_minor;
    msgpack_sbuffer_write(&sb, (const char *)&lo, 1);
  } else {
    msgpack_pack_int64(&pk, p->amount_minor);
  }
  msgpack_pack_uint64(&pk, p->ref_transfer);
  msgpack_pack_int64(&pk, p->created_ms);
  char long_name[TALLY_RECEIPT_TEXT_BYTES_MAX + 1]; /* one byte over the limit */
  memset(long_name, 'a', sizeof long_name);
  if (v == V_LONG_ACCOUNT) pack_str(&pk, long_name, sizeof long_name);
  else pack_str(&pk, p->account, strlen(p->account));
  pack_str(&pk, p->counterparty, strlen(p->counterparty));
  if (v == V_NUL_IN_SKU) pack_str(&pk, "mug\0x", 5);
  else pack_str(&pk, p->sku, strlen(p->sku));
  if (v == V_NIL_SERIAL) msgpack_pack_nil(&pk); else msgpack_pack_uint32(&pk, p->serial);
  msgpack_pack_uint32(&pk, p->leaf_index);
  msgpack_pack_uint32(&pk, p->leaf_count);
  uint32_t plen = v == V_PATH_33 ? TALLY_MERKLE_DEPTH_MAX + 1 : p->path_len;
  msgpack_pack_array(&pk, plen);
  for (uint32_t i = 0; i < plen; i++) {
    msgpack_pack_bin(&pk, 32);
    msgpack_pack_bin_body(&pk, p->path[i % TALLY_MERKLE_DEPTH_MAX], 32);
  }
  msgpack_pack_bin(&pk, v == V_BIN31_ROOT ? 31 : 32);
  msgpack_pack_bin_body(&pk, p->root, v == V_BIN31_ROOT ? 31 : 32);
  msgpack_pack_bin(&pk, 64);
  msgpack_pack_bin_body(&pk, p->sig, 64);
  if (v == V_SHORT_ARRAY) {
    /* key id left out */
  } else if (v == V_UPPER_KEY) {
    char up[17];
    for (int i = 0; i < 17; i++) up[i] = (char)toupper((unsigned char)p->key_id[i]);
    pack_str(&pk, up, 16);
  } else {
    pack_str(&pk, p->key_id, strlen(p->key_id));
  }
  if (v == V_TRAILING) msgpack_pack_uint8(&pk, 0);
  memcpy(tok, "tr1.", 4);
  size_t n = 4 + b64url((const uint8_t *)sb.data, sb.size, tok + 4);
  msgpack_sbuffer_destroy(&sb);
  return n;
}

static void expect_frame(const char *tok, size_t len) {
  tally__receipt_proof p;
  memset(&p, 0xa5, sizeof p);
  assert_int_equal(tally__receipt_token_decode(tok, len, &p), TALLY_EFRAME);
  static const tally__receipt_proof zero;
  assert_memory_equal(&p, &zero, sizeof p); /* nothing half-filled */
}

static void test_decode_rejects_variants(void **state) {
  fixture *f = *state;
  batch_fixture b;
  make_batch(f->key, &b);
  char tok[8192], lib[TALLY_RECEIPT_TOKEN_BYTES_MAX + 1];
  size_t lib_len;
  for (int i = 0; i < TEST_BATCH; i++) { /* the format, packed independently */
    size_t n = pack_variant(&b.proofs[i], V_EXACT, tok);
    assert_int_equal(tally__receipt_token_encode(&b.proofs[i], lib, sizeof lib, &lib_len),
                     TALLY_OK);
    assert_int_equal(n, lib_len);
    assert_memory_equal(tok, lib, n);
  }
  for (int v = V_EXACT + 1; v < V_COUNT; v++) {
    size_t n = pack_variant(&b.proofs[0], (enum variant)v, tok);
    if (n > TALLY_RECEIPT_TOKEN_BYTES_MAX) continue; /* also refused, by size */
    expect_frame(tok, n);
  }
  size_t n = pack_variant(&b.proofs[5], V_PATH_33, tok); /* long but in size */
  expect_frame(tok, n);
  tally__signer_close(b.signer);
}

static void test_decode_rejects_garbage(void **state) {
  fixture *f = *state;
  batch_fixture b;
  make_batch(f->key, &b);
  char tok[TALLY_RECEIPT_TOKEN_BYTES_MAX + 8], bad[TALLY_RECEIPT_TOKEN_BYTES_MAX + 8];
  size_t len;
  assert_int_equal(tally__receipt_token_encode(&b.proofs[2], tok, sizeof tok, &len),
                   TALLY_OK);
  for (size_t cut = 0; cut < len; cut++) expect_frame(tok, cut); /* truncated */
  static const char *const tails[] = {"A", "AA", "AAA", "AAAA", "=", "==", " ", "\n"};
  for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
    snprintf(bad, sizeof bad, "%s%s", tok, tails[i]);
    expect_frame(bad, strlen(bad));
  }
  memcpy(bad, tok, len);
  memcpy(bad, "tr2.", 4);
  expect_frame(bad, len);
  memcpy(bad, "TR1.", 4);
  expect_frame(bad, len);
  /* Single substitutions anywhere: refused, or decoded into a proof that
   * no longer verifies; never accepted as the original. */
  static const char alphabet[] = "Aa9-_+/=.\x80";
  tally__receipt_proof p;
  for (size_t pos = 0; pos < len; pos++) {
    for (size_t k = 0; k < sizeof alphabet - 1; k++) {
      if (tok[pos] == alphabet[k]) continue;
      memcpy(bad, tok, len);
      bad[pos] = alphabet[k];
      int rc = tally__receipt_token_decode(bad, len, &p);
      if (rc == TALLY_OK) {
        assert_int_equal(tally__receipt_proof_verify(&p, b.pub), TALLY_EBADSIG);
      } else {
        assert_int_equal(rc, TALLY_EFRAME);
      }
    }
  }
  /* Non-canonical base64: the last character's spare bits set. */
  size_t tail = (len - 4) % 4;
  if (tail != 0) {
    memcpy(bad, tok, len);
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t v = (size_t)(strchr(a, tok[len - 1]) - a);
    bad[len - 1] = a[v | 1];
    expect_frame(bad, len);
  }
  /* Hostile msgpack: huge array and str headers in a tiny token. */
  static const uint8_t bombs[][6] = {
      {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}, {0xdc, 0xff, 0xff, 0x00, 0x00, 0x00},
      {0xdb, 0xff, 0xff, 0xff, 0xff, 0x61}, {0x91, 0xdd, 0x7f, 0xff, 0xff, 0xff},
      {0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f}, {0xc1, 0, 0, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
    memcpy(bad, "tr1.", 4);
    size_t n = 4 + b64url(bombs[i], sizeof bombs[i], bad + 4);
    expect_frame(bad, n);
  }
  char huge[TALLY_RECEIPT_TOKEN_BYTES_MAX + 2];
  memset(huge, 'A', sizeof huge);
  memcpy(huge, "tr1.", 4);
  expect_frame(huge, sizeof huge);
  expect_frame("", 0);
  tally__signer_close(b.signer);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_signer_create_reload, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_signer_sign_verify, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_signer_refuses_a_key_open_to_others, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_signer_refuses_a_pub_of_another_key, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_signer_rejects_bad_files,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test(test_receipt_leaf_canonical),
      cmocka_unit_test_setup_teardown(test_receipt_v2, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_token_round_trip, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_proof_tampering, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_decode_rejects_variants,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_decode_rejects_garbage,
                                      fixture_setup, fixture_teardown),
  };
  return cmocka_run_group_tests_name("receipt", tests, NULL, NULL);
}
