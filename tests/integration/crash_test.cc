// Crashes: kill -9 of a coordinator at many points of an execution, and of
// one of two coordinators sharing a database.
#include <csignal>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/common/json.h"
#include "coordinator/common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using ::testing::IsEmpty;

class Crash : public PgTest {};

// Six tasks with a 1 s Wait after the third.
constexpr char kSixSteps[] = R"({"StartAt":"S1","States":{
  "S1":{"Type":"Task","Resource":"it-step","ResultPath":"$.s1","Next":"S2"},
  "S2":{"Type":"Task","Resource":"it-step","ResultPath":"$.s2","Next":"S3"},
  "S3":{"Type":"Task","Resource":"it-step","ResultPath":"$.s3","Next":"Nap"},
  "Nap":{"Type":"Wait","Seconds":1,"Next":"S4"},
  "S4":{"Type":"Task","Resource":"it-step","ResultPath":"$.s4","Next":"S5"},
  "S5":{"Type":"Task","Resource":"it-step","ResultPath":"$.s5","Next":"S6"},
  "S6":{"Type":"Task","Resource":"it-step","ResultPath":"$.s6","End":true}}})";

std::string StepOutput(const std::string& state) {
  return saga::StrCat(R"({"done":")", state, R"("})");
}

grpc::Status SendSuccess(Stub* stub, const std::string& token, const std::string& output) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  pb::SendTaskSuccessRequest req;
  req.set_task_token(token);
  req.set_output(output);
  pb::SendTaskSuccessResponse resp;
  return stub->SendTaskSuccess(&ctx, req, &resp);
}

TEST_F(Crash, KillNineAtEveryStepLosesAndRepeatsNoTransition) {
  std::unique_ptr<CoordinatorProcess> c = Start({}, "coordinator#0");
  ASSERT_TRUE(c);
  std::unique_ptr<Stub> stub = c->NewStub();
  int restarts = 0;
  auto crash_and_restart = [&] {
    c->Kill9();
    ASSERT_EQ(c->WaitExit(seconds(1)), 128 + SIGKILL);
    c = Start({}, saga::StrCat("coordinator#", ++restarts));
    ASSERT_TRUE(c);
    stub = c->NewStub();
  };
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "six", kSixSteps)));
  std::string arn;
  const std::string input = R"({"order":42})";
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "six", "crashy", input, &arn)));
  // Point 0: right after the start, before any task was taken.
  ASSERT_NO_FATAL_FAILURE(crash_and_restart());
  for (int step = 1; step <= 6; ++step) {
    SCOPED_TRACE(saga::StrCat("step ", step));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
    pb::GetActivityTaskRequest req;
    req.set_activity("it-step");
    req.set_worker_name("crash-worker");
    req.set_wait_seconds(15);
    pb::GetActivityTaskResponse task;
    ASSERT_TRUE(IsOk(stub->GetActivityTask(&ctx, req, &task)));
    ASSERT_FALSE(task.task_token().empty()) << "step " << step << " was not dispatched";
    const std::string state = saga::StrCat("S", step);
    ASSERT_EQ(task.state_name(), state);
    ASSERT_EQ(task.attempt(), 0);
    if (step % 2 == 0) {
      // Taken but not answered when the coordinator dies; answered to the
      // next one (tokens are valid across restarts).
      ASSERT_NO_FATAL_FAILURE(crash_and_restart());
      ASSERT_TRUE(IsOk(SendSuccess(stub.get(), task.task_token(), StepOutput(state))));
    } else {
      // Answered, then the coordinator dies (after S3: with the Wait's
      // timer armed).
      ASSERT_TRUE(IsOk(SendSuccess(stub.get(), task.task_token(), StepOutput(state))));
      ASSERT_NO_FATAL_FAILURE(crash_and_restart());
    }
  }
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(30));
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_EQ(restarts, 7);

  auto alone = RunEngineAlone(kSixSteps, input, R"({"StateMachines":{"M":{"TestCases":{"T":{
      "S1":"S1","S2":"S2","S3":"S3","S4":"S4","S5":"S5","S6":"S6"}}}},"MockedResponses":{
      "S1":{"0":{"Return":{"done":"S1"}}},"S2":{"0":{"Return":{"done":"S2"}}},
      "S3":{"0":{"Return":{"done":"S3"}}},"S4":{"0":{"Return":{"done":"S4"}}},
      "S5":{"0":{"Return":{"done":"S5"}}},"S6":{"0":{"Return":{"done":"S6"}}}}})");
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(ParseJson(e.output()), alone->output);
  auto h = History(stub.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(ConsecutiveIds(*h));
  std::vector<std::string> want_types;
  for (const auto& ev : alone->history) want_types.emplace_back(engine::EventTypeName(ev.type));
  EXPECT_EQ(EventTypes(*h), want_types);
  EXPECT_EQ(Normalize(*h), Normalize(alone->history));
  // The Wait survived a crash and still lasted its second.
  const pb::HistoryEvent* entered = FindEvent(*h, "WaitStateEntered", "Nap");
  const pb::HistoryEvent* exited = FindEvent(*h, "WaitStateExited", "Nap");
  ASSERT_TRUE(entered && exited);
  EXPECT_GE(TimestampMs(exited->timestamp()) - TimestampMs(entered->timestamp()), 1000 - 1);
}

// Two coordinators share a database; workers poll both. One is killed while
// tasks are in flight through it; everything finishes through the other and
// each task completes exactly once.
TEST_F(Crash, KillNineOfOneOfTwoCoordinatorsFinishesEverythingThroughTheOther) {
  constexpr int kExecutions = 20;
  constexpr int kHeldBeforeKill = 8;
  // TimeoutSeconds + Retry: a task whose claim committed on the killed
  // coordinator but whose response never left it is offered again.
  constexpr char kDef[] = R"({"StartAt":"A","States":{
    "A":{"Type":"Task","Resource":"it-a","ResultPath":"$.a","Next":"B","TimeoutSeconds":8,
         "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":3}]},
    "B":{"Type":"Task","Resource":"it-b","ResultPath":"$.b","Next":"C","TimeoutSeconds":8,
         "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":3}]},
    "C":{"Type":"Task","Resource":"it-c","ResultPath":"$.c","End":true,"TimeoutSeconds":8,
         "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":3}]}}})";
  auto a = Start({}, "coordinator A");
  ASSERT_TRUE(a);
  auto b = Start({}, "coordinator B");
  ASSERT_TRUE(b);
  auto stub_a = a->NewStub();
  auto stub_b = b->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_a.get(), "pair", kDef)));

  // B tasks are held until A is dead; then the test answers them (and every
  // C task is dispatched after the kill).
  std::mutex mu;
  bool release = false;
  std::vector<ReceivedTask> held;
  Worker worker(
      {a->address(), b->address()}, {"it-a", "it-b", "it-c"},
      [&](const ReceivedTask& t) {
        if (t.task.state_name() == "B") {
          std::lock_guard<std::mutex> g(mu);
          if (!release) {
            held.push_back(t);
            return Reply::None();
          }
        }
        return Reply::Success(saga::StrCat(R"({"by":")", t.task.state_name(), R"("})"));
      },
      /*threads_per=*/2);

  std::vector<std::string> arns(kExecutions);
  for (int i = 0; i < kExecutions; ++i) {
    Stub* via = i % 2 == 0 ? stub_a.get() : stub_b.get();
    ASSERT_TRUE(IsOk(StartExecution(via, "pair", saga::StrCat("e", i),
                                    saga::StrCat(R"({"i":)", i, "}"), &arns[i])));
  }
  // Midway: several executions wait at B, some of those tasks came through A.
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard<std::mutex> g(mu);
        int from_a = 0;
        for (const auto& t : held) from_a += t.from == 0;
        return held.size() >= kHeldBeforeKill && from_a > 0;
      },
      seconds(30)))
      << "delivered " << worker.delivered();
  a->Kill9();
  std::vector<ReceivedTask> to_answer;
  {
    std::lock_guard<std::mutex> g(mu);
    release = true;
    to_answer = held;
  }
  int finished_at_kill = 0;
  for (const auto& arn : arns) {
    pb::Execution e;
    ASSERT_TRUE(IsOk(Describe(stub_b.get(), arn, &e)));
    finished_at_kill += e.status() != pb::RUNNING;
  }
  EXPECT_LE(finished_at_kill, kExecutions - kHeldBeforeKill);
  // Answers for tasks taken from A go to B (A is gone: UNAVAILABLE first).
  for (const auto& t : to_answer) {
    EXPECT_TRUE(IsOk(worker.Complete(
        t, Reply::Success(saga::StrCat(R"({"by":")", t.task.state_name(), R"("})")))));
  }
  int timed_out = 0;
  for (int i = 0; i < kExecutions; ++i) {
    SCOPED_TRACE(arns[i]);
    pb::Execution e = WaitFinished(stub_b.get(), arns[i], seconds(60));
    ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
    EXPECT_EQ(ParseJson(e.output()),
              ParseJson(saga::StrCat(R"({"i":)", i,
                                     R"(,"a":{"by":"A"},"b":{"by":"B"},"c":{"by":"C"}})")));
    auto h = History(stub_b.get(), arns[i]);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_TRUE(ConsecutiveIds(*h));
    timed_out += CountEvents(*h, "ActivityTimedOut");
    for (const char* s : {"A", "B", "C"}) {
      EXPECT_EQ(CountEvents(*h, "TaskStateEntered", s), 1) << s;
      EXPECT_EQ(CountEvents(*h, "ActivitySucceeded", s), 1) << s;
      EXPECT_EQ(CountEvents(*h, "TaskStateExited", s), 1) << s;
    }
  }
  worker.Stop();
  std::cerr << "finished at the kill: " << finished_at_kill << ", held: " << to_answer.size()
            << ", tasks offered again after a lost delivery: " << timed_out
            << ", ambiguous completions: " << worker.Ambiguous().size() << "\n";
  // No attempt was delivered twice.
  int delivered = 0;
  for (const auto& [key, n] : worker.Deliveries()) {
    EXPECT_EQ(n, 1) << key;
    delivered += n;
  }
  EXPECT_GE(delivered, 3 * kExecutions);
  // Each task completed exactly once: acknowledged, or refused after an
  // UNAVAILABLE try whose first send was applied.
  std::map<std::string, int> completions;  // "ARN|STATE"
  auto strip_attempt = [](const std::string& key) { return key.substr(0, key.rfind('|')); };
  for (const auto& [key, n] : worker.AckedOk()) completions[strip_attempt(key)] += n;
  for (const auto& [key, n] : worker.Ambiguous()) completions[strip_attempt(key)] += n;
  EXPECT_EQ(completions.size(), static_cast<size_t>(3 * kExecutions));
  for (const auto& [key, n] : completions) EXPECT_EQ(n, 1) << key;
  EXPECT_THAT(worker.Errors(), IsEmpty());
}

}  // namespace
}  // namespace saga::itest
