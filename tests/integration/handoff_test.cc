// In-process hand-off of a task to a worker stream (runtime::Coordinator on
// a real PostgreSQL, no gRPC): a transition that opens a task for a
// subscribed stream with a free credit starts it in the same commit, and the
// group commit's thread pushes it through the stream's `deliver` as soon as
// it is committed; what the stream cannot take waits in its mailbox for the
// stream's dispatcher (or for Unsubscribe, which gives it back).
#include <pthread.h>

#include <memory>
#include <mutex>
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
    EXPECT_EQ(seen.threads[0], "saga-commit");
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

}  // namespace
}  // namespace saga::itest
