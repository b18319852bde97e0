-- 008_ledger_fixes.sql — the ledger's currency decimals, and advisory lock
-- keys that cannot collide (issue 9, #10 and #17).
--
-- #10 Why: an amount is stored in minor units, and only the decimals say
-- what a minor unit is. They were a setting of each engine and a flag of
-- `tally grant` (default 2), so a 0-decimal deployment granted 100 times
-- what was typed. The first engine to start on a ledger records its
-- `decimals` here; an engine configured otherwise refuses to start, and
-- `tally grant` reads them from here. One row, never changed.
CREATE TABLE ledger_currency (
  id         smallint PRIMARY KEY CHECK (id = 1),
  decimals   smallint NOT NULL CHECK (decimals BETWEEN 0 AND 6),
  created_ms bigint NOT NULL
);
CREATE TRIGGER ledger_currency_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_currency
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- #17: writer 0's session lock and the migration lock now take the two-key
-- form (class 1952541817, "taly"; see core/src/migrate.h), which PostgreSQL
-- keeps apart from the one-bigint keys. The one-bigint space is left to
-- batch ids alone, so tally_write_batch and tally_lookup_keys keep
-- pg_advisory_xact_lock(batch_id) unchanged (no copy of the 98-parameter
-- function here).

-- #16 Why: a key the engine no longer holds in memory (older than a day, or
-- pushed out by keys_max) can be decided again. Its transfer was skipped by
-- ON CONFLICT while the batch row, signed over every leaf, committed: that
-- batch's proofs failed for good. Joined to the batch statement after the
-- writes (UNION ALL runs its parts in order, in one transaction): a batch
-- that would commit fewer transfers than it signed is refused as a whole
-- (TL002), and the engine answers the ops whose keys the ledger holds with
-- their first answer and re-seals the others under a new batch id. A resend
-- of a batch that committed earlier finds all its transfers, and passes.
-- The batch's transfers have ids in [p_first, p_last]: the range lets the
-- count use the primary key (transfers.batch_id has no index, and a scan of
-- the whole table per batch made every commit slower as the ledger grew).
CREATE FUNCTION tally_batch_whole(p_batch bigint, p_first bigint, p_last bigint, p_leaves int)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  IF p_leaves > 0 THEN
    SELECT count(*) INTO n FROM transfers WHERE id BETWEEN p_first AND p_last AND batch_id = p_batch;
    IF n <> p_leaves THEN
      RAISE EXCEPTION 'tally: batch % would commit % of its % signed transfers (a key is taken)', p_batch, n, p_leaves
        USING ERRCODE = 'TL002';
    END IF;
  END IF;
END $$;
