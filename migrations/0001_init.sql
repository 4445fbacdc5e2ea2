-- Saga Coordinator schema, version 1.
-- Conventions: key columns first, hot indexed columns next, payload last.
-- Times are microseconds since the Unix epoch (bigint): no parsing on the hot
-- path. Every execution-scoped table leads its key with execution_id, so the
-- schema can be distributed by execution id (Citus / YugabyteDB style).

CREATE TABLE state_machines (
  name            text        PRIMARY KEY,
  type            smallint    NOT NULL,          -- 1 STANDARD, 2 EXPRESS
  latest_revision integer     NOT NULL,
  created_us      bigint      NOT NULL,
  updated_us      bigint      NOT NULL,
  deleted         boolean     NOT NULL DEFAULT false
);

CREATE TABLE state_machine_revisions (
  name            text        NOT NULL,
  revision        integer     NOT NULL,
  created_us      bigint      NOT NULL,
  definition      text        NOT NULL,
  PRIMARY KEY (name, revision)
);

CREATE TABLE executions (
  execution_id    uuid        PRIMARY KEY,
  state_machine   text        NOT NULL,
  name            text        NOT NULL,
  revision        integer     NOT NULL,
  status          smallint    NOT NULL,          -- 1 RUNNING 2 SUCCEEDED 3 FAILED 4 TIMED_OUT 5 ABORTED
  version         bigint      NOT NULL,          -- +1 per transition: fencing and cache check
  last_event_id   bigint      NOT NULL,
  start_us        bigint      NOT NULL,
  stop_us         bigint,
  input           text        NOT NULL,
  output          text,
  error           text,
  cause           text
);
-- Idempotent StartExecution by name, and lookups by ARN (state machine + name).
CREATE UNIQUE INDEX executions_by_name ON executions (state_machine, name);
-- "Executions of a state machine by status", newest first, as a range scan.
CREATE INDEX executions_by_status ON executions (state_machine, status, start_us DESC, execution_id);

CREATE TABLE history_events (
  execution_id    uuid        NOT NULL,
  event_id        bigint      NOT NULL,
  ts_us           bigint      NOT NULL,
  frame           integer     NOT NULL,
  type            text        NOT NULL,
  state_name      text,
  details         text        NOT NULL,          -- JSON object
  PRIMARY KEY (execution_id, event_id)
);

-- Outbox of activities to run. A row exists while its attempt is open.
CREATE TABLE tasks (
  execution_id    uuid        NOT NULL,
  task_id         bigint      NOT NULL,
  activity        text        NOT NULL,
  scheduled_us    bigint      NOT NULL,
  started_us      bigint,                        -- NULL while runnable
  timeout_at_us   bigint,                        -- TimeoutSeconds deadline
  heartbeat_seconds integer,
  heartbeat_at_us bigint,                        -- next heartbeat deadline once started
  attempt         bigint      NOT NULL,
  worker          text,
  state_name      text        NOT NULL,
  input           text        NOT NULL,
  PRIMARY KEY (execution_id, task_id)
);
-- "Runnable tasks of an activity", oldest first.
CREATE INDEX tasks_runnable ON tasks (activity, scheduled_us) WHERE started_us IS NULL;
-- Task deadlines, swept like timers.
CREATE INDEX tasks_timeout ON tasks (timeout_at_us) WHERE timeout_at_us IS NOT NULL;
CREATE INDEX tasks_heartbeat ON tasks (heartbeat_at_us) WHERE heartbeat_at_us IS NOT NULL;

-- Durable timers: Wait states, retry intervals, execution TimeoutSeconds.
CREATE TABLE timers (
  execution_id    uuid        NOT NULL,
  timer_id        bigint      NOT NULL,
  fire_at_us      bigint      NOT NULL,
  PRIMARY KEY (execution_id, timer_id)
);
-- "Due timers" as a range scan.
CREATE INDEX timers_due ON timers (fire_at_us, execution_id, timer_id);

-- Cluster-wide settings, e.g. the task-token HMAC secret shared by replicas.
CREATE TABLE settings (
  key             text        PRIMARY KEY,
  value           text        NOT NULL
);
