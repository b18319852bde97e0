-- 022_batch_marks.sql — a batch without transfers can be found again.
--
-- Why: when a batch's answer is lost and its resend fails, the engine asks
-- the ledger which of the batch's transfers it holds (tally_lookup_keys):
-- one transaction, so any of them means all of it committed. A batch with
-- no transfer (facts and catalog rows only: a reward grant, a quiz answer,
-- a goal level, a new item) left nothing to find, and the engine took it as
-- committed: a winner could be told of, and use, a reward the ledger never
-- stored. The simulator found it (tests/sim, seed 269). Such a batch now
-- leaves its id here in its own transaction, and the lookup says whether
-- it is here.
--
-- Only batches without transfers write a mark (p_leaves = 0): one with
-- transfers is found by them, and a buy costs no extra row.

CREATE TABLE batch_marks (
  id         bigint PRIMARY KEY,   -- the batch id
  created_ms bigint NOT NULL
);

CREATE TRIGGER batch_marks_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON batch_marks
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- In the batch statement's UNION (core/src/ledger/batch.c): returns no rows.
CREATE FUNCTION tally_mark_batch(p_batch bigint, p_now bigint, p_leaves int)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_leaves = 0 THEN
    INSERT INTO batch_marks (id, created_ms) VALUES (p_batch, p_now) ON CONFLICT DO NOTHING;
  END IF;
  RETURN;
END $$;

-- tally_lookup_keys, and one more row (idem_key NULL, id = the batch) when
-- the batch left its mark.
CREATE FUNCTION tally_lookup_batch(p_batch bigint, p_keys text[])
RETURNS TABLE (idem_key text, id bigint, request_fp bigint) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(p_batch);
  RETURN QUERY SELECT t.idem_key, t.id, t.request_fp FROM transfers t WHERE t.idem_key = ANY(p_keys);
  RETURN QUERY SELECT NULL::text, m.id, 0::bigint FROM batch_marks m WHERE m.id = p_batch;
END $$;
