#include "coordinator/runtime/worker_session.h"

#include <set>

#include "coordinator/common/strings.h"

namespace saga::runtime {

absl::Status ValidateRegistration(const WorkerRegistration& r) {
  if (r.identity.empty()) return absl::InvalidArgumentError("register.identity: must not be empty");
  if (r.identity.size() > 80) {
    return absl::InvalidArgumentError("register.identity: longer than 80 characters");
  }
  if (r.activities.empty() || r.activities.size() > 64) {
    return absl::InvalidArgumentError("register.activities: give 1 to 64 activities");
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < r.activities.size(); ++i) {
    const std::string& a = r.activities[i];
    if (a.empty() || a.size() > 256) {
      return absl::InvalidArgumentError(
          saga::StrCat("register.activities[", i, "]: must be 1 to 256 characters"));
    }
    if (ActivityOf(a) != a) {
      return absl::InvalidArgumentError(saga::StrCat(
          "register.activities[", i, "]: register the activity without ", kWaitForTaskToken));
    }
    if (!seen.insert(a).second) {
      return absl::InvalidArgumentError(
          saga::StrCat("register.activities[", i, "]: '", a, "' is listed twice"));
    }
  }
  if (r.max_concurrency < 1 || r.max_concurrency > 1000) {
    return absl::InvalidArgumentError("register.max_concurrency: must be 1 to 1000");
  }
  if (r.initial_credits != -1 && (r.initial_credits < 0 || r.initial_credits > r.max_concurrency)) {
    return absl::InvalidArgumentError("register.initial_credits: must be 0 to max_concurrency");
  }
  if (r.ack_delay_ms < 0 || r.ack_delay_ms > 60000) {
    return absl::InvalidArgumentError("register.ack_delay_ms: must be 0 to 60000");
  }
  return absl::OkStatus();
}

WorkerSession::WorkerSession(Coordinator* c, WorkerRegistration reg,
                             std::function<bool(const ActivityTask&)> push)
    : c_(c), reg_(std::move(reg)), push_(std::move(push)) {
  // Hand-offs are pushed by the thread that committed them (PushHandOff);
  // what a scan finds, and hand-offs it could not push, by Run.
  waiter_ = c_->Subscribe(reg_.activities, reg_.identity,
                          reg_.initial_credits < 0 ? reg_.max_concurrency : reg_.initial_credits,
                          [this](const ActivityTask& t) { return PushHandOff(t); });
}

void WorkerSession::Run() {
  int backoff_ms = 10;
  uint64_t scanned = UINT64_MAX;  // no scan yet
  auto cancelled = [this] {
    std::lock_guard<std::mutex> g(mu_);
    return closed_;
  };
  while (!cancelled()) {
    // Tasks handed to this stream by the transitions that opened them, or
    // found by a scan, up to its free credits. An idle stream rescans every
    // 30 s: the safety net for a task whose coordinator died between its
    // commit and its (coalesced) NOTIFY.
    auto tasks = c_->TakeTasks(waiter_.get(), 30000, cancelled, &scanned);
    if (!tasks.ok()) {
      // Database unavailable: try again with a growing pause (the stream
      // stays open; the worker keeps its tasks).
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms), [&] { return closed_; });
      backoff_ms = std::min(backoff_ms * 2, 1000);
      continue;
    }
    backoff_ms = 10;
    if (tasks->empty()) {  // the wait ended without work
      scanned = UINT64_MAX;  // the 30 s safety net: scan next time
      if (c_->stopping()) {  // shutting down: no more dispatch on this stream
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return closed_; });
        return;
      }
      continue;
    }
    for (const auto& t : *tasks) Deliver(t);
  }
}

void WorkerSession::Deliver(const ActivityTask& t) {
  // Closed (the stream ended while this was claimed or handed off), or the
  // stream broke between the claim and the push: nobody has it.
  if (!PushHandOff(t)) (void)c_->ReleaseTask(t.task_token, reg_.identity);
}

bool WorkerSession::PushHandOff(const ActivityTask& t) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return false;
    in_flight_[t.task_token] =
        InFlight{t.timeout_seconds.has_value() || t.heartbeat_seconds.has_value()};
  }
  if (push_(t)) return true;
  // Not given back here: the committing thread holds the execution's
  // lease. The mailbox takes it; Run (or Close) gives it back.
  Forget(t.task_token);
  return false;
}

absl::Status WorkerSession::Grant(int n) {
  if (n < 1 || n > 1000) return absl::InvalidArgumentError("credit.tasks: must be 1 to 1000");
  int limit;
  {
    std::lock_guard<std::mutex> g(mu_);
    // Never more credits than the registered capacity minus tasks held.
    limit = reg_.max_concurrency - HeldLocked();
  }
  c_->AddCredits(waiter_.get(), n, limit);
  return absl::OkStatus();
}

bool WorkerSession::GrantForResult(const std::string& token, int n) {
  if (n < 1 || n > 1000) return false;
  int limit;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!in_flight_.count(token)) return false;
    if (!settling_.insert(token).second) return true;  // granted when it first came
    limit = reg_.max_concurrency - HeldLocked();
  }
  c_->AddCredits(waiter_.get(), n, limit);
  return true;
}

int WorkerSession::HeldLocked() const {
  return static_cast<int>(in_flight_.size() - settling_.size());
}

void WorkerSession::Forget(const std::string& token) {
  std::lock_guard<std::mutex> g(mu_);
  in_flight_.erase(token);
  settling_.erase(token);
}

std::vector<absl::Status> WorkerSession::Apply(
    const std::vector<Coordinator::WorkerResult>& results) {
  std::vector<absl::Status> s = c_->ApplyWorkerResults(results);
  for (size_t i = 0; i < results.size(); ++i) {
    if (s[i].ok() || s[i].code() == absl::StatusCode::kFailedPrecondition) Forget(results[i].token);
  }
  return s;
}

bool WorkerSession::ApplyAsync(const Coordinator::WorkerResult& result,
                               std::function<void(absl::Status)> done,
                               const std::function<void(std::function<void()>)>& run_blocking) {
  return c_->ApplyWorkerResultAsync(
      result,
      [this, token = result.token, done = std::move(done)](absl::Status s) {
        if (s.ok() || s.code() == absl::StatusCode::kFailedPrecondition) Forget(token);
        done(std::move(s));
      },
      run_blocking);
}

absl::Status WorkerSession::Heartbeat(const std::string& token, bool* cancelled) {
  absl::Status s = c_->SendTaskHeartbeat(token);
  *cancelled = s.code() == absl::StatusCode::kFailedPrecondition ||
               s.code() == absl::StatusCode::kNotFound;
  return s;
}

absl::Status WorkerSession::Release(const std::string& token) {
  absl::Status s = c_->ReleaseTask(token, reg_.identity);
  if (s.ok() || s.code() == absl::StatusCode::kFailedPrecondition) Forget(token);
  return s;
}

void WorkerSession::Close() {
  std::map<std::string, InFlight> left;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return;
    closed_ = true;
  }
  cv_.notify_all();
  c_->AddCredits(waiter_.get(), 0, 0);  // wakes a waiting TakeTasks
  // Tasks handed off to this stream and not taken by Run: nobody has them.
  for (const auto& t : c_->Unsubscribe(waiter_.get())) {
    (void)c_->ReleaseTask(t.task_token, reg_.identity);
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    left.swap(in_flight_);
    settling_.clear();
  }
  for (const auto& [token, f] : left) {
    if (!f.has_deadline) (void)c_->ReleaseTask(token, reg_.identity);
  }
}

size_t WorkerSession::in_flight() const {
  std::lock_guard<std::mutex> g(mu_);
  return in_flight_.size();
}

}  // namespace saga::runtime
