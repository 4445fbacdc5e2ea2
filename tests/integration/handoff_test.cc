// In-process hand-off of a task to a worker stream (runtime::Coordinator on
// a real PostgreSQL, no gRPC): a transition that opens a task for a
// subscribed stream with a free credit starts it in the same commit, and the
// group commit's thread pushes it through the stream's `deliver` as soon as
// it is committed; what the stream cannot take waits in its mailbox for the
// stream's dispatcher (or for Unsubscribe, which gives it back).
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/runtime/coordinator.h"
#include "coordinator/storage/pg/pg_store.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using runtime::ActivityTask;
using runtime::Coordinator;

constexpr char kMachine[] = R"({"StartAt":"Hold","States":{
  "Hold":{"Type":"Task","Resource":"handoff-hold","End":true}}})";

class HandOff : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    auto s = storage::PgStore::Open(dsn(), 4);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
    ASSERT_TRUE(store_->Migrate().ok());
    runtime::CoordinatorOptions o;
    o.token_secret = "handoff-test-secret";
    o.run_background = false;
    c_ = std::make_unique<Coordinator>(store_.get(), o);
    auto sm = c_->CreateStateMachine("handoff", kMachine, 1);
    ASSERT_TRUE(sm.ok()) << sm.status();
  }
  void TearDown() override {
    c_.reset();
    store_.reset();
  }

  // What a stream's `deliver` saw: the tasks and the threads it ran on.
  struct Seen {
    std::mutex mu;
    std::vector<ActivityTask> tasks;
    std::vector<std::string> threads;  // names
  };
  std::function<bool(const ActivityTask&)> Recorder(Seen* seen, bool take) {
    return [seen, take](const ActivityTask& t) {
      std::lock_guard<std::mutex> g(seen->mu);
      seen->tasks.push_back(t);
      char name[32] = {0};
      pthread_getname_np(pthread_self(), name, sizeof name);
      seen->threads.push_back(name);
      return take;
    };
  }
  // Waits at most `wait_ms` for tasks the stream's dispatcher would push.
  std::vector<ActivityTask> Take(Coordinator::Waiter* w, int wait_ms) {
    auto t = c_->TakeTasks(w, wait_ms, nullptr, nullptr);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : std::vector<ActivityTask>{};
  }
  std::string Start(const std::string& name) {
    auto e = c_->StartExecution("handoff", name, R"({"n":1})");
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? e->execution_id : "";
  }

  // What an asynchronous call (ApplyWorkerResultAsync, StartExecutionAsync)
  // reported: the result `done` got and the thread it ran on, and the work
  // it gave to `run_blocking` (run by the test).
  template <typename T>
  struct Reported {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<T> result;
    std::string thread;
    std::vector<std::function<void()>> blocking;
    std::function<void(T)> Done() {
      return [this](T r) {
        char name[32] = {0};
        pthread_getname_np(pthread_self(), name, sizeof name);
        std::lock_guard<std::mutex> g(mu);
        result = std::move(r);
        thread = name;
        cv.notify_all();
      };
    }
    std::function<void(std::function<void()>)> RunBlocking() {
      return [this](std::function<void()> fn) {
        std::lock_guard<std::mutex> g(mu);
        blocking.push_back(std::move(fn));
        cv.notify_all();
      };
    }
    // Waits (10 s at most) until `done` ran or work went to `run_blocking`.
    bool Wait() {
      std::unique_lock<std::mutex> lock(mu);
      return cv.wait_for(lock, std::chrono::seconds(10),
                         [&] { return result.has_value() || !blocking.empty(); });
    }
    // The one piece of work given to `run_blocking`, with `done` not run
    // yet (an empty function, and a test failure, otherwise).
    std::function<void()> OnlyBlockingWork() {
      EXPECT_TRUE(Wait());
      std::lock_guard<std::mutex> g(mu);
      EXPECT_FALSE(result.has_value());
      EXPECT_EQ(blocking.size(), 1u);
      return blocking.size() == 1 ? blocking[0] : nullptr;
    }
  };
  using Async = Reported<absl::Status>;
  using Started = Reported<absl::StatusOr<storage::ExecutionRecord>>;
  bool ApplyAsync(const Coordinator::WorkerResult& r, Async* out) {
    return c_->ApplyWorkerResultAsync(r, out->Done(), out->RunBlocking());
  }
  std::string TokenOf(Seen* seen, size_t i) {
    std::lock_guard<std::mutex> g(seen->mu);
    return seen->tasks.size() > i ? seen->tasks[i].task_token : "";
  }
  int StatusOf(const std::string& machine, const std::string& name) {
    auto row = c_->DescribeExecution(Coordinator::ExecutionArn(machine, name));
    EXPECT_TRUE(row.ok()) << row.status();
    return row.ok() ? row->status : -1;
  }

  std::unique_ptr<storage::PgStore> store_;
  std::unique_ptr<Coordinator> c_;
};

TEST_F(HandOff, TheGroupCommitPushesTheTaskOnceCommittedAndItUsesTheStreamsCredit) {
  Seen seen;
  auto w = c_->Subscribe({"handoff-hold"}, "stream-1", 1, Recorder(&seen, true));
  const std::string id = Start("first");
  {
    // Pushed before StartExecution returned, by the group commit's thread
    // (not by this one after it was woken).
    std::lock_guard<std::mutex> g(seen.mu);
    ASSERT_EQ(seen.tasks.size(), 1u);
    EXPECT_EQ(seen.threads[0], "saga-committed");
    EXPECT_EQ(seen.tasks[0].activity, "handoff-hold");
    EXPECT_EQ(seen.tasks[0].input, R"({"n":1})");
    EXPECT_EQ(seen.tasks[0].idempotency_key, id + "/1");
    EXPECT_FALSE(seen.tasks[0].task_token.empty());
  }
  // Not also left for the dispatcher; and the one credit is used: the next
  // execution's task is not handed off (it waits in the database).
  EXPECT_TRUE(Take(w.get(), 50).empty());
  Start("second");
  {
    std::lock_guard<std::mutex> g(seen.mu);
    EXPECT_EQ(seen.tasks.size(), 1u);
  }
  // Started in the same commit: TaskStarted names the stream's worker.
  std::string next;
  auto history =
      c_->GetExecutionHistory(Coordinator::ExecutionArn("handoff", "first"), "", 100, false, &next);
  ASSERT_TRUE(history.ok()) << history.status();
  bool started = false;
  for (const auto& e : *history) {
    if (e.type == engine::EventType::kActivityStarted) started = true;
  }
  EXPECT_TRUE(started);
  auto row = c_->DescribeExecution(Coordinator::ExecutionArn("handoff", "first"));
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->execution_id, id);
  // The task completes with the pushed token.
  std::string token;
  {
    std::lock_guard<std::mutex> g(seen.mu);
    token = seen.tasks[0].task_token;
  }
  ASSERT_TRUE(c_->SendTaskSuccess(token, R"({"done":true})").ok());
  row = c_->DescribeExecution(Coordinator::ExecutionArn("handoff", "first"));
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->status, 2);  // SUCCEEDED
  EXPECT_TRUE(c_->Unsubscribe(w.get()).empty());
}

TEST_F(HandOff, AHandOffTheStreamCannotTakeWaitsInItsMailbox) {
  Seen seen;
  auto w = c_->Subscribe({"handoff-hold"}, "stream-closing", 2, Recorder(&seen, false));
  Start("refused");
  std::string token;
  {
    std::lock_guard<std::mutex> g(seen.mu);
    ASSERT_EQ(seen.tasks.size(), 1u);
    token = seen.tasks[0].task_token;
  }
  // The dispatcher finds it at once, the same task, its credit still free
  // until then (the mailbox counts against the credits).
  auto taken = Take(w.get(), 5000);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].task_token, token);

  // Another refused hand-off, this time left to Unsubscribe.
  Start("refused-again");
  auto left = c_->Unsubscribe(w.get());
  ASSERT_EQ(left.size(), 1u);
  std::lock_guard<std::mutex> g(seen.mu);
  ASSERT_EQ(seen.tasks.size(), 2u);
  EXPECT_EQ(left[0].task_token, seen.tasks[1].task_token);
}

// A worker stream's read reaction applies a result without blocking: the
// decision is made at once and the group commit's thread, once the write is
// committed, finishes the transition and reports the result's status.
TEST_F(HandOff, AResultAppliedAsynchronouslyIsFinishedByTheGroupCommit) {
  Seen seen;
  auto w = c_->Subscribe({"handoff-hold"}, "stream-async", 1, Recorder(&seen, true));
  Start("async");
  const std::string token = TokenOf(&seen, 0);
  ASSERT_FALSE(token.empty());
  const uint64_t before = c_->stats().results_async;
  Async a;
  ASSERT_TRUE(ApplyAsync({token, false, R"({"done":true})", {}, {}}, &a));
  ASSERT_TRUE(a.Wait());
  {
    std::lock_guard<std::mutex> g(a.mu);
    ASSERT_TRUE(a.result.has_value());
    EXPECT_TRUE(a.result->ok()) << *a.result;
    EXPECT_EQ(a.thread, "saga-committed");
    EXPECT_TRUE(a.blocking.empty());
  }
  EXPECT_EQ(c_->stats().results_async, before + 1);
  EXPECT_EQ(StatusOf("handoff", "async"), 2);  // SUCCEEDED
  auto row = c_->DescribeExecution(Coordinator::ExecutionArn("handoff", "async"));
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->output, R"({"done":true})");
  // The same result again: its execution is no longer cached (finished), so
  // nothing is taken and the blocking path refuses it, changing nothing.
  Async again;
  EXPECT_FALSE(ApplyAsync({token, false, R"({"done":false})", {}, {}}, &again));
  auto applied = c_->ApplyWorkerResults({{token, false, R"({"done":false})", {}, {}}});
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].code(), absl::StatusCode::kFailedPrecondition) << applied[0];
  row = c_->DescribeExecution(Coordinator::ExecutionArn("handoff", "async"));
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->output, R"({"done":true})");
  // A token that is not one: not taken either.
  EXPECT_FALSE(ApplyAsync({"not-a-token", false, "{}", {}, {}}, &again));
  EXPECT_TRUE(c_->Unsubscribe(w.get()).empty());
}

// A result whose transition arms a timer (a Retry's wait) needs a
// transaction of its own: that goes to `run_blocking`, and `done` runs
// where it is run.
TEST_F(HandOff, AnAsynchronousResultThatArmsATimerIsWrittenByTheBlockingRunner) {
  ASSERT_TRUE(c_->CreateStateMachine("handoff-retry", R"({"StartAt":"Work","States":{
    "Work":{"Type":"Task","Resource":"handoff-hold","End":true,
      "Retry":[{"ErrorEquals":["Busy"],"IntervalSeconds":30,"MaxAttempts":1}]}}})", 1).ok());
  Seen seen;
  auto w = c_->Subscribe({"handoff-hold"}, "stream-retry", 1, Recorder(&seen, true));
  auto e = c_->StartExecution("handoff-retry", "retried", "{}");
  ASSERT_TRUE(e.ok()) << e.status();
  const std::string token = TokenOf(&seen, 0);
  ASSERT_FALSE(token.empty());
  Async a;
  ASSERT_TRUE(ApplyAsync({token, true, "", std::string("Busy"), std::string("try later")}, &a));
  std::function<void()> fn = a.OnlyBlockingWork();
  ASSERT_TRUE(fn);
  std::thread runner([&] {
    pthread_setname_np(pthread_self(), "test-blocking");
    fn();
  });
  runner.join();
  {
    std::lock_guard<std::mutex> g(a.mu);
    ASSERT_TRUE(a.result.has_value());
    EXPECT_TRUE(a.result->ok()) << *a.result;
    EXPECT_EQ(a.thread, "test-blocking");
  }
  // Failed once and waiting for its retry: still running, the failure in
  // its history, no second task yet.
  EXPECT_EQ(StatusOf("handoff-retry", "retried"), 1);
  std::string next;
  auto history = c_->GetExecutionHistory(Coordinator::ExecutionArn("handoff-retry", "retried"), "",
                                         100, false, &next);
  ASSERT_TRUE(history.ok()) << history.status();
  int failed = 0;
  for (const auto& ev : *history) failed += ev.type == engine::EventType::kActivityFailed;
  EXPECT_EQ(failed, 1);
  {
    std::lock_guard<std::mutex> g(seen.mu);
    EXPECT_EQ(seen.tasks.size(), 1u);
  }
  // The same failure again is refused: the attempt is closed.
  auto applied = c_->ApplyWorkerResults({{token, true, "", std::string("Busy"), std::nullopt}});
  EXPECT_EQ(applied[0].code(), absl::StatusCode::kFailedPrecondition) << applied[0];
  EXPECT_TRUE(c_->Unsubscribe(w.get()).empty());
}

// Another coordinator advanced the execution after this one cached it: the
// version-checked write applies nothing, and the locked path (given to
// `run_blocking`) replays the history and refuses the stale result.
TEST_F(HandOff, AnAsynchronousResultOnAStaleCacheGoesToTheLockedPathAndIsRefused) {
  Seen seen;
  auto w = c_->Subscribe({"handoff-hold"}, "stream-stale", 1, Recorder(&seen, true));
  Start("stale");
  const std::string token = TokenOf(&seen, 0);
  ASSERT_FALSE(token.empty());
  runtime::CoordinatorOptions o;
  o.token_secret = "handoff-test-secret";
  o.run_background = false;
  Coordinator other(store_.get(), o);
  auto first = other.ApplyWorkerResults({{token, false, R"({"by":"other"})", {}, {}}});
  ASSERT_TRUE(first[0].ok()) << first[0];
  Async a;
  ASSERT_TRUE(ApplyAsync({token, false, R"({"by":"this"})", {}, {}}, &a));
  std::function<void()> fn = a.OnlyBlockingWork();
  ASSERT_TRUE(fn);
  fn();
  {
    std::lock_guard<std::mutex> g(a.mu);
    ASSERT_TRUE(a.result.has_value());
    EXPECT_EQ(a.result->code(), absl::StatusCode::kFailedPrecondition) << *a.result;
  }
  auto row = c_->DescribeExecution(Coordinator::ExecutionArn("handoff", "stale"));
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->status, 2);
  EXPECT_EQ(row->output, R"({"by":"other"})");
  EXPECT_TRUE(c_->Unsubscribe(w.get()).empty());
}

// StartExecution from a callback handler: decided on the calling thread,
// answered by the group commit's thread once written; a start that would
// have to read the database first is not taken (the caller runs
// StartExecution where it may block), and the same name again goes to the
// blocking runner, which reads the row it left.
TEST_F(HandOff, AStartDecidedAsynchronouslyIsAnsweredByTheGroupCommit) {
  auto start = [&](const std::string& name, const std::string& input, Started* out) {
    return c_->StartExecutionAsync("handoff", name, input, out->Done(), out->RunBlocking());
  };
  // The state machine's latest revision is not cached yet: not taken.
  Started cold;
  EXPECT_FALSE(start("cold", "{}", &cold));
  EXPECT_FALSE(cold.result.has_value());
  // A start through StartExecution caches it (for a second: retried in case
  // a slow machine let it lapse).
  Seen seen;
  auto w = c_->Subscribe({"handoff-hold"}, "stream-start", 100, Recorder(&seen, true));
  Started a;
  bool taken = false;
  for (int i = 0; i < 5 && !taken; ++i) {
    Start("warm-" + std::to_string(i));
    taken = start("async-start", R"({"n":2})", &a);
  }
  ASSERT_TRUE(taken);
  ASSERT_TRUE(a.Wait());
  {
    std::lock_guard<std::mutex> g(a.mu);
    ASSERT_TRUE(a.result.has_value());
    ASSERT_TRUE(a.result->ok()) << a.result->status();
    EXPECT_EQ(a.thread, "saga-committed");
    EXPECT_TRUE(a.blocking.empty());
    EXPECT_EQ((*a.result)->name, "async-start");
    EXPECT_EQ((*a.result)->status, 1);
  }
  auto row = c_->DescribeExecution(Coordinator::ExecutionArn("handoff", "async-start"));
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->input, R"({"n":2})");
  // Its task was pushed to the stream by the group commit, before the answer.
  {
    std::lock_guard<std::mutex> g(seen.mu);
    int pushed = 0;
    for (size_t i = 0; i < seen.tasks.size(); ++i) {
      if (seen.tasks[i].idempotency_key != row->execution_id + "/1") continue;
      ++pushed;
      EXPECT_EQ(seen.threads[i], "saga-committed");
    }
    EXPECT_EQ(pushed, 1);
  }

  // The same name and input again: the blocking runner reads the row and
  // answers with it (an idempotent start); another input is refused.
  for (const auto& [input, code] : {std::pair<std::string, absl::StatusCode>{R"({"n":2})", absl::StatusCode::kOk},
                                    {R"({"n":3})", absl::StatusCode::kAlreadyExists}}) {
    Started again;
    Start("warm-again");
    if (!start("async-start", input, &again)) continue;  // the revision lapsed: nothing to check
    std::function<void()> fn = again.OnlyBlockingWork();
    ASSERT_TRUE(fn);
    fn();
    std::lock_guard<std::mutex> g(again.mu);
    ASSERT_TRUE(again.result.has_value());
    EXPECT_EQ(again.result->status().code(), code) << again.result->status();
    if (code == absl::StatusCode::kOk) {
      EXPECT_EQ((*again.result)->execution_id, row->execution_id);
    }
  }

  // A bad name is refused at once, on the calling thread.
  Started bad;
  EXPECT_TRUE(start("bad name", "{}", &bad));
  {
    std::lock_guard<std::mutex> g(bad.mu);
    ASSERT_TRUE(bad.result.has_value());
    EXPECT_EQ(bad.result->status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.thread, "saga-committed");
  }
  c_->Unsubscribe(w.get());
}

}  // namespace
}  // namespace saga::itest
