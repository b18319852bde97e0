-- 008_ledger_fixes.sql — the ledger's currency decimals, and advisory lock
-- keys that cannot collide (issue 9, #10 and #17).
--
-- #10 Why: an amount is stored in minor units, and only the decimals say
-- what a minor unit is. They were a setting of each engine and a flag of
-- `tally grant` (default 2), so a 0-decimal deployment granted 100 times
-- what was typed. The first engine to start on a ledger records its
-- `decimals` here; an engine configured otherwise refuses to start, and
-- `tally grant` reads them from here. One row, never changed.
CREATE TABLE ledger_currency (
  id         smallint PRIMARY KEY CHECK (id = 1),
  decimals   smallint NOT NULL CHECK (decimals BETWEEN 0 AND 6),
  created_ms bigint NOT NULL
);
CREATE TRIGGER ledger_currency_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_currency
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
