// The durable coordinator: every API operation on Standard executions, the
// one state-transition path, task dispatch, and the timer sweeper.
//
// The transition recipe (ApplyCommand): lock the execution row, rebuild the
// engine state (from a version-checked cache, else by replaying the stored
// events), run engine::Process, then write the events, the execution row and
// the task/timer rows the decision opens or closes, and commit — one
// transaction. Nothing else writes execution state. Dispatch and timers find
// work without locks and go through the same path, which re-checks and drops
// stale work; the execution row lock keeps two coordinators (or threads)
// from advancing one execution at once.
//
// Wake-ups: after a commit that makes a task runnable or arms a timer, this
// process wakes its own dispatchers (long polls, worker streams) and timer
// sweeper at once, and tells the other coordinators of the database with a
// NOTIFY. Those NOTIFYs are coalesced: a NOTIFYing transaction holds a
// cluster-wide lock through its commit's flush, so transitions never NOTIFY
// themselves; one notifier thread sends everything queued while its previous
// NOTIFY committed (payloads carry this process's instance id, so it ignores
// its own). Dispatchers wait on these wake-ups with the next due time as a
// deadline: dispatch never scans on a fixed interval. A coordinator that dies
// between a commit and its NOTIFY leaves the task to be found by the next
// wake-up of that activity, an idle dispatcher's end of wait (60 s), or the
// rescan every coordinator does when one starts ("*").
//
// Thread safety: all public methods are thread-safe.
#ifndef SAGA_COORDINATOR_RUNTIME_COORDINATOR_H_
#define SAGA_COORDINATOR_RUNTIME_COORDINATOR_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/asl/definition.h"
#include "coordinator/asl/validator.h"
#include "coordinator/engine/engine.h"
#include "coordinator/runtime/task_token.h"
#include "coordinator/storage/pg/pg_store.h"

namespace saga::runtime {

// The timer sweepers re-read the next due time at least this often, so a
// wake-up armed further ahead needs no NOTIFY to be found in time by every
// coordinator, even if the one that armed it dies right after its commit.
inline constexpr int64_t kSweeperMaxSleepUs = 30000000;

struct CoordinatorOptions {
  std::string token_secret;          // HMAC key for task tokens
  int max_cached_executions = 20000;  // engine states kept in memory (LRU)
  bool run_background = true;         // timer sweeper and LISTEN threads
};

struct ActivityTask {
  std::string task_token;  // empty: none arrived in time
  std::string activity;
  std::string input;
  std::string execution_arn;
  std::string state_name;
  int64_t attempt = 0;
  std::optional<int64_t> timeout_seconds, heartbeat_seconds;
  std::optional<int64_t> deadline_unix_ms;  // TimeoutSeconds as an absolute time
  int64_t scheduled_unix_us = 0;            // when the attempt was scheduled
  // "<execution uuid>/<task id>": the same for every delivery of one attempt.
  std::string idempotency_key;
  std::string traceparent;  // W3C: trace id = execution uuid, span id = task id
  bool callback = false;    // Resource ended in .waitForTaskToken
  bool compensation = false;
  std::string compensated_state, compensated_idempotency_key;
};

// The activity a Task Resource dispatches to: the Resource without a
// trailing ".waitForTaskToken".
std::string ActivityOf(const std::string& resource);
inline constexpr char kWaitForTaskToken[] = ".waitForTaskToken";

// Counters since start (for operators and benchmarks).
struct CoordinatorStats {
  uint64_t transitions_unlocked = 0;  // decided on the cached state, version-checked write
  uint64_t transitions_locked = 0;    // row lock, then decided
  uint64_t unlocked_conflicts = 0;    // version moved: retried on the locked path
  uint64_t transitions_together = 0;  // of the unlocked: written with others of one caller
  uint64_t tasks_handed_off = 0;      // started in the transaction that opened them
  uint64_t tasks_claimed = 0;         // found by a scan and claimed in a transaction of their own
  uint64_t replays = 0;               // states rebuilt from the history (cache miss)
  uint64_t lease_waits = 0;  // transitions that found another of their execution under way
                             // (they wait for its lease, or take the blocking path)
  uint64_t results_async = 0;  // worker results decided without a thread waiting for the commit
};

struct ValidationResult {
  std::vector<asl::ValidationError> errors;
};

class Coordinator {
 public:
  struct Waiter;
  Coordinator(storage::PgStore* store, CoordinatorOptions options);
  ~Coordinator();  // stops the background threads

  // Starts the timer sweeper and the LISTEN thread (unless disabled).
  void Start();
  // Stops background work and wakes every long poll (they return no task).
  void Shutdown();
  bool stopping();
  CoordinatorStats stats() const;

  // --- state machines (type: 1 STANDARD, 2 EXPRESS) ---
  // InvalidArgument with a JSON array of {path,message} for a bad definition.
  absl::StatusOr<storage::StateMachineRecord> CreateStateMachine(const std::string& name,
                                                                 const std::string& definition,
                                                                 int type);
  absl::StatusOr<storage::StateMachineRecord> UpdateStateMachine(const std::string& name,
                                                                 const std::string& definition);
  absl::StatusOr<storage::StateMachineRecord> DescribeStateMachine(const std::string& name_or_arn,
                                                                   int revision);
  absl::StatusOr<std::vector<storage::StateMachineRecord>> ListStateMachines(
      const std::string& after, int limit);
  absl::Status DeleteStateMachine(const std::string& name_or_arn);
  static std::vector<asl::ValidationError> Validate(const std::string& definition);

  // --- executions ---
  absl::StatusOr<storage::ExecutionRecord> StartExecution(const std::string& state_machine,
                                                          const std::string& name,
                                                          const std::string& input);
  // StartExecution for a caller that must not block (a callback API
  // handler): when the state machine's latest revision is cached here,
  // decides at once and leaves the write to the group commit, whose thread
  // then runs `done` with StartExecution's answer. What may block (a write
  // that needs a transaction of its own, reading the row a start of the same
  // name left) goes to `run_blocking`, which must run it on a thread that may
  // block; `done` then runs there. A refusal found before any of that
  // (a bad name, say) runs `done` at once, on this thread. False: nothing was
  // done and neither is called (call StartExecution on a thread that may).
  bool StartExecutionAsync(const std::string& state_machine, const std::string& name,
                           const std::string& input,
                           std::function<void(absl::StatusOr<storage::ExecutionRecord>)> done,
                           const std::function<void(std::function<void()>)>& run_blocking);
  absl::StatusOr<storage::ExecutionRecord> DescribeExecution(const std::string& arn);
  absl::StatusOr<std::vector<storage::ExecutionRecord>> ListExecutions(
      const std::string& state_machine, int status, const std::string& page_token, int limit,
      std::string* next_token);
  absl::StatusOr<std::vector<engine::Event>> GetExecutionHistory(const std::string& arn,
                                                                 const std::string& page_token,
                                                                 int limit, bool reverse,
                                                                 std::string* next_token);
  // With `compensate`, the completed steps are compensated first (see
  // engine::StopCommand); the time of the stop, or of the request then.
  absl::StatusOr<int64_t> StopExecution(const std::string& arn, const std::string& error,
                                        const std::string& cause, bool compensate = false);
  // engine::RedriveCommand; the time of the redrive.
  absl::StatusOr<int64_t> RedriveExecution(const std::string& arn);

  // --- activities ---
  // Long poll: waits up to wait_ms for a runnable task of `activity`, or
  // until `cancelled()` returns true (checked on every wake-up).
  absl::StatusOr<ActivityTask> GetActivityTask(const std::string& activity,
                                               const std::string& worker, int wait_ms,
                                               const std::function<bool()>& cancelled);
  // The same for several activities at once (worker streams): returns the
  // first task of any of them; none when the wait ends or `cancelled()`.
  // Returns up to `max_tasks` tasks when several were handed off at once
  // (never more than one found by a scan); empty when none came in time.
  // `scanned` (optional) carries the wake-up count of this caller's last scan
  // that found nothing: while no wake-up came since, the scan is skipped.
  absl::StatusOr<std::vector<ActivityTask>> ClaimTasks(const std::vector<std::string>& activities,
                                                       const std::string& worker, int max_tasks,
                                                       int wait_ms,
                                                       const std::function<bool()>& cancelled,
                                                       uint64_t* scanned = nullptr,
                                                       Waiter* subscription = nullptr);
  // A worker stream's results, several at once, one status each: a failure
  // as SendTaskFailure; a success as SendTaskSuccess, except for a callback
  // (.waitForTaskToken) task, whose state waits for SendTaskSuccess or
  // SendTaskFailure with its token: then only checks that it is still open.
  // The transitions decided on cached states go to one group commit
  // together (the caller waits once for all).
  struct WorkerResult {
    std::string token;
    bool failed = false;
    std::string output;  // a success
    // A failure's, each absent or as given (as SendTaskFailure's).
    std::optional<std::string> error, cause;
  };
  std::vector<absl::Status> ApplyWorkerResults(const std::vector<WorkerResult>& results);
  // One result, for a caller that must not block (a worker stream's read
  // reaction): when its execution's state is cached here and no other
  // transition of it is under way, decides at once and leaves the write to
  // the group commit, whose thread then finishes the transition and runs
  // `done` with the status ApplyWorkerResults would give. What may block
  // (writes that need a transaction of their own, the locked path after the
  // row moved on) goes to `run_blocking`, which must run it on a thread that
  // may block; `done` then runs there. False: nothing was done and neither
  // is called (apply the result with ApplyWorkerResults).
  bool ApplyWorkerResultAsync(const WorkerResult& r, std::function<void(absl::Status)> done,
                              const std::function<void(std::function<void()>)>& run_blocking);
  // Gives a started task back: runnable again as the same attempt (no
  // history event; the next delivery records another ActivityStarted).
  // Only the worker holding it (`worker`, its identity) can.
  absl::Status ReleaseTask(const std::string& token, const std::string& worker);
  // A worker (re)registering says which tasks it still holds: every other
  // task started for its identity was lost on the way (its coordinator died
  // between committing the start and pushing it, or the stream broke) and is
  // given back, to be delivered again as the same attempt. Returns how many.
  absl::StatusOr<int> ReclaimLostTasks(const std::string& worker,
                                       const std::vector<std::string>& held_tokens);
  // This process's random instance id.
  const std::string& instance() const { return instance_; }
  absl::Status SendTaskSuccess(const std::string& token, const std::string& output);
  // `error` and `cause` may each be absent (as on AWS); an empty string is
  // kept as given.
  absl::Status SendTaskFailure(const std::string& token, const std::optional<std::string>& error,
                               const std::optional<std::string>& cause);
  absl::Status SendTaskHeartbeat(const std::string& token);

  // A dispatch waiter: a long poll's (for one call) or a worker stream's
  // (for the stream's life, a Subscription). Opaque to callers.
  struct Waiter {
    std::condition_variable cv;
    bool idle = false;  // waiting for a wake-up
    // A stream's: takes hand-offs whenever it has free capacity, even while
    // its dispatcher is busy pushing.
    bool persistent = false;
    std::string worker;
    std::vector<std::string> activities;
    // In-process hand-off: a transition that opens a task of one of this
    // waiter's activities reserves a waiter with free capacity, starts the
    // task in the same transaction and, once committed, leaves it in the
    // mailbox. While reserved the waiter does not return (the transaction
    // is short).
    int capacity = 1;  // tasks it can take (a stream's: its free credits)
    int reserved = 0;
    std::vector<ActivityTask> mailbox;
    bool credit_wait = false;  // its dispatcher waits for credits to scan
    bool unsubscribing = false;  // Unsubscribe waits for `reserved` to reach 0
    // A stream's, if set: the thread that committed a hand-off pushes it
    // through this itself instead of leaving it in the mailbox for the
    // stream's dispatcher (one thread woken fewer per dispatched task).
    // False: not pushed (the stream is closing); the task goes to the
    // mailbox after all, where the stream's end gives it back.
    std::function<bool(const ActivityTask&)> deliver;
  };
  // A worker stream's waiter, registered until Unsubscribe. `deliver`, if
  // given, takes its hand-offs (see Waiter::deliver); it runs on the
  // committing thread, which holds the execution's lease (so it must not
  // apply a command to it), and may run concurrently with itself.
  std::unique_ptr<Waiter> Subscribe(const std::vector<std::string>& activities,
                                    const std::string& worker, int credits,
                                    std::function<bool(const ActivityTask&)> deliver = nullptr);
  // Waits until no hand-off is in flight to `w`, then unregisters it; the
  // tasks still in its mailbox are returned (the caller gives them back).
  std::vector<ActivityTask> Unsubscribe(Waiter* w);
  // Sets a subscription's free credits to min(credits + n, limit).
  void AddCredits(Waiter* w, int n, int limit);
  // A subscription's dispatch: tasks handed off to it or found by a scan,
  // as many as its free credits (which they use up); empty when none came
  // within wait_ms or `cancelled()`.
  absl::StatusOr<std::vector<ActivityTask>> TakeTasks(Waiter* w, int wait_ms,
                                                      const std::function<bool()>& cancelled,
                                                      uint64_t* scanned);

  // Runs one sweep of due timers and task deadlines now (tests).
  absl::Status SweepOnce();

  static std::string ExecutionArn(const std::string& state_machine, const std::string& name);
  static std::string StateMachineArn(const std::string& name);

 private:
  struct Cached {
    int64_t version = 0;
    std::unique_ptr<engine::ExecutionState> state;
    std::list<std::string>::iterator lru;
  };

  // The one transition path. `make` builds the command from the rebuilt
  // state (it may refuse: its status is returned and nothing is written).
  // nullopt: no engine command, only the extra row writes (stale-row cleanup).
  using CommandFn = std::function<absl::StatusOr<std::optional<engine::Command>>(
      const engine::ExecutionState&, storage::TransitionTxn&)>;
  // Extra row writes for the same transaction (task start, heartbeat).
  using ExtraFn = std::function<void(const engine::ExecutionState& before, storage::Writes*)>;
  // A command for one execution, built before its state is at hand.
  struct CommandSpec {
    std::string execution_id;
    CommandFn make;
  };
  absl::StatusOr<CommandSpec> SucceedCommand(const std::string& token, const std::string& output,
                                             bool from_worker);
  absl::StatusOr<CommandSpec> FailCommand(const std::string& token,
                                          const std::optional<std::string>& error,
                                          const std::optional<std::string>& cause);
  // ApplyCommand for several commands (no extra writes, waiting for leases),
  // one status each (see ApplyWorkerResults).
  std::vector<absl::Status> ApplyCommands(const std::vector<CommandSpec>& cmds);
  struct HandOff;
  // What one decided transition leaves for after its commit.
  struct Decided {
    std::unique_ptr<engine::ExecutionState> done;
    int64_t new_version = 0;
    std::vector<std::string> woken;
    bool timers = false;
    std::vector<HandOff> handoffs;
    storage::Writes writes;
  };
  // The decision of one transition on `st` (the state at row.version).
  absl::StatusOr<storage::Writes> Decide(const storage::ExecutionRecord& row,
                                         std::unique_ptr<engine::ExecutionState> st,
                                         storage::TransitionTxn& txn, const CommandFn& make,
                                         const ExtraFn& extra, Decided* out);
  // Removes and returns the cached state and its version (nullptr: none).
  std::unique_ptr<engine::ExecutionState> TakeCached(const std::string& id, int64_t* version);
  absl::Status ApplyCommand(const std::string& execution_id, const CommandFn& make,
                            const ExtraFn& extra, bool skip_locked);
  // After a decided transition committed: hand-offs, cache, wake-ups.
  void FinishDecided(const std::string& execution_id, Decided& d);
  // The in-process lease on an execution's transitions (see ApplyCommand):
  // false when another thread holds it (after waiting up to 5 s if `wait`).
  bool AcquireLease(const std::string& id, bool wait);
  void ReleaseLease(const std::string& id);
  // Releases a lease, if `held`, when it goes out of scope.
  struct LeaseGuard {
    Coordinator* self;
    const std::string& id;
    bool held;
    ~LeaseGuard() {
      if (held) self->ReleaseLease(id);
    }
  };

  // The latest revision of a state machine, cached for a second: as on Step
  // Functions, executions started right after an update or delete made
  // through another coordinator may still use the previous revision (this
  // coordinator's own updates and deletes take effect at once).
  absl::StatusOr<storage::StateMachineRecord> LatestRevision(const std::string& name);
  std::optional<storage::StateMachineRecord> CachedLatestRevision(const std::string& name);
  // StartExecution in parts: the decision (without reading the database
  // unless `may_block`: then UNAVAILABLE "saga: would block" when it would
  // have to), and what follows the write.
  struct PendingStart;
  absl::StatusOr<std::unique_ptr<PendingStart>> DecideStart(const std::string& state_machine,
                                                            const std::string& name,
                                                            const std::string& input,
                                                            bool may_block);
  absl::StatusOr<storage::ExecutionRecord> FinishStart(PendingStart& p, const absl::Status& written);
  void ForgetLatest(const std::string& name);
  // The compiled revision, cached; `definition` gives its text on a miss.
  absl::StatusOr<std::shared_ptr<const asl::StateMachine>> Machine(
      const std::string& name, int revision,
      const std::function<absl::StatusOr<std::string>()>& definition);
  absl::StatusOr<std::unique_ptr<engine::ExecutionState>> TakeState(
      const storage::ExecutionRecord& row, storage::TransitionTxn& txn);
  void PutState(const std::string& id, int64_t version,
                std::unique_ptr<engine::ExecutionState> state);
  storage::Writes ToWrites(const std::string& execution_id,
                           const std::map<int64_t, int32_t>& tasks_before,
                           const std::map<int64_t, int32_t>& timers_before,
                           const engine::ExecutionState& after, engine::Decision& d, int64_t now);
  engine::EngineOptions EngineOpts(const std::string& execution_id) const;
  absl::StatusOr<storage::ExecutionRecord> ResolveExecution(const std::string& arn);

  void TimerLoop();
  void ListenLoop();
  void WakeActivity(const std::string& activity, bool all = false);
  void FillTask(const engine::ExecutionState& st, const storage::TaskRecord& row, ActivityTask* t);
  void WakeTimers();
  // Queues a NOTIFY for the other coordinators (coalesced, see above).
  void NotifyOthers(const std::vector<std::string>& activities, bool timers);
  void NotifyLoop();
  // Sets w->notify_timers for wake-ups due within kSweeperMaxSleepUs.
  static void MarkTimerNotify(storage::Writes* w, int64_t now);

  storage::PgStore* store_;
  CoordinatorOptions options_;
  TaskTokenCodec tokens_;

  std::mutex cache_mu_;
  std::unordered_map<std::string, Cached> cache_;
  std::list<std::string> lru_;
  // Executions with a transition in flight here, in shards by id: a lease
  // taken and given back twice per transition stays off cache_mu_, and a
  // release wakes only the waiters of its shard, only when there are some.
  struct LeaseShard {
    std::mutex mu;
    std::condition_variable cv;
    std::unordered_set<std::string> held;
    int waiters = 0;
  };
  static constexpr size_t kLeaseShards = 16;
  std::array<LeaseShard, kLeaseShards> leases_;
  LeaseShard& LeaseShardOf(const std::string& id) {
    return leases_[std::hash<std::string>{}(id) % kLeaseShards];
  }
  std::map<std::pair<std::string, int>, std::shared_ptr<const asl::StateMachine>> machines_;
  static constexpr int64_t kLatestRevisionTtlUs = 1000000;
  std::unordered_map<std::string, std::pair<int64_t, storage::StateMachineRecord>> latest_;

  // Wake-ups for long polls, per activity: a sequence number bumped when
  // tasks may have become runnable, and the condition its pollers wait on.
  // A bump wakes one poller, which passes it on when it saw more runnable
  // tasks than the one it took; a rescan wakes them all. (Waking every
  // poller for every new task made them all chase the same task.)
  struct HandOff {
    Waiter* waiter;
    int64_t task_id;
  };
  // Reserves idle waiters for the tasks `d` opens and starts those tasks in
  // the engine (ActivityStarted joins the decision's events).
  std::vector<HandOff> ReserveHandOffs(const std::string& execution_id, engine::ExecutionState* st,
                                       engine::Decision* d, int64_t now);
  // Marks the handed-off task rows started and drops their wake-ups.
  void ApplyHandOffs(const std::vector<HandOff>& h, int64_t now, storage::Writes* w);
  // After commit: pushes through the waiters' `deliver` or fills their
  // mailboxes. On failure: releases the waiters.
  void DeliverHandOffs(std::vector<HandOff>& h, const engine::ExecutionState& st,
                       const storage::Writes& w);
  // Lets the group commit deliver `h` as soon as `*w` is committed, before
  // it wakes this thread (storage::Writes::after_commit).
  void PushOnCommit(std::vector<HandOff>& h, const engine::ExecutionState& st, storage::Writes* w);
  void CancelHandOffs(std::vector<HandOff>& h);
  struct Pollers {
    uint64_t seq = 0;
    std::vector<Waiter*> waiters;
    size_t next = 0;  // round robin over idle waiters
  };
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;  // the timer and LISTEN threads
  std::unordered_map<std::string, Pollers> pollers_;  // entries never erased
  uint64_t timer_seq_ = 0;
  // Executions a GetActivityTask of this process is claiming a task of right
  // now: other polls skip them without a round trip (their row is locked).
  std::mutex claims_mu_;
  std::unordered_set<std::string> claims_;
  bool stopping_ = false;

  std::thread timer_thread_, listen_thread_, notify_thread_;

  const std::string instance_;  // random; in NOTIFY payloads
  std::atomic<uint64_t> n_unlocked_{0}, n_locked_{0}, n_conflicts_{0}, n_handed_off_{0},
      n_claimed_{0}, n_replays_{0}, n_batched_{0}, n_lease_waits_{0}, n_async_{0};
  std::mutex notify_mu_;
  std::condition_variable notify_cv_;
  std::set<std::string> notify_activities_;
  bool notify_timers_ = false;
};

}  // namespace saga::runtime

#endif  // SAGA_COORDINATOR_RUNTIME_COORDINATOR_H_
