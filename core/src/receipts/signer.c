/* signer.c — the Ed25519 key that signs each committed batch's Merkle root.
 *
 * A receipt is only as trustworthy as this key, so the file is created with
 * mode 0600 in one atomic step: written and fsynced under a temporary name,
 * then published with link(2), which (unlike rename) fails instead of
 * replacing a key that another process created meanwhile. Losing that race
 * is harmless: the winner's key is loaded. Signing runs once per batch on
 * the engine thread and reuses one EVP_MD_CTX; OpenSSL 3 still allocates
 * inside EVP_DigestSignInit, which is acceptable once per batch. */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fdopen, strnlen, O_DIRECTORY */
#include "signer.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "merkle.h"

#define SIGNER_BATCH_TAG "tally-batch-v1"
enum {
  SIGNER_TAG_BYTES = sizeof SIGNER_BATCH_TAG - 1,
  SIGNER_PATH_BYTES_MAX = PATH_MAX,
  SIGNER_KEY_MODE = 0600,
  SIGNER_KEY_MODE_REFUSED = 0077, /* any access for group or others */
  SIGNER_PUB_HEX_CHARS = 2 * TALLY_PUBKEY_BYTES,
  SIGNER_PUB_MODE = 0644,
};
_Static_assert(TALLY_BATCH_MSG_BYTES == SIGNER_TAG_BYTES + 8 + 4 + 32,
               "batch message layout");

struct tally__signer {
  EVP_PKEY *pkey;
  EVP_MD_CTX *md_ctx; /* reused by every tally__signer_sign_batch */
  uint8_t pub[TALLY_PUBKEY_BYTES];
  char key_id[TALLY_KEY_ID_CHARS + 1];
};

typedef int (*signer_fill_fn)(FILE *f, const void *ud);

__attribute__((format(printf, 4, 5))) static int
signer_fail(char *err, size_t err_len, int code, const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_last_error();
    size_t used = strlen(err);
    if (e && used + 3 < err_len) {
      snprintf(err + used, err_len - used, ": ");
      ERR_error_string_n(e, err + used + 2, err_len - used - 2);
    }
  }
  ERR_clear_error();
  return code;
}

static void signer_put_be(uint8_t *p, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

void tally__batch_message(uint64_t batch_id, uint32_t leaf_count,
                          const uint8_t root[32],
                          uint8_t msg[TALLY_BATCH_MSG_BYTES]) {
  assert(root && msg);
  memcpy(msg, SIGNER_BATCH_TAG, SIGNER_TAG_BYTES);
  signer_put_be(msg + SIGNER_TAG_BYTES, batch_id, 8);
  signer_put_be(msg + SIGNER_TAG_BYTES + 8, leaf_count, 4);
  memcpy(msg + SIGNER_TAG_BYTES + 12, root, TALLY_HASH_BYTES);
}

void tally__key_id(const uint8_t pub[TALLY_PUBKEY_BYTES],
                   char out[TALLY_KEY_ID_CHARS + 1]) {
  static const char hex[] = "0123456789abcdef";
  assert(pub && out);
  uint8_t h[TALLY_HASH_BYTES];
  tally__sha256(pub, TALLY_PUBKEY_BYTES, h);
  for (size_t i = 0; i < TALLY_KEY_ID_CHARS / 2; i++) {
    out[2 * i] = hex[h[i] >> 4];
    out[2 * i + 1] = hex[h[i] & 15];
  }
  out[TALLY_KEY_ID_CHARS] = '\0';
}

static int signer_no_password(char *buf, int size, int rwflag, void *ud) {
  (void)buf, (void)size, (void)rwflag, (void)ud;
  return -1; /* never prompt on a terminal: encrypted keys are refused */
}

/* A private key that its group or others can read (or write) may already
 * be known to someone else: every receipt it signs would prove nothing.
 * Checked on the open file, so the mode is the one of what is read. */
static int signer_check_mode(FILE *f, const char *path, char *err, size_t err_len) {
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    return signer_fail(err, err_len, TALLY_EIO, "signing key %s: %s", path, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return signer_fail(err, err_len, TALLY_ECONFIG, "signing key %s: not a regular file", path);
  }
  if (st.st_mode & SIGNER_KEY_MODE_REFUSED) {
    return signer_fail(err, err_len, TALLY_ECONFIG,
                       "signing key %s is open to group or others (mode %04o); refusing it."
                       " If nobody else read it, run: chmod 600 %s",
                       path, (unsigned)(st.st_mode & 07777), path);
  }
  return TALLY_OK;
}

/* TALLY_ENOTFOUND when the file does not exist. */
static int signer_read_key(const char *path, EVP_PKEY **out, char *err,
                           size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT) return TALLY_ENOTFOUND;
    return signer_fail(err, err_len, TALLY_EIO, "signing key %s: %s", path,
                       strerror(errno));
  }
  int rc = signer_check_mode(f, path, err, err_len);
  if (rc != TALLY_OK) {
    fclose(f);
    return rc;
  }
  EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, signer_no_password, NULL);
  fclose(f);
  if (!pkey) {
    return signer_fail(err, err_len, TALLY_ECRYPTO,
                       "signing key %s: not a PEM private key", path);
  }
  if (!EVP_PKEY_is_a(pkey, "ED25519")) {
    EVP_PKEY_free(pkey);
    return signer_fail(err, err_len, TALLY_ECRYPTO,
                       "signing key %s: not an Ed25519 key", path);
  }
  *out = pkey;
  return TALLY_OK;
}

/* fsync the folder holding path so that a published name survives a crash. */
static void signer_sync_dir(const char *path) {
  char dir[SIGNER_PATH_BYTES_MAX];
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 0;
  if (n == 0 || n >= sizeof dir) {
    snprintf(dir, sizeof dir, "%s", slash ? "/" : ".");
  } else {
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

/* Creates path with the given mode and content, atomically and without
 * replacing an existing file: TALLY_EEXISTS if path already exists. */
static int signer_publish(const char *path, mode_t mode, signer_fill_fn fill,
                          const void *ud, char *err, size_t err_len) {
  char tmp[SIGNER_PATH_BYTES_MAX];
  int n = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    return signer_fail(err, err_len, TALLY_EINVAL, "path too long: %s", path);
  }
  int fd = mkstemp(tmp); /* 0600 from the start: no window of wider access */
  if (fd < 0) {
    return signer_fail(err, err_len, TALLY_EIO, "create %s: %s", tmp,
                       strerror(errno));
  }
  FILE *f = fdopen(fd, "wb");
  if (!f) close(fd);
  int ok = f && fchmod(fd, mode) == 0 && fill(f, ud) && fflush(f) == 0 &&
           fsync(fd) == 0;
  int saved = errno;
  if (f && fclose(f) != 0) ok = 0;
  if (!ok) {
    unlink(tmp);
    return signer_fail(err, err_len, TALLY_EIO, "write %s: %s", tmp,
                       strerror(saved));
  }
  int linked = link(tmp, path);
  saved = errno;
  unlink(tmp);
  if (linked != 0) {
    if (saved == EEXIST) return TALLY_EEXISTS;
    return signer_fail(err, err_len, TALLY_EIO, "publish %s: %s", path,
                       strerror(saved));
  }
  signer_sync_dir(path);
  return TALLY_OK;
}

static int signer_fill_key(FILE *f, const void *ud) {
  return PEM_write_PrivateKey(f, (EVP_PKEY *)ud, NULL, NULL, 0, NULL, NULL);
}

static int signer_fill_pub(FILE *f, const void *ud) {
  const uint8_t *pub = ud;
  for (size_t i = 0; i < TALLY_PUBKEY_BYTES; i++) {
    if (fprintf(f, "%02x", pub[i]) != 2) return 0;
  }
  return fputc('\n', f) != EOF;
}

static int signer_create_key(const char *path, EVP_PKEY **out, char *err,
                             size_t err_len) {
  EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  if (!pkey) {
    return signer_fail(err, err_len, TALLY_ECRYPTO, "Ed25519 key generation");
  }
  int rc = signer_publish(path, SIGNER_KEY_MODE, signer_fill_key, pkey, err,
                          err_len);
  if (rc == TALLY_OK) {
    *out = pkey;
    return TALLY_OK;
  }
  EVP_PKEY_free(pkey);
  if (rc != TALLY_EEXISTS) return rc;
  rc = signer_read_key(path, out, err, err_len); /* lost a creation race */
  if (rc == TALLY_ENOTFOUND) {
    return signer_fail(err, err_len, TALLY_EIO, "signing key %s vanished", path);
  }
  return rc;
}

/* An existing .pub is what operators hand out to verify receipts offline:
 * one that is not the key's own public key would make every receipt fail
 * (or verify against another key). It is refused, not rewritten: which of
 * the two files is wrong is the operator's call, and a rewrite would hide
 * a swapped key. */
static int signer_check_pub(const tally__signer *s, const char *pub_path, char *err,
                            size_t err_len) {
  FILE *f = fopen(pub_path, "rb");
  if (!f) {
    return signer_fail(err, err_len, TALLY_EIO, "public key %s: %s", pub_path, strerror(errno));
  }
  char text[SIGNER_PUB_HEX_CHARS + 2] = "";
  size_t n = fread(text, 1, sizeof text - 1, f);
  bool more = fgetc(f) != EOF;
  fclose(f);
  char want[SIGNER_PUB_HEX_CHARS + 1];
  for (size_t i = 0; i < TALLY_PUBKEY_BYTES; i++) snprintf(want + 2 * i, 3, "%02x", s->pub[i]);
  bool same = !more && n >= SIGNER_PUB_HEX_CHARS && memcmp(text, want, SIGNER_PUB_HEX_CHARS) == 0 &&
              (n == SIGNER_PUB_HEX_CHARS || (n == SIGNER_PUB_HEX_CHARS + 1 && text[n - 1] == '\n'));
  if (same) return TALLY_OK;
  return signer_fail(err, err_len, TALLY_ECONFIG,
                     "public key %s does not match the signing key (whose public key is %s);"
                     " refusing it. If the key is right, delete the .pub: it is written again",
                     pub_path, want);
}

static int signer_write_pub(const tally__signer *s, const char *path,
                            char *err, size_t err_len) {
  char pub_path[SIGNER_PATH_BYTES_MAX];
  int n = snprintf(pub_path, sizeof pub_path, "%s.pub", path);
  if (n < 0 || (size_t)n >= sizeof pub_path) {
    return signer_fail(err, err_len, TALLY_EINVAL, "path too long: %s", path);
  }
  int rc = signer_publish(pub_path, SIGNER_PUB_MODE, signer_fill_pub, s->pub,
                          err, err_len);
  if (rc == TALLY_EEXISTS) rc = signer_check_pub(s, pub_path, err, err_len);
  return rc;
}

int tally__signer_open(const char *pem_path, tally__signer **out, char *err,
                       size_t err_len) {
  assert(pem_path && out);
  *out = NULL;
  EVP_PKEY *pkey = NULL;
  int rc = signer_read_key(pem_path, &pkey, err, err_len);
  if (rc == TALLY_ENOTFOUND) rc = signer_create_key(pem_path, &pkey, err, err_len);
  if (rc != TALLY_OK) return rc;
  tally__signer *s = calloc(1, sizeof *s);
  size_t pub_len = TALLY_PUBKEY_BYTES;
  if (!s || !(s->md_ctx = EVP_MD_CTX_new()) ||
      EVP_PKEY_get_raw_public_key(pkey, s->pub, &pub_len) != 1 ||
      pub_len != TALLY_PUBKEY_BYTES) {
    if (s) EVP_MD_CTX_free(s->md_ctx);
    free(s);
    EVP_PKEY_free(pkey);
    return signer_fail(err, err_len, TALLY_ECRYPTO, "signing key %s: setup",
                       pem_path);
  }
  s->pkey = pkey;
  tally__key_id(s->pub, s->key_id);
  rc = signer_write_pub(s, pem_path, err, err_len);
  if (rc != TALLY_OK) {
    tally__signer_close(s);
    return rc;
  }
  *out = s;
  return TALLY_OK;
}

void tally__signer_close(tally__signer *signer) {
  if (!signer) return;
  EVP_MD_CTX_free(signer->md_ctx);
  EVP_PKEY_free(signer->pkey);
  free(signer);
}

void tally__signer_public(const tally__signer *signer,
                          uint8_t pub[TALLY_PUBKEY_BYTES]) {
  assert(signer && pub);
  memcpy(pub, signer->pub, TALLY_PUBKEY_BYTES);
}

const char *tally__signer_key_id(const tally__signer *signer) {
  assert(signer && strlen(signer->key_id) == TALLY_KEY_ID_CHARS);
  return signer->key_id;
}

int tally__signer_sign_batch(const tally__signer *signer, uint64_t batch_id,
                             uint32_t leaf_count, const uint8_t root[32],
                             uint8_t sig[TALLY_SIG_BYTES]) {
  assert(signer && signer->pkey && root && sig && leaf_count > 0);
  uint8_t msg[TALLY_BATCH_MSG_BYTES];
  tally__batch_message(batch_id, leaf_count, root, msg);
  size_t sig_len = TALLY_SIG_BYTES;
  int ok = EVP_DigestSignInit(signer->md_ctx, NULL, NULL, NULL, signer->pkey) == 1 &&
           EVP_DigestSign(signer->md_ctx, sig, &sig_len, msg, sizeof msg) == 1 &&
           sig_len == TALLY_SIG_BYTES;
  EVP_MD_CTX_reset(signer->md_ctx);
  if (!ok) return signer_fail(NULL, 0, TALLY_ECRYPTO, "sign");
  return TALLY_OK;
}

int tally__batch_sig_verify(const uint8_t pub[TALLY_PUBKEY_BYTES],
                            uint64_t batch_id, uint32_t leaf_count,
                            const uint8_t root[32],
                            const uint8_t sig[TALLY_SIG_BYTES]) {
  assert(pub && root && sig);
  uint8_t msg[TALLY_BATCH_MSG_BYTES];
  tally__batch_message(batch_id, leaf_count, root, msg);
  EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
                                               TALLY_PUBKEY_BYTES);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int rc = TALLY_ECRYPTO;
  if (pkey && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1) {
    int v = EVP_DigestVerify(ctx, sig, TALLY_SIG_BYTES, msg, sizeof msg);
    rc = v == 1 ? TALLY_OK : TALLY_EBADSIG;
  }
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return rc;
}
