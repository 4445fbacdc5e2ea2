-- Saga Coordinator schema, version 3: a history row's events may be stored
-- deflated. `events` keeps the JSON array as text; `events_z` holds the same
-- text raw-deflated (zlib, no header) when the coordinator found that worth
-- it (PgStoreOptions::compress_history_from, --history-compression-from):
-- a transition's events repeat its payloads, and deflating about thirds
-- those rows and their WAL. Exactly one of the two is set; rows written
-- before this version keep their text. Adding a nullable column and a
-- NOT VALID check rewrites nothing.
ALTER TABLE history ALTER COLUMN events DROP NOT NULL;
ALTER TABLE history ADD COLUMN events_z bytea;
ALTER TABLE history ADD CONSTRAINT history_events_one_form
  CHECK ((events IS NULL) <> (events_z IS NULL)) NOT VALID;
