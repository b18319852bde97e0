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
-- Both are append-only; the core engine never reads them.

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

CREATE TRIGGER matrix_transactions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON matrix_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER matrix_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON matrix_events
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
