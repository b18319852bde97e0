-- 010_identities.sql — every name carries its network.
--
-- Why: an account name used to be the IRC services account ('user:alice').
-- With XMPP and Matrix adapters, 'alice' on two networks is two people, and
-- their clients choose their own message ids. So:
--
-- * networks: one row per chat network the engine has seen; 'irc' (id 1) is
--   the network of every account written before this migration.
-- * identities: (network, name) -> the person's wallet (a user account).
--   Its id comes from the engine's id counter (the backfilled rows reuse
--   their account's id, which no identity has). UNIQUE(network, name); a
--   person may own several identities (LINK, later, adds no column here:
--   two rows with one account_id). Append-only.
-- * Every 'user:' account becomes the 'irc' network's identity of the name
--   after 'user:', so nothing is lost and old names keep their meaning.
--   New accounts of other networks (and IRC names with ':') are named
--   '<network>:<name>' (see core/src/model/state.c tally__identity_get):
--   never 'user:...' or 'sys:...', so accounts.name stays unique.
-- * transfer_identities: the identity that made a transfer (old transfers
--   have none). A table of its own, written by tally_write_identities in the
--   batch statement (UNION ALL, one transaction), as sql/006 and sql/009 do.

CREATE TABLE networks (
  id         smallint PRIMARY KEY CHECK (id > 0),
  name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,31}$' AND name NOT IN ('user', 'sys')),
  created_ms bigint NOT NULL
);

INSERT INTO networks (id, name, created_ms) VALUES (1, 'irc', 0);

CREATE TABLE identities (
  id         bigint PRIMARY KEY,
  network_id smallint NOT NULL REFERENCES networks,
  name       text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 2047),
  account_id bigint NOT NULL REFERENCES accounts,  -- the person's wallet
  created_ms bigint NOT NULL,
  UNIQUE (network_id, name)
);
CREATE INDEX identities_account ON identities (account_id);

-- Every account of a user before this migration is the irc network's.
INSERT INTO identities (id, network_id, name, account_id, created_ms)
  SELECT a.id, 1, substr(a.name, 6), a.id, a.created_ms
  FROM accounts a WHERE a.kind = 1 AND a.name LIKE 'user:_%';

CREATE TABLE transfer_identities (
  transfer_id bigint PRIMARY KEY,   -- no FK, as for the other per-transfer tables
  identity_id bigint NOT NULL
);

CREATE TRIGGER networks_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON networks
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER identities_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON identities
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER transfer_identities_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON transfer_identities
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- Networks and identities new in this batch (each with its account row,
-- which tally_write_batch inserted just before), and the identity of each
-- transfer this batch inserted. A batch sent again writes nothing twice.
CREATE FUNCTION tally_write_identities(p_batch bigint, p_now bigint, nw_id smallint[], nw_name text[],
                                       id_id bigint[], id_network smallint[], id_name text[],
                                       id_account bigint[], ti_transfer bigint[], ti_identity bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO networks (id, name, created_ms)
    SELECT u.*, p_now FROM unnest(nw_id, nw_name) AS u(id, name) ON CONFLICT DO NOTHING;
  INSERT INTO identities (id, network_id, name, account_id, created_ms)
    SELECT u.*, p_now FROM unnest(id_id, id_network, id_name, id_account) AS u(id, network_id, name, account_id)
    ON CONFLICT DO NOTHING;
  INSERT INTO transfer_identities (transfer_id, identity_id)
    SELECT u.* FROM unnest(ti_transfer, ti_identity) AS u(transfer_id, identity_id)
    WHERE EXISTS (SELECT 1 FROM transfers t WHERE t.id = u.transfer_id AND t.batch_id = p_batch)
    ON CONFLICT DO NOTHING;
END $$;
