-- 014_matrix.sql — what tallyd's Matrix Application Service has accepted.
--
-- Why: a homeserver retries `PUT /_matrix/app/v1/transactions/{txnId}` with
-- the same txnId until it gets 200, and the same event can arrive in two
-- transactions. tallyd answers 200 only after one statement has recorded
-- the transaction and the event ids it will act on (tallyd/matrix_txn.c),
-- so a retry after a lost 200 or a restart never applies an event twice,
-- and an event acknowledged to the homeserver is never forgotten.
--
-- * matrix_transactions: one row per txnId accepted (per homeserver: the AS
--   serves one). `boot` is the random id of the tallyd process that
--   recorded it: a transaction sent again to a later process is resubmitted
--   to the engine (whose idempotency keys, the event ids, make that safe),
--   since the earlier process may have died between this commit and its
--   engine submit; to the same process it is a plain no-op.
-- * matrix_events: the command events of those transactions (events that
--   need no action, such as typing or an m.notice, are not recorded).
--   PRIMARY KEY event_id: the idempotency key of the event.
-- * matrix_outbox: every message tallyd is to post (the Client-Server API
--   send), with the txnId it always uses for it; matrix_settled: the ones
--   the homeserver took (outcome 1) or refused for good / gave up on
--   (outcome 2). A message in the outbox and not settled is posted again by
--   the next tallyd process, with the same txnId, so the homeserver keeps
--   one even if the first process's send did arrive.
-- All four are append-only; the core engine never reads them.

CREATE TABLE matrix_transactions (
  txn_id      text PRIMARY KEY CHECK (octet_length(txn_id) BETWEEN 1 AND 255),
  boot        text NOT NULL CHECK (octet_length(boot) BETWEEN 1 AND 64),
  event_count integer NOT NULL CHECK (event_count >= 0),
  received_ms bigint NOT NULL
);

CREATE TABLE matrix_events (
  event_id    text PRIMARY KEY CHECK (octet_length(event_id) BETWEEN 1 AND 255),
  txn_id      text NOT NULL REFERENCES matrix_transactions,
  boot        text NOT NULL,
  room_id     text NOT NULL CHECK (octet_length(room_id) BETWEEN 1 AND 255),
  sender      text NOT NULL CHECK (octet_length(sender) BETWEEN 1 AND 255),
  received_ms bigint NOT NULL
);

CREATE TABLE matrix_outbox (
  id         bigserial PRIMARY KEY,  -- the order they were queued in
  txn_id     text NOT NULL UNIQUE CHECK (octet_length(txn_id) BETWEEN 1 AND 255),
  room_id    text NOT NULL CHECK (octet_length(room_id) BETWEEN 1 AND 255),
  content    text NOT NULL,          -- the event content, JSON
  created_ms bigint NOT NULL
);

CREATE TABLE matrix_settled (
  txn_id     text PRIMARY KEY,
  outcome    smallint NOT NULL CHECK (outcome IN (1, 2)),  -- 1 posted, 2 dropped
  settled_ms bigint NOT NULL
);

CREATE TRIGGER matrix_outbox_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON matrix_outbox
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER matrix_settled_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON matrix_settled
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER matrix_transactions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON matrix_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER matrix_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON matrix_events
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
