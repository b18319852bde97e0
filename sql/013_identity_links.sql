-- 013_identity_links.sql — one wallet across networks (LINK / UNLINK).
--
-- Why: a person on IRC and on XMPP is two identities (sql/010), each with
-- its own wallet. LINK joins a second identity to the person's wallet; from
-- then on its commands spend, refund and count limits against that wallet.
--
-- * identity_links: append-only events. event 1 links identity_id to the
--   person's wallet account_id, event 2 unlinks it (account_id: the wallet
--   it left). An identity's current wallet is its latest event's account if
--   that event is a link, else its own (identities.account_id). Nothing in
--   identities changes: its account_id stays the identity's own wallet.
--   by_identity: who agreed (link: the issuing identity that confirmed;
--   unlink: the identity that asked). transfer_id: the one transfer that
--   moved the joining identity's balance into the wallet (kind 5), NULL
--   when its wallet was empty. id is the engine's id counter (keyed: a batch
--   sent again writes nothing twice).
-- * transfers.kind 5: the balance move of a LINK (its own wallet -> the
--   person's), one transfer whose legs sum to zero like every other.
-- Written by tally_write_links, joined into the batch statement.

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check CHECK (kind BETWEEN 1 AND 5);

CREATE TABLE identity_links (
  id          bigint PRIMARY KEY,
  identity_id bigint NOT NULL REFERENCES identities,
  account_id  bigint NOT NULL REFERENCES accounts,
  event       smallint NOT NULL CHECK (event IN (1, 2)),  -- 1 link, 2 unlink
  by_identity bigint NOT NULL REFERENCES identities,
  transfer_id bigint,                                     -- no FK, as for the other per-transfer tables
  batch_id    bigint NOT NULL,
  created_ms  bigint NOT NULL
);
CREATE INDEX identity_links_identity ON identity_links (identity_id, id);

CREATE TRIGGER identity_links_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON identity_links
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

CREATE FUNCTION tally_write_links(p_batch bigint, p_now bigint, l_id bigint[], l_identity bigint[],
                                  l_account bigint[], l_event smallint[], l_by bigint[], l_transfer bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO identity_links (id, identity_id, account_id, event, by_identity, transfer_id, batch_id, created_ms)
    SELECT u.id, u.identity_id, u.account_id, u.event, u.by_identity, nullif(u.transfer_id, 0), p_batch, p_now
    FROM unnest(l_id, l_identity, l_account, l_event, l_by, l_transfer)
      AS u(id, identity_id, account_id, event, by_identity, transfer_id)
    ON CONFLICT DO NOTHING;
END $$;
