// Harness for the integration tests of the durable coordinator: a fresh
// PostgreSQL database per test (on the server of the ctest fixture, whose
// conninfo is in SAGA_TEST_PG), real saga-coordinator processes (start,
// SIGTERM, kill -9), gRPC stubs over loopback, activity workers on threads,
// waits with deadlines, and the engine-alone reference run (RunOffline) to
// compare histories with.
//
// Nothing here sleeps to synchronise: waits are on conditions (condition
// variables, or polling a condition with a deadline).
//
// Thread safety: Worker and CoordinatorProcess are thread-safe; the free
// functions are re-entrant.
#ifndef SAGA_TESTS_INTEGRATION_HARNESS_H_
#define SAGA_TESTS_INTEGRATION_HARNESS_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/engine/events.h"
#include "coordinator/engine/offline_runner.h"
#include "gtest/gtest.h"
#include "saga/v1/saga.grpc.pb.h"

namespace saga::itest {

namespace pb = ::saga::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Stub = pb::SagaCoordinator::Stub;

// --- PostgreSQL ---------------------------------------------------------------

// The conninfo of the fixture's server (SAGA_TEST_PG), or "" when unset.
std::string AdminDsn();
// `dsn` (key=value form) with its dbname replaced.
std::string WithDatabase(const std::string& dsn, const std::string& dbname);

struct SqlResult {
  bool ok = false;
  std::string error;
  std::vector<std::vector<std::string>> rows;  // NULL as ""
};
// Runs one statement on a fresh libpq connection (independent of the code
// under test).
SqlResult RunSql(const std::string& dsn, const std::string& sql);

// A database of its own: CREATE DATABASE t_<random> on construction, DROP
// (WITH FORCE) on destruction.
class TestDatabase {
 public:
  explicit TestDatabase(const std::string& admin_dsn);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  const std::string& dsn() const { return dsn_; }

 private:
  std::string admin_dsn_, name_, dsn_, error_;
};

// Runs scripts/NAME with arguments; returns its exit code (stdout in *out).
int RunScript(const std::string& name, const std::vector<std::string>& args,
              std::string* out = nullptr);

// --- the coordinator process --------------------------------------------------------

class CoordinatorProcess {
 public:
  // Spawns saga-coordinator with `args` (its path comes from CMake).
  explicit CoordinatorProcess(std::vector<std::string> args, std::string label = "coordinator");
  ~CoordinatorProcess();  // kill -9 when still running
  CoordinatorProcess(const CoordinatorProcess&) = delete;
  CoordinatorProcess& operator=(const CoordinatorProcess&) = delete;

  // Waits for "saga-coordinator: listening on HOST:PORT"; false when the
  // process exited or the deadline passed first.
  bool WaitListening(milliseconds timeout);
  // Waits for the process to exit; its exit code (128+signal when killed).
  std::optional<int> WaitExit(milliseconds timeout);
  // kill -9, then reaps it.
  void Kill9();
  // SIGTERM, then waits up to `timeout` for the exit code.
  std::optional<int> Terminate(milliseconds timeout);

  bool running() const;
  pid_t pid() const { return pid_; }
  std::string address() const;  // "127.0.0.1:PORT" once listening
  std::string Stderr() const;   // everything it wrote so far
  std::unique_ptr<Stub> NewStub() const;

 private:
  void ReadLoop(int fd);

  std::string label_;
  pid_t pid_ = -1;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string stderr_;
  std::string address_;
  bool eof_ = false;
  std::optional<int> exit_code_;
  std::thread reader_;
};

struct CoordinatorOptions {
  bool migrate = true;
  std::string token_secret;  // empty: the one stored in the database
  std::string listen = "127.0.0.1:0";
  std::vector<std::string> extra_args;
};
// Starts a coordinator on `dsn` and waits (10 s) until it listens; adds a
// gtest failure and returns nullptr when it does not.
std::unique_ptr<CoordinatorProcess> StartCoordinator(const std::string& dsn,
                                                     const CoordinatorOptions& options = {},
                                                     const std::string& label = "coordinator");

// A stub to HOST:PORT on a channel of its own.
std::unique_ptr<Stub> NewStub(const std::string& address);

// --- RPC helpers -------------------------------------------------------------------

// Adds a failure naming the code and message unless `s` is OK.
::testing::AssertionResult IsOk(const grpc::Status& s);
// A status with `code` whose message contains `needle`.
::testing::AssertionResult HasCode(const grpc::Status& s, grpc::StatusCode code,
                                   const std::string& needle = "");

grpc::Status CreateStateMachine(Stub* stub, const std::string& name, const std::string& definition);
// Starts an execution; its ARN in *arn.
grpc::Status StartExecution(Stub* stub, const std::string& state_machine, const std::string& name,
                            const std::string& input, std::string* arn);
grpc::Status Describe(Stub* stub, const std::string& arn, pb::Execution* out);

// Polls DescribeExecution (retrying UNAVAILABLE) until the execution is no
// longer RUNNING or the timeout passes; the last description seen.
pb::Execution WaitFinished(Stub* stub, const std::string& arn, milliseconds timeout);
// Polls until `pred(describe)` or the timeout; whether it held.
bool WaitDescribe(Stub* stub, const std::string& arn,
                  const std::function<bool(const pb::Execution&)>& pred, milliseconds timeout);
// Polls `cond` until true or the timeout.
bool WaitUntil(const std::function<bool()>& cond, milliseconds timeout);

// The whole history (paged), oldest first.
absl::StatusOr<std::vector<pb::HistoryEvent>> History(Stub* stub, const std::string& arn,
                                                      int page_size = 1000, bool reverse = false);
std::vector<std::string> EventTypes(const std::vector<pb::HistoryEvent>& events);
// Checks ids 1..n consecutive and previous_event_id = id - 1.
::testing::AssertionResult ConsecutiveIds(const std::vector<pb::HistoryEvent>& events);
int CountEvents(const std::vector<pb::HistoryEvent>& events, const std::string& type,
                const std::string& state = "");

// Milliseconds since the epoch of an RFC 3339 UTC timestamp
// ("2024-05-01T12:00:00.123Z"); -1 when malformed.
int64_t TimestampMs(const std::string& ts);
// The first event of `type` (and `state` unless empty); nullptr when none.
const pb::HistoryEvent* FindEvent(const std::vector<pb::HistoryEvent>& events,
                                  const std::string& type, const std::string& state = "",
                                  int nth = 0);

// Parses JSON or adds a failure (returns null).
json::Value ParseJson(const std::string& text);

// --- activity workers ----------------------------------------------------------------

struct Reply {
  enum Kind { kSuccess, kFailure, kNone } kind = kSuccess;
  std::string output = "{}";
  std::string error, cause;
  static Reply Success(std::string output) { return Reply{kSuccess, std::move(output), "", ""}; }
  static Reply Failure(std::string error, std::string cause) {
    return Reply{kFailure, "", std::move(error), std::move(cause)};
  }
  // No answer (the test holds the task, or lets it time out).
  static Reply None() { return Reply{kNone, "", "", ""}; }
};

// A task as the worker received it, and from which coordinator.
struct ReceivedTask {
  pb::GetActivityTaskResponse task;
  size_t from = 0;  // index into the worker's addresses
};

using TaskHandler = std::function<Reply(const ReceivedTask&)>;

// Polls GetActivityTask for `activities` on every address (one thread per
// pair and `threads_per` copies) and answers with the handler. A completion
// that fails with UNAVAILABLE is retried on the next address (task tokens
// are valid on every coordinator of a database) until it is answered.
class Worker {
 public:
  Worker(std::vector<std::string> addresses, std::vector<std::string> activities,
         TaskHandler handler, int threads_per = 1, std::string name = "it-worker");
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Cancels the long polls and joins the threads.
  void Stop();
  // Sends `reply` for a task (held ones too), with the same retries.
  grpc::Status Complete(const ReceivedTask& t, const Reply& reply);

  // Keys are "EXECUTION_ARN|STATE|ATTEMPT".
  std::map<std::string, int> Deliveries() const;
  // Completions answered OK, and those refused with FAILED_PRECONDITION
  // after an UNAVAILABLE try (the first try may have been applied).
  std::map<std::string, int> AckedOk() const;
  std::map<std::string, int> Ambiguous() const;
  int64_t delivered() const { return delivered_.load(); }
  int64_t acked() const { return acked_.load(); }
  // Unexpected statuses seen (anything but OK, UNAVAILABLE, cancellation).
  std::vector<std::string> Errors() const;

  static std::string Key(const pb::GetActivityTaskResponse& t);

 private:
  void PollLoop(size_t address, std::string activity);
  bool WaitStop(milliseconds d);

  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<Stub>> stubs_;
  TaskHandler handler_;
  std::string name_;
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::vector<grpc::ClientContext*> active_;
  std::map<std::string, int> deliveries_, acked_ok_, ambiguous_;
  std::vector<std::string> errors_;
  std::atomic<int64_t> delivered_{0}, acked_{0};
};

// --- the engine alone ------------------------------------------------------------------

// Runs `definition` on `input` with RunOffline and a MockConfigFile
// (`mocks`: {"StateMachines":{"M":{"TestCases":{"T":{...}}}},"MockedResponses":{...}};
// empty: no mocks).
absl::StatusOr<engine::OfflineResult> RunEngineAlone(const std::string& definition,
                                                     const std::string& input,
                                                     const std::string& mocks);

// An event reduced to what must agree between a durable run and the engine
// alone: type, state, details without worker names, wall-clock times and
// ARNs.
std::string Normalize(const std::string& type, const std::string& state,
                      const json::Value& details);
std::vector<std::string> Normalize(const std::vector<pb::HistoryEvent>& events);
std::vector<std::string> Normalize(const std::vector<engine::Event>& events);

// Compares normalized histories: exact order outside Parallel and Map
// states; inside them (between *StateStarted and the state's end), where
// branches and iterations interleave as workers answer, as multisets.
// An empty string when equal, else a description of the first difference.
std::string CompareHistories(const std::vector<std::string>& actual,
                             const std::vector<std::string>& expected);

}  // namespace saga::itest

#endif  // SAGA_TESTS_INTEGRATION_HARNESS_H_
