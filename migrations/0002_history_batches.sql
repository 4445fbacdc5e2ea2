-- Saga Coordinator schema, version 2: the history in batches.
-- One row per transition holding the events it appended (as Temporal's
-- history nodes), instead of one row per event: a transition of a Task
-- state appends three to five events, so this writes a fraction of the
-- heap tuples, index entries and WAL records. Keyed by the batch's last
-- event id: "events after N" is a range scan from N (the first row it
-- returns may also hold events up to N, which the reader skips).
CREATE TABLE history (
  execution_id    uuid        NOT NULL,
  last_event_id   bigint      NOT NULL,
  first_event_id  bigint      NOT NULL,
  -- JSON array of events, each [id, ts_us, frame, "Type", "State" or null, {details}]
  events          text        NOT NULL,
  PRIMARY KEY (execution_id, last_event_id)
);

INSERT INTO history (execution_id, last_event_id, first_event_id, events)
SELECT execution_id, event_id, event_id,
       json_build_array(json_build_array(event_id, ts_us, frame, type, state_name, details::json))::text
FROM history_events;

DROP TABLE history_events;
