// Every state type end to end through activity workers, compared with the
// engine alone (RunOffline with mocks that answer as the workers do).
#include <string>
#include <vector>

#include "coordinator/common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

class StateTypes : public PgTest {};

// Pass -> Task -> Choice -> Wait 1 s -> Parallel (two task branches) -> Map
// (3 items, one task each, MaxConcurrency 2) -> Succeed; the Choice goes to
// Fail when the task says not ok.
constexpr char kDefinition[] = R"({
  "Comment": "every state type",
  "StartAt": "Prepare",
  "States": {
    "Prepare": {"Type": "Pass", "Result": {"n": 1}, "ResultPath": "$.pass", "Next": "Check"},
    "Check": {"Type": "Task", "Resource": "it-check", "ResultPath": "$.check", "Next": "Route"},
    "Route": {"Type": "Choice",
              "Choices": [{"Variable": "$.check.ok", "BooleanEquals": true, "Next": "Pause"}],
              "Default": "Reject"},
    "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Both"},
    "Both": {"Type": "Parallel", "ResultPath": "$.both", "Next": "Each",
             "Branches": [
               {"StartAt": "Left", "States": {"Left": {"Type": "Task", "Resource": "it-left", "End": true}}},
               {"StartAt": "Right", "States": {"Right": {"Type": "Task", "Resource": "it-right",
                                                         "ResultSelector": {"r.$": "$.value"}, "End": true}}}]},
    "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.each",
             "ItemProcessor": {"StartAt": "Item", "States": {
               "Item": {"Type": "Task", "Resource": "it-item", "End": true}}},
             "Next": "Done"},
    "Done": {"Type": "Succeed"},
    "Reject": {"Type": "Fail", "Error": "Rejected", "Cause": "the check said no"}
  }
})";

// The workers' answers, also as mocks for the engine alone. Map items are not
// mocked: the worker echoes its input, as an unmocked Task does offline.
Reply Answer(const ReceivedTask& t) {
  const std::string& state = t.task.state_name();
  if (state == "Check") {
    json::Value in = ParseJson(t.task.input());
    const json::Value* ok = in.Find("want_ok");
    return Reply::Success(ok != nullptr && ok->is_bool() && ok->as_bool() ? R"({"ok":true})"
                                                                          : R"({"ok":false})");
  }
  if (state == "Left") return Reply::Success(R"("left done")");
  if (state == "Right") return Reply::Success(R"({"value":42,"noise":"dropped"})");
  return Reply::Success(t.task.input());
}

std::string Mocks(bool ok) {
  return std::string(R"({"StateMachines":{"M":{"TestCases":{"T":{
      "Check":"CheckR","Left":"LeftR","Right":"RightR"}}}},
    "MockedResponses":{
      "CheckR":{"0":{"Return":{"ok":)") +
         (ok ? "true" : "false") + R"(}}},
      "LeftR":{"0":{"Return":"left done"}},
      "RightR":{"0":{"Return":{"value":42,"noise":"dropped"}}}}})";
}

// Largest number of Map iterations running at once, from the history.
int MaxRunningIterations(const std::vector<pb::HistoryEvent>& h) {
  int running = 0, most = 0;
  for (const auto& e : h) {
    if (e.type() == "MapIterationStarted") most = std::max(most, ++running);
    if (e.type() == "MapIterationSucceeded" || e.type() == "MapIterationFailed") --running;
  }
  return most;
}

TEST_F(StateTypes, EveryStateTypeThroughWorkersMatchesTheEngineAlone) {
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "every-state", kDefinition)));

  Worker worker({c->address()}, {"it-check", "it-left", "it-right", "it-item"}, Answer,
                /*threads_per=*/2);

  struct Case {
    std::string name, input;
    bool ok;
    std::string arn;
  };
  std::vector<Case> cases = {
      {"succeeds", R"({"items":[1,{"x":2},"three"],"want_ok":true})", true, ""},
      {"fails", R"({"items":[1,2,3],"want_ok":false})", false, ""},
  };
  for (auto& k : cases) {
    ASSERT_TRUE(IsOk(StartExecution(stub.get(), "every-state", k.name, k.input, &k.arn)));
  }
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    pb::Execution e = WaitFinished(stub.get(), k.arn, seconds(30));
    auto alone = RunEngineAlone(kDefinition, k.input, Mocks(k.ok));
    ASSERT_TRUE(alone.ok()) << alone.status();
    auto h = History(stub.get(), k.arn);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_TRUE(ConsecutiveIds(*h));
    if (k.ok) {
      ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
      EXPECT_EQ(ParseJson(e.output()), alone->output)
          << "durable: " << e.output() << "\nalone: " << alone->output.Dump();
      // The definition did exercise every state type.
      for (const char* t :
           {"PassStateEntered", "TaskStateEntered", "ChoiceStateEntered", "WaitStateEntered",
            "ParallelStateEntered", "MapStateEntered", "SucceedStateEntered"}) {
        EXPECT_GE(CountEvents(*h, t), 1) << t;
      }
      EXPECT_EQ(CountEvents(*h, "ActivitySucceeded", "Item"), 3);
      EXPECT_EQ(MaxRunningIterations(*h), 2) << "MaxConcurrency 2 not honoured (or not reached)";
    } else {
      ASSERT_EQ(e.status(), pb::FAILED) << e.DebugString();
      EXPECT_EQ(e.error(), "Rejected");
      EXPECT_EQ(e.cause(), "the check said no");
      EXPECT_EQ(alone->error.value_or(""), "Rejected");
      EXPECT_EQ(CountEvents(*h, "FailStateEntered", "Reject"), 1);
      EXPECT_EQ(CountEvents(*h, "WaitStateEntered"), 0);
    }
    EXPECT_EQ(CompareHistories(Normalize(*h), Normalize(alone->history)), "");
  }
  worker.Stop();
  EXPECT_THAT(worker.Errors(), ::testing::IsEmpty());
}

// The history's exact order where it is defined: a sequence of Tasks, Pass
// and Choice states is compared event by event, not as a multiset.
TEST_F(StateTypes, SequentialHistoryMatchesTheEngineAloneInExactOrder) {
  constexpr char kSeq[] = R"j({"StartAt":"A","States":{
    "A":{"Type":"Task","Resource":"it-seq","ResultPath":"$.a","Next":"B"},
    "B":{"Type":"Pass","Parameters":{"sum.$":"States.MathAdd($.a.v, 1)"},"Next":"C"},
    "C":{"Type":"Choice","Choices":[{"Variable":"$.sum","NumericGreaterThan":5,"Next":"Big"}],
         "Default":"D"},
    "D":{"Type":"Task","Resource":"it-seq","End":true},
    "Big":{"Type":"Succeed"}}})j";
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "seq", kSeq)));
  Worker worker({c->address()}, {"it-seq"}, [](const ReceivedTask& t) {
    return Reply::Success(t.task.state_name() == "A" ? R"({"v":2})" : R"({"final":true})");
  });
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "seq", "one", "{}", &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"final":true})"));
  auto alone = RunEngineAlone(kSeq, "{}", R"({"StateMachines":{"M":{"TestCases":{"T":{
      "A":"AR","D":"DR"}}}},"MockedResponses":{"AR":{"0":{"Return":{"v":2}}},
      "DR":{"0":{"Return":{"final":true}}}}})");
  ASSERT_TRUE(alone.ok()) << alone.status();
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(ConsecutiveIds(*h));
  EXPECT_EQ(Normalize(*h), Normalize(alone->history));
}

}  // namespace
}  // namespace saga::itest
