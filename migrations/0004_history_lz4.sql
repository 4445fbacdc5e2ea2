-- Saga Coordinator schema, version 4: history rows written from this version
-- on hold their compressed events in `events_lz4` (the JSON text's length in
-- 4 bytes, little-endian, then one LZ4 block) instead of raw deflate in
-- `events_z`: as small a row within a quarter, for about a twentieth of the
-- coordinator's time. Rows of version 3 keep `events_z` and are read as
-- before. Exactly one of the three forms is set. Adding a nullable column
-- and a NOT VALID check rewrites nothing.
ALTER TABLE history ADD COLUMN events_lz4 bytea;
ALTER TABLE history DROP CONSTRAINT history_events_one_form;
ALTER TABLE history ADD CONSTRAINT history_events_one_form
  CHECK ((events IS NOT NULL)::int + (events_z IS NOT NULL)::int + (events_lz4 IS NOT NULL)::int = 1)
  NOT VALID;
