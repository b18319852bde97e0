-- 007_leg_kinds_raffle_passes.sql — what kind of legs a purchase has, stored
-- with it instead of guessed from their count.
--
-- Why: start-up rebuilt a purchase's co-op record (each payee's credit, for
-- proportional refunds) for purchases whose item has a split or that have
-- more than three legs. A referral purchase without a fee leg (fee_bps = 0,
-- or a fee that rounds to 0) has three legs: buyer, creator, affiliate. It
-- was rebuilt as a plain purchase, and its refund after a restart took the
-- affiliate's share from the creator. Now the purchase's own batch writes a
-- coop_purchases row for every purchase whose legs are a co-op record
-- (creators by their shares, then an affiliate, then the fee).
--
-- Purchases written before this migration have no such row: for them (ids
-- up to the mark below) the old inference stays, the best there is.
--
-- Raffles: a drawn entry that is not charged is passed over, and why is
-- stored (raffle_passes: one row per entry passed over, with the reason),
-- so `tally draw` can tell a passed-over winner from one the engine
-- skipped, and a draw that restarts skips the same entries again.
--
-- The batch statement calls tally_write_coop_purchases and
-- tally_write_raffle_passes after
-- tally_write_batch (UNION ALL, one transaction), as 006 does.

CREATE TABLE coop_purchases (
  transfer_id bigint PRIMARY KEY   -- the purchase (no FK: written in its own batch)
);

CREATE TABLE ledger_marks (
  name  text PRIMARY KEY,
  value bigint NOT NULL
);
-- Transfers up to this id were written before coop_purchases existed.
INSERT INTO ledger_marks (name, value)
  SELECT 'coop_purchases_from', coalesce(max(id), 0) FROM transfers;

CREATE TRIGGER coop_purchases_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON coop_purchases
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER ledger_marks_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_marks
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- Written only with its purchase: a purchase the ledger did not take (its
-- key was used before) gets none; a retried batch writes nothing twice.
CREATE FUNCTION tally_write_coop_purchases(p_batch bigint, cp_transfer bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO coop_purchases (transfer_id)
    SELECT u.id FROM unnest(cp_transfer) AS u(id)
    WHERE EXISTS (SELECT 1 FROM transfers t WHERE t.id = u.id AND t.batch_id = p_batch AND t.kind = 1)
    ON CONFLICT DO NOTHING;
END $$;

CREATE TABLE raffle_passes (
  item_id     bigint NOT NULL,      -- the raffle drop
  account_id  bigint NOT NULL,      -- the entrant passed over (one entry per account)
  reason_code int NOT NULL,         -- a tally error code (tally.h), e.g. -107 not enough credits
  reason      text NOT NULL,        -- its name, e.g. ENO_FUNDS
  created_ms  bigint NOT NULL,
  PRIMARY KEY (item_id, account_id)
);

CREATE TRIGGER raffle_passes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON raffle_passes
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

CREATE FUNCTION tally_write_raffle_passes(p_now bigint, rp_item bigint[], rp_acc bigint[], rp_code int[],
                                          rp_reason text[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO raffle_passes (item_id, account_id, reason_code, reason, created_ms)
    SELECT u.*, p_now FROM unnest(rp_item, rp_acc, rp_code, rp_reason) AS u ON CONFLICT DO NOTHING;
END $$;
