-- 006_tip_messages.sql — tip messages held for moderators, and hidden ones.
--
-- Why: IRC cannot take back a line, so with tip_message_hold a tip's
-- message goes to the channel's moderators first and to the channel when
-- the hold is over, unless a moderator hid it. Both facts must survive a
-- restart: a message still waiting is said after it, a hidden one never.
-- The message itself stays where it was, in transfers.memo.
--
-- The batch statement calls tally_write_tip_messages after
-- tally_write_batch (UNION ALL, one transaction): new tables get their own
-- function instead of another copy of tally_write_batch.

CREATE TABLE held_messages (
  transfer_id bigint PRIMARY KEY,   -- the tip (no FK: written in the tip's own batch)
  channel     text NOT NULL,
  show_ms     bigint NOT NULL,      -- wall clock when the channel sees it
  created_ms  bigint NOT NULL
);

CREATE TABLE hidden_messages (
  transfer_id bigint PRIMARY KEY,   -- the tip whose message a moderator hid
  by_account  bigint NOT NULL,      -- the moderator (no FK: the batch may not carry a new account's row)
  created_ms  bigint NOT NULL
);

CREATE TRIGGER held_messages_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON held_messages
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER hidden_messages_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON hidden_messages
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- A retried batch writes nothing twice. A held message is written only with
-- its tip: a tip the ledger did not take (its key was used before) has none.
CREATE FUNCTION tally_write_tip_messages(p_batch bigint, p_now bigint, hm_transfer bigint[], hm_channel text[],
                                         hm_show bigint[], hd_transfer bigint[], hd_by bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO held_messages (transfer_id, channel, show_ms, created_ms)
    SELECT u.*, p_now FROM unnest(hm_transfer, hm_channel, hm_show) AS u(transfer_id, channel, show_ms)
    WHERE EXISTS (SELECT 1 FROM transfers t WHERE t.id = u.transfer_id AND t.batch_id = p_batch)
    ON CONFLICT DO NOTHING;
  INSERT INTO hidden_messages (transfer_id, by_account, created_ms)
    SELECT u.*, p_now FROM unnest(hd_transfer, hd_by) AS u ON CONFLICT DO NOTHING;
END $$;
