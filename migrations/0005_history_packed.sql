-- Saga Coordinator schema, version 5: history rows written from this version
-- on hold their compressed events in `events_packed`: one byte naming the
-- codec, then its data (codec 1: a zstd frame made with a fixed dictionary
-- of the history format's event names and keys; see
-- coordinator/storage/pg/history_codec.h). Two fifths smaller than the LZ4
-- blocks of version 4, which with the deflate rows of version 3 are read as
-- before. Exactly one of the four forms is set. Adding a nullable column and
-- a NOT VALID check rewrites nothing.
ALTER TABLE history ADD COLUMN events_packed bytea;
ALTER TABLE history DROP CONSTRAINT history_events_one_form;
ALTER TABLE history ADD CONSTRAINT history_events_one_form
  CHECK ((events IS NOT NULL)::int + (events_z IS NOT NULL)::int + (events_lz4 IS NOT NULL)::int +
         (events_packed IS NOT NULL)::int = 1)
  NOT VALID;
