// The API's contract: idempotent starts, task tokens, limits and bad
// requests, paging, revisions.
#include <algorithm>
#include <set>
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

// Waits at a task nobody serves unless the test does.
constexpr char kHold[] = R"({"StartAt":"Hold","States":{
  "Hold":{"Type":"Task","Resource":"it-hold","End":true}}})";

class Api : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    c_ = Start();
    ASSERT_TRUE(c_);
    stub_ = c_->NewStub();
  }

  // Takes one task of `activity` (waits up to 10 s).
  pb::GetActivityTaskResponse TakeTask(const std::string& activity) {
    grpc::ClientContext ctx;
    pb::GetActivityTaskRequest req;
    req.set_activity(activity);
    req.set_worker_name("api-test");
    req.set_wait_seconds(10);
    pb::GetActivityTaskResponse resp;
    EXPECT_TRUE(IsOk(stub_->GetActivityTask(&ctx, req, &resp)));
    EXPECT_FALSE(resp.task_token().empty()) << "no task of " << activity;
    return resp;
  }
  grpc::Status Success(const std::string& token, const std::string& output) {
    grpc::ClientContext ctx;
    pb::SendTaskSuccessRequest req;
    req.set_task_token(token);
    req.set_output(output);
    pb::SendTaskSuccessResponse resp;
    return stub_->SendTaskSuccess(&ctx, req, &resp);
  }
  grpc::Status Failure(const std::string& token) {
    grpc::ClientContext ctx;
    pb::SendTaskFailureRequest req;
    req.set_task_token(token);
    req.set_error("E");
    pb::SendTaskFailureResponse resp;
    return stub_->SendTaskFailure(&ctx, req, &resp);
  }
  grpc::Status Heartbeat(const std::string& token) {
    grpc::ClientContext ctx;
    pb::SendTaskHeartbeatRequest req;
    req.set_task_token(token);
    pb::SendTaskHeartbeatResponse resp;
    return stub_->SendTaskHeartbeat(&ctx, req, &resp);
  }
  grpc::Status Stop(const std::string& arn) {
    grpc::ClientContext ctx;
    pb::StopExecutionRequest req;
    req.set_execution_arn(arn);
    pb::StopExecutionResponse resp;
    return stub_->StopExecution(&ctx, req, &resp);
  }
  grpc::Status ListExecutions(const std::string& sm, pb::ExecutionStatus status, int max,
                              const std::string& token, pb::ListExecutionsResponse* out) {
    grpc::ClientContext ctx;
    pb::ListExecutionsRequest req;
    req.set_state_machine(sm);
    req.set_status_filter(status);
    req.set_max_results(max);
    req.set_next_token(token);
    return stub_->ListExecutions(&ctx, req, out);
  }
  std::vector<std::string> AllExecutionNames(const std::string& sm, pb::ExecutionStatus status,
                                             int page) {
    std::vector<std::string> names;
    std::string token;
    for (int i = 0; i < 100; ++i) {
      pb::ListExecutionsResponse resp;
      EXPECT_TRUE(IsOk(ListExecutions(sm, status, page, token, &resp)));
      EXPECT_LE(resp.executions_size(), page);
      for (const auto& e : resp.executions()) {
        if (status != pb::EXECUTION_STATUS_UNSPECIFIED) {
          EXPECT_EQ(e.status(), status) << e.name();
        }
        names.push_back(e.name());
      }
      token = resp.next_token();
      if (token.empty()) break;
    }
    return names;
  }

  std::unique_ptr<CoordinatorProcess> c_;
  std::unique_ptr<Stub> stub_;
};

// --- idempotent start ------------------------------------------------------------

TEST_F(Api, StartIsIdempotentByNameWhileRunningAndAlreadyExistsOtherwise) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  std::string arn1, arn2, arn3;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "order-1", R"({"a":1,"b":[1,2]})", &arn1)));
  EXPECT_EQ(arn1, "arn:saga:states:::execution:hold:order-1");
  // The same name and input while it runs: the same execution.
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "order-1", R"({"a":1,"b":[1,2]})", &arn2)));
  EXPECT_EQ(arn2, arn1);
  // By ARN of the state machine too.
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "arn:saga:states:::stateMachine:hold", "order-1",
                                  R"({"a":1,"b":[1,2]})", &arn3)));
  EXPECT_EQ(arn3, arn1);
  // A different input: ALREADY_EXISTS.
  EXPECT_TRUE(
      HasCode(StartExecution(stub_.get(), "hold", "order-1", R"({"a":2,"b":[1,2]})", nullptr),
              grpc::ALREADY_EXISTS, "name"));
  EXPECT_EQ(AllExecutionNames("hold", pb::EXECUTION_STATUS_UNSPECIFIED, 100),
            std::vector<std::string>{"order-1"});
  // Only one task was scheduled.
  auto h = History(stub_.get(), arn1);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ExecutionStarted"), 1);
  EXPECT_EQ(CountEvents(*h, "ActivityScheduled"), 1);

  // Finished: the same name is taken for good, whatever the input.
  pb::GetActivityTaskResponse t = TakeTask("it-hold");
  ASSERT_TRUE(IsOk(Success(t.task_token(), R"({"ok":1})")));
  ASSERT_EQ(WaitFinished(stub_.get(), arn1, seconds(10)).status(), pb::SUCCEEDED);
  EXPECT_TRUE(
      HasCode(StartExecution(stub_.get(), "hold", "order-1", R"({"a":1,"b":[1,2]})", nullptr),
              grpc::ALREADY_EXISTS, "name"));
  EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "hold", "order-1", "{}", nullptr),
                      grpc::ALREADY_EXISTS, "name"));
  // An aborted one too.
  std::string arn4;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "order-2", "{}", &arn4)));
  ASSERT_TRUE(IsOk(Stop(arn4)));
  pb::Execution e;
  ASSERT_TRUE(IsOk(Describe(stub_.get(), arn4, &e)));
  EXPECT_EQ(e.status(), pb::ABORTED);
  EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "hold", "order-2", "{}", nullptr),
                      grpc::ALREADY_EXISTS, "name"));
}

// An input and a final output written as the history holds them are kept
// once, in the history (the executions row holds NULL); one sent with other
// spacing stays in the row. Either way DescribeExecution gives them back
// exactly as sent and returned, and an idempotent start compares with them.
TEST_F(Api, DescribeGivesInputAndOutputBackExactlyWhereverTheyAreKept) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  struct Case {
    std::string name, input, output;
    bool input_in_row;
  };
  // The history writes JSON as json::Value::Dump does: no spaces, numbers
  // as read, strings with only the escapes JSON needs.
  const std::vector<Case> cases = {
      {"compact", R"({"a":1,"s":"x \"q\"","n":[1.5,2]})", R"({"ok":true})", false},
      {"scalar", "7", R"("done")", false},
      {"spaced", "{ \"a\": 1,\n  \"b\": [1, 2] }", "[ 1, 2 ]", true},
      {"escaped", R"({"s":"caf\u00e9","n":[1.50,2e3]})", R"({"s":"caf\u00e9"})", true},
  };
  auto sql = [&](const std::string& q) {
    SqlResult r = RunSql(dsn(), q);
    EXPECT_TRUE(r.ok) << r.error;
    return r.ok && !r.rows.empty() ? r.rows[0][0] : std::string("?");
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string arn;
    ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", c.name, c.input, &arn)));
    EXPECT_EQ(sql("SELECT input IS NOT NULL FROM executions WHERE name = '" + c.name + "'"),
              c.input_in_row ? "t" : "f");
    pb::Execution e;
    ASSERT_TRUE(IsOk(Describe(stub_.get(), arn, &e)));
    EXPECT_EQ(e.input(), c.input);
    EXPECT_EQ(e.output(), "");
    // Idempotent start: the same input (as JSON) is the same execution.
    std::string again;
    ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", c.name, c.input, &again)));
    EXPECT_EQ(again, arn);
    EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "hold", c.name, R"({"other":1})", nullptr),
                        grpc::ALREADY_EXISTS, "name"));

    pb::GetActivityTaskResponse t = TakeTask("it-hold");
    EXPECT_EQ(t.input(), json::Parse(c.input)->Dump());
    ASSERT_TRUE(IsOk(Success(t.task_token(), c.output)));
    ASSERT_EQ(WaitFinished(stub_.get(), arn, seconds(10)).status(), pb::SUCCEEDED);
    // The output the row would hold is the one the history holds: never in
    // the row.
    EXPECT_EQ(sql("SELECT (input IS NOT NULL)::text || (output IS NOT NULL)::text FROM executions "
                  "WHERE name = '" + c.name + "'"),
              std::string(c.input_in_row ? "true" : "false") + "false");
    ASSERT_TRUE(IsOk(Describe(stub_.get(), arn, &e)));
    EXPECT_EQ(e.input(), c.input);
    // The output is the task's result as the execution's output: JSON text
    // as the coordinator writes it (Step Functions re-serialises it too).
    EXPECT_EQ(e.output(), json::Parse(c.output)->Dump());
    EXPECT_EQ(e.status(), pb::SUCCEEDED);
  }
  // A failed execution: no output, the error and cause in the row.
  std::string failed;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "failed", R"({"f":1})", &failed)));
  ASSERT_TRUE(IsOk(Failure(TakeTask("it-hold").task_token())));
  ASSERT_EQ(WaitFinished(stub_.get(), failed, seconds(10)).status(), pb::FAILED);
  pb::Execution e;
  ASSERT_TRUE(IsOk(Describe(stub_.get(), failed, &e)));
  EXPECT_EQ(e.input(), R"({"f":1})");
  EXPECT_EQ(e.output(), "");
  EXPECT_EQ(e.error(), "E");
  // A history that lost the start event: DATA_LOSS naming what is missing,
  // not an empty input.
  ASSERT_EQ(sql("WITH d AS (DELETE FROM history h USING executions x WHERE x.execution_id = "
                "h.execution_id AND x.name = 'compact' AND h.first_event_id = 1 RETURNING 1) "
                "SELECT count(*) FROM d"),
            "1");
  grpc::Status lost = Describe(stub_.get(), "arn:saga:states:::execution:hold:compact", &e);
  EXPECT_TRUE(HasCode(lost, grpc::DATA_LOSS, "input")) << lost.error_message();
}

// ExecutionStarted is stored without the details the executions row implies
// (the execution's ARN and name, the state machine's ARN and name, the
// role); GetExecutionHistory gives them back in place, and a coordinator
// that rebuilds the execution from its history (after kill -9) sees the
// same Context object as the one that started it.
TEST_F(Api, StartedEventsAreStoredLeanAndReadBackWhole) {
  c_->Kill9();
  CoordinatorOptions text_history;
  text_history.extra_args = {"--history-compression-from", "0"};
  c_ = Start(text_history);
  ASSERT_TRUE(c_);
  stub_ = c_->NewStub();
  constexpr char kContext[] = R"({"StartAt":"Before","States":{
    "Before":{"Type":"Pass","Parameters":{"id.$":"$$.Execution.Id","name.$":"$$.Execution.Name",
      "role.$":"$$.Execution.RoleArn","sm.$":"$$.StateMachine.Id","smName.$":"$$.StateMachine.Name",
      "start.$":"$$.Execution.StartTime","input.$":"$$.Execution.Input"},"ResultPath":"$.before",
      "Next":"Hold"},
    "Hold":{"Type":"Task","Resource":"it-hold","ResultPath":null,"Next":"After"},
    "After":{"Type":"Pass","Parameters":{"id.$":"$$.Execution.Id","name.$":"$$.Execution.Name",
      "role.$":"$$.Execution.RoleArn","sm.$":"$$.StateMachine.Id","smName.$":"$$.StateMachine.Name",
      "start.$":"$$.Execution.StartTime","input.$":"$$.Execution.Input"},"ResultPath":"$.after",
      "End":true}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "ctx", kContext)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "ctx", "ctx-1", R"({"k":"v"})", &arn)));
  // Stored lean: the first history row holds the input, not the ARNs.
  SqlResult first = RunSql(dsn(), "SELECT events FROM history WHERE first_event_id = 1");
  ASSERT_TRUE(first.ok) << first.error;
  ASSERT_EQ(first.rows.size(), 1u);
  EXPECT_THAT(first.rows[0][0],
              ::testing::HasSubstr(R"(,0,"ExecutionStarted",null,{"input":{"k":"v"}}],)"));
  // Read back whole, in the engine's order.
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok()) << h.status();
  const pb::HistoryEvent* started = FindEvent(*h, "ExecutionStarted");
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->details(),
            R"({"input":{"k":"v"},"roleArn":"arn:saga:iam:::role/saga-coordinator",)"
            R"("executionArn":"arn:saga:states:::execution:ctx:ctx-1","name":"ctx-1",)"
            R"("stateMachineArn":"arn:saga:states:::stateMachine:ctx","stateMachineName":"ctx"})");
  // A coordinator that never saw the execution rebuilds it from the history.
  pb::GetActivityTaskResponse t = TakeTask("it-hold");
  c_->Kill9();
  c_ = Start(text_history);
  ASSERT_TRUE(c_);
  stub_ = c_->NewStub();
  ASSERT_TRUE(IsOk(Success(t.task_token(), "{}")));
  ASSERT_EQ(WaitFinished(stub_.get(), arn, seconds(10)).status(), pb::SUCCEEDED);
  pb::Execution e;
  ASSERT_TRUE(IsOk(Describe(stub_.get(), arn, &e)));
  json::Value out = ParseJson(e.output());
  ASSERT_TRUE(out.is_object()) << e.output();
  const json::Value* before = out.Find("before");
  const json::Value* after = out.Find("after");
  ASSERT_NE(before, nullptr);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(*before, *after) << e.output();
  EXPECT_EQ(before->Find("id")->as_string(), arn);
  EXPECT_EQ(before->Find("name")->as_string(), "ctx-1");
  EXPECT_EQ(before->Find("sm")->as_string(), "arn:saga:states:::stateMachine:ctx");
  EXPECT_EQ(before->Find("smName")->as_string(), "ctx");
  EXPECT_EQ(before->Find("role")->as_string(), "arn:saga:iam:::role/saga-coordinator");
  EXPECT_EQ(before->Find("input")->Dump(), R"({"k":"v"})");
}

// --- task tokens ----------------------------------------------------------------------

TEST_F(Api, ForgedAndGarbledTokensAreInvalidArgumentNamingTaskToken) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "t", "{}", &arn)));
  pb::GetActivityTaskResponse t = TakeTask("it-hold");
  const std::string good = t.task_token();
  ASSERT_FALSE(good.empty());

  std::vector<std::string> bad = {"", "not a token", "AAAA", std::string(2000, 'A')};
  // The real token with one character changed, truncated, or extended.
  std::string flipped = good;
  flipped[flipped.size() / 2] = flipped[flipped.size() / 2] == 'A' ? 'B' : 'A';
  bad.push_back(flipped);
  bad.push_back(good.substr(0, good.size() - 2));
  bad.push_back(good + "AA");
  for (const auto& token : bad) {
    SCOPED_TRACE("token '" + token.substr(0, 60) + "'");
    EXPECT_TRUE(HasCode(Success(token, "{}"), grpc::INVALID_ARGUMENT, "task_token"));
    EXPECT_TRUE(HasCode(Failure(token), grpc::INVALID_ARGUMENT, "task_token"));
    EXPECT_TRUE(HasCode(Heartbeat(token), grpc::INVALID_ARGUMENT, "task_token"));
  }
  // None of it touched the execution.
  pb::Execution e;
  ASSERT_TRUE(IsOk(Describe(stub_.get(), arn, &e)));
  EXPECT_EQ(e.status(), pb::RUNNING);
  EXPECT_TRUE(IsOk(Heartbeat(good)));

  // A token signed with another secret (another deployment) is forged here.
  TestDatabase other_db(AdminDsn());
  ASSERT_TRUE(other_db.ok()) << other_db.error();
  CoordinatorOptions o;
  o.token_secret = "another secret";
  auto other = StartCoordinator(other_db.dsn(), o, "other deployment");
  ASSERT_TRUE(other);
  auto other_stub = other->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(other_stub.get(), "hold", kHold)));
  ASSERT_TRUE(IsOk(StartExecution(other_stub.get(), "hold", "t", "{}", nullptr)));
  grpc::ClientContext ctx;
  pb::GetActivityTaskRequest req;
  req.set_activity("it-hold");
  req.set_wait_seconds(10);
  pb::GetActivityTaskResponse foreign;
  ASSERT_TRUE(IsOk(other_stub->GetActivityTask(&ctx, req, &foreign)));
  ASSERT_FALSE(foreign.task_token().empty());
  EXPECT_TRUE(HasCode(Success(foreign.task_token(), "{}"), grpc::INVALID_ARGUMENT, "task_token"));
}

TEST_F(Api, TokenOfAFinishedExecutionIsFailedPrecondition) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "x", "{}", &arn)));
  pb::GetActivityTaskResponse t = TakeTask("it-hold");
  ASSERT_TRUE(IsOk(Stop(arn)));
  auto before = History(stub_.get(), arn);
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE(HasCode(Success(t.task_token(), "{}"), grpc::FAILED_PRECONDITION, "task_token"));
  EXPECT_TRUE(HasCode(Failure(t.task_token()), grpc::FAILED_PRECONDITION, "task_token"));
  EXPECT_TRUE(HasCode(Heartbeat(t.task_token()), grpc::FAILED_PRECONDITION, "task_token"));
  auto after = History(stub_.get(), arn);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Normalize(*after), Normalize(*before));
  pb::Execution e;
  ASSERT_TRUE(IsOk(Describe(stub_.get(), arn, &e)));
  EXPECT_EQ(e.status(), pb::ABORTED);
  // A second stop is refused too.
  EXPECT_TRUE(HasCode(Stop(arn), grpc::FAILED_PRECONDITION, "execution_arn"));
}

TEST_F(Api, CallbackTokenUsedTwiceIsRefusedTheSecondTimeAndChangesNothing) {
  // The token reaches the worker in its input ($$.Task.Token), as callbacks
  // pass it on; the execution then waits at a second task.
  constexpr char kDef[] = R"({"StartAt":"Pay","States":{
    "Pay":{"Type":"Task","Resource":"it-pay","Parameters":{"token.$":"$$.Task.Token","amount":5},
           "ResultPath":"$.paid","Next":"Ship"},
    "Ship":{"Type":"Task","Resource":"it-ship","End":true}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "pay", kDef)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "pay", "p", R"({"order":1})", &arn)));
  pb::GetActivityTaskResponse t = TakeTask("it-pay");
  json::Value in = ParseJson(t.input());
  ASSERT_NE(in.Find("token"), nullptr) << t.input();
  const std::string callback = in.Find("token")->as_string();
  EXPECT_EQ(callback, t.task_token());

  ASSERT_TRUE(IsOk(Success(callback, R"({"receipt":"r-1"})")));
  // Wait until it reached Ship (a second task scheduled).
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto h = History(stub_.get(), arn);
        return h.ok() && CountEvents(*h, "ActivityScheduled", "Ship") == 1;
      },
      seconds(10)));
  auto before = History(stub_.get(), arn);
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE(
      HasCode(Success(callback, R"({"receipt":"r-2"})"), grpc::FAILED_PRECONDITION, "task_token"));
  EXPECT_TRUE(HasCode(Failure(callback), grpc::FAILED_PRECONDITION, "task_token"));
  EXPECT_TRUE(HasCode(Heartbeat(callback), grpc::FAILED_PRECONDITION, "task_token"));
  auto after = History(stub_.get(), arn);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Normalize(*after), Normalize(*before));
  EXPECT_EQ(CountEvents(*after, "ActivitySucceeded", "Pay"), 1);

  pb::GetActivityTaskResponse ship = TakeTask("it-ship");
  EXPECT_EQ(ParseJson(ship.input()), ParseJson(R"({"order":1,"paid":{"receipt":"r-1"}})"));
  ASSERT_TRUE(IsOk(Success(ship.task_token(), R"("shipped")")));
  EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(10)).output(), R"("shipped")");
}

// As AWS records it (LocalStack: test_sqs_failure_in_wait_for_task_tok_no_error_field):
// SendTaskFailure with neither error nor cause fails the callback task
// with nothing, States.ALL catches it, and the error output is
// {"Error": null, "Cause": null}; the ActivityFailed event has neither.
TEST_F(Api, CallbackFailedWithoutErrorOrCauseIsCaughtWithNullFields) {
  constexpr char kDef[] = R"({"StartAt":"Ask","States":{
    "Ask":{"Type":"Task","Resource":"it-ask.waitForTaskToken",
           "Parameters":{"token.$":"$$.Task.Token"},
           "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.states_all_error","Next":"Caught"}],
           "End":true},
    "Caught":{"Type":"Pass","End":true}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "ask", kDef)));
  // Left out, or given empty (proto3 optional fields: AWS tells them apart).
  struct Case {
    const char* name;
    bool empty_cause;
    const char* caught;
  };
  for (const Case& c : {Case{"neither", false, R"({"Error":null,"Cause":null})"},
                        Case{"empty-cause", true, R"({"Error":null,"Cause":""})"}}) {
    SCOPED_TRACE(c.name);
    std::string arn;
    ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "ask", c.name, R"({"Message":"m"})", &arn)));
    pb::GetActivityTaskResponse t = TakeTask("it-ask");
    const std::string callback = ParseJson(t.input()).Find("token")->as_string();
    {
      grpc::ClientContext ctx;
      pb::SendTaskFailureRequest req;  // no error
      req.set_task_token(callback);
      if (c.empty_cause) req.set_cause("");
      pb::SendTaskFailureResponse resp;
      ASSERT_TRUE(IsOk(stub_->SendTaskFailure(&ctx, req, &resp)));
    }
    pb::Execution e = WaitFinished(stub_.get(), arn, seconds(10));
    EXPECT_EQ(e.status(), pb::SUCCEEDED);
    EXPECT_EQ(ParseJson(e.output()),
              ParseJson(saga::StrCat(R"({"Message":"m","states_all_error":)", c.caught, "}")));
    auto h = History(stub_.get(), arn);
    ASSERT_TRUE(h.ok());
    int failed = 0;
    for (const auto& ev : *h) {
      if (ev.type() != "ActivityFailed") continue;
      ++failed;
      json::Value d = ParseJson(ev.details());
      EXPECT_EQ(d.Find("error"), nullptr) << ev.details();
      if (c.empty_cause) {
        ASSERT_NE(d.Find("cause"), nullptr) << ev.details();
        EXPECT_EQ(d.Find("cause")->as_string(), "");
      } else {
        EXPECT_EQ(d.Find("cause"), nullptr) << ev.details();
      }
    }
    EXPECT_EQ(failed, 1);
  }
}

// --- limits and bad requests ------------------------------------------------------------

TEST_F(Api, OversizedInputIsInvalidArgumentNamingInput) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  // A JSON string of exactly 262,144 bytes is accepted; one byte more is not.
  const std::string at_limit = "\"" + std::string(262144 - 2, 'x') + "\"";
  const std::string over = "\"" + std::string(262144 - 1, 'x') + "\"";
  EXPECT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "at-limit", at_limit, nullptr)));
  EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "hold", "over", over, nullptr),
                      grpc::INVALID_ARGUMENT, "input"));
  EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "hold", "bad-json", "{not json", nullptr),
                      grpc::INVALID_ARGUMENT, "input"));
  EXPECT_EQ(AllExecutionNames("hold", pb::EXECUTION_STATUS_UNSPECIFIED, 100),
            std::vector<std::string>{"at-limit"});
}

TEST_F(Api, BadExecutionNamesAreInvalidArgumentNamingName) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  EXPECT_TRUE(IsOk(StartExecution(stub_.get(), "hold", std::string(80, 'n'), "{}", nullptr)));
  for (const std::string& name :
       {std::string(81, 'n'), std::string("has space"), std::string("a<b"), std::string("q?"),
        std::string("star*"), std::string("semi;colon"), std::string("tab\tname"),
        std::string("ctl\x01"), std::string("{brace}")}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "hold", name, "{}", nullptr),
                        grpc::INVALID_ARGUMENT, "name"));
  }
  // State machine names follow the same rules.
  EXPECT_TRUE(HasCode(CreateStateMachine(stub_.get(), std::string(81, 'm'), kHold),
                      grpc::INVALID_ARGUMENT, "name"));
  EXPECT_TRUE(
      HasCode(CreateStateMachine(stub_.get(), "bad name", kHold), grpc::INVALID_ARGUMENT, "name"));
  EXPECT_EQ(AllExecutionNames("hold", pb::EXECUTION_STATUS_UNSPECIFIED, 100),
            std::vector<std::string>{std::string(80, 'n')});
}

TEST_F(Api, InvalidDefinitionIsInvalidArgumentWithAJsonArrayOfPathAndMessage) {
  constexpr char kBad[] = R"({"StartAt":"A","States":{
    "A":{"Type":"Task","Resource":"r","Next":"Missing"},
    "B":{"Type":"Pass","End":true,"Retry":[]},
    "C":{"Type":"Wait","End":true}}})";
  grpc::Status s = CreateStateMachine(stub_.get(), "bad", kBad);
  ASSERT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
  json::Value errors = ParseJson(s.error_message());
  ASSERT_TRUE(errors.is_array()) << s.error_message();
  ASSERT_GE(errors.size(), 2u) << "every problem at once: " << s.error_message();
  std::set<std::string> paths;
  for (const auto& e : errors.as_array()) {
    ASSERT_TRUE(e.is_object()) << s.error_message();
    ASSERT_NE(e.Find("path"), nullptr) << s.error_message();
    ASSERT_NE(e.Find("message"), nullptr) << s.error_message();
    EXPECT_EQ(e.size(), 2u) << "only path and message: " << e.Dump();
    EXPECT_FALSE(e.Find("message")->as_string().empty());
    paths.insert(e.Find("path")->as_string());
  }
  EXPECT_TRUE(std::any_of(paths.begin(), paths.end(), [](const std::string& p) {
    return p.rfind("$.States.A", 0) == 0;
  })) << s.error_message();
  EXPECT_TRUE(std::any_of(paths.begin(), paths.end(), [](const std::string& p) {
    return p.rfind("$.States.C", 0) == 0;
  })) << s.error_message();
  // The same errors from ValidateStateMachineDefinition, which stores nothing.
  grpc::ClientContext ctx;
  pb::ValidateStateMachineDefinitionRequest req;
  req.set_definition(kBad);
  pb::ValidateStateMachineDefinitionResponse resp;
  ASSERT_TRUE(IsOk(stub_->ValidateStateMachineDefinition(&ctx, req, &resp)));
  EXPECT_FALSE(resp.valid());
  EXPECT_EQ(static_cast<size_t>(resp.errors_size()), errors.size());
  // The machine was not created.
  grpc::ClientContext dctx;
  pb::DescribeStateMachineRequest dreq;
  dreq.set_name("bad");
  pb::StateMachine sm;
  EXPECT_TRUE(HasCode(stub_->DescribeStateMachine(&dctx, dreq, &sm), grpc::NOT_FOUND));
  // Not JSON at all: still an array with one entry.
  grpc::Status nj = CreateStateMachine(stub_.get(), "bad2", "{oops");
  ASSERT_EQ(nj.error_code(), grpc::INVALID_ARGUMENT);
  json::Value one = ParseJson(nj.error_message());
  ASSERT_TRUE(one.is_array()) << nj.error_message();
  EXPECT_GE(one.size(), 1u);
}

TEST_F(Api, ExpressIsUnimplementedAndUnknownStateMachineIsNotFound) {
  grpc::ClientContext ctx;
  pb::CreateStateMachineRequest req;
  req.set_name("fast");
  req.set_definition(kHold);
  req.set_type(pb::EXPRESS);
  pb::CreateStateMachineResponse resp;
  EXPECT_TRUE(HasCode(stub_->CreateStateMachine(&ctx, req, &resp), grpc::UNIMPLEMENTED));
  EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "fast", "", "{}", nullptr), grpc::NOT_FOUND,
                      "state_machine"));
  EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "nope", "", "{}", nullptr), grpc::NOT_FOUND,
                      "state_machine"));
  pb::Execution e;
  EXPECT_TRUE(HasCode(Describe(stub_.get(), "arn:saga:states:::execution:nope:x", &e),
                      grpc::NOT_FOUND, "execution_arn"));
  EXPECT_TRUE(
      HasCode(Describe(stub_.get(), "garbage", &e), grpc::INVALID_ARGUMENT, "execution_arn"));
}

TEST_F(Api, HistoryPagesWithNextTokenInBothOrders) {
  // Five Pass states: 1 + 5*2 + 1 = 12 events.
  constexpr char kDef[] = R"({"StartAt":"P1","States":{
    "P1":{"Type":"Pass","Next":"P2"},"P2":{"Type":"Pass","Next":"P3"},
    "P3":{"Type":"Pass","Next":"P4"},"P4":{"Type":"Pass","Next":"P5"},
    "P5":{"Type":"Pass","End":true}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "passes", kDef)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "passes", "h", R"({"v":1})", &arn)));
  ASSERT_EQ(WaitFinished(stub_.get(), arn, seconds(10)).status(), pb::SUCCEEDED);
  auto full = History(stub_.get(), arn, 1000);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->size(), 12u);
  EXPECT_TRUE(ConsecutiveIds(*full));

  // Page by page, by hand: sizes 5, 5, 2 and a token on all but the last.
  std::vector<int64_t> ids;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    pb::GetExecutionHistoryRequest req;
    req.set_execution_arn(arn);
    req.set_max_results(5);
    req.set_next_token(token);
    pb::GetExecutionHistoryResponse resp;
    ASSERT_TRUE(IsOk(stub_->GetExecutionHistory(&ctx, req, &resp)));
    ASSERT_LE(resp.events_size(), 5);
    for (const auto& e : resp.events()) ids.push_back(e.id());
    token = resp.next_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_TRUE(token.empty());
  EXPECT_GE(pages, 3);
  std::vector<int64_t> want(12);
  for (int i = 0; i < 12; ++i) want[static_cast<size_t>(i)] = i + 1;
  EXPECT_EQ(ids, want);

  for (int page : {1, 3, 5, 7, 12, 100}) {
    SCOPED_TRACE(page);
    auto fwd = History(stub_.get(), arn, page);
    ASSERT_TRUE(fwd.ok());
    EXPECT_EQ(Normalize(*fwd), Normalize(*full));
    auto rev = History(stub_.get(), arn, page, /*reverse=*/true);
    ASSERT_TRUE(rev.ok());
    std::vector<std::string> reversed = Normalize(*full);
    std::reverse(reversed.begin(), reversed.end());
    EXPECT_EQ(Normalize(*rev), reversed);
    ASSERT_FALSE(rev->empty());
    EXPECT_EQ(rev->front().id(), 12);
    EXPECT_EQ(rev->front().type(), "ExecutionSucceeded");
  }
  grpc::ClientContext ctx;
  pb::GetExecutionHistoryRequest req;
  req.set_execution_arn(arn);
  req.set_next_token("not-a-token");
  pb::GetExecutionHistoryResponse resp;
  EXPECT_TRUE(
      HasCode(stub_->GetExecutionHistory(&ctx, req, &resp), grpc::INVALID_ARGUMENT, "next_token"));
}

TEST_F(Api, ListExecutionsFiltersByStatusWithPagingNewestFirst) {
  // Items with "hold" wait at a task; the others succeed at once.
  constexpr char kDef[] = R"({"StartAt":"Route","States":{
    "Route":{"Type":"Choice","Choices":[{"Variable":"$.hold","BooleanEquals":true,"Next":"Hold"}],
             "Default":"Done"},
    "Hold":{"Type":"Task","Resource":"it-hold","End":true},
    "Done":{"Type":"Succeed"}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "mixed", kDef)));
  std::vector<std::string> done, held, all;
  for (int i = 0; i < 12; ++i) {
    const bool hold = i % 3 == 0;  // 4 held, 8 done
    const std::string name = saga::StrCat("e", i);
    std::string arn;
    ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "mixed", name,
                                    hold ? R"({"hold":true})" : R"({"hold":false})", &arn)));
    if (!hold) {
      ASSERT_EQ(WaitFinished(stub_.get(), arn, seconds(10)).status(), pb::SUCCEEDED);
    }
    (hold ? held : done).push_back(name);
    all.push_back(name);
  }
  std::reverse(done.begin(), done.end());  // newest first
  std::reverse(held.begin(), held.end());
  std::reverse(all.begin(), all.end());
  for (int page : {1, 3, 4, 100}) {
    SCOPED_TRACE(page);
    EXPECT_EQ(AllExecutionNames("mixed", pb::SUCCEEDED, page), done);
    EXPECT_EQ(AllExecutionNames("mixed", pb::RUNNING, page), held);
    EXPECT_EQ(AllExecutionNames("mixed", pb::EXECUTION_STATUS_UNSPECIFIED, page), all);
    EXPECT_THAT(AllExecutionNames("mixed", pb::FAILED, page), IsEmpty());
  }
  pb::ListExecutionsResponse resp;
  EXPECT_TRUE(HasCode(ListExecutions("mixed", pb::RUNNING, 2, "garbage", &resp),
                      grpc::INVALID_ARGUMENT, "next_token"));
}

TEST_F(Api, UpdateStateMachineKeepsRunningExecutionsOnTheirRevision) {
  auto def = [](const std::string& tag) {
    return saga::StrCat(R"({"StartAt":"Hold","States":{
      "Hold":{"Type":"Task","Resource":"it-hold","ResultPath":null,"Next":"Tag"},
      "Tag":{"Type":"Pass","Result":")",
                        tag, R"(","End":true}}})");
  };
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "evolving", def("v1"))));
  std::string old_arn, new_arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "evolving", "old", "{}", &old_arn)));
  pb::GetActivityTaskResponse old_task = TakeTask("it-hold");

  grpc::ClientContext ctx;
  pb::UpdateStateMachineRequest req;
  req.set_name("evolving");
  req.set_definition(def("v2"));
  pb::UpdateStateMachineResponse resp;
  ASSERT_TRUE(IsOk(stub_->UpdateStateMachine(&ctx, req, &resp)));
  EXPECT_EQ(resp.revision(), 2);

  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "evolving", "new", "{}", &new_arn)));
  pb::GetActivityTaskResponse new_task = TakeTask("it-hold");
  ASSERT_TRUE(IsOk(Success(new_task.task_token(), "{}")));
  ASSERT_TRUE(IsOk(Success(old_task.task_token(), "{}")));
  pb::Execution old_e = WaitFinished(stub_.get(), old_arn, seconds(10));
  pb::Execution new_e = WaitFinished(stub_.get(), new_arn, seconds(10));
  ASSERT_EQ(old_e.status(), pb::SUCCEEDED) << old_e.DebugString();
  ASSERT_EQ(new_e.status(), pb::SUCCEEDED) << new_e.DebugString();
  EXPECT_EQ(old_e.revision(), 1);
  EXPECT_EQ(old_e.output(), R"("v1")");
  EXPECT_EQ(new_e.revision(), 2);
  EXPECT_EQ(new_e.output(), R"("v2")");

  // The revisions stay readable; an invalid update is refused and stores nothing.
  grpc::ClientContext dctx;
  pb::DescribeStateMachineRequest dreq;
  dreq.set_name("evolving");
  dreq.set_revision(1);
  pb::StateMachine sm;
  ASSERT_TRUE(IsOk(stub_->DescribeStateMachine(&dctx, dreq, &sm)));
  EXPECT_EQ(sm.revision(), 1);
  EXPECT_EQ(ParseJson(sm.definition()), ParseJson(def("v1")));
  grpc::ClientContext uctx;
  req.set_definition(R"({"StartAt":"X","States":{}})");
  EXPECT_TRUE(HasCode(stub_->UpdateStateMachine(&uctx, req, &resp), grpc::INVALID_ARGUMENT));
  grpc::ClientContext lctx;
  dreq.set_revision(0);
  ASSERT_TRUE(IsOk(stub_->DescribeStateMachine(&lctx, dreq, &sm)));
  EXPECT_EQ(sm.revision(), 2);
}


// A transition that rebuilds an execution's state (a restarted coordinator
// has nothing cached) reads the state machine's definition in its own
// transaction: with a one-connection pool, fetching it on a second
// connection would wait forever for the one the transition holds.
TEST_F(Api, ARestartedCoordinatorWithAOneConnectionPoolStillCompletesTasks) {
  ASSERT_EQ(c_->Terminate(seconds(15)), 0) << c_->Stderr();
  CoordinatorOptions small;
  small.extra_args = {"--pool-size", "1"};
  c_ = Start(small, "pool of one");
  ASSERT_TRUE(c_);
  stub_ = c_->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "one", "{}", &arn)));
  const std::string token = TakeTask("it-hold").task_token();
  ASSERT_FALSE(token.empty());
  ASSERT_EQ(c_->Terminate(seconds(15)), 0) << c_->Stderr();

  c_ = Start(small, "pool of one, restarted");
  ASSERT_TRUE(c_);
  stub_ = c_->NewStub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  pb::SendTaskSuccessRequest req;
  req.set_task_token(token);
  req.set_output(R"({"done":true})");
  pb::SendTaskSuccessResponse resp;
  ASSERT_TRUE(IsOk(stub_->SendTaskSuccess(&ctx, req, &resp)));
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(10));
  EXPECT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"done":true})"));
}

}  // namespace
}  // namespace saga::itest

namespace saga::itest {
namespace {

TEST_F(Api, OversizedTaskOutputIsInvalidArgumentNamingOutput) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "big", "{}", &arn)));
  pb::GetActivityTaskResponse t = TakeTask("it-hold");
  const std::string over = "\"" + std::string(262144 - 1, 'x') + "\"";
  EXPECT_TRUE(HasCode(Success(t.task_token(), over), grpc::INVALID_ARGUMENT, "output"));
  EXPECT_TRUE(HasCode(Success(t.task_token(), "{oops"), grpc::INVALID_ARGUMENT, "output"));
  // Refused requests changed nothing: the task still completes.
  ASSERT_TRUE(IsOk(Success(t.task_token(), R"({"small":true})")));
  EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(10)).output(), R"({"small":true})");
}

TEST_F(Api, LongPollWithoutTasksReturnsAnEmptyTokenAfterWaitSeconds) {
  grpc::ClientContext ctx;
  pb::GetActivityTaskRequest req;
  req.set_activity("nothing-here");
  req.set_wait_seconds(1);
  pb::GetActivityTaskResponse resp;
  const auto t0 = Clock::now();
  ASSERT_TRUE(IsOk(stub_->GetActivityTask(&ctx, req, &resp)));
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_TRUE(resp.task_token().empty());
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LT(elapsed, 3.0);
  grpc::ClientContext bad;
  req.set_activity("");
  EXPECT_TRUE(
      HasCode(stub_->GetActivityTask(&bad, req, &resp), grpc::INVALID_ARGUMENT, "activity"));
  req.set_activity("nothing-here");
  grpc::ClientContext negative;
  req.set_wait_seconds(-1);
  EXPECT_TRUE(HasCode(stub_->GetActivityTask(&negative, req, &resp), grpc::INVALID_ARGUMENT,
                      "wait_seconds"));
  // More than 60 waits 60 s (it overflowed the milliseconds once: found by
  // ApiMutation under UBSan); the caller's deadline ends it.
  grpc::ClientContext huge;
  huge.set_deadline(std::chrono::system_clock::now() + milliseconds(300));
  req.set_wait_seconds(INT32_MAX);
  EXPECT_EQ(stub_->GetActivityTask(&huge, req, &resp).error_code(), grpc::DEADLINE_EXCEEDED);
  EXPECT_TRUE(c_->running());
}

TEST_F(Api, StoppedExecutionsTaskIsNeverDispatched) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "stopped", "{}", &arn)));
  ASSERT_TRUE(IsOk(Stop(arn)));
  grpc::ClientContext ctx;
  pb::GetActivityTaskRequest req;
  req.set_activity("it-hold");
  req.set_wait_seconds(1);
  pb::GetActivityTaskResponse resp;
  ASSERT_TRUE(IsOk(stub_->GetActivityTask(&ctx, req, &resp)));
  EXPECT_TRUE(resp.task_token().empty()) << "dispatched a task of " << resp.execution_arn();
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->back().type(), "ExecutionAborted");
  EXPECT_EQ(CountEvents(*h, "ActivityStarted"), 0);
}

TEST_F(Api, DeletedStateMachineLetsRunningExecutionsFinishAndRefusesNewOnes) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "survivor", R"({"v":1})", &arn)));
  grpc::ClientContext ctx;
  pb::DeleteStateMachineRequest req;
  req.set_name("hold");
  pb::DeleteStateMachineResponse resp;
  ASSERT_TRUE(IsOk(stub_->DeleteStateMachine(&ctx, req, &resp)));
  EXPECT_TRUE(HasCode(StartExecution(stub_.get(), "hold", "newcomer", "{}", nullptr),
                      grpc::NOT_FOUND, "state_machine"));
  // A fresh coordinator (no cached definition) still runs it to the end.
  c_->Kill9();
  c_ = Start({}, "after delete");
  ASSERT_TRUE(c_);
  stub_ = c_->NewStub();
  pb::GetActivityTaskResponse t = TakeTask("it-hold");
  ASSERT_TRUE(IsOk(Success(t.task_token(), R"({"done":true})")));
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(10));
  EXPECT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_EQ(e.output(), R"({"done":true})");
}

// Dispatch across coordinators: a long poll parked on one is woken by a task
// that a transition on another scheduled (LISTEN/NOTIFY), well before its
// wait ends.
TEST_F(Api, LongPollOnOneCoordinatorIsWokenByATaskScheduledThroughAnother) {
  auto other = Start({}, "other coordinator");
  ASSERT_TRUE(other);
  auto other_stub = other->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "hold", kHold)));
  // Both coordinators are past their first LISTEN: a round trip on each.
  pb::Execution ignored;
  ASSERT_TRUE(HasCode(Describe(other_stub.get(), "arn:saga:states:::execution:hold:none", &ignored),
                      grpc::NOT_FOUND));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  pb::GetActivityTaskResponse got;
  Clock::time_point got_at;
  std::thread poller([&] {
    grpc::ClientContext ctx;
    pb::GetActivityTaskRequest req;
    req.set_activity("it-hold");
    req.set_wait_seconds(20);
    pb::GetActivityTaskResponse resp;
    grpc::Status s = other_stub->GetActivityTask(&ctx, req, &resp);
    std::lock_guard<std::mutex> g(mu);
    EXPECT_TRUE(IsOk(s));
    got = resp;
    got_at = Clock::now();
    done = true;
    cv.notify_all();
  });
  struct Joiner {
    std::thread& t;
    CoordinatorProcess* c;
    ~Joiner() {
      if (t.joinable()) {
        c->Kill9();  // ends the poll if the test failed early
        t.join();
      }
    }
  } joiner{poller, other.get()};
  // The poll is parked once a later round trip on the same channel finished.
  ASSERT_TRUE(HasCode(Describe(other_stub.get(), "arn:saga:states:::execution:hold:none", &ignored),
                      grpc::NOT_FOUND));
  std::string arn;
  const auto t0 = Clock::now();
  ASSERT_TRUE(IsOk(StartExecution(stub_.get(), "hold", "cross", "{}", &arn)));
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, seconds(30), [&] { return done; }));
  EXPECT_EQ(got.execution_arn(), arn);
  EXPECT_LT(std::chrono::duration<double>(got_at - t0).count(), 2.0)
      << "the parked poll was not woken by the other coordinator's NOTIFY";
  lock.unlock();
  poller.join();
}

}  // namespace
}  // namespace saga::itest
