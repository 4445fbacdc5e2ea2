#include "coordinator/cli/server_commands.h"

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "coordinator/common/json.h"
#include "coordinator/common/pem_file.h"
#include "coordinator/common/strings.h"
#include "saga/v1/saga.grpc.pb.h"

namespace saga::cli {
namespace {

namespace pb = ::saga::v1;
using Stub = pb::SagaCoordinator::Stub;

constexpr char kDefaultAddress[] = "127.0.0.1:7233";
constexpr std::chrono::seconds kRpcTimeout(30);
// GetActivityTask long-polls for up to 60 s.
constexpr std::chrono::seconds kActivityTaskTimeout(70);
constexpr int kPageSize = 1000;
// History pages of large payloads exceed gRPC's 4 MiB default.
constexpr int kMaxReceiveBytes = 256 << 20;

// ---------------------------------------------------------------------------
// Small helpers

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(saga::StrCat("cannot read '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(saga::StrCat("cannot read '", path, "'"));
  return ss.str();
}

// Newlines would break the one-line error contract.
std::string OneLine(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return r;
}

std::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

std::string Upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

json::Value Obj(std::initializer_list<json::Member> members) {
  return json::Value(json::Object(members));
}

json::Value StrOrNull(const std::string& s) { return s.empty() ? json::Value() : json::Value(s); }

// A JSON payload string as a JSON value: null when empty, the string itself
// when the server sent something that does not parse.
json::Value JsonOrNull(const std::string& s) {
  if (s.empty()) return json::Value();
  auto v = json::Parse(s);
  return v.ok() ? *std::move(v) : json::Value(s);
}

std::string TypeName(pb::StateMachineType t) {
  return t == pb::STATE_MACHINE_TYPE_UNSPECIFIED ? "STANDARD" : pb::StateMachineType_Name(t);
}

json::Value ExecutionJson(const pb::Execution& e) {
  return Obj({{"executionId", json::Value(e.execution_arn())},
              {"stateMachine", json::Value(e.state_machine())},
              {"name", json::Value(e.name())},
              {"status", json::Value(pb::ExecutionStatus_Name(e.status()))},
              {"input", JsonOrNull(e.input())},
              {"output", JsonOrNull(e.output())},
              {"error", StrOrNull(e.error())},
              {"cause", StrOrNull(e.cause())},
              {"startDate", json::Value(e.start_date())},
              {"stopDate", StrOrNull(e.stop_date())}});
}

json::Value ExecutionSummaryJson(const pb::Execution& e) {
  return Obj({{"executionId", json::Value(e.execution_arn())},
              {"stateMachine", json::Value(e.state_machine())},
              {"name", json::Value(e.name())},
              {"status", json::Value(pb::ExecutionStatus_Name(e.status()))},
              {"startDate", json::Value(e.start_date())},
              {"stopDate", StrOrNull(e.stop_date())}});
}

json::Value EventJson(const pb::HistoryEvent& ev) {
  json::Value o =
      Obj({{"id", json::Value(static_cast<int64_t>(ev.id()))},
           {"previousEventId", json::Value(static_cast<int64_t>(ev.previous_event_id()))},
           {"timestamp", json::Value(ev.timestamp())},
           {"type", json::Value(ev.type())}});
  if (!ev.state_name().empty()) o.Set("stateName", json::Value(ev.state_name()));
  if (ev.details().empty()) return o;
  auto details = json::Parse(ev.details());
  if (!details.ok() || !details->is_object()) {
    o.Set("details", json::Value(ev.details()));
    return o;
  }
  for (const auto& [key, value] : details->as_object()) {
    if (o.Find(key) == nullptr) o.Set(key, value);
  }
  return o;
}

// "  12 TaskStateEntered  ChargePayment", plus the error of failure events.
std::string EventLine(const pb::HistoryEvent& ev) {
  std::string id = std::to_string(ev.id());
  std::string line = id.size() < 4 ? std::string(4 - id.size(), ' ') : std::string();
  line += saga::StrCat(id, " ", ev.type());
  if (!ev.state_name().empty()) line += saga::StrCat("  ", ev.state_name());
  auto details = json::Parse(ev.details());
  if (details.ok() && details->is_object()) {
    const json::Value* error = details->Find("error");
    const json::Value* cause = details->Find("cause");
    if (error != nullptr && error->is_string() && !error->as_string().empty()) {
      line += saga::StrCat("  ", error->as_string());
      if (cause != nullptr && cause->is_string() && !cause->as_string().empty()) {
        std::string c = OneLine(cause->as_string());
        if (c.size() > 200) c = saga::StrCat(c.substr(0, 200), "...");
        line += saga::StrCat(": ", c);
      }
    }
  }
  return line;
}

// The validation errors of an INVALID_ARGUMENT definition, when the status
// message is the JSON array of {path, message} the server promises.
std::optional<json::Value> ValidationErrors(const grpc::Status& s) {
  if (s.error_code() != grpc::StatusCode::INVALID_ARGUMENT) return std::nullopt;
  auto v = json::Parse(s.error_message());
  if (!v.ok() || !v->is_array() || v->size() == 0) return std::nullopt;
  json::Array errors;
  for (const json::Value& e : v->as_array()) {
    const json::Value* path = e.Find("path");
    const json::Value* message = e.Find("message");
    if (path == nullptr || !path->is_string() || message == nullptr || !message->is_string()) {
      return std::nullopt;
    }
    errors.push_back(Obj({{"path", *path}, {"message", *message}}));
  }
  return json::Value(std::move(errors));
}

// ---------------------------------------------------------------------------
// Flags

struct Args {
  std::map<std::string, std::string, std::less<>> values;
  std::set<std::string, std::less<>> switches;
  std::vector<std::string> positionals;

  bool Has(std::string_view flag) const {
    return values.find(flag) != values.end() || switches.find(flag) != switches.end();
  }
  std::string Get(std::string_view flag) const {
    auto it = values.find(flag);
    return it == values.end() ? std::string() : it->second;
  }
};

// How to reach the server: flags before the command word or among its
// flags, each falling back to an environment variable.
struct Connection {
  std::string address;
  bool tls = false;
  std::optional<PemSource> ca, cert, key;
  std::string server_name;  // expected in the server's certificate
};

struct ConnectionFlag {
  std::string_view flag, env;
};
constexpr ConnectionFlag kConnectionValueFlags[] = {
    {"--address", "SAGA_ADDRESS"},
    {"--tls-ca", "SAGA_TLS_CA"},
    {"--tls-cert", "SAGA_TLS_CLIENT_CERT"},
    {"--tls-key", "SAGA_TLS_CLIENT_KEY"},
    {"--tls-server-name", "SAGA_TLS_SERVER_NAME"},
};
constexpr std::string_view kTlsSwitch = "--tls";

bool IsConnectionValueFlag(std::string_view flag) {
  for (const ConnectionFlag& f : kConnectionValueFlags) {
    if (f.flag == flag) return true;
  }
  return false;
}

// The connection the flags in `args` and the environment describe; a
// problem is a message naming the flag (or variable).
absl::StatusOr<Connection> ConnectionOf(const Args& args) {
  // Each flag's value (`path` also for the address and the server name) and
  // where it came from: the flag, else its variable.
  std::map<std::string_view, PemSource> given;
  for (const ConnectionFlag& f : kConnectionValueFlags) {
    if (args.values.count(f.flag)) {
      given[f.flag] = {args.Get(f.flag), std::string(f.flag)};
    } else if (const char* v = std::getenv(std::string(f.env).c_str()); v != nullptr && *v) {
      given[f.flag] = {v, std::string(f.env)};
    }
  }
  auto value = [&](std::string_view flag) -> std::optional<PemSource> {
    auto it = given.find(flag);
    return it == given.end() ? std::nullopt : std::optional<PemSource>(it->second);
  };
  Connection c;
  const auto address = value("--address");
  c.address = address ? address->path : kDefaultAddress;
  if (c.address.empty()) return absl::InvalidArgumentError("--address: must be HOST:PORT");
  c.ca = value("--tls-ca");
  c.cert = value("--tls-cert");
  c.key = value("--tls-key");
  if (const auto name = value("--tls-server-name")) c.server_name = name->path;
  const char* tls_env = std::getenv("SAGA_TLS");
  c.tls = args.switches.count(kTlsSwitch) > 0 ||
          (tls_env != nullptr &&
           (std::string_view(tls_env) == "1" || std::string_view(tls_env) == "true")) ||
          c.ca || c.cert || c.key || !c.server_name.empty();
  return c;
}

// Channel credentials for `c`: plaintext, or TLS trusting --tls-ca (else
// gRPC's default roots) with the client certificate when given.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> CredentialsOf(const Connection& c) {
  if (!c.tls) return grpc::InsecureChannelCredentials();
  auto pem = ReadClientTlsPem(c.ca, c.cert, c.key);
  if (!pem.ok()) return pem.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = std::move(pem->roots);
  ssl.pem_cert_chain = std::move(pem->cert_chain);
  ssl.pem_private_key = std::move(pem->private_key);
  return grpc::SslCredentials(ssl);
}

class Session;

struct CommandSpec {
  std::string_view name;
  std::string_view usage;  // arguments after the command word
  std::vector<std::string_view> value_flags;
  std::vector<std::string_view> switch_flags;
  std::vector<std::string_view> required;
  std::string_view positional;  // name of the one positional argument, or empty
  int (Session::*run)(const Args&);
};

const std::vector<CommandSpec>& Commands();

// ---------------------------------------------------------------------------
// Commands

class Session {
 public:
  Session(std::string command, const Connection& connection,
          std::shared_ptr<grpc::ChannelCredentials> credentials, std::ostream& out,
          std::ostream& err, const ServerCommandOptions& options)
      : command_(std::move(command)),
        address_(connection.address),
        tls_(connection.tls),
        out_(out),
        err_(err),
        options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    if (!connection.server_name.empty()) args.SetSslTargetNameOverride(connection.server_name);
    stub_ = pb::SagaCoordinator::NewStub(
        grpc::CreateCustomChannel(address_, std::move(credentials), args));
  }

  int CreateStateMachine(const Args& a) {
    pb::CreateStateMachineRequest req;
    req.set_name(a.Get("--name"));
    auto definition = ReadFile(a.Get("--definition"));
    if (!definition.ok())
      return Fail(saga::StrCat("--definition: ", definition.status().message()));
    req.set_definition(*std::move(definition));
    if (a.Has("--type")) {
      std::string type = Upper(a.Get("--type"));
      if (type == "STANDARD") {
        req.set_type(pb::STANDARD);
      } else if (type == "EXPRESS") {
        req.set_type(pb::EXPRESS);
      } else {
        return Fail(
            saga::StrCat("--type: must be STANDARD or EXPRESS, not '", a.Get("--type"), "'"));
      }
    }
    pb::CreateStateMachineResponse resp;
    grpc::Status s = Call(&Stub::CreateStateMachine, req, &resp);
    if (!s.ok()) return DefinitionRpcFail(s);
    return Print(Obj({{"stateMachineArn", json::Value(resp.state_machine_arn())},
                      {"revision", json::Value(resp.revision())},
                      {"creationDate", json::Value(resp.creation_date())}}));
  }

  int UpdateStateMachine(const Args& a) {
    pb::UpdateStateMachineRequest req;
    req.set_name(a.Get("--name"));
    auto definition = ReadFile(a.Get("--definition"));
    if (!definition.ok())
      return Fail(saga::StrCat("--definition: ", definition.status().message()));
    req.set_definition(*std::move(definition));
    pb::UpdateStateMachineResponse resp;
    grpc::Status s = Call(&Stub::UpdateStateMachine, req, &resp);
    if (!s.ok()) return DefinitionRpcFail(s);
    return Print(Obj({{"revision", json::Value(resp.revision())},
                      {"updateDate", json::Value(resp.update_date())}}));
  }

  int DescribeStateMachine(const Args& a) {
    pb::DescribeStateMachineRequest req;
    req.set_name(a.Get("--name"));
    if (a.Has("--revision")) {
      int32_t revision = 0;
      if (!absl::SimpleAtoi(a.Get("--revision"), &revision) || revision < 1) {
        return Fail(saga::StrCat("--revision: must be a positive integer, not '",
                                 a.Get("--revision"), "'"));
      }
      req.set_revision(revision);
    }
    pb::StateMachine resp;
    grpc::Status s = Call(&Stub::DescribeStateMachine, req, &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(Obj({{"stateMachineArn", json::Value(resp.state_machine_arn())},
                      {"name", json::Value(resp.name())},
                      {"type", json::Value(TypeName(resp.type()))},
                      {"revision", json::Value(resp.revision())},
                      {"definition", JsonOrNull(resp.definition())},
                      {"creationDate", json::Value(resp.creation_date())},
                      {"updateDate", StrOrNull(resp.update_date())}}));
  }

  int ListStateMachines(const Args& /*a*/) {
    json::Array machines;
    pb::ListStateMachinesRequest req;
    req.set_max_results(kPageSize);
    while (true) {
      pb::ListStateMachinesResponse resp;
      grpc::Status s = Call(&Stub::ListStateMachines, req, &resp);
      if (!s.ok()) return RpcFail(s);
      for (const pb::StateMachine& m : resp.state_machines()) {
        machines.push_back(Obj({{"stateMachineArn", json::Value(m.state_machine_arn())},
                                {"name", json::Value(m.name())},
                                {"type", json::Value(TypeName(m.type()))},
                                {"revision", json::Value(m.revision())},
                                {"creationDate", json::Value(m.creation_date())}}));
      }
      if (resp.next_token().empty()) break;
      if (resp.next_token() == req.next_token()) return RepeatedTokenFail();
      req.set_next_token(resp.next_token());
    }
    return Print(Obj({{"stateMachines", json::Value(std::move(machines))}}));
  }

  int DeleteStateMachine(const Args& a) {
    pb::DeleteStateMachineRequest req;
    req.set_name(a.Get("--name"));
    pb::DeleteStateMachineResponse resp;
    grpc::Status s = Call(&Stub::DeleteStateMachine, req, &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(json::Value::EmptyObject());
  }

  int StartExecution(const Args& a) {
    pb::StartExecutionRequest req;
    req.set_state_machine(a.Get("--state-machine"));
    req.set_name(a.Get("--name"));
    auto input = JsonFlag(a, "--input");
    if (!input.ok()) return Fail(saga::StrCat("--input: ", input.status().message()));
    req.set_input(*std::move(input));
    pb::StartExecutionResponse resp;
    grpc::Status s = Call(&Stub::StartExecution, req, &resp);
    if (!s.ok()) return RpcFail(s);
    if (a.Has("--wait")) return Wait(resp.execution_arn());
    return Print(Obj({{"executionArn", json::Value(resp.execution_arn())},
                      {"startDate", json::Value(resp.start_date())}}));
  }

  int DescribeExecution(const Args& a) {
    pb::Execution resp;
    grpc::Status s = Describe(a.positionals[0], &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(ExecutionJson(resp));
  }

  int ListExecutions(const Args& a) {
    pb::ListExecutionsRequest req;
    req.set_state_machine(a.Get("--state-machine"));
    if (a.Has("--status")) {
      pb::ExecutionStatus status;
      if (!pb::ExecutionStatus_Parse(Upper(a.Get("--status")), &status) ||
          status == pb::EXECUTION_STATUS_UNSPECIFIED) {
        return Fail(saga::StrCat(
            "--status: must be RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED, not '",
            a.Get("--status"), "'"));
      }
      req.set_status_filter(status);
    }
    req.set_max_results(kPageSize);
    json::Array executions;
    while (true) {
      pb::ListExecutionsResponse resp;
      grpc::Status s = Call(&Stub::ListExecutions, req, &resp);
      if (!s.ok()) return RpcFail(s);
      for (const pb::Execution& e : resp.executions()) {
        executions.push_back(ExecutionSummaryJson(e));
      }
      if (resp.next_token().empty()) break;
      if (resp.next_token() == req.next_token()) return RepeatedTokenFail();
      req.set_next_token(resp.next_token());
    }
    return Print(Obj({{"executions", json::Value(std::move(executions))}}));
  }

  int GetExecutionHistory(const Args& a) {
    json::Array events;
    grpc::Status s = History(a.positionals[0], a.Has("--reverse"),
                             [&](const pb::HistoryEvent& ev) { events.push_back(EventJson(ev)); });
    if (!s.ok()) return RpcFail(s);
    return Print(Obj({{"events", json::Value(std::move(events))}}));
  }

  int StopExecution(const Args& a) {
    pb::StopExecutionRequest req;
    req.set_execution_arn(a.positionals[0]);
    req.set_error(a.Get("--error"));
    req.set_cause(a.Get("--cause"));
    req.set_compensate(a.Has("--compensate"));
    pb::StopExecutionResponse resp;
    grpc::Status s = Call(&Stub::StopExecution, req, &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(Obj({{"stopDate", json::Value(resp.stop_date())}}));
  }

  int RedriveExecution(const Args& a) {
    pb::RedriveExecutionRequest req;
    req.set_execution_arn(a.positionals[0]);
    pb::RedriveExecutionResponse resp;
    grpc::Status s = Call(&Stub::RedriveExecution, req, &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(Obj({{"redriveDate", json::Value(resp.redrive_date())}}));
  }

  int GetActivityTask(const Args& a) {
    pb::GetActivityTaskRequest req;
    req.set_activity(a.Get("--activity"));
    req.set_worker_name(a.Get("--worker"));
    if (a.Has("--wait-seconds")) {
      int32_t seconds = 0;
      if (!absl::SimpleAtoi(a.Get("--wait-seconds"), &seconds) || seconds < 0 || seconds > 60) {
        return Fail(saga::StrCat("--wait-seconds: must be an integer from 0 to 60, not '",
                                 a.Get("--wait-seconds"), "'"));
      }
      req.set_wait_seconds(seconds);
    }
    pb::GetActivityTaskResponse resp;
    grpc::Status s = Call(&Stub::GetActivityTask, req, &resp, kActivityTaskTimeout);
    if (!s.ok()) return RpcFail(s);
    if (resp.task_token().empty()) return Print(Obj({{"taskToken", json::Value()}}));
    return Print(Obj({{"taskToken", json::Value(resp.task_token())},
                      {"input", JsonOrNull(resp.input())},
                      {"executionArn", json::Value(resp.execution_arn())},
                      {"stateName", json::Value(resp.state_name())},
                      {"attempt", json::Value(static_cast<int64_t>(resp.attempt()))}}));
  }

  int SendTaskSuccess(const Args& a) {
    pb::SendTaskSuccessRequest req;
    req.set_task_token(a.Get("--task-token"));
    auto output = JsonFlag(a, "--output");
    if (!output.ok()) return Fail(saga::StrCat("--output: ", output.status().message()));
    req.set_output(*std::move(output));
    pb::SendTaskSuccessResponse resp;
    grpc::Status s = Call(&Stub::SendTaskSuccess, req, &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(json::Value::EmptyObject());
  }

  int SendTaskFailure(const Args& a) {
    pb::SendTaskFailureRequest req;
    req.set_task_token(a.Get("--task-token"));
    // Left out unless given (`--cause ''` sends an empty cause).
    if (a.Has("--error")) req.set_error(a.Get("--error"));
    if (a.Has("--cause")) req.set_cause(a.Get("--cause"));
    pb::SendTaskFailureResponse resp;
    grpc::Status s = Call(&Stub::SendTaskFailure, req, &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(json::Value::EmptyObject());
  }

  int ListWorkers(const Args& a) {
    pb::ListWorkersRequest req;
    req.set_activity(a.Get("--activity"));
    pb::ListWorkersResponse resp;
    grpc::Status s = Call(&Stub::ListWorkers, req, &resp);
    if (!s.ok()) return RpcFail(s);
    json::Array workers;
    for (const pb::WorkerInfo& w : resp.workers()) {
      json::Array activities;
      for (const std::string& x : w.activities()) activities.push_back(json::Value(x));
      workers.push_back(Obj({{"workerId", json::Value(w.worker_id())},
                             {"identity", json::Value(w.identity())},
                             {"activities", json::Value(std::move(activities))},
                             {"maxConcurrency", json::Value(w.max_concurrency())},
                             {"tasksHeld", json::Value(w.tasks_held())},
                             {"connectedDate", json::Value(w.connected_date())},
                             {"peer", json::Value(w.peer())}}));
    }
    return Print(Obj({{"workers", json::Value(std::move(workers))}}));
  }

  int SendTaskHeartbeat(const Args& a) {
    pb::SendTaskHeartbeatRequest req;
    req.set_task_token(a.Get("--task-token"));
    pb::SendTaskHeartbeatResponse resp;
    grpc::Status s = Call(&Stub::SendTaskHeartbeat, req, &resp);
    if (!s.ok()) return RpcFail(s);
    return Print(json::Value::EmptyObject());
  }

 private:
  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp, std::chrono::seconds timeout = kRpcTimeout) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    return (stub_.get()->*method)(&ctx, req, resp);
  }

  grpc::Status Describe(const std::string& arn, pb::Execution* execution) {
    pb::DescribeExecutionRequest req;
    req.set_execution_arn(arn);
    return Call(&Stub::DescribeExecution, req, execution);
  }

  // Every event of the execution, following next_token to the last page.
  grpc::Status History(const std::string& arn, bool reverse,
                       const std::function<void(const pb::HistoryEvent&)>& fn) {
    pb::GetExecutionHistoryRequest req;
    req.set_execution_arn(arn);
    req.set_max_results(kPageSize);
    req.set_reverse_order(reverse);
    while (true) {
      pb::GetExecutionHistoryResponse resp;
      grpc::Status s = Call(&Stub::GetExecutionHistory, req, &resp);
      if (!s.ok()) return s;
      for (const pb::HistoryEvent& ev : resp.events()) fn(ev);
      if (resp.next_token().empty()) return grpc::Status::OK;
      if (resp.next_token() == req.next_token()) {
        return grpc::Status(grpc::StatusCode::INTERNAL,
                            "server returned the same next_token twice");
      }
      req.set_next_token(resp.next_token());
    }
  }

  // start-execution --wait: prints new history events to err until the
  // execution is no longer RUNNING, then its description to out. Describe
  // comes before each history sweep so the events of a closed execution are
  // all printed before its description.
  int Wait(const std::string& arn) {
    int64_t last_id = 0;
    while (true) {
      pb::Execution execution;
      grpc::Status s = Describe(arn, &execution);
      if (!s.ok()) return RpcFail(s);
      // A running execution's history has no stable last page to resume
      // from, so each sweep reads from the start and skips seen events.
      s = History(arn, /*reverse=*/false, [&](const pb::HistoryEvent& ev) {
        if (ev.id() <= last_id) return;
        last_id = ev.id();
        err_ << EventLine(ev) << "\n";
      });
      if (!s.ok()) return RpcFail(s);
      err_.flush();
      if (execution.status() != pb::RUNNING) return Print(ExecutionJson(execution));
      std::this_thread::sleep_for(options_.poll_interval);
    }
  }

  // JSON|@FILE: the text, validated as JSON.
  static absl::StatusOr<std::string> JsonFlag(const Args& a, std::string_view flag) {
    std::string text = a.Get(flag);
    if (!text.empty() && text[0] == '@') {
      auto file = ReadFile(text.substr(1));
      if (!file.ok()) return file.status();
      text = *std::move(file);
    }
    auto parsed = json::Parse(text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          saga::StrCat("not valid JSON: ", OneLine(saga::ToStd(parsed.status().message()))));
    }
    return text;
  }

  int Print(const json::Value& v) {
    out_ << v.Dump() << "\n";
    out_.flush();
    return 0;
  }

  template <typename T>
  int Fail(const T& message) {
    err_ << "sagactl: " << command_ << ": " << OneLine(saga::StrCat(message)) << "\n";
    return 1;
  }

  int RpcFail(const grpc::Status& s) {
    std::string message = saga::StrCat(CodeName(s.error_code()), ": ", s.error_message());
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      message += saga::StrCat(" (server ", address_, tls_ ? ", TLS" : ", plaintext", ")");
    }
    return Fail(message);
  }

  int DefinitionRpcFail(const grpc::Status& s) {
    std::optional<json::Value> errors = ValidationErrors(s);
    if (!errors) return RpcFail(s);
    Print(Obj({{"valid", json::Value(false)}, {"errors", *std::move(errors)}}));
    return 2;
  }

  int RepeatedTokenFail() { return Fail("server returned the same next_token twice"); }

  std::string command_;
  std::string address_;
  bool tls_;
  std::ostream& out_;
  std::ostream& err_;
  ServerCommandOptions options_;
  std::unique_ptr<Stub> stub_;
};

const std::vector<CommandSpec>& Commands() {
  static const auto* const kCommands = new std::vector<CommandSpec>{
      {"create-state-machine",
       "--name N --definition FILE [--type STANDARD|EXPRESS]",
       {"--name", "--definition", "--type"},
       {},
       {"--name", "--definition"},
       "",
       &Session::CreateStateMachine},
      {"update-state-machine",
       "--name N --definition FILE",
       {"--name", "--definition"},
       {},
       {"--name", "--definition"},
       "",
       &Session::UpdateStateMachine},
      {"describe-state-machine",
       "--name N [--revision R]",
       {"--name", "--revision"},
       {},
       {"--name"},
       "",
       &Session::DescribeStateMachine},
      {"list-state-machines", "", {}, {}, {}, "", &Session::ListStateMachines},
      {"delete-state-machine",
       "--name N",
       {"--name"},
       {},
       {"--name"},
       "",
       &Session::DeleteStateMachine},
      {"start-execution",
       "--state-machine N [--name X] --input JSON|@FILE [--wait]",
       {"--state-machine", "--name", "--input"},
       {"--wait"},
       {"--state-machine", "--input"},
       "",
       &Session::StartExecution},
      {"describe-execution",
       "EXECUTION_ARN",
       {},
       {},
       {},
       "EXECUTION_ARN",
       &Session::DescribeExecution},
      {"list-executions",
       "--state-machine N [--status RUNNING|SUCCEEDED|FAILED|TIMED_OUT|ABORTED]",
       {"--state-machine", "--status"},
       {},
       {"--state-machine"},
       "",
       &Session::ListExecutions},
      {"get-execution-history",
       "EXECUTION_ARN [--reverse]",
       {},
       {"--reverse"},
       {},
       "EXECUTION_ARN",
       &Session::GetExecutionHistory},
      {"stop-execution",
       "EXECUTION_ARN [--error E] [--cause C] [--compensate]",
       {"--error", "--cause"},
       {"--compensate"},
       {},
       "EXECUTION_ARN",
       &Session::StopExecution},
      {"redrive-execution",
       "EXECUTION_ARN",
       {},
       {},
       {},
       "EXECUTION_ARN",
       &Session::RedriveExecution},
      {"get-activity-task",
       "--activity A [--worker W] [--wait-seconds S]",
       {"--activity", "--worker", "--wait-seconds"},
       {},
       {"--activity"},
       "",
       &Session::GetActivityTask},
      {"send-task-success",
       "--task-token T --output JSON|@FILE",
       {"--task-token", "--output"},
       {},
       {"--task-token", "--output"},
       "",
       &Session::SendTaskSuccess},
      {"send-task-failure",
       "--task-token T [--error E] [--cause C]",
       {"--task-token", "--error", "--cause"},
       {},
       {"--task-token"},
       "",
       &Session::SendTaskFailure},
      {"send-task-heartbeat",
       "--task-token T",
       {"--task-token"},
       {},
       {"--task-token"},
       "",
       &Session::SendTaskHeartbeat},
      {"list-workers", "[--activity A]", {"--activity"}, {}, {}, "", &Session::ListWorkers},
  };
  return *kCommands;
}

const CommandSpec* FindCommand(std::string_view name) {
  for (const CommandSpec& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

bool Contains(const std::vector<std::string_view>& v, std::string_view s) {
  for (std::string_view x : v) {
    if (x == s) return true;
  }
  return false;
}

std::string CommandUsage(const CommandSpec& c) {
  std::string u = saga::StrCat("sagactl [CONNECTION FLAGS] ", c.name);
  if (!c.usage.empty()) u += saga::StrCat(" ", c.usage);
  return u;
}

// Parses a command's arguments into `args`; on a problem returns the one-line
// message (the caller adds the usage).
std::optional<std::string> ParseArgs(const CommandSpec& spec, const std::vector<std::string>& argv,
                                     Args* args) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 2 || a.compare(0, 2, "--") != 0) {
      if (spec.positional.empty() || !args->positionals.empty()) {
        return saga::StrCat("unexpected argument '", a, "'");
      }
      args->positionals.push_back(a);
      continue;
    }
    size_t eq = a.find('=');
    std::string flag = a.substr(0, eq);
    if (IsConnectionValueFlag(flag) || Contains(spec.value_flags, flag)) {
      std::string value;
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
      } else if (i + 1 < argv.size()) {
        value = argv[++i];
      } else {
        return saga::StrCat("flag '", flag, "' needs a value");
      }
      if (args->values.find(flag) != args->values.end()) {
        return saga::StrCat("flag '", flag, "' given twice");
      }
      args->values[flag] = std::move(value);
    } else if (flag == kTlsSwitch || Contains(spec.switch_flags, flag)) {
      if (eq != std::string::npos) return saga::StrCat("flag '", flag, "' takes no value");
      args->switches.insert(flag);
    } else {
      return saga::StrCat("unknown flag '", a, "'");
    }
  }
  for (std::string_view flag : spec.required) {
    if (!args->Has(flag)) return saga::StrCat("flag '", flag, "' is required");
  }
  if (!spec.positional.empty() && args->positionals.empty()) {
    return saga::StrCat(spec.positional, " is required");
  }
  return std::nullopt;
}

}  // namespace

bool IsServerCommand(std::string_view cmd) { return FindCommand(cmd) != nullptr; }

std::string ServerCommandsUsage() {
  std::string u =
      "connection flags (before or after the command word):\n"
      "  --address HOST:PORT      the coordinator (else $SAGA_ADDRESS, else 127.0.0.1:7233)\n"
      "  --tls                    use TLS, trusting gRPC's default roots ($SAGA_TLS=1)\n"
      "  --tls-ca FILE            use TLS, trusting these PEM CA certificates ($SAGA_TLS_CA)\n"
      "  --tls-cert FILE --tls-key FILE\n"
      "                           present this client certificate and key (mutual TLS;\n"
      "                           $SAGA_TLS_CLIENT_CERT, $SAGA_TLS_CLIENT_KEY)\n"
      "  --tls-server-name NAME   the name expected in the server's certificate, when the\n"
      "                           address does not carry it ($SAGA_TLS_SERVER_NAME)\n"
      "server commands:\n";
  for (const CommandSpec& c : Commands()) {
    u += saga::StrCat("  ", c.name);
    if (!c.usage.empty()) u += saga::StrCat(" ", c.usage);
    u += "\n";
  }
  return u;
}

int RunServerCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err,
                     const ServerCommandOptions& options) {
  // Connection flags before the command word.
  Args global;
  size_t i = 0;
  for (; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.empty() || a[0] != '-') break;
    const size_t eq = a.find('=');
    const std::string flag = a.substr(0, eq);
    if (flag == kTlsSwitch && eq == std::string::npos) {
      global.switches.insert(flag);
      continue;
    }
    if (!IsConnectionValueFlag(flag)) {
      err << "sagactl: unknown flag '" << a << "'\n" << ServerCommandsUsage();
      return 1;
    }
    std::string value;
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
    } else {
      err << "sagactl: flag '" << flag << "' needs a value\n" << ServerCommandsUsage();
      return 1;
    }
    global.values[flag] = std::move(value);
  }
  if (i >= argv.size()) {
    err << "sagactl: missing command\n" << ServerCommandsUsage();
    return 1;
  }
  const std::string& name = argv[i];
  const CommandSpec* spec = FindCommand(name);
  if (spec == nullptr) {
    err << "sagactl: unknown command '" << name << "'\n" << ServerCommandsUsage();
    return 1;
  }
  std::vector<std::string> rest(argv.begin() + static_cast<std::ptrdiff_t>(i) + 1, argv.end());
  for (const std::string& a : rest) {
    if (a == "--help" || a == "-h") {
      out << "usage: " << CommandUsage(*spec) << "\n";
      return 0;
    }
  }
  Args args;
  if (std::optional<std::string> problem = ParseArgs(*spec, rest, &args)) {
    err << "sagactl: " << name << ": " << *problem << "\nusage: " << CommandUsage(*spec) << "\n";
    return 1;
  }
  for (const auto& [flag, value] : global.values) {
    if (args.values.count(flag)) {
      err << "sagactl: " << name << ": flag '" << flag
          << "' given twice\nusage: " << CommandUsage(*spec) << "\n";
      return 1;
    }
    args.values[flag] = value;
  }
  for (const auto& flag : global.switches) args.switches.insert(flag);
  absl::StatusOr<Connection> connection = ConnectionOf(args);
  if (!connection.ok()) {
    err << "sagactl: " << name << ": " << connection.status().message() << "\n";
    return 1;
  }
  auto credentials = CredentialsOf(*connection);
  if (!credentials.ok()) {
    err << "sagactl: " << name << ": " << credentials.status().message() << "\n";
    return 1;
  }
  Session session(name, *connection, *std::move(credentials), out, err, options);
  return (session.*(spec->run))(args);
}

}  // namespace saga::cli
