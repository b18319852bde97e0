-- 018_challenges.sql — challenges and achievements (issue 14).
--
-- Why: a challenge is a rule over what the ledger already holds (attendance,
-- transfers, events); only the rule, its deletion and who reached it are
-- stored. Progress is never stored: the engine rebuilds it from the ledger
-- at start, so no counter can drift from the money it counts. The
-- achievement's primary key (challenge, account) makes reaching it once,
-- even when a restart reaches it again; the reward it grants is a
-- reward_grants row whose quiz_id column holds the challenge's id (ids are
-- the engine's one counter, so a challenge's never equals a quiz's), and
-- that table's unique (quiz_id, account_id) keeps it once too.
--
-- Independent of 016/017: it names only tables of 001..015. The batch
-- statement calls tally_write_challenge_facts($batch, $now, $facts) with the
-- same JSON array as tally_write_facts (sql/015); this function keeps only
-- its own kinds: cd (defined), cx (deleted), ca (achieved).

CREATE TABLE challenge_defs (
  id         bigint PRIMARY KEY,
  owner_id   bigint NOT NULL,             -- the host or creator who defined it
  name       text NOT NULL,
  kind       smallint NOT NULL CHECK (kind BETWEEN 1 AND 5), -- 1 minutes 2 spent 3 tipped 4 streak 5 first
  threshold  bigint NOT NULL CHECK (threshold > 0),          -- seconds, minor units, events; 1 for first
  event_id   bigint NOT NULL DEFAULT 0,   -- 0: any event its owner hosts
  reward_id  bigint NOT NULL DEFAULT 0,   -- 0: a badge only
  badge      text,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL
);
-- Names are unique per owner among the ones defined; a deleted name stays taken.
CREATE UNIQUE INDEX challenge_defs_name ON challenge_defs (owner_id, name);

CREATE TABLE challenge_deletions (
  challenge_id bigint PRIMARY KEY,
  by_id        bigint NOT NULL,
  created_ms   bigint NOT NULL,
  batch_id     bigint NOT NULL
);

CREATE TABLE challenge_achievements (
  challenge_id bigint NOT NULL,
  account_id   bigint NOT NULL,
  event_id     bigint NOT NULL DEFAULT 0, -- the event it was reached in (0: none)
  transfer_id  bigint NOT NULL DEFAULT 0, -- the purchase or tip that reached it (0: attendance)
  progress     bigint NOT NULL,           -- what the engine counted when it was reached
  created_ms   bigint NOT NULL,
  batch_id     bigint NOT NULL,
  PRIMARY KEY (challenge_id, account_id)
);

CREATE TRIGGER challenge_defs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON challenge_defs
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER challenge_deletions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON challenge_deletions
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER challenge_achievements_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON challenge_achievements
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

CREATE FUNCTION tally_write_challenge_facts(p_batch bigint, p_now bigint, p_facts jsonb)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_facts IS NULL OR jsonb_array_length(p_facts) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO challenge_defs (id, owner_id, name, kind, threshold, event_id, reward_id, badge, created_ms, batch_id)
    SELECT (f->>'c')::bigint, (f->>'o')::bigint, f->>'n', (f->>'t')::smallint, (f->>'th')::bigint,
           (f->>'ev')::bigint, (f->>'r')::bigint, nullif(f->>'b', ''), p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'cd' ON CONFLICT DO NOTHING;
  INSERT INTO challenge_deletions (challenge_id, by_id, created_ms, batch_id)
    SELECT (f->>'c')::bigint, (f->>'by')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'cx' ON CONFLICT DO NOTHING;
  INSERT INTO challenge_achievements (challenge_id, account_id, event_id, transfer_id, progress, created_ms, batch_id)
    SELECT (f->>'c')::bigint, (f->>'a')::bigint, (f->>'ev')::bigint, (f->>'x')::bigint, (f->>'p')::bigint,
           p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'ca' ON CONFLICT DO NOTHING;
END $$;
