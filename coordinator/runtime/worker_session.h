// One worker stream's dispatch: credits (flow control), the tasks pushed to
// the worker and not finished yet, and what happens to them when the stream
// ends. Transport-free: the gRPC layer (api/) feeds it the worker's messages
// and gives it a function that writes a pushed task to the stream.
//
// Dispatch: Run() loops while the stream is open; with a credit available
// it waits (ClaimTask: woken on commit, no polling) for a runnable task of
// any of the worker's activities, claims it (TaskStarted committed) and
// pushes it. A push that fails (stream gone) gives the task back at once.
//
// When the stream ends, tasks pushed to it and not finished stay started:
// those with a HeartbeatSeconds or TimeoutSeconds time out as on Step
// Functions (their Retry decides); those with neither would wait forever, so
// they are given back and delivered again as the same attempt.
//
// Thread safety: Run() on one thread; the other methods from any thread.
#ifndef SAGA_COORDINATOR_RUNTIME_WORKER_SESSION_H_
#define SAGA_COORDINATOR_RUNTIME_WORKER_SESSION_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/runtime/coordinator.h"

namespace saga::runtime {

struct WorkerRegistration {
  std::string identity;
  std::vector<std::string> activities;
  int max_concurrency = 1;
  int initial_credits = -1;  // -1: max_concurrency
  int64_t ack_delay_ms = 0;  // results' acks held back up to this long (0: none)
};

// INVALID_ARGUMENT naming the field when a registration is unusable.
absl::Status ValidateRegistration(const WorkerRegistration& r);

class WorkerSession {
 public:
  // `push` writes a task to the worker; false when the stream is broken.
  WorkerSession(Coordinator* c, WorkerRegistration reg,
                std::function<bool(const ActivityTask&)> push);

  // The dispatch loop; returns after Close().
  void Run();
  // Grants `n` more credits (1..1000).
  absl::Status Grant(int n);
  // The credit a result carries (CompleteTask.credit, FailTask.credit; 1 to
  // 1000), granted as the result arrives: its handler is free, so the
  // transitions committing meanwhile (the result's own among them) can hand
  // the next task off to this stream instead of leaving it to a scan. The
  // task stops counting as held for the cap from then on. Once per task: the
  // same result sent again (answered UNAVAILABLE, or refused and sent as a
  // failure) grants nothing more. False when the task is not held on this
  // stream; its credit is then granted once the result is settled.
  bool GrantForResult(const std::string& token, int n);

  // The worker's messages about a task pushed to it. Results, several at
  // once (one group commit; see Coordinator::ApplyWorkerResults):
  std::vector<absl::Status> Apply(const std::vector<Coordinator::WorkerResult>& results);
  // One result without waiting for its commit (Coordinator::
  // ApplyWorkerResultAsync): false when it must go to Apply.
  bool ApplyAsync(const Coordinator::WorkerResult& result, std::function<void(absl::Status)> done,
                  const std::function<void(std::function<void()>)>& run_blocking);
  // Heartbeat: OK, or the status that says the task is no longer open (then
  // `cancelled`).
  absl::Status Heartbeat(const std::string& token, bool* cancelled);
  absl::Status Release(const std::string& token);

  // The stream ended: stops Run() and settles the unfinished tasks.
  void Close();

  size_t in_flight() const;

 private:
  struct InFlight {
    bool has_deadline = false;  // HeartbeatSeconds or TimeoutSeconds
  };
  // Pushes a task claimed or handed off to this stream (or gives it back).
  void Deliver(const ActivityTask& t);
  // Pushes a hand-off from the thread that committed it; false if the
  // stream is closed or broken (the task is not given back here).
  bool PushHandOff(const ActivityTask& t);
  void Forget(const std::string& token);
  int HeldLocked() const;  // tasks counted against the cap (mu_ held)

  Coordinator* c_;
  WorkerRegistration reg_;
  std::function<bool(const ActivityTask&)> push_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Coordinator::Waiter> waiter_;  // holds the free credits
  bool closed_ = false;
  std::map<std::string, InFlight> in_flight_;
  std::set<std::string> settling_;  // in in_flight_, result arrived, credit granted
};

}  // namespace saga::runtime

#endif  // SAGA_COORDINATOR_RUNTIME_WORKER_SESSION_H_
