#include "coordinator/storage/pg/pg_store.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <pqxx/pqxx>
#include <regex>
#include <span>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "coordinator/common/json.h"
#include "coordinator/common/status_macros.h"
#include "coordinator/common/strings.h"
#include "coordinator/storage/pg/history_codec.h"
#include "coordinator/storage/pg/pg_errors.h"

namespace saga::storage {

const std::vector<std::pair<const char*, const char*>>& BuiltinMigrations();

namespace {

// Every SQL statement, named. Prepared on each pooled connection.
struct Query {
  const char* name;
  const char* sql;
};

constexpr Query kLockExecution{"lock_execution",
                               "SELECT state_machine, name, revision, status, version, "
                               "last_event_id, start_us, stop_us, input, output, error, cause "
                               "FROM executions WHERE execution_id = $1 FOR UPDATE"};
constexpr Query kLockExecutionSkip{"lock_execution_skip",
                                   "SELECT state_machine, name, revision, status, version, "
                                   "last_event_id, start_us, stop_us, input, output, error, cause "
                                   "FROM executions WHERE execution_id = $1 FOR UPDATE SKIP LOCKED"};
constexpr Query kGetExecution{"get_execution",
                              "SELECT state_machine, name, revision, status, version, "
                              "last_event_id, start_us, stop_us, input, output, error, cause, "
                              "execution_id FROM executions WHERE execution_id = $1"};
constexpr Query kFindExecution{"find_execution",
                               "SELECT state_machine, name, revision, status, version, "
                               "last_event_id, start_us, stop_us, input, output, error, cause, "
                               "execution_id FROM executions WHERE state_machine = $1 AND name = $2"};
constexpr Query kInsertExecution{
    "insert_execution",
    "INSERT INTO executions (execution_id, state_machine, name, revision, status, version, "
    "last_event_id, start_us, stop_us, input, output, error, cause) "
    "VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10, $11, $12)"};
constexpr Query kUpdateExecution{
    "update_execution",
    "UPDATE executions SET status = $2, version = version + 1, last_event_id = $3, "
    "stop_us = $4, output = $5, error = $6, cause = $7 WHERE execution_id = $1"};
// The history: one row per transition (migration 2), see AddEvents.
constexpr Query kInsertEvents{
    "insert_events",
    "INSERT INTO history (execution_id, last_event_id, first_event_id, events, events_packed) "
    "SELECT execution_id, last_event_id, first_event_id, events, events_packed "
    "FROM json_populate_recordset(NULL::history, $1::json)"};
constexpr Query kLoadEvents{"load_events",
                            "SELECT events, events_z, events_lz4, events_packed FROM history WHERE execution_id = $1 "
                            "AND last_event_id > $2 ORDER BY last_event_id"};
// Each row holds at least one event: `limit` rows hold `limit` events.
constexpr Query kHistoryAsc{"history_asc",
                            "SELECT events, events_z, events_lz4, events_packed FROM history WHERE execution_id = $1 "
                            "AND last_event_id > $2 ORDER BY last_event_id LIMIT $3"};
// Events before $2, newest first: from the row holding event $2 - 1 down.
constexpr Query kHistoryDesc{
    "history_desc",
    "SELECT events, events_z, events_lz4, events_packed FROM history WHERE execution_id = $1 AND first_event_id < $2 "
    "AND last_event_id <= COALESCE((SELECT last_event_id FROM history WHERE execution_id = $1 "
    "AND last_event_id >= $2 - 1 ORDER BY last_event_id LIMIT 1), $2) "
    "ORDER BY last_event_id DESC LIMIT $3"};
constexpr Query kInsertTasks{
    "insert_tasks",
    "INSERT INTO tasks (execution_id, task_id, activity, scheduled_us, started_us, "
    "timeout_at_us, heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input) "
    "SELECT execution_id, task_id, activity, scheduled_us, started_us, timeout_at_us, "
    "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input "
    "FROM json_populate_recordset(NULL::tasks, $1::json)"};
constexpr Query kDeleteTasks{"delete_tasks",
                             "DELETE FROM tasks WHERE execution_id = $1 AND task_id = ANY($2::bigint[])"};
constexpr Query kLockTask{"lock_task",
                          "SELECT task_id, activity, scheduled_us, started_us, timeout_at_us, "
                          "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input "
                          "FROM tasks WHERE execution_id = $1 AND task_id = $2 FOR UPDATE"};
constexpr Query kStartTask{"start_task",
                           "UPDATE tasks SET started_us = $3, worker = $4, heartbeat_at_us = $5 "
                           "WHERE execution_id = $1 AND task_id = $2"};
constexpr Query kHeartbeatTask{"heartbeat_task",
                               "UPDATE tasks SET heartbeat_at_us = $3 "
                               "WHERE execution_id = $1 AND task_id = $2"};
constexpr Query kReleaseTask{"release_task",
                             "UPDATE tasks SET started_us = NULL, worker = NULL, "
                             "heartbeat_at_us = NULL WHERE execution_id = $1 AND task_id = $2"};
constexpr Query kInsertTimers{
    "insert_timers",
    "INSERT INTO timers (execution_id, timer_id, fire_at_us) "
    "SELECT execution_id, timer_id, fire_at_us "
    "FROM json_populate_recordset(NULL::timers, $1::json)"};
constexpr Query kDeleteTimers{
    "delete_timers", "DELETE FROM timers WHERE execution_id = $1 AND timer_id = ANY($2::bigint[])"};
constexpr Query kRunnableTasks{
    "runnable_tasks",
    "SELECT execution_id, task_id, activity, scheduled_us, started_us, timeout_at_us, "
    "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input FROM tasks "
    "WHERE activity = $1 AND started_us IS NULL ORDER BY scheduled_us LIMIT $2"};
constexpr Query kTasksStartedBy{
    "tasks_started_by",
    "SELECT execution_id, task_id, activity, scheduled_us, started_us, timeout_at_us, "
    "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input FROM tasks "
    "WHERE worker = $1 AND started_us IS NOT NULL"};
constexpr Query kDueTimers{"due_timers",
                           "SELECT execution_id, timer_id, fire_at_us FROM timers "
                           "WHERE fire_at_us <= $1 ORDER BY fire_at_us LIMIT $2"};
constexpr Query kDueDeadlines{
    "due_deadlines",
    "(SELECT execution_id, task_id, false FROM tasks WHERE timeout_at_us <= $1 "
    " ORDER BY timeout_at_us LIMIT $2) UNION ALL "
    "(SELECT execution_id, task_id, true FROM tasks WHERE heartbeat_at_us <= $1 "
    " ORDER BY heartbeat_at_us LIMIT $2)"};
constexpr Query kNextWakeup{
    "next_wakeup",
    "SELECT LEAST((SELECT min(fire_at_us) FROM timers), "
    "(SELECT min(timeout_at_us) FROM tasks WHERE timeout_at_us IS NOT NULL), "
    "(SELECT min(heartbeat_at_us) FROM tasks WHERE heartbeat_at_us IS NOT NULL))"};
// Several notifications in one statement (channels and payloads as arrays).
constexpr Query kNotify{"notify",
                        "SELECT pg_notify(n->>0, n->>1) FROM json_array_elements($1::json) AS n"};
// The common writes of one transition as one statement (one round trip
// instead of up to six): the execution row, the events, the task rows opened,
// closed or started, and a NOTIFY per activity with new runnable tasks. A
// data-modifying CTE sees the rows as they were before the statement; the
// caller checks that no task row is touched twice (Combinable).
constexpr Query kWriteTransition{
    "write_transition",
    "WITH u AS (UPDATE executions SET status = $2, version = version + 1, last_event_id = $3, "
    "stop_us = $4, output = $5, error = $6, cause = $7 WHERE execution_id = $1), "
    "e AS (INSERT INTO history (execution_id, last_event_id, first_event_id, events, events_packed) "
    "SELECT execution_id, last_event_id, first_event_id, events, events_packed "
    "FROM json_populate_recordset(NULL::history, $8::json)), "
    "d AS (DELETE FROM tasks WHERE execution_id = $1 AND task_id = ANY($9::bigint[])), "
    "n AS (INSERT INTO tasks (execution_id, task_id, activity, scheduled_us, started_us, "
    "timeout_at_us, heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input) "
    "SELECT execution_id, task_id, activity, scheduled_us, started_us, timeout_at_us, "
    "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input "
    "FROM json_populate_recordset(NULL::tasks, $10::json)), "
    "s AS (UPDATE tasks SET started_us = $12, worker = $13, heartbeat_at_us = $14 "
    "WHERE execution_id = $1 AND task_id = $11::bigint) "
    "SELECT 1"};
// kWriteTransition applied only if the execution row is still at version
// $15 (decided without a lock) and the task it starts ($11), if any, is not
// started: every start is a transition (a version) except one given back
// and started again, and a claim decided on a cached state must not start
// a task twice. Returns how many rows that was (0 or 1).
constexpr Query kWriteTransitionIfVersion{
    "write_transition_if_version",
    "WITH u AS (UPDATE executions SET status = $2, version = version + 1, last_event_id = COALESCE($3, last_event_id), "
    "stop_us = $4, output = $5, error = $6, cause = $7 WHERE execution_id = $1 AND version = $15 "
    "AND ($11::bigint IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.execution_id = $1 "
    "AND t.task_id = $11::bigint AND t.started_us IS NULL)) "
    "RETURNING 1), "
    "e AS (INSERT INTO history (execution_id, last_event_id, first_event_id, events, events_packed) "
    "SELECT execution_id, last_event_id, first_event_id, events, events_packed "
    "FROM json_populate_recordset(NULL::history, $8::json) WHERE EXISTS (SELECT 1 FROM u)), "
    "d AS (DELETE FROM tasks WHERE execution_id = $1 AND task_id = ANY($9::bigint[]) "
    "AND EXISTS (SELECT 1 FROM u)), "
    "n AS (INSERT INTO tasks (execution_id, task_id, activity, scheduled_us, started_us, "
    "timeout_at_us, heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input) "
    "SELECT execution_id, task_id, activity, scheduled_us, started_us, timeout_at_us, "
    "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input "
    "FROM json_populate_recordset(NULL::tasks, $10::json) WHERE EXISTS (SELECT 1 FROM u)), "
    "s AS (UPDATE tasks SET started_us = $12, worker = $13, heartbeat_at_us = $14 "
    "WHERE execution_id = $1 AND task_id = $11::bigint AND EXISTS (SELECT 1 FROM u)) "
    "SELECT count(*) FROM u"};
// The same for a new execution: its row, first events, first tasks, NOTIFYs.
constexpr Query kWriteNewExecution{
    "write_new_execution",
    "WITH x AS (INSERT INTO executions (execution_id, state_machine, name, revision, status, "
    "version, last_event_id, start_us, stop_us, input, output, error, cause) "
    "VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10, $11, $12)), "
    "e AS (INSERT INTO history (execution_id, last_event_id, first_event_id, events, events_packed) "
    "SELECT execution_id, last_event_id, first_event_id, events, events_packed "
    "FROM json_populate_recordset(NULL::history, $13::json)), "
    "n AS (INSERT INTO tasks (execution_id, task_id, activity, scheduled_us, started_us, "
    "timeout_at_us, heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input) "
    "SELECT execution_id, task_id, activity, scheduled_us, started_us, timeout_at_us, "
    "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input "
    "FROM json_populate_recordset(NULL::tasks, $14::json)) "
    "SELECT 1"};
// Group commit: the common writes of several transitions of distinct
// executions in one statement (its own transaction, one commit): new
// executions (`c`, each with its first writes), and transitions of existing
// ones applied only where the row is still at the version they were decided
// on (`r`) and the task they start ("claim"), if any, is not started (as in
// kWriteTransitionIfVersion). Events ($1), task rows closed (`k`), opened
// (`t`) or started (`s`) are written for the executions that were inserted
// or updated only; the statement returns those executions' ids.
// A batch leaves out the parts it has nothing for (BatchShape): every
// data-modifying part is set up and run to its end even when its input is
// empty, which at moderate load (batches of a few transitions) was a good
// part of PostgreSQL's time; the shapes are prepared when first used.
// The planner cannot see how many rows a json_to_recordset gives (it
// assumes 100), and a plan made while the executions table was small
// (prepared statements keep their generic plan) then joins them with a
// sequential scan of the whole table forever: "WHERE one = 1" (every row
// has one = 1) brings the estimate to one row, so the update always probes
// the primary key (the same for the task rows).
// New executions are inserted plainly: ON CONFLICT's speculative insertion
// logs a confirmation record per row. One whose (state machine, name) is
// taken (an idempotent retry of a start, or a race of two) fails the
// statement on the unique index, and the batch is written again with ON
// CONFLICT DO NOTHING, which leaves it out. (A NOT EXISTS probe instead is
// planned, generically and for good, while the table is empty: as a scan of
// every execution of the state machine.)
enum BatchPart : unsigned {
  kBatchCreates = 1,    // new executions
  kBatchUpdates = 2,    // transitions of existing ones
  kBatchDeleted = 4,    // task rows closed (with kBatchUpdates only)
  kBatchNewTasks = 8,   // task rows opened
  kBatchStarted = 16,   // task rows started (with kBatchUpdates only)
  kBatchOnConflict = 32,
  kBatchShapes = 64,
};

bool ValidBatchShape(unsigned shape) {
  if (!(shape & (kBatchCreates | kBatchUpdates))) return false;
  if ((shape & kBatchOnConflict) && !(shape & kBatchCreates)) return false;
  return (shape & kBatchUpdates) || !(shape & (kBatchDeleted | kBatchStarted));
}

std::string BatchStatementName(unsigned shape) { return saga::StrCat("write_batch_", shape); }

// Parameters in order: events, then creates, updates, deleted, new tasks
// and started, each only when its part is in the shape.
std::string BatchStatementSql(unsigned shape) {
  std::vector<std::string> ctes;
  int param = 1;
  const std::string events = saga::StrCat("$", param++);
  if (shape & kBatchCreates) {
    ctes.push_back(saga::StrCat(
        "x AS (INSERT INTO executions (execution_id, state_machine, name, revision, status, "
        "version, last_event_id, start_us, stop_us, input, output, error, cause) "
        "SELECT execution_id, state_machine, name, revision, status, 1, last_event_id, start_us, "
        "stop_us, input, output, error, cause FROM json_populate_recordset(NULL::executions, $",
        param++, "::json) j ", (shape & kBatchOnConflict) ? "ON CONFLICT DO NOTHING " : "",
        "RETURNING execution_id)"));
  }
  if (shape & kBatchUpdates) {
    ctes.push_back(saga::StrCat(
        "r AS (SELECT * FROM json_to_recordset($", param++,
        "::json) AS r(execution_id uuid, v bigint, "
        "status smallint, last_event_id bigint, stop_us bigint, output text, error text, cause text, "
        "claim bigint, one int) WHERE one = 1)"));
    ctes.push_back(
        "u AS (UPDATE executions e SET status = r.status, version = e.version + 1, "
        "last_event_id = COALESCE(r.last_event_id, e.last_event_id), stop_us = r.stop_us, "
        "output = r.output, error = r.error, cause = r.cause FROM r "
        "WHERE e.execution_id = r.execution_id AND e.version = r.v AND (r.claim IS NULL OR EXISTS "
        "(SELECT 1 FROM tasks t WHERE t.execution_id = r.execution_id AND t.task_id = r.claim "
        "AND t.started_us IS NULL)) RETURNING e.execution_id)");
  }
  const bool both = (shape & kBatchCreates) && (shape & kBatchUpdates);
  ctes.push_back(both ? "ok AS (SELECT execution_id FROM x UNION ALL SELECT execution_id FROM u)"
                      : saga::StrCat("ok AS (SELECT execution_id FROM ",
                                     (shape & kBatchCreates) ? "x" : "u", ")"));
  ctes.push_back(saga::StrCat(
      "ev AS (INSERT INTO history (execution_id, last_event_id, first_event_id, events, "
      "events_packed) SELECT execution_id, last_event_id, first_event_id, events, events_packed "
      "FROM json_populate_recordset(NULL::history, ",
      events, "::json) WHERE execution_id IN (SELECT execution_id FROM ok))"));
  if (shape & kBatchDeleted) {
    ctes.push_back(saga::StrCat(
        "d AS (DELETE FROM tasks t USING json_to_recordset($", param++,
        "::json) AS k(execution_id uuid, task_id bigint, one int) WHERE k.one = 1 "
        "AND t.execution_id = k.execution_id AND t.task_id = k.task_id "
        "AND k.execution_id IN (SELECT execution_id FROM u))"));
  }
  if (shape & kBatchNewTasks) {
    ctes.push_back(saga::StrCat(
        "n AS (INSERT INTO tasks (execution_id, task_id, activity, scheduled_us, started_us, "
        "timeout_at_us, heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input) "
        "SELECT execution_id, task_id, activity, scheduled_us, started_us, timeout_at_us, "
        "heartbeat_seconds, heartbeat_at_us, attempt, worker, state_name, input "
        "FROM json_populate_recordset(NULL::tasks, $",
        param++, "::json) WHERE execution_id IN (SELECT execution_id FROM ok))"));
  }
  if (shape & kBatchStarted) {
    ctes.push_back(saga::StrCat(
        "s AS (UPDATE tasks t SET started_us = k.started_us, worker = k.worker, "
        "heartbeat_at_us = k.heartbeat_at_us FROM json_to_recordset($", param++,
        "::json) AS k(execution_id uuid, task_id bigint, started_us bigint, worker text, "
        "heartbeat_at_us bigint, one int) WHERE k.one = 1 AND t.execution_id = k.execution_id "
        "AND t.task_id = k.task_id AND k.execution_id IN (SELECT execution_id FROM u))"));
  }
  std::string sql = "WITH ";
  for (size_t i = 0; i < ctes.size(); ++i) sql += (i ? ", " : "") + ctes[i];
  return sql + " SELECT execution_id::text FROM ok";
}

constexpr Query kGetStateMachine{
    "get_state_machine",
    "SELECT m.type, r.revision, r.definition, m.created_us, r.created_us "
    "FROM state_machines m JOIN state_machine_revisions r ON r.name = m.name "
    "WHERE m.name = $1 AND NOT m.deleted AND "
    "r.revision = CASE WHEN $2 = 0 THEN m.latest_revision ELSE $2 END"};

// A revision's definition, even if the machine was deleted since (running
// executions keep their revision).
constexpr Query kGetRevision{
    "get_revision",
    "SELECT definition FROM state_machine_revisions WHERE name = $1 AND revision = $2"};

constexpr Query kAllQueries[] = {
    kLockExecution, kLockExecutionSkip, kGetExecution, kFindExecution, kInsertExecution,
    kUpdateExecution, kInsertEvents, kLoadEvents, kHistoryAsc, kHistoryDesc, kInsertTasks,
    kDeleteTasks, kLockTask, kStartTask, kHeartbeatTask, kReleaseTask, kInsertTimers, kDeleteTimers,
    kRunnableTasks, kTasksStartedBy, kDueTimers, kDueDeadlines, kNextWakeup, kNotify, kWriteTransition,
    kWriteTransitionIfVersion,
    kWriteNewExecution, kGetStateMachine, kGetRevision};

// Advisory lock key for migrations ("saga" in ASCII).
constexpr int64_t kMigrationLock = 0x73616761;

template <typename T>
std::optional<T> Opt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<T>();
}

ExecutionRecord RowToExecution(const pqxx::row& r, const std::string& id) {
  ExecutionRecord e;
  e.execution_id = id;
  e.state_machine = r[0].as<std::string>();
  e.name = r[1].as<std::string>();
  e.revision = r[2].as<int>();
  e.status = r[3].as<int>();
  e.version = r[4].as<int64_t>();
  e.last_event_id = r[5].as<int64_t>();
  e.start_us = r[6].as<int64_t>();
  e.stop_us = Opt<int64_t>(r[7]);
  e.input = r[8].is_null() ? std::string() : r[8].as<std::string>();
  e.input_in_history = r[8].is_null();
  e.output = Opt<std::string>(r[9]);
  e.error = Opt<std::string>(r[10]);
  e.cause = Opt<std::string>(r[11]);
  return e;
}

TaskRecord RowToTask(const pqxx::row& r, const std::string& execution_id, int offset) {
  TaskRecord t;
  t.execution_id = execution_id;
  t.task_id = r[offset + 0].as<int64_t>();
  t.activity = r[offset + 1].as<std::string>();
  t.scheduled_us = r[offset + 2].as<int64_t>();
  t.started_us = Opt<int64_t>(r[offset + 3]);
  t.timeout_at_us = Opt<int64_t>(r[offset + 4]);
  t.heartbeat_seconds = Opt<int64_t>(r[offset + 5]);
  t.heartbeat_at_us = Opt<int64_t>(r[offset + 6]);
  t.attempt = r[offset + 7].as<int64_t>();
  t.worker = Opt<std::string>(r[offset + 8]);
  t.state_name = r[offset + 9].as<std::string>();
  t.input_in_history = r[offset + 10].is_null();
  if (!t.input_in_history) t.input = r[offset + 10].as<std::string>();
  return t;
}

// Builds the JSON arrays of flat objects that the statements read with
// json_populate_recordset / json_to_recordset, writing the text directly
// (no json::Value tree: this runs for every transition). A value that is
// JSON text of an object or array (event details, payloads) is embedded as
// it is: json_populate_recordset stores a nested object's or array's text
// unchanged in a text column, so nothing is escaped and unescaped twice.
class RowsJson {
 public:
  RowsJson() : out_("[") {}
  void Begin() {
    if (out_.size() > 1) out_.push_back(',');
    out_.push_back('{');
    first_ = true;
  }
  void End() { out_.push_back('}'); }
  void Str(const char* key, std::string_view v) {
    Key(key);
    json::AppendQuoted(v, &out_);
  }
  void OptStr(const char* key, const std::optional<std::string>& v) {
    if (v) {
      Str(key, *v);
    } else {
      Null(key);
    }
  }
  void Int(const char* key, int64_t v) {
    Key(key);
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }
  void Int(const char* key, const std::optional<int64_t>& v) {
    if (v) {
      Int(key, *v);
    } else {
      Null(key);
    }
  }
  // JSON text stored in a text column: embedded when it is an object or an
  // array, else quoted (a nested string would be stored without its quotes,
  // a nested null as NULL).
  // PostgreSQL's JSON parser refuses "\u0000" in any string it reads (it
  // cannot be text), so such text is quoted: its backslash is escaped and
  // comes back as written.
  void JsonText(const char* key, std::string_view text) {
    if (!text.empty() && (text.front() == '{' || text.front() == '[') &&
        (text.back() == '}' || text.back() == ']') &&
        text.find("\\u0000") == std::string_view::npos) {
      Key(key);
      out_.append(text);
    } else {
      Str(key, text);
    }
  }
  void OptJsonText(const char* key, const std::optional<std::string>& v) {
    if (v) {
      JsonText(key, *v);
    } else {
      Null(key);
    }
  }
  void Null(const char* key) {
    Key(key);
    out_.append("null");
  }
  // Appends the rows of another RowsJson's finished array.
  void Rows(std::string_view array) {
    if (array.size() <= 2) return;  // "[]"
    if (out_.size() > 1) out_.push_back(',');
    out_.append(array.substr(1, array.size() - 2));
  }
  std::string Finish() {
    out_.push_back(']');
    return std::move(out_);
  }

 private:
  void Key(const char* key) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.push_back('"');
    out_.append(key);
    out_.append("\":");
  }
  std::string out_;
  bool first_ = true;
};

// History rows hold their events JSON as text (`events`) or compressed
// when the text is at least PgStoreOptions::compress_history_from bytes and
// compressing saves a fifth or more: a transition's events repeat its
// payloads (the input a state entered with is also what its task was
// scheduled with) and every history repeats the same event names and keys.
// From migration 5 rows are written packed (`events_packed`: zstd with a
// fixed dictionary of those names and keys, history_codec.h), two fifths
// smaller than the LZ4 blocks of migration 4 (`events_lz4`) on the
// benchmark's rows; rows of migrations 3 (`events_z`, raw deflate) and 4 are
// read as before.
// The events JSON text of a history row read as (events, events_z,
// events_lz4, events_packed).
absl::StatusOr<std::string> HistoryRowText(const pqxx::row& row) {
  if (!row[0].is_null()) return row[0].as<std::string>();
  auto bytes = [](const pqxx::field& f) {
    const pqxx::binarystring b(f);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  };
  if (!row[3].is_null()) return UnpackHistory(bytes(row[3]));
  if (!row[2].is_null()) return HistoryLz4Text(bytes(row[2]));
  if (!row[1].is_null()) return HistoryDeflateText(bytes(row[1]));
  return absl::DataLossError("history row without events");
}

// The history row of one transition: its events as one JSON array, each
// [id, ts_us, frame, "Type", "State" or null, {details}]. Nothing for a
// transition without events.
void AddEvents(RowsJson* j, const std::string& id, const std::vector<engine::Event>& events,
               int compress_from) {
  if (events.empty()) return;
  std::string text = "[";
  char buf[24];
  auto num = [&](int64_t v) {
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    text.append(buf, r.ptr);
    text.push_back(',');
  };
  for (const auto& e : events) {
    if (text.size() > 1) text.push_back(',');
    text.push_back('[');
    num(e.id);
    num(e.timestamp_us);
    num(static_cast<int64_t>(e.frame));
    json::AppendQuoted(engine::EventTypeName(e.type), &text);
    text.push_back(',');
    if (e.state_name.empty()) {
      text.append("null");
    } else {
      json::AppendQuoted(e.state_name, &text);
    }
    text.push_back(',');
    e.details.DumpTo(&text);
    text.push_back(']');
  }
  text.push_back(']');
  j->Begin();
  j->Str("execution_id", id);
  j->Int("last_event_id", events.back().id);
  j->Int("first_event_id", events.front().id);
  std::string z;
  if (compress_from > 0 && text.size() >= static_cast<size_t>(compress_from)) z = PackHistory(text);
  if (!z.empty() && z.size() * 5 <= text.size() * 4) {
    // bytea's hex input form, "\x0a1b...".
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex = "\\x";
    hex.reserve(2 + z.size() * 2);
    for (unsigned char c : z) {
      hex.push_back(kHex[c >> 4]);
      hex.push_back(kHex[c & 15]);
    }
    j->Str("events_packed", hex);
  } else {
    j->JsonText("events", text);
  }
  j->End();
}

// Appends the events of a history row's text with id in (after, before).
absl::Status AppendHistoryRow(const std::string& text, int64_t after, int64_t before,
                              std::vector<engine::Event>* out) {
  auto batch = json::Parse(text);
  if (!batch.ok() || !batch->is_array()) return absl::DataLossError("history row is not a JSON array");
  for (const json::Value& v : batch->as_array()) {
    if (!v.is_array() || v.as_array().size() != 6 || !v.as_array()[0].is_int() ||
        !v.as_array()[1].is_int() || !v.as_array()[2].is_int()) {
      return absl::DataLossError("history event is not [id, ts, frame, type, state, details]");
    }
    const json::Array& a = v.as_array();
    engine::Event e;
    e.id = a[0].as_int();
    if (e.id <= after || e.id >= before) continue;
    e.timestamp_us = a[1].as_int();
    e.frame = static_cast<int32_t>(a[2].as_int());
    auto type = a[3].is_string() ? engine::EventTypeFromName(a[3].as_string()) : std::nullopt;
    if (!type) return absl::DataLossError("unknown event type " + a[3].Dump());
    e.type = *type;
    if (a[4].is_string()) e.state_name = a[4].as_string();
    e.details = a[5];
    out->push_back(std::move(e));
  }
  return absl::OkStatus();
}

std::string EventsJson(const std::string& id, const std::vector<engine::Event>& events,
                       int compress_from) {
  RowsJson j;
  AddEvents(&j, id, events, compress_from);
  return j.Finish();
}

// An execution's input and its final output are stored once, in its
// history, where that holds the same text: ExecutionStarted's details.input
// and ExecutionSucceeded's details.output, as they are written. The
// executions row then holds NULL instead (migration 6), and the describing
// reads take them from the history (PayloadsFromHistory). The row's insert
// and every later update of it (an update writes the whole row) no longer
// carry the payloads a second and a third time. An input sent with other
// spacing than the history's is kept in the row, so it reads back exactly
// as sent.
std::optional<std::string> StoredInput(const ExecutionRecord& row, const Writes& wr) {
  for (const engine::Event& e : wr.events) {
    if (e.type != engine::EventType::kExecutionStarted) continue;
    const json::Value* in = e.details.Find("input");
    if (in != nullptr && in->Dump() == row.input) return std::nullopt;
    break;
  }
  return row.input;
}

std::optional<std::string> StoredOutput(const Writes& wr) {
  if (!wr.output || wr.status != static_cast<int>(ExecStatus::kSucceeded)) return wr.output;
  for (auto it = wr.events.rbegin(); it != wr.events.rend(); ++it) {
    if (it->type != engine::EventType::kExecutionSucceeded) continue;
    const json::Value* out = it->details.Find("output");
    if (out != nullptr && out->Dump() == *wr.output) return std::nullopt;
    break;
  }
  return wr.output;
}

void AddTasks(RowsJson* j, const std::vector<TaskRecord>& tasks) {
  for (const auto& t : tasks) {
    j->Begin();
    j->Str("execution_id", t.execution_id);
    j->Int("task_id", t.task_id);
    j->Str("activity", t.activity);
    j->Int("scheduled_us", t.scheduled_us);
    j->Int("started_us", t.started_us);
    j->Int("timeout_at_us", t.timeout_at_us);
    j->Int("heartbeat_seconds", t.heartbeat_seconds);
    j->Int("heartbeat_at_us", t.heartbeat_at_us);
    j->Int("attempt", t.attempt);
    j->OptStr("worker", t.worker);
    j->Str("state_name", t.state_name);
    // A task started as its row is written (handed to a waiting worker)
    // leaves its input to the history (its ActivityScheduled or
    // CompensationScheduled event holds the same text): only a give-back
    // makes it runnable again, and the scan that claims it then reads the
    // input there (TaskInputFromHistory).
    if (t.started_us) {
      j->Null("input");
    } else {
      j->JsonText("input", t.input);
    }
    j->End();
  }
}

std::string TasksJson(const std::vector<TaskRecord>& tasks) {
  RowsJson j;
  AddTasks(&j, tasks);
  return j.Finish();
}

std::string TimersJson(const std::vector<TimerRecord>& timers) {
  RowsJson j;
  for (const auto& t : timers) {
    j.Begin();
    j.Str("execution_id", t.execution_id);
    j.Int("timer_id", t.timer_id);
    j.Int("fire_at_us", t.fire_at_us);
    j.End();
  }
  return j.Finish();
}

std::string IdArray(const std::vector<int64_t>& ids) {
  std::string s = "{";
  for (size_t i = 0; i < ids.size(); ++i) s += saga::StrCat(i ? "," : "", ids[i]);
  return s + "}";
}

}  // namespace

// ---------------------------------------------------------------------------
// Connection pool

struct PgStore::Impl {
  PgStoreOptions options;
  std::string conninfo;
  int max_size = 8;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<pqxx::connection>> idle;
  int open = 0;

  absl::StatusOr<std::unique_ptr<pqxx::connection>> Acquire() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !idle.empty() || open < max_size; });
    // Last in, first out: the connection used last is taken again, so the
    // group commit keeps one PostgreSQL backend busy, warm in the CPU's
    // caches, instead of each batch waking the least recently used of the
    // pool's (round robin, before: ten backends sharing its work, each cold).
    // Seven alternating pairs at 2,000 starts/s: PostgreSQL's CPU per
    // execution 0.29 -> 0.25 ms, the coordinator's part of scheduled ->
    // handler p50 1.52 -> 1.06 ms (README). PgBouncer reuses its server
    // connections the same way by default.
    if (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      return c;
    }
    ++open;
    lock.unlock();
    try {
      auto c = std::make_unique<pqxx::connection>(conninfo);
      for (const Query& q : kAllQueries) c->prepare(q.name, q.sql);
      for (unsigned shape = 0; shape < kBatchShapes; ++shape) {
        if (ValidBatchShape(shape)) c->prepare(BatchStatementName(shape), BatchStatementSql(shape));
      }
      return c;
    } catch (...) {
      {
        std::lock_guard<std::mutex> g(mu);
        --open;
      }
      cv.notify_one();
      bool broken;
      absl::Status s = CurrentExceptionToStatus("connect", &broken);
      return absl::UnavailableError(std::string(s.message()));
    }
  }

  void Release(std::unique_ptr<pqxx::connection> c, bool broken) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (broken || !c->is_open()) {
        --open;
      } else {
        idle.push_back(std::move(c));
      }
    }
    cv.notify_one();
  }

  // Group commit of batchable writes (Batchable): each caller queues its
  // item and waits for its result; one committer thread takes everything
  // queued (one item per execution) and writes it in one statement
  // (BatchStatementSql), hands the written batch to the finisher thread
  // (FinishLoop) and goes straight on with what queued meanwhile. A lone
  // item is written at once, so nothing waits for a batch to fill. (Before, a caller led each batch and the
  // next leader was a queued caller woken at the batch's end: at 1,000
  // starts/s that hand-over left PostgreSQL idle for a wake-up between
  // batches, and a batch took 2.1 ms from its statement's start to its
  // commit against 1.4 ms now.)
  // Each caller sleeps on its own condition variable, woken by the
  // finisher after it unlocks (so that the caller does not wake into a
  // held mutex) while the caller may already have returned: shared.
  struct Waiter {
    std::condition_variable cv;
  };
  struct BatchItem {
    const ExecutionRecord* create = nullptr;  // a new execution, else a transition
    const std::string* id = nullptr;
    int64_t version = 0;
    const Writes* writes = nullptr;
    // The history row (EventsJson), made by the caller: compressing it is
    // work the committer would otherwise do for everyone in turn.
    std::string events_json;
    absl::StatusOr<bool> result = false;  // applied (inserted / still at version)
    bool done = false;
    std::shared_ptr<Waiter> waiter;  // set by Submit
    // Set by SubmitAsync instead of a waiter: run by the finisher, which
    // then deletes the item.
    std::function<void(absl::StatusOr<bool>)> on_done;
  };
  // One batch at a time: everything that queues while it is written goes
  // into the next one. Two at a time (callers leading, before the
  // committer thread) split the queue into
  // smaller statements competing for the same two cores: with one,
  // PostgreSQL's CPU per execution at 1,000 starts/s fell from 0.53-0.63 to
  // 0.43-0.47 ms and the dispatch latency's p99 from 17-20 to 10-11 ms,
  // and the saga's throughput rose (alternating benchmark runs, README).
  // A batch waiting on another transaction's row (a start racing one of
  // the same name) holds up the others until that transaction ends.
  static constexpr size_t kMaxBatch = 256;
  std::mutex batch_mu;
  std::deque<BatchItem*> batch_queue;
  std::condition_variable committer_cv;
  bool committer_idle = false;  // waiting on committer_cv for items
  bool committer_stop = false;
  std::thread committer;  // started by Open
  std::atomic<uint64_t> n_batches{0}, n_batch_items{0}, n_conflict_batches{0};
  // Queues `items` (one caller's, several executions) and returns once all
  // are written.
  void Submit(std::span<BatchItem* const> items);
  // Queues a heap-allocated item with on_done set; the committer owns it.
  void SubmitAsync(std::unique_ptr<BatchItem> item);
  // Sets an item's writes (a new execution's if `create`) and makes its
  // history row.
  void Fill(BatchItem* item, const ExecutionRecord* create, const std::string* id,
            int64_t version, const Writes* writes) const {
    item->create = create;
    item->id = id;
    item->version = version;
    item->writes = writes;
    item->events_json = EventsJson(*id, writes->events, options.compress_history_from);
  }
  absl::StatusOr<bool> Submit(BatchItem* item) {
    Submit(std::span<BatchItem* const>(&item, 1));
    return item->result;
  }
  void CommitLoop();
  // The finisher: runs a written batch's after_commit hooks, wakes its
  // waiting callers and runs its asynchronous items' continuations (push the
  // tasks, answer the starts, ack the results) while the committer writes
  // the next batch. (When the committer did this itself, its ~0.35 ms per
  // batch at 1,800 executions/s came on top of the ~1 ms statement every
  // queued item waits for: the coordinator's part of the dispatch latency's
  // p50 fell from 1.02-1.90 to 0.76-1.27 ms, for 0.04-0.06 ms more of
  // PostgreSQL's CPU per execution from the smaller batches, alternating
  // runs, README.) One written batch at a time: the committer hands over the
  // next only once the finisher is done with the last. Unbounded, the
  // finisher fell up to 11 batches behind in a burst while the committer
  // wrote ever smaller ones, and the dispatch latency's p99 reached 20 and
  // 113 ms in two full benchmark runs.
  void FinishLoop();
  std::mutex finish_mu;
  std::condition_variable finish_cv;  // both threads wait on it
  std::optional<std::vector<BatchItem*>> written;  // handed over, not yet finished
  bool finisher_stop = false;
  std::thread finisher;
  ~Impl() {
    {
      std::lock_guard<std::mutex> g(batch_mu);
      committer_stop = true;  // it writes what is queued first
    }
    committer_cv.notify_one();
    if (committer.joinable()) committer.join();
    if (finisher.joinable()) finisher.join();
  }
  // `on_conflict`: with ON CONFLICT DO NOTHING (after the plain statement
  // met a concurrent start of the same name).
  void WriteBatch(const std::vector<BatchItem*>& batch, bool on_conflict = false);

  // Runs fn(connection) with exception mapping; broken connections are dropped.
  template <typename F>
  auto With(std::string_view what, F&& fn) -> decltype(fn(std::declval<pqxx::connection&>())) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    bool broken = false;
    try {
      auto r = fn(**conn);
      Release(*std::move(conn), false);
      return r;
    } catch (...) {
      absl::Status s = CurrentExceptionToStatus(what, &broken);
      Release(*std::move(conn), broken);
      return s;
    }
  }
};

PgStore::PgStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgStore::~PgStore() = default;

absl::StatusOr<std::unique_ptr<PgStore>> PgStore::Open(const std::string& conninfo,
                                                       int pool_size, PgStoreOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->conninfo = conninfo;
  impl->max_size = std::max(1, pool_size);
  auto c = impl->Acquire();
  if (!c.ok()) return c.status();
  impl->Release(*std::move(c), false);
  Impl* i = impl.get();
  try {
    impl->committer = std::thread([i] { i->CommitLoop(); });
    impl->finisher = std::thread([i] { i->FinishLoop(); });
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(saga::StrCat("starting the group commit's thread: ", e.what()));
  }
  return std::unique_ptr<PgStore>(new PgStore(std::move(impl)));
}

int PgStore::LatestSchemaVersion() { return static_cast<int>(BuiltinMigrations().size()); }

absl::Status PgStore::Migrate() {
  return impl_->With("migrate", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work w(c);
    w.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
    w.exec0(
        "CREATE TABLE IF NOT EXISTS saga_schema_version (version integer PRIMARY KEY, "
        "name text NOT NULL, applied_us bigint NOT NULL)");
    int current = w.exec1("SELECT coalesce(max(version), 0) FROM saga_schema_version")[0].as<int>();
    const auto& migrations = BuiltinMigrations();
    for (size_t i = static_cast<size_t>(current); i < migrations.size(); ++i) {
      w.exec(migrations[i].second);
      w.exec_params(
          "INSERT INTO saga_schema_version (version, name, applied_us) "
          "VALUES ($1, $2, (extract(epoch from clock_timestamp()) * 1000000)::bigint)",
          static_cast<int>(i + 1), std::string(migrations[i].first));
    }
    w.commit();
    return absl::OkStatus();
  });
}

absl::StatusOr<int> PgStore::SchemaVersion() {
  return impl_->With("schema version", [&](pqxx::connection& c) -> absl::StatusOr<int> {
    pqxx::read_transaction w(c);
    auto exists = w.exec1("SELECT to_regclass('saga_schema_version') IS NOT NULL");
    if (!exists[0].as<bool>()) return 0;
    return w.exec1("SELECT coalesce(max(version), 0) FROM saga_schema_version")[0].as<int>();
  });
}

// ---------------------------------------------------------------------------
// State machines

absl::StatusOr<StateMachineRecord> PgStore::CreateStateMachine(const std::string& name, int type,
                                                               const std::string& definition,
                                                               int64_t now_us) {
  return impl_->With(
      "CreateStateMachine", [&](pqxx::connection& c) -> absl::StatusOr<StateMachineRecord> {
        pqxx::work w(c);
        auto existing = w.exec_params("SELECT deleted FROM state_machines WHERE name = $1", name);
        int revision = 1;
        if (!existing.empty()) {
          if (!existing[0][0].as<bool>()) {
            return absl::AlreadyExistsError(
                saga::StrCat("name: state machine '", name, "' already exists"));
          }
          // A deleted name is reused: revisions continue.
          revision = w.exec_params1("SELECT latest_revision + 1 FROM state_machines WHERE name = $1",
                                    name)[0]
                         .as<int>();
          w.exec_params0(
              "UPDATE state_machines SET type = $2, latest_revision = $3, updated_us = $4, "
              "deleted = false WHERE name = $1",
              name, type, revision, now_us);
        } else {
          w.exec_params0(
              "INSERT INTO state_machines (name, type, latest_revision, created_us, updated_us) "
              "VALUES ($1, $2, 1, $3, $3)",
              name, type, now_us);
        }
        w.exec_params0(
            "INSERT INTO state_machine_revisions (name, revision, created_us, definition) "
            "VALUES ($1, $2, $3, $4)",
            name, revision, now_us, definition);
        w.commit();
        return StateMachineRecord{name, type, revision, definition, now_us, now_us};
      });
}

absl::StatusOr<StateMachineRecord> PgStore::UpdateStateMachine(const std::string& name,
                                                               const std::string& definition,
                                                               int64_t now_us) {
  return impl_->With(
      "UpdateStateMachine", [&](pqxx::connection& c) -> absl::StatusOr<StateMachineRecord> {
        pqxx::work w(c);
        auto r = w.exec_params(
            "UPDATE state_machines SET latest_revision = latest_revision + 1, updated_us = $2 "
            "WHERE name = $1 AND NOT deleted RETURNING type, latest_revision, created_us",
            name, now_us);
        if (r.empty()) {
          return absl::NotFoundError(saga::StrCat("name: state machine '", name, "' does not exist"));
        }
        StateMachineRecord rec{name, r[0][0].as<int>(), r[0][1].as<int>(), definition,
                               r[0][2].as<int64_t>(), now_us};
        w.exec_params0(
            "INSERT INTO state_machine_revisions (name, revision, created_us, definition) "
            "VALUES ($1, $2, $3, $4)",
            name, rec.revision, now_us, definition);
        w.commit();
        return rec;
      });
}

absl::StatusOr<StateMachineRecord> PgStore::GetStateMachine(const std::string& name,
                                                            int revision) {
  return impl_->With(
      "DescribeStateMachine", [&](pqxx::connection& c) -> absl::StatusOr<StateMachineRecord> {
        pqxx::nontransaction w(c);  // one statement: one round trip, no BEGIN/ROLLBACK
        auto r = w.exec_prepared(kGetStateMachine.name, name, revision);
        if (r.empty()) {
          return absl::NotFoundError(
              revision == 0
                  ? saga::StrCat("state machine '", name, "' does not exist")
                  : saga::StrCat("state machine '", name, "' has no revision ", revision));
        }
        return StateMachineRecord{name,
                                  r[0][0].as<int>(),
                                  r[0][1].as<int>(),
                                  r[0][2].as<std::string>(),
                                  r[0][3].as<int64_t>(),
                                  r[0][4].as<int64_t>()};
      });
}

absl::StatusOr<std::vector<StateMachineRecord>> PgStore::ListStateMachines(
    const std::string& after, int limit) {
  return impl_->With(
      "ListStateMachines",
      [&](pqxx::connection& c) -> absl::StatusOr<std::vector<StateMachineRecord>> {
        pqxx::read_transaction w(c);
        auto r = w.exec_params(
            "SELECT name, type, latest_revision, created_us, updated_us FROM state_machines "
            "WHERE NOT deleted AND name > $1 ORDER BY name LIMIT $2",
            after, limit);
        std::vector<StateMachineRecord> out;
        for (const auto& row : r) {
          out.push_back(StateMachineRecord{row[0].as<std::string>(), row[1].as<int>(),
                                           row[2].as<int>(), "", row[3].as<int64_t>(),
                                           row[4].as<int64_t>()});
        }
        return out;
      });
}

absl::Status PgStore::DeleteStateMachine(const std::string& name) {
  return impl_->With("DeleteStateMachine", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work w(c);
    auto r = w.exec_params(
        "UPDATE state_machines SET deleted = true WHERE name = $1 AND NOT deleted", name);
    if (r.affected_rows() == 0) {
      return absl::NotFoundError(saga::StrCat("name: state machine '", name, "' does not exist"));
    }
    w.commit();
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------------------
// Executions

namespace {

std::string TimerNote() {
  return saga::StrCat("[[\"", kTimerChannel, "\",\"-\"]]");
}

// Whether kWriteTransition can carry the writes: it must not touch a task row
// twice (a transition never starts a task it also opens or closes).
bool Combinable(const Writes& wr) {
  if (wr.released) return false;
  if (!wr.started) return true;
  const int64_t id = wr.started->task_id;
  if (std::find(wr.deleted_tasks.begin(), wr.deleted_tasks.end(), id) != wr.deleted_tasks.end()) {
    return false;
  }
  for (const auto& t : wr.new_tasks) {
    if (t.task_id == id) return false;
  }
  return true;
}

// The writes kWriteTransition and kWriteNewExecution leave out: heartbeats
// and timers (with the timer NOTIFY).
void WriteRest(pqxx::work& w, const std::string& id, const Writes& wr) {
  if (wr.heartbeat) {
    w.exec_prepared0(kHeartbeatTask.name, id, wr.heartbeat->first, wr.heartbeat->second);
  }
  if (!wr.deleted_timers.empty()) {
    w.exec_prepared0(kDeleteTimers.name, id, IdArray(wr.deleted_timers));
  }
  if (!wr.new_timers.empty()) w.exec_prepared0(kInsertTimers.name, TimersJson(wr.new_timers));
  if (wr.notify_timers) w.exec_prepared(kNotify.name, TimerNote());
}

void WriteAll(pqxx::work& w, const std::string& id, const Writes& wr, int compress_from) {
  if (!wr.events.empty()) {
    w.exec_prepared0(kInsertEvents.name, EventsJson(id, wr.events, compress_from));
  }
  if (!wr.deleted_tasks.empty()) {
    w.exec_prepared0(kDeleteTasks.name, id, IdArray(wr.deleted_tasks));
  }
  if (!wr.new_tasks.empty()) w.exec_prepared0(kInsertTasks.name, TasksJson(wr.new_tasks));
  if (wr.started) {
    w.exec_prepared0(kStartTask.name, id, wr.started->task_id, wr.started->started_us,
                     wr.started->worker, wr.started->heartbeat_at_us);
  }
  if (wr.heartbeat) {
    w.exec_prepared0(kHeartbeatTask.name, id, wr.heartbeat->first, wr.heartbeat->second);
  }
  if (wr.released) w.exec_prepared0(kReleaseTask.name, id, *wr.released);
  if (!wr.deleted_timers.empty()) {
    w.exec_prepared0(kDeleteTimers.name, id, IdArray(wr.deleted_timers));
  }
  if (!wr.new_timers.empty()) w.exec_prepared0(kInsertTimers.name, TimersJson(wr.new_timers));
  if (wr.notify_timers) w.exec_prepared(kNotify.name, TimerNote());
}

class PgTxn : public TransitionTxn {
 public:
  PgTxn(pqxx::work& w, const std::string& id) : w_(w), id_(id) {}
  absl::StatusOr<std::vector<engine::Event>> LoadEvents(int64_t after_id) override {
    auto r = w_.exec_prepared(kLoadEvents.name, id_, after_id);
    std::vector<engine::Event> out;
    for (const auto& row : r) {
      auto text = HistoryRowText(row);
      if (!text.ok()) return text.status();
      absl::Status s = AppendHistoryRow(*text, after_id, INT64_MAX, &out);
      if (!s.ok()) return s;
    }
    return out;
  }
  absl::StatusOr<std::string> LoadDefinition(const std::string& state_machine,
                                             int revision) override {
    auto r = w_.exec_prepared(kGetRevision.name, state_machine, revision);
    if (r.empty()) {
      return absl::NotFoundError(
          saga::StrCat("state machine '", state_machine, "' has no revision ", revision));
    }
    return r[0][0].as<std::string>();
  }
  absl::StatusOr<std::optional<TaskRecord>> LockTask(int64_t task_id) override {
    auto r = w_.exec_prepared(kLockTask.name, id_, task_id);
    if (r.empty()) return std::optional<TaskRecord>();
    return std::optional<TaskRecord>(RowToTask(r[0], id_, 0));
  }

 private:
  pqxx::work& w_;
  const std::string& id_;
};

// Whether the writes fit the batch statement: the combined statement's writes and
// nothing else (no timers, heartbeats or give-backs).
bool Batchable(const Writes& wr) {
  return Combinable(wr) && !wr.heartbeat && !wr.released && wr.deleted_timers.empty() &&
         wr.new_timers.empty() && !wr.notify_timers;
}

}  // namespace

void PgStore::Impl::Submit(std::span<BatchItem* const> items) {
  // One waiter per thread, kept for its next calls.
  thread_local const std::shared_ptr<Waiter> my_waiter = std::make_shared<Waiter>();
  for (BatchItem* item : items) item->waiter = my_waiter;
  std::unique_lock<std::mutex> lock(batch_mu);
  batch_queue.insert(batch_queue.end(), items.begin(), items.end());
  if (committer_idle) {
    committer_idle = false;
    committer_cv.notify_one();
  }
  my_waiter->cv.wait(lock, [&] {
    return std::all_of(items.begin(), items.end(), [](const BatchItem* i) { return i->done; });
  });
}

void PgStore::Impl::SubmitAsync(std::unique_ptr<BatchItem> item) {
  std::lock_guard<std::mutex> lock(batch_mu);
  batch_queue.push_back(item.release());
  if (committer_idle) {
    committer_idle = false;
    committer_cv.notify_one();
  }
}

void PgStore::Impl::CommitLoop() {
  pthread_setname_np(pthread_self(), "saga-commit");
  std::unique_lock<std::mutex> lock(batch_mu);
  while (true) {
    if (batch_queue.empty()) {
      if (committer_stop) break;
      committer_idle = true;
      committer_cv.wait(lock, [&] { return committer_stop || !batch_queue.empty(); });
      committer_idle = false;
      continue;
    }
    // One item per execution: a second one for the same execution waits
    // for the next batch (it was decided on the version the first changes).
    std::vector<BatchItem*> batch;
    std::deque<BatchItem*> later;
    std::unordered_set<std::string_view> ids;
    while (!batch_queue.empty() && batch.size() < kMaxBatch) {
      BatchItem* b = batch_queue.front();
      batch_queue.pop_front();
      if (ids.insert(*b->id).second) {
        batch.push_back(b);
      } else {
        later.push_back(b);
      }
    }
    batch_queue.insert(batch_queue.begin(), later.begin(), later.end());
    lock.unlock();
    ++n_batches;
    n_batch_items += batch.size();
    WriteBatch(batch);
    {
      std::unique_lock<std::mutex> g(finish_mu);
      finish_cv.wait(g, [&] { return !written; });
      written = std::move(batch);
    }
    finish_cv.notify_all();
    lock.lock();
  }
  lock.unlock();
  {
    std::lock_guard<std::mutex> g(finish_mu);
    finisher_stop = true;
  }
  finish_cv.notify_all();
}

void PgStore::Impl::FinishLoop() {
  pthread_setname_np(pthread_self(), "saga-committed");
  std::vector<std::shared_ptr<Waiter>> wake;
  while (true) {
    std::vector<BatchItem*> batch;
    {
      std::unique_lock<std::mutex> g(finish_mu);
      finish_cv.wait(g, [&] { return finisher_stop || written; });
      if (!written) return;  // stopped, and the committer has nothing more
      batch = std::move(*written);  // stays set until finished
    }
    for (BatchItem* b : batch) {
      if (b->writes->after_commit && b->result.ok() && *b->result) b->writes->after_commit();
    }
    // The asynchronous items (this thread owns them), set apart before the
    // waiting callers are told: once told, theirs may be gone.
    std::vector<std::unique_ptr<BatchItem>> async;
    {
      std::lock_guard<std::mutex> lock(batch_mu);
      for (BatchItem* b : batch) {
        if (b->on_done) {
          async.emplace_back(b);
          continue;
        }
        b->done = true;
        if (std::find(wake.begin(), wake.end(), b->waiter) == wake.end()) wake.push_back(b->waiter);
      }
    }
    for (const auto& w : wake) w->cv.notify_one();
    wake.clear();
    // The waiting callers first: the continuations of asynchronous ones
    // (whose callers do not wait) run after.
    for (auto& b : async) b->on_done(std::move(b->result));
    async.clear();
    {
      std::lock_guard<std::mutex> g(finish_mu);
      written.reset();
    }
    finish_cv.notify_all();  // the committer, if it waits to hand over
  }
}

void PgStore::Impl::WriteBatch(const std::vector<BatchItem*>& batch, bool on_conflict) {
  RowsJson creates, updates, events, deleted, tasks, started;
  for (const BatchItem* b : batch) {
    const Writes& wr = *b->writes;
    const std::string& id = *b->id;
    std::optional<int64_t> last;
    if (!wr.events.empty()) last = wr.events.back().id;
    if (b->create) {
      const ExecutionRecord& row = *b->create;
      creates.Begin();
      creates.Str("execution_id", id);
      creates.Str("state_machine", row.state_machine);
      creates.Str("name", row.name);
      creates.Int("revision", static_cast<int64_t>(row.revision));
      creates.Int("status", static_cast<int64_t>(wr.status));
      creates.Int("last_event_id", last.value_or(0));
      creates.Int("start_us", row.start_us);
      creates.Int("stop_us", wr.stop_us);
      creates.OptJsonText("input", StoredInput(row, wr));
      creates.OptJsonText("output", StoredOutput(wr));
      creates.OptStr("error", wr.error);
      creates.OptStr("cause", wr.cause);
      creates.End();
    } else {
      updates.Begin();
      updates.Str("execution_id", id);
      updates.Int("v", b->version);
      updates.Int("one", 1);
      updates.Int("status", static_cast<int64_t>(wr.status));
      updates.Int("last_event_id", last);
      updates.Int("stop_us", wr.stop_us);
      updates.OptJsonText("output", StoredOutput(wr));
      updates.OptStr("error", wr.error);
      updates.OptStr("cause", wr.cause);
      if (wr.started) updates.Int("claim", wr.started->task_id);
      updates.End();
      for (int64_t t : wr.deleted_tasks) {
        deleted.Begin();
        deleted.Str("execution_id", id);
        deleted.Int("task_id", t);
        deleted.Int("one", 1);
        deleted.End();
      }
      if (wr.started) {
        started.Begin();
        started.Str("execution_id", id);
        started.Int("task_id", wr.started->task_id);
        started.Int("started_us", wr.started->started_us);
        started.Str("worker", wr.started->worker);
        started.Int("heartbeat_at_us", wr.started->heartbeat_at_us);
        started.Int("one", 1);
        started.End();
      }
    }
    events.Rows(b->events_json);
    AddTasks(&tasks, wr.new_tasks);
  }
  // The statement's parameters in BatchStatementSql's order, only for the
  // parts the batch has rows for.
  unsigned shape = on_conflict ? unsigned{kBatchOnConflict} : 0u;
  std::vector<std::string> params;
  params.push_back(events.Finish());
  for (auto [part, rows] : {std::pair{kBatchCreates, &creates}, std::pair{kBatchUpdates, &updates},
                            std::pair{kBatchDeleted, &deleted}, std::pair{kBatchNewTasks, &tasks},
                            std::pair{kBatchStarted, &started}}) {
    std::string json = rows->Finish();
    if (json == "[]") continue;
    shape |= part;
    params.push_back(std::move(json));
  }
  if (!ValidBatchShape(shape)) {  // every item creates or updates: cannot happen
    for (BatchItem* b : batch) b->result = absl::InternalError("group commit without executions");
    return;
  }
  auto applied = With("transition", [&](pqxx::connection& c) -> absl::StatusOr<std::unordered_set<std::string>> {
    pqxx::nontransaction w(c);  // one statement: its own transaction
    auto r = w.exec_prepared(BatchStatementName(shape), pqxx::prepare::make_dynamic_params(params));
    std::unordered_set<std::string> ids;
    for (const auto& row : r) ids.insert(row[0].as<std::string>());
    return ids;
  });
  if (!applied.ok() && !on_conflict && applied.status().code() == absl::StatusCode::kAlreadyExists &&
      (shape & kBatchCreates)) {
    ++n_conflict_batches;
    WriteBatch(batch, /*on_conflict=*/true);  // nothing of the failed statement was written
    return;
  }
  if (!applied.ok()) {
    // One bad item must not fail the others: write them one by one (a
    // broken connection fails them all).
    if (batch.size() > 1 && applied.status().code() != absl::StatusCode::kUnavailable) {
      for (BatchItem* b : batch) WriteBatch({b});
      return;
    }
    for (BatchItem* b : batch) b->result = applied.status();
    return;
  }
  for (BatchItem* b : batch) b->result = applied->count(*b->id) > 0;
}

std::vector<std::string> PgStore::BatchStatementsForTest() {
  std::vector<std::string> out;
  for (unsigned shape = 0; shape < kBatchShapes; ++shape) {
    if (ValidBatchShape(shape)) out.push_back(BatchStatementSql(shape));
  }
  return out;
}

PgStore::BatchStats PgStore::batch_stats() const {
  return {impl_->n_batches.load(), impl_->n_batch_items.load(), impl_->n_conflict_batches.load()};
}

namespace {
// Whether a new execution's first writes go to the group commit.
bool BatchableStart(const Writes& first) {
  return Batchable(first) && !first.started && first.deleted_tasks.empty();
}
absl::Status StartWritten(const absl::StatusOr<bool>& inserted, const ExecutionRecord& row) {
  if (!inserted.ok()) return inserted.status();
  if (!*inserted) {
    return absl::AlreadyExistsError(saga::StrCat("execution '", row.name, "' of '",
                                                 row.state_machine, "' already exists"));
  }
  return absl::OkStatus();
}
}  // namespace

bool PgStore::CreateExecutionAsync(const ExecutionRecord* row, const Writes* first,
                                   std::function<void(absl::Status)> done) {
  if (!BatchableStart(*first)) return false;
  auto item = std::make_unique<Impl::BatchItem>();
  impl_->Fill(item.get(), row, &row->execution_id, 0, first);
  item->on_done = [row, done = std::move(done)](absl::StatusOr<bool> inserted) {
    done(StartWritten(inserted, *row));
  };
  impl_->SubmitAsync(std::move(item));
  return true;
}

absl::Status PgStore::CreateExecution(const ExecutionRecord& row, const Writes& first) {
  if (BatchableStart(first)) {
    Impl::BatchItem item;
    impl_->Fill(&item, &row, &row.execution_id, 0, &first);
    return StartWritten(impl_->Submit(&item), row);
  }
  return impl_->With("StartExecution", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work w(c);
    w.exec_prepared(kWriteNewExecution.name, row.execution_id, row.state_machine, row.name,
                    row.revision, first.status,
                    first.events.empty() ? int64_t{0} : first.events.back().id, row.start_us,
                    first.stop_us, StoredInput(row, first), StoredOutput(first), first.error, first.cause,
                    EventsJson(row.execution_id, first.events, impl_->options.compress_history_from), TasksJson(first.new_tasks));
    WriteRest(w, row.execution_id, first);
    w.commit();
    return absl::OkStatus();
  });
}

namespace {

// Appends every event of a history row (HistoryRowText's columns).
absl::Status AppendRowEvents(const pqxx::row& row, std::vector<engine::Event>* out) {
  auto text = HistoryRowText(row);
  if (!text.ok()) return text.status();
  return AppendHistoryRow(*text, 0, INT64_MAX, out);
}

// Fills in the input and the output that an executions row leaves to its
// history (StoredInput, StoredOutput): ExecutionStarted's input from the
// first history row, the last ExecutionSucceeded's output from the last.
absl::Status PayloadsFromHistory(pqxx::transaction_base& w, ExecutionRecord* e) {
  auto find = [&](const char* query, int64_t cursor, engine::EventType type,
                  const char* key) -> absl::StatusOr<std::string> {
    std::vector<engine::Event> events;
    for (const auto& row : w.exec_prepared(query, e->execution_id, cursor, 1)) {
      RETURN_IF_ERROR(AppendRowEvents(row, &events));
    }
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->type != type) continue;
      if (const json::Value* v = it->details.Find(key)) return v->Dump();
    }
    return absl::DataLossError(saga::StrCat("execution '", e->execution_id, "': its ", key,
                                            " is neither in its row nor in its history"));
  };
  if (e->input_in_history) {
    auto input = find(kHistoryAsc.name, 0, engine::EventType::kExecutionStarted, "input");
    if (!input.ok()) return input.status();
    e->input = *std::move(input);
    e->input_in_history = false;
  }
  if (!e->output && e->status == static_cast<int>(ExecStatus::kSucceeded)) {
    auto output = find(kHistoryDesc.name, INT64_MAX, engine::EventType::kExecutionSucceeded, "output");
    if (!output.ok()) return output.status();
    e->output = *std::move(output);
  }
  return absl::OkStatus();
}

// Fills in the input of a task row that leaves it to the history (see
// AddTasks): the details.input of the event that scheduled the task, found
// from the newest history rows back.
absl::Status TaskInputFromHistory(pqxx::transaction_base& w, TaskRecord* t) {
  constexpr int kRowsAtOnce = 8;
  int64_t cursor = INT64_MAX;
  while (true) {
    auto r = w.exec_prepared(kHistoryDesc.name, t->execution_id, cursor, kRowsAtOnce);
    for (const auto& row : r) {
      std::vector<engine::Event> events;
      RETURN_IF_ERROR(AppendRowEvents(row, &events));
      for (const engine::Event& e : events) {
        if (e.type != engine::EventType::kActivityScheduled &&
            e.type != engine::EventType::kCompensationScheduled) {
          continue;
        }
        const json::Value* id = e.details.Find("taskId");
        const json::Value* input = e.details.Find("input");
        if (id != nullptr && id->is_int() && id->as_int() == t->task_id && input != nullptr) {
          t->input = input->Dump();
          t->input_in_history = false;
          return absl::OkStatus();
        }
      }
      if (!events.empty()) cursor = std::min(cursor, events.front().id);
    }
    if (r.size() < static_cast<size_t>(kRowsAtOnce)) break;
  }
  return absl::DataLossError(saga::StrCat("task ", t->task_id, " of execution '", t->execution_id,
                                          "': its input is neither in its row nor in its history"));
}

}  // namespace

absl::StatusOr<ExecutionRecord> PgStore::GetExecution(const std::string& execution_id) {
  static const std::regex kUuid(
      "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
  if (!std::regex_match(execution_id, kUuid)) {
    return absl::NotFoundError(saga::StrCat("execution '", execution_id, "' does not exist"));
  }
  return impl_->With("DescribeExecution",
                     [&](pqxx::connection& c) -> absl::StatusOr<ExecutionRecord> {
                       pqxx::nontransaction w(c);  // one statement
                       auto r = w.exec_prepared(kGetExecution.name, execution_id);
                       if (r.empty()) {
                         return absl::NotFoundError(
                             saga::StrCat("execution '", execution_id, "' does not exist"));
                       }
                       ExecutionRecord e = RowToExecution(r[0], r[0][12].as<std::string>());
                       RETURN_IF_ERROR(PayloadsFromHistory(w, &e));
                       return e;
                     });
}

absl::StatusOr<ExecutionRecord> PgStore::FindExecution(const std::string& state_machine,
                                                       const std::string& name) {
  return impl_->With("DescribeExecution",
                     [&](pqxx::connection& c) -> absl::StatusOr<ExecutionRecord> {
                       pqxx::nontransaction w(c);  // one statement
                       auto r = w.exec_prepared(kFindExecution.name, state_machine, name);
                       if (r.empty()) {
                         return absl::NotFoundError(saga::StrCat(
                             "execution '", name, "' of '", state_machine, "' does not exist"));
                       }
                       ExecutionRecord e = RowToExecution(r[0], r[0][12].as<std::string>());
                       RETURN_IF_ERROR(PayloadsFromHistory(w, &e));
                       return e;
                     });
}

absl::StatusOr<std::vector<ExecutionRecord>> PgStore::ListExecutions(
    const std::string& state_machine, int status, std::optional<int64_t> before_us,
    const std::string& before_id, int limit) {
  return impl_->With(
      "ListExecutions", [&](pqxx::connection& c) -> absl::StatusOr<std::vector<ExecutionRecord>> {
        pqxx::read_transaction w(c);
        const std::string cols =
            "SELECT state_machine, name, revision, status, version, last_event_id, start_us, "
            "stop_us, '' AS input, NULL::text, error, cause, execution_id FROM executions ";
        pqxx::result r;
        const int64_t cursor_us = before_us.value_or(INT64_MAX);
        const std::string cursor_id =
            before_id.empty() ? "ffffffff-ffff-ffff-ffff-ffffffffffff" : before_id;
        if (status == 0) {
          r = w.exec_params(cols +
                                "WHERE state_machine = $1 AND (start_us, execution_id) < ($2, "
                                "$3::uuid) ORDER BY start_us DESC, execution_id DESC LIMIT $4",
                            state_machine, cursor_us, cursor_id, limit);
        } else {
          r = w.exec_params(cols +
                                "WHERE state_machine = $1 AND status = $5 AND (start_us, "
                                "execution_id) < ($2, $3::uuid) ORDER BY start_us DESC, "
                                "execution_id DESC LIMIT $4",
                            state_machine, cursor_us, cursor_id, limit, status);
        }
        std::vector<ExecutionRecord> out;
        for (const auto& row : r) out.push_back(RowToExecution(row, row[12].as<std::string>()));
        return out;
      });
}

absl::StatusOr<std::vector<engine::Event>> PgStore::History(const std::string& execution_id,
                                                            int64_t cursor, int limit,
                                                            bool reverse) {
  return impl_->With("GetExecutionHistory",
                     [&](pqxx::connection& c) -> absl::StatusOr<std::vector<engine::Event>> {
                       pqxx::read_transaction w(c);
                       auto r = w.exec_prepared(reverse ? kHistoryDesc.name : kHistoryAsc.name,
                                                execution_id, cursor, limit);
                       std::vector<engine::Event> out;
                       for (const auto& row : r) {
                         auto text = HistoryRowText(row);
                         if (!text.ok()) return text.status();
                         absl::Status s = AppendHistoryRow(
                             *text, reverse ? INT64_MIN : cursor,
                             reverse ? cursor : INT64_MAX, &out);
                         if (!s.ok()) return s;
                       }
                       // Rows come newest first when reversed, their events
                       // oldest first: reverse each row's run by sorting.
                       if (reverse) {
                         std::sort(out.begin(), out.end(),
                                   [](const engine::Event& a, const engine::Event& b) {
                                     return a.id > b.id;
                                   });
                       }
                       if (static_cast<int>(out.size()) > limit) out.resize(limit);
                       return out;
                     });
}

absl::Status PgStore::Transition(const std::string& execution_id, const TransitionFn& fn,
                                 bool skip_locked) {
  return impl_->With("transition", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work w(c);
    auto r = w.exec_prepared(skip_locked ? kLockExecutionSkip.name : kLockExecution.name,
                             execution_id);
    if (r.empty()) {
      if (skip_locked) {
        auto exists = w.exec_prepared(kGetExecution.name, execution_id);
        if (!exists.empty()) return absl::ResourceExhaustedError("execution is locked");
      }
      return absl::NotFoundError(saga::StrCat("execution '", execution_id, "' does not exist"));
    }
    ExecutionRecord locked = RowToExecution(r[0], execution_id);
    PgTxn txn(w, execution_id);
    absl::StatusOr<Writes> wr = fn(locked, txn);
    if (!wr.ok()) return wr.status();  // rolled back by the work's destructor
    const int64_t last = wr->events.empty() ? locked.last_event_id : wr->events.back().id;
    if (Combinable(*wr)) {
      const auto& st = wr->started;
      w.exec_prepared(kWriteTransition.name, execution_id, wr->status, last, wr->stop_us,
                      StoredOutput(*wr), wr->error, wr->cause, EventsJson(execution_id, wr->events, impl_->options.compress_history_from),
                      IdArray(wr->deleted_tasks), TasksJson(wr->new_tasks),
                      st ? std::optional<int64_t>(st->task_id) : std::nullopt,
                      st ? std::optional<int64_t>(st->started_us) : std::nullopt,
                      st ? std::optional<std::string>(st->worker) : std::nullopt,
                      st ? st->heartbeat_at_us : std::nullopt);
      WriteRest(w, execution_id, *wr);
    } else {
      w.exec_prepared0(kUpdateExecution.name, execution_id, wr->status, last, wr->stop_us,
                       StoredOutput(*wr), wr->error, wr->cause);
      WriteAll(w, execution_id, *wr, impl_->options.compress_history_from);
    }
    w.commit();
    return absl::OkStatus();
  });
}

std::vector<absl::StatusOr<bool>> PgStore::WriteIfVersionMany(
    const std::vector<VersionedWrites>& writes) {
  std::vector<absl::StatusOr<bool>> results(writes.size(), false);
  std::vector<Impl::BatchItem> items(writes.size());
  std::vector<Impl::BatchItem*> batched;
  for (size_t i = 0; i < writes.size(); ++i) {
    const VersionedWrites& v = writes[i];
    if (!Batchable(*v.writes)) continue;
    impl_->Fill(&items[i], nullptr, v.execution_id, v.version, v.writes);
    batched.push_back(&items[i]);
  }
  if (!batched.empty()) impl_->Submit(batched);
  for (size_t i = 0; i < writes.size(); ++i) {
    const VersionedWrites& v = writes[i];
    results[i] = Batchable(*v.writes) ? items[i].result
                                      : WriteIfVersion(*v.execution_id, v.version, *v.writes);
  }
  return results;
}

bool PgStore::WriteIfVersionAsync(const std::string* execution_id, int64_t version,
                                  const Writes* writes,
                                  std::function<void(absl::StatusOr<bool>)> done) {
  if (!Batchable(*writes)) return false;
  auto item = std::make_unique<Impl::BatchItem>();
  impl_->Fill(item.get(), nullptr, execution_id, version, writes);
  item->on_done = std::move(done);
  impl_->SubmitAsync(std::move(item));
  return true;
}

absl::StatusOr<bool> PgStore::WriteIfVersion(const std::string& execution_id, int64_t version,
                                             const Writes& wr) {
  if (!Combinable(wr)) return false;
  if (Batchable(wr)) {
    Impl::BatchItem item;
    impl_->Fill(&item, nullptr, &execution_id, version, &wr);
    return impl_->Submit(&item);
  }
  // Anything beyond the combined statement needs a transaction around both.
  const bool rest = wr.heartbeat || wr.released || !wr.deleted_timers.empty() ||
                    !wr.new_timers.empty() || wr.notify_timers;
  auto write = [&](pqxx::transaction_base& w) {
    const int64_t last = wr.events.empty() ? -1 : wr.events.back().id;
    const auto& st = wr.started;
    auto r = w.exec_prepared(kWriteTransitionIfVersion.name, execution_id, wr.status,
                             last < 0 ? std::optional<int64_t>() : std::optional<int64_t>(last),
                             wr.stop_us, StoredOutput(wr), wr.error, wr.cause,
                             EventsJson(execution_id, wr.events, impl_->options.compress_history_from), IdArray(wr.deleted_tasks),
                             TasksJson(wr.new_tasks),
                             st ? std::optional<int64_t>(st->task_id) : std::nullopt,
                             st ? std::optional<int64_t>(st->started_us) : std::nullopt,
                             st ? std::optional<std::string>(st->worker) : std::nullopt,
                             st ? st->heartbeat_at_us : std::nullopt, version);
    return r[0][0].as<int64_t>() == 1;
  };
  return impl_->With("transition", [&](pqxx::connection& c) -> absl::StatusOr<bool> {
    if (!rest) {
      pqxx::nontransaction w(c);  // one statement: its own transaction
      return write(w);
    }
    pqxx::work w(c);
    if (!write(w)) return false;  // rolled back by the work's destructor
    WriteRest(w, execution_id, wr);
    w.commit();
    return true;
  });
}

// ---------------------------------------------------------------------------
// Work discovery

absl::StatusOr<std::vector<TaskRecord>> PgStore::RunnableTasks(const std::string& activity,
                                                               int limit) {
  return impl_->With("runnable tasks",
                     [&](pqxx::connection& c) -> absl::StatusOr<std::vector<TaskRecord>> {
                       pqxx::nontransaction w(c);
                       auto r = w.exec_prepared(kRunnableTasks.name, activity, limit);
                       std::vector<TaskRecord> out;
                       for (const auto& row : r) {
                         out.push_back(RowToTask(row, row[0].as<std::string>(), 1));
                         if (out.back().input_in_history) {
                           RETURN_IF_ERROR(TaskInputFromHistory(w, &out.back()));
                         }
                       }
                       return out;
                     });
}

absl::StatusOr<std::vector<TaskRecord>> PgStore::TasksStartedBy(const std::string& worker) {
  return impl_->With("tasks started by",
                     [&](pqxx::connection& c) -> absl::StatusOr<std::vector<TaskRecord>> {
                       pqxx::nontransaction w(c);
                       auto r = w.exec_prepared(kTasksStartedBy.name, worker);
                       std::vector<TaskRecord> out;
                       for (const auto& row : r) {
                         out.push_back(RowToTask(row, row[0].as<std::string>(), 1));
                       }
                       return out;
                     });
}

absl::StatusOr<std::vector<TimerRecord>> PgStore::DueTimers(int64_t now_us, int limit) {
  return impl_->With("due timers",
                     [&](pqxx::connection& c) -> absl::StatusOr<std::vector<TimerRecord>> {
                       pqxx::nontransaction w(c);
                       auto r = w.exec_prepared(kDueTimers.name, now_us, limit);
                       std::vector<TimerRecord> out;
                       for (const auto& row : r) {
                         out.push_back({row[0].as<std::string>(), row[1].as<int64_t>(),
                                        row[2].as<int64_t>()});
                       }
                       return out;
                     });
}

absl::StatusOr<std::vector<DueDeadline>> PgStore::DueDeadlines(int64_t now_us, int limit) {
  return impl_->With("due deadlines",
                     [&](pqxx::connection& c) -> absl::StatusOr<std::vector<DueDeadline>> {
                       pqxx::nontransaction w(c);
                       auto r = w.exec_prepared(kDueDeadlines.name, now_us, limit);
                       std::vector<DueDeadline> out;
                       for (const auto& row : r) {
                         out.push_back({row[0].as<std::string>(), row[1].as<int64_t>(),
                                        row[2].as<bool>()});
                       }
                       return out;
                     });
}

absl::StatusOr<std::optional<int64_t>> PgStore::NextWakeup() {
  return impl_->With("next wakeup",
                     [&](pqxx::connection& c) -> absl::StatusOr<std::optional<int64_t>> {
                       pqxx::nontransaction w(c);
                       auto r = w.exec_prepared1(kNextWakeup.name);
                       return Opt<int64_t>(r[0]);
                     });
}

absl::StatusOr<std::string> PgStore::GetOrInitSetting(const std::string& key,
                                                      const std::string& initial) {
  return impl_->With("settings", [&](pqxx::connection& c) -> absl::StatusOr<std::string> {
    pqxx::work w(c);
    w.exec_params0("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                   key, initial);
    auto r = w.exec_params1("SELECT value FROM settings WHERE key = $1", key);
    w.commit();
    return r[0].as<std::string>();
  });
}

absl::Status PgStore::Notify(const std::vector<std::pair<std::string, std::string>>& notes) {
  if (notes.empty()) return absl::OkStatus();
  json::Array a;
  for (const auto& [channel, payload] : notes) {
    a.push_back(json::Value(json::Array{json::Value(channel), json::Value(payload)}));
  }
  const std::string arg = json::Value(std::move(a)).Dump();
  return impl_->With("notify", [&](pqxx::connection& c) -> absl::Status {
    pqxx::work w(c);
    w.exec_prepared(kNotify.name, arg);
    w.commit();
    return absl::OkStatus();
  });
}

absl::Status PgStore::Exec(const std::string& sql) {
  return impl_->With("exec", [&](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction w(c);
    w.exec(sql);
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------------------
// LISTEN

namespace {

using Note = std::pair<std::string, std::string>;

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, const std::string& channel, std::vector<Note>* sink)
      : pqxx::notification_receiver(c, channel), sink_(sink) {}
  void operator()(const std::string& payload, int) override {
    sink_->emplace_back(channel(), payload);
  }

 private:
  std::vector<Note>* sink_;
};

class PgListener : public PgStore::Listener {
 public:
  static absl::StatusOr<std::unique_ptr<PgListener>> Make(const std::string& conninfo,
                                                          const std::vector<std::string>& channels) {
    auto l = std::unique_ptr<PgListener>(new PgListener());
    try {
      l->conn_ = std::make_unique<pqxx::connection>(conninfo);
      for (const auto& ch : channels) {
        l->receivers_.push_back(std::make_unique<Receiver>(*l->conn_, ch, &l->pending_));
      }
    } catch (...) {
      bool broken;
      return CurrentExceptionToStatus("listen", &broken);
    }
    return l;
  }
  ~PgListener() override {
    try {
      receivers_.clear();
      conn_.reset();
    } catch (...) {  // a dead connection cannot UNLISTEN; nothing to do
    }
  }
  absl::StatusOr<std::vector<Note>> Wait(int timeout_ms) override {
    try {
      if (pending_.empty()) {
        conn_->await_notification(timeout_ms / 1000, (timeout_ms % 1000) * 1000);
      } else {
        conn_->get_notifs();
      }
      if (!conn_->is_open()) return absl::UnavailableError("listen connection closed");
    } catch (...) {
      bool broken;
      return CurrentExceptionToStatus("listen", &broken);
    }
    std::vector<Note> out;
    out.swap(pending_);
    return out;
  }

 private:
  PgListener() = default;
  std::unique_ptr<pqxx::connection> conn_;
  std::vector<std::unique_ptr<Receiver>> receivers_;
  std::vector<Note> pending_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PgStore::Listener>> PgStore::Listen(
    const std::vector<std::string>& channels) {
  auto l = PgListener::Make(impl_->conninfo, channels);
  if (!l.ok()) return l.status();
  return std::unique_ptr<PgStore::Listener>(*std::move(l));
}

}  // namespace saga::storage
