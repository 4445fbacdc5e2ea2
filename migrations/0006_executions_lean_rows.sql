-- Saga Coordinator schema, version 6: payloads written once, and room for
-- updates.
-- - An execution's input and final output may be NULL in its row: they are
--   then kept only in its history (ExecutionStarted's input, the last
--   ExecutionSucceeded's output), which holds the same text, and are read
--   from there when the execution is described.
-- - A task's input may be NULL in its row when the task was started as the
--   row was written (handed to a waiting worker): it is then kept only in
--   the event that scheduled it, and read from there if the task is given
--   back and claimed again.
--   Rows written before keep theirs. Dropping NOT NULL rewrites nothing.
-- - Pages are filled to 80 % by inserts, so that an execution's row updates
--   (every transition changes its version) find room on the row's own page.
--   There PostgreSQL makes an update that changes no indexed column a HOT
--   update (no new index entries), and logs any same-page update as the
--   bytes that changed instead of the whole row. Applies to pages filled
--   from now on; nothing is rewritten.
ALTER TABLE executions ALTER COLUMN input DROP NOT NULL;
ALTER TABLE tasks ALTER COLUMN input DROP NOT NULL;
ALTER TABLE executions SET (fillfactor = 80);
