-- 015_rewards_quizzes.sql — rewards bound to an account, and quizzes that
-- earn them (issue 14, first slice).
--
-- Why: a reward is money the creator gives up (a discount lowers what the
-- creator receives), so defining, granting, using, expiring and giving one
-- back are ledger facts, append-only like transfers: memory is rebuilt
-- from them at start, and `tally check` can hold them against transfers.
-- A quiz's start, each answer (with its arrival number) and its end are
-- stored too, so a restart mid-quiz resumes the same quiz and pays the
-- same winners, once.
--
-- Ids are the engine's own (the counter every transfer and batch id comes
-- from), so a resent batch writes nothing twice (ON CONFLICT DO NOTHING).
-- Account ids have no FK: a batch may carry a fact before the new account's
-- row (written by a later batch when this one is full).
--
-- The batch statement calls tally_write_facts($batch, $now, $facts) after
-- the other writers: $facts is one JSON array of objects {"k": kind, ...}
-- (core/src/ledger/batch.c render_facts; the features write the objects).

CREATE TABLE reward_defs (
  id           bigint PRIMARY KEY,
  creator_id   bigint NOT NULL,             -- whose price the discount lowers
  name         text NOT NULL,
  percent_bps  int NOT NULL CHECK (percent_bps BETWEEN 0 AND 10000),  -- 1000 = 10 %
  amount_minor bigint NOT NULL CHECK (amount_minor >= 0),             -- a fixed discount
  cap_minor    bigint NOT NULL CHECK (cap_minor >= 0),                -- 0: no cap
  ttl_s        int NOT NULL CHECK (ttl_s > 0),                        -- an earned one lasts this long
  item_id      bigint NOT NULL DEFAULT 0,   -- 0: every item of the creator
  created_ms   bigint NOT NULL,
  batch_id     bigint NOT NULL,
  CHECK ((percent_bps > 0) <> (amount_minor > 0))
);
-- Names are unique per creator among the ones defined; a deleted name stays taken.
CREATE UNIQUE INDEX reward_defs_name ON reward_defs (creator_id, name);

CREATE TABLE reward_deletions (
  reward_id  bigint PRIMARY KEY,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL
);

CREATE TABLE reward_grants (
  id         bigint PRIMARY KEY,
  reward_id  bigint NOT NULL,
  account_id bigint NOT NULL,               -- the wallet it is bound to: never given away
  quiz_id    bigint NOT NULL DEFAULT 0,     -- what earned it (0: nothing stored)
  expires_ms bigint NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL
);
-- A quiz pays an account at most once, even when a restart pays again.
CREATE UNIQUE INDEX reward_grants_quiz ON reward_grants (quiz_id, account_id) WHERE quiz_id <> 0;

-- What happened to a grant since: 1 used by purchase transfer_id (discount_minor
-- off), 2 expired unused, 3 given back by the full refund transfer_id. The
-- latest (seq) is its state.
CREATE TABLE reward_uses (
  grant_id       bigint NOT NULL,
  kind           smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
  transfer_id    bigint NOT NULL DEFAULT 0,
  discount_minor bigint NOT NULL DEFAULT 0 CHECK (discount_minor >= 0),
  created_ms     bigint NOT NULL,
  batch_id       bigint NOT NULL,
  seq            bigserial NOT NULL,
  PRIMARY KEY (grant_id, kind, transfer_id)
);

-- A receipt's leaf names the reward its purchase used (receipt_pg.c looks it up by transfer).
CREATE INDEX reward_uses_transfer ON reward_uses (transfer_id) WHERE kind = 1;

CREATE TABLE quizzes (
  id          bigint PRIMARY KEY,
  host_id     bigint NOT NULL,
  network_id  smallint NOT NULL,
  room        text NOT NULL,
  event_id    bigint NOT NULL DEFAULT 0,    -- the room's event when it started: who was present
  question    text NOT NULL,
  answers     text[] NOT NULL,
  winners     int NOT NULL CHECK (winners > 0),
  reward_id   bigint NOT NULL DEFAULT 0,    -- 0: the quiz pays nothing but glory
  min_players int NOT NULL CHECK (min_players > 0),
  duration_ms bigint NOT NULL CHECK (duration_ms > 0),
  deadline_ms bigint NOT NULL,              -- wall clock; seeds the monotonic timer after a restart
  created_ms  bigint NOT NULL,
  batch_id    bigint NOT NULL
);

-- One answer per account per quiz; seq is the engine's arrival order.
CREATE TABLE quiz_answers (
  quiz_id    bigint NOT NULL,
  account_id bigint NOT NULL,
  seq        int NOT NULL,
  correct    boolean NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL,
  PRIMARY KEY (quiz_id, account_id)
);

CREATE TABLE quiz_ends (
  quiz_id    bigint PRIMARY KEY,
  answerers  int NOT NULL,
  winners    int NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL
);

CREATE TRIGGER reward_defs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reward_defs
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER reward_deletions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reward_deletions
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER reward_grants_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reward_grants
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER reward_uses_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reward_uses
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quizzes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quizzes
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quiz_answers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quiz_answers
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quiz_ends_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quiz_ends
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- A use or a give-back is written only with its transfer: a purchase the
-- ledger did not take (its key was used before) used nothing.
CREATE FUNCTION tally_write_facts(p_batch bigint, p_now bigint, p_facts jsonb)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_facts IS NULL OR jsonb_array_length(p_facts) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO reward_defs (id, creator_id, name, percent_bps, amount_minor, cap_minor, ttl_s, item_id,
                           created_ms, batch_id)
    SELECT (f->>'r')::bigint, (f->>'c')::bigint, f->>'n', (f->>'bps')::int, (f->>'amt')::bigint,
           (f->>'cap')::bigint, (f->>'ttl')::int, (f->>'item')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'def' ON CONFLICT DO NOTHING;
  INSERT INTO reward_deletions (reward_id, created_ms, batch_id)
    SELECT (f->>'r')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'del' ON CONFLICT DO NOTHING;
  INSERT INTO reward_grants (id, reward_id, account_id, quiz_id, expires_ms, created_ms, batch_id)
    SELECT (f->>'g')::bigint, (f->>'r')::bigint, (f->>'a')::bigint, (f->>'q')::bigint,
           (f->>'exp')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'grant' ON CONFLICT DO NOTHING;
  INSERT INTO reward_uses (grant_id, kind, transfer_id, discount_minor, created_ms, batch_id)
    SELECT (f->>'g')::bigint, CASE f->>'k' WHEN 'use' THEN 1 ELSE 3 END, (f->>'x')::bigint,
           CASE f->>'k' WHEN 'use' THEN (f->>'d')::bigint ELSE 0 END, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f
    WHERE f->>'k' IN ('use', 'ret')
      AND EXISTS (SELECT 1 FROM transfers t WHERE t.id = (f->>'x')::bigint AND t.batch_id = p_batch)
    ON CONFLICT DO NOTHING;
  INSERT INTO reward_uses (grant_id, kind, transfer_id, created_ms, batch_id)
    SELECT (f->>'g')::bigint, 2, 0, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'exp' ON CONFLICT DO NOTHING;
  INSERT INTO quizzes (id, host_id, network_id, room, event_id, question, answers, winners, reward_id, min_players,
                       duration_ms, deadline_ms, created_ms, batch_id)
    SELECT (f->>'q')::bigint, (f->>'h')::bigint, (f->>'net')::smallint, f->>'room', coalesce((f->>'ev')::bigint, 0), f->>'qt',
           ARRAY(SELECT jsonb_array_elements_text(f->'ans')), (f->>'w')::int, (f->>'r')::bigint,
           (f->>'min')::int, (f->>'dur')::bigint, (f->>'dl')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'qs' ON CONFLICT DO NOTHING;
  INSERT INTO quiz_answers (quiz_id, account_id, seq, correct, created_ms, batch_id)
    SELECT (f->>'q')::bigint, (f->>'a')::bigint, (f->>'s')::int, (f->>'ok')::boolean, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'qa' ON CONFLICT DO NOTHING;
  INSERT INTO quiz_ends (quiz_id, answerers, winners, created_ms, batch_id)
    SELECT (f->>'q')::bigint, (f->>'n')::int, (f->>'w')::int, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'qe' ON CONFLICT DO NOTHING;
END $$;
