-- naive.sql — the schema a user would write instead of tally, used by the
-- baselines of `make bench` (bench/baseline_naive.c, bench/baseline_batched.c).
--
-- Design: hot balance and stock rows that every buy UPDATEs, a transfers table
-- with a UNIQUE idempotency key, and double-entry rows in naive_entries. The
-- constraint set matches tally's ledger (sql/001_ledger.sql): UNIQUE idem_key,
-- no foreign keys on the entries table, CHECKs on balance and stock.
--
-- Ids (fixed so clients can pick buyers and items without a lookup):
--   wallet 1                      the platform fees account
--   wallet 1000 + i               the creator of item i
--   wallet 1000000 + b            buyer b, b in 1..buyers
--   item i                        i in 1..items
-- Fee: 2.5 % of the price, integer division (price * 25 / 1000).

CREATE TABLE naive_wallets (
  id      bigint PRIMARY KEY,
  balance bigint NOT NULL CHECK (balance >= 0)
);

CREATE TABLE naive_items (
  id         bigint PRIMARY KEY,
  stock      int NOT NULL CHECK (stock >= 0),
  price      bigint NOT NULL CHECK (price > 0),
  creator_id bigint NOT NULL REFERENCES naive_wallets
);

CREATE TABLE naive_transfers (
  id         bigserial PRIMARY KEY,
  idem_key   text NOT NULL UNIQUE,
  buyer_id   bigint NOT NULL,
  item_id    bigint NOT NULL,
  amount     bigint NOT NULL CHECK (amount > 0),
  fee        bigint NOT NULL CHECK (fee >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE naive_entries (
  transfer_id bigint NOT NULL,
  account_id  bigint NOT NULL,
  amount      bigint NOT NULL CHECK (amount <> 0)   -- credit > 0 > debit
);

CREATE FUNCTION naive_fee(price bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN price * 25 / 1000;

-- One buy of one unit, in the caller's transaction (autocommit: one buy per
-- transaction). Returns the transfer id; a retried idem_key returns the
-- existing transfer and changes nothing. Sold out or insufficient funds
-- raise, which rolls back the transfer row too.
CREATE FUNCTION naive_buy(p_buyer bigint, p_item bigint, p_idem_key text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_id      bigint;
  v_amount  bigint;
  v_fee     bigint;
  v_creator bigint;
BEGIN
  INSERT INTO naive_transfers (idem_key, buyer_id, item_id, amount, fee)
    SELECT p_idem_key, p_buyer, p_item, it.price, naive_fee(it.price)
      FROM naive_items it WHERE it.id = p_item
    ON CONFLICT (idem_key) DO NOTHING
    RETURNING id, amount, fee INTO v_id, v_amount, v_fee;
  IF v_id IS NULL THEN
    SELECT t.id INTO v_id FROM naive_transfers t WHERE t.idem_key = p_idem_key;
    IF v_id IS NULL THEN
      RAISE EXCEPTION 'naive_buy: no item %', p_item USING ERRCODE = 'P0002';
    END IF;
    RETURN v_id;                          -- replay: already applied
  END IF;

  UPDATE naive_items SET stock = stock - 1
    WHERE id = p_item AND stock > 0
    RETURNING creator_id INTO v_creator;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'naive_buy: item % sold out', p_item USING ERRCODE = 'P0001';
  END IF;

  UPDATE naive_wallets SET balance = balance - v_amount
    WHERE id = p_buyer AND balance >= v_amount;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'naive_buy: insufficient funds for %', p_buyer
      USING ERRCODE = 'P0001';
  END IF;
  UPDATE naive_wallets SET balance = balance + (v_amount - v_fee) WHERE id = v_creator;
  UPDATE naive_wallets SET balance = balance + v_fee WHERE id = 1;

  INSERT INTO naive_entries (transfer_id, account_id, amount) VALUES
    (v_id, p_buyer, -v_amount),
    (v_id, v_creator, v_amount - v_fee),
    (v_id, 1, v_fee);
  RETURN v_id;
END $$;

-- The hand-batched baseline: up to thousands of buys in one call, set-based.
-- Same tables, same checks. Row locks are taken in id order (items, then
-- wallets) so that concurrent batches cannot deadlock, and only after the
-- contention-free inserts, so they are held for as short a time as possible.
-- A batch is all-or-nothing: one sold-out item or short wallet aborts it
-- (CHECK violation). Returns the number of buys applied (replays excluded).
CREATE FUNCTION batched_buy(p_keys text[], p_buyers bigint[], p_items bigint[])
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  v_count    int;
  v_item_ids bigint[];
  v_item_n   int[];
  v_acc_ids  bigint[];
  v_acc_d    bigint[];
BEGIN
  WITH ins AS (
    INSERT INTO naive_transfers (idem_key, buyer_id, item_id, amount, fee)
      SELECT u.k, u.b, u.i, it.price, naive_fee(it.price)
        FROM unnest(p_keys, p_buyers, p_items) AS u(k, b, i)
        JOIN naive_items it ON it.id = u.i
      ON CONFLICT (idem_key) DO NOTHING
      RETURNING id, buyer_id, item_id, amount, fee
  ), ent AS (
    INSERT INTO naive_entries (transfer_id, account_id, amount)
      SELECT ins.id, e.account_id, e.amount
        FROM ins
        JOIN naive_items it ON it.id = ins.item_id
        CROSS JOIN LATERAL (VALUES
          (ins.buyer_id, -ins.amount),
          (it.creator_id, ins.amount - ins.fee),
          (1::bigint, ins.fee)) AS e(account_id, amount)
      RETURNING account_id, amount
  )
  SELECT (SELECT count(*) FROM ins),
         (SELECT array_agg(item_id ORDER BY item_id) FROM
            (SELECT item_id FROM ins GROUP BY item_id) s),
         (SELECT array_agg(n ORDER BY item_id) FROM
            (SELECT item_id, count(*)::int AS n FROM ins GROUP BY item_id) s),
         (SELECT array_agg(account_id ORDER BY account_id) FROM
            (SELECT account_id FROM ent GROUP BY account_id) s),
         (SELECT array_agg(d ORDER BY account_id) FROM
            (SELECT account_id, sum(amount)::bigint AS d FROM ent GROUP BY account_id) s)
    INTO v_count, v_item_ids, v_item_n, v_acc_ids, v_acc_d;
  IF v_count = 0 THEN
    RETURN 0;
  END IF;

  -- Every batch credits the fees wallet: locking it first serialises the
  -- update phase of concurrent batches, so the row locks below cannot deadlock.
  PERFORM 1 FROM naive_wallets WHERE id = 1 FOR UPDATE;
  UPDATE naive_items it SET stock = it.stock - d.n       -- CHECK (stock >= 0)
    FROM unnest(v_item_ids, v_item_n) AS d(id, n) WHERE it.id = d.id;
  UPDATE naive_wallets w SET balance = w.balance + d.delta  -- CHECK (balance >= 0)
    FROM unnest(v_acc_ids, v_acc_d) AS d(id, delta) WHERE w.id = d.id;
  RETURN v_count;
END $$;

-- Seeds buyers funded with a large balance, one creator per item, the fees
-- wallet, and items whose stock never runs out in a benchmark run.
CREATE FUNCTION naive_seed(p_buyers int, p_items int) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO naive_wallets (id, balance) VALUES (1, 0);
  INSERT INTO naive_wallets (id, balance)
    SELECT 1000 + i, 0 FROM generate_series(1, p_items) AS i;
  INSERT INTO naive_wallets (id, balance)
    SELECT 1000000 + b, 1000000000000 FROM generate_series(1, p_buyers) AS b;
  INSERT INTO naive_items (id, stock, price, creator_id)
    SELECT i, 1000000000, 100 + (i * 37) % 900, 1000 + i
      FROM generate_series(1, p_items) AS i;
  ANALYZE naive_wallets;
  ANALYZE naive_items;
$$;
