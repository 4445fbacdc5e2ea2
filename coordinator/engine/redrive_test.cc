// RedriveExecution in the engine: what runs again and what does not, and
// that replaying the history (ExecutionRedriven included) rebuilds the state.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "coordinator/asl/definition.h"
#include "coordinator/engine/engine.h"

namespace saga::engine {
namespace {

using json::Value;

constexpr int64_t kT0 = 1700000000000000;

Value J(std::string_view s) {
  auto v = json::Parse(s);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : Value();
}

// Drives one execution by hand, keeping every event for a replay check.
class Exec {
 public:
  explicit Exec(std::string_view def) {
    auto m = asl::CompileText(def);
    EXPECT_TRUE(m.ok()) << m.status();
    st_.machine = *m;
  }
  absl::StatusOr<Decision> Do(const Command& c) {
    now_ += 1000000;
    auto d = Process(&st_, c, now_, ++seed_);
    if (d.ok()) {
      history_.insert(history_.end(), d->events.begin(), d->events.end());
      for (int64_t id : d->cancelled_tasks) {
        open_.erase(std::remove_if(open_.begin(), open_.end(),
                                   [&](const TaskRequest& t) { return t.task_id == id; }),
                    open_.end());
      }
      for (const auto& t : d->tasks) open_.push_back(t);
    }
    return d;
  }
  // Completes the open task of `state` (or its compensation for `undo`).
  absl::Status Finish(const std::string& state_or_undo, bool ok, std::string error = "E") {
    for (auto it = open_.begin(); it != open_.end(); ++it) {
      const std::string key = it->compensation ? "undo:" + it->compensated_state : it->state_name;
      if (key != state_or_undo) continue;
      TaskRequest t = *it;
      open_.erase(it);
      if (ok) return Do(TaskSucceededCommand{t.task_id, J(R"({"ok":true})")}).status();
      TaskFailedCommand f;
      f.task_id = t.task_id;
      f.error = error;
      return Do(f).status();
    }
    return absl::NotFoundError("no open task " + state_or_undo);
  }
  bool HasOpen(const std::string& key) const {
    for (const auto& t : open_) {
      if ((t.compensation ? "undo:" + t.compensated_state : t.state_name) == key) return true;
    }
    return false;
  }
  int Entered(const std::string& state) const {
    int n = 0;
    for (const auto& e : history_) {
      if (e.state_name == state && std::string(EventTypeName(e.type)).ends_with("StateEntered")) ++n;
    }
    return n;
  }
  int Compensations(const std::string& state) const {
    int n = 0;
    for (const auto& e : history_) {
      const Value* c = e.details.Find("compensatedState");
      if (e.type == EventType::kCompensationScheduled && c && c->as_string() == state) ++n;
    }
    return n;
  }
  void ExpectReplayMatches() const {
    ExecutionState r;
    r.machine = st_.machine;
    for (const auto& e : history_) ASSERT_TRUE(Apply(&r, e).ok()) << EventTypeName(e.type);
    EXPECT_EQ(r.Debug().Dump(), st_.Debug().Dump());
  }
  ExecutionState& st() { return st_; }
  void Advance(int64_t us) { now_ += us; }

 private:
  ExecutionState st_;
  int64_t now_ = kT0;
  uint64_t seed_ = 0;
  std::vector<Event> history_;
  std::vector<TaskRequest> open_;
};

TEST(Redrive, RunsTheFailedTopLevelStateAgainKeepingCompletedOnes) {
  Exec r(R"({"StartAt":"A","TimeoutSeconds":600,"States":{
    "A":{"Type":"Task","Resource":"a","Next":"B"},
    "B":{"Type":"Task","Resource":"b","End":true}}})");
  ASSERT_TRUE(r.Do(StartCommand{J(R"({"n":1})"), {}}).ok());
  ASSERT_TRUE(r.Finish("A", true).ok());
  ASSERT_TRUE(r.Finish("B", false, "B.Broken").ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kFailed);
  auto d = r.Do(RedriveCommand{});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->events.front().type, EventType::kExecutionRedriven);
  EXPECT_EQ(d->events.front().details.Find("redriveCount")->as_int(), 1);
  ASSERT_EQ(d->timers.size(), 1u);  // the execution's TimeoutSeconds, armed again
  EXPECT_EQ(r.st().status, ExecutionStatus::kRunning);
  EXPECT_TRUE(r.HasOpen("B"));
  EXPECT_FALSE(r.HasOpen("A"));
  ASSERT_TRUE(r.Finish("B", true).ok());
  EXPECT_EQ(r.st().status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.Entered("A"), 1);
  EXPECT_EQ(r.Entered("B"), 2);
  r.ExpectReplayMatches();
}

TEST(Redrive, ResumesAFailedRollbackWithTheCompensationThatFailed) {
  Exec r(R"({"StartAt":"A","States":{
    "A":{"Type":"Task","Resource":"a","Compensation":{"Resource":"undo.a"},"Next":"B"},
    "B":{"Type":"Task","Resource":"b","Compensation":{"Resource":"undo.b"},"Next":"C"},
    "C":{"Type":"Task","Resource":"c","Compensation":{"Resource":"undo.c"},"Next":"D"},
    "D":{"Type":"Task","Resource":"d","Catch":[{"ErrorEquals":["States.ALL"],"Next":"Undo"}],"End":true},
    "Undo":{"Type":"Compensate","Next":"Failed"},
    "Failed":{"Type":"Fail","Error":"Order.Failed"}}})");
  ASSERT_TRUE(r.Do(StartCommand{J("{}"), {}}).ok());
  for (const char* s : {"A", "B", "C"}) ASSERT_TRUE(r.Finish(s, true).ok());
  ASSERT_TRUE(r.Finish("D", false).ok());
  ASSERT_TRUE(r.Finish("undo:C", true).ok());
  ASSERT_TRUE(r.Finish("undo:B", false, "Refund.Down").ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.st().error, "Saga.CompensationFailed");
  auto d = r.Do(RedriveCommand{});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(r.HasOpen("undo:B"));
  EXPECT_FALSE(r.HasOpen("D"));
  ASSERT_TRUE(r.Finish("undo:B", true).ok());
  ASSERT_TRUE(r.Finish("undo:A", true).ok());
  EXPECT_EQ(r.st().status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.st().error, "Order.Failed");  // the rollback finished, then the Fail state
  EXPECT_EQ(r.Compensations("C"), 1);       // never run again
  EXPECT_EQ(r.Compensations("B"), 2);
  EXPECT_EQ(r.Compensations("A"), 1);
  EXPECT_EQ(r.Entered("D"), 1);
  r.ExpectReplayMatches();
}

TEST(Redrive, AParallelRunsOnlyItsUnsuccessfulBranchesAgain) {
  Exec r(R"({"StartAt":"P","States":{
    "P":{"Type":"Parallel","End":true,"Branches":[
      {"StartAt":"L","States":{"L":{"Type":"Task","Resource":"l","End":true}}},
      {"StartAt":"R","States":{"R":{"Type":"Task","Resource":"r","End":true}}}]}}})");
  ASSERT_TRUE(r.Do(StartCommand{J(R"({"n":1})"), {}}).ok());
  ASSERT_TRUE(r.Finish("L", true).ok());
  ASSERT_TRUE(r.Finish("R", false, "R.Broken").ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kFailed);
  auto d = r.Do(RedriveCommand{});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(r.HasOpen("R"));
  EXPECT_FALSE(r.HasOpen("L"));
  ASSERT_TRUE(r.Finish("R", true).ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.st().output, J(R"([{"ok":true},{"ok":true}])"));
  EXPECT_EQ(r.Entered("L"), 1);
  EXPECT_EQ(r.Entered("R"), 2);
  EXPECT_EQ(r.Entered("P"), 1);
  r.ExpectReplayMatches();
}

TEST(Redrive, AMapRunsOnlyItsUnsuccessfulIterationsAgain) {
  Exec r(R"({"StartAt":"M","States":{
    "M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":1,"End":true,
         "ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Task","Resource":"i","End":true}}}}}})");
  ASSERT_TRUE(r.Do(StartCommand{J(R"({"items":[1,2,3]})"), {}}).ok());
  ASSERT_TRUE(r.Finish("I", true).ok());   // item 0
  ASSERT_TRUE(r.Finish("I", false).ok());  // item 1 fails the Map
  ASSERT_EQ(r.st().status, ExecutionStatus::kFailed);
  ASSERT_TRUE(r.Do(RedriveCommand{}).ok());
  ASSERT_TRUE(r.Finish("I", true).ok());  // item 1 again
  ASSERT_TRUE(r.Finish("I", true).ok());  // item 2
  ASSERT_EQ(r.st().status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.st().output, J(R"([{"ok":true},{"ok":true},{"ok":true}])"));
  EXPECT_EQ(r.Entered("I"), 4);  // 0, 1, then 1 and 2 after the redrive
  r.ExpectReplayMatches();
}

TEST(Redrive, ARollbackThatFailedInsideABranchResumesThereWhileTheOtherBranchStartsAgain) {
  Exec r(R"({"StartAt":"P","States":{
    "P":{"Type":"Parallel","End":true,"Branches":[
      {"StartAt":"X","States":{
        "X":{"Type":"Task","Resource":"x","Compensation":{"Resource":"undo.x"},"Next":"Y"},
        "Y":{"Type":"Task","Resource":"y","Compensation":{"Resource":"undo.y"},"Next":"Z"},
        "Z":{"Type":"Task","Resource":"z","Catch":[{"ErrorEquals":["States.ALL"],"Next":"U"}],"End":true},
        "U":{"Type":"Compensate","End":true}}},
      {"StartAt":"W","States":{"W":{"Type":"Task","Resource":"w","End":true}}}]}}})");
  ASSERT_TRUE(r.Do(StartCommand{J("{}"), {}}).ok());
  ASSERT_TRUE(r.Finish("X", true).ok());
  ASSERT_TRUE(r.Finish("Y", true).ok());
  ASSERT_TRUE(r.Finish("Z", false).ok());
  ASSERT_TRUE(r.Finish("undo:Y", false, "Undo.Down").ok());  // W still running
  ASSERT_EQ(r.st().status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.st().error, "Saga.CompensationFailed");
  auto d = r.Do(RedriveCommand{});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(r.HasOpen("undo:Y"));
  EXPECT_TRUE(r.HasOpen("W"));  // its cancelled attempt runs again
  ASSERT_TRUE(r.Finish("W", true).ok());
  ASSERT_TRUE(r.Finish("undo:Y", true).ok());
  ASSERT_TRUE(r.Finish("undo:X", true).ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.Compensations("Y"), 2);
  EXPECT_EQ(r.Compensations("X"), 1);
  EXPECT_EQ(r.Entered("X"), 1);
  EXPECT_EQ(r.Entered("Z"), 1);
  r.ExpectReplayMatches();
}

TEST(Redrive, AnAbortedParallelResumesItsRunningBranchesWhereTheyWere) {
  Exec r(R"({"StartAt":"P","States":{
    "P":{"Type":"Parallel","End":true,"Branches":[
      {"StartAt":"A","States":{"A":{"Type":"Task","Resource":"a","Next":"B"},
                               "B":{"Type":"Task","Resource":"b","End":true}}},
      {"StartAt":"C","States":{"C":{"Type":"Task","Resource":"c","End":true}}}]}}})");
  ASSERT_TRUE(r.Do(StartCommand{J("{}"), {}}).ok());
  ASSERT_TRUE(r.Finish("A", true).ok());
  ASSERT_TRUE(r.Finish("C", true).ok());
  ASSERT_TRUE(r.Do(StopCommand{}).ok());  // while B runs
  ASSERT_EQ(r.st().status, ExecutionStatus::kAborted);
  ASSERT_TRUE(r.Do(RedriveCommand{}).ok());
  EXPECT_TRUE(r.HasOpen("B"));
  ASSERT_TRUE(r.Finish("B", true).ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.Entered("A"), 1);
  EXPECT_EQ(r.Entered("B"), 2);
  EXPECT_EQ(r.Entered("C"), 1);
  r.ExpectReplayMatches();
}

TEST(Redrive, AnAbortedWaitStartsAgain) {
  Exec r(R"({"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":5,"End":true}}})");
  ASSERT_TRUE(r.Do(StartCommand{J("{}"), {}}).ok());
  ASSERT_TRUE(r.Do(StopCommand{}).ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kAborted);
  auto d = r.Do(RedriveCommand{});
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->timers.size(), 1u);
  auto fired = r.Do(TimerFiredCommand{d->timers[0].timer_id});
  ASSERT_TRUE(fired.ok()) << fired.status();
  EXPECT_EQ(r.st().status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.st().redrive_count, 1);
  r.ExpectReplayMatches();
}

TEST(Redrive, RefusesRunningSucceededAndTooOldExecutions) {
  Exec running(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"t","End":true}}})");
  ASSERT_TRUE(running.Do(StartCommand{J("{}"), {}}).ok());
  EXPECT_EQ(running.Do(RedriveCommand{}).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(running.Finish("T", true).ok());
  auto s = running.Do(RedriveCommand{});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), testing::HasSubstr("SUCCEEDED"));

  Exec old(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"t","End":true}}})");
  ASSERT_TRUE(old.Do(StartCommand{J("{}"), {}}).ok());
  ASSERT_TRUE(old.Finish("T", false).ok());
  old.Advance(kRedriveWindowUs);
  auto late = old.Do(RedriveCommand{});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.status().message()), testing::HasSubstr("14 days"));
}

constexpr char kThreeSteps[] = R"({"StartAt":"A","States":{
    "A":{"Type":"Task","Resource":"a","Compensation":{"Resource":"undo.a"},"Next":"B"},
    "B":{"Type":"Task","Resource":"b","Compensation":{"Resource":"undo.b"},"Next":"C"},
    "C":{"Type":"Task","Resource":"c","Compensation":{"Resource":"undo.c"},"End":true}}})";

TEST(StopWithCompensation, CompensatesCompletedStepsLatestFirstThenAborts) {
  Exec r(kThreeSteps);
  ASSERT_TRUE(r.Do(StartCommand{J("{}"), {}}).ok());
  ASSERT_TRUE(r.Finish("A", true).ok());
  ASSERT_TRUE(r.Finish("B", true).ok());
  ASSERT_TRUE(r.HasOpen("C"));
  StopCommand stop{std::string("Ops.Stop"), std::string("customer cancelled"), true};
  auto d = r.Do(stop);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->events.front().type, EventType::kExecutionStopRequested);
  EXPECT_EQ(d->cancelled_tasks.size(), 1u);  // C's task
  EXPECT_EQ(r.st().status, ExecutionStatus::kRunning);
  EXPECT_TRUE(r.HasOpen("undo:B"));
  ASSERT_TRUE(r.Finish("undo:B", true).ok());
  ASSERT_TRUE(r.Finish("undo:A", true).ok());
  EXPECT_EQ(r.st().status, ExecutionStatus::kAborted);
  EXPECT_EQ(r.st().error, "Ops.Stop");
  EXPECT_EQ(r.st().cause, "customer cancelled");
  EXPECT_EQ(r.Compensations("C"), 0);  // it never completed
  r.ExpectReplayMatches();
}

TEST(StopWithCompensation, NothingToCompensateIsAnOrdinaryStop) {
  Exec r(kThreeSteps);
  ASSERT_TRUE(r.Do(StartCommand{J("{}"), {}}).ok());
  auto d = r.Do(StopCommand{std::nullopt, std::nullopt, true});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(r.st().status, ExecutionStatus::kAborted);
  EXPECT_EQ(d->events.front().type, EventType::kExecutionAborted);
}

TEST(StopWithCompensation, AFailedRollbackFailsTheExecutionAndRedriveFinishesIt) {
  Exec r(kThreeSteps);
  ASSERT_TRUE(r.Do(StartCommand{J("{}"), {}}).ok());
  ASSERT_TRUE(r.Finish("A", true).ok());
  ASSERT_TRUE(r.Finish("B", true).ok());
  ASSERT_TRUE(r.Do(StopCommand{std::string("Ops.Stop"), std::nullopt, true}).ok());
  EXPECT_EQ(r.Do(StopCommand{std::nullopt, std::nullopt, true}).status().code(),
            absl::StatusCode::kFailedPrecondition);  // already rolling back
  ASSERT_TRUE(r.Finish("undo:B", false, "Refund.Down").ok());
  ASSERT_EQ(r.st().status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.st().error, "Saga.CompensationFailed");
  ASSERT_TRUE(r.Do(RedriveCommand{}).ok());
  ASSERT_TRUE(r.Finish("undo:B", true).ok());
  ASSERT_TRUE(r.Finish("undo:A", true).ok());
  EXPECT_EQ(r.st().status, ExecutionStatus::kAborted);
  EXPECT_EQ(r.st().error, "Ops.Stop");
  EXPECT_EQ(r.Compensations("B"), 2);
  EXPECT_EQ(r.Compensations("A"), 1);
  r.ExpectReplayMatches();
}

}  // namespace
}  // namespace saga::engine
