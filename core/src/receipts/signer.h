/* signer.h — the engine's Ed25519 batch signing key (OpenSSL 3 EVP).
 *
 * Contract
 * --------
 * - tally__signer_open loads an Ed25519 private key from a PEM file, or, when
 *   the file does not exist, creates one: mode 0600, written to a temporary
 *   file in the same folder and published atomically without ever replacing
 *   an existing key (if another process won the race, its key is loaded).
 *   PATH.pub (hex public key and a newline, mode 0644) is written when
 *   missing. An existing key file that its group or others may access
 *   (mode & 077) is refused (TALLY_ECONFIG, the error names the file and
 *   `chmod 600`), and so is an existing PATH.pub that is not the key's own
 *   public key (TALLY_ECONFIG: refused, not rewritten; delete it to have it
 *   written again). Errors return a code and a sentence in err.
 * - The signer is owned by the caller: close it with tally__signer_close.
 *   One thread at a time may sign (it keeps one EVP_MD_CTX for reuse).
 * - A key id is the lowercase hex of the first 8 bytes of SHA256(public key);
 *   it names the key in signing_keys and in every batch and receipt.
 * - The batch message is "tally-batch-v1" || batch_id (u64 big-endian) ||
 *   leaf_count (u32 big-endian) || merkle root (32 bytes).
 */
#ifndef TALLY_SIGNER_H
#define TALLY_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "tally.h"

enum {
  TALLY_PUBKEY_BYTES = 32,   /* Ed25519 public key */
  TALLY_SIG_BYTES = 64,      /* Ed25519 signature */
  TALLY_KEY_ID_CHARS = 16,   /* hex of 8 bytes; buffers add one for NUL */
  TALLY_BATCH_MSG_BYTES = 14 + 8 + 4 + 32, /* see tally__batch_message */
};

typedef struct tally__signer tally__signer;

/* On success *out owns the key. TALLY_EIO for file errors, TALLY_ECRYPTO for
 * a file that is not an Ed25519 private key or a failing OpenSSL call,
 * TALLY_ECONFIG for a key open to group or others or a .pub of another key. */
int tally__signer_open(const char *pem_path, tally__signer **out, char *err,
                       size_t err_len);
/* NULL is allowed. */
void tally__signer_close(tally__signer *signer);
void tally__signer_public(const tally__signer *signer,
                          uint8_t pub[TALLY_PUBKEY_BYTES]);
/* Borrowed: valid until tally__signer_close. */
const char *tally__signer_key_id(const tally__signer *signer);
/* TALLY_ECRYPTO if OpenSSL fails. */
int tally__signer_sign_batch(const tally__signer *signer, uint64_t batch_id,
                             uint32_t leaf_count, const uint8_t root[32],
                             uint8_t sig[TALLY_SIG_BYTES]);

/* TALLY_OK, TALLY_EBADSIG, or TALLY_ECRYPTO (OpenSSL could not run). */
int tally__batch_sig_verify(const uint8_t pub[TALLY_PUBKEY_BYTES],
                            uint64_t batch_id, uint32_t leaf_count,
                            const uint8_t root[32],
                            const uint8_t sig[TALLY_SIG_BYTES]);

/* The exact bytes that are signed for a batch. */
void tally__batch_message(uint64_t batch_id, uint32_t leaf_count,
                          const uint8_t root[32],
                          uint8_t msg[TALLY_BATCH_MSG_BYTES]);
/* Key id of a public key into out (TALLY_KEY_ID_CHARS + 1 bytes). */
void tally__key_id(const uint8_t pub[TALLY_PUBKEY_BYTES],
                   char out[TALLY_KEY_ID_CHARS + 1]);

#endif
