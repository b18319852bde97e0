/* batch_rows.c — the catalog rows (accounts, consents, roles, items,
 * events, attendance, privacy, refcodes, bios) that ride with a batch: which
 * are taken when it is sealed, and what happens to them when it settles. */
#include "batch_params.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- catalog rows ------------------------------------------------------------ */
/* An item, role, privacy, bio or referral-code row goes in one sealed
 * batch at a time: a version already in flight is not taken again until
 * that batch settles (tally__batch_rows_settled). Two batches on two
 * connections writing one new item would race on its unique sku, and
 * role_changes, which has no key, would record one change twice.
 * The exceptions go again while in flight, as their inserts are safe when
 * concurrent (every unique key is an arbiter of their ON CONFLICT):
 * - account and consent rows, because rows of other tables reference them
 *   (the insert waits for the other batch, then does nothing);
 * - event and attendance rows, whose slots can be reused or compacted
 *   while a batch is in flight (live.c event_slot, audience_rows.c), so a
 *   mark kept by slot index could land on another row.
 * A batch is opened for rows alone only when some row is not in flight
 * (tally__batch_rows_waiting); account rows count their batches for that. */
bool tally__batch_row_taken(const tally__batch *b, uint32_t index, uint8_t what) {
  for (uint32_t r = 0; r < b->row_count; r++)
    if (b->rows[r].index == index && b->rows[r].what == what) return true;
  return false;
}

static void row_add(tally__batch *b, tally__state *st, uint32_t index, uint64_t version, uint8_t what) {
  assert(b->row_count < TALLY__BATCH_ROWS_MAX);
  b->rows[b->row_count++] = (tally__batch_row){index, version, what};
  if (what == TALLY__ROW_ACCOUNT) st->accounts[index].row_batches++;
  if (what == TALLY__ROW_CONSENT) st->accounts[index].consent_batches++;
}

/* Rows with a version (or a one-time row) not yet in any sealed batch: what
 * take_rows takes and tally__batch_rows_waiting looks for. */
static bool role_due(const tally__account *a) { return a->role_dirty && a->role_sent_version != a->role_version; }
static bool privacy_due(const tally__account *a) {
  return a->privacy_dirty && a->privacy_sent_version != a->privacy_version;
}
static bool refcode_due(const tally__refcode *rc) { return !rc->persisted && !rc->sent; }
static bool bio_due(const tally__bio *bio) { return bio->dirty && bio->sent_version != bio->version; }
static bool item_due(const tally__item *it) { return it->dirty && it->sent_version != it->version; }

static void take_account_rows(tally__batch *b, tally__state *st) {
  for (uint32_t k = 0; k < st->dirty_account_count && b->row_count + 4 <= TALLY__BATCH_ROWS_MAX; k++) {
    uint32_t i = st->dirty_accounts[k];
    tally__account *a = &st->accounts[i];
    if (!a->persisted) row_add(b, st, i, 0, TALLY__ROW_ACCOUNT);
    if (a->consented && !a->consent_persisted) row_add(b, st, i, 0, TALLY__ROW_CONSENT);
    if (role_due(a)) {
      row_add(b, st, i, a->role_version, TALLY__ROW_ROLE);
      a->role_sent_version = a->role_version;
    }
    if (privacy_due(a)) {
      row_add(b, st, i, a->privacy_version, TALLY__ROW_PRIVACY);
      a->privacy_sent_version = a->privacy_version;
    }
  }
}

void tally__batch_take_rows(tally__batch *b, tally__state *st) {
  take_account_rows(b, st);
  for (uint32_t k = 0; k < st->dirty_audience_count && b->row_count < TALLY__BATCH_ROWS_MAX; k++) {
    uint32_t i = st->dirty_audience[k];
    if (st->audience[i].dirty) row_add(b, st, i, st->audience[i].version, TALLY__ROW_ATTEND);
  }
  for (uint32_t i = 0; i < st->refcode_count && b->row_count < TALLY__BATCH_ROWS_MAX; i++) {
    if (!refcode_due(&st->refcodes[i])) continue;
    row_add(b, st, i, 0, TALLY__ROW_REFCODE);
    st->refcodes[i].sent = true;
  }
  for (uint32_t i = 0; i < st->bio_count && b->row_count < TALLY__BATCH_ROWS_MAX; i++) {
    tally__bio *bio = &st->bios[i];
    if (!bio_due(bio)) continue;
    row_add(b, st, i, bio->version, TALLY__ROW_BIO);
    bio->sent_version = bio->version;
  }
  /* An event row references its host's account row, an item row its
   * creator's: each goes with its account row (accounts are inserted
   * first), or not at all. */
  for (uint32_t i = 0; i < st->event_count && b->row_count + 2 <= TALLY__BATCH_ROWS_MAX; i++) {
    const tally__event *ev = &st->events[i];
    if (!ev->dirty) continue;
    if (!st->accounts[ev->host].persisted && !tally__batch_row_taken(b, ev->host, TALLY__ROW_ACCOUNT))
      row_add(b, st, ev->host, 0, TALLY__ROW_ACCOUNT);
    row_add(b, st, i, ev->version, TALLY__ROW_EVENT);
  }
  for (uint32_t k = 0; k < st->dirty_item_count && b->row_count + 2 <= TALLY__BATCH_ROWS_MAX; k++) {
    uint32_t i = st->dirty_items[k];
    tally__item *it = &st->items[i];
    if (!item_due(it)) continue;
    if (!st->accounts[it->creator].persisted && !tally__batch_row_taken(b, it->creator, TALLY__ROW_ACCOUNT))
      row_add(b, st, it->creator, 0, TALLY__ROW_ACCOUNT);
    row_add(b, st, i, it->version, TALLY__ROW_ITEM);
    it->sent_version = it->version;
  }
}

bool tally__batch_rows_waiting(const tally__state *st) {
  for (uint32_t k = 0; k < st->dirty_account_count; k++) {
    const tally__account *a = &st->accounts[st->dirty_accounts[k]];
    if (!a->persisted && a->row_batches == 0) return true;
    if (a->consented && !a->consent_persisted && a->consent_batches == 0) return true;
    if (role_due(a) || privacy_due(a)) return true;
  }
  for (uint32_t k = 0; k < st->dirty_audience_count; k++)
    if (st->audience[st->dirty_audience[k]].dirty) return true;
  for (uint32_t i = 0; i < st->refcode_count; i++)
    if (refcode_due(&st->refcodes[i])) return true;
  for (uint32_t i = 0; i < st->bio_count; i++)
    if (bio_due(&st->bios[i])) return true;
  for (uint32_t i = 0; i < st->event_count; i++)
    if (st->events[i].dirty) return true;
  for (uint32_t k = 0; k < st->dirty_item_count; k++)
    if (item_due(&st->items[st->dirty_items[k]])) return true;
  return false;
}

void tally__batch_rows_settled(const tally__batch *b, tally__state *st) {
  for (uint32_t r = 0; r < b->row_count; r++) {
    const tally__batch_row *row = &b->rows[r];
    uint64_t *sent = NULL;
    switch (row->what) {
    case TALLY__ROW_ITEM: sent = &st->items[row->index].sent_version; break;
    case TALLY__ROW_BIO: sent = &st->bios[row->index].sent_version; break;
    case TALLY__ROW_ACCOUNT: st->accounts[row->index].row_batches--; break;
    case TALLY__ROW_CONSENT: st->accounts[row->index].consent_batches--; break;
    case TALLY__ROW_ROLE: sent = &st->accounts[row->index].role_sent_version; break;
    case TALLY__ROW_PRIVACY: sent = &st->accounts[row->index].privacy_sent_version; break;
    case TALLY__ROW_REFCODE: st->refcodes[row->index].sent = false; break;
    default: break;
    }
    /* A later batch may carry a newer version by now: that one stays marked. */
    if (sent && *sent == row->version) *sent = 0;
  }
}
