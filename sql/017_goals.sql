-- 017_goals.sql — community goals with levels (issue 14): a host sets
-- amounts the room's committed tips and purchases fill, level by level;
-- at each level's 100 % every account present in the room then earns the
-- goal's reward once.
--
-- Why stored: a goal outlives a restart (its timers are seeded from the
-- stored deadlines), and the accounts present at a level's completion are
-- a promise: they are written in the level's own batch (goal_present), so
-- a restart in the middle of the payout pays exactly them, once each
-- (reward_grants.quiz_id is the level's id, and sql/015's unique index on
-- (quiz_id, account_id) keeps one grant per level and account).
--
-- Progress is not stored: a level's total is rebuilt from `transfers`
-- (its event's purchases and tips with ids above the level's opening id,
-- less their refunds), so no counter can drift from the ledger.
--
-- Ids are the engine's own counter (like every transfer and batch id): a
-- resent batch writes nothing twice (ON CONFLICT DO NOTHING). The batch
-- statement calls tally_write_goals($batch, $now, $facts) with the same
-- JSON array as tally_write_facts (sql/015); this function takes the
-- kinds gs (start), gl (level reached), gp (who was present), ge (end).

CREATE TABLE goals (
  id           bigint PRIMARY KEY,          -- level 1 counts transfers with ids above this
  host_id      bigint NOT NULL,
  network_id   smallint NOT NULL,
  room         text NOT NULL,
  event_id     bigint NOT NULL,             -- whose purchases and tips count
  levels       bigint[] NOT NULL CHECK (cardinality(levels) BETWEEN 1 AND 8 AND 0 < ALL (levels)),
  reward_id    bigint NOT NULL DEFAULT 0,   -- 0: a goal for glory only
  duration_ms  bigint NOT NULL CHECK (duration_ms > 0),   -- each level's time (a fresh timer per level)
  min_accounts int NOT NULL CHECK (min_accounts >= 1),    -- distinct contributors a level needs
  deadline_ms  bigint NOT NULL,             -- level 1's, wall clock: seeds the monotonic timer after a restart
  created_ms   bigint NOT NULL,
  batch_id     bigint NOT NULL
);

-- A level reached. Its id is what its payout's grants name (reward_grants.quiz_id)
-- and where the next level starts counting (transfer ids above it).
CREATE TABLE goal_levels (
  id               bigint PRIMARY KEY,
  goal_id          bigint NOT NULL,
  level            int NOT NULL CHECK (level >= 1),
  total_minor      bigint NOT NULL,         -- what memory counted when it was reached
  contributors     int NOT NULL,
  present          int NOT NULL,            -- accounts in goal_present for it
  next_deadline_ms bigint NOT NULL DEFAULT 0, -- the next level's deadline (0: it was the last)
  created_ms       bigint NOT NULL,
  batch_id         bigint NOT NULL,
  UNIQUE (goal_id, level)
);

CREATE TABLE goal_present (
  level_id   bigint NOT NULL,
  account_id bigint NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL,
  PRIMARY KEY (level_id, account_id)
);

-- reason: 1 a level ran out of time, 2 every level reached, 3 stopped by the host,
-- 4 its event ended.
CREATE TABLE goal_ends (
  goal_id        bigint PRIMARY KEY,
  reason         smallint NOT NULL CHECK (reason BETWEEN 1 AND 4),
  levels_reached int NOT NULL,
  created_ms     bigint NOT NULL,
  batch_id       bigint NOT NULL
);

CREATE TRIGGER goals_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON goals
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER goal_levels_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON goal_levels
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER goal_present_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON goal_present
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER goal_ends_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON goal_ends
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- The goal kinds of a batch's facts. A function of its own (not another
-- version of tally_write_facts), so features landing in other migrations
-- do not replace each other's writers.
CREATE FUNCTION tally_write_goals(p_batch bigint, p_now bigint, p_facts jsonb)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_facts IS NULL OR jsonb_array_length(p_facts) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO goals (id, host_id, network_id, room, event_id, levels, reward_id, duration_ms, min_accounts,
                     deadline_ms, created_ms, batch_id)
    SELECT (f->>'g')::bigint, (f->>'h')::bigint, (f->>'net')::smallint, f->>'room', (f->>'ev')::bigint,
           ARRAY(SELECT jsonb_array_elements_text(f->'lv')::bigint), (f->>'r')::bigint, (f->>'dur')::bigint,
           (f->>'min')::int, (f->>'dl')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'gs' ON CONFLICT DO NOTHING;
  INSERT INTO goal_levels (id, goal_id, level, total_minor, contributors, present, next_deadline_ms,
                           created_ms, batch_id)
    SELECT (f->>'id')::bigint, (f->>'g')::bigint, (f->>'l')::int, (f->>'tot')::bigint, (f->>'c')::int,
           (f->>'n')::int, (f->>'ndl')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'gl' ON CONFLICT DO NOTHING;
  INSERT INTO goal_present (level_id, account_id, created_ms, batch_id)
    SELECT (f->>'id')::bigint, a::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f, jsonb_array_elements_text(f->'a') a
    WHERE f->>'k' = 'gp' ON CONFLICT DO NOTHING;
  INSERT INTO goal_ends (goal_id, reason, levels_reached, created_ms, batch_id)
    SELECT (f->>'g')::bigint, (f->>'why')::smallint, (f->>'lv')::int, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'ge' ON CONFLICT DO NOTHING;
END $$;
