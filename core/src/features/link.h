/* link.h — one wallet across networks: LINK codes, the links of identities
 * to a person's wallet, and their restore (sql/013).
 *
 * The flow (README "One wallet across networks"): identity I says LINK
 * privately and gets a code; identity X of ANOTHER network says LINK <code>
 * privately within link_code_ttl; I is told who claims it and answers LINK
 * CONFIRM <confirm code>; then one batch writes the identity_links row and,
 * when X's own wallet holds money, the one transfer (kind LINK) that moves
 * all of it into I's wallet. Both are told once it committed.
 *
 * Contract: engine thread only. Codes live in memory (tally__links) and
 * are forgotten by a restart; links are rebuilt from identity_links.
 * Wrong codes are counted per identity and over all identities in a window
 * (TALLY__LINK_GUESS_*), so a code cannot be guessed. */
#ifndef TALLY_LINK_H
#define TALLY_LINK_H

#include "config.h"
#include "engine_internal.h"

enum {
  TALLY__LINK_GUESSES_MAX = 5,          /* wrong codes per identity per window */
  TALLY__LINK_GUESSES_GLOBAL_MAX = 100, /* wrong codes of everyone per window */
  TALLY__LINK_GUESS_WINDOW_MS = 3600 * 1000,
  TALLY__LINK_CODES_MAX = 1024, /* codes issued and waiting, all identities together */
  TALLY__LINK_CODE_LEN = 8,     /* 8 symbols of 32: 40 bits */
  TALLY__LINK_CONFIRM_LEN = 6,  /* the issuer's LINK CONFIRM code: 30 bits */
  TALLY__FDATA_LINKS = 6,       /* index in e->feature_data */
};

/* A LINK code (features/link.c): issued by an identity, claimed by an
 * identity of another network, confirmed by the issuer. In memory only:
 * a restart forgets codes (they live minutes), never links. */
enum tally__link_code_state {
  TALLY__CODE_FREE = 0,
  TALLY__CODE_ISSUED = 1,    /* waiting for LINK <code> on another network */
  TALLY__CODE_CLAIMED = 2,   /* waiting for the issuer's LINK CONFIRM */
  TALLY__CODE_RECORDING = 3, /* confirmed: its row is in flight */
};
typedef struct tally__link_code {
  uint8_t state;
  uint32_t issuer, claimer;          /* identities' own accounts */
  uint32_t issuer_origin, claimer_origin; /* names in st->names, referenced while used */
  uint16_t issuer_net, claimer_net;
  uint64_t expires_mono;
  char code[TALLY__LINK_CODE_LEN + 1];
  char confirm[TALLY__LINK_CONFIRM_LEN + 1];
} tally__link_code;

/* The feature's own state (e->feature_data[TALLY__FDATA_LINKS], sized by
 * runtime.c's entry: zeroed with the engine and before each start, which
 * is how a restart forgets codes). Per-identity guesses are counted in the
 * account (tally__account.link_fails). */
typedef struct tally__links {
  tally__link_code codes[TALLY__LINK_CODES_MAX];
  uint32_t fails_global; /* wrong LINK codes from anyone since fails_global_mono */
  uint64_t fails_global_mono;
} tally__links;
tally__links *tally__links_of(tally__engine *e);

struct loader;

/* A fresh code issued by identity `issuer` (its own account) on network
 * net, answering to origin (a name, referenced here); an earlier code of
 * the same issuer is dropped. TALLY_OK, TALLY_EBUSY (table full),
 * TALLY_ECRYPTO (no randomness). */
int tally__link_issue(tally__engine *e, uint32_t issuer, uint16_t net, uint32_t origin, uint32_t *slot);
/* The slot holding code (any state, expired included), or TALLY__NONE. */
uint32_t tally__link_code_find(tally__engine *e, const char *code);
/* The CLAIMED slot whose issuer is `issuer`, or TALLY__NONE. */
uint32_t tally__link_claim_of(tally__engine *e, uint32_t issuer);
/* Frees a code slot, giving back its names. */
void tally__link_code_free(tally__engine *e, uint32_t slot);
/* A random code of n symbols (of 32, case-insensitive, no 0/O, 1/I). */
int tally__link_random(char *out, size_t n);

/* Wrong-guess accounting: false when identity (or everyone) sent too many
 * wrong codes in the window (*wait_min: minutes until it opens again). */
bool tally__link_guess_allowed(tally__engine *e, uint32_t identity, uint64_t now, uint32_t *wait_min);
/* Counts one wrong guess; returns the identity's guesses left. */
uint32_t tally__link_guess_failed(tally__engine *e, uint32_t identity, uint64_t now);

/* Is any op in flight (open or sealed batch) touching account? A joining
 * wallet must be still: its balance moves whole. */
bool tally__link_account_busy(const tally__engine *e, uint32_t account);
/* "xmpp:alice@example.org": an identity as the other network sees it. */
void tally__link_identity_text(const tally__state *st, uint32_t identity, char *out, size_t n);

/* Memory follows a link op before it settles (pending), and after. */
void tally__link_pending(tally__state *st, const tally__op *op);

/* Hooks (runtime.c). */
int tally__link_restore(struct loader *l, int64_t now_ms);
void tally__link_settled(tally__engine *e, const tally__op *op, int outcome);
void tally__link_record_settled(tally__engine *e, const tally__op *op, bool ok);

/* Its config keys (LINK codes), registered by runtime.c. */
extern const tally__config_keys tally__link_config_keys;

#endif
