/* state.h — the engine's in-memory model: accounts, items, purchases,
 * idempotency keys, and the operations that move money between them.
 *
 * Contract: only the engine thread touches a tally__state. All tables are
 * fixed-size arrays allocated by tally__state_init from the config; nothing
 * allocates afterwards. Money rules that hold at every step:
 *   - available(a) = balance - held >= 0 for every account but the external
 *     source (asserted);
 *   - debits are held when an operation is decided, credits are applied only
 *     when its batch commits, so any subset of in-flight batches may commit or
 *     fail without a wallet going below zero;
 *   - for every item, sold + held <= stock (when stock is limited).
 * An operation (tally__op) carries its legs; the legs of a transfer sum to
 * zero (asserted in tally__op_hold). */
#ifndef TALLY_STATE_H
#define TALLY_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "map.h"
#include "names.h"
#include "raffle.h"
#include "say.h"
#include "split.h"
#include "tally.h"
#include "text.h"

enum {
  TALLY__SKU_BYTES_MAX = 32,
  TALLY__TITLE_BYTES_MAX = 96,
  /* The longest names the engine keeps (ops, accounts, rooms); a frame may
   * carry longer ones (tally.h), refused as TALLY_ETOOBIG (command.c). */
  TALLY__ORIGIN_KEPT_BYTES_MAX = TALLY_ORIGIN_BYTES_MAX,     /* interned (names.h) */
  TALLY__IDENTITY_KEPT_BYTES_MAX = TALLY_IDENTITY_BYTES_MAX, /* interned */
  /* Rooms are still arrays in ops and features (not interned yet): a
   * Matrix room id (at most 255) fits, a MUC JID longer than that is
   * refused. 64 before 1.6. */
  TALLY__ROOM_KEPT_BYTES_MAX = 255,
  /* A wallet's name: "user:<identity>" or "<network>:<identity>", and a NUL. */
  TALLY__ACCOUNT_NAME_BYTES = TALLY__NETWORK_NAME_BYTES_MAX + 1 + TALLY_IDENTITY_BYTES_MAX + 1,
  /* "grant-request:" ..., "grant:i<identity id>/<msg id>" (command.c tally__cmd_key) */
  TALLY__KEY_BYTES_MAX = TALLY_MSG_ID_BYTES_MAX + 48,
  TALLY__RECENT_RECEIPTS = 8,
  TALLY__LEGS_MAX = 1 + TALLY__PAYEES_MAX, /* the buyer, creators, the platform fee */
  TALLY__DELIVERY_BYTES_MAX = 200, /* digital goods: the text or link sent after commit */
  TALLY__SERIAL_STOCK_MAX = 1000000, /* limited editions up to this many units are numbered */
  TALLY__RAFFLE_ENTRIES_MAX = 65536, /* raffle entries in memory, all raffles together */
  TALLY__REFCODES_MAX = 1024,        /* referral codes, all creators together */
  TALLY__AUDIENCE_MAX = 65536,       /* (event, account) rows: attendance, spending */
  TALLY__HIGHLIGHTS_SLOTS = 256,     /* = TALLY__HIGHLIGHTS_MAX of highlight.h */
  TALLY__REACTION_KINDS = 8,         /* distinct emotes counted per event and minute */
  TALLY__SHIP_NOTE_BYTES_MAX = 200,
  TALLY__SHIP_NOTES_KEPT = 1024,     /* newest shipping notes in memory, for ORDERS */
  TALLY__BIO_BYTES_MAX = 120,
  TALLY__BIOS_MAX = 1024,            /* creators with a bio */
  TALLY__CONSENTS_PENDING_MAX = 65536, /* first-time buyers asked to CONFIRM at once */
  TALLY__CONSENT_EXTENSIONS_MAX = 3,   /* CONFIRM EXTEND, each adds consent_ttl_s */
  TALLY__CHANNELS_MAX = 4096,
  TALLY__EVENTS_MAX = 256,     /* events in memory (running and recent) */
  TALLY__DROPS_ACTIVE_MAX = 256, /* scheduled or live drops at once */
  TALLY__KEY_RETENTION_MS = 24 * 3600 * 1000, /* idempotency keys kept a day */
  TALLY__NETWORKS_MAX = 64,    /* chat networks the engine has seen (networks rows) */
  TALLY__NETWORK_IRC_ID = 1,   /* sql/010: the network of every account written before it */
};

/* A chat network (sql/010 networks). Its id is the engine's (1 for "irc",
 * the next free one for a network first seen); the row goes with the first
 * batch that carries an identity of it (ON CONFLICT DO NOTHING). */
typedef struct tally__network {
  uint16_t id;
  char name[TALLY__NETWORK_NAME_BYTES_MAX + 1];
} tally__network;

enum tally__account_kind { TALLY__ACCOUNT_USER = 1, TALLY__ACCOUNT_FEES = 2, TALLY__ACCOUNT_EXTERNAL = 3 };
enum {
  TALLY__TRANSFER_PURCHASE = 1,
  TALLY__TRANSFER_TIP = 2,
  TALLY__TRANSFER_REFUND = 3,
  TALLY__TRANSFER_GRANT = 4,
  TALLY__TRANSFER_LINK = 5, /* sql/013: a joining identity's balance moved into the person's wallet */
  /* sql/020: a free unit an earned reward gave. In memory it is a purchase
   * (op->kind PURCHASE: stock, serials, per-user units, deliveries) whose
   * amount is 0, which no paid purchase can be (prices are > 0 and a
   * discount leaves at least one minor unit); the ledger stores kind 6. */
  TALLY__TRANSFER_REWARD_UNIT = 6,
};
/* The kind the ledger (and the receipt leaf) stores for an op or purchase
 * of kind `kind` moving `amount`. */
static inline uint32_t tally__transfer_ledger_kind(uint32_t kind, int64_t amount) {
  return kind == TALLY__TRANSFER_PURCHASE && amount == 0 ? TALLY__TRANSFER_REWARD_UNIT : kind;
}
enum { TALLY__ACCOUNT_FEES_ID = 1, TALLY__ACCOUNT_EXTERNAL_ID = 2 };
#define TALLY__NONE UINT32_MAX
/* All credits ever granted stay below this, so no balance, and no sum of two
 * balances, can overflow int64. */
#define TALLY__MONEY_SUPPLY_MAX (INT64_C(1) << 62)

typedef struct tally__account {
  uint64_t id;
  int64_t balance;     /* sum of committed entries */
  int64_t held;        /* debits decided, not yet committed */
  int64_t spent_today; /* purchases + tips on day spent_day (UTC) */
  int32_t spent_day;
  uint8_t kind;
  uint8_t is_creator;
  uint8_t consented;   /* 0 never, 1 given (maybe not yet committed) */
  uint32_t consent_slot; /* its pending CONFIRM in st->consents, or TALLY__NONE */
  bool persisted;      /* accounts row committed */
  bool consent_persisted, role_dirty, dirty_listed;
  bool welcome_inflight; /* demo welcome grant decided, not yet committed */
  bool unnamed;          /* prefers not to be named in summaries */
  bool privacy_dirty;    /* its privacy choice is not stored yet */
  bool agreed_lost;      /* a price it agreed to did not fit the agreed table: ask again */
  uint64_t privacy_version;
  uint64_t role_version;
  /* The role and privacy versions a sealed batch carries (0: none). A row
   * in flight is not sent again by another batch: two concurrent writes of
   * one row would race on its unique keys, and role_changes would record
   * the change twice. */
  uint64_t role_sent_version, privacy_sent_version;
  uint16_t row_batches, consent_batches; /* sealed batches carrying its account / consent row */
  uint32_t role_by;    /* who made its unsaved role change (role_changes.by_account), or TALLY__NONE */
  int64_t rate_tokens_milli, rate_at_ms;
  uint64_t recent[TALLY__RECENT_RECEIPTS];
  uint32_t recent_next;
  /* A user account is, today, the wallet of exactly one identity (network,
   * name): identity_id is its identities row (0 for the system accounts),
   * net its network (index into st->networks), and name + label the
   * identity's name ("user:alice" -> "alice", "matrix:@a:b.org" -> "@a:b.org"). */
  uint64_t identity_id;
  uint16_t net;
  uint16_t label;
  uint32_t name; /* its name in st->names (space TALLY__NAMES_SPACE_ACCOUNT): tally__account_name */
  /* LINK (sql/013): the wallet this identity's commands use, TALLY__NONE
   * for its own. Always a root (an account whose person is NONE): links do
   * not chain. link_state says whether the link is stored or in flight;
   * linked_count counts the identities linked to this wallet. */
  uint32_t person;
  uint8_t link_state; /* enum tally__link_state */
  uint32_t linked_count;
  /* Wrong LINK codes this identity sent since link_fails_mono (a window). */
  uint8_t link_fails;
  uint64_t link_fails_mono;
  /* The wallet it was last linked to (TALLY__NONE never) and that link's
   * row id: its purchases older than the link are the person's, whose
   * refund rights stay with the person after an UNLINK. */
  uint32_t joined;
  uint64_t joined_id;
  int64_t first_seen_ms; /* wall clock tally first saw it (accounts.created_ms); 0 unknown */
} tally__account;

enum tally__link_state {
  TALLY__LINK_NONE = 0,
  TALLY__LINK_PENDING = 1,   /* its link is in a batch not yet settled */
  TALLY__LINK_LINKED = 2,    /* stored */
  TALLY__LINK_UNLINKING = 3, /* linked, its unlink in flight */
};

enum tally__item_kind {
  TALLY__KIND_PLAIN = 0,
  TALLY__KIND_DIGITAL = 1, /* delivery text sent privately after commit; not refundable */
  TALLY__KIND_PASS = 2,    /* REDEEM once; a redeemed pass is not refundable */
  TALLY__KIND_HIGHLIGHT = 3, /* an event's highlight tier: pins a message for show_s */
  TALLY__KIND_REACTION = 4,  /* an event's paid reaction */
  TALLY__KIND_MERCH = 5,     /* physical: the buyer sends a shipping note privately (SHIP) */
};
enum tally__drop_mode { TALLY__MODE_FIRST = 0, TALLY__MODE_RAFFLE = 1 };

/* Who shares an item's takings after the platform fee: count 0 means its
 * creator alone. Fixed once a unit has sold, so refunds can recompute it. */
typedef struct tally__split {
  uint8_t count;
  uint32_t account[TALLY__SPLIT_MAX]; /* account indices */
  uint16_t bps[TALLY__SPLIT_MAX];     /* sum TALLY__BPS_WHOLE */
} tally__split;

enum tally__drop_state {
  TALLY__DROP_NONE = 0,
  TALLY__DROP_SCHEDULED = 1,
  TALLY__DROP_LIVE = 2,
  TALLY__DROP_CLOSED = 3,
};

typedef struct tally__item {
  uint64_t id, version;
  uint64_t sent_version; /* the version a sealed batch carries, 0 none (see accounts) */
  /* A drop: an item that sells only in its window, announced in a channel. */
  uint8_t drop_state;           /* enum tally__drop_state */
  bool drop_low_said, drop_out_said;
  uint8_t drop_countdown_said;  /* countdown lines said: bit 0 at a minute, bit 1 at 10 s */
  bool drop_close_due;          /* closed: announce once nothing is held */
  uint32_t drop_per_user;       /* 0: no limit */
  int64_t drop_start_ms, drop_end_ms;         /* wall clock, stored */
  uint64_t drop_start_mono, drop_end_mono;    /* what the timers follow */
  uint64_t drop_event;          /* the event it belongs to, 0 if none */
  uint16_t drop_net;            /* the network of drop_channel (st->networks index) */
  char drop_channel[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  uint32_t creator; /* account index */
  int64_t price;
  int32_t stock; /* -1 unlimited */
  int32_t sold, held;
  uint32_t refund_window_s;
  bool deleted, dirty, dirty_listed;
  uint8_t kind;      /* enum tally__item_kind */
  uint8_t drop_mode; /* enum tally__drop_mode */
  bool raffle_drawn; /* winners decided (stored with the entry hash) */
  uint32_t raffle_entries;     /* entries counted into the draw, once drawn */
  uint32_t raffle_seq;         /* next entry's seq */
  uint32_t show_s;             /* highlight tier: seconds a message stays pinned */
  bool attendees_only;         /* a drop only accounts present in its event may buy */
  uint32_t entries_inflight;   /* entries decided, not yet committed or failed */
  uint8_t raffle_seed[32];     /* secret until the draw; its SHA-256 is announced */
  uint8_t raffle_entry_hash[32];
  tally__split split;
  uint64_t *serials;  /* limited editions: bitmap of serial numbers taken */
  uint32_t serial_low; /* no serial below this is free */
  char sku[TALLY__SKU_BYTES_MAX + 1];
  char title[TALLY__TITLE_BYTES_MAX + 1];
  char delivery[TALLY__DELIVERY_BYTES_MAX + 1];
} tally__item;

typedef struct tally__event {
  uint64_t id, version;
  uint32_t host;               /* account index */
  int64_t start_ms, end_ms, stopped_ms; /* wall clock; stopped 0 while running */
  uint64_t end_mono;
  bool dirty, dirty_listed;
  bool summary_due;            /* stopped: announce once nothing is in flight */
  uint32_t inflight;           /* its ops decided, not yet committed or released */
  uint64_t sales, tips;        /* committed, rebuilt from the ledger at start */
  int64_t sales_minor, tips_minor;
  uint16_t net;                /* a room is (network, channel): #live on two networks is two rooms */
  char channel[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  char title[TALLY__TITLE_BYTES_MAX + 1];
  /* Reactions of the current minute (highlight.c). */
  uint64_t reactions_until_mono;
  uint32_t reaction_count[TALLY__REACTION_KINDS];
  char reaction[TALLY__REACTION_KINDS][17];
} tally__event;

typedef struct tally__purchase {
  uint64_t transfer_id;
  uint32_t buyer, item;
  int64_t amount, fee;
  int64_t refunded;      /* committed refunds */
  int64_t refund_held;   /* refunds in flight */
  int64_t fee_refunded;  /* fee returned by committed refunds */
  int64_t fee_held;      /* fee returned by refunds in flight */
  int64_t created_ms;
  uint32_t coop_slot;    /* its shares in st->coop, or TALLY__NONE: creator + fee only */
  uint32_t serial;       /* first serial number, 0 if not numbered */
  uint32_t qty;
  bool committed, live;
  bool redeemed;         /* a pass that was redeemed (no refund) */
  bool redeem_held;      /* its REDEEM is in flight */
} tally__purchase;

/* A co-op purchase's payees and what each has returned by refunds: the
 * creators of its split, then the platform fee. */
typedef struct tally__coop {
  uint64_t transfer_id;
  uint32_t inflight; /* ops in flight that change it: the purchase, refunds */
  uint8_t count;
  uint32_t account[TALLY__PAYEES_MAX];
  int64_t credit[TALLY__PAYEES_MAX], returned[TALLY__PAYEES_MAX], held[TALLY__PAYEES_MAX];
} tally__coop;

/* One account in one event: presence, spending, earnings. */
typedef struct tally__audience {
  uint64_t event_id, version;
  uint32_t account;
  int64_t first_ms;      /* wall clock of its first presence; 0 never present */
  uint64_t joined_mono;  /* present since (monotonic), 0 when absent */
  uint64_t total_ms;     /* presence before joined_mono */
  int64_t spent, earned; /* committed purchases and tips; creator legs */
  bool dirty, dirty_listed;
} tally__audience;

/* A referral code: an affiliate's share of a creator's takings. */
typedef struct tally__refcode {
  char code[TALLY__SKU_BYTES_MAX + 1];
  uint32_t creator, affiliate;
  uint16_t bps;
  bool persisted;
  bool sent; /* a sealed batch carries it */
} tally__refcode;

/* A paid highlight waiting for its turn or showing (highlight.c). Its slot
 * is taken when its purchase is decided (RESERVED), so a purchase that
 * commits always has one; a failed purchase gives it back. */
enum tally__highlight_state {
  TALLY__HL_FREE = 0,
  TALLY__HL_QUEUED = 1,
  TALLY__HL_SHOWING = 2,
  TALLY__HL_REFUND = 3,   /* to refund (not shown) */
  TALLY__HL_SHOWN = 4,    /* to record as shown */
  TALLY__HL_RESERVED = 5, /* its purchase is in flight */
};
typedef struct tally__highlight {
  uint64_t transfer_id;
  uint32_t buyer, item;
  uint64_t until_mono;    /* showing until; 0 while queued */
  uint64_t next_say_mono; /* next repeat of its announcement */
  uint64_t refund_retry_mono, refund_give_up_mono; /* REFUND the payee cannot pay yet */
  uint8_t state;          /* enum tally__highlight_state */
  /* A copy, not a name handle: 256 slots of 3 KB, and no reference to
   * keep while it waits for its turn. */
  char origin[TALLY_ORIGIN_BYTES_MAX + 1];
  char text[TALLY_TEXT_BYTES_MAX / 2];
  uint16_t net; /* the network of origin: the buyer's identity's (LINK: not always its wallet's) */
} tally__highlight;

/* A recent shipping note, for the creator's ORDERS. */
typedef struct tally__ship_note {
  uint64_t transfer_id;
  char note[TALLY__SHIP_NOTE_BYTES_MAX + 1];
} tally__ship_note;

/* A creator's SHOP bio. */
typedef struct tally__bio {
  uint32_t account;
  uint64_t version, sent_version;
  bool dirty;
  char text[TALLY__BIO_BYTES_MAX + 1];
} tally__bio;

/* One entry into a raffle drop; durable (persisted) before it is told so. */
typedef struct tally__raffle_entry {
  uint32_t item, account;
  uint32_t seq; /* arrival order within its raffle (stored: the draw's order) */
  bool persisted, live;
  uint32_t origin; /* where to tell the result: a name in st->names (a reference while live) */
  /* In the draw (live_raffle.c): TALLY__DRAWN_*, charge attempts that
   * failed at batch level, why it was passed over (a TALLY_E* code). */
  uint8_t drawn, tries;
  int32_t pass_reason;
  uint16_t net; /* the network of origin (LINK: the entrant's identity's, not always its wallet's) */
} tally__raffle_entry;
enum {
  TALLY__DRAWN_NOT = 0,       /* not reached by the draw (yet) */
  TALLY__DRAWN_CHARGING = 1,  /* its charge is in flight */
  TALLY__DRAWN_WON = 2,       /* charged: committed */
  TALLY__DRAWN_PASS_NEW = 3,  /* passed over, its raffle_passes row not yet sent */
  TALLY__DRAWN_PASS_SENT = 4, /* that row in flight */
  TALLY__DRAWN_PASSED = 5,    /* that row stored */
};

enum tally__key_state { TALLY__KEY_FREE = 0, TALLY__KEY_INFLIGHT = 1, TALLY__KEY_DONE = 2 };
/* A key's text is kept inline when it fits (nearly all: an IRC key, an
 * XMPP stanza id, a Matrix event id with its prefix), else in the slot's
 * row of keys_long, whose pages are touched only by long keys. Inline
 * text keeps a slot at 128 bytes: a slot of the longest key (344) made
 * the ring 2.7 times the memory, every byte of it touched once the ring
 * wrapped, and made decide_per_s 0.82 of 00405e8's (make bench, session 12). */
enum { TALLY__KEY_INLINE_BYTES = 93 };
typedef struct tally__key {
  uint64_t hash, fingerprint, transfer_id;
  int64_t created_ms;
  uint8_t state;
  uint8_t is_long; /* the text is in keys_long, not in key */
  char key[TALLY__KEY_INLINE_BYTES + 1];
} tally__key;
_Static_assert(sizeof(tally__key) == 128, "a key slot is two cache lines");

typedef struct tally__leg {
  uint32_t account;
  int64_t amount; /* credit > 0 > debit */
} tally__leg;

/* TRANSFER moves money; ACK answers once its batch committed; ENTRY and
 * REDEEM (and SHIP) write a record row (raffle entry, pass redemption,
 * shipping note) and answer once it committed. */
enum tally__op_type {
  TALLY__OP_TRANSFER = 1,
  TALLY__OP_ACK = 2,
  TALLY__OP_ENTRY = 3,
  TALLY__OP_REDEEM = 4,
  TALLY__OP_SHIP = 5, /* a merch purchase's shipping note (in note) */
  TALLY__OP_HIDE = 6, /* a moderator hides a held tip message (ref_transfer: the tip) */
  TALLY__OP_PASS = 7, /* a raffle entry drawn and passed over (entry_slot; fee: the reason code) */
  TALLY__OP_LINK = 8, /* an identity_links row without a transfer (features/link.c) */
  /* A feature's ledger fact (rewards, quizzes: sql/015): `fact` points at
   * its JSON object, owned by the feature until the op settles; batch.c
   * writes it through tally_write_facts. */
  TALLY__OP_FACT = 9,
};

/* A TRANSFER's reward fact (op->reward_fact, sql/015): a purchase that
 * used earned reward op->reward_grant (op->discount off), or the full
 * refund of one that gives it back. */
enum { TALLY__REWARD_FACT_NONE = 0, TALLY__REWARD_FACT_USE = 1, TALLY__REWARD_FACT_RETURN = 2 };
/* A fact's JSON object, at most this long (it takes the op's share of the
 * batch text: below TALLY__BATCH_OP_TEXT_BYTES). */
enum { TALLY__FACT_BYTES_MAX = 2048 };
typedef struct tally__op {
  uint8_t type, kind, leg_count;
  bool told_pending;
  bool welcome; /* the demo welcome grant of `account` */
  bool held_message; /* TIP: its message waits for moderators (a held_messages row) */
  bool coop_legs;    /* PURCHASE: its legs are a co-op record (a coop_purchases row) */
  bool raffle_charge; /* PURCHASE: a raffle winner's charge (entry_slot: the entry) */
  bool audited;      /* GRANT by an operator: an audit_log row names `actor` */
  uint32_t actor;    /* account index of the operator, when audited */
  uint64_t event_id; /* the event it happens in, 0 if none */
  int64_t grant_request; /* grant_requests.id it applies, 0 if none */
  uint32_t account, counterparty, item, qty;
  uint32_t purchase_slot, key_slot;
  uint32_t entry_slot; /* ENTRY: its raffle entry */
  uint32_t serial;     /* PURCHASE of a limited edition: first serial, else 0 */
  int64_t amount, fee;
  uint64_t transfer_id, ref_transfer;
  int64_t created_ms;   /* wall clock, goes into the receipt */
  uint64_t decided_mono_ms;
  uint64_t req_id;
  uint32_t maker;       /* TRANSFER: the account whose identity's command made it (see decide.h) */
  uint16_t net;         /* the network of origin and channel (st->networks index) */
  uint32_t effects_bytes; /* out-ring bytes reserved for its effects while pending (engine.c) */
  /* An identity_links row (sql/013) goes with it: a LINK op, or a TRANSFER
   * of kind LINK (the balance move). link_identity: the identity's account
   * index; account: the person's wallet; link_by: who agreed; link_slot:
   * its code in the link feature's tally__links (TALLY__NONE for an unlink). */
  uint8_t link_event; /* 0 none, 1 link, 2 unlink */
  uint32_t link_identity, link_by, link_slot;
  uint64_t link_id;
  const char *fact;       /* FACT: its JSON object (feature-owned until settled) */
  uint64_t reward_grant;  /* TRANSFER with reward_fact: the earned reward's id */
  int64_t discount;       /* TRANSFER, reward_fact USE: minor units taken off the price */
  uint8_t reward_fact;    /* TALLY__REWARD_FACT_* */
  /* Who to answer: a name in st->names, space net, holding a reference
   * from its decision until it settles (tally__engine_pending_done). */
  uint32_t origin;
  char channel[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  char note[TALLY_TEXT_BYTES_MAX / 2]; /* what to say when committed (ACK), a memo */
  /* Last, so clearing an op (everything before origin) skips them:
   * leg_count says how many are set. */
  tally__leg legs[TALLY__LEGS_MAX];
} tally__op;

typedef struct tally__pending_consent {
  uint32_t account, item, qty;
  uint32_t ref; /* referral code index, TALLY__NONE for none */
  int64_t price_total;
  uint64_t expires_mono_ms;
  uint8_t extended; /* CONFIRM EXTENDs so far */
  char code[8];
  char key[TALLY__KEY_BYTES_MAX + 1];
} tally__pending_consent;

typedef struct tally__bucket {
  uint64_t hash;
  int64_t tokens_milli, at_ms;
  uint16_t net; /* the bucket of room (net, name) */
  char name[TALLY__ROOM_KEPT_BYTES_MAX + 1];
} tally__bucket;

typedef struct tally__state {
  const tally_config *cfg;
  tally__account *accounts;
  uint32_t account_count;
  tally__map account_by_name;
  tally__map identity_by_name; /* (network, identity name) -> account index */
  tally__network networks[TALLY__NETWORKS_MAX];
  uint16_t network_count;
  tally__item *items;
  uint32_t item_count;
  tally__map item_by_sku;
  tally__purchase *purchases;
  uint32_t purchase_next; /* ring cursor; ring sorted by transfer id */
  tally__key *keys;
  char *keys_long;   /* keys_max rows of TALLY__KEY_BYTES_MAX + 1 (keys.c) */
  uint32_t key_next; /* ring cursor */
  tally__map key_gen[2];  /* generational index over the ring (keys.c) */
  uint64_t *key_bloom[2]; /* one Bloom filter per generation */
  uint32_t key_bloom_mask;
  uint32_t key_gen_count; /* keys added to the current generation */
  uint8_t key_gen_cur;
  tally__pending_consent *consents; /* TALLY__CONSENTS_PENDING_MAX, reused once expired */
  uint32_t consent_cursor;
  tally__bucket channels[TALLY__CHANNELS_MAX];
  tally__map channel_by_name;
  uint32_t channel_count;
  uint32_t channel_cursor; /* where the search for an idle bucket goes on */
  int64_t global_tokens_milli, global_at_ms; /* the bucket of all commands together */
  uint32_t *dirty_accounts, dirty_account_count;
  uint32_t *dirty_items, dirty_item_count;
  tally__event *events;           /* TALLY__EVENTS_MAX */
  uint32_t event_count;
  uint32_t drops_active[TALLY__DROPS_ACTIVE_MAX]; /* item indices of scheduled/live drops */
  uint32_t drops_active_count;
  uint32_t drops_closing; /* closed drops whose "closed" line is still due */
  uint64_t drops_paused_mono; /* the ledger refused writes (disk full) since then; 0: not paused */
  /* Units each account has of each per-user-limited drop (held included). */
  tally__map per_user_index;
  struct tally__per_user { uint64_t key; int32_t units; } *per_user;
  uint32_t per_user_count;
  /* The unit price each account last agreed to for each item (bought at, or
   * confirmed): a BUY above it asks for a fresh CONFIRM. */
  tally__map agreed_index;
  struct tally__agreed { uint64_t key; int64_t price; } *agreed;
  uint32_t agreed_count;
  tally__coop *coop; /* cfg->coop_purchases_max, a ring */
  uint32_t coop_next;
  tally__raffle_entry *entries; /* TALLY__RAFFLE_ENTRIES_MAX */
  uint32_t entry_count;         /* used slots (live or not) from the start */
  uint32_t *draw_scratch;       /* TALLY__RAFFLE_ENTRIES_MAX, the draw's permutation */
  uint32_t raffles_due;         /* closed raffles not yet drawn */
  tally__audience *audience;    /* TALLY__AUDIENCE_MAX (audience.c) */
  uint32_t audience_count;
  tally__map audience_index;
  uint32_t *dirty_audience, dirty_audience_count;
  uint64_t audience_flush_mono;
  tally__highlight *highlights; /* TALLY__HIGHLIGHTS_SLOTS */
  tally__refcode refcodes[TALLY__REFCODES_MAX];
  tally__ship_note *ship_notes; /* TALLY__SHIP_NOTES_KEPT, a ring */
  uint32_t ship_next;
  tally__bio *bios;             /* TALLY__BIOS_MAX */
  uint32_t bio_count;
  uint32_t refcode_count;
  struct tally__draw_run {      /* the draw in progress (one at a time) */
    bool active;
    uint32_t item, n, next, stepped, winners, units;
    bool charging;           /* the charge of position `next` is in flight */
    uint64_t retry_mono_ms;  /* a failed charge is tried again from then */
    uint32_t unnamed; /* winners with TALLY PRIVACY on: counted, not named */
    tally__raffle_rng rng;
    char named[TALLY_TEXT_BYTES_MAX / 2]; /* first winners, for the announcement */
    tally__say_marks named_marks;         /* their names' spans in `named` (accounts) */
  } draw;
  uint32_t fees, external; /* indices of sys:fees and sys:external */
  int64_t grants_pending;  /* grants decided, not yet committed */
  uint64_t next_id; /* every id the engine assigns: accounts, items, transfers, batches */
  uint64_t consent_seq;
  tally__names names; /* account names, and the origins of ops and raffle entries */
} tally__state;

/* Whose refund rights a purchase carries: its buyer's, or, for a buyer
 * that joined a wallet with LINK after it, that person's. */
static inline uint32_t tally__purchase_owner(const tally__state *st, const tally__purchase *p) {
  const tally__account *a = &st->accounts[p->buyer];
  return a->joined != TALLY__NONE && p->transfer_id < a->joined_id ? a->joined : p->buyer;
}

/* The wallet account index's commands use: its person's when linked. */
static inline uint32_t tally__account_person(const tally__state *st, uint32_t index) {
  if (index >= st->account_count) return index;
  uint32_t p = st->accounts[index].person;
  return p == TALLY__NONE ? index : p;
}

int tally__state_init(tally__state *st, const tally_config *cfg);
void tally__state_free(tally__state *st);
uint64_t tally__state_take_id(tally__state *st);

/* The network named `name` (index into st->networks), added when new:
 * TALLY_OK, TALLY_ENETWORK (not a valid name), TALLY_ENAMES_FULL. */
int tally__network_get(tally__state *st, const char *name, uint16_t *net);
/* Adds a network read from the ledger: TALLY_ENAMES_FULL, TALLY_ENETWORK. */
int tally__network_put(tally__state *st, uint16_t id, const char *name);
/* The account of identity (net, name), or TALLY__NONE. */
uint32_t tally__identity_find(const tally__state *st, uint16_t net, const char *name, size_t len);
/* Finds or creates (in memory, not yet persisted) the wallet of identity
 * (net, name): a new one is named "user:<name>" on the irc network when the
 * name has no ':' (as before identities), else "<network>:<name>", which
 * never starts "user:" or "sys:", so account names stay unique. */
int tally__identity_get(tally__state *st, uint16_t net, const char *name, uint32_t *index);
/* Attaches identity (id, net, its name at account name + label) to an
 * account read from the ledger. */
int tally__identity_attach(tally__state *st, uint32_t index, uint64_t id, uint16_t net, uint16_t label);
/* An account's ledger name ("user:alice", "sys:fees"). */
static inline const char *tally__account_name(const tally__state *st, uint32_t index) {
  return tally__names_str(&st->names, st->accounts[index].name);
}
/* An origin (who to answer) as a name of network net, with a reference:
 * TALLY_OK or TALLY_ENAMES_FULL. */
static inline int tally__origin_take(tally__state *st, uint16_t net, const char *origin, uint32_t *handle) {
  return tally__names_intern(&st->names, net, origin, strlen(origin), handle);
}
static inline const char *tally__origin_str(const tally__state *st, uint32_t handle) {
  return tally__names_str(&st->names, handle);
}
/* The identity's name of a user account, for replies. */
const char *tally__account_label(const tally__state *st, uint32_t index);

uint32_t tally__account_find(const tally__state *st, const char *name);
/* Finds or creates (in memory, not yet persisted) the account "name". */
int tally__account_get(tally__state *st, const char *name, uint8_t kind, uint32_t *index);
int64_t tally__account_available(const tally__account *a);
void tally__account_mark_dirty(tally__state *st, uint32_t index);
void tally__account_note_receipt(tally__account *a, uint64_t transfer_id);

uint32_t tally__item_find(const tally__state *st, const char *sku);
int tally__item_add(tally__state *st, const char *sku, uint32_t *index);
void tally__item_mark_dirty(tally__state *st, uint32_t index);
int32_t tally__item_left(const tally__item *it); /* -1 unlimited */

/* Idempotency keys (keys.c): find returns the slot or TALLY__NONE. The
 * last keys_max/2 to keys_max keys are remembered. */
int tally__keys_init(tally__state *st);
void tally__keys_free(tally__state *st);
uint32_t tally__key_find(const tally__state *st, const char *key);
/* The text of the key in slot (inline or in keys_long). */
const char *tally__key_text(const tally__state *st, uint32_t slot);
/* False when the next key would overwrite one still in flight. */
bool tally__keys_room(const tally__state *st);
uint32_t tally__key_add(tally__state *st, const char *key, uint64_t fingerprint,
                        uint64_t transfer_id, uint8_t key_state, int64_t now_ms);
void tally__key_forget(tally__state *st, uint32_t slot);

uint32_t tally__purchase_find(const tally__state *st, uint64_t transfer_id);
/* False when the next purchase would overwrite one still in use. */
bool tally__purchases_room(const tally__state *st);
uint32_t tally__purchase_add(tally__state *st, const tally__purchase *p);
void tally__purchase_forget(tally__state *st, uint32_t slot);

/* Room in the highlight table (256, all channels) for one more highlight
 * of item bought by buyer: TALLY_OK, TALLY_EBUSY (the table or the item's
 * channel share, highlights_per_channel, is full) or TALLY_ETOO_MANY (the
 * buyer's share, highlights_per_account). Every slot counts that is not
 * free, those reserved by purchases in flight included. */
int tally__highlight_room(const tally__state *st, uint32_t buyer, uint32_t item);

/* The audience row of (event, account), created when asked; TALLY__NONE if
 * the pool is full (audience_rows.c). */
uint32_t tally__audience_row(tally__state *st, uint64_t event_id, uint32_t account, bool create);
/* Has account been present in the event's channel while it ran? (audience_rows.c) */
bool tally__audience_attended(const tally__state *st, uint64_t event_id, uint32_t account);
/* Wall clock of account's first presence in the event (0: never), for a
 * quiz's "present when it started" (features/quiz). */
int64_t tally__audience_first_ms(const tally__state *st, uint64_t event_id, uint32_t account);
/* Seconds the audience row has been present so far (audience_rows.c). */
int32_t tally__audience_seconds(const tally__state *st, uint32_t row, uint64_t now_mono);

/* Co-op shares (state.c): a free record for a new co-op purchase, or
 * TALLY__NONE when the next one is still in use; the record of purchase p
 * while it is still kept, else TALLY__NONE. */
uint32_t tally__coop_take(tally__state *st);
uint32_t tally__coop_of(const tally__state *st, const tally__purchase *p);

/* Serial numbers of limited editions (state.c): the first of `qty` free
 * consecutive serials, taken (0 when the item is not numbered or no run is
 * free); give them back when the purchase is released. */
bool tally__item_numbered(const tally__item *it);
int tally__item_serials_alloc(tally__item *it);
uint32_t tally__serial_take(tally__item *it, uint32_t qty);
void tally__serial_give_back(tally__item *it, uint32_t first, uint32_t qty);
void tally__serial_mark(tally__item *it, uint32_t first, uint32_t qty);

/* Money movement of one op: hold its debits (and its stock), apply it when
 * the batch commits, or release it when the batch fails. */
void tally__op_hold(tally__state *st, const tally__op *op);
void tally__op_commit(tally__state *st, const tally__op *op);
void tally__op_release(tally__state *st, const tally__op *op);

/* Units `account` has (committed and held) of drop `item`; *slot gets the
 * counter to change, or NULL when the table is full. */
int32_t tally__per_user_units(tally__state *st, uint32_t account, uint32_t item, int32_t **slot);

/* The unit price `account` last agreed to for `item` (paid at or
 * confirmed; purchases_max pairs are kept): false when none is known. Note
 * one when a purchase is decided; a pair that does not fit marks the
 * account agreed_lost, so its BUYs ask again rather than charge unasked. */
bool tally__agreed_price(const tally__state *st, uint32_t account, uint32_t item, int64_t *price);
void tally__agreed_note(tally__state *st, uint32_t account, uint32_t item, int64_t price);

/* An op's event (if any) has one more, or one less, op in flight. */
void tally__event_inflight(tally__state *st, uint64_t event_id, int delta);

/* Operations that can be in flight at once (open + sealed batches): the
 * key and purchase rings must be larger than this (tally_config_check). */
uint32_t tally__ops_in_flight_max(const tally_config *cfg);

/* UTC day number of a wall-clock time in ms. */
int32_t tally__utc_day(int64_t wall_ms);

#endif
