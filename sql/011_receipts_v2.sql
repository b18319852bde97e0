-- 011_receipts_v2.sql — receipts name the network.
--
-- Why: with identities (sql/010) a receipt should say which network and
-- identity a transfer was made from, and leave room for a shard and a
-- reward, so that later issues need no receipt version of their own. Every
-- batch signed before this migration keeps leaf version 1 (its receipts
-- still verify as they are: "tally-receipt-v1", tokens "tr1."); every batch
-- inserted after it gets version 2 by default: the engine of this release
-- signs "tally-receipt-v2" leaves (core/src/receipts/receipt.h), and
-- tally_write_batch does not name the column, so no function changes.

ALTER TABLE batches ADD COLUMN leaf_version smallint NOT NULL DEFAULT 1
  CHECK (leaf_version BETWEEN 1 AND 2);
ALTER TABLE batches ALTER COLUMN leaf_version SET DEFAULT 2;
