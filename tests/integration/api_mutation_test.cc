// Random requests against a real coordinator on PostgreSQL: every field of
// every request message filled by protobuf reflection from a dictionary of
// real names, ARNs and task tokens, their near misses, broken and huge JSON,
// and extreme numbers; worker streams sending random message sequences.
//
// What must hold: the coordinator never crashes (the suite also runs under
// ASan+UBSan), answers every call with a status a client can act on (never
// INTERNAL, UNKNOWN or UNIMPLEMENTED; an error always says what is wrong),
// and afterwards still runs executions to the end and has lost none of
// those it accepted.
//
// SAGA_API_MUTATIONS=N sends N requests instead of the default.
#include <map>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"
#include "tests/robustness/mutator.h"

namespace saga::itest {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n;
  }
  return true;
}

class RandomFill {
 public:
  RandomFill(uint64_t seed, std::vector<std::string> strings)
      : rng_(seed), strings_(std::move(strings)) {}
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  // Values that fit a field of this name, picked half of the time for it (so
  // that requests get past their first check and reach deeper).
  void Likely(const std::string& field, std::string value) {
    likely_[field].push_back(std::move(value));
  }

  std::string String() {
    if (Below(8) == 0) {  // a dictionary entry with one character changed, cut or doubled
      std::string s = strings_[Below(strings_.size())];
      if (s.empty()) return "x";
      size_t at = Below(s.size());
      switch (Below(3)) {
        case 0:
          s[at] = "aZ0-_:.{}\"'"[Below(11)];
          break;
        case 1:
          s.resize(at);
          break;
        default:
          s += s;
          break;
      }
      // Invalid UTF-8 in a string field never reaches the service: gRPC's
      // protobuf parsing refuses it (INTERNAL, no message) before our code.
      return ValidUtf8(s) ? s : "x";
    }
    return strings_[Below(strings_.size())];
  }
  int64_t Int() {
    static const int64_t kInts[] = {0,    1,    -1,        2,         7,         100,
                                    1000, 1001, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    return kInts[Below(std::size(kInts))];
  }

  void Fill(Message* m, int depth = 0) {
    const auto* d = m->GetDescriptor();
    const auto* r = m->GetReflection();
    // One member of each oneof at most.
    std::set<const google::protobuf::OneofDescriptor*> oneofs_done;
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (const auto* o = f->real_containing_oneof()) {
        if (oneofs_done.count(o) || Below(o->field_count()) != 0) continue;
        oneofs_done.insert(o);
      } else if (Below(5) == 0) {
        continue;  // left unset
      }
      size_t n = f->is_repeated() ? Below(4) : 1;
      for (size_t k = 0; k < n; ++k) SetOne(m, r, f, depth);
    }
  }

 private:
  void SetOne(Message* m, const google::protobuf::Reflection* r, const FieldDescriptor* f,
              int depth) {
    const bool rep = f->is_repeated();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        auto it = likely_.find(f->name());
        std::string v =
            it != likely_.end() && Below(2) ? it->second[Below(it->second.size())] : String();
        rep ? r->AddString(m, f, v) : r->SetString(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT32:
        rep ? r->AddInt32(m, f, static_cast<int32_t>(Int()))
            : r->SetInt32(m, f, static_cast<int32_t>(Int()));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        rep ? r->AddInt64(m, f, Int()) : r->SetInt64(m, f, Int());
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        rep ? r->AddUInt32(m, f, static_cast<uint32_t>(Int()))
            : r->SetUInt32(m, f, static_cast<uint32_t>(Int()));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        rep ? r->AddUInt64(m, f, static_cast<uint64_t>(Int()))
            : r->SetUInt64(m, f, static_cast<uint64_t>(Int()));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        rep ? r->AddBool(m, f, Below(2) == 0) : r->SetBool(m, f, Below(2) == 0);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        int v = Below(4) == 0 ? 99
                              : f->enum_type()
                                    ->value(static_cast<int>(Below(f->enum_type()->value_count())))
                                    ->number();
        rep ? r->AddEnumValue(m, f, v) : r->SetEnumValue(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 3) Fill(rep ? r->AddMessage(m, f) : r->MutableMessage(m, f), depth + 1);
        break;
      default:
        break;
    }
  }

  std::mt19937_64 rng_;
  std::vector<std::string> strings_;
  std::map<std::string, std::vector<std::string>> likely_;
};

// "" when a client can act on `s`.
std::string Unusable(const grpc::Status& s, const std::string& rpc) {
  // Express workflows come later: refused as the issue says.
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
      s.error_message().find("EXPRESS") != std::string::npos) {
    return "";
  }
  switch (s.error_code()) {
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DATA_LOSS:
      return rpc + ": code " + std::to_string(s.error_code()) + ": " + s.error_message();
    default:
      if (!s.ok() && s.error_message().empty()) return rpc + ": an error without a message";
      return "";
  }
}

constexpr char kMachine[] = R"({"StartAt":"Work","States":{
  "Work":{"Type":"Task","Resource":"fuzz.work","HeartbeatSeconds":30,"Next":"Wait"},
  "Wait":{"Type":"Wait","Seconds":1,"Next":"Callback"},
  "Callback":{"Type":"Task","Resource":"fuzz.work.waitForTaskToken",
    "Parameters":{"token.$":"$$.Task.Token"},"TimeoutSeconds":60,"End":true}}})";

class ApiMutation : public PgTest {};

TEST_F(ApiMutation, RandomRequestsGetUsableAnswersAndLoseNothing) {
  auto coord = Start();
  ASSERT_TRUE(coord);
  auto stub = coord->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "fuzz", kMachine)));
  std::vector<std::string> accepted;  // executions the coordinator said it started
  for (int i = 0; i < 4; ++i) {
    std::string arn;
    ASSERT_TRUE(
        IsOk(StartExecution(stub.get(), "fuzz", "e" + std::to_string(i), R"({"n":1})", &arn)));
    accepted.push_back(arn);
  }
  // A real task token.
  std::string token;
  {
    grpc::ClientContext ctx;
    pb::GetActivityTaskRequest req;
    req.set_activity("fuzz.work");
    req.set_worker_name("fuzzer");
    req.set_wait_seconds(10);
    pb::GetActivityTaskResponse resp;
    ASSERT_TRUE(IsOk(stub->GetActivityTask(&ctx, req, &resp)));
    ASSERT_FALSE(resp.task_token().empty());
    token = resp.task_token();
  }
  std::vector<std::string> strings = {
      "",
      "fuzz",
      "other",
      "arn:saga:states:::stateMachine:fuzz",
      accepted[0],
      accepted[1],
      accepted[0] + ":1",
      token,
      token.substr(0, token.size() / 2),
      "fuzz.work",
      "fuzz.work.waitForTaskToken",
      "{}",
      "{\"n\":1}",
      "[1,2",
      "null",
      "\"s\"",
      "1e999",
      "{\"a\":" + std::string(100, '[') + "}",
      std::string(300000, 'x'),
      "{\"big\":\"" + std::string(270000, 'y') + "\"}",
      kMachine,
      R"({"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}})",
      R"({"StartAt":"P","States":{"P":{"Type":"Nope"}}})",
      "States.ALL",
      "Err",
      "a b",
      "name/with/slash",
      "ünïcödé",
      std::string(81, 'n'),
      "-1",
      "0",
      "abc=="};
  RandomFill fill(static_cast<uint64_t>(mutation::EnvInt("SAGA_API_MUTATION_SEED", 20261202)),
                  strings);
  for (const char* f : {"state_machine", "name"}) fill.Likely(f, "fuzz");
  fill.Likely("state_machine", "arn:saga:states:::stateMachine:fuzz");
  for (int i = 0; i < 4; ++i) fill.Likely("name", "n" + std::to_string(i));
  for (const char* f : {"input", "output"}) {
    fill.Likely(f, "{}");
    fill.Likely(f, R"({"n":2,"s":"x"})");
  }
  fill.Likely("definition", kMachine);
  fill.Likely("activity", "fuzz.work");
  fill.Likely("task_token", token);
  for (const std::string& arn : accepted) fill.Likely("execution_arn", arn);

  const int64_t n = mutation::EnvInt("SAGA_API_MUTATIONS", 400);
  int failures = 0;
  auto check = [&](const grpc::Status& s, const std::string& rpc, const Message& req) {
    if (std::string bad = Unusable(s, rpc); !bad.empty() && ++failures <= 10) {
      ADD_FAILURE() << bad << "\n request: " << req.ShortDebugString().substr(0, 600);
    }
  };
  auto deadline = [](grpc::ClientContext* ctx, int ms) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  };
  std::map<std::string, int> ok, refused;  // by RPC
  int transport_closed = 0;
  // One call of `rpc` with a random request; its response.
  auto call = [&]<typename Req, typename Resp>(
                  grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                  const char* name, int ms) -> Resp {
    Req req;
    fill.Fill(&req);
    Resp resp;
    grpc::ClientContext ctx;
    deadline(&ctx, ms);
    grpc::Status s = (stub.get()->*rpc)(&ctx, req, &resp);
    if constexpr (std::is_same_v<Resp, pb::GetActivityTaskResponse>) {
      // Long polls end at their deadline when no task comes.
      if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return resp;
      if (s.ok() && !resp.task_token().empty()) fill.Likely("task_token", resp.task_token());
    }
    if constexpr (std::is_same_v<Resp, pb::StartExecutionResponse>) {
      if (s.ok()) {
        accepted.push_back(resp.execution_arn());
        fill.Likely("execution_arn", resp.execution_arn());
      }
    }
    check(s, name, req);
    ++(s.ok() ? ok : refused)[name];
    return resp;
  };
  for (int64_t k = 0; k < n; ++k) {
    switch (fill.Below(17)) {
      case 0:
        call(&Stub::CreateStateMachine, "CreateStateMachine", 10000);
        break;
      case 1:
        call(&Stub::UpdateStateMachine, "UpdateStateMachine", 10000);
        break;
      case 2:
        call(&Stub::DescribeStateMachine, "DescribeStateMachine", 10000);
        break;
      case 3:
        call(&Stub::ListStateMachines, "ListStateMachines", 10000);
        break;
      case 4:
        call(&Stub::ValidateStateMachineDefinition, "ValidateStateMachineDefinition", 10000);
        break;
      case 5:
      case 6:
        call(&Stub::StartExecution, "StartExecution", 10000);
        break;
      case 7:
        call(&Stub::DescribeExecution, "DescribeExecution", 10000);
        break;
      case 8:
        call(&Stub::ListExecutions, "ListExecutions", 10000);
        break;
      case 9:
        call(&Stub::GetExecutionHistory, "GetExecutionHistory", 10000);
        break;
      case 10:
        call(&Stub::StopExecution, "StopExecution", 10000);
        break;
      case 11:
        call(&Stub::RedriveExecution, "RedriveExecution", 10000);
        break;
      case 12:
        call(&Stub::GetActivityTask, "GetActivityTask", 200);
        break;
      case 13:
        call(&Stub::SendTaskSuccess, "SendTaskSuccess", 10000);
        break;
      case 14:
        call(&Stub::SendTaskFailure, "SendTaskFailure", 10000);
        break;
      case 15:
        call(&Stub::ListWorkers, "ListWorkers", 10000);
        break;
      default:
        call(&Stub::SendTaskHeartbeat, "SendTaskHeartbeat", 10000);
        break;
    }
    if (k % 20 == 0) {  // a worker stream sending a random sequence
      grpc::ClientContext ctx;
      deadline(&ctx, 10000);
      auto stream = stub->WorkerStream(&ctx);
      std::string sent;
      if (fill.Below(2) == 0) {  // registered, so that the rest reaches the session
        pb::WorkerMessage reg;
        reg.mutable_register_()->set_identity("fuzzer");
        reg.mutable_register_()->add_activities("fuzz.work");
        reg.mutable_register_()->set_max_concurrency(2);
        sent += reg.ShortDebugString() + "\n";
        stream->Write(reg);
      }
      for (size_t m = 1 + fill.Below(5); m > 0; --m) {
        pb::WorkerMessage msg;
        fill.Fill(&msg);
        sent += msg.ShortDebugString().substr(0, 200) + "\n";
        if (!stream->Write(msg)) break;
      }
      stream->WritesDone();
      pb::CoordinatorMessage reply;
      while (stream->Read(&reply)) {
        // Tasks pushed to it: their tokens join the dictionary.
        if (reply.has_task()) fill.Likely("task_token", reply.task().task_token());
      }
      grpc::Status s = stream->Finish();
      // Once in about 10,000 requests under ASan a stream ended UNAVAILABLE
      // "Transport closed" with the coordinator well (not explained). A
      // worker reconnects on UNAVAILABLE, so it is counted, and the test
      // fails only if it recurs.
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE && coord->running()) {
        ++transport_closed;
        std::cout << "WorkerStream UNAVAILABLE: " << s.error_message() << "\n sent: " << sent;
      } else if (std::string bad = Unusable(s, "WorkerStream"); !bad.empty() && ++failures <= 10) {
        ADD_FAILURE() << bad << "\n sent: " << sent;
      }
    }
    if (!coord->running()) break;
  }
  EXPECT_EQ(failures, 0);
  EXPECT_LE(transport_closed, 1);
  ASSERT_TRUE(coord->running()) << coord->Stderr();

  // The random requests reached the service's work, not only its checks.
  int total_ok = 0;
  for (const auto& [rpc, count] : ok) total_ok += count;
  EXPECT_GT(total_ok, n / 20);

  // Everything accepted is still there with a whole history, and a new
  // execution runs to the end.
  for (const std::string& arn : accepted) {
    pb::Execution e;
    EXPECT_TRUE(IsOk(Describe(stub.get(), arn, &e))) << arn;
    auto h = History(stub.get(), arn);
    ASSERT_TRUE(h.ok()) << arn << ": " << h.status();
    EXPECT_TRUE(ConsecutiveIds(*h)) << arn;
  }
  ASSERT_TRUE(IsOk(CreateStateMachine(
      stub.get(), "after", R"({"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}})")));
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "after", "", R"({"ok":true})", &arn)));
  pb::Execution done = WaitFinished(stub.get(), arn, std::chrono::seconds(20));
  EXPECT_EQ(done.status(), pb::SUCCEEDED);
  EXPECT_EQ(done.output(), R"({"ok":true})");
  std::cout << n << " requests, " << accepted.size() << " executions accepted; OK / refused:";
  for (const auto& [rpc, count] : refused)
    std::cout << " " << rpc << " " << ok[rpc] << "/" << count;
  std::cout << "\n";
}

// A stream that registers twice is refused with INVALID_ARGUMENT naming
// register, whether or not tasks were pushed to it meanwhile.
TEST_F(ApiMutation, SecondRegisterEndsTheStreamWithInvalidArgument) {
  auto coord = Start();
  ASSERT_TRUE(coord);
  auto stub = coord->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "fuzz", kMachine)));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(IsOk(StartExecution(stub.get(), "fuzz", "e" + std::to_string(i), "{}", nullptr)));
  }
  for (int round = 0; round < 30; ++round) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->WorkerStream(&ctx);
    pb::WorkerMessage reg;
    reg.mutable_register_()->set_identity("twice");
    reg.mutable_register_()->add_activities("fuzz.work");
    reg.mutable_register_()->set_max_concurrency(2);
    ASSERT_TRUE(stream->Write(reg));
    pb::WorkerMessage again;
    again.mutable_register_()->set_identity("again");
    again.mutable_register_()->set_max_concurrency(-1);
    again.mutable_register_()->add_held_task_tokens("abc==");
    stream->Write(again);
    stream->WritesDone();
    pb::CoordinatorMessage reply;
    while (stream->Read(&reply)) {
    }
    EXPECT_TRUE(HasCode(stream->Finish(), grpc::INVALID_ARGUMENT, "register")) << "round " << round;
  }
}

}  // namespace
}  // namespace saga::itest
