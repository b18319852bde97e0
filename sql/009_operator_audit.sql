-- 009_operator_audit.sql — operators' money actions leave a trail.
--
-- Why: an IRC operator's TALLY GRANT created credits with no audit row
-- (only the CLI's grant requests wrote one), and role_changes.by_account
-- said "engine" for every TALLY ROLE. The engine now names the operator's
-- account in role_changes.by_account, and every grant from chat writes an
-- audit_log row in the same transaction as its transfer.
--
-- audit_log gains the transfer a row is about: UNIQUE, so a batch sent
-- again after a lost reply writes no second row (CLI rows keep NULL).
-- The batch statement calls tally_write_audit after tally_write_batch
-- (UNION ALL, one transaction), as sql/006 does for tip messages.

ALTER TABLE audit_log ADD COLUMN transfer_id bigint UNIQUE;

-- A row only for a grant this batch inserted: a grant whose key was taken
-- before (a replayed message) moved no money and writes nothing.
CREATE FUNCTION tally_write_audit(p_batch bigint, p_now bigint, au_transfer bigint[], au_actor text[],
                                  au_detail text[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_log (actor, action, detail, created_ms, transfer_id)
    SELECT u.actor, 'grant', u.detail, p_now, u.transfer_id
    FROM unnest(au_transfer, au_actor, au_detail) AS u(transfer_id, actor, detail)
    WHERE EXISTS (SELECT 1 FROM transfers t WHERE t.id = u.transfer_id AND t.batch_id = p_batch)
    ON CONFLICT DO NOTHING;
END $$;
