-- Saga Coordinator schema, version 7: executions_by_status keyed by state
-- machine, status and start time, ascending, without the execution id.
-- New executions of a state machine then enter its RUNNING range at the
-- range's end, where a full leaf page is split leaving the left page full
-- (PostgreSQL's split for localized increasing insertions) instead of in
-- halves at the range's start, as the descending index was; its entries are
-- 16 bytes smaller. ListExecutions (newest first, ties by id) reads it
-- backwards and orders the rare executions started in the same microsecond
-- by id itself. The index is rebuilt inside the migration's transaction:
-- writes to executions wait for it (seconds per million executions).
DROP INDEX executions_by_status;
CREATE INDEX executions_by_status ON executions (state_machine, status, start_us);
