// The deterministic ASL engine: commands in, events out.
//
// Process() takes one command for one execution and decides what happens:
// the history events (applied to the state through Apply() as they are
// emitted, so the state is never changed any other way), the activities to
// dispatch, the timers to arm and the tasks/timers that are no longer wanted.
// Time and randomness come in as arguments; the engine reads no clock, does
// no I/O and starts no thread. The same engine runs durable executions,
// in-memory executions and `sagactl test-run`.
//
// Stale commands (a task or timer that is no longer current, a finished
// execution) are refused with FailedPrecondition or NotFound and change
// nothing.
//
// Thread safety: pure functions over a caller-owned ExecutionState.
#ifndef SAGA_COORDINATOR_ENGINE_ENGINE_H_
#define SAGA_COORDINATOR_ENGINE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/common/json.h"
#include "coordinator/engine/events.h"
#include "coordinator/engine/execution_state.h"

namespace saga::engine {

// Step Functions' limit on history events per execution.
inline constexpr int64_t kMaxHistoryEvents = 25000;

struct StartCommand {
  json::Value input;
  ExecutionInfo info;
};
struct TaskStartedCommand {
  int64_t task_id = 0;
  std::string worker;
};
struct TaskHeartbeatCommand {
  int64_t task_id = 0;
};
struct TaskSucceededCommand {
  int64_t task_id = 0;
  json::Value output;
  // The result was larger than the payload limit (asl::kMaxPayloadBytes) and
  // not kept (`output` is null): the task fails with
  // States.DataLimitExceeded, as one whose `output` is too large does.
  bool too_large = false;
};
struct TaskFailedCommand {
  int64_t task_id = 0;
  std::optional<std::string> error;
  std::optional<std::string> cause;
};
struct TaskTimedOutCommand {
  int64_t task_id = 0;
  bool heartbeat = false;  // HeartbeatSeconds passed without a heartbeat
};
struct TimerFiredCommand {
  int64_t timer_id = 0;
};
struct StopCommand {
  std::optional<std::string> error;
  std::optional<std::string> cause;
  // Saga extension: first compensate every completed step not compensated
  // yet, latest first (ExecutionStopRequested, then the Compensation*
  // events), then end ABORTED; a compensation that still fails after its
  // Retry ends the execution FAILED with Saga.CompensationFailed (redrive
  // resumes the rollback). Nothing to compensate: an ordinary stop.
  bool compensate = false;
};
// RedriveExecution, as Step Functions: a FAILED, TIMED_OUT or ABORTED
// execution (stopped at most 14 days ago) runs again from where it stopped,
// keeping what completed. Every frame resumes where it was: a state that
// failed or was running is entered again with the input it had; a rollback
// (Compensate state, or a stop's) resumes with the compensation that failed,
// never re-running one that succeeded; a Parallel or Map whose children
// failed reruns only the branches or iterations that did not succeed.
struct RedriveCommand {};
inline constexpr int64_t kRedriveWindowUs = int64_t{14} * 24 * 3600 * 1000000;

using Command =
    std::variant<StartCommand, TaskStartedCommand, TaskHeartbeatCommand, TaskSucceededCommand,
                 TaskFailedCommand, TaskTimedOutCommand, TimerFiredCommand, StopCommand,
                 RedriveCommand>;

// An activity (or compensation) the caller must dispatch to a worker.
struct TaskRequest {
  int64_t task_id = 0;
  int32_t frame = 0;
  std::string state_name;
  std::string resource;
  json::Value input;
  int64_t attempt = 0;  // retries so far of this state (0 for the first try)
  std::optional<int64_t> timeout_seconds;
  std::optional<int64_t> heartbeat_seconds;
  bool compensation = false;
  std::string compensated_state;  // for compensations: the Task being undone
  int64_t compensated_task_id = 0;  // ... and the task id of its successful attempt
};

struct TimerRequest {
  int64_t timer_id = 0;
  int64_t fire_at_us = 0;
};

struct Decision {
  std::vector<Event> events;
  std::vector<TaskRequest> tasks;
  std::vector<TimerRequest> timers;
  std::vector<int64_t> cancelled_tasks;
  std::vector<int64_t> cancelled_timers;
};

struct EngineOptions {
  // Makes the task token for task `task_id` ($$.Task.Token). Default:
  // "<execution id>#<task id>". The durable runtime passes a signed token.
  std::function<std::string(const ExecutionState&, int64_t task_id)> task_token;
};

// Processes `command` at time `now_us` with randomness from `seed`.
// On success the state has been advanced by exactly the returned events.
// On error the state is unchanged for stale/invalid commands
// (FailedPrecondition, NotFound, InvalidArgument); any other error means the
// state must be discarded and reloaded.
// REQUIRES: state->machine is set.
absl::StatusOr<Decision> Process(ExecutionState* state, const Command& command, int64_t now_us,
                                 uint64_t seed, const EngineOptions& options = {});

}  // namespace saga::engine

#endif  // SAGA_COORDINATOR_ENGINE_ENGINE_H_
