// Saga compensation end to end: real saga-coordinator processes on a real
// PostgreSQL, compensations dispatched to C++ SDK workers over WorkerStream.
// Checks the order (reverse order of completion, across sequential steps,
// Parallel branches and Map iterations), the scope of a Compensate inside a
// branch, a compensation's own Retry, a compensation that keeps failing
// (Saga.CompensationFailed with the pending ones listed), a saga where
// nothing completed, and kill -9 of the coordinator during a rollback
// (every compensation exactly once, in order).
#include <map>
#include <set>

#include "coordinator/common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "saga/worker/worker.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

namespace sw = ::saga::worker;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// Every activity "x.do.NAME" answers {"done": NAME} unless NAME starts with
// "fail" (TaskError Step.Failed); "x.undo.NAME" records the undo and answers
// {"undone": NAME}, failing with Undo.Busy on its first try for names
// starting with "flaky" and always for names starting with "broken".
class SagaWorkers {
 public:
  SagaWorkers(const std::string& address, const std::vector<std::string>& steps) {
    sw::WorkerOptions o;
    o.address = address;
    o.identity = "saga-worker";
    o.concurrency = 8;
    o.cancel_check_interval = milliseconds(200);
    o.reconnect_min = milliseconds(50);
    o.reconnect_max = milliseconds(300);
    w_ = std::make_unique<sw::Worker>(o);
    for (const auto& s : steps) {
      w_->Register("x.do." + s, [this, s](sw::TaskContext&) -> sw::Result {
        if (s.rfind("fail", 0) == 0) return sw::TaskError{"Step.Failed", s + " failed"};
        if (s.rfind("fixable", 0) == 0 && !fixed_.load()) {
          return sw::TaskError{"Step.Broken", s + " is broken until fixed"};
        }
        return R"({"done":")" + s + "\"}";
      });
      w_->Register("x.undo." + s, [this, s](sw::TaskContext& ctx) -> sw::Result {
        {
          std::unique_lock<std::mutex> lock(mu_);
          ++attempts_[s];
          keys_[s].insert(ctx.info().compensated_idempotency_key);
          if (s == hold_) {
            held_ = true;
            cv_.notify_all();
            cv_.wait(lock, [&] { return !hold_.has_value(); });
          }
          if (s.rfind("flaky", 0) == 0 && attempts_[s] == 1) {
            return sw::TaskError{"Undo.Busy", "try again"};
          }
          if (s.rfind("broken", 0) == 0) return sw::TaskError{"Undo.Broken", "cannot undo " + s};
          if (s.rfind("undofix", 0) == 0 && !fixed_.load()) {
            return sw::TaskError{"Undo.Broken", "cannot undo " + s + " until fixed"};
          }
          undone_.push_back(s);
          EXPECT_TRUE(ctx.info().compensation);
          EXPECT_EQ(ctx.info().compensated_state, s);
        }
        return R"({"undone":")" + s + "\"}";
      });
    }
    w_->Start();
  }
  ~SagaWorkers() { w_->Shutdown(seconds(1)); }

  // From now on "fixable*" steps and "undofix*" undos succeed.
  void Fix() { fixed_ = true; }
  // The undo of `step` blocks (once started) until Release().
  void Hold(const std::string& step) {
    std::lock_guard<std::mutex> g(mu_);
    hold_ = step;
  }
  bool WaitHeld(milliseconds t) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, t, [&] { return held_; });
  }
  void Release() {
    std::lock_guard<std::mutex> g(mu_);
    hold_.reset();
    cv_.notify_all();
  }
  std::vector<std::string> Undone() {
    std::lock_guard<std::mutex> g(mu_);
    return undone_;
  }
  int Attempts(const std::string& s) {
    std::lock_guard<std::mutex> g(mu_);
    return attempts_[s];
  }
  std::set<std::string> Keys(const std::string& s) {
    std::lock_guard<std::mutex> g(mu_);
    return keys_[s];
  }

 private:
  std::unique_ptr<sw::Worker> w_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> undone_;
  std::map<std::string, int> attempts_;
  std::map<std::string, std::set<std::string>> keys_;
  std::optional<std::string> hold_;
  bool held_ = false;
  std::atomic<bool> fixed_{false};
};

std::string Task(const std::string& name, const std::string& next, bool compensation = true,
                 const std::string& extra = "") {
  std::string s = "\"" + name + R"(":{"Type":"Task","Resource":"x.do.)" + name + "\"";
  if (compensation) {
    s += R"(,"Compensation":{"Resource":"x.undo.)" + name +
         R"(","Retry":[{"ErrorEquals":["Undo.Busy"],"IntervalSeconds":1,"MaxAttempts":2}]})";
  }
  s += extra;
  s += next.empty() ? ",\"End\":true}" : ",\"Next\":\"" + next + "\"}";
  return s;
}

// The Tasks whose compensation is recorded, in order of completion (their
// TaskStateExited events), and the compensated states in order of start.
std::vector<std::string> Completed(const std::vector<pb::HistoryEvent>& h,
                                   const std::set<std::string>& with_compensation) {
  std::vector<std::string> out;
  for (const auto& e : h) {
    if (e.type() == "TaskStateExited" && with_compensation.count(e.state_name())) {
      out.push_back(e.state_name());
    }
  }
  return out;
}
std::vector<std::string> CompensationsStarted(const std::vector<pb::HistoryEvent>& h) {
  std::vector<std::string> out;
  for (const auto& e : h) {
    if (e.type() == "CompensationSucceeded") {
      out.push_back(ParseJson(e.details()).Find("compensatedState")->as_string());
    }
  }
  return out;
}

grpc::Status Redrive(Stub* stub, const std::string& arn) {
  grpc::ClientContext ctx;
  pb::RedriveExecutionRequest req;
  req.set_execution_arn(arn);
  pb::RedriveExecutionResponse resp;
  return stub->RedriveExecution(&ctx, req, &resp);
}

class Compensation : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    c_ = Start();
    ASSERT_NE(c_, nullptr);
    stub_ = c_->NewStub();
  }
  pb::Execution Run(const std::string& name, const std::string& definition,
                    std::vector<pb::HistoryEvent>* history, const std::string& input = "{}") {
    EXPECT_TRUE(IsOk(CreateStateMachine(stub_.get(), name, definition)));
    std::string arn;
    EXPECT_TRUE(IsOk(StartExecution(stub_.get(), name, "", input, &arn)));
    pb::Execution e = WaitFinished(stub_.get(), arn, seconds(30));
    auto h = History(stub_.get(), arn);
    EXPECT_TRUE(h.ok());
    if (h.ok()) *history = *h;
    return e;
  }
  std::unique_ptr<CoordinatorProcess> c_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(Compensation, SequenceAndParallelBranchesRollBackInReverseOrderOfCompletion) {
  SagaWorkers w(c_->address(), {"a", "b1", "b2", "c", "fail"});
  const std::string def = R"({"StartAt":"a","States":{)" + Task("a", "p") + R"(,
    "p":{"Type":"Parallel","Next":"c","Branches":[
      {"StartAt":"b1","States":{)" + Task("b1", "") + R"(}},
      {"StartAt":"b2","States":{)" + Task("b2", "") + R"(}}]},)" +
                          Task("c", "fail") + "," +
                          Task("fail", "", false,
                               R"(,"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"undo"}])") +
                          R"(,"undo":{"Type":"Compensate","ResultPath":"$.report","Next":"failed"},
    "failed":{"Type":"Fail","Error":"Order.Failed"}}})";
  std::vector<pb::HistoryEvent> h;
  pb::Execution e = Run("Seq", def, &h);
  ASSERT_EQ(e.status(), pb::FAILED) << e.error() << " " << e.cause();
  EXPECT_EQ(e.error(), "Order.Failed");
  std::vector<std::string> done = Completed(h, {"a", "b1", "b2", "c"});
  ASSERT_EQ(done.size(), 4u);
  std::vector<std::string> expected(done.rbegin(), done.rend());
  EXPECT_THAT(CompensationsStarted(h), ElementsAreArray(expected));
  EXPECT_THAT(w.Undone(), ElementsAreArray(expected));
  for (const auto& s : expected) EXPECT_EQ(w.Attempts(s), 1) << s;
  EXPECT_EQ(CountEvents(h, "CompensateStateEntered"), 1);
  EXPECT_EQ(CountEvents(h, "CompensateStateExited"), 1);
  // Each compensation knows the idempotency key of the step it undoes.
  EXPECT_THAT(w.Keys("a"), ::testing::SizeIs(1));
  EXPECT_THAT(*w.Keys("a").begin(), ::testing::MatchesRegex("^[0-9a-f-]{36}/[0-9]+$"));
}

TEST_F(Compensation, MapIterationsAreRolledBackAndABranchCompensateStaysInItsBranch) {
  SagaWorkers w(c_->address(), {"item", "x", "fail", "z"});
  const std::string def = R"({"StartAt":"m","States":{
    "m":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":1,"ResultPath":"$.m","Next":"p",
         "ItemProcessor":{"StartAt":"item","States":{)" + Task("item", "") + R"(}}},
    "p":{"Type":"Parallel","ResultPath":"$.p","Next":"undoAll","Branches":[
      {"StartAt":"x","States":{)" + Task("x", "fail") + "," +
                          Task("fail", "", false,
                               R"(,"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"branchUndo"}])") +
                          R"(,"branchUndo":{"Type":"Compensate","End":true}}},
      {"StartAt":"z","States":{)" + Task("z", "") + R"(}}]},
    "undoAll":{"Type":"Compensate","End":true}}})";
  std::vector<pb::HistoryEvent> h;
  pb::Execution e = Run("MapAndBranch", def, &h, R"({"items":[1,2,3]})");
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.error() << " " << e.cause();
  std::vector<std::string> undone = w.Undone();
  // The branch's Compensate undid x only; then the top-level one undid z and
  // the three Map iterations, latest first.
  ASSERT_EQ(undone.size(), 5u) << ::testing::PrintToString(undone);
  EXPECT_EQ(undone[0], "x");
  EXPECT_EQ(undone[1], "z");
  EXPECT_THAT(std::vector<std::string>(undone.begin() + 2, undone.end()),
              ElementsAre("item", "item", "item"));
  EXPECT_EQ(CountEvents(h, "CompensateStateEntered"), 2);
}

TEST_F(Compensation, ACompensationRetriesByItsOwnRetry) {
  SagaWorkers w(c_->address(), {"flaky", "fail"});
  const std::string def = R"({"StartAt":"flaky","States":{)" + Task("flaky", "fail") + "," +
                          Task("fail", "", false,
                               R"(,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"undo"}])") +
                          R"(,"undo":{"Type":"Compensate","End":true}}})";
  std::vector<pb::HistoryEvent> h;
  pb::Execution e = Run("Retry", def, &h);
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.error() << " " << e.cause();
  EXPECT_EQ(w.Attempts("flaky"), 2);
  EXPECT_THAT(w.Undone(), ElementsAre("flaky"));
  EXPECT_EQ(CountEvents(h, "CompensationFailed"), 1);     // the retried first try
  EXPECT_EQ(CountEvents(h, "CompensationSucceeded"), 1);
}

TEST_F(Compensation, ACompensationThatKeepsFailingFailsTheExecutionListingWhatIsLeft) {
  SagaWorkers w(c_->address(), {"first", "broken", "last", "fail"});
  const std::string def = R"({"StartAt":"first","States":{)" + Task("first", "broken") + "," +
                          Task("broken", "last") + "," + Task("last", "fail") + "," +
                          Task("fail", "", false,
                               R"(,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"undo"}])") +
                          R"(,"undo":{"Type":"Compensate","End":true}}})";
  std::vector<pb::HistoryEvent> h;
  pb::Execution e = Run("Broken", def, &h);
  ASSERT_EQ(e.status(), pb::FAILED);
  EXPECT_EQ(e.error(), "Saga.CompensationFailed");
  EXPECT_THAT(e.cause(), ::testing::HasSubstr("broken"));
  EXPECT_THAT(e.cause(), ::testing::HasSubstr("Undo.Broken"));
  EXPECT_THAT(w.Undone(), ElementsAre("last"));  // "first" was never undone
  EXPECT_EQ(w.Attempts("first"), 0);
  const pb::HistoryEvent* last_failure = nullptr;
  for (const auto& ev : h) {
    if (ev.type() == "CompensationFailed") last_failure = &ev;
  }
  ASSERT_NE(last_failure, nullptr);
  json::Value d = ParseJson(last_failure->details());
  ASSERT_NE(d.Find("pendingCompensations"), nullptr);
  // Pending: the failed compensation itself, then the ones not run yet.
  EXPECT_EQ(d.Find("pendingCompensations")->Dump(), R"(["broken","first"])");
}

TEST_F(Compensation, NothingCompletedCompensatesNothing) {
  SagaWorkers w(c_->address(), {"fail"});
  const std::string def = R"({"StartAt":"fail","States":{)" +
                          Task("fail", "", true,
                               R"(,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"undo"}])") +
                          R"(,"undo":{"Type":"Compensate","Next":"failed"},
    "failed":{"Type":"Fail","Error":"Order.Failed"}}})";
  std::vector<pb::HistoryEvent> h;
  pb::Execution e = Run("Nothing", def, &h);
  ASSERT_EQ(e.status(), pb::FAILED);
  EXPECT_EQ(e.error(), "Order.Failed");
  EXPECT_EQ(CountEvents(h, "CompensationScheduled"), 0);
  EXPECT_TRUE(w.Undone().empty());
}

TEST_F(Compensation, CoordinatorKilledDuringARollbackFinishesItExactlyOnceInOrder) {
  SagaWorkers w(c_->address(), {"s1", "s2", "s3", "fail"});
  w.Hold("s2");  // the second compensation blocks until the coordinator was killed
  const std::string def = R"({"StartAt":"s1","States":{)" + Task("s1", "s2") + "," +
                          Task("s2", "s3") + "," + Task("s3", "fail") + "," +
                          Task("fail", "", false,
                               R"(,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"undo"}])") +
                          R"(,"undo":{"Type":"Compensate","Next":"failed"},
    "failed":{"Type":"Fail","Error":"Order.Failed"}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Killed", def)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "Killed", "k", "{}", &arn)));
  ASSERT_TRUE(w.WaitHeld(seconds(20)));
  const std::string address = c_->address();
  c_->Kill9();
  c_ = StartOn(address, "restarted");
  ASSERT_NE(c_, nullptr);
  stub_ = c_->NewStub();
  w.Release();  // its result reaches the new coordinator over the reconnected stream
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::FAILED) << e.error() << " " << e.cause();
  EXPECT_EQ(e.error(), "Order.Failed");
  EXPECT_THAT(w.Undone(), ElementsAre("s3", "s2", "s1"));
  for (const auto& s : {"s1", "s2", "s3"}) EXPECT_EQ(w.Attempts(s), 1) << s;
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(ConsecutiveIds(*h));
  EXPECT_THAT(CompensationsStarted(*h), ElementsAre("s3", "s2", "s1"));
}

TEST_F(Compensation, RedriveFinishesAFailedRollbackWithoutRepeatingCompensations) {
  SagaWorkers w(c_->address(), {"first", "undofix", "last", "fail"});
  const std::string def = R"({"StartAt":"first","States":{)" + Task("first", "undofix") + "," +
                          Task("undofix", "last") + "," + Task("last", "fail") + "," +
                          Task("fail", "", false,
                               R"(,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"undo"}])") +
                          R"(,"undo":{"Type":"Compensate","Next":"failed"},
    "failed":{"Type":"Fail","Error":"Order.Failed"}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Redrive", def)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "Redrive", "r", "{}", &arn)));
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::FAILED);
  ASSERT_EQ(e.error(), "Saga.CompensationFailed");
  EXPECT_THAT(w.Undone(), ElementsAre("last"));
  // A running or succeeded execution cannot be redriven; this one can, once.
  w.Fix();
  ASSERT_TRUE(IsOk(Redrive(stub_.get(), arn)));
  e = WaitFinished(stub_.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::FAILED) << e.error() << " " << e.cause();
  EXPECT_EQ(e.error(), "Order.Failed");
  EXPECT_THAT(w.Undone(), ElementsAre("last", "undofix", "first"));
  EXPECT_EQ(w.Attempts("last"), 1);     // not run again
  EXPECT_EQ(w.Attempts("undofix"), 2);  // failed once, then after the redrive
  EXPECT_EQ(w.Attempts("first"), 1);
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ExecutionRedriven"), 1);
  EXPECT_TRUE(ConsecutiveIds(*h));
}

TEST_F(Compensation, RedriveRunsAFailedStepAgainAndRefusesOtherExecutions) {
  SagaWorkers w(c_->address(), {"a", "fixable"});
  const std::string def = R"({"StartAt":"a","States":{)" + Task("a", "fixable") + "," +
                          Task("fixable", "", false) + "}}";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Fixable", def)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "Fixable", "f", "{}", &arn)));
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::FAILED);
  EXPECT_EQ(e.error(), "Step.Broken");
  w.Fix();
  ASSERT_TRUE(IsOk(Redrive(stub_.get(), arn)));
  e = WaitFinished(stub_.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.error() << " " << e.cause();
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "TaskStateEntered", "a"), 1);  // kept, not run again
  EXPECT_EQ(CountEvents(*h, "TaskStateEntered", "fixable"), 2);
  EXPECT_TRUE(HasCode(Redrive(stub_.get(), arn), grpc::StatusCode::FAILED_PRECONDITION, "SUCCEEDED"));
  EXPECT_TRUE(HasCode(Redrive(stub_.get(), "arn:saga:states:::execution:Fixable:nope"),
                      grpc::StatusCode::NOT_FOUND, "execution_arn"));
}

TEST_F(Compensation, StopWithCompensationRollsBackThenAborts) {
  SagaWorkers w(c_->address(), {"a", "b"});
  std::atomic<bool> cancelled{false}, started{false};
  sw::WorkerOptions o;
  o.address = c_->address();
  o.identity = "slow";
  o.cancel_check_interval = milliseconds(200);
  sw::Worker slow(o);
  slow.Register("x.do.slow", [&](sw::TaskContext& ctx) -> sw::Result {
    started = true;
    cancelled = WaitUntil([&] { return ctx.Cancelled(); }, seconds(15));
    return "{}";
  });
  slow.Start();
  const std::string def = R"({"StartAt":"a","States":{)" + Task("a", "b") + "," + Task("b", "slow") +
                          R"(,"slow":{"Type":"Task","Resource":"x.do.slow","End":true}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Stoppable", def)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "Stoppable", "s", "{}", &arn)));
  ASSERT_TRUE(WaitUntil([&] { return started.load(); }, seconds(20)));
  grpc::ClientContext ctx;
  pb::StopExecutionRequest req;
  req.set_execution_arn(arn);
  req.set_error("Ops.Cancelled");
  req.set_cause("customer cancelled the order");
  req.set_compensate(true);
  pb::StopExecutionResponse resp;
  ASSERT_TRUE(IsOk(stub_->StopExecution(&ctx, req, &resp)));
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::ABORTED) << e.error() << " " << e.cause();
  EXPECT_EQ(e.error(), "Ops.Cancelled");
  EXPECT_EQ(e.cause(), "customer cancelled the order");
  EXPECT_THAT(w.Undone(), ElementsAre("b", "a"));
  EXPECT_TRUE(WaitUntil([&] { return cancelled.load(); }, seconds(10)));  // the running step was told
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ExecutionStopRequested"), 1);
  EXPECT_THAT(CompensationsStarted(*h), ElementsAre("b", "a"));
  slow.Shutdown(seconds(1));
}

}  // namespace
}  // namespace saga::itest
