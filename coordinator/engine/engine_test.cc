#include "coordinator/engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

#include "coordinator/asl/definition.h"
#include "coordinator/common/strings.h"
#include "coordinator/engine/offline_runner.h"

namespace saga::engine {
namespace {

using json::Value;

Value J(std::string_view s) {
  auto v = json::Parse(s);
  EXPECT_TRUE(v.ok()) << v.status() << " in " << s;
  return v.ok() ? *v : Value();
}

std::shared_ptr<const asl::StateMachine> Machine(std::string_view def) {
  auto m = asl::CompileText(def);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

constexpr int64_t kT0 = 1700000000000000;  // 2023-11-14T22:13:20Z

OfflineResult RunDef(std::string_view def, std::string_view input, std::string_view mocks = "") {
  auto m = Machine(def);
  std::optional<MockConfig> mc;
  if (!mocks.empty()) {
    auto cfg = MockConfig::FromJson(J(mocks), "M", "T");
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    mc = *cfg;
  }
  OfflineOptions o;
  o.start_us = kT0;
  o.seed = 7;
  auto r = RunOffline(m, J(input), mc ? &*mc : nullptr, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : OfflineResult{};
}

std::vector<std::string> Types(const OfflineResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.history) out.emplace_back(EventTypeName(e.type));
  return out;
}

std::string Mock(std::string_view state, std::string_view responses) {
  return saga::StrCat(R"({"StateMachines":{"M":{"TestCases":{"T":{")", state,
                      R"(":"R"}}}},"MockedResponses":{"R":)", responses, "}}");
}

TEST(EngineTest, PassChainProducesStepFunctionsHistory) {
  auto r = RunDef(R"({"StartAt":"A","States":{
      "A":{"Type":"Pass","Result":{"x":1},"ResultPath":"$.a","Next":"B"},
      "B":{"Type":"Pass","End":true}}})",
                  R"({"in":true})");
  EXPECT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J(R"({"in":true,"a":{"x":1}})"));
  EXPECT_THAT(Types(r),
              testing::ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                                   "PassStateEntered", "PassStateExited", "ExecutionSucceeded"));
  EXPECT_EQ(r.history[1].state_name, "A");
  EXPECT_EQ(r.history[1].details.Find("input")->Dump(), R"({"in":true})");
}

TEST(EngineTest, PassKeepsFalsyResults) {
  auto r = RunDef(R"({"StartAt":"A","States":{"A":{"Type":"Pass","Result":0,"End":true}}})", "{}");
  EXPECT_EQ(r.output, Value(0));
  r = RunDef(R"({"StartAt":"A","States":{"A":{"Type":"Pass","Result":null,"End":true}}})", "{}");
  EXPECT_EQ(r.output, Value());
}

TEST(EngineTest, TaskWithoutMockEchoesEffectiveInput) {
  auto r = RunDef(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r",
      "Parameters":{"v.$":"$.a","k":"lit"},"ResultSelector":{"got.$":"$.v"},
      "ResultPath":"$.res","End":true}}})",
                  R"({"a":5})");
  EXPECT_EQ(r.output, J(R"({"a":5,"res":{"got":5}})"));
  EXPECT_THAT(Types(r),
              testing::ElementsAre("ExecutionStarted", "TaskStateEntered", "ActivityScheduled",
                                   "ActivityStarted", "ActivitySucceeded", "TaskStateExited",
                                   "ExecutionSucceeded"));
}

TEST(EngineTest, RetryBacksOffOnTheVirtualClockThenSucceeds) {
  auto r =
      RunDef(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r",
      "Retry":[{"ErrorEquals":["E"],"IntervalSeconds":2,"BackoffRate":3,"MaxAttempts":3}],
      "End":true}}})",
             "{}", Mock("T", R"({"0-1":{"Throw":{"Error":"E","Cause":"c"}},"2":{"Return":7}})"));
  ASSERT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, Value(7));
  std::vector<int64_t> scheduled;
  for (const auto& e : r.history) {
    if (e.type == EventType::kActivityScheduled) scheduled.push_back(e.timestamp_us - kT0);
  }
  // Intervals: 2 s, then 2*3 = 6 s.
  EXPECT_THAT(scheduled, testing::ElementsAre(0, 2000000, 8000000));
}

TEST(EngineTest, MaxDelaySecondsCapsBackoffAndFullJitterStaysBelowIt) {
  auto r = RunDef(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r",
      "Retry":[{"ErrorEquals":["E"],"IntervalSeconds":10,"BackoffRate":10,"MaxAttempts":3,
                "MaxDelaySeconds":15,"JitterStrategy":"FULL"}],"End":true}}})",
                  "{}", Mock("T", R"({"0-2":{"Throw":{"Error":"E"}},"3":{"Return":1}})"));
  ASSERT_EQ(r.status, ExecutionStatus::kSucceeded);
  for (const auto& e : r.history) {
    if (e.type == EventType::kStateRetryScheduled) {
      double d = e.details.Find("delaySeconds")->as_double();
      EXPECT_GE(d, 0);
      EXPECT_LE(d, 15);
    }
  }
}

TEST(EngineTest, RetriersCountSeparatelyAndExhaustedRetrierFallsToCatch) {
  auto r =
      RunDef(R"({"StartAt":"T","States":{
      "T":{"Type":"Task","Resource":"r",
        "Retry":[{"ErrorEquals":["A"],"MaxAttempts":1,"IntervalSeconds":1},
                 {"ErrorEquals":["B"],"MaxAttempts":1,"IntervalSeconds":1}],
        "Catch":[{"ErrorEquals":["States.ALL"],"Next":"C"}],"End":true},
      "C":{"Type":"Pass","End":true}}})",
             R"({"k":1})", Mock("T", R"({"0":{"Throw":{"Error":"A"}},"1":{"Throw":{"Error":"B"}},
                              "2":{"Throw":{"Error":"A","Cause":"again"}}})"));
  EXPECT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J(R"({"Error":"A","Cause":"again"})"));
}

// AWS (LocalStack's recordings, tests/conformance/AWS_NOTES.md 8 and 8a):
// a caught task timeout is {"Error": "States.Timeout", "Cause": ""}, while
// its TaskTimedOut event has no cause; a task failed without error or cause
// is {"Error": null, "Cause": null}. The oracle leaves missing fields out.
std::string CaughtTaskDef(std::string_view extra) {
  return saga::StrCat(R"({"StartAt":"T","States":{
      "T":{"Type":"Task","Resource":"r",)", extra, R"(
           "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.err","Next":"H"}],"End":true},
      "H":{"Type":"Pass","End":true}}})");
}

TEST(EngineTest, CaughtTaskTimeoutHasAnEmptyCause) {
  for (bool heartbeat : {false, true}) {
    ExecutionState st;
    st.machine = Machine(CaughtTaskDef(R"("TimeoutSeconds":5,"HeartbeatSeconds":2,)"));
    auto d = Process(&st, StartCommand{J(R"({"a":1})"), {}}, kT0, 1);
    ASSERT_TRUE(d.ok());
    auto t = Process(&st, TaskTimedOutCommand{d->tasks[0].task_id, heartbeat}, kT0 + 5, 2);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(st.output, J(R"({"a":1,"err":{"Error":"States.Timeout","Cause":""}})")) << heartbeat;
    // The event itself has no cause.
    bool seen = false;
    for (const auto& e : t->events) {
      if (e.type != EventType::kActivityTimedOut) continue;
      seen = true;
      EXPECT_EQ(e.details.Find("cause"), nullptr) << e.details.Dump();
      ASSERT_NE(e.details.Find("error"), nullptr);
      EXPECT_EQ(e.details.Find("error")->as_string(), "States.Timeout");
    }
    EXPECT_TRUE(seen);
  }
}

TEST(EngineTest, CaughtFailureWithoutErrorOrCauseHasNullFields) {
  struct Case {
    std::optional<std::string> error, cause;
    const char* want;
  };
  for (const Case& c : {Case{std::nullopt, std::nullopt, R"({"Error":null,"Cause":null})"},
                        Case{"E", std::nullopt, R"({"Error":"E","Cause":null})"},
                        Case{std::nullopt, "why", R"({"Error":null,"Cause":"why"})"},
                        Case{"E", "", R"({"Error":"E","Cause":""})"}}) {
    ExecutionState st;
    st.machine = Machine(CaughtTaskDef(""));
    auto d = Process(&st, StartCommand{J(R"({"a":1})"), {}}, kT0, 1);
    ASSERT_TRUE(d.ok());
    auto f = Process(&st, TaskFailedCommand{d->tasks[0].task_id, c.error, c.cause}, kT0 + 5, 2);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(st.output, J(saga::StrCat(R"({"a":1,"err":)", c.want, "}"))) << c.want;
    for (const auto& e : f->events) {
      if (e.type != EventType::kActivityFailed) continue;
      EXPECT_EQ(e.details.Find("error") != nullptr, c.error.has_value()) << e.details.Dump();
      EXPECT_EQ(e.details.Find("cause") != nullptr, c.cause.has_value()) << e.details.Dump();
    }
  }
}

TEST(EngineTest, CaughtParallelBranchFailWithoutCauseHasANullCause) {
  auto r = RunDef(R"({"StartAt":"P","States":{"P":{"Type":"Parallel",
      "Branches":[{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"FailureType"}}}],
      "Catch":[{"ErrorEquals":["FailureType"],"Next":"H"}],"End":true},
      "H":{"Type":"Pass","End":true}}})",
                  "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J(R"({"Error":"FailureType","Cause":null})"));
}

TEST(EngineTest, MaxAttemptsZeroNeverRetries) {
  auto r = RunDef(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r",
      "Retry":[{"ErrorEquals":["States.ALL"],"MaxAttempts":0}],"End":true}}})",
                  "{}", Mock("T", R"({"0":{"Throw":{"Error":"X","Cause":"y"}}})"));
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "X");
  EXPECT_EQ(r.cause, "y");
}

TEST(EngineTest, RuntimeErrorsAreNeitherRetriedNorCaught) {
  auto r = RunDef(R"({"StartAt":"T","States":{
      "T":{"Type":"Pass","InputPath":"$.missing","Next":"U"},
      "U":{"Type":"Pass","End":true}}})",
                  "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "States.Runtime");
  r = RunDef(R"({"StartAt":"T","States":{
      "T":{"Type":"Task","Resource":"r","OutputPath":"$.nope",
           "Retry":[{"ErrorEquals":["States.ALL"]}],
           "Catch":[{"ErrorEquals":["States.ALL"],"Next":"U"}],"End":true},
      "U":{"Type":"Pass","End":true}}})",
             "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "States.Runtime");
}

TEST(EngineTest, ParallelCollectsBranchOutputsInOrder) {
  auto r = RunDef(R"({"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,
      "Branches":[{"StartAt":"A","States":{"A":{"Type":"Pass","Result":"a","End":true}}},
                  {"StartAt":"B","States":{"B":{"Type":"Wait","Seconds":5,"Next":"B2"},
                                           "B2":{"Type":"Pass","Result":"b","End":true}}}]}}})",
                  "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J(R"(["a","b"])"));
}

TEST(EngineTest, ParallelBranchFailureAbortsSiblingsAndPropagatesTheError) {
  auto r = RunDef(R"({"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,
      "Branches":[{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":100,"End":true}}},
                  {"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Boom","Cause":"x"}}}],
      "Catch":[{"ErrorEquals":["Boom"],"ResultPath":"$.e","Next":"D"}]},
      "D":{"Type":"Pass","End":true}}})",
                  "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J(R"({"e":{"Error":"Boom","Cause":"x"}})"));
  std::vector<std::string> t = Types(r);
  EXPECT_NE(std::find(t.begin(), t.end(), "WaitStateAborted"), t.end());
  EXPECT_NE(std::find(t.begin(), t.end(), "ParallelBranchAborted"), t.end());
  // The aborted Wait never fires: the execution ended at virtual time 0.
  EXPECT_EQ(r.history.back().timestamp_us, kT0);
}

TEST(EngineTest, MapRespectsMaxConcurrencyAndKeepsResultOrder) {
  auto r = RunDef(R"({"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs",
      "MaxConcurrency":1,"ItemSelector":{"i.$":"$$.Map.Item.Index","v.$":"$$.Map.Item.Value"},
      "ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","End":true}}},
      "End":true}}})",
                  R"({"xs":["a","b","c"]})",
                  Mock("T", R"({"0":{"Return":"first"},"1":{"Return":"second"},
                               "2":{"Return":"third"}})"));
  ASSERT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J(R"(["first","second","third"])"));
  int running = 0, peak = 0;
  for (const auto& e : r.history) {
    if (e.type == EventType::kMapIterationStarted) peak = std::max(peak, ++running);
    if (e.type == EventType::kMapIterationSucceeded) --running;
  }
  EXPECT_EQ(peak, 1);
}

TEST(EngineTest, MapToleratesFailuresUpToTheThreshold) {
  const char* def = R"({"StartAt":"M","States":{"M":{"Type":"Map","ToleratedFailureCount":1,
      "MaxConcurrency":1,
      "ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r","End":true}}},
      "End":true}}})";
  auto r =
      RunDef(def, "[1,2,3]", Mock("T", R"({"0":{"Return":1},"1":{"Throw":{"Error":"E","Cause":"c"}},
                               "2":{"Return":3}})"));
  ASSERT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J(R"([1,{"Error":"E","Cause":"c"},3])"));
  r = RunDef(def, "[1,2,3]", Mock("T", R"({"0-2":{"Throw":{"Error":"E"}}})"));
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "States.ExceedToleratedFailureThreshold");
}

TEST(EngineTest, EmptyMapSucceedsWithEmptyArray) {
  auto r = RunDef(R"({"StartAt":"M","States":{"M":{"Type":"Map",
      "ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}}})",
                  "[]");
  EXPECT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.output, J("[]"));
}

TEST(EngineTest, TopLevelTimeoutEndsALongWaitAsTimedOut) {
  auto r = RunDef(R"({"TimeoutSeconds":5,"StartAt":"W","States":{
      "W":{"Type":"Wait","Seconds":60,"End":true}}})",
                  "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kTimedOut);
  EXPECT_EQ(r.error, "States.Timeout");
  EXPECT_EQ(r.history.back().timestamp_us - kT0, 5000000);
}

TEST(EngineTest, WaitTimestampPathInThePastFiresImmediately) {
  auto r =
      RunDef(R"({"StartAt":"W","States":{"W":{"Type":"Wait","TimestampPath":"$.t","End":true}}})",
             R"({"t":"2001-01-01T00:00:00Z"})");
  EXPECT_EQ(r.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r.history.back().timestamp_us, kT0);
}

TEST(EngineTest, InfiniteLoopHitsTheHistoryLimit) {
  auto r = RunDef(R"({"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},
      "B":{"Type":"Pass","Next":"A"}}})",
                  "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "States.Runtime");
  EXPECT_LE(static_cast<int64_t>(r.history.size()), kMaxHistoryEvents);
}

TEST(EngineTest, OversizedOutputFailsWithDataLimitExceeded) {
  // 80 copies of a 1000-number array (3.9 KB each): about 313 KB of output.
  std::string params;
  for (int i = 0; i < 80; ++i) params += saga::StrCat(i ? "," : "", "\"k", i, ".$\":\"$.big\"");
  std::string def = saga::StrCat(
      R"json({"StartAt":"A","States":{"A":{"Type":"Pass",
      "Parameters":{"big.$":"States.ArrayRange(1, 1000, 1)"},"Next":"B"},
      "B":{"Type":"Pass","Parameters":{)json",
      params, "},\"End\":true}}}");
  auto r = RunDef(def, "{}");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "States.DataLimitExceeded");
}

TEST(EngineTest, OversizedExecutionInputIsRefused) {
  ExecutionState st;
  st.machine = Machine(R"({"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}})");
  StartCommand start;
  start.input = Value(std::string(300000, 'x'));
  auto d = Process(&st, start, kT0, 1);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.status, ExecutionStatus::kPending);
}

// --- Direct command processing: fencing of stale work --------------------

class TaskFlowTest : public testing::Test {
 protected:
  void SetUp() override {
    st_.machine = Machine(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"act",
        "TimeoutSeconds":30,"HeartbeatSeconds":10,
        "Retry":[{"ErrorEquals":["States.Timeout"],"MaxAttempts":1,"IntervalSeconds":1}],
        "End":true}}})");
    StartCommand start;
    start.input = J(R"({"n":1})");
    start.info.execution_id = "exec-1";
    auto d = Process(&st_, start, kT0, 1);
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_EQ(d->tasks.size(), 1u);
    task_ = d->tasks[0];
  }
  ExecutionState st_;
  TaskRequest task_;
};

TEST_F(TaskFlowTest, ScheduledTaskCarriesTimeoutsAndAttempt) {
  EXPECT_EQ(task_.resource, "act");
  EXPECT_EQ(task_.timeout_seconds, 30);
  EXPECT_EQ(task_.heartbeat_seconds, 10);
  EXPECT_EQ(task_.attempt, 0);
  EXPECT_EQ(task_.input, J(R"({"n":1})"));
}

TEST_F(TaskFlowTest, CompletionOfATimedOutAttemptIsRefusedAndChangesNothing) {
  auto d = Process(&st_, TaskTimedOutCommand{task_.task_id, true}, kT0 + 10000000, 2);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->timers.size(), 1u);  // retry timer
  std::string before = st_.Debug().Dump();
  auto late = Process(&st_, TaskSucceededCommand{task_.task_id, Value(1)}, kT0 + 10500000, 3);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(st_.Debug().Dump(), before);
  // The retry runs a new attempt with a new task id.
  auto fire = Process(&st_, TimerFiredCommand{d->timers[0].timer_id}, kT0 + 11000000, 4);
  ASSERT_TRUE(fire.ok()) << fire.status();
  ASSERT_EQ(fire->tasks.size(), 1u);
  EXPECT_NE(fire->tasks[0].task_id, task_.task_id);
  EXPECT_EQ(fire->tasks[0].attempt, 1);
  auto ok =
      Process(&st_, TaskSucceededCommand{fire->tasks[0].task_id, Value("done")}, kT0 + 12000000, 5);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(st_.status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(st_.output, Value("done"));
}

TEST_F(TaskFlowTest, HeartbeatTimeoutIsCaughtByStatesTimeoutRetrier) {
  auto d = Process(&st_, TaskTimedOutCommand{task_.task_id, true}, kT0 + 10000000, 2);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->events.back().type, EventType::kStateRetryScheduled);
  // As AWS records it: States.Timeout, no cause.
  EXPECT_EQ(d->events[0].details.Find("error")->as_string(), "States.Timeout");
  EXPECT_EQ(d->events[0].details.Find("cause"), nullptr);
}

TEST(EngineTest, HeartbeatTimeoutMatchesStatesHeartbeatTimeoutButTaskTimeoutDoesNot) {
  for (bool heartbeat : {true, false}) {
    ExecutionState st;
    st.machine = Machine(R"({"StartAt":"T","States":{
        "T":{"Type":"Task","Resource":"r","TimeoutSeconds":9,"HeartbeatSeconds":3,
             "Catch":[{"ErrorEquals":["States.HeartbeatTimeout"],"Next":"H"}],"End":true},
        "H":{"Type":"Pass","Result":"hb","End":true}}})");
    auto d = Process(&st, StartCommand{J("{}"), {}}, kT0, 1);
    ASSERT_TRUE(d.ok());
    auto t = Process(&st, TaskTimedOutCommand{d->tasks[0].task_id, heartbeat}, kT0 + 1, 2);
    ASSERT_TRUE(t.ok());
    if (heartbeat) {
      EXPECT_EQ(st.status, ExecutionStatus::kSucceeded);
      EXPECT_EQ(st.output, Value("hb"));
    } else {
      EXPECT_EQ(st.status, ExecutionStatus::kFailed);
      EXPECT_EQ(st.error, "States.Timeout");
      EXPECT_FALSE(st.has_cause);
    }
  }
}

TEST_F(TaskFlowTest, StopAbortsAndCancelsTheOpenTask) {
  auto d = Process(&st_, StopCommand{std::string("Ops.Stop"), std::string("by test")}, kT0 + 1, 2);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(st_.status, ExecutionStatus::kAborted);
  EXPECT_THAT(d->cancelled_tasks, testing::ElementsAre(task_.task_id));
  auto again = Process(&st_, StopCommand{}, kT0 + 2, 3);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  auto late = Process(&st_, TaskSucceededCommand{task_.task_id, Value(1)}, kT0 + 3, 4);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TaskFlowTest, UnknownTimerIsStale) {
  auto d = Process(&st_, TimerFiredCommand{999}, kT0 + 1, 2);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- Replay: folding the events rebuilds the state exactly ---------------

void ExpectReplayMatches(std::string_view def, std::string_view input, std::string_view mocks) {
  auto m = Machine(def);
  std::optional<MockConfig> mc;
  if (!mocks.empty()) mc = *MockConfig::FromJson(J(mocks), "M", "T");
  OfflineOptions o;
  o.start_us = kT0;
  o.seed = 3;
  auto r = RunOffline(m, J(input), mc ? &*mc : nullptr, o);
  ASSERT_TRUE(r.ok()) << r.status();
  // Replay every prefix and compare with a fresh fold of the same prefix
  // through the record encoding (as storage would).
  ExecutionState replayed;
  replayed.machine = m;
  for (const auto& e : r->history) {
    auto rec = EventFromRecord(J(EventToRecord(e).Dump()));
    ASSERT_TRUE(rec.ok()) << rec.status();
    ASSERT_TRUE(Apply(&replayed, *rec).ok()) << EventTypeName(e.type);
  }
  EXPECT_EQ(replayed.status, r->status);
  EXPECT_EQ(replayed.output, r->output);
}

TEST(ReplayTest, ReplayedStateEqualsProcessedStateAtEveryStep) {
  // Drive a saga-shaped execution command by command; after each decision,
  // rebuild the state from all events so far and compare every field.
  auto m = Machine(R"({"StartAt":"P","States":{
      "P":{"Type":"Parallel","Next":"M","Branches":[
        {"StartAt":"A","States":{"A":{"Type":"Task","Resource":"a",
           "Retry":[{"ErrorEquals":["E"],"MaxAttempts":2}],"End":true}}},
        {"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3,"End":true}}}]},
      "M":{"Type":"Map","ItemsPath":"$[0].xs","MaxConcurrency":2,
           "ItemProcessor":{"StartAt":"B","States":{"B":{"Type":"Task","Resource":"b",
              "End":true}}},"Next":"C"},
      "C":{"Type":"Choice","Choices":[{"Variable":"$[0]","IsPresent":true,"Next":"Done"}],
           "Default":"Done"},
      "Done":{"Type":"Succeed"}}})");
  ExecutionState live;
  live.machine = m;
  std::vector<Event> all;
  std::deque<TaskRequest> tasks;
  std::vector<TimerRequest> timers;
  int64_t now = kT0;
  uint64_t seed = 1;
  auto step = [&](const Command& c) {
    auto d = Process(&live, c, now, seed++);
    ASSERT_TRUE(d.ok()) << d.status();
    for (auto& t : d->tasks) tasks.push_back(t);
    for (auto& t : d->timers) timers.push_back(t);
    for (auto& e : d->events) all.push_back(e);
    ExecutionState replayed;
    replayed.machine = m;
    for (const auto& e : all) ASSERT_TRUE(Apply(&replayed, e).ok());
    EXPECT_EQ(replayed.Debug().Dump(), live.Debug().Dump());
  };
  step(StartCommand{J(R"({"xs":[1,2,3]})"), {}});
  int failures = 0;
  while (!live.finished()) {
    if (!tasks.empty()) {
      TaskRequest t = tasks.front();
      tasks.pop_front();
      if (!live.open_tasks.count(t.task_id)) continue;
      step(TaskStartedCommand{t.task_id, "w"});
      if (t.resource == "a" && failures++ == 0) {
        step(TaskFailedCommand{t.task_id, std::string("E"), std::string("once")});
      } else {
        step(TaskSucceededCommand{t.task_id, J(R"({"xs":[1,2,3]})")});
      }
    } else {
      ASSERT_FALSE(timers.empty());
      auto it = std::min_element(timers.begin(), timers.end(),
                                 [](auto& a, auto& b) { return a.fire_at_us < b.fire_at_us; });
      TimerRequest t = *it;
      timers.erase(it);
      if (!live.open_timers.count(t.timer_id)) continue;
      now = std::max(now, t.fire_at_us);
      step(TimerFiredCommand{t.timer_id});
    }
  }
  EXPECT_EQ(live.status, ExecutionStatus::kSucceeded);
}

TEST(ReplayTest, RecordEncodingRoundTripsEveryEventOfRichExecutions) {
  ExpectReplayMatches(R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"r",
      "Retry":[{"ErrorEquals":["E"]}],"Catch":[{"ErrorEquals":["States.ALL"],"Next":"F"}],
      "End":true},"F":{"Type":"Fail","Error":"X"}}})",
                      "{}", Mock("T", R"({"0-3":{"Throw":{"Error":"E"}}})"));
}

TEST(ReplayTest, ApplyRejectsAGapInEventIds) {
  ExecutionState st;
  st.machine = Machine(R"({"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}})");
  Event e;
  e.id = 2;
  e.type = EventType::kExecutionStarted;
  EXPECT_EQ(Apply(&st, e).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace saga::engine
