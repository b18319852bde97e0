-- 002_fenced_batches.sql — one engine at a time, proven by every batch.
--
-- Why: the engine is the single writer of stock and balances. An advisory
-- lock on one connection is not enough: if that connection drops, another
-- engine can start, load the ledger and spend the same balances while the
-- first engine's other connections still commit. So every batch proves it
-- belongs to the current lease holder:
--   * a starting engine bumps engine_lease.epoch (an UPDATE, which waits for
--     every batch still holding the row FOR SHARE, i.e. still committing);
--   * every batch locks the row FOR SHARE with its epoch; a batch of an
--     older epoch fails with SQLSTATE TL001 and the old engine stops.
-- And a batch whose outcome was lost must not be settled while an earlier
-- attempt of it may still run (a backend cut off from its client can still
-- commit): each attempt holds an advisory lock on the batch id until it ends,
-- and the key lookup takes the same lock before it looks.

CREATE TABLE engine_lease (
  id       int PRIMARY KEY CHECK (id = 1),
  epoch    bigint NOT NULL,
  holder   text NOT NULL,
  since_ms bigint NOT NULL
);
INSERT INTO engine_lease VALUES (1, 0, '', 0);

-- One batch, in this order: batch lock, lease check, batch row, accounts,
-- items (which reference accounts), consents, role changes, transfers.
-- Returns the ids of the transfers it inserted; a retry inserts nothing twice.
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
  l_m1 bigint[], l_m2 bigint[], l_m3 bigint[], t_fp bigint[], p_epoch bigint)
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
  INSERT INTO items (id, sku, creator_id, price_minor, stock, title, refund_window_s, deleted, version, updated_ms)
    SELECT u.*, p_now FROM unnest(i_id, i_sku, i_creator, i_price, i_stock, i_title, i_refund, i_deleted, i_version)
      AS u(id, sku, creator_id, price_minor, stock, title, refund_window_s, deleted, version)
    ON CONFLICT (id) DO UPDATE SET sku = EXCLUDED.sku, price_minor = EXCLUDED.price_minor,
      stock = EXCLUDED.stock, title = EXCLUDED.title, refund_window_s = EXCLUDED.refund_window_s,
      deleted = EXCLUDED.deleted, version = EXCLUDED.version, updated_ms = EXCLUDED.updated_ms
    WHERE items.version < EXCLUDED.version;
  INSERT INTO consents (account_id, price_minor, created_ms)
    SELECT u.acc, u.price, p_now FROM unnest(c_acc, c_price) AS u(acc, price)
    ON CONFLICT DO NOTHING;
  INSERT INTO role_changes (account_id, role, by_account, created_ms)
    SELECT u.acc, u.role, u.who, p_now FROM unnest(r_acc, r_role, r_who) AS u(acc, role, who);
  RETURN QUERY
    INSERT INTO transfers (id, batch_id, kind, idem_key, request_fp, account_id, counterparty_id,
                           item_id, qty, amount_minor, ref_transfer, created_ms, leg_accounts, leg_amounts)
    SELECT u.id, p_batch, u.kind, u.k, u.fp, u.acc, u.cp, u.item, u.qty, u.amt, u.ref, u.at,
           array_remove(ARRAY[u.a1, u.a2, u.a3], NULL), array_remove(ARRAY[u.m1, u.m2, u.m3], NULL)
    FROM unnest(t_id, t_kind, t_key, t_acc, t_cp, t_item, t_qty, t_amt, t_ref, t_at,
                l_a1, l_a2, l_a3, l_m1, l_m2, l_m3, t_fp)
      AS u(id, kind, k, acc, cp, item, qty, amt, ref, at, a1, a2, a3, m1, m2, m3, fp)
    ON CONFLICT DO NOTHING
    RETURNING transfers.id;
END $$;

-- Which of these keys does the ledger hold, once no attempt of the batch is
-- still running? VOLATILE: the query takes its snapshot after the lock.
CREATE FUNCTION tally_lookup_keys(p_batch bigint, p_keys text[])
RETURNS TABLE (idem_key text, id bigint, request_fp bigint) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(p_batch);
  RETURN QUERY SELECT t.idem_key, t.id, t.request_fp FROM transfers t WHERE t.idem_key = ANY(p_keys);
END $$;
