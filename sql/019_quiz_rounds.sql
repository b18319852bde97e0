-- 019_quiz_rounds.sql — quiz rounds with a scoreboard, QUIZ STOP (issue 14,
-- second slice; helper quiz2).
--
-- Why: a round is several questions in one room whose right answers score
-- points for speed; its winners come from the sum. A restart in the middle
-- of a round must rebuild the same scoreboard and pay the same winners, so
-- the round, which question belongs to it, and each answer's points are
-- facts like the quiz's own (sql/015), append-only. QUIZ STOP ends a
-- question (and its round) early: the stop is stored, so a restart does not
-- reopen what the host closed.
--
-- Needs only 015's tables (no FK: ids are the engine's, and a batch may
-- carry a fact before the row it names). The batch statement calls
-- tally_write_quiz_rounds($batch, $now, $facts) with the same JSON array of
-- facts tally_write_facts reads (core/src/ledger/batch.c); each function
-- takes the kinds it knows and ignores the rest.

CREATE TABLE quiz_rounds (
  id          bigint PRIMARY KEY,
  host_id     bigint NOT NULL,
  network_id  smallint NOT NULL,
  room        text NOT NULL,
  event_id    bigint NOT NULL DEFAULT 0,   -- the room's event when it started: who was present
  questions   int NOT NULL CHECK (questions BETWEEN 1 AND 50),
  winners     int NOT NULL CHECK (winners > 0),
  reward_id   bigint NOT NULL DEFAULT 0,   -- 0: glory only
  min_players int NOT NULL CHECK (min_players > 0),
  started_ms  bigint NOT NULL,             -- wall clock: eligibility (age, presence) is against it
  created_ms  bigint NOT NULL,
  batch_id    bigint NOT NULL
);

-- Question n of a round is the quiz quiz_id (a quizzes row of 015).
CREATE TABLE quiz_round_questions (
  quiz_id    bigint PRIMARY KEY,
  round_id   bigint NOT NULL,
  n          int NOT NULL CHECK (n > 0),
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL,
  UNIQUE (round_id, n)
);

-- An answer's points in a round: max(1, 10 - floor(9 t / T)) when right,
-- t = elapsed_ms since the question was asked, T its duration; 0 when wrong.
CREATE TABLE quiz_points (
  quiz_id    bigint NOT NULL,
  account_id bigint NOT NULL,
  elapsed_ms bigint NOT NULL CHECK (elapsed_ms >= 0),
  points     int NOT NULL CHECK (points BETWEEN 0 AND 10),
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL,
  PRIMARY KEY (quiz_id, account_id)
);

-- QUIZ STOP: id is a quiz's (its deadline becomes stopped_ms) or a round's
-- (no question after the `questions` it had started).
CREATE TABLE quiz_stops (
  id         bigint PRIMARY KEY,
  questions  int NOT NULL DEFAULT 0,
  stopped_ms bigint NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL
);

CREATE TABLE quiz_round_ends (
  round_id   bigint PRIMARY KEY,
  questions  int NOT NULL,                 -- questions played
  players    int NOT NULL,                 -- distinct accounts that answered
  winners    int NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL
);

-- REWARD OFFER: a creator makes a reward available to the hosts of a room
-- (a quiz there may give it: reward=<creator>/<name>). The discount is
-- still the creator's own money, which the offer agrees to.
CREATE TABLE reward_offers (
  reward_id  bigint NOT NULL,
  network_id smallint NOT NULL,
  room       text NOT NULL,
  created_ms bigint NOT NULL,
  batch_id   bigint NOT NULL,
  PRIMARY KEY (reward_id, network_id, room)
);

CREATE TRIGGER reward_offers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON reward_offers
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quiz_rounds_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quiz_rounds
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quiz_round_questions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quiz_round_questions
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quiz_points_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quiz_points
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quiz_stops_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quiz_stops
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quiz_round_ends_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON quiz_round_ends
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- Kinds: qr (round start), qs with "rd"/"rn" (a question of a round), qa
-- with "pts"/"t" (an answer's points), qx (QUIZ STOP), qre (round end),
-- off (REWARD OFFER).
CREATE FUNCTION tally_write_quiz_rounds(p_batch bigint, p_now bigint, p_facts jsonb)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_facts IS NULL OR jsonb_array_length(p_facts) = 0 THEN
    RETURN;
  END IF;
  INSERT INTO quiz_rounds (id, host_id, network_id, room, event_id, questions, winners, reward_id, min_players,
                           started_ms, created_ms, batch_id)
    SELECT (f->>'r')::bigint, (f->>'h')::bigint, (f->>'net')::smallint, f->>'room', (f->>'ev')::bigint,
           (f->>'n')::int, (f->>'w')::int, (f->>'rw')::bigint, (f->>'min')::int, (f->>'at')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'qr' ON CONFLICT DO NOTHING;
  INSERT INTO quiz_round_questions (quiz_id, round_id, n, created_ms, batch_id)
    SELECT (f->>'q')::bigint, (f->>'rd')::bigint, (f->>'rn')::int, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'qs' AND f ? 'rd' ON CONFLICT DO NOTHING;
  INSERT INTO quiz_points (quiz_id, account_id, elapsed_ms, points, created_ms, batch_id)
    SELECT (f->>'q')::bigint, (f->>'a')::bigint, (f->>'t')::bigint, (f->>'pts')::int, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'qa' AND f ? 'pts' ON CONFLICT DO NOTHING;
  INSERT INTO quiz_stops (id, questions, stopped_ms, created_ms, batch_id)
    SELECT x.id, (f->>'n')::int, (f->>'at')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f,
         LATERAL (VALUES ((f->>'q')::bigint), ((f->>'r')::bigint)) AS x(id)
    WHERE f->>'k' = 'qx' AND x.id <> 0 ON CONFLICT DO NOTHING;
  INSERT INTO quiz_round_ends (round_id, questions, players, winners, created_ms, batch_id)
    SELECT (f->>'r')::bigint, (f->>'n')::int, (f->>'p')::int, (f->>'w')::int, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'qre' ON CONFLICT DO NOTHING;
  INSERT INTO reward_offers (reward_id, network_id, room, created_ms, batch_id)
    SELECT (f->>'r')::bigint, (f->>'net')::smallint, f->>'room', p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'off' ON CONFLICT DO NOTHING;
END $$;
