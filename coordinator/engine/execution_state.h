// The in-memory state of one execution, changed only by Apply(event).
//
// An execution is a tree of frames: frame 0 runs the top-level states; a
// Parallel state owns one child frame per branch and a Map state one per
// running iteration. Each frame sits in one state at a time.
//
// Replaying an execution's events through Apply() onto a fresh
// ExecutionState rebuilds exactly the state the engine had (replay_test.cc).
//
// Thread safety: none; one owner at a time.
#ifndef SAGA_COORDINATOR_ENGINE_EXECUTION_STATE_H_
#define SAGA_COORDINATOR_ENGINE_EXECUTION_STATE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/asl/definition.h"
#include "coordinator/common/json.h"
#include "coordinator/engine/events.h"

namespace saga::engine {

enum class ExecutionStatus : uint8_t {
  kPending,  // no ExecutionStarted yet
  kRunning,
  kSucceeded,
  kFailed,
  kTimedOut,
  kAborted,
};
std::string_view ExecutionStatusName(ExecutionStatus s);  // "RUNNING", ...

enum class Phase : uint8_t {
  kIdle,       // between states
  kTask,       // an activity (or compensation) is scheduled
  kRetryWait,  // waiting for a retry timer
  kWait,       // a Wait state's timer
  kChildren,   // a Parallel/Map state's branches or iterations run
  kDone,       // the frame finished (its result is with its parent)
};

// A completed step that can be undone (saga extension).
struct CompensationRecord {
  std::string state_name;          // the Task whose step this undoes
  int32_t frame = 0;               // frame the Task ran in
  std::vector<int32_t> ancestors;  // frames enclosing it when it completed
  json::Value input;               // the compensation's input, computed on completion
  int64_t seq = 0;                 // completion order
  int64_t task_id = 0;             // the Task's successful attempt
  bool done = false;
};

struct Frame {
  int32_t id = 0;
  int32_t parent = -1;  // -1 for frame 0
  int64_t index = 0;    // branch or iteration index in the parent
  const asl::StateMachine* machine = nullptr;
  int state = -1;  // index into machine->states, -1 when not in a state
  Phase phase = Phase::kIdle;
  json::Value input;      // raw input of the current state
  json::Value effective;  // effective input (after InputPath/Parameters)
  int64_t entered_us = 0;
  int64_t entered_event = 0;
  int64_t retry_count = 0;  // $$.State.RetryCount
  std::vector<int64_t> retrier_attempts;
  int64_t task_id = 0;   // current activity, when phase == kTask
  int64_t timer_id = 0;  // current timer, when phase is kWait or kRetryWait
  // Parallel / Map bookkeeping (phase == kChildren).
  json::Value items;  // Map items
  std::vector<json::Value> results;
  // Which branches/iterations succeeded (kept after the state fails, so
  // RedriveExecution reruns only the others).
  std::vector<bool> child_done;
  int64_t next_child = 0;  // next Map iteration to start
  int64_t running_children = 0;
  int64_t finished_children = 0;
  int64_t failed_children = 0;
  int64_t max_concurrency = 0;   // 0: unlimited
  int64_t tolerated_count = -1;  // -1: none
  double tolerated_percentage = -1;
  // Compensate state in progress (saga extension).
  std::vector<int64_t> compensation_plan;  // record seqs still to run, next first
  json::Value compensation_report;
  int64_t compensation_seq = 0;                // the compensation being run
  std::vector<int64_t> compensation_attempts;  // its retriers' counters
  // The top-level frame rolling back for StopExecution with compensation:
  // its compensations run as a Compensate state's would, then the execution
  // ends ABORTED.
  bool stop_rollback = false;

  const asl::State& current() const { return machine->states[static_cast<size_t>(state)]; }
};

struct ExecutionInfo {
  std::string execution_id;  // e.g. an ARN-like id
  std::string name;
  std::string state_machine_id;
  std::string state_machine_name;
  std::string role_arn;
};

struct ExecutionState {
  std::shared_ptr<const asl::StateMachine> machine;
  ExecutionInfo info;
  ExecutionStatus status = ExecutionStatus::kPending;
  json::Value input, output;
  std::string error, cause;
  bool has_error = false, has_cause = false;
  int64_t start_us = 0;
  int64_t stop_us = 0;
  int64_t last_event_id = 0;
  int64_t next_task_id = 1;
  int64_t next_timer_id = 1;
  int32_t next_frame_id = 1;
  int64_t execution_timer_id = 0;
  int64_t redrive_count = 0;
  json::Value stop_request;  // ExecutionStopRequested details (error, cause)
  // Frames are kept when the execution ends (RedriveExecution resumes there).
  std::map<int32_t, Frame> frames;
  std::map<int64_t, int32_t> open_tasks;          // task id -> frame
  std::map<int64_t, int32_t> open_timers;         // timer id -> frame (-1: execution timeout)
  std::vector<CompensationRecord> compensations;  // saga extension, completion order
  int64_t next_compensation_seq = 1;

  bool finished() const {
    return status != ExecutionStatus::kPending && status != ExecutionStatus::kRunning;
  }
  // A canonical dump of every field, for replay comparison and debugging.
  json::Value Debug() const;
};

// Applies one event. Errors mean the event does not fit the state (corrupt
// history); the state must then be discarded.
absl::Status Apply(ExecutionState* state, const Event& event);

}  // namespace saga::engine

#endif  // SAGA_COORDINATOR_ENGINE_EXECUTION_STATE_H_
