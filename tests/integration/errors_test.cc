// Retry and Catch with real timers, task timeouts and heartbeats.
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using ::testing::IsEmpty;

class RetryAndCatch : public PgTest {};

// Tasks a worker took and did not answer, for the test to use later.
class Held {
 public:
  void Add(const ReceivedTask& t) {
    std::lock_guard<std::mutex> g(mu_);
    tasks_.push_back(t);
  }
  std::vector<ReceivedTask> Get() const {
    std::lock_guard<std::mutex> g(mu_);
    return tasks_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return tasks_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<ReceivedTask> tasks_;
};

grpc::Status SendSuccess(Stub* stub, const std::string& token, const std::string& output) {
  grpc::ClientContext ctx;
  pb::SendTaskSuccessRequest req;
  req.set_task_token(token);
  req.set_output(output);
  pb::SendTaskSuccessResponse resp;
  return stub->SendTaskSuccess(&ctx, req, &resp);
}

grpc::Status SendHeartbeat(Stub* stub, const std::string& token) {
  grpc::ClientContext ctx;
  pb::SendTaskHeartbeatRequest req;
  req.set_task_token(token);
  pb::SendTaskHeartbeatResponse resp;
  return stub->SendTaskHeartbeat(&ctx, req, &resp);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

TEST_F(RetryAndCatch, TaskFailingTwiceIsRetriedWithBackoffAndTakesAtLeastThreeSeconds) {
  constexpr char kDef[] = R"({"StartAt":"Flaky","States":{"Flaky":{"Type":"Task",
    "Resource":"it-flaky","Retry":[{"ErrorEquals":["Flaky.Error"],"IntervalSeconds":1,
    "BackoffRate":2,"MaxAttempts":3}],"End":true}}})";
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "flaky", kDef)));
  Worker worker({c->address()}, {"it-flaky"}, [](const ReceivedTask& t) {
    if (t.task.attempt() < 2) return Reply::Failure("Flaky.Error", "try again");
    return Reply::Success(R"({"finally":true})");
  });
  std::string arn;
  const auto t0 = Clock::now();
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "flaky", "", "{}", &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(30));
  const double elapsed = Seconds(Clock::now() - t0);
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"finally":true})"));
  // Intervals 1 s then 2 s (BackoffRate 2).
  EXPECT_GE(elapsed, 3.0);
  EXPECT_LT(elapsed, 8.0);
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_EQ(CountEvents(*h, "ActivityFailed"), 2);
  ASSERT_EQ(CountEvents(*h, "ActivityScheduled"), 3);
  const int64_t fail0 = TimestampMs(FindEvent(*h, "ActivityFailed", "", 0)->timestamp());
  const int64_t fail1 = TimestampMs(FindEvent(*h, "ActivityFailed", "", 1)->timestamp());
  const int64_t sched1 = TimestampMs(FindEvent(*h, "ActivityScheduled", "", 1)->timestamp());
  const int64_t sched2 = TimestampMs(FindEvent(*h, "ActivityScheduled", "", 2)->timestamp());
  EXPECT_GE(sched1 - fail0, 1000 - 1) << "first retry interval";
  EXPECT_GE(sched2 - fail1, 2000 - 1) << "second retry interval (BackoffRate 2)";
  // Each attempt was delivered exactly once, with its number.
  std::map<std::string, int> want = {
      {arn + "|Flaky|0", 1}, {arn + "|Flaky|1", 1}, {arn + "|Flaky|2", 1}};
  EXPECT_EQ(worker.Deliveries(), want);
  auto alone = RunEngineAlone(kDef, "{}", R"({"StateMachines":{"M":{"TestCases":{"T":{
      "Flaky":"R"}}}},"MockedResponses":{"R":{
      "0-1":{"Throw":{"Error":"Flaky.Error","Cause":"try again"}},
      "2":{"Return":{"finally":true}}}}})");
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(Normalize(*h), Normalize(alone->history));
  EXPECT_TRUE(ConsecutiveIds(*h));
  worker.Stop();
  EXPECT_THAT(worker.Errors(), IsEmpty());
}

TEST_F(RetryAndCatch, CaughtFailureTakesTheCatchPathWithErrorAndCause) {
  constexpr char kDef[] = R"({"StartAt":"Charge","States":{
    "Charge":{"Type":"Task","Resource":"it-charge","Next":"Charged",
      "Retry":[{"ErrorEquals":["Network"],"MaxAttempts":3}],
      "Catch":[{"ErrorEquals":["Card.Declined"],"ResultPath":"$.error","Next":"Refund"}]},
    "Charged":{"Type":"Succeed"},
    "Refund":{"Type":"Task","Resource":"it-refund","ResultPath":"$.refund","End":true}}})";
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "charge", kDef)));
  Worker worker({c->address()}, {"it-charge", "it-refund"}, [](const ReceivedTask& t) {
    if (t.task.state_name() == "Charge")
      return Reply::Failure("Card.Declined", "insufficient funds");
    return Reply::Success(R"({"refunded":true})");
  });
  const std::string input = R"({"order":7})";
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "charge", "o7", input, &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_EQ(ParseJson(e.output()),
            ParseJson(R"({"order":7,"error":{"Error":"Card.Declined","Cause":"insufficient funds"},
                          "refund":{"refunded":true}})"));
  auto alone = RunEngineAlone(kDef, input, R"({"StateMachines":{"M":{"TestCases":{"T":{
      "Charge":"C","Refund":"R"}}}},"MockedResponses":{
      "C":{"0":{"Throw":{"Error":"Card.Declined","Cause":"insufficient funds"}}},
      "R":{"0":{"Return":{"refunded":true}}}}})");
  ASSERT_TRUE(alone.ok()) << alone.status();
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(Normalize(*h), Normalize(alone->history));
  EXPECT_EQ(CountEvents(*h, "ActivityScheduled", "Charge"), 1) << "Card.Declined is not retried";
  worker.Stop();
  EXPECT_THAT(worker.Errors(), IsEmpty());
}

TEST_F(RetryAndCatch, TaskTimeoutExpiresAsStatesTimeoutAndIsCaught) {
  constexpr char kDef[] = R"({"StartAt":"Slow","States":{
    "Slow":{"Type":"Task","Resource":"it-slow","TimeoutSeconds":1,"End":true,
      "Catch":[{"ErrorEquals":["States.Timeout"],"ResultPath":"$.timeout","Next":"GaveUp"}]},
    "GaveUp":{"Type":"Pass","End":true}}})";
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "slow", kDef)));
  Held held;
  Worker worker({c->address()}, {"it-slow"}, [&](const ReceivedTask& t) {
    held.Add(t);
    return Reply::None();
  });
  std::string arn;
  const auto t0 = Clock::now();
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "slow", "s1", R"({"k":1})", &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(30));
  const double elapsed = Seconds(Clock::now() - t0);
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  json::Value out = ParseJson(e.output());
  const json::Value* timeout = out.Find("timeout");
  ASSERT_NE(timeout, nullptr) << e.output();
  ASSERT_NE(timeout->Find("Error"), nullptr) << e.output();
  EXPECT_EQ(timeout->Find("Error")->as_string(), "States.Timeout");
  EXPECT_GE(elapsed, 1.0);
  EXPECT_LT(elapsed, 5.0);
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(CountEvents(*h, "ActivityTimedOut", "Slow"), 1);
  EXPECT_EQ(CountEvents(*h, "PassStateEntered", "GaveUp"), 1);
  EXPECT_TRUE(ConsecutiveIds(*h));

  // The worker that held the task answers late: refused, nothing changes.
  ASSERT_EQ(held.size(), 1u);
  EXPECT_TRUE(HasCode(SendSuccess(stub.get(), held.Get()[0].task.task_token(), "{}"),
                      grpc::FAILED_PRECONDITION, "task_token"));
  auto after = History(stub.get(), arn);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), h->size());
  worker.Stop();
}

TEST_F(RetryAndCatch, MissedHeartbeatRetriesTheTaskAndTheLateFirstAttemptIsRefused) {
  constexpr char kDef[] = R"({"StartAt":"Beat","States":{
    "Beat":{"Type":"Task","Resource":"it-beat","HeartbeatSeconds":1,"TimeoutSeconds":60,
      "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":2}],
      "End":true}}})";
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "beat", kDef)));
  Held held;
  Worker worker({c->address()}, {"it-beat"}, [&](const ReceivedTask& t) {
    if (t.task.attempt() == 0) {
      EXPECT_EQ(t.task.heartbeat_seconds(), 1);
      EXPECT_EQ(t.task.timeout_seconds(), 60);
      held.Add(t);  // holds it and never heartbeats
      return Reply::None();
    }
    return Reply::Success(R"({"attempt":1})");
  });
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "beat", "b1", "{}", &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"attempt":1})"));
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(CountEvents(*h, "ActivityTimedOut", "Beat"), 1);
  EXPECT_EQ(CountEvents(*h, "StateRetryScheduled", "Beat"), 1);
  EXPECT_EQ(CountEvents(*h, "ActivitySucceeded", "Beat"), 1);
  // The heartbeat deadline, not TimeoutSeconds (60 s), ended the first attempt.
  const int64_t started = TimestampMs(FindEvent(*h, "ActivityStarted")->timestamp());
  const int64_t timed_out = TimestampMs(FindEvent(*h, "ActivityTimedOut")->timestamp());
  EXPECT_GE(timed_out - started, 1000 - 1);
  EXPECT_LT(timed_out - started, 5000);

  ASSERT_EQ(held.size(), 1u);
  const std::string late = held.Get()[0].task.task_token();
  EXPECT_TRUE(HasCode(SendSuccess(stub.get(), late, R"({"attempt":0})"), grpc::FAILED_PRECONDITION,
                      "task_token"));
  EXPECT_TRUE(HasCode(SendHeartbeat(stub.get(), late), grpc::FAILED_PRECONDITION, "task_token"));
  pb::Execution still;
  ASSERT_TRUE(IsOk(Describe(stub.get(), arn, &still)));
  EXPECT_EQ(ParseJson(still.output()), ParseJson(R"({"attempt":1})"));
  auto after = History(stub.get(), arn);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), h->size());
  worker.Stop();
  EXPECT_THAT(worker.Errors(), IsEmpty());
}

TEST_F(RetryAndCatch, HeartbeatsKeepATaskAlivePastHeartbeatSeconds) {
  constexpr char kDef[] = R"({"StartAt":"Long","States":{
    "Long":{"Type":"Task","Resource":"it-long","HeartbeatSeconds":1,"End":true}}})";
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "long", kDef)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "long", "l1", "{}", &arn)));
  grpc::ClientContext ctx;
  pb::GetActivityTaskRequest req;
  req.set_activity("it-long");
  req.set_wait_seconds(10);
  pb::GetActivityTaskResponse task;
  ASSERT_TRUE(IsOk(stub->GetActivityTask(&ctx, req, &task)));
  ASSERT_FALSE(task.task_token().empty());
  // The worker's heartbeat cadence: every 300 ms for 2.5 s (2.5 heartbeat
  // periods), then it answers.
  const auto until = Clock::now() + milliseconds(2500);
  while (Clock::now() < until) {
    ASSERT_TRUE(IsOk(SendHeartbeat(stub.get(), task.task_token())));
    std::this_thread::sleep_for(milliseconds(300));
  }
  ASSERT_TRUE(IsOk(SendSuccess(stub.get(), task.task_token(), R"("done")")));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(10));
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_EQ(e.output(), R"("done")");
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ActivityTimedOut"), 0);
  EXPECT_EQ(CountEvents(*h, "ActivityScheduled"), 1);
}

}  // namespace
}  // namespace saga::itest

namespace saga::itest {
namespace {

TEST_F(RetryAndCatch, ExecutionTimeoutSecondsEndsARunningExecutionAsTimedOut) {
  constexpr char kDef[] = R"({"TimeoutSeconds":1,"StartAt":"Stuck","States":{
    "Stuck":{"Type":"Task","Resource":"it-stuck","End":true}}})";
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "stuck", kDef)));
  Held held;
  Worker worker({c->address()}, {"it-stuck"}, [&](const ReceivedTask& t) {
    held.Add(t);
    return Reply::None();
  });
  std::string arn;
  const auto t0 = Clock::now();
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "stuck", "late", "{}", &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(20));
  const double elapsed = Seconds(Clock::now() - t0);
  ASSERT_EQ(e.status(), pb::TIMED_OUT) << e.DebugString();
  EXPECT_EQ(e.error(), "States.Timeout");
  EXPECT_FALSE(e.stop_date().empty());
  EXPECT_GE(elapsed, 1.0);
  EXPECT_LT(elapsed, 5.0);
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(CountEvents(*h, "ExecutionTimedOut"), 1);
  EXPECT_EQ(h->back().type(), "ExecutionTimedOut");
  EXPECT_TRUE(ConsecutiveIds(*h));
  // The task it was waiting for is gone.
  ASSERT_EQ(held.size(), 1u);
  EXPECT_TRUE(HasCode(SendSuccess(stub.get(), held.Get()[0].task.task_token(), "{}"),
                      grpc::FAILED_PRECONDITION, "task_token"));
  worker.Stop();
  SqlResult rows =
      RunSql(dsn(), "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM timers)");
  ASSERT_TRUE(rows.ok) << rows.error;
  EXPECT_EQ(rows.rows[0][0], "0") << "task or timer rows left behind";
}

}  // namespace
}  // namespace saga::itest
