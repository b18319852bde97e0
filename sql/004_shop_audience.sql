-- 004_shop_audience.sql — what live events sell and who takes part.
--
-- Co-op items: items.split lists "account_id:bps,..." (bps sum 10000; '' =
-- the creator alone). A purchase's transfer carries every share as a leg,
-- so a transfer may have more than three legs: legs 4.. go as flat arrays
-- x_acc/x_amt, each transfer naming its slice [t_xo:t_xe] (NULL for none),
-- so the common three-leg transfer costs no slicing.
-- Kinds (items.kind): 0 plain, 1 digital (delivery sent after commit),
-- 2 pass (REDEEM once: a redemptions row), 3 highlight tier of an event
-- (pins a message for show_s), 4 paid reaction of an event, 5 merch (the
-- buyer's shipping note in shipping_notes). A highlight's text, a
-- reaction's emote and a tip's message ride on the transfer as memo.
-- Limited editions: transfers.serial is the first serial number of a
-- purchase of a numbered item (its units are serial .. serial+qty-1).
-- Raffles: the seed stays secret in items.raffle_seed until the draw (the
-- operator of the database can read it: see docs/RAFFLE.md); entries are
-- append-only rows; the draw stores the entry hash and count it used.
-- Attendance: seconds each account was present in the event's channel
-- while it ran (the newest write wins, never lower). privacy_changes: an
-- account's choice not to be named in summaries (the newest row wins).
-- referral_codes: a creator's code that gives an affiliate bps of the
-- creator's takings; fixed once written.
-- Not money, and deletable by an admin: shipping notes (personal data sent
-- privately with SHIP) and creators' shop bios.

ALTER TABLE items
  ADD COLUMN split             text NOT NULL DEFAULT '',
  ADD COLUMN kind              smallint NOT NULL DEFAULT 0, -- see above
  ADD COLUMN delivery          text NOT NULL DEFAULT '',    -- digital: sent after commit
  ADD COLUMN drop_mode         smallint NOT NULL DEFAULT 0, -- 0 first come, 1 raffle
  ADD COLUMN raffle_seed       bytea,
  ADD COLUMN raffle_drawn      boolean NOT NULL DEFAULT false,
  ADD COLUMN raffle_entry_hash bytea,
  ADD COLUMN raffle_entries    int NOT NULL DEFAULT 0,
  ADD COLUMN show_s            int NOT NULL DEFAULT 0,       -- highlight tier: seconds shown
  ADD COLUMN attendees_only    boolean NOT NULL DEFAULT false; -- a drop only attendees may buy

ALTER TABLE transfers ADD COLUMN serial int CHECK (serial > 0);

CREATE TABLE raffle_entries (
  item_id    bigint NOT NULL,
  account_id bigint NOT NULL,
  seq        int NOT NULL,          -- arrival order within the raffle: the draw's order
  created_ms bigint NOT NULL,
  PRIMARY KEY (item_id, account_id)
);
CREATE TABLE redemptions (
  transfer_id bigint PRIMARY KEY,   -- the pass's purchase
  account_id  bigint NOT NULL,
  created_ms  bigint NOT NULL
);
CREATE TRIGGER raffle_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON raffle_entries
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER redemptions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON redemptions
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

CREATE TABLE attendance (
  event_id   bigint NOT NULL,
  account_id bigint NOT NULL,
  seconds    int NOT NULL CHECK (seconds >= 0),
  first_ms   bigint NOT NULL,
  PRIMARY KEY (event_id, account_id)
);
CREATE TABLE privacy_changes (
  id         bigserial PRIMARY KEY,
  account_id bigint NOT NULL,
  hidden     boolean NOT NULL,
  version    bigint NOT NULL,       -- the engine's change counter: the highest wins
  created_ms bigint NOT NULL,
  UNIQUE (account_id, version)      -- a row resent by a later batch is not a new choice
);
CREATE TABLE referral_codes (
  code         text PRIMARY KEY,
  creator_id   bigint NOT NULL,
  affiliate_id bigint NOT NULL,
  bps          int NOT NULL CHECK (bps > 0 AND bps <= 10000),
  created_ms   bigint NOT NULL
);
CREATE TRIGGER privacy_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON privacy_changes
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER referral_codes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON referral_codes
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

CREATE TABLE shipping_notes (
  transfer_id bigint PRIMARY KEY,   -- the merch purchase
  account_id  bigint NOT NULL,      -- its buyer
  note        text NOT NULL,
  updated_ms  bigint NOT NULL
);
CREATE TABLE creator_bios (
  account_id bigint PRIMARY KEY,
  bio        text NOT NULL,
  version    bigint NOT NULL,       -- the newest write wins, whatever order batches commit in
  updated_ms bigint NOT NULL
);

DROP FUNCTION tally_write_batch(bigint, bigint, bigint, int, text, text, text, bigint,
  bigint[], text[], smallint[], bigint[], text[], bigint[], bigint[], int[], text[], int[], boolean[], bigint[],
  bigint[], smallint[], text[], bigint[], bigint[], bigint[], int[], bigint[], bigint[], bigint[],
  bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], text[], text[], bigint[], bigint[], bigint[],
  bigint[], bigint, text[], bigint[], bigint[], int[], smallint[], bigint[], bigint[],
  bigint[], text[], text[], bigint[], bigint[], bigint[], bigint[], bigint[]);

CREATE FUNCTION tally_write_batch(
  p_batch bigint, p_first bigint, p_last bigint, p_leaves int, p_root text, p_sig text,
  p_key text, p_now bigint,
  a_id bigint[], a_name text[], a_kind smallint[],
  i_id bigint[], i_sku text[], i_creator bigint[], i_price bigint[], i_stock int[],
  i_title text[], i_refund int[], i_deleted boolean[], i_version bigint[],
  t_id bigint[], t_kind smallint[], t_key text[], t_acc bigint[], t_cp bigint[],
  t_item bigint[], t_qty int[], t_amt bigint[], t_ref bigint[], t_at bigint[],
  l_a1 bigint[], l_a2 bigint[], l_a3 bigint[],
  c_acc bigint[], c_price bigint[], r_acc bigint[], r_role text[], r_who text[],
  l_m1 bigint[], l_m2 bigint[], l_m3 bigint[], t_fp bigint[], p_epoch bigint,
  i_drop_channel text[], i_drop_start bigint[], i_drop_end bigint[], i_drop_per_user int[],
  i_drop_state smallint[], i_drop_event bigint[], t_event bigint[],
  e_id bigint[], e_channel text[], e_title text[], e_host bigint[], e_start bigint[], e_end bigint[],
  e_stopped bigint[], e_version bigint[],
  i_split text[], i_kind smallint[], i_delivery text[], i_drop_mode smallint[], i_raffle_seed text[],
  i_raffle_drawn boolean[], i_raffle_hash text[], i_raffle_entries int[],
  t_serial int[], t_xo int[], t_xe int[], x_acc bigint[], x_amt bigint[],
  en_item bigint[], en_acc bigint[], en_seq int[], en_at bigint[],
  rd_transfer bigint[], rd_acc bigint[], rd_at bigint[],
  i_show int[], i_attendees boolean[], t_memo text[],
  at_event bigint[], at_acc bigint[], at_seconds int[], at_first bigint[],
  pv_acc bigint[], pv_hidden boolean[], pv_version bigint[],
  rc_code text[], rc_creator bigint[], rc_aff bigint[], rc_bps int[],
  sh_transfer bigint[], sh_acc bigint[], sh_note text[], bio_acc bigint[], bio_text text[], bio_version bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(p_batch);
  PERFORM 1 FROM engine_lease WHERE id = 1 AND epoch = p_epoch FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'tally: another engine holds this ledger (epoch %)', p_epoch USING ERRCODE = 'TL001';
  END IF;
  IF p_leaves > 0 THEN
    INSERT INTO batches (id, first_transfer, last_transfer, leaf_count, merkle_root, signature, key_id, created_ms)
    VALUES (p_batch, p_first, p_last, p_leaves, decode(p_root, 'hex'), decode(p_sig, 'hex'), p_key, p_now)
    ON CONFLICT (id) DO NOTHING;
  END IF;
  INSERT INTO accounts (id, name, kind, created_ms)
    SELECT u.id, u.name, u.kind, p_now FROM unnest(a_id, a_name, a_kind) AS u(id, name, kind)
    ON CONFLICT DO NOTHING;
  INSERT INTO events (id, channel, title, host_id, start_ms, end_ms, stopped_ms, version)
    SELECT * FROM unnest(e_id, e_channel, e_title, e_host, e_start, e_end, e_stopped, e_version)
    ON CONFLICT (id) DO UPDATE SET end_ms = EXCLUDED.end_ms, stopped_ms = EXCLUDED.stopped_ms,
      title = EXCLUDED.title, version = EXCLUDED.version
    WHERE events.version < EXCLUDED.version;
  INSERT INTO items (id, sku, creator_id, price_minor, stock, title, refund_window_s, deleted, version,
                     drop_channel, drop_start_ms, drop_end_ms, drop_per_user, drop_state, drop_event,
                     split, kind, delivery, drop_mode, raffle_seed, raffle_drawn, raffle_entry_hash,
                     raffle_entries, show_s, attendees_only, updated_ms)
    SELECT u.id, u.sku, u.creator_id, u.price_minor, u.stock, u.title, u.refund_window_s, u.deleted,
           u.version, u.drop_channel, u.drop_start_ms, u.drop_end_ms, u.drop_per_user, u.drop_state,
           u.drop_event, u.split, u.kind, u.delivery, u.drop_mode, decode(u.seed, 'hex'), u.drawn,
           decode(u.hash, 'hex'), u.entries, u.show_s, u.attendees, p_now
    FROM unnest(i_id, i_sku, i_creator, i_price, i_stock, i_title, i_refund, i_deleted,
                i_version, i_drop_channel, i_drop_start, i_drop_end, i_drop_per_user,
                i_drop_state, i_drop_event, i_split, i_kind, i_delivery, i_drop_mode, i_raffle_seed,
                i_raffle_drawn, i_raffle_hash, i_raffle_entries, i_show, i_attendees)
      AS u(id, sku, creator_id, price_minor, stock, title, refund_window_s, deleted, version,
           drop_channel, drop_start_ms, drop_end_ms, drop_per_user, drop_state, drop_event,
           split, kind, delivery, drop_mode, seed, drawn, hash, entries, show_s, attendees)
    ON CONFLICT (id) DO UPDATE SET sku = EXCLUDED.sku, price_minor = EXCLUDED.price_minor,
      stock = EXCLUDED.stock, title = EXCLUDED.title, refund_window_s = EXCLUDED.refund_window_s,
      deleted = EXCLUDED.deleted, version = EXCLUDED.version, updated_ms = EXCLUDED.updated_ms,
      drop_channel = EXCLUDED.drop_channel, drop_start_ms = EXCLUDED.drop_start_ms,
      drop_end_ms = EXCLUDED.drop_end_ms, drop_per_user = EXCLUDED.drop_per_user,
      drop_state = EXCLUDED.drop_state, drop_event = EXCLUDED.drop_event,
      split = EXCLUDED.split, kind = EXCLUDED.kind, delivery = EXCLUDED.delivery,
      drop_mode = EXCLUDED.drop_mode, raffle_seed = EXCLUDED.raffle_seed,
      raffle_drawn = EXCLUDED.raffle_drawn, raffle_entry_hash = EXCLUDED.raffle_entry_hash,
      raffle_entries = EXCLUDED.raffle_entries, show_s = EXCLUDED.show_s,
      attendees_only = EXCLUDED.attendees_only
    WHERE items.version < EXCLUDED.version;
  INSERT INTO attendance (event_id, account_id, seconds, first_ms)
    SELECT * FROM unnest(at_event, at_acc, at_seconds, at_first)
    ON CONFLICT (event_id, account_id) DO UPDATE SET seconds = greatest(attendance.seconds, EXCLUDED.seconds);
  INSERT INTO privacy_changes (account_id, hidden, version, created_ms)
    SELECT u.acc, u.hidden, u.v, p_now FROM unnest(pv_acc, pv_hidden, pv_version) AS u(acc, hidden, v)
    ON CONFLICT DO NOTHING;
  INSERT INTO shipping_notes (transfer_id, account_id, note, updated_ms)
    SELECT u.*, p_now FROM unnest(sh_transfer, sh_acc, sh_note) AS u
    ON CONFLICT (transfer_id) DO UPDATE SET note = EXCLUDED.note, updated_ms = EXCLUDED.updated_ms
    WHERE shipping_notes.updated_ms <= EXCLUDED.updated_ms;
  INSERT INTO creator_bios (account_id, bio, version, updated_ms)
    SELECT u.*, p_now FROM unnest(bio_acc, bio_text, bio_version) AS u
    ON CONFLICT (account_id) DO UPDATE SET bio = EXCLUDED.bio, version = EXCLUDED.version,
      updated_ms = EXCLUDED.updated_ms
    WHERE creator_bios.version < EXCLUDED.version;
  INSERT INTO referral_codes (code, creator_id, affiliate_id, bps, created_ms)
    SELECT u.*, p_now FROM unnest(rc_code, rc_creator, rc_aff, rc_bps) AS u ON CONFLICT DO NOTHING;
  INSERT INTO raffle_entries (item_id, account_id, seq, created_ms)
    SELECT * FROM unnest(en_item, en_acc, en_seq, en_at) ON CONFLICT DO NOTHING;
  INSERT INTO redemptions (transfer_id, account_id, created_ms)
    SELECT * FROM unnest(rd_transfer, rd_acc, rd_at) ON CONFLICT DO NOTHING;
  INSERT INTO consents (account_id, price_minor, created_ms)
    SELECT u.acc, u.price, p_now FROM unnest(c_acc, c_price) AS u(acc, price)
    ON CONFLICT DO NOTHING;
  INSERT INTO role_changes (account_id, role, by_account, created_ms)
    SELECT u.acc, u.role, u.who, p_now FROM unnest(r_acc, r_role, r_who) AS u(acc, role, who);
  RETURN QUERY
    INSERT INTO transfers (id, batch_id, kind, idem_key, request_fp, account_id, counterparty_id,
                           item_id, qty, amount_minor, ref_transfer, created_ms, leg_accounts, leg_amounts,
                           event_id, serial, memo)
    SELECT u.id, p_batch, u.kind, u.k, u.fp, u.acc, u.cp, u.item, u.qty, u.amt, u.ref, u.at,
           array_remove(ARRAY[u.a1, u.a2, u.a3], NULL)
             || CASE WHEN u.xo IS NULL THEN '{}'::bigint[] ELSE x_acc[u.xo:u.xe] END,
           array_remove(ARRAY[u.m1, u.m2, u.m3], NULL)
             || CASE WHEN u.xo IS NULL THEN '{}'::bigint[] ELSE x_amt[u.xo:u.xe] END,
           u.ev, u.serial, u.memo
    FROM unnest(t_id, t_kind, t_key, t_acc, t_cp, t_item, t_qty, t_amt, t_ref, t_at,
                l_a1, l_a2, l_a3, l_m1, l_m2, l_m3, t_fp, t_event, t_serial, t_xo, t_xe, t_memo)
      AS u(id, kind, k, acc, cp, item, qty, amt, ref, at, a1, a2, a3, m1, m2, m3, fp, ev, serial, xo, xe, memo)
    ON CONFLICT DO NOTHING
    RETURNING transfers.id;
END $$;
