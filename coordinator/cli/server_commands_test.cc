#include "coordinator/cli/server_commands.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "saga/v1/saga.grpc.pb.h"

namespace saga::cli {
namespace {

namespace pb = ::saga::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kDate[] = "2024-05-01T10:00:00.000Z";
constexpr char kDate2[] = "2024-05-01T10:00:05.000Z";
constexpr char kArn[] = "arn:saga:states:::execution:orders:run-1";

// One RPC of the fake: records every request and answers with `handler`
// (UNIMPLEMENTED when unset).
template <typename Req, typename Resp>
class FakeRpc {
 public:
  void Set(std::function<grpc::Status(const Req&, Resp*)> handler) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(handler);
  }
  std::vector<Req> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  grpc::Status Handle(const Req* req, Resp* resp) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(*req);
    if (!handler_) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not faked");
    return handler_(*req, resp);
  }

 private:
  mutable std::mutex mu_;
  std::function<grpc::Status(const Req&, Resp*)> handler_;
  std::vector<Req> requests_;
};

class FakeSaga final : public pb::SagaCoordinator::Service {
 public:
  FakeRpc<pb::CreateStateMachineRequest, pb::CreateStateMachineResponse> create_state_machine;
  FakeRpc<pb::UpdateStateMachineRequest, pb::UpdateStateMachineResponse> update_state_machine;
  FakeRpc<pb::DescribeStateMachineRequest, pb::StateMachine> describe_state_machine;
  FakeRpc<pb::ListStateMachinesRequest, pb::ListStateMachinesResponse> list_state_machines;
  FakeRpc<pb::DeleteStateMachineRequest, pb::DeleteStateMachineResponse> delete_state_machine;
  FakeRpc<pb::StartExecutionRequest, pb::StartExecutionResponse> start_execution;
  FakeRpc<pb::DescribeExecutionRequest, pb::Execution> describe_execution;
  FakeRpc<pb::ListExecutionsRequest, pb::ListExecutionsResponse> list_executions;
  FakeRpc<pb::GetExecutionHistoryRequest, pb::GetExecutionHistoryResponse> get_execution_history;
  FakeRpc<pb::StopExecutionRequest, pb::StopExecutionResponse> stop_execution;
  FakeRpc<pb::RedriveExecutionRequest, pb::RedriveExecutionResponse> redrive_execution;
  FakeRpc<pb::GetActivityTaskRequest, pb::GetActivityTaskResponse> get_activity_task;
  FakeRpc<pb::SendTaskSuccessRequest, pb::SendTaskSuccessResponse> send_task_success;
  FakeRpc<pb::SendTaskFailureRequest, pb::SendTaskFailureResponse> send_task_failure;
  FakeRpc<pb::SendTaskHeartbeatRequest, pb::SendTaskHeartbeatResponse> send_task_heartbeat;
  FakeRpc<pb::ListWorkersRequest, pb::ListWorkersResponse> list_workers;

  grpc::Status CreateStateMachine(grpc::ServerContext*, const pb::CreateStateMachineRequest* req,
                                  pb::CreateStateMachineResponse* resp) override {
    return create_state_machine.Handle(req, resp);
  }
  grpc::Status UpdateStateMachine(grpc::ServerContext*, const pb::UpdateStateMachineRequest* req,
                                  pb::UpdateStateMachineResponse* resp) override {
    return update_state_machine.Handle(req, resp);
  }
  grpc::Status DescribeStateMachine(grpc::ServerContext*,
                                    const pb::DescribeStateMachineRequest* req,
                                    pb::StateMachine* resp) override {
    return describe_state_machine.Handle(req, resp);
  }
  grpc::Status ListStateMachines(grpc::ServerContext*, const pb::ListStateMachinesRequest* req,
                                 pb::ListStateMachinesResponse* resp) override {
    return list_state_machines.Handle(req, resp);
  }
  grpc::Status DeleteStateMachine(grpc::ServerContext*, const pb::DeleteStateMachineRequest* req,
                                  pb::DeleteStateMachineResponse* resp) override {
    return delete_state_machine.Handle(req, resp);
  }
  grpc::Status StartExecution(grpc::ServerContext*, const pb::StartExecutionRequest* req,
                              pb::StartExecutionResponse* resp) override {
    return start_execution.Handle(req, resp);
  }
  grpc::Status DescribeExecution(grpc::ServerContext*, const pb::DescribeExecutionRequest* req,
                                 pb::Execution* resp) override {
    return describe_execution.Handle(req, resp);
  }
  grpc::Status ListExecutions(grpc::ServerContext*, const pb::ListExecutionsRequest* req,
                              pb::ListExecutionsResponse* resp) override {
    return list_executions.Handle(req, resp);
  }
  grpc::Status GetExecutionHistory(grpc::ServerContext*, const pb::GetExecutionHistoryRequest* req,
                                   pb::GetExecutionHistoryResponse* resp) override {
    return get_execution_history.Handle(req, resp);
  }
  grpc::Status StopExecution(grpc::ServerContext*, const pb::StopExecutionRequest* req,
                             pb::StopExecutionResponse* resp) override {
    return stop_execution.Handle(req, resp);
  }
  grpc::Status RedriveExecution(grpc::ServerContext*, const pb::RedriveExecutionRequest* req,
                                pb::RedriveExecutionResponse* resp) override {
    return redrive_execution.Handle(req, resp);
  }
  grpc::Status GetActivityTask(grpc::ServerContext*, const pb::GetActivityTaskRequest* req,
                               pb::GetActivityTaskResponse* resp) override {
    return get_activity_task.Handle(req, resp);
  }
  grpc::Status SendTaskSuccess(grpc::ServerContext*, const pb::SendTaskSuccessRequest* req,
                               pb::SendTaskSuccessResponse* resp) override {
    return send_task_success.Handle(req, resp);
  }
  grpc::Status SendTaskFailure(grpc::ServerContext*, const pb::SendTaskFailureRequest* req,
                               pb::SendTaskFailureResponse* resp) override {
    return send_task_failure.Handle(req, resp);
  }
  grpc::Status ListWorkers(grpc::ServerContext*, const pb::ListWorkersRequest* req,
                           pb::ListWorkersResponse* resp) override {
    return list_workers.Handle(req, resp);
  }
  grpc::Status SendTaskHeartbeat(grpc::ServerContext*, const pb::SendTaskHeartbeatRequest* req,
                                 pb::SendTaskHeartbeatResponse* resp) override {
    return send_task_heartbeat.Handle(req, resp);
  }
};

pb::HistoryEvent Event(int64_t id, std::string type, std::string state = "",
                       std::string details = "") {
  pb::HistoryEvent ev;
  ev.set_id(id);
  ev.set_previous_event_id(id - 1);
  ev.set_timestamp(kDate);
  ev.set_type(std::move(type));
  ev.set_state_name(std::move(state));
  ev.set_details(std::move(details));
  return ev;
}

// Serves events[0, available) two per page; the token is the next index.
void PageEvents(const std::vector<pb::HistoryEvent>& events, size_t available,
                const pb::GetExecutionHistoryRequest& req, pb::GetExecutionHistoryResponse* resp) {
  size_t start = req.next_token().empty() ? 0 : std::stoul(req.next_token());
  size_t end = std::min(available, start + 2);
  for (size_t i = start; i < end; ++i) *resp->add_events() = events[i];
  if (end < available) resp->set_next_token(std::to_string(end));
}

struct Result {
  int code;
  std::string out;
  std::string err;
};

class ServerCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    address_ = "127.0.0.1:" + std::to_string(port);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  // Runs `sagactl --address ADDRESS args...`.
  Result Run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"--address", address_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunRaw(argv);
  }

  static Result RunRaw(const std::vector<std::string>& argv) {
    std::ostringstream out, err;
    ServerCommandOptions options;
    options.poll_interval = std::chrono::milliseconds(0);
    int code = RunServerCommand(argv, out, err, options);
    return {code, out.str(), err.str()};
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    std::string path = ::testing::TempDir() + "/server_commands_test_" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  FakeSaga fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// --- State machines ----------------------------------------------------------

TEST_F(ServerCommandsTest, CreateStateMachine) {
  fake_.create_state_machine.Set([](const auto&, pb::CreateStateMachineResponse* resp) {
    resp->set_state_machine_arn("arn:saga:states:::stateMachine:orders");
    resp->set_revision(1);
    resp->set_creation_date(kDate);
    return grpc::Status::OK;
  });
  std::string def = R"({"StartAt":"A","States":{"A":{"Type":"Succeed"}}})";
  std::string path = WriteFile("create.json", def);
  Result r =
      Run({"create-state-machine", "--name", "orders", "--definition", path, "--type", "express"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "{\"stateMachineArn\":\"arn:saga:states:::stateMachine:orders\",\"revision\":1,"
            "\"creationDate\":\"2024-05-01T10:00:00.000Z\"}\n");
  auto reqs = fake_.create_state_machine.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].name(), "orders");
  EXPECT_EQ(reqs[0].definition(), def);
  EXPECT_EQ(reqs[0].type(), pb::EXPRESS);
}

TEST_F(ServerCommandsTest, CreateStateMachineDefaultsToUnspecifiedType) {
  fake_.create_state_machine.Set(
      [](const auto&, pb::CreateStateMachineResponse*) { return grpc::Status::OK; });
  std::string path = WriteFile("create_default.json", "{}");
  Result r = Run({"create-state-machine", "--name", "orders", "--definition", path});
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(fake_.create_state_machine.requests().size(), 1u);
  EXPECT_EQ(fake_.create_state_machine.requests()[0].type(), pb::STATE_MACHINE_TYPE_UNSPECIFIED);
}

TEST_F(ServerCommandsTest, CreateStateMachineValidationErrorsExitTwo) {
  fake_.create_state_machine.Set([](const auto&, pb::CreateStateMachineResponse*) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        R"([{"path":"$.StartAt","message":"state 'B' does not exist"},)"
                        R"({"path":"$.States.A.Next","message":"missing"}])");
  });
  std::string path = WriteFile("invalid.json", R"({"StartAt":"B"})");
  Result r = Run({"create-state-machine", "--name", "orders", "--definition", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            R"({"valid":false,"errors":[{"path":"$.StartAt","message":"state 'B' does not exist"},)"
            R"({"path":"$.States.A.Next","message":"missing"}]})"
            "\n");
}

TEST_F(ServerCommandsTest, CreateStateMachinePlainInvalidArgumentExitsOne) {
  fake_.create_state_machine.Set([](const auto&, pb::CreateStateMachineResponse*) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name: must be 1-80 characters");
  });
  std::string path = WriteFile("plain.json", "{}");
  Result r = Run({"create-state-machine", "--name", "", "--definition", path});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "sagactl: create-state-machine: INVALID_ARGUMENT: name: must be 1-80 characters\n");
}

TEST_F(ServerCommandsTest, CreateStateMachineUnreadableDefinition) {
  Result r =
      Run({"create-state-machine", "--name", "orders", "--definition", "/nonexistent/def.json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: create-state-machine: --definition: cannot read '/nonexistent/def.json'\n");
  EXPECT_TRUE(fake_.create_state_machine.requests().empty());
}

TEST_F(ServerCommandsTest, CreateStateMachineBadType) {
  std::string path = WriteFile("badtype.json", "{}");
  Result r = Run({"create-state-machine", "--name", "o", "--definition", path, "--type", "FAST"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: create-state-machine: --type: must be STANDARD or EXPRESS, not 'FAST'\n");
}

TEST_F(ServerCommandsTest, CreateStateMachineUnimplementedExpress) {
  fake_.create_state_machine.Set([](const auto&, pb::CreateStateMachineResponse*) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "type EXPRESS is not supported yet");
  });
  std::string path = WriteFile("express.json", "{}");
  Result r =
      Run({"create-state-machine", "--name", "o", "--definition", path, "--type", "EXPRESS"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: create-state-machine: UNIMPLEMENTED: type EXPRESS is not supported yet\n");
}

TEST_F(ServerCommandsTest, UpdateStateMachine) {
  fake_.update_state_machine.Set([](const auto&, pb::UpdateStateMachineResponse* resp) {
    resp->set_revision(2);
    resp->set_update_date(kDate2);
    return grpc::Status::OK;
  });
  std::string path = WriteFile("update.json", R"({"StartAt":"A"})");
  Result r = Run({"update-state-machine", "--name", "orders", "--definition", path});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"revision\":2,\"updateDate\":\"2024-05-01T10:00:05.000Z\"}\n");
  auto reqs = fake_.update_state_machine.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].name(), "orders");
  EXPECT_EQ(reqs[0].definition(), R"({"StartAt":"A"})");
}

TEST_F(ServerCommandsTest, UpdateStateMachineValidationErrors) {
  fake_.update_state_machine.Set([](const auto&, pb::UpdateStateMachineResponse*) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        R"([{"path":"$","message":"not JSON"}])");
  });
  std::string path = WriteFile("update_bad.json", "{");
  Result r = Run({"update-state-machine", "--name", "orders", "--definition", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "{\"valid\":false,\"errors\":[{\"path\":\"$\",\"message\":\"not JSON\"}]}\n");
}

TEST_F(ServerCommandsTest, UpdateStateMachineNotFound) {
  fake_.update_state_machine.Set([](const auto&, pb::UpdateStateMachineResponse*) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "state machine 'x' does not exist");
  });
  std::string path = WriteFile("update_nf.json", "{}");
  Result r = Run({"update-state-machine", "--name", "x", "--definition", path});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "sagactl: update-state-machine: NOT_FOUND: state machine 'x' does not exist\n");
}

TEST_F(ServerCommandsTest, DescribeStateMachine) {
  fake_.describe_state_machine.Set(
      [](const pb::DescribeStateMachineRequest&, pb::StateMachine* resp) {
        resp->set_state_machine_arn("arn:saga:states:::stateMachine:orders");
        resp->set_name("orders");
        resp->set_type(pb::STATE_MACHINE_TYPE_UNSPECIFIED);
        resp->set_definition("{\n  \"StartAt\": \"A\",\n  \"States\": {}\n}");
        resp->set_revision(3);
        resp->set_creation_date(kDate);
        resp->set_update_date(kDate2);
        return grpc::Status::OK;
      });
  Result r = Run({"describe-state-machine", "--name", "orders", "--revision", "3"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"stateMachineArn\":\"arn:saga:states:::stateMachine:orders\",\"name\":\"orders\","
            "\"type\":\"STANDARD\",\"revision\":3,\"definition\":{\"StartAt\":\"A\",\"States\":{}},"
            "\"creationDate\":\"2024-05-01T10:00:00.000Z\","
            "\"updateDate\":\"2024-05-01T10:00:05.000Z\"}\n");
  auto reqs = fake_.describe_state_machine.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].name(), "orders");
  EXPECT_EQ(reqs[0].revision(), 3);
}

TEST_F(ServerCommandsTest, DescribeStateMachineBadRevision) {
  Result r = Run({"describe-state-machine", "--name", "orders", "--revision", "latest"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: describe-state-machine: --revision: must be a positive integer, not "
            "'latest'\n");
  EXPECT_TRUE(fake_.describe_state_machine.requests().empty());
}

TEST_F(ServerCommandsTest, ListStateMachinesFollowsNextToken) {
  fake_.list_state_machines.Set(
      [](const pb::ListStateMachinesRequest& req, pb::ListStateMachinesResponse* resp) {
        auto add = [&](const std::string& name, pb::StateMachineType type) {
          pb::StateMachine* m = resp->add_state_machines();
          m->set_state_machine_arn("arn:saga:states:::stateMachine:" + name);
          m->set_name(name);
          m->set_type(type);
          m->set_revision(1);
          m->set_creation_date(kDate);
        };
        if (req.next_token().empty()) {
          add("a", pb::STANDARD);
          resp->set_next_token("page2");
        } else if (req.next_token() == "page2") {
          add("b", pb::EXPRESS);
          resp->set_next_token("page3");
        }  // page3: empty and final
        return grpc::Status::OK;
      });
  Result r = Run({"list-state-machines"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"stateMachines\":["
            "{\"stateMachineArn\":\"arn:saga:states:::stateMachine:a\",\"name\":\"a\","
            "\"type\":\"STANDARD\",\"revision\":1,\"creationDate\":\"2024-05-01T10:00:00.000Z\"},"
            "{\"stateMachineArn\":\"arn:saga:states:::stateMachine:b\",\"name\":\"b\","
            "\"type\":\"EXPRESS\",\"revision\":1,\"creationDate\":\"2024-05-01T10:00:00.000Z\"}"
            "]}\n");
  auto reqs = fake_.list_state_machines.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].next_token(), "");
  EXPECT_EQ(reqs[1].next_token(), "page2");
  EXPECT_EQ(reqs[2].next_token(), "page3");
}

TEST_F(ServerCommandsTest, ListStateMachinesRepeatedTokenIsAnError) {
  fake_.list_state_machines.Set([](const auto&, pb::ListStateMachinesResponse* resp) {
    resp->set_next_token("same");
    return grpc::Status::OK;
  });
  Result r = Run({"list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "sagactl: list-state-machines: server returned the same next_token twice\n");
}

TEST_F(ServerCommandsTest, DeleteStateMachine) {
  fake_.delete_state_machine.Set(
      [](const auto&, pb::DeleteStateMachineResponse*) { return grpc::Status::OK; });
  Result r = Run({"delete-state-machine", "--name", "orders"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{}\n");
  ASSERT_EQ(fake_.delete_state_machine.requests().size(), 1u);
  EXPECT_EQ(fake_.delete_state_machine.requests()[0].name(), "orders");
}

TEST_F(ServerCommandsTest, DeleteStateMachineNotFound) {
  fake_.delete_state_machine.Set([](const auto&, pb::DeleteStateMachineResponse*) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "state machine 'x' does not exist");
  });
  Result r = Run({"delete-state-machine", "--name", "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "sagactl: delete-state-machine: NOT_FOUND: state machine 'x' does not exist\n");
}

// --- Executions ----------------------------------------------------------------

TEST_F(ServerCommandsTest, StartExecution) {
  fake_.start_execution.Set([](const auto&, pb::StartExecutionResponse* resp) {
    resp->set_execution_arn(kArn);
    resp->set_start_date(kDate);
    return grpc::Status::OK;
  });
  Result r = Run({"start-execution", "--state-machine", "orders", "--name", "run-1", "--input",
                  R"({"orderId": 7})"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "{\"executionArn\":\"arn:saga:states:::execution:orders:run-1\","
            "\"startDate\":\"2024-05-01T10:00:00.000Z\"}\n");
  auto reqs = fake_.start_execution.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].state_machine(), "orders");
  EXPECT_EQ(reqs[0].name(), "run-1");
  EXPECT_EQ(reqs[0].input(), R"({"orderId": 7})");
}

TEST_F(ServerCommandsTest, StartExecutionReadsInputFile) {
  fake_.start_execution.Set([](const auto&, pb::StartExecutionResponse* resp) {
    resp->set_execution_arn(kArn);
    resp->set_start_date(kDate);
    return grpc::Status::OK;
  });
  std::string path = WriteFile("input.json", "[1, 2, {\"x\": null}]\n");
  Result r = Run({"start-execution", "--state-machine", "orders", "--input", "@" + path});
  EXPECT_EQ(r.code, 0) << r.err;
  auto reqs = fake_.start_execution.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].input(), "[1, 2, {\"x\": null}]\n");
  EXPECT_EQ(reqs[0].name(), "");
}

TEST_F(ServerCommandsTest, StartExecutionRejectsBadInputJson) {
  Result r = Run({"start-execution", "--state-machine", "orders", "--input", "{orderId: 7}"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("sagactl: start-execution: --input: not valid JSON: "));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_TRUE(fake_.start_execution.requests().empty());
}

TEST_F(ServerCommandsTest, StartExecutionUnreadableInputFile) {
  Result r = Run({"start-execution", "--state-machine", "orders", "--input", "@/nonexistent/in"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "sagactl: start-execution: --input: cannot read '/nonexistent/in'\n");
  EXPECT_TRUE(fake_.start_execution.requests().empty());
}

TEST_F(ServerCommandsTest, StartExecutionNotFound) {
  fake_.start_execution.Set([](const auto&, pb::StartExecutionResponse*) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "state machine 'x' does not exist");
  });
  Result r = Run({"start-execution", "--state-machine", "x", "--input", "{}"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "sagactl: start-execution: NOT_FOUND: state machine 'x' does not exist\n");
}

TEST_F(ServerCommandsTest, StartExecutionWaitFollowsHistoryUntilDone) {
  fake_.start_execution.Set([](const auto&, pb::StartExecutionResponse* resp) {
    resp->set_execution_arn(kArn);
    resp->set_start_date(kDate);
    return grpc::Status::OK;
  });
  // The execution advances one step per DescribeExecution: RUNNING with
  // three events, then SUCCEEDED with all five.
  std::atomic<int> describes{0};
  fake_.describe_execution.Set([&](const pb::DescribeExecutionRequest& req, pb::Execution* resp) {
    int n = ++describes;
    resp->set_execution_arn(req.execution_arn());
    resp->set_state_machine("orders");
    resp->set_name("run-1");
    resp->set_input(R"({"orderId":7})");
    resp->set_start_date(kDate);
    if (n == 1) {
      resp->set_status(pb::RUNNING);
    } else {
      resp->set_status(pb::SUCCEEDED);
      resp->set_output(R"({"charged":true})");
      resp->set_stop_date(kDate2);
    }
    return grpc::Status::OK;
  });
  std::vector<pb::HistoryEvent> events = {
      Event(1, "ExecutionStarted", "", R"({"input":{"orderId":7}})"),
      Event(2, "TaskStateEntered", "ChargePayment"),
      Event(3, "TaskScheduled", "ChargePayment"),
      Event(4, "TaskStateExited", "ChargePayment"),
      Event(5, "ExecutionSucceeded", "", R"({"output":{"charged":true}})"),
  };
  fake_.get_execution_history.Set(
      [&](const pb::GetExecutionHistoryRequest& req, pb::GetExecutionHistoryResponse* resp) {
        EXPECT_FALSE(req.reverse_order());
        PageEvents(events, describes.load() == 1 ? 3 : 5, req, resp);
        return grpc::Status::OK;
      });
  Result r = Run(
      {"start-execution", "--state-machine", "orders", "--input", R"({"orderId":7})", "--wait"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err,
            "   1 ExecutionStarted\n"
            "   2 TaskStateEntered  ChargePayment\n"
            "   3 TaskScheduled  ChargePayment\n"
            "   4 TaskStateExited  ChargePayment\n"
            "   5 ExecutionSucceeded\n");
  EXPECT_EQ(r.out,
            "{\"executionId\":\"arn:saga:states:::execution:orders:run-1\","
            "\"stateMachine\":\"orders\",\"name\":\"run-1\",\"status\":\"SUCCEEDED\","
            "\"input\":{\"orderId\":7},\"output\":{\"charged\":true},\"error\":null,"
            "\"cause\":null,\"startDate\":\"2024-05-01T10:00:00.000Z\","
            "\"stopDate\":\"2024-05-01T10:00:05.000Z\"}\n");
  EXPECT_EQ(describes.load(), 2);
  for (const auto& req : fake_.describe_execution.requests()) {
    EXPECT_EQ(req.execution_arn(), kArn);
  }
  // Two sweeps: pages of 2 over 3 events, then over 5 events.
  auto hist = fake_.get_execution_history.requests();
  ASSERT_EQ(hist.size(), 5u);
  EXPECT_EQ(hist[0].next_token(), "");
  EXPECT_EQ(hist[1].next_token(), "2");
  EXPECT_EQ(hist[2].next_token(), "");
  EXPECT_EQ(hist[3].next_token(), "2");
  EXPECT_EQ(hist[4].next_token(), "4");
}

TEST_F(ServerCommandsTest, StartExecutionWaitShowsFailureAndExitsZero) {
  fake_.start_execution.Set([](const auto&, pb::StartExecutionResponse* resp) {
    resp->set_execution_arn(kArn);
    resp->set_start_date(kDate);
    return grpc::Status::OK;
  });
  fake_.describe_execution.Set([](const pb::DescribeExecutionRequest& req, pb::Execution* resp) {
    resp->set_execution_arn(req.execution_arn());
    resp->set_state_machine("orders");
    resp->set_name("run-1");
    resp->set_status(pb::FAILED);
    resp->set_input("{}");
    resp->set_error("Payment.Declined");
    resp->set_cause("card declined");
    resp->set_start_date(kDate);
    resp->set_stop_date(kDate2);
    return grpc::Status::OK;
  });
  std::vector<pb::HistoryEvent> events = {
      Event(1, "ExecutionStarted"),
      Event(2, "TaskFailed", "ChargePayment",
            R"({"error":"Payment.Declined","cause":"card\ndeclined"})"),
      Event(3, "ExecutionFailed", "", R"({"error":"Payment.Declined"})"),
  };
  fake_.get_execution_history.Set(
      [&](const pb::GetExecutionHistoryRequest& req, pb::GetExecutionHistoryResponse* resp) {
        PageEvents(events, events.size(), req, resp);
        return grpc::Status::OK;
      });
  Result r = Run({"start-execution", "--state-machine", "orders", "--input", "{}", "--wait"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err,
            "   1 ExecutionStarted\n"
            "   2 TaskFailed  ChargePayment  Payment.Declined: card declined\n"
            "   3 ExecutionFailed  Payment.Declined\n");
  EXPECT_EQ(r.out,
            "{\"executionId\":\"arn:saga:states:::execution:orders:run-1\","
            "\"stateMachine\":\"orders\",\"name\":\"run-1\",\"status\":\"FAILED\","
            "\"input\":{},\"output\":null,\"error\":\"Payment.Declined\","
            "\"cause\":\"card declined\",\"startDate\":\"2024-05-01T10:00:00.000Z\","
            "\"stopDate\":\"2024-05-01T10:00:05.000Z\"}\n");
}

TEST_F(ServerCommandsTest, DescribeExecutionRunning) {
  fake_.describe_execution.Set([](const pb::DescribeExecutionRequest& req, pb::Execution* resp) {
    resp->set_execution_arn(req.execution_arn());
    resp->set_state_machine_arn("arn:saga:states:::stateMachine:orders");
    resp->set_state_machine("orders");
    resp->set_revision(2);
    resp->set_name("run-1");
    resp->set_status(pb::RUNNING);
    resp->set_input(R"({"a": [1, 2.5, "x"]})");
    resp->set_start_date(kDate);
    return grpc::Status::OK;
  });
  Result r = Run({"describe-execution", kArn});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"executionId\":\"arn:saga:states:::execution:orders:run-1\","
            "\"stateMachine\":\"orders\",\"name\":\"run-1\",\"status\":\"RUNNING\","
            "\"input\":{\"a\":[1,2.5,\"x\"]},\"output\":null,\"error\":null,\"cause\":null,"
            "\"startDate\":\"2024-05-01T10:00:00.000Z\",\"stopDate\":null}\n");
  ASSERT_EQ(fake_.describe_execution.requests().size(), 1u);
  EXPECT_EQ(fake_.describe_execution.requests()[0].execution_arn(), kArn);
}

TEST_F(ServerCommandsTest, DescribeExecutionStatuses) {
  std::atomic<int> status{0};
  fake_.describe_execution.Set([&](const auto&, pb::Execution* resp) {
    resp->set_status(static_cast<pb::ExecutionStatus>(status.load()));
    return grpc::Status::OK;
  });
  for (auto [s, name] : std::vector<std::pair<pb::ExecutionStatus, std::string>>{
           {pb::TIMED_OUT, "TIMED_OUT"}, {pb::ABORTED, "ABORTED"}}) {
    status = s;
    Result r = Run({"describe-execution", kArn});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("\"status\":\"" + name + "\""));
  }
}

TEST_F(ServerCommandsTest, DescribeExecutionNotFound) {
  fake_.describe_execution.Set([](const auto&, pb::Execution*) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "execution 'arn:x' does not exist");
  });
  Result r = Run({"describe-execution", "arn:x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "sagactl: describe-execution: NOT_FOUND: execution 'arn:x' does not exist\n");
}

TEST_F(ServerCommandsTest, ListExecutionsFollowsNextTokenAndFilters) {
  fake_.list_executions.Set(
      [](const pb::ListExecutionsRequest& req, pb::ListExecutionsResponse* resp) {
        pb::Execution* e = resp->add_executions();
        e->set_state_machine("orders");
        e->set_start_date(kDate);
        e->set_status(pb::FAILED);
        if (req.next_token().empty()) {
          e->set_execution_arn("arn:e2");
          e->set_name("e2");
          e->set_stop_date(kDate2);
          resp->set_next_token("t1");
        } else {
          e->set_execution_arn("arn:e1");
          e->set_name("e1");
        }
        return grpc::Status::OK;
      });
  Result r = Run({"list-executions", "--state-machine", "orders", "--status", "failed"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"executions\":["
            "{\"executionId\":\"arn:e2\",\"stateMachine\":\"orders\",\"name\":\"e2\","
            "\"status\":\"FAILED\",\"startDate\":\"2024-05-01T10:00:00.000Z\","
            "\"stopDate\":\"2024-05-01T10:00:05.000Z\"},"
            "{\"executionId\":\"arn:e1\",\"stateMachine\":\"orders\",\"name\":\"e1\","
            "\"status\":\"FAILED\",\"startDate\":\"2024-05-01T10:00:00.000Z\","
            "\"stopDate\":null}]}\n");
  auto reqs = fake_.list_executions.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].state_machine(), "orders");
  EXPECT_EQ(reqs[0].status_filter(), pb::FAILED);
  EXPECT_EQ(reqs[1].next_token(), "t1");
  EXPECT_EQ(reqs[1].status_filter(), pb::FAILED);
}

TEST_F(ServerCommandsTest, ListExecutionsBadStatus) {
  Result r = Run({"list-executions", "--state-machine", "orders", "--status", "DONE"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: list-executions: --status: must be RUNNING, SUCCEEDED, FAILED, TIMED_OUT "
            "or ABORTED, not 'DONE'\n");
}

TEST_F(ServerCommandsTest, GetExecutionHistoryMergesDetails) {
  std::vector<pb::HistoryEvent> events = {
      Event(3, "TaskStateEntered", "Charge", R"({"input":{"a":1}})"),
      Event(2, "PassStateExited", "Prepare", R"({"output":"x","id":99})"),
      Event(1, "ExecutionStarted", "", ""),
  };
  fake_.get_execution_history.Set(
      [&](const pb::GetExecutionHistoryRequest& req, pb::GetExecutionHistoryResponse* resp) {
        PageEvents(events, events.size(), req, resp);
        return grpc::Status::OK;
      });
  Result r = Run({"get-execution-history", kArn, "--reverse"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"events\":["
            "{\"id\":3,\"previousEventId\":2,\"timestamp\":\"2024-05-01T10:00:00.000Z\","
            "\"type\":\"TaskStateEntered\",\"stateName\":\"Charge\",\"input\":{\"a\":1}},"
            "{\"id\":2,\"previousEventId\":1,\"timestamp\":\"2024-05-01T10:00:00.000Z\","
            "\"type\":\"PassStateExited\",\"stateName\":\"Prepare\",\"output\":\"x\"},"
            "{\"id\":1,\"previousEventId\":0,\"timestamp\":\"2024-05-01T10:00:00.000Z\","
            "\"type\":\"ExecutionStarted\"}]}\n");
  auto reqs = fake_.get_execution_history.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].execution_arn(), kArn);
  EXPECT_TRUE(reqs[0].reverse_order());
  EXPECT_EQ(reqs[1].next_token(), "2");
  EXPECT_TRUE(reqs[1].reverse_order());
}

TEST_F(ServerCommandsTest, RedriveExecution) {
  fake_.redrive_execution.Set([](const auto&, pb::RedriveExecutionResponse* resp) {
    resp->set_redrive_date(kDate2);
    return grpc::Status::OK;
  });
  Result r = Run({"redrive-execution", kArn});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"redriveDate\":\"2024-05-01T10:00:05.000Z\"}\n");
  auto reqs = fake_.redrive_execution.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].execution_arn(), kArn);
  fake_.redrive_execution.Set([](const auto&, pb::RedriveExecutionResponse*) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "execution_arn: the execution SUCCEEDED; only FAILED, TIMED_OUT and "
                        "ABORTED executions can be redriven");
  });
  r = Run({"redrive-execution", kArn});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, testing::HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(r.err, testing::HasSubstr("execution_arn"));
}

TEST_F(ServerCommandsTest, StopExecution) {
  fake_.stop_execution.Set([](const auto&, pb::StopExecutionResponse* resp) {
    resp->set_stop_date(kDate2);
    return grpc::Status::OK;
  });
  Result r = Run({"stop-execution", kArn, "--error", "Ops.Abort", "--cause", "bad deploy"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"stopDate\":\"2024-05-01T10:00:05.000Z\"}\n");
  auto reqs = fake_.stop_execution.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].execution_arn(), kArn);
  EXPECT_EQ(reqs[0].error(), "Ops.Abort");
  EXPECT_EQ(reqs[0].cause(), "bad deploy");
  EXPECT_FALSE(reqs[0].compensate());
  r = Run({"stop-execution", kArn, "--compensate"});
  EXPECT_EQ(r.code, 0) << r.err;
  reqs = fake_.stop_execution.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_TRUE(reqs[1].compensate());
}

// --- Activities --------------------------------------------------------------

TEST_F(ServerCommandsTest, GetActivityTask) {
  fake_.get_activity_task.Set([](const auto&, pb::GetActivityTaskResponse* resp) {
    resp->set_task_token("tok-1");
    resp->set_input(R"({"amount":12.5})");
    resp->set_execution_arn(kArn);
    resp->set_state_name("ChargePayment");
    resp->set_attempt(2);
    resp->set_timeout_seconds(30);
    return grpc::Status::OK;
  });
  Result r = Run({"get-activity-task", "--activity", "arn:saga:activity:charge", "--worker", "w1",
                  "--wait-seconds", "5"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"taskToken\":\"tok-1\",\"input\":{\"amount\":12.5},"
            "\"executionArn\":\"arn:saga:states:::execution:orders:run-1\","
            "\"stateName\":\"ChargePayment\",\"attempt\":2}\n");
  auto reqs = fake_.get_activity_task.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].activity(), "arn:saga:activity:charge");
  EXPECT_EQ(reqs[0].worker_name(), "w1");
  EXPECT_EQ(reqs[0].wait_seconds(), 5);
}

TEST_F(ServerCommandsTest, GetActivityTaskNone) {
  fake_.get_activity_task.Set(
      [](const auto&, pb::GetActivityTaskResponse*) { return grpc::Status::OK; });
  Result r = Run({"get-activity-task", "--activity", "charge"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"taskToken\":null}\n");
  ASSERT_EQ(fake_.get_activity_task.requests().size(), 1u);
  EXPECT_EQ(fake_.get_activity_task.requests()[0].wait_seconds(), 0);
}

TEST_F(ServerCommandsTest, GetActivityTaskBadWaitSeconds) {
  Result r = Run({"get-activity-task", "--activity", "charge", "--wait-seconds", "61"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: get-activity-task: --wait-seconds: must be an integer from 0 to 60, not "
            "'61'\n");
}

TEST_F(ServerCommandsTest, SendTaskSuccess) {
  fake_.send_task_success.Set(
      [](const auto&, pb::SendTaskSuccessResponse*) { return grpc::Status::OK; });
  Result r = Run({"send-task-success", "--task-token", "tok-1", "--output", R"({"ok":true})"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{}\n");
  std::string path = WriteFile("output.json", R"("done")");
  r = Run({"send-task-success", "--task-token", "tok-2", "--output", "@" + path});
  EXPECT_EQ(r.code, 0) << r.err;
  auto reqs = fake_.send_task_success.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].task_token(), "tok-1");
  EXPECT_EQ(reqs[0].output(), R"({"ok":true})");
  EXPECT_EQ(reqs[1].task_token(), "tok-2");
  EXPECT_EQ(reqs[1].output(), R"("done")");
}

TEST_F(ServerCommandsTest, SendTaskSuccessBadOutputJson) {
  Result r = Run({"send-task-success", "--task-token", "t", "--output", "not json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: send-task-success: --output: not valid JSON: "));
  EXPECT_TRUE(fake_.send_task_success.requests().empty());
}

TEST_F(ServerCommandsTest, SendTaskSuccessStaleToken) {
  fake_.send_task_success.Set([](const auto&, pb::SendTaskSuccessResponse*) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "task token is stale");
  });
  Result r = Run({"send-task-success", "--task-token", "t", "--output", "{}"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "sagactl: send-task-success: FAILED_PRECONDITION: task token is stale\n");
}

TEST_F(ServerCommandsTest, SendTaskFailureAndHeartbeat) {
  fake_.send_task_failure.Set(
      [](const auto&, pb::SendTaskFailureResponse*) { return grpc::Status::OK; });
  fake_.send_task_heartbeat.Set(
      [](const auto&, pb::SendTaskHeartbeatResponse*) { return grpc::Status::OK; });
  Result r = Run({"send-task-failure", "--task-token", "t1", "--error", "E", "--cause", "C"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{}\n");
  r = Run({"send-task-heartbeat", "--task-token", "t2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{}\n");
  // Left out unless given; given empty, sent empty (AWS tells them apart).
  r = Run({"send-task-failure", "--task-token", "t3"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Run({"send-task-failure", "--task-token", "t4", "--cause", ""});
  EXPECT_EQ(r.code, 0) << r.err;
  auto failures = fake_.send_task_failure.requests();
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_EQ(failures[0].task_token(), "t1");
  EXPECT_EQ(failures[0].error(), "E");
  EXPECT_EQ(failures[0].cause(), "C");
  EXPECT_FALSE(failures[1].has_error());
  EXPECT_FALSE(failures[1].has_cause());
  EXPECT_FALSE(failures[2].has_error());
  ASSERT_TRUE(failures[2].has_cause());
  EXPECT_EQ(failures[2].cause(), "");
  auto beats = fake_.send_task_heartbeat.requests();
  ASSERT_EQ(beats.size(), 1u);
  EXPECT_EQ(beats[0].task_token(), "t2");
}

TEST_F(ServerCommandsTest, ListWorkers) {
  fake_.list_workers.Set([](const pb::ListWorkersRequest& req, pb::ListWorkersResponse* resp) {
    if (req.activity() == "none") return grpc::Status::OK;
    pb::WorkerInfo* w = resp->add_workers();
    w->set_worker_id("pay-1#3");
    w->set_identity("pay-1");
    w->add_activities("payments.charge");
    w->add_activities("payments.refund");
    w->set_max_concurrency(8);
    w->set_tasks_held(2);
    w->set_connected_date("2026-12-04T04:40:00.000Z");
    w->set_peer("ipv4:10.0.0.5:41234");
    return grpc::Status::OK;
  });
  Result r = Run({"list-workers"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            R"({"workers":[{"workerId":"pay-1#3","identity":"pay-1",)"
            R"("activities":["payments.charge","payments.refund"],"maxConcurrency":8,"tasksHeld":2,)"
            R"("connectedDate":"2026-12-04T04:40:00.000Z","peer":"ipv4:10.0.0.5:41234"}]})"
            "\n");
  r = Run({"list-workers", "--activity", "none"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"workers\":[]}\n");
  auto reqs = fake_.list_workers.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].activity(), "");
  EXPECT_EQ(reqs[1].activity(), "none");
}

// --- Flags and addresses -------------------------------------------------------

TEST_F(ServerCommandsTest, AddressAfterCommandWordAndEqualsForm) {
  fake_.delete_state_machine.Set(
      [](const auto&, pb::DeleteStateMachineResponse*) { return grpc::Status::OK; });
  Result r = RunRaw({"delete-state-machine", "--name", "a", "--address", address_});
  EXPECT_EQ(r.code, 0) << r.err;
  r = RunRaw({"--address=" + address_, "delete-state-machine", "--name=b"});
  EXPECT_EQ(r.code, 0) << r.err;
  auto reqs = fake_.delete_state_machine.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].name(), "b");
}

TEST_F(ServerCommandsTest, AddressFromEnvironment) {
  fake_.delete_state_machine.Set(
      [](const auto&, pb::DeleteStateMachineResponse*) { return grpc::Status::OK; });
  ASSERT_EQ(setenv("SAGA_ADDRESS", address_.c_str(), 1), 0);
  Result r = RunRaw({"delete-state-machine", "--name", "a"});
  unsetenv("SAGA_ADDRESS");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fake_.delete_state_machine.requests().size(), 1u);
}

TEST_F(ServerCommandsTest, UnreachableServerNamesCodeAndAddress) {
  Result r = RunRaw({"--address", "127.0.0.1:1", "list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: list-state-machines: UNAVAILABLE: "));
  EXPECT_THAT(r.err, HasSubstr("(server 127.0.0.1:1, plaintext)\n"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
}

TEST_F(ServerCommandsTest, BadFlagsPrintUsage) {
  Result r = Run({"delete-state-machine", "--nmae", "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: delete-state-machine: unknown flag '--nmae'\n"
            "usage: sagactl [CONNECTION FLAGS] delete-state-machine --name N\n");

  r = Run({"start-execution", "--input", "{}"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: start-execution: flag '--state-machine' is required\n"
                                "usage: sagactl [CONNECTION FLAGS] start-execution "));

  r = Run({"describe-state-machine", "--name"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: describe-state-machine: flag '--name' needs a value\n"));

  r = Run({"describe-execution"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: describe-execution: EXECUTION_ARN is required\n"));

  r = Run({"describe-execution", "a", "b"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: describe-execution: unexpected argument 'b'\n"));

  r = Run({"list-state-machines", "--wait"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: list-state-machines: unknown flag '--wait'\n"));

  r = Run({"frobnicate"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: unknown command 'frobnicate'\n"));

  r = RunRaw({"--address"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: flag '--address' needs a value\n"));
}

TEST_F(ServerCommandsTest, TlsFlagProblemsNameTheFlagOrVariable) {
  Result r = RunRaw({"--tls-cert", "/tmp/c.pem", "list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: list-state-machines: --tls-cert needs --tls-key (or SAGA_TLS_CLIENT_KEY)\n");
  r = RunRaw({"list-state-machines", "--tls-key=/tmp/k.pem"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: list-state-machines: --tls-key needs --tls-cert (or SAGA_TLS_CLIENT_CERT)\n");
  r = RunRaw({"--tls-ca", "/nonexistent/ca.pem", "list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "sagactl: list-state-machines: --tls-ca: cannot read '/nonexistent/ca.pem'\n");
  ASSERT_EQ(setenv("SAGA_TLS_CA", "/nonexistent/env-ca.pem", 1), 0);
  r = RunRaw({"list-state-machines"});
  unsetenv("SAGA_TLS_CA");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "sagactl: list-state-machines: SAGA_TLS_CA: cannot read '/nonexistent/env-ca.pem'\n");
  r = RunRaw({"--tls-ca"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: flag '--tls-ca' needs a value\n"));
  r = RunRaw({"--tls=1", "list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: unknown flag '--tls=1'\n"));
  r = RunRaw({"--address", address_, "list-state-machines", "--address", address_});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: list-state-machines: flag '--address' given twice\n"));
  // Nothing was sent.
  EXPECT_TRUE(fake_.list_state_machines.requests().empty());
}

TEST_F(ServerCommandsTest, TlsToAPlaintextServerFailsNamingTls) {
  // The fake serves plaintext: a TLS handshake cannot succeed.
  Result r = RunRaw({"--address", address_, "--tls", "list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("sagactl: list-state-machines: UNAVAILABLE: "));
  EXPECT_THAT(r.err, HasSubstr("(server " + address_ + ", TLS)\n"));
  EXPECT_TRUE(fake_.list_state_machines.requests().empty());
}

TEST(ServerCommandsUsageTest, KnowsItsCommands) {
  EXPECT_TRUE(IsServerCommand("start-execution"));
  EXPECT_TRUE(IsServerCommand("send-task-heartbeat"));
  EXPECT_TRUE(IsServerCommand("list-workers"));
  EXPECT_FALSE(IsServerCommand("validate"));
  EXPECT_FALSE(IsServerCommand("test-run"));
  std::string usage = ServerCommandsUsage();
  EXPECT_THAT(usage,
              HasSubstr("  get-activity-task --activity A [--worker W] [--wait-seconds S]\n"));
}

}  // namespace
}  // namespace saga::cli
