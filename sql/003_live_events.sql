-- 003_live_events.sql — micro-events and timed drops.
--
-- A drop is an item with a window: its row in items gains the channel it
-- sells in, its start and end (wall clock, ms), a per-buyer limit and its
-- state. An event is a time box in a channel; every transfer records the
-- event it happened in (event_id), so an event's summary can be rebuilt
-- from the ledger after a restart. Both are catalog rows written with the
-- next batch, like items.

ALTER TABLE items
  ADD COLUMN drop_channel  text,            -- NULL: not a drop
  ADD COLUMN drop_start_ms bigint,
  ADD COLUMN drop_end_ms   bigint,
  ADD COLUMN drop_per_user int NOT NULL DEFAULT 0,   -- 0: no limit
  ADD COLUMN drop_state    smallint NOT NULL DEFAULT 0, -- 0 none, 1 scheduled, 2 live, 3 closed
  ADD COLUMN drop_event    bigint;

ALTER TABLE transfers ADD COLUMN event_id bigint;     -- the event it happened in, if any

CREATE TABLE events (
  id         bigint PRIMARY KEY,
  channel    text NOT NULL,
  title      text NOT NULL,
  host_id    bigint NOT NULL REFERENCES accounts,
  start_ms   bigint NOT NULL,
  end_ms     bigint NOT NULL,               -- planned end
  stopped_ms bigint,                        -- actual end; NULL while running
  version    bigint NOT NULL
);

DROP FUNCTION tally_write_batch(bigint, bigint, bigint, int, text, text, text, bigint,
  bigint[], text[], smallint[], bigint[], text[], bigint[], bigint[], int[], text[], int[], boolean[], bigint[],
  bigint[], smallint[], text[], bigint[], bigint[], bigint[], int[], bigint[], bigint[], bigint[],
  bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], text[], text[], bigint[], bigint[], bigint[],
  bigint[], bigint);

-- As in 002, plus drop columns on items, event_id on transfers and event rows.
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
  e_stopped bigint[], e_version bigint[])
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
                     drop_channel, drop_start_ms, drop_end_ms, drop_per_user, drop_state, drop_event, updated_ms)
    SELECT u.*, p_now FROM unnest(i_id, i_sku, i_creator, i_price, i_stock, i_title, i_refund, i_deleted,
                                  i_version, i_drop_channel, i_drop_start, i_drop_end, i_drop_per_user,
                                  i_drop_state, i_drop_event)
      AS u(id, sku, creator_id, price_minor, stock, title, refund_window_s, deleted, version,
           drop_channel, drop_start_ms, drop_end_ms, drop_per_user, drop_state, drop_event)
    ON CONFLICT (id) DO UPDATE SET sku = EXCLUDED.sku, price_minor = EXCLUDED.price_minor,
      stock = EXCLUDED.stock, title = EXCLUDED.title, refund_window_s = EXCLUDED.refund_window_s,
      deleted = EXCLUDED.deleted, version = EXCLUDED.version, updated_ms = EXCLUDED.updated_ms,
      drop_channel = EXCLUDED.drop_channel, drop_start_ms = EXCLUDED.drop_start_ms,
      drop_end_ms = EXCLUDED.drop_end_ms, drop_per_user = EXCLUDED.drop_per_user,
      drop_state = EXCLUDED.drop_state, drop_event = EXCLUDED.drop_event
    WHERE items.version < EXCLUDED.version;
  INSERT INTO consents (account_id, price_minor, created_ms)
    SELECT u.acc, u.price, p_now FROM unnest(c_acc, c_price) AS u(acc, price)
    ON CONFLICT DO NOTHING;
  INSERT INTO role_changes (account_id, role, by_account, created_ms)
    SELECT u.acc, u.role, u.who, p_now FROM unnest(r_acc, r_role, r_who) AS u(acc, role, who);
  RETURN QUERY
    INSERT INTO transfers (id, batch_id, kind, idem_key, request_fp, account_id, counterparty_id,
                           item_id, qty, amount_minor, ref_transfer, created_ms, leg_accounts, leg_amounts,
                           event_id)
    SELECT u.id, p_batch, u.kind, u.k, u.fp, u.acc, u.cp, u.item, u.qty, u.amt, u.ref, u.at,
           array_remove(ARRAY[u.a1, u.a2, u.a3], NULL), array_remove(ARRAY[u.m1, u.m2, u.m3], NULL), u.ev
    FROM unnest(t_id, t_kind, t_key, t_acc, t_cp, t_item, t_qty, t_amt, t_ref, t_at,
                l_a1, l_a2, l_a3, l_m1, l_m2, l_m3, t_fp, t_event)
      AS u(id, kind, k, acc, cp, item, qty, amt, ref, at, a1, a2, a3, m1, m2, m3, fp, ev)
    ON CONFLICT DO NOTHING
    RETURNING transfers.id;
END $$;
