-- 005_item_row_lock.sql — one writer of an item row at a time.
--
-- Why: the engine has several writer connections. It sends a given version
-- of a row in one batch only, but a newer version of a new item (a drop
-- opened by its timer right after DROP CREATE) can go out while the batch
-- with its first insert is still running. Both INSERT ... ON CONFLICT (id)
-- may then pass the conflict check before either has inserted, and the
-- second fails on the unique sku instead of waiting: a failed batch, whose
-- buyers hear "could not be recorded". A lock on the item id, taken before
-- the conflict check and held to the end of the transaction, makes the
-- second writer wait for the first and then update as the ON CONFLICT
-- clause says. Batches take item rows in the order of the engine's dirty
-- list, so two of them rarely lock two items in opposite orders; when they
-- do (the list was rebuilt between them), PostgreSQL reports a deadlock
-- (40P01) and the writer retries the batch, as for any deadlock.

CREATE FUNCTION tally_item_row_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Two-key advisory locks are a space of their own: the batch locks of
  -- 002 use the one-key (bigint) form. 1953066361 is 'tall' in ASCII. Item
  -- ids count up from 1 and stay far below 2^31 (config items_max).
  PERFORM pg_advisory_xact_lock(1953066361, (NEW.id & 2147483647)::int);
  RETURN NEW;
END $$;

CREATE TRIGGER items_row_lock BEFORE INSERT ON items
  FOR EACH ROW EXECUTE FUNCTION tally_item_row_lock();
