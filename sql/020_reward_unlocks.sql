-- 020_reward_unlocks.sql — rewards that are not discounts: a free unit of
-- an item, or access to a gated (attendees-only) item (issue 14; helper
-- freeunit).
--
-- * reward_unlocks: a reward_defs row whose percent and amount are both 0
--   is one of these; the row here says which (1 free unit, 2 access) and
--   for which item (reward_defs.item_id, never 0 for these). Written by
--   tally_write_reward_unlocks from the same facts array as 015's "def"
--   objects (those carrying "unl"), in the same statement, so a definition
--   and its unlock commit together.
-- * transfers.kind 6 "reward unit": the free unit a reward gave. Qty and
--   stock are taken like a purchase's (I2 counts it), the amount is 0, and
--   the legs are two zero legs (buyer 0, creator 0): no money moves, every
--   transfer still has entries, its legs sum to zero (012's check, `tally
--   check` I1) and its amount is what the payer's entry moved (0). Never
--   refunded: I4 refuses refunds above the purchase's 0 and of anything but
--   kind 1. Its reward_uses row (kind 1, discount 0) names the grant, and
--   the signed receipt's leaf names the reward, as a discount's does.
-- * An access grant's use is a reward_uses row (kind 1, discount 0) on an
--   ordinary purchase (kind 1) of the gated item.
-- Needs only 001 and 015's tables.

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check CHECK (kind BETWEEN 1 AND 6);
ALTER TABLE transfers DROP CONSTRAINT transfers_amount_minor_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_amount_minor_check
  CHECK (amount_minor > 0 OR (kind = 6 AND amount_minor = 0));

-- A definition with neither a percent nor an amount: an unlock (below).
ALTER TABLE reward_defs DROP CONSTRAINT reward_defs_check;
ALTER TABLE reward_defs ADD CONSTRAINT reward_defs_check
  CHECK ((percent_bps > 0) <> (amount_minor > 0) OR (percent_bps = 0 AND amount_minor = 0 AND cap_minor = 0));

CREATE TABLE reward_unlocks (
  reward_id  bigint PRIMARY KEY,
  kind       smallint NOT NULL CHECK (kind IN (1, 2)),  -- 1 a free unit, 2 access to a gated item
  item_id    bigint NOT NULL CHECK (item_id <> 0),
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL
);

CREATE TRIGGER reward_unlocks_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reward_unlocks
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

CREATE FUNCTION tally_write_reward_unlocks(p_batch bigint, p_now bigint, p_facts jsonb)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_facts IS NULL OR jsonb_array_length(p_facts) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO reward_unlocks (reward_id, kind, item_id, created_ms, batch_id)
    SELECT (f->>'r')::bigint, (f->>'unl')::smallint, (f->>'item')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'def' AND f ? 'unl' ON CONFLICT DO NOTHING;
END $$;
