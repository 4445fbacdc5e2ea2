// The saga extension: Compensation on Task states and the Compensate state,
// run offline with mocked compensations ("<Task>.Compensation").
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/asl/definition.h"
#include "coordinator/engine/engine.h"
#include "coordinator/engine/offline_runner.h"

namespace saga::engine {
namespace {

using json::Value;
using testing::ElementsAre;

Value J(std::string_view s) {
  auto v = json::Parse(s);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : Value();
}

OfflineResult RunSaga(std::string_view def, std::string_view input, std::string_view responses,
                      std::string_view test_case) {
  auto m = asl::CompileText(def);
  EXPECT_TRUE(m.ok()) << m.status();
  auto cfg = MockConfig::FromJson(J(responses), "M", test_case);
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  OfflineOptions o;
  o.start_us = 1700000000000000;
  auto r = RunOffline(*m, J(input), &*cfg, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : OfflineResult{};
}

std::vector<std::string> Compensated(const OfflineResult& r, EventType type) {
  std::vector<std::string> out;
  for (const auto& e : r.history) {
    if (e.type == type) out.push_back(e.details.Find("compensatedState")->as_string());
  }
  return out;
}

constexpr char kSaga[] = R"({"StartAt":"Reserve","States":{
  "Reserve":{"Type":"Task","Resource":"inventory.reserve","Next":"Charge",
    "ResultPath":"$.reservation",
    "Compensation":{"Resource":"inventory.release",
                    "Parameters":{"sku.$":"$.Input.sku","reservation.$":"$.Result.id"}}},
  "Charge":{"Type":"Task","Resource":"payments.charge","Next":"Ship","ResultPath":"$.charge",
    "Compensation":{"Resource":"payments.refund",
                    "Retry":[{"ErrorEquals":["Refund.Busy"],"MaxAttempts":2,"IntervalSeconds":3}]}},
  "Ship":{"Type":"Task","Resource":"shipping.ship","End":true,
    "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"Rollback"}]},
  "Rollback":{"Type":"Compensate","ResultPath":"$.rollback","Next":"Failed"},
  "Failed":{"Type":"Fail","Error":"Order.Failed","Cause":"rolled back"}}})";

constexpr char kMocks[] = R"({"StateMachines":{"M":{"TestCases":{
  "ShipFails":{"Reserve":"R","Charge":"C","Ship":"Boom"},
  "RefundRetried":{"Reserve":"R","Charge":"C","Ship":"Boom","Charge.Compensation":"BusyOnce"},
  "RefundFails":{"Reserve":"R","Charge":"C","Ship":"Boom","Charge.Compensation":"AlwaysBusy"}}}},
  "MockedResponses":{
    "R":{"0":{"Return":{"id":"res-1"}}},
    "C":{"0":{"Return":{"charge":"ch-9"}}},
    "Boom":{"0":{"Throw":{"Error":"Ship.Down","Cause":"no trucks"}}},
    "BusyOnce":{"0":{"Throw":{"Error":"Refund.Busy"}},"1":{"Return":{"refunded":true}}},
    "AlwaysBusy":{"0-9":{"Throw":{"Error":"Refund.Busy","Cause":"try later"}}}}})";

TEST(CompensationTest, RollsBackCompletedStepsInReverseOrder) {
  auto r = RunSaga(kSaga, R"({"sku":"B-1"})", kMocks, "ShipFails");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "Order.Failed");
  EXPECT_THAT(Compensated(r, EventType::kCompensationScheduled), ElementsAre("Charge", "Reserve"));
  EXPECT_THAT(Compensated(r, EventType::kCompensationSucceeded), ElementsAre("Charge", "Reserve"));
  EXPECT_THAT(Compensated(r, EventType::kCompensationStarted), ElementsAre("Charge", "Reserve"));
  // Inputs: Parameters over {Input, Result}; without Parameters the object itself.
  for (const auto& e : r.history) {
    if (e.type != EventType::kCompensationScheduled) continue;
    EXPECT_EQ(e.state_name, "Rollback");
    if (e.details.Find("compensatedState")->as_string() == "Reserve") {
      EXPECT_EQ(*e.details.Find("input"), J(R"({"sku":"B-1","reservation":"res-1"})"));
    } else {
      EXPECT_EQ(*e.details.Find("input"), J(R"({"Input":{"sku":"B-1","reservation":{"id":"res-1"}},
                      "Result":{"charge":"ch-9"}})"));
    }
  }
}

TEST(CompensationTest, ResultPathReceivesTheReport) {
  auto m = asl::CompileText(R"({"StartAt":"A","States":{
      "A":{"Type":"Task","Resource":"a","Compensation":{"Resource":"undo.a"},"Next":"Undo"},
      "Undo":{"Type":"Compensate","ResultPath":"$.report","End":true}}})");
  ASSERT_TRUE(m.ok());
  auto r = RunOffline(*m, J(R"({"x":1})"), nullptr, OfflineOptions{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r->output, J(R"({"x":1,"report":[{"state":"A","status":"COMPENSATED"}]})"));
}

TEST(CompensationTest, CompensationRetriesWithItsOwnRetry) {
  auto r = RunSaga(kSaga, R"({"sku":"B-1"})", kMocks, "RefundRetried");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "Order.Failed");
  EXPECT_THAT(Compensated(r, EventType::kCompensationScheduled),
              ElementsAre("Charge", "Charge", "Reserve"));
  int64_t failed_at = 0, rescheduled_at = 0;
  for (const auto& e : r.history) {
    if (e.type == EventType::kCompensationFailed) failed_at = e.timestamp_us;
    if (e.type == EventType::kCompensationScheduled && failed_at) {
      rescheduled_at = e.timestamp_us;
      break;
    }
  }
  EXPECT_EQ(rescheduled_at - failed_at, 3000000);  // IntervalSeconds 3 on the virtual clock
}

TEST(CompensationTest, ExhaustedCompensationFailsTheExecutionListingWhatIsLeft) {
  auto r = RunSaga(kSaga, R"({"sku":"B-1"})", kMocks, "RefundFails");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "Saga.CompensationFailed");
  EXPECT_THAT(*r.cause, testing::HasSubstr("'Charge'"));
  EXPECT_THAT(*r.cause, testing::HasSubstr("Refund.Busy"));
  const Event* last_failed = nullptr;
  for (const auto& e : r.history) {
    if (e.type == EventType::kCompensationFailed) last_failed = &e;
  }
  ASSERT_NE(last_failed, nullptr);
  EXPECT_EQ(*last_failed->details.Find("pendingCompensations"), J(R"(["Charge","Reserve"])"));
  EXPECT_THAT(Compensated(r, EventType::kCompensationSucceeded), testing::IsEmpty());
}

// A compensation whose result is over the payload limit fails with
// States.DataLimitExceeded, as a task's does, naming its resource; the
// result is not recorded.
TEST(CompensationTest, OversizedCompensationResultFailsTheCompensation) {
  const std::string big = "\"" + std::string(262144, 'z') + "\"";
  const std::string mocks = R"({"StateMachines":{"M":{"TestCases":{
    "T":{"Reserve":"R","Charge":"C","Ship":"Boom","Charge.Compensation":"Big"}}}},
    "MockedResponses":{
      "R":{"0":{"Return":{"id":"res-1"}}},
      "C":{"0":{"Return":{"charge":"ch-9"}}},
      "Boom":{"0":{"Throw":{"Error":"Ship.Down","Cause":"no trucks"}}},
      "Big":{"0":{"Return":)" + big + "}}}}";
  auto r = RunSaga(kSaga, R"({"sku":"B-1"})", mocks, "T");
  EXPECT_EQ(r.status, ExecutionStatus::kFailed);
  EXPECT_EQ(r.error, "Saga.CompensationFailed");
  const Event* failed = nullptr;
  for (const auto& e : r.history) {
    if (e.type == EventType::kCompensationFailed) failed = &e;
    EXPECT_FALSE(e.type == EventType::kCompensationSucceeded &&
                 e.details.Find("compensatedState")->as_string() == "Charge");
  }
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->details.Find("error")->as_string(), "States.DataLimitExceeded");
  EXPECT_THAT(failed->details.Find("cause")->as_string(), testing::HasSubstr("'payments.refund'"));
}

TEST(CompensationTest, NothingCompletedCompensatesNothing) {
  auto m = asl::CompileText(R"({"StartAt":"A","States":{
      "A":{"Type":"Task","Resource":"a","Compensation":{"Resource":"undo.a"},
           "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":null,"Next":"Undo"}],"End":true},
      "Undo":{"Type":"Compensate","End":true}}})");
  ASSERT_TRUE(m.ok());
  auto cfg = MockConfig::FromJson(J(R"({"StateMachines":{"M":{"TestCases":{"T":{"A":"F"}}}},
            "MockedResponses":{"F":{"0":{"Throw":{"Error":"X"}}}}})"),
                                  "M", "T");
  auto r = RunOffline(*m, J(R"({"k":1})"), &*cfg, OfflineOptions{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, ExecutionStatus::kSucceeded);
  EXPECT_EQ(r->output, J(R"({"k":1})"));
  EXPECT_THAT(Compensated(*r, EventType::kCompensationScheduled), testing::IsEmpty());
}

TEST(CompensationTest, ParallelBranchesThatSucceededAreRolledBackToo) {
  auto m = asl::CompileText(R"({"StartAt":"P","States":{
      "P":{"Type":"Parallel","Next":"Done","Branches":[
          {"StartAt":"Pay","States":{"Pay":{"Type":"Task","Resource":"pay",
             "Compensation":{"Resource":"refund"},"End":true}}},
          {"StartAt":"Hold","States":{"Hold":{"Type":"Task","Resource":"hold",
             "Compensation":{"Resource":"unhold"},"Next":"Fail2"},
             "Fail2":{"Type":"Fail","Error":"Stock.Out"}}}],
        "Catch":[{"ErrorEquals":["Stock.Out"],"ResultPath":null,"Next":"Undo"}]},
      "Undo":{"Type":"Compensate","Next":"Done"},
      "Done":{"Type":"Succeed"}}})");
  ASSERT_TRUE(m.ok());
  auto r = RunOffline(*m, J("{}"), nullptr, OfflineOptions{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, ExecutionStatus::kSucceeded);
  // Completion order was Pay then Hold; rollback is the reverse.
  EXPECT_THAT(Compensated(*r, EventType::kCompensationSucceeded), ElementsAre("Hold", "Pay"));
}

TEST(CompensationTest, CompensateInsideABranchRollsBackOnlyThatBranch) {
  auto m = asl::CompileText(R"({"StartAt":"Top","States":{
      "Top":{"Type":"Task","Resource":"top","Compensation":{"Resource":"undo.top"},"Next":"P"},
      "P":{"Type":"Parallel","End":true,"Branches":[
          {"StartAt":"B1","States":{
             "B1":{"Type":"Task","Resource":"b1","Compensation":{"Resource":"undo.b1"},
                   "Next":"B1Undo"},
             "B1Undo":{"Type":"Compensate","End":true}}},
          {"StartAt":"B2","States":{"B2":{"Type":"Task","Resource":"b2",
             "Compensation":{"Resource":"undo.b2"},"End":true}}}]}}})");
  ASSERT_TRUE(m.ok());
  auto r = RunOffline(*m, J("{}"), nullptr, OfflineOptions{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, ExecutionStatus::kSucceeded);
  EXPECT_THAT(Compensated(*r, EventType::kCompensationSucceeded), ElementsAre("B1"));
}

TEST(CompensationTest, MapIterationsAreRolledBackInReverseCompletionOrder) {
  auto m = asl::CompileText(R"({"StartAt":"M","States":{
      "M":{"Type":"Map","MaxConcurrency":1,"Next":"Undo","ItemProcessor":{"StartAt":"Item",
          "States":{"Item":{"Type":"Task","Resource":"item",
              "Compensation":{"Resource":"undo.item","Parameters":{"i.$":"$.Input"}},
              "End":true}}}},
      "Undo":{"Type":"Compensate","ResultPath":"$","End":true}}})");
  ASSERT_TRUE(m.ok());
  auto r = RunOffline(*m, J("[1,2,3]"), nullptr, OfflineOptions{});
  ASSERT_TRUE(r.ok());
  std::vector<std::string> inputs;
  for (const auto& e : r->history) {
    if (e.type == EventType::kCompensationScheduled)
      inputs.push_back(e.details.Find("input")->Dump());
  }
  EXPECT_THAT(inputs, ElementsAre(R"({"i":3})", R"({"i":2})", R"({"i":1})"));
}

TEST(CompensationTest, ReplayRebuildsTheStateOfARollback) {
  auto m = asl::CompileText(kSaga);
  ASSERT_TRUE(m.ok());
  auto cfg = MockConfig::FromJson(J(kMocks), "M", "RefundRetried");
  auto r = RunOffline(*m, J(R"({"sku":"B-1"})"), &*cfg, OfflineOptions{});
  ASSERT_TRUE(r.ok());
  ExecutionState st;
  st.machine = *m;
  for (const auto& e : r->history) ASSERT_TRUE(Apply(&st, e).ok()) << EventTypeName(e.type);
  EXPECT_EQ(st.status, ExecutionStatus::kFailed);
  EXPECT_EQ(st.error, "Order.Failed");
}

}  // namespace
}  // namespace saga::engine
