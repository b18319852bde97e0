-- 023_reward_offer_changes.sql — a creator withdraws a reward's offer in a
-- room (REWARD OFFER <name> <room> off), and may offer it there again.
--
-- Why: reward_offers (sql/019) holds an offer once per (reward, network,
-- room), append-only, so it cannot say that an offer ended, nor that it
-- began again. Each change after this migration is a row here: every
-- offer ('off' facts, which also still go to reward_offers the first time)
-- with offered = true, every withdrawal ('offc' facts) with false. What is
-- in force is the latest row by batch (reward_offers' row counting as an
-- offer at its batch): the engine's restore and `tally check` R9 read it so.

CREATE TABLE reward_offer_changes (
  reward_id  bigint NOT NULL,
  network_id smallint NOT NULL,
  room       text NOT NULL,
  offered    boolean NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL,
  PRIMARY KEY (reward_id, network_id, room, batch_id)
);

CREATE TRIGGER reward_offer_changes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reward_offer_changes
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- Same JSON array of facts as tally_write_facts (core/src/ledger/batch.c).
CREATE FUNCTION tally_write_offer_changes(p_batch bigint, p_now bigint, p_facts jsonb)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_facts IS NULL OR jsonb_array_length(p_facts) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO reward_offer_changes (reward_id, network_id, room, offered, created_ms, batch_id)
    SELECT (f->>'r')::bigint, (f->>'net')::smallint, f->>'room', f->>'k' = 'off', p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' IN ('off', 'offc') ON CONFLICT DO NOTHING;
END $$;
