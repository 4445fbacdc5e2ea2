// PostgreSQL storage for the coordinator. The only code that includes pqxx
// (behind a pimpl, so this header is pqxx-free).
//
// Every state transition goes through Transition(): lock the execution row,
// let the caller decide (the engine), then write the events, the execution
// row and the task/timer rows the decision schedules (transactional outbox),
// and commit — one transaction. pqxx exceptions are mapped to absl::Status in
// pg_errors.cc only: serialization failure / deadlock -> ABORTED (retry the
// whole read-modify-write), broken connection -> UNAVAILABLE, unique
// violation -> ALREADY_EXISTS, anything else -> INTERNAL.
//
// Thread safety: all methods are thread-safe; connections come from an
// internal pool, and a broken connection is replaced on next use.
#ifndef SAGA_COORDINATOR_STORAGE_PG_PG_STORE_H_
#define SAGA_COORDINATOR_STORAGE_PG_PG_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/engine/events.h"

namespace saga::storage {

struct StateMachineRecord {
  std::string name;
  int type = 1;  // 1 STANDARD, 2 EXPRESS
  int revision = 0;
  std::string definition;
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

// Status codes stored in executions.status.
enum class ExecStatus : int { kRunning = 1, kSucceeded = 2, kFailed = 3, kTimedOut = 4, kAborted = 5 };

struct ExecutionRecord {
  std::string execution_id;  // uuid
  std::string state_machine;
  std::string name;
  int revision = 0;
  int status = 1;
  int64_t version = 0;
  int64_t last_event_id = 0;
  int64_t start_us = 0;
  std::optional<int64_t> stop_us;
  std::string input;
  std::optional<std::string> output, error, cause;
  // Read from a row that leaves its input to the history (the reads that
  // describe an execution fill `input` in; see pg_store.cc, StoredInput).
  bool input_in_history = false;
};

struct TaskRecord {
  std::string execution_id;
  int64_t task_id = 0;
  std::string activity;
  std::string state_name;
  std::string input;
  int64_t attempt = 0;
  int64_t scheduled_us = 0;
  std::optional<int64_t> started_us;
  std::optional<int64_t> timeout_at_us;
  std::optional<int64_t> heartbeat_seconds;
  std::optional<int64_t> heartbeat_at_us;
  std::optional<std::string> worker;
  // Read from a row that leaves its input to the history (RunnableTasks
  // fills `input` in; see pg_store.cc, AddTasks).
  bool input_in_history = false;
};

struct TimerRecord {
  std::string execution_id;
  int64_t timer_id = 0;
  int64_t fire_at_us = 0;
};

// A task whose TimeoutSeconds or heartbeat deadline has passed.
struct DueDeadline {
  std::string execution_id;
  int64_t task_id = 0;
  bool heartbeat = false;
};

// Everything one transition writes.
struct Writes {
  std::vector<engine::Event> events;
  // The execution row after the transition.
  int status = 1;
  std::optional<int64_t> stop_us;
  std::optional<std::string> output, error, cause;
  std::vector<TaskRecord> new_tasks;
  std::vector<int64_t> deleted_tasks;
  std::vector<TimerRecord> new_timers;
  std::vector<int64_t> deleted_timers;
  // Task row updates without events of their own.
  struct Started {
    int64_t task_id;
    std::string worker;
    int64_t started_us;
    std::optional<int64_t> heartbeat_at_us;
  };
  std::optional<Started> started;
  std::optional<std::pair<int64_t, int64_t>> heartbeat;  // task id, new heartbeat deadline
  std::optional<int64_t> released;  // task id made runnable again (given back)
  // NOTIFY the timer channel in this transaction (atomically with the
  // commit): set for wake-ups sooner than the sweepers' longest sleep.
  bool notify_timers = false;
  // Activities that got runnable tasks (the caller wakes their dispatchers).
  std::vector<std::string> notify_activities;
  // If set, the group commit runs this on its own thread as soon as these
  // writes are committed (applied), before it wakes their caller: work that
  // should not wait for that wake-up (pushing the tasks they start to their
  // workers). It must be quick and must not block or write. Other paths do
  // not run it: the caller does that work itself if it was not done.
  std::function<void()> after_commit;
};

// The earliest timer or task deadline the writes arm (a timer, a
// TimeoutSeconds on a new task, a heartbeat deadline on a started one), if
// any: the timer sweepers must recompute their next wake-up.
inline std::optional<int64_t> EarliestArmed(const Writes& w) {
  std::optional<int64_t> t;
  auto take = [&](const std::optional<int64_t>& x) {
    if (x && (!t || *x < *t)) t = x;
  };
  for (const auto& timer : w.new_timers) take(timer.fire_at_us);
  if (w.started) take(w.started->heartbeat_at_us);
  for (const auto& task : w.new_tasks) {
    take(task.timeout_at_us);
    take(task.heartbeat_at_us);
  }
  return t;
}
inline bool ArmsWakeup(const Writes& w) { return EarliestArmed(w).has_value(); }

// Access to the locked execution inside Transition().
class TransitionTxn {
 public:
  virtual ~TransitionTxn() = default;
  // Events with id > after_id, in order.
  virtual absl::StatusOr<std::vector<engine::Event>> LoadEvents(int64_t after_id) = 0;
  // The task row, locked; nullopt when it no longer exists.
  virtual absl::StatusOr<std::optional<TaskRecord>> LockTask(int64_t task_id) = 0;
  // A state machine revision's definition (kept when the machine is
  // deleted), read in this transaction (a
  // transition must never wait for a second pooled connection while it
  // holds one: enough of them at once would hold the whole pool).
  virtual absl::StatusOr<std::string> LoadDefinition(const std::string& state_machine,
                                                     int revision) = 0;
};

struct PgStoreOptions {
  // History rows whose events JSON is at least this long are stored packed
  // (history_codec.h) when that saves a fifth or more (0: never). Rows are
  // read in every form either way.
  int compress_history_from = 64;
};

class PgStore {
 public:
  // Connects `pool_size` connections lazily; fails fast if the first cannot.
  static absl::StatusOr<std::unique_ptr<PgStore>> Open(const std::string& conninfo,
                                                       int pool_size,
                                                       PgStoreOptions options = {});
  ~PgStore();

  // Applies pending migrations under a PostgreSQL advisory lock, so
  // concurrently starting coordinators apply each migration once.
  absl::Status Migrate();
  // The highest applied migration (0 on an empty database).
  absl::StatusOr<int> SchemaVersion();
  // The highest migration built into this binary.
  static int LatestSchemaVersion();

  // State machines. Errors: AlreadyExists, NotFound.
  absl::StatusOr<StateMachineRecord> CreateStateMachine(const std::string& name, int type,
                                                        const std::string& definition,
                                                        int64_t now_us);
  absl::StatusOr<StateMachineRecord> UpdateStateMachine(const std::string& name,
                                                        const std::string& definition,
                                                        int64_t now_us);
  // revision 0: the latest. Deleted machines are NotFound.
  absl::StatusOr<StateMachineRecord> GetStateMachine(const std::string& name, int revision);
  absl::StatusOr<std::vector<StateMachineRecord>> ListStateMachines(const std::string& after,
                                                                    int limit);
  absl::Status DeleteStateMachine(const std::string& name);

  // Inserts a new execution with its first transition. AlreadyExists when
  // the (state machine, name) pair is taken.
  absl::Status CreateExecution(const ExecutionRecord& row, const Writes& first);
  absl::StatusOr<ExecutionRecord> GetExecution(const std::string& execution_id);
  absl::StatusOr<ExecutionRecord> FindExecution(const std::string& state_machine,
                                                const std::string& name);
  // Newest first. Cursor: executions strictly older than (before_us, before_id).
  absl::StatusOr<std::vector<ExecutionRecord>> ListExecutions(
      const std::string& state_machine, int status, std::optional<int64_t> before_us,
      const std::string& before_id, int limit);
  // Events after `after_id` (ascending) or before `before_id` (descending).
  absl::StatusOr<std::vector<engine::Event>> History(const std::string& execution_id,
                                                     int64_t cursor, int limit, bool reverse);

  // One transition. `fn` sees the locked row and returns what to write; a
  // non-OK status from `fn` rolls back and is returned. With skip_locked, a
  // row locked by someone else returns ResourceExhausted at once.
  using TransitionFn =
      std::function<absl::StatusOr<Writes>(const ExecutionRecord& locked, TransitionTxn& txn)>;
  absl::Status Transition(const std::string& execution_id, const TransitionFn& fn,
                          bool skip_locked = false);

  // The optimistic form of Transition for a caller that decided on the
  // state at `version` without a lock: writes only if the execution row is
  // still at that version (one statement when nothing but the common writes
  // is needed). False: the row moved on (or the writes need the locked
  // path); nothing was written.
  absl::StatusOr<bool> WriteIfVersion(const std::string& execution_id, int64_t version,
                                      const Writes& writes);

  // WriteIfVersion for several executions at once (distinct or not): those
  // that need nothing but the combined statement go to the group commit
  // together, so the caller waits once for all of them. One result each.
  struct VersionedWrites {
    const std::string* execution_id = nullptr;
    int64_t version = 0;
    const Writes* writes = nullptr;
  };
  std::vector<absl::StatusOr<bool>> WriteIfVersionMany(const std::vector<VersionedWrites>& writes);

  // WriteIfVersion without waiting: the group commit runs `done` with the
  // result on its own thread once the batch is written (after `after_commit`).
  // `done` must be quick and must not block or write; `*execution_id` and
  // `writes` must live until it runs. False, and `done` is never run, when
  // the writes need more than the combined statement (use WriteIfVersion).
  bool WriteIfVersionAsync(const std::string* execution_id, int64_t version, const Writes* writes,
                           std::function<void(absl::StatusOr<bool>)> done);
  // CreateExecution without waiting, as WriteIfVersionAsync: `done` gets
  // CreateExecution's status on the group commit's thread; `*row` and
  // `*first` must live until then. False (and `done` never run) when the
  // writes need a transaction of their own (use CreateExecution).
  bool CreateExecutionAsync(const ExecutionRecord* row, const Writes* first,
                            std::function<void(absl::Status)> done);

  // CreateExecution and WriteIfVersion calls whose writes need nothing but
  // the combined statement are group-committed: concurrent calls for
  // distinct executions share one statement and one commit (each still
  // applies or fails on its own). Counters since open:
  struct BatchStats {
    uint64_t batches = 0;  // statements written
    uint64_t items = 0;    // calls they carried
    // Statements written again with ON CONFLICT: a start raced another of
    // the same name.
    uint64_t conflict_retries = 0;
  };
  BatchStats batch_stats() const;
  // The group commit's statement in each of its shapes (a batch leaves out
  // the parts it has no rows for), for a test that PostgreSQL takes them all.
  static std::vector<std::string> BatchStatementsForTest();

  // Work discovery (no locks; Transition re-checks).
  absl::StatusOr<std::vector<TaskRecord>> RunnableTasks(const std::string& activity, int limit);
  // Tasks started for `worker` (its identity) and still open.
  absl::StatusOr<std::vector<TaskRecord>> TasksStartedBy(const std::string& worker);
  absl::StatusOr<std::vector<TimerRecord>> DueTimers(int64_t now_us, int limit);
  absl::StatusOr<std::vector<DueDeadline>> DueDeadlines(int64_t now_us, int limit);
  // The earliest timer or task deadline, if any.
  absl::StatusOr<std::optional<int64_t>> NextWakeup();

  // A dedicated connection LISTENing on some channels.
  class Listener {
   public:
    virtual ~Listener() = default;
    // Waits up to timeout_ms for notifications; returns (channel, payload)
    // pairs (empty on timeout). Unavailable when the connection broke.
    virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Wait(
        int timeout_ms) = 0;
  };
  absl::StatusOr<std::unique_ptr<Listener>> Listen(const std::vector<std::string>& channels);

  // Returns the setting, storing `initial` first if it has none yet (all
  // replicas then agree on the value).
  absl::StatusOr<std::string> GetOrInitSetting(const std::string& key, const std::string& initial);

  // Sends NOTIFYs (channel, payload) in one transaction of their own. A
  // transaction that NOTIFYs holds a cluster-wide lock through its commit's
  // flush, so the transition path never does: the coordinator coalesces its
  // wake-ups for other processes into these.
  absl::Status Notify(const std::vector<std::pair<std::string, std::string>>& notes);

  // Runs a statement outside any transition (tests and benchmarks).
  absl::Status Exec(const std::string& sql);

  struct Impl;

 private:
  explicit PgStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The NOTIFY channel on which new runnable tasks are announced.
inline constexpr char kTaskChannel[] = "saga_tasks";
// The NOTIFY channel on which new or earlier timers are announced.
inline constexpr char kTimerChannel[] = "saga_timers";

}  // namespace saga::storage

#endif  // SAGA_COORDINATOR_STORAGE_PG_PG_STORE_H_
