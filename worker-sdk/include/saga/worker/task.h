// What a handler sees (TaskContext) and returns (Result).
#ifndef SAGA_WORKER_TASK_H_
#define SAGA_WORKER_TASK_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace saga::worker {

// A task as the coordinator pushed it.
struct TaskInfo {
  std::string task_token;      // completes a .waitForTaskToken state via SendTaskSuccess
  std::string activity;        // the Task state's Resource (without .waitForTaskToken)
  std::string input;           // JSON: the state's effective input
  std::string execution_arn;
  std::string state_name;
  int64_t attempt = 0;         // 0 for the first try, n for the n-th retry
  // The same for every delivery of this attempt: key your side effects on it.
  std::string idempotency_key;
  // TimeoutSeconds as an absolute time (none without TimeoutSeconds).
  std::optional<std::chrono::system_clock::time_point> deadline;
  std::optional<std::chrono::seconds> heartbeat_interval;  // HeartbeatSeconds
  // When this attempt was scheduled (became runnable); redeliveries keep it.
  std::chrono::system_clock::time_point scheduled;
  // When the coordinator sent this delivery, and when this worker received
  // it (before handing it to a handler thread): scheduled -> sent is the
  // coordinator's part of the dispatch latency, sent -> received the
  // network's, received -> the handler's start this worker's.
  std::chrono::system_clock::time_point sent;
  std::chrono::system_clock::time_point received;
  std::string traceparent;     // W3C trace context of this step
  // The state waits for SendTaskSuccess/SendTaskFailure with task_token; this
  // handler's success only acknowledges the dispatch (its failure fails it).
  bool callback = false;
  // A compensating transaction (saga rollback) undoing `compensated_state`,
  // whose step had the idempotency key `compensated_idempotency_key`.
  bool compensation = false;
  std::string compensated_state;
  std::string compensated_idempotency_key;
};

// A task failure the coordinator matches against the state's Retry and
// Catch (ErrorEquals). Handlers never retry themselves. An empty error or
// cause is sent as none (a Catch's error output then has null there), unless
// send_empty_error / send_empty_cause asks to send it as "" (AWS tells the
// two apart: the Catch's error output then has "" there):
//   TaskError{"Payment.Declined", "", /*send_empty_error=*/false, /*send_empty_cause=*/true}
struct TaskError {
  std::string error;
  std::string cause;
  bool send_empty_error = false;
  bool send_empty_cause = false;
};

// A handler's outcome: the task's JSON result, or a TaskError.
class Result {
 public:
  Result(std::string output_json) : ok_(true), output_(std::move(output_json)) {}  // NOLINT
  Result(const char* output_json) : Result(std::string(output_json)) {}           // NOLINT
  Result(TaskError e) : ok_(false), error_(std::move(e)) {}                        // NOLINT

  bool ok() const { return ok_; }
  const std::string& output() const { return output_; }
  const TaskError& error() const { return error_; }

 private:
  bool ok_;
  std::string output_;
  TaskError error_;
};

// The handler's view of the running task. Heartbeats are sent automatically
// while a handler runs (every third of HeartbeatSeconds); Heartbeat() sends
// one at once, e.g. after a long step.
class TaskContext {
 public:
  virtual ~TaskContext() = default;
  virtual const TaskInfo& info() const = 0;
  // Sends a heartbeat now; false when the task was cancelled (execution
  // stopped or finished, attempt timed out) or the coordinator is unreachable.
  virtual bool Heartbeat() = 0;
  // True once the coordinator said the task is no longer wanted or the
  // worker is shutting down past its grace: stop and return anything.
  virtual bool Cancelled() const = 0;

  const std::string& input() const { return info().input; }
  const std::string& idempotency_key() const { return info().idempotency_key; }
  int64_t attempt() const { return info().attempt; }
  const std::optional<std::chrono::system_clock::time_point>& deadline() const {
    return info().deadline;
  }
};

}  // namespace saga::worker

#endif  // SAGA_WORKER_TASK_H_
