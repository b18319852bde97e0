-- 024_batch_legs_sum.sql — tally_batch_whole adds up a transfer's legs
-- without a sub-select for each transfer.
--
-- Why: sql/012's leg-balance check summed each transfer's legs with
-- `(SELECT sum(x) FROM unnest(leg_amounts))`, a plan node run once per row:
-- measured on PostgreSQL 15 over 2,000 stored transfers, 0.75-0.9 us a
-- transfer, against 0.25 us for adding the legs of a transfer of at most
-- four legs directly (every transfer but a buy split among more creators).
-- At peak a batch carries about a thousand buys, and the check was about a
-- tenth of the batch statement's time (pg_stat_user_functions). Longer
-- transfers still take the sub-select.
--
-- The engine writes the payer's debit first and then the credits that make
-- it up, so no partial sum of its legs leaves bigint; legs that would
-- overflow raise 22003, a data exception, and the engine isolates the op at
-- fault as it does for 23514 (core/src/kernel/outcome.c).

CREATE OR REPLACE FUNCTION tally_batch_whole(p_batch bigint, p_first bigint, p_last bigint, p_leaves int)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; unbalanced bigint;
BEGIN
  IF p_leaves > 0 THEN
    SELECT count(*), count(*) FILTER (WHERE
             CASE WHEN cardinality(leg_amounts) <= 4
                  THEN leg_amounts[1] + leg_amounts[2] + coalesce(leg_amounts[3], 0) + coalesce(leg_amounts[4], 0)
                  ELSE (SELECT sum(x) FROM unnest(leg_amounts) AS x) END <> 0)
      INTO n, unbalanced
      FROM transfers WHERE id BETWEEN p_first AND p_last AND batch_id = p_batch;
    IF unbalanced > 0 THEN
      RAISE EXCEPTION 'tally: batch % has % transfers whose legs do not sum to zero', p_batch, unbalanced
        USING ERRCODE = '23514';
    END IF;
    IF n <> p_leaves THEN
      RAISE EXCEPTION 'tally: batch % would commit % of its % signed transfers (a key is taken)', p_batch, n, p_leaves
        USING ERRCODE = 'TL002';
    END IF;
  END IF;
END $$;
