-- 012_batch_legs_balance.sql — PostgreSQL itself refuses a batch with a
-- transfer whose legs do not sum to zero.
--
-- Until now only the engine (tally__op_hold asserts it) and `tally check`
-- (I1, after the fact) held this: a bug in how a batch's leg arrays are
-- built (the simulator's planted bug "batch-fee" sends a fee leg one unit
-- short) was committed as it came. tally_batch_whole, which the batch
-- statement already calls last over the batch's transfers (by primary-key
-- range, see 008), now also counts the unbalanced ones in the same scan and
-- raises check_violation (SQLSTATE 23514, class 23): the engine treats that
-- as "this batch's data is refused", splits the batch until the op at fault
-- is alone, refuses that op ("could not be recorded; you were not charged")
-- and commits the others. Cheaper than a CHECK constraint on transfers,
-- which would call a SQL function (not inlinable: it aggregates) per row.

CREATE OR REPLACE FUNCTION tally_batch_whole(p_batch bigint, p_first bigint, p_last bigint, p_leaves int)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; unbalanced bigint;
BEGIN
  IF p_leaves > 0 THEN
    SELECT count(*), count(*) FILTER (WHERE (SELECT coalesce(sum(x), 0) FROM unnest(leg_amounts) AS x) <> 0)
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
