/* tally.h — the one public header of libtally, the live-commerce engine.
 *
 * Contract
 * --------
 * - A host (chat server adapter) creates one engine, starts it, and from then
 *   on only (a) submits event frames and (b) drains effect frames. Neither call
 *   blocks: the engine runs its own libuv loop on its own thread and is the
 *   single writer of stock and balances. The host's thread never waits on
 *   PostgreSQL or on a lock held by the engine (the queues are lock-free).
 * - Events and effects are msgpack frames defined in schemas/ (versioned).
 *   tally_command_encode() builds a command frame; tally_engine_drain() decodes
 *   effect frames into tally_effect structs that are borrowed until the
 *   callback returns.
 * - tally_engine_fd() is readable whenever effects are waiting; the host
 *   watches it with its own event loop and calls tally_engine_drain().
 * - A receipt effect (code TALLY_OK with receipt_id != 0) is only emitted after
 *   PostgreSQL has committed the purchase.
 * - Operating errors are returned as negative TALLY_E* codes; programmer errors
 *   (NULL engine, calling after free) assert. No function calls exit().
 * - Every struct that crosses this boundary starts with `uint32_t size,
 *   version`, and a host built against an older or newer tally.h than the
 *   library it runs with still works:
 *   - Structs the host fills (tally_command, tally_presence, tally_config as
 *     passed to tally_config_set, tally_config_check and tally_engine_new)
 *     carry the host's sizeof in `size`. The library reads them only up to
 *     `size`; fields past it (appended after the host was built) take their
 *     defaults, and bytes past the library's own struct (a newer host) are
 *     ignored. A size below the struct's TALLY_*_SIZE_V1 (its version-1
 *     prefix) is TALLY_EINVAL (TALLY_ECONFIG with a message for a config);
 *     tally_config_set of a key whose field lies past `size` is
 *     TALLY_ECONFIG.
 *   - Structs the library fills are written only up to the size the host
 *     has: tally_config_init() and tally_engine_stats() are macros passing
 *     sizeof the host's struct, and write at most that many bytes (zeroing
 *     what the library does not know). The `size` of a filled struct says
 *     how many bytes are valid: the smaller of the two sizes.
 *   - A tally_effect is the library's (borrowed during the callback); its
 *     `size` is the library's sizeof. A host reads a field only if
 *     TALLY_HAS_FIELD(effect, tally_effect, field) says it is there (a
 *     library older than the host's header delivers a shorter struct).
 *   `version` changes only if a field changes meaning (never so far);
 *   appending a field does not change it.
 *
 * Ownership: whoever allocates frees. tally_engine_new() allocates the engine;
 * tally_engine_free() releases it after tally_engine_stop().
 */
#ifndef TALLY_H
#define TALLY_H

#include <stddef.h>
#include <stdint.h>

#include "tally/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TALLY_BUILDING) && defined(__GNUC__)
#define TALLY_API __attribute__((visibility("default")))
#else
#define TALLY_API
#endif

/* ---- Error and reply codes --------------------------------------------- */
/* One table generates tally_err_name() and tally_strerror(). The first group
 * are operating errors of the API; the second are refusals that the engine
 * sends to users inside reply effects. Codes never change meaning. */
#define TALLY_ERRNO_MAP(X)                                                     \
  X(OK, 0, "ok")                                                               \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(EBUSY, -3, "busy, try again in a moment")                                  \
  X(EFRAME, -4, "malformed frame")                                             \
  X(ETOOBIG, -5, "frame or line too long")                                     \
  X(ECONFIG, -6, "bad configuration")                                          \
  X(EDB, -7, "database unavailable")                                           \
  X(ESTATE, -8, "engine not running")                                          \
  X(EVERSION, -9, "version mismatch")                                          \
  X(EIO, -10, "i/o error")                                                     \
  X(ECRYPTO, -11, "cryptographic operation failed")                            \
  X(ENOTFOUND, -12, "not found")                                               \
  X(EBADSIG, -13, "signature or proof does not verify")                        \
  X(EUNKNOWN_CMD, -100, "unknown command")                                     \
  X(EBAD_SYNTAX, -101, "wrong arguments")                                      \
  X(EBAD_UTF8, -102, "invalid UTF-8")                                          \
  X(EBAD_AMOUNT, -103, "amount must be a plain positive number")               \
  X(EBAD_QTY, -104, "quantity must be a plain positive number")                \
  X(EUNKNOWN_ITEM, -105, "unknown sku")                                        \
  X(ESOLD_OUT, -106, "sold out")                                               \
  X(ENO_FUNDS, -107, "not enough credits")                                     \
  X(EOVER_CAP, -108, "over your daily spend cap")                              \
  X(ENOT_LOGGED_IN, -109, "not logged in")                                     \
  X(ENO_PERMISSION, -110, "no permission")                                     \
  X(ERATE_LIMITED, -111, "too many requests")                                  \
  X(EKEY_MISMATCH, -112, "idempotency key reused with other parameters")       \
  X(EUNKNOWN_RECEIPT, -113, "unknown receipt")                                 \
  X(EREFUND_WINDOW, -114, "refund window has closed")                          \
  X(EREFUND_EXCEEDS, -115, "refund exceeds what was paid")                     \
  X(ENOT_YOURS, -116, "that receipt is not yours")                             \
  X(EBAD_CODE, -117, "unknown or expired confirmation code")                   \
  X(EUNKNOWN_ACCOUNT, -118, "unknown account")                                 \
  X(ESELF, -119, "cannot do that to yourself")                                 \
  X(EPER_USER_LIMIT, -120, "per-buyer limit reached")                          \
  X(EEXISTS, -121, "already exists")                                           \
  X(EOVERFLOW, -122, "amount too large")                                       \
  X(EPENDING, -123, "payment pending; check RECEIPTS shortly")                 \
  X(EFAILED, -124, "could not be recorded; you were not charged")              \
  X(ESTARTING, -125, "starting up, try again in a moment")                     \
  X(ECONSENT, -126, "first purchase needs your confirmation")                  \
  X(ETOO_MANY, -127, "limit reached")                                          \
  X(EPRICE_CHANGED, -128, "the price changed since you were asked; BUY again")  \
  X(EDROP_NOT_LIVE, -129, "that drop has not started yet")                     \
  X(EDROP_CLOSED, -130, "that drop has closed")                                \
  X(ENOT_IN_CHANNEL, -131, "use this in the event's channel")                 \
  X(ENOT_REFUNDABLE, -132, "not refundable: digital goods once delivered, passes once redeemed") \
  X(EREDEEMED, -133, "that pass was already redeemed")                         \
  X(ENOT_A_PASS, -134, "that receipt is not for a pass")                       \
  X(EENTERED, -135, "you are already in this raffle")                          \
  X(EFIXED, -136, "fixed once a unit has sold: create a new item instead")  \
  X(ENOT_ATTENDEE, -137, "only for those attending the event")               \
  X(EBAD_REF, -138, "that referral code does not apply here")                \
  X(ENOT_MERCH, -139, "that receipt is not for merch")                       \
  X(ENOT_HELD, -140, "no tip message waits for moderation under that receipt here") \
  X(ELEDGER, -141, "the stored record of this does not add up; refused and logged for an operator") \
  X(EOVER_MAX, -142, "price above your max=") \
  X(ENOT_DIGITAL, -143, "that receipt is not for a digital item")            \
  X(ENETWORK, -144, "unknown or invalid network name")                       \
  X(ENAMES_FULL, -145, "the engine's table of names is full; try again later") \
  X(EUNAVAILABLE, -146, "the shop is unavailable, try again in a moment")       \
  X(EUNKNOWN_OUTCOME, -147, "the link to the shop broke before it answered; RECEIPTS shows whether it was done") \
  X(ENO_QUIZ, -148, "no quiz is running there")                               \
  X(EANSWERED, -149, "you already answered this question")                   \
  X(EUNKNOWN_REWARD, -150, "unknown reward")                                  \
  X(ENO_GOAL, -151, "no goal is running there")                                \
  X(EGOAL_COOLDOWN, -152, "the last goal here ended too recently; wait for the cooldown") \
  X(EGOAL_LEVELS, -153, "goal amounts: one to eight amounts above zero, separated by commas") \
  X(EUNKNOWN_CHALLENGE, -160, "unknown challenge")                           \
  X(EBUYERS_UNKNOWN, -161, "too many buyers to tell a first purchase; first-purchase challenges are off") \
  X(EREWARD_CAP, -170, "you earned as many rewards in this event as it allows") \
  X(EREWARD_UNIT, -171, "a free unit a reward gave is never refunded")     \
  X(EROOM_SETTING, -180, "unknown room setting or value")

typedef enum tally_err {
#define TALLY_ERR_ENUM_(name, value, text) TALLY_##name = (value),
  TALLY_ERRNO_MAP(TALLY_ERR_ENUM_)
#undef TALLY_ERR_ENUM_
} tally_err;

/* "EBUSY" for TALLY_EBUSY; "UNKNOWN" for codes not in the table. */
TALLY_API const char *tally_err_name(int code);
/* A short human sentence for the code; never NULL. */
TALLY_API const char *tally_strerror(int code);
/* TALLY_VERSION_HEX of the library that is actually loaded. */
TALLY_API uint32_t tally_version(void);

/* ---- Limits that hosts must know ---------------------------------------- */
enum {
  TALLY_TEXT_BYTES_MAX = 512,      /* command text or reply text, bytes */
  TALLY_NAME_BYTES_MAX = 64,       /* deprecated (1.0-1.5): the old limit of every name; see
                                      the per-field limits below */
  TALLY_FRAME_BYTES_MAX = 10240,   /* one frame: holds the largest COMMAND (9,077 bytes with
                                      every field at its limit; codec.c asserts it) with room
                                      for appended fields. 1024 before 1.6 */
  TALLY_ERRBUF_BYTES = 256,        /* size of error buffers passed in */
  TALLY_CONFIG_LINE_BYTES_MAX = 1024,  /* one line of a config file, without its line end */
  TALLY_CONFIG_FILE_BYTES_MAX = 65536, /* a whole config file */
  TALLY_EFFECT_ARGS_BYTES_MAX = 160, /* an effect's encoded arguments (since 1.5) */
  TALLY_EFFECT_ARGS_MAX = 8,       /* arguments of one effect (since 1.5) */
  /* Names, sized to fit every network tally speaks (since 1.6; each was
   * TALLY_NAME_BYTES_MAX, 64, before). Bytes of UTF-8, without a NUL. */
  TALLY_IDENTITY_BYTES_MAX = 2047, /* an account: a bare XMPP JID (RFC 7622: 1023 local +
                                      '@' + 1023 domain); a Matrix user id is at most 255 */
  TALLY_ROOM_BYTES_MAX = 2047,     /* a room: a MUC's bare JID; a Matrix room id is at most 255 */
  TALLY_ORIGIN_BYTES_MAX = 3071,   /* who to answer: a full JID (bare JID + '/' + a 1023-byte
                                      resource), an IRC UUID, a Matrix user id */
  TALLY_MSG_ID_BYTES_MAX = 255,    /* a message's id: an XMPP stanza id, a Matrix event id
                                      (both at most 255 in practice and spec) */
  TALLY_NICK_BYTES_MAX = 1023,     /* a display name: an XMPP MUC nick is a JID resource
                                      (RFC 7622: at most 1023); Matrix display names, which
                                      have no spec limit, are cut to this by the adapter */
};

/* ---- Struct sizes (see the contract above) ------------------------------ */
/* Bytes of `type` up to and including `field`. */
#define TALLY_SIZE_THROUGH(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
/* Does the struct at ptr (its `size` as filled) include `field`? */
#define TALLY_HAS_FIELD(ptr, type, field) ((size_t)(ptr)->size >= TALLY_SIZE_THROUGH(type, field))

/* ---- Configuration ------------------------------------------------------- */
/* Filled by tally_config_init() with defaults, then changed field by field or
 * by name with tally_config_set(). Strings are borrowed: they must outlive
 * tally_engine_new(), which copies what it keeps. */
#define TALLY_CONFIG_VERSION 1
typedef struct tally_config {
  uint32_t size;    /* sizeof(tally_config) as the host saw it */
  uint32_t version; /* TALLY_CONFIG_VERSION */
  const char *dsn;              /* libpq connection string */
  const char *signing_key_path; /* Ed25519 PEM private key; created if absent */
  const char *currency;         /* display name, e.g. "credits" */
  uint32_t currency_decimals;   /* 0..6: minor units per major = 10^decimals */
  uint32_t fee_bps;             /* platform fee on purchases, basis points */
  int64_t daily_cap_minor;      /* per-buyer spend per UTC day; 0 = no cap */
  int64_t welcome_grant_minor;  /* demo only: credits for newly seen accounts */
  uint32_t consent_ttl_s;       /* how long a CONFIRM code stays valid */
  uint32_t refund_window_s;     /* default refund window for items */
  uint32_t queue_depth;         /* events waiting for the engine */
  uint32_t batch_max;           /* operations per group commit */
  uint32_t writers;             /* PostgreSQL connections writing batches */
  uint32_t accounts_max;        /* accounts kept in memory */
  uint32_t items_max;           /* items kept in memory */
  uint32_t keys_max;            /* idempotency keys remembered */
  uint32_t purchases_max;       /* refundable purchases remembered */
  uint32_t rate_account_per_min; /* commands per account per minute */
  uint32_t rate_channel_per_min; /* commands per channel per minute */
  uint32_t pending_timeout_ms;  /* tell buyers "pending" after this long */
  uint32_t highlight_repeat_s;  /* a pinned highlight is said again this often (1.1) */
  uint32_t highlight_topic;     /* 1: highlights are pinned as the channel topic (1.1) */
  uint32_t rate_global_per_min; /* commands per minute, all senders together (1.1) */
  uint32_t tip_message_hold_s;  /* a tip's message waits this long for moderators (1.2) */
  uint32_t rate_verify_per_min; /* VERIFY <receipt> checks per minute, everyone together */
  int64_t grant_max_major;      /* largest TALLY GRANT from chat, whole major units; 0 = no cap */
  /* Shares of the shared tables, so one user or channel cannot fill them
   * (a full table refuses, it never fails open). */
  uint32_t highlights_per_channel; /* highlights queued or showing in one channel */
  uint32_t highlights_per_account; /* highlights queued or showing bought by one account */
  uint32_t highlight_refund_wait_s; /* an unpayable highlight refund is retried this long */
  uint32_t held_tips_per_channel;  /* tip messages waiting for moderators in one channel */
  uint32_t held_tips_per_account;  /* tip messages waiting for moderators from one account */
  uint32_t drops_per_host;         /* scheduled or live drops of one creator at once */
  uint32_t items_per_creator;      /* items (drops and highlight tiers too) of one creator */
  uint32_t coop_purchases_max;     /* co-op purchases whose shares are kept for refunds */
  /* The network of commands and presences that name none (the in-process
   * adapter's): ^[a-z0-9][a-z0-9._-]{0,31}$, not "user" or "sys". "irc" is
   * the network of every account written before migration 010. */
  const char *network;
  const char *admins;              /* accounts that are TALLY_ROLE_ADMIN whatever the adapter
                                      says, separated by commas or spaces; "" none (1.5) */
  /* Remote mode (since 1.6): the same tally_engine_* calls, served by a
   * tallyd over a socket instead of an engine in this process. `mode` is
   * "local" (default) or "remote"; in remote mode dsn and signing_key are
   * tallyd's business and only the fields below and `network` matter. */
  const char *mode;
  const char *address;       /* "unix:/run/tally/tally.sock" or "tls:host:port" */
  const char *secret;        /* this network's shared secret (tallyd's secret for it) */
  const char *instance;      /* stable id of this chat server in its network (its server
                                name): a reconnect with it resumes undelivered answers */
  uint32_t command_max_age_ms; /* an unanswered command is resent after a reconnect only
                                  this long; older ones are told "outcome unknown" */
  const char *remote_ca;     /* tls: PEM CA file that signed tallyd's certificate ("": the
                                system's) */
  const char *remote_cert;   /* tls: PEM client certificate, when tallyd requires one */
  const char *remote_key;    /* tls: its private key */
  const char *adapter;       /* adapter name and version sent in HELLO ("m_tally/1.6") */
  uint32_t caps;             /* enum tally_cap bits (tally/frames.h) sent in HELLO */
  uint32_t queue_bytes;            /* bytes of the events queue (queue_depth frames at most);
                                      the effects queue is sized from it (1.6) */
  uint32_t names_bytes_max;        /* bytes of interned names: account names, and who to answer
                                      for operations in flight; full: TALLY_ENAMES_FULL (1.6) */
  uint32_t link_code_ttl_s;        /* seconds a LINK code (and its LINK CONFIRM) stays valid */
  uint32_t reward_min_account_age_s; /* a quiz's winners were first seen at least this long before
                                        it started (issue 14) */
  uint32_t goal_cooldown_s;        /* seconds after a room's goal ended before the next may start */
  uint32_t reward_per_event_max;    /* rewards one account earns in one event at most; 0: no cap */
} tally_config;

/* The version-1 prefix: the fields of the first release (up to
 * pending_timeout_ms); later fields are optional for a host. */
#define TALLY_CONFIG_SIZE_V1 TALLY_SIZE_THROUGH(tally_config, pending_timeout_ms)

/* Fills the first `size` bytes of cfg (the host's sizeof) with defaults;
 * cfg->size becomes the bytes filled. Use the macro tally_config_init(cfg),
 * which passes sizeof *cfg. A size below TALLY_CONFIG_SIZE_V1 asserts (a
 * programmer error: the macro cannot produce it). */
TALLY_API void tally_config_init_size(tally_config *cfg, size_t size);
/* The same for a struct of the library's own size (for hosts that need a
 * function's address); the macro below is what hosts call. */
TALLY_API void tally_config_init(tally_config *cfg);
#define tally_config_init(cfg) tally_config_init_size((cfg), sizeof *(cfg))
/* Sets one field by its documented name from text ("fee_bps", "250").
 * Unknown keys and out-of-range values are TALLY_ECONFIG with a message. */
TALLY_API int tally_config_set(tally_config *cfg, const char *key,
                               const char *value, char *err, size_t err_len);
/* Checks relations between fields; TALLY_ECONFIG with a message. */
TALLY_API int tally_config_check(const tally_config *cfg, char *err,
                                 size_t err_len);
/* Calls fn for each documented key: name, default as text, help line. */
typedef void (*tally_config_doc_cb)(void *ud, const char *key,
                                    const char *default_text,
                                    const char *help);
TALLY_API void tally_config_describe(tally_config_doc_cb fn, void *ud);

/* Config files. One `key = value` a line, with the keys and checks of
 * tally_config_set; blank lines and lines starting with '#' are skipped;
 * spaces and tabs around key and value are dropped; the value runs to the
 * end of the line (no quotes; a '#' inside it is kept); CRLF is accepted.
 * Refused with TALLY_ECONFIG and a message "NAME:LINE: why": an unknown key
 * or bad value (tally_config_set's reason), a line without '=', a key given
 * twice (refused, not "last wins"), a line over TALLY_CONFIG_LINE_BYTES_MAX
 * bytes, invalid UTF-8 or a control character (TAB aside), a file over
 * TALLY_CONFIG_FILE_BYTES_MAX bytes. A file that cannot be opened or read
 * is TALLY_EIO ("PATH: No such file or directory"). On any error cfg is
 * unchanged and *file is NULL. tally_config_check is not called: the host
 * may still change fields (tally_engine_new checks).
 *
 * The strings set (dsn, signing_key, currency) point into *file, which the
 * caller frees with tally_config_file_free once tally_engine_new returned
 * (the engine copies what it keeps). Since 1.5. */
typedef struct tally_config_file tally_config_file;
TALLY_API int tally_config_load_file(tally_config *cfg, const char *path, tally_config_file **file,
                                     char *err, size_t err_len);
/* The same from memory: text[0..len) as if read from a file called name. */
TALLY_API int tally_config_load_text(tally_config *cfg, const char *name, const char *text, size_t len,
                                     tally_config_file **file, char *err, size_t err_len);
/* NULL is allowed. */
TALLY_API void tally_config_file_free(tally_config_file *file);

/* ---- Events (host -> engine) -------------------------------------------- */
/* Generic roles (since 1.5): what a sender may do is decided in core, once
 * (the table of command forms in tally_command_doc.roles); the adapter only
 * maps its network's ranks to these bits: IRC chanop -> HOST | MODERATOR,
 * halfop -> MODERATOR, oper -> ADMIN, oper privilege tally/grant -> GRANT;
 * on XMPP affiliations, on Matrix power levels. The config key `admins`
 * makes listed accounts ADMIN whatever the adapter says. The creator role is
 * not a bit here: it is a ledger role an admin gives (TALLY ROLE). */
enum tally_role {
  TALLY_ROLE_HOST = 1u << 0,      /* runs events and drops in this room (moderates it too) */
  TALLY_ROLE_ADMIN = 1u << 1,     /* admin commands (TALLY GRANT/ROLE/STATS), any room */
  TALLY_ROLE_GRANT = 1u << 2,     /* privilege: may create credits (TALLY GRANT, up to
                                     grant_max); needs ADMIN too. On InspIRCd the oper
                                     privilege tally/grant. */
  TALLY_ROLE_MODERATOR = 1u << 3, /* may HIDE held tip messages and remove highlights in
                                     this room, but not host (since 1.5) */
  /* Deprecated aliases (1.0-1.4 names, same values): existing hosts build and
   * behave as before. */
  TALLY_ROLE_CHANOP = TALLY_ROLE_HOST,
  TALLY_ROLE_OPER = TALLY_ROLE_ADMIN,
};

/* One chat line addressed to tally. The engine parses `text`
 * ("BUY sku 2"); the host only strips its own prefix (e.g. "!"). */
#define TALLY_COMMAND_VERSION 2
typedef struct tally_command {
  uint32_t size, version;
  uint64_t req_id;     /* host's correlation id, echoed in every effect */
  const char *origin;  /* host handle of the sender (IRC UUID, JID), echoed */
  const char *account; /* authenticated account, "" when not logged in */
  const char *nick;    /* display name, only for messages */
  const char *channel; /* where it was said, "" for a private command */
  const char *msg_id;  /* unique per delivered message: idempotency key */
  const char *text;    /* the command line, at most TALLY_TEXT_BYTES_MAX */
  uint32_t roles;      /* TALLY_ROLE_* */
  /* Since version 2 (1.5): the network `account`, `channel` and `msg_id`
   * belong to ("matrix", "xmpp"); NULL or "" is the configured network
   * (tally_config.network). A host built against version 1 passes the
   * smaller size and is read as "". */
  const char *network;
} tally_command;
#define TALLY_COMMAND_SIZE_V1 TALLY_SIZE_THROUGH(tally_command, roles)

/* Encodes cmd as an event frame into buf. TALLY_ETOOBIG if it does not fit,
 * TALLY_EINVAL for a NULL field. Never allocates. */
TALLY_API int tally_command_encode(const tally_command *cmd, uint8_t *buf,
                                   size_t buf_len, size_t *frame_len);

/* Someone logged in to `account` is in `channel` (present 1: joined, or
 * listed in answer to TALLY_EFFECT_ROSTER) or left it (present 0: part,
 * quit, kick). The engine counts presence only in channels with a running
 * event (attendance, attendees-only drops). Since 1.1. */
#define TALLY_PRESENCE_VERSION 2
typedef struct tally_presence {
  uint32_t size, version;
  const char *account;
  const char *channel;
  uint32_t present;
  const char *network; /* since version 2 (1.5): as tally_command.network */
} tally_presence;
#define TALLY_PRESENCE_SIZE_V1 TALLY_SIZE_THROUGH(tally_presence, present)

/* ---- Effects (engine -> host) ------------------------------------------- */
enum tally_effect_kind {
  TALLY_EFFECT_REPLY = 1,    /* tell `origin` privately (IRC NOTICE) */
  TALLY_EFFECT_ANNOUNCE = 2, /* say in `channel` */
  TALLY_EFFECT_STATUS = 3,   /* engine state changed: code TALLY_OK = ready */
  TALLY_EFFECT_ROSTER = 4,   /* submit presence of every member of `channel` (since 1.1) */
  TALLY_EFFECT_TOPIC = 5,    /* set `channel`'s topic to `text`; "" restores the topic from
                                before tally's first change (since 1.1) */
  TALLY_EFFECT_MODERATORS = 6, /* say `text` to `channel`'s moderators only (IRC: a notice to
                                  @#channel); an adapter that cannot must drop it, never say
                                  it to the whole channel (since 1.2) */
  TALLY_EFFECT_ROOM = 7,       /* `channel`'s settings, set by its hosts (ROOM SET), in `text`
                                  as "reply=room|thread|dm redact=on|off host_level=N":
                                  how to answer there (in the room, in a thread on the
                                  command, privately), whether to remove command lines, and
                                  the level that makes a host (0: the network's own rule).
                                  Sent after each change and, at start-up, for every room
                                  that has settings. An adapter applies what its network
                                  can and ignores the rest and keys it does not know
                                  (since 1.7) */
};

/* What a refusal needs explained in the words of the user's network. The
 * engine's text is complete and network-neutral ("not logged in: log in to
 * your account first"); an adapter that knows how its network does it
 * appends its own phrase (IRC: " (/msg NickServ IDENTIFY <password>)"). An
 * adapter may ignore hints, and must ignore values it does not know (new
 * ones may be added). Since 1.4 (TALLY_EFFECT_VERSION 2). */
enum tally_hint {
  TALLY_HINT_NONE = 0,
  TALLY_HINT_LOG_IN = 1,          /* not logged in: how to log in to an account here.
                                     Every TALLY_ENOT_LOGGED_IN reply carries it. */
  TALLY_HINT_SEND_PRIVATELY = 2,  /* said in a channel but private only: how to send a
                                     command privately here */
  TALLY_HINT_ADMIN_ROLE = 3,      /* needs an admin (TALLY_ROLE_ADMIN) or a role only an
                                     admin gives: who the admins are here */
  TALLY_HINT_HOST_ROLE = 4,       /* needs the host role of the channel (TALLY_ROLE_HOST):
                                     who holds it here */
  TALLY_HINT_GRANT_PRIVILEGE = 5, /* needs the grant privilege (TALLY_ROLE_GRANT): how an
                                     admin gets it here */
  TALLY_HINT_ALREADY_SAID = 6,    /* nothing held to hide: whether a message already said
                                     can be taken back here */
};

/* What an effect's text says, one code per distinct sentence of the engine
 * (since 1.5), so an adapter can render it its own way (HTML, mentions,
 * escaping) from the effect's arguments instead of parsing English. The
 * numbers are stable; new ones are appended. An adapter shows `text` for a
 * code it does not render, and for 0 (text only: no structure). In the
 * sentences below, <kind> marks an argument (enum tally_arg_kind) in the
 * order of the effect's args; [..] is sometimes there; <command: ...> is a
 * COMMAND span holding the arguments written inside it.
 *
 * X(name, number, sentence) */
#define TALLY_MSG_TABLE(X)                                                                             \
  X(TEXT, 0, "text only: no arguments")                                                                \
  X(BOUGHT, 1, "reply: Bought <count>x <text: title> (<sku>) for <amount>. receipt <receipt> ...")     \
  X(TIPPED, 2, "reply: Tipped <amount> to <account>. receipt <receipt>[ - ...]")                        \
  X(TIP_THANKS, 3, "Thank you <account> for tipping <account> <amount>[: <text: message>]")            \
  X(TIP_THANKS_HELD, 4, "Thank you <account> for tipping <account> <amount>! Their message follows "   \
                        "in N s.")                                                                     \
  X(TIP_HELD, 5, "moderators: Tip <receipt> from <account> to <account> says: <text: message> -- "    \
                 "shown here in N s unless a moderator says HIDE <receipt>")                           \
  X(TIP_MESSAGE, 6, "<account>'s message with the tip of <amount> to <account>: <text: message>")      \
  X(TIP_HIDDEN, 7, "moderators: <account> hid the message of tip <receipt> from <account>")            \
  X(HIGHLIGHT, 8, "HIGHLIGHT from <account>: <text: message> (an announcement, or a topic)")          \
  X(DROP_LIVE, 9, "LIVE NOW: <text: title> - <count> units at <amount> for N s|min[ (limit per "      \
                  "buyer)]. Type: <command: BUY <sku>>")                                               \
  X(DROP_SOLD_OUT, 10, "SOLD OUT: <sku> - all <count> units are gone.")                                \
  X(DROP_LOW, 11, "Only <count> left of <sku>!")                                                       \
  X(DROP_CLOSED, 12, "Drop <sku> closed: <count> of <count> sold.")                                    \
  X(RAFFLE_OPEN, 13, "RAFFLE OPEN: <text: title> - <count> units at <amount>. Enter with "             \
                     "<command: BUY <sku>> ...")                                                       \
  X(EVENT_STARTED, 14, "Live event \"<text: title>\" starts now, for N min. ...")                       \
  X(EVENT_ENDED, 15, "Event \"<text: title>\" ended: <count> sales (<amount>), <count> tips "           \
                     "(<amount>). ...")                                                                \
  X(REACTIONS_ON_SALE, 16, "Paid reactions on sale: <amount> each. Type: <command: REACT <emote>>")    \
  X(REFUNDED, 17, "reply: Refunded <amount> for receipt <receipt>. receipt <receipt>")                 \
  X(GRANTED, 18, "reply: Granted <amount> to <account>. receipt <receipt>")                           \
  X(RAFFLE_WINNERS, 19, "RAFFLE <sku> winners (<count> of <count> units): <account>, <account>...[, "  \
                        "and N who prefer not to be named][. Receipts are on their way.]")            \
  X(EVENT_ATTENDANCE, 20, "Attendance: <count> attendees, N min on average. Top supporters: "          \
                          "<account> <amount>, ... Creators earned: <account> <amount>, ...")   \
  X(DROP_COMING, 21, "Drop|Raffle coming: <sku> - <count> units at <amount>, starts in N s.")         \
  X(DROP_PAUSED, 22, "Drop <sku> is paused: purchases cannot be recorded right now. ...")            \
  X(HIGHLIGHTS_ON_SALE, 23, "Highlights on sale: <text: tier> pins your message for N s, <amount>. " \
                            "Type: <command: HIGHLIGHT <text: tier> <message>>")                       \
  X(RAFFLE_CLOSED, 24, "RAFFLE <sku> closed with <count> entries. Seed: .. Entry hash: ... Drawing " \
                       "<count> winners now (VERIFY DRAW <sku> to check).")                        \
  X(GOAL_STARTED, 25, "GOAL: tips and purchases here fill <amount> within N s|min[ (level 1 of N)][; "  \
                      "at 100 % everyone present earns the reward ...]. GOAL shows the progress.")    \
  X(GOAL_PROGRESS, 26, "Goal level <count>: <count> % - <amount> of <amount>.")                        \
  X(GOAL_REACHED, 27, "GOAL level <count> reached: <amount> of <amount> from <count> contributors!"   \
                      "[ N present earn <reward> ...] Level N: ... | That was the last level.")        \
  X(GOAL_ENDED, 28, "Goal over: <why>. Levels reached: <count> of <count>.")                       \
  X(CHALLENGE_REACHED, 30, "<account> reached the challenge <text: name> (...)[, badge <text: badge>]" \
                           "[, reward <text: reward> (REWARDS shows it)].")                            \
  X(CHALLENGES_SUMMARY, 31, "Challenges reached: <account> (<text: badge or name>), ...[, and "       \
                            "<count> more].")                  \
  X(REWARD_USED, 35, "reply after BUY's: Reward <text: name> used on receipt <receipt>: <amount> off "  \
                     "the price (the creator's gift)")              \
  X(REWARD_FREE_UNIT, 36, "reply after BUY's: Reward <text: name> used on receipt <receipt>: your "    \
                          "<sku> is free (the creator's gift; never refunded)")                      \
  X(REWARD_ACCESS, 37, "reply after BUY's: Reward <text: name> used on receipt <receipt>: it let you "  \
                       "buy <sku> without attending")                                                \
  /* 25..44 are taken by features being built (goals, challenges, quizzes, Matrix rooms). */      \
  X(CONSENT_ASKED, 45, "reply (code ECONSENT): ... <count>x <text: title> costs <amount> ... To agree, " \
                       "reply: <command: CONFIRM code> (valid N s ...)")

#define TALLY_MSG_ENUM_(name, number, sentence) TALLY_MSG_##name = number,
enum tally_msg { TALLY_MSG_TABLE(TALLY_MSG_ENUM_) };
#undef TALLY_MSG_ENUM_

/* The kind of one argument of an effect. Each argument is a span of the
 * effect's text (where the default English shows it) and, for numbers, the
 * value. ACCOUNT, TEXT, ROOM and SKU are user-supplied: an adapter escapes
 * them for its markup (and may make an ACCOUNT a mention); TEXT is a user's
 * own words (a tip message, a title) and never markup or a mention. */
enum tally_arg_kind {
  TALLY_ARG_ACCOUNT = 1, /* an account name, without the ledger's "user:" */
  TALLY_ARG_AMOUNT = 2,  /* value: minor units; decimals: digits after the point */
  TALLY_ARG_TEXT = 3,    /* user text: a message, an item or event title */
  TALLY_ARG_ROOM = 4,    /* a room (channel) name */
  TALLY_ARG_SKU = 5,     /* an item's code, as typed after BUY */
  TALLY_ARG_COUNT = 6,   /* value: a number of units, sales, entries... */
  TALLY_ARG_RECEIPT = 7, /* value: a receipt (transfer) id */
  TALLY_ARG_COMMAND = 8, /* a command a user can type, as the engine dispatches it: the
                            command word in capitals and its arguments ("BUY pin5",
                            "REACT <emote>"; <..> is a placeholder); since 1.5. An
                            adapter shows it the way commands are typed on its network
                            (IRC: "!buy pin5"); shown as is, it is what a frame client
                            sends. It holds the arguments inside it (the SKU), which
                            follow it in args. */
};
/* Arguments come in the order of their start in text; two spans either do
 * not overlap or one holds the other (a COMMAND its SKU). An adapter that
 * renders a span whole skips the arguments inside it. */
#define TALLY_ARG_KIND_LAST TALLY_ARG_COMMAND
typedef struct tally_effect_arg {
  uint32_t kind;     /* enum tally_arg_kind */
  uint32_t start;    /* byte offset into the effect's text */
  uint32_t len;      /* bytes of text it covers (start + len <= strlen(text)) */
  uint32_t decimals; /* TALLY_ARG_AMOUNT: digits after the point; else 0 */
  int64_t value;     /* AMOUNT, COUNT, RECEIPT: the number; else 0 */
} tally_effect_arg;
/* Decodes an effect's `args` (as carried by tally_effect.args and the
 * EFFECT frame) against its `text`: up to max arguments into out, their
 * number into *count. TALLY_OK; TALLY_EFRAME when args is malformed or a
 * span is outside text; TALLY_ETOOBIG when more than max; TALLY_EINVAL for
 * NULL. "" is no arguments. Since 1.5. */
TALLY_API int tally_effect_args_parse(const char *text, const char *args, tally_effect_arg *out,
                                      size_t max, size_t *count);

#define TALLY_EFFECT_VERSION 3
typedef struct tally_effect {
  uint32_t size, version;
  uint32_t kind;       /* enum tally_effect_kind */
  int32_t code;        /* TALLY_OK or a refusal code */
  uint64_t req_id;     /* the command's req_id; 0 when not a reply */
  uint64_t receipt_id; /* non-zero on a committed purchase's receipt */
  const char *origin;  /* who to tell (REPLY) */
  const char *channel; /* where to say it (ANNOUNCE) */
  const char *text;    /* ready to show, UTF-8, no CR/LF */
  uint32_t hint;       /* enum tally_hint (version >= 2; since 1.4): TALLY_HINT_NONE
                          or what the adapter may explain after `text` */
  /* Version >= 3 (since 1.5): the network `origin` and `channel` belong to
   * (never NULL; the configured network for engine-made lines), and the
   * host connection it is for (0 in process: the one adapter). An adapter
   * serving one network may ignore both. */
  const char *network;
  uint64_t conn;
  uint32_t msg;        /* enum tally_msg (version >= 3; since 1.5): which sentence `text`
                          is; TALLY_MSG_TEXT (0): no structure, show text */
  const char *args;    /* its arguments, encoded (tally_effect_args_parse); "" when msg
                          is 0 (version >= 3) */
} tally_effect;
#define TALLY_EFFECT_SIZE_V1 TALLY_SIZE_THROUGH(tally_effect, text)

typedef void (*tally_effect_cb)(void *ud, const tally_effect *effect);

/* ---- Engine --------------------------------------------------------------- */
typedef struct tally_engine tally_engine;

/* Validates cfg and allocates every pool the engine will use; nothing is
 * allocated per buy afterwards. Does not connect. On failure returns a code
 * and writes a message into err. */
TALLY_API int tally_engine_new(const tally_config *cfg, tally_engine **out,
                               char *err, size_t err_len);
/* Starts the engine thread, which connects to PostgreSQL, applies
 * migrations, rebuilds state and then emits a STATUS effect with TALLY_OK.
 * Commands submitted before that are answered TALLY_ESTARTING. */
TALLY_API int tally_engine_start(tally_engine *engine);
/* Copies the frame into the engine's queue. TALLY_EBUSY when the queue is
 * full (the host should tell the user), TALLY_ETOOBIG for an oversized
 * frame. Lock-free; safe from any thread, but not concurrently with
 * tally_engine_stop or tally_engine_free (the host stops submitting first). */
TALLY_API int tally_engine_submit(tally_engine *engine, const uint8_t *frame,
                                  size_t frame_len);
/* tally_command_encode() + tally_engine_submit() with a stack buffer. */
TALLY_API int tally_engine_submit_command(tally_engine *engine,
                                          const tally_command *cmd);
/* Submits a presence change (see tally_presence); same queue and return
 * codes as tally_engine_submit. Since 1.1. */
TALLY_API int tally_engine_submit_presence(tally_engine *engine,
                                           const tally_presence *presence);
/* Readable when effects are waiting. Owned by the engine. */
TALLY_API int tally_engine_fd(const tally_engine *engine);
/* Calls cb for up to max_effects waiting effects, in order, from the calling
 * thread (one thread at a time). Returns how many were delivered. */
TALLY_API int tally_engine_drain(tally_engine *engine, tally_effect_cb cb,
                                 void *ud, size_t max_effects);
/* Stops taking events, waits for in-flight batches to resolve (their buyers
 * get their answers), then joins the thread. Idempotent. */
TALLY_API void tally_engine_stop(tally_engine *engine);
TALLY_API void tally_engine_free(tally_engine *engine);

/* Counters for STATS and benchmarks; a consistent-enough snapshot. */
#define TALLY_STATS_VERSION 1
typedef struct tally_stats {
  uint32_t size, version;
  uint64_t events_in, effects_out, busy_rejects;
  uint64_t buys_committed, buys_refused, batches_committed, batch_retries;
  uint64_t queue_depth_now, ops_pending_now;
} tally_stats;
#define TALLY_STATS_SIZE_V1 TALLY_SIZE_THROUGH(tally_stats, ops_pending_now)
/* Writes at most `size` bytes (the host's sizeof; below TALLY_STATS_SIZE_V1
 * asserts); out->size becomes the bytes written. Hosts call the macro
 * tally_engine_stats(engine, out), which passes sizeof *out. */
TALLY_API void tally_engine_stats_size(const tally_engine *engine, tally_stats *out, size_t size);
/* The same for a struct of the library's own size. */
TALLY_API void tally_engine_stats(const tally_engine *engine, tally_stats *out);
#define tally_engine_stats(engine, out) tally_engine_stats_size((engine), (out), sizeof *(out))

/* ---- Command words and text rules (for adapters) --------------------------- */
/* What an adapter needs to register the engine's commands (as client
 * commands, slash commands, ad-hoc commands...) without a list of its own:
 * one call per command word, from the same table the engine dispatches on.
 * Since 1.3. */
enum tally_command_flag {
  TALLY_COMMAND_NEEDS_ACCOUNT = 1u << 0, /* refused (TALLY_ENOT_LOGGED_IN) without an account */
  TALLY_COMMAND_PRIVATE_ONLY = 1u << 1,  /* refused when said in a channel: personal data */
  TALLY_COMMAND_IN_EVENT = 1u << 2,      /* only in a channel with a running event */
};
enum tally_command_group { /* who a command is for; also TALLY HELP's line order */
  TALLY_COMMAND_GROUP_EVERYONE = 0,
  TALLY_COMMAND_GROUP_EVENT = 1,     /* the audience of a running event */
  TALLY_COMMAND_GROUP_CREATORS = 2,  /* accounts with the creator role */
  TALLY_COMMAND_GROUP_HOSTS = 3,     /* channel moderators (IRC: chanops), in the channel */
  TALLY_COMMAND_GROUP_OPERATORS = 4, /* server operators (TALLY sub-commands) */
};
/* One form of a command word that needs a role: the dispatcher's own rule
 * (since 1.5). A form matches when the command's second word is `sub`
 * ("" matches any second word, not the bare word) and, if `words` is not 0,
 * the command has exactly that many words. The first matching row of the
 * word applies; a row with any_of 0 says the form is open to everyone. */
typedef struct tally_command_role {
  const char *sub;  /* upper case second word, "" for any */
  uint32_t words;   /* 0 or the exact number of words of the form */
  uint32_t any_of;  /* TALLY_ROLE_* bits: the sender needs at least one (0: open) */
  uint32_t all_of;  /* TALLY_ROLE_* bits the sender needs besides, every one */
} tally_command_role;

#define TALLY_COMMAND_DOC_VERSION 3
typedef struct tally_command_doc {
  uint32_t size, version;
  const char *word;  /* upper case, as the engine dispatches it ("BUY") */
  const char *usage; /* the arguments after the word, "" for none */
  const char *help;  /* one short line, no chat-protocol wording */
  uint32_t flags;    /* enum tally_command_flag bits */
  uint32_t group;    /* enum tally_command_group */
  /* version >= 2 (since 1.5): the forms of this word that need a role, in
   * the order the dispatcher tries them; role_count 0: none does. */
  const tally_command_role *roles;
  uint32_t role_count;
  /* version >= 3 (since 1.7): the word's forms for admins
   * (TALLY_COMMAND_GROUP_OPERATORS), whole, "A <x> | A B <y>" like usage
   * (TALLY: "TALLY GRANT <account> <amount> | ..."); "" for none. An
   * adapter makes admin forms from it (XMPP's ad-hoc commands). */
  const char *operator_usage;
} tally_command_doc;
/* The doc and its strings are static: valid for the library's lifetime. */
typedef void (*tally_command_doc_cb)(void *ud, const tally_command_doc *doc);
/* Calls cb once per command word, in a fixed order, each word once. */
TALLY_API void tally_commands_describe(tally_command_doc_cb cb, void *ud);

/* The engine's rule for text it accepts in a command (and in every string
 * of a command frame): well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF) and no control characters (C0 including NUL,
 * CR, LF, TAB and CTCP's \x01, DEL, C1). TALLY_OK, TALLY_EBAD_UTF8, or
 * TALLY_EBAD_SYNTAX for a control character. An adapter that checks lines
 * before submitting them calls this, so it cannot disagree with the engine.
 * Since 1.3. */
TALLY_API int tally_text_check(const char *s, size_t len);

/* Stops like tally_engine_stop but does not wait for batches in flight,
 * for a host that must not block (a chat server unloading the module that
 * carries this library). The engine thread stops taking events, tells every
 * buyer whose payment it has not answered that it is pending
 * (TALLY_EPENDING: drain the effects after this call), closes its
 * PostgreSQL connections and is joined. A batch already sent is committed
 * or not by PostgreSQL, never half; the next engine start rebuilds from the
 * ledger and the buyer's RECEIPTS shows the outcome.
 * Waits at most `ms` for the thread (TALLY_ENGINE_STOP_FAST_MS is what a
 * host's loop can afford). TALLY_OK: joined, the engine may be freed and
 * the library unloaded. TALLY_EBUSY: the thread is still leaving (it was
 * connecting to PostgreSQL, bounded by the connect timeout; a start's load
 * waits on another session's table lock for at most 250 ms, then retries
 * later, since 1.7); call again or
 * tally_engine_free, which joins it, still without waiting for batches.
 * TALLY_EINVAL for a NULL engine. Idempotent. Since 1.5. */
enum { TALLY_ENGINE_STOP_FAST_MS = 500 };
TALLY_API int tally_engine_stop_within(tally_engine *engine, uint32_t ms);

/* Settings that may change while the engine runs (a chat server's rehash):
 * 1 if tally_engine_reconfigure applies `key` (a tally_config_set key:
 * rate_account, rate_channel, rate_global, rate_verify, pending_timeout,
 * highlight_repeat), 0 for every other key, which needs a new engine.
 * Since 1.5. */
TALLY_API int tally_config_key_live(const char *key);
/* Checks cfg as tally_config_check does (TALLY_ECONFIG and err on a bad
 * one, nothing applied), then applies its live keys (tally_config_key_live)
 * to the running engine, from its next tick (within tens of ms); every
 * other field of cfg is ignored. Safe from the host thread; never blocks.
 * Since 1.5. */
TALLY_API int tally_engine_reconfigure(tally_engine *engine, const tally_config *cfg,
                                       char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
