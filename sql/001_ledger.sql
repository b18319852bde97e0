-- 001_ledger.sql — the double-entry ledger.
--
-- Why it looks like this:
-- * The engine is the single writer of stock and balances and keeps them in
--   memory, so PostgreSQL holds only append-only facts. There is no hot
--   "balance" row to UPDATE per buy: a balance is the sum of its entries.
-- * Ids are assigned by the engine (the single writer, guarded by an advisory
--   lock) counting on from the largest id it finds at start, so a whole batch
--   is one INSERT ... SELECT FROM unnest(...) statement.
-- * Each transfer's idempotency key is UNIQUE: a retried batch (commit outcome
--   unknown) or a retried command cannot apply twice.
-- * A transfer row carries its own legs (leg_accounts[i] moves leg_amounts[i],
--   credit > 0 > debit): one narrow row per buy instead of one row per leg,
--   which halves what PostgreSQL writes per buy. `entries` is a view that
--   unnests them, so every reader still sees one row per leg.
-- * No foreign keys from transfers to accounts or items on purpose: per-row
--   RI triggers would cost more than the rest of the insert. `tally check`
--   verifies them instead.
-- * Ledger tables refuse UPDATE and DELETE with a statement trigger.

CREATE TABLE accounts (
  id         bigint PRIMARY KEY,
  name       text NOT NULL UNIQUE,       -- 'user:alice', 'sys:fees', 'sys:external'
  kind       smallint NOT NULL,          -- 1 user, 2 platform fees, 3 external source
  created_ms bigint NOT NULL
);

CREATE TABLE signing_keys (
  key_id     text PRIMARY KEY,           -- hex of the first 8 bytes of sha256(public_key)
  public_key bytea NOT NULL CHECK (length(public_key) = 32),
  created_ms bigint NOT NULL
);

CREATE TABLE batches (
  id            bigint PRIMARY KEY,      -- engine-assigned, increasing
  first_transfer bigint NOT NULL,        -- receipts of the batch: ids in this range
  last_transfer  bigint NOT NULL,
  leaf_count    int NOT NULL CHECK (leaf_count > 0),
  merkle_root   bytea NOT NULL CHECK (length(merkle_root) = 32),
  signature     bytea NOT NULL CHECK (length(signature) = 64),
  key_id        text NOT NULL REFERENCES signing_keys,
  created_ms    bigint NOT NULL,
  CHECK (first_transfer <= last_transfer)
);

CREATE TABLE items (
  id              bigint PRIMARY KEY,
  sku             text NOT NULL UNIQUE,
  creator_id      bigint NOT NULL REFERENCES accounts,
  price_minor     bigint NOT NULL CHECK (price_minor > 0),
  stock           int CHECK (stock IS NULL OR stock >= 0),  -- NULL: unlimited
  title           text NOT NULL,
  refund_window_s int NOT NULL CHECK (refund_window_s >= 0),
  deleted         boolean NOT NULL DEFAULT false,
  version         bigint NOT NULL,   -- engine's change counter: the newest write wins
  updated_ms      bigint NOT NULL
);

-- kind: 1 purchase, 2 tip, 3 refund, 4 grant
CREATE TABLE transfers (
  id              bigint PRIMARY KEY,
  batch_id        bigint,                      -- its batch (no FK: `tally check` verifies)
  kind            smallint NOT NULL CHECK (kind BETWEEN 1 AND 4),
  idem_key        text NOT NULL UNIQUE,
  request_fp      bigint NOT NULL,             -- hash of the request as typed: a reused key
                                               -- with other parameters is refused
  account_id      bigint NOT NULL,             -- buyer, tipper, refunded buyer, grantee
  counterparty_id bigint,                      -- tip recipient
  item_id         bigint,
  qty             int NOT NULL CHECK (qty >= 0),
  amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
  ref_transfer    bigint,                      -- refund -> its purchase
  created_ms      bigint NOT NULL,
  memo            text,
  leg_accounts    bigint[] NOT NULL,
  leg_amounts     bigint[] NOT NULL,
  CHECK (cardinality(leg_accounts) = cardinality(leg_amounts) AND cardinality(leg_amounts) >= 2)
);

-- One row per leg: the double-entry view of the ledger.
CREATE VIEW entries AS
  SELECT t.id AS transfer_id, l.account_id, l.amount_minor
  FROM transfers t, unnest(t.leg_accounts, t.leg_amounts) AS l(account_id, amount_minor);

-- A buyer's explicit consent before the first purchase.
CREATE TABLE consents (
  account_id  bigint PRIMARY KEY REFERENCES accounts,
  price_minor bigint NOT NULL,
  created_ms  bigint NOT NULL
);

-- Role changes, append-only; the newest row per account wins.
CREATE TABLE role_changes (
  id         bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts,
  role       text NOT NULL CHECK (role IN ('creator', 'none')),
  by_account text NOT NULL,
  created_ms bigint NOT NULL
);

-- Grants asked for by the CLI. The engine (single writer) picks them up,
-- applies each exactly once as a transfer keyed 'grant-request:<id>'.
CREATE TABLE grant_requests (
  id           bigserial PRIMARY KEY,
  account      text NOT NULL,
  amount_minor bigint NOT NULL CHECK (amount_minor > 0),
  actor        text NOT NULL,
  created_ms   bigint NOT NULL
);

-- Audit trail of admin actions (grants from the CLI or from IRC operators).
CREATE TABLE audit_log (
  id         bigserial PRIMARY KEY,
  actor      text NOT NULL,
  action     text NOT NULL,
  detail     text NOT NULL,
  created_ms bigint NOT NULL
);

CREATE FUNCTION tally_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'tally: % is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END $$;

CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON transfers
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER batches_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON batches
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER roles_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON role_changes
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- The two system accounts exist from the start (ids below the first block).
INSERT INTO accounts (id, name, kind, created_ms) VALUES
  (1, 'sys:fees', 2, 0),
  (2, 'sys:external', 3, 0);
