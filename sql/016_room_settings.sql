-- 016_room_settings.sql — a room's settings (ROOM SET, issue 13) and room
-- moves (ROOM MOVE: a room replaced by another, e.g. a Matrix room upgrade).
--
-- Why in the catalog: a host's choice (answers threaded or by private
-- message, command lines removed, the level that makes a host) must
-- survive a restart of the engine and of its host adapters. The setting
-- names are network-neutral; each adapter applies what its network can
-- (docs/MATRIX.md; IRC and XMPP ignore them). Append-only like every
-- ledger table: the newest row of (network, room) is its settings.
--
-- Written as ledger facts (sql/015's tally_write_facts, kinds 'room' and
-- 'move'): this migration wraps that function rather than copying its
-- body, so the two stay one definition each. A later migration that
-- needs facts of its own wraps tally_write_facts the same way.

CREATE TABLE room_settings (
  id          bigint PRIMARY KEY,            -- the engine's id (a resent batch writes nothing twice)
  network_id  smallint NOT NULL,
  room        text NOT NULL,
  reply       smallint NOT NULL CHECK (reply BETWEEN 0 AND 2),   -- 0 room, 1 thread, 2 private
  redact      boolean NOT NULL,
  host_level  int NOT NULL CHECK (host_level >= 0),              -- 0: the network's own rule
  set_by      bigint NOT NULL,               -- the host's account id
  created_ms  bigint NOT NULL,
  batch_id    bigint NOT NULL
);
CREATE INDEX room_settings_room ON room_settings (network_id, room, id DESC);

-- A room replaced by another: its settings (a room_settings row of the new
-- room is written with it) and its running event go along.
CREATE TABLE room_moves (
  id          bigint PRIMARY KEY,
  network_id  smallint NOT NULL,
  from_room   text NOT NULL,
  to_room     text NOT NULL,
  moved_by    bigint NOT NULL,
  created_ms  bigint NOT NULL,
  batch_id    bigint NOT NULL
);
CREATE INDEX room_moves_from ON room_moves (network_id, from_room, id);

CREATE TRIGGER room_settings_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON room_settings
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER room_moves_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON room_moves
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

ALTER FUNCTION tally_write_facts(bigint, bigint, jsonb) RENAME TO tally_write_facts_015;

CREATE FUNCTION tally_write_facts(p_batch bigint, p_now bigint, p_facts jsonb)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_facts IS NULL OR jsonb_array_length(p_facts) = 0 THEN
    RETURN;
  END IF;
  PERFORM tally_write_facts_015(p_batch, p_now, p_facts);
  INSERT INTO room_settings (id, network_id, room, reply, redact, host_level, set_by, created_ms, batch_id)
    SELECT (f->>'id')::bigint, (f->>'net')::smallint, f->>'room', (f->>'reply')::smallint,
           (f->>'redact')::boolean, (f->>'hl')::int, (f->>'by')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'room' ON CONFLICT DO NOTHING;
  INSERT INTO room_moves (id, network_id, from_room, to_room, moved_by, created_ms, batch_id)
    SELECT (f->>'mid')::bigint, (f->>'net')::smallint, f->>'from', f->>'room', (f->>'by')::bigint, p_now, p_batch
    FROM jsonb_array_elements(p_facts) f WHERE f->>'k' = 'room' AND f ? 'from' ON CONFLICT DO NOTHING;
END $$;
