#include "tests/integration/harness.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <random>
#include <sstream>

#include "coordinator/asl/definition.h"
#include "coordinator/common/json.h"
#include "coordinator/common/strings.h"

#ifndef SAGA_COORDINATOR_BIN
#error "SAGA_COORDINATOR_BIN must be defined by CMake"
#endif
#ifndef SAGA_SOURCE_DIR
#error "SAGA_SOURCE_DIR must be defined by CMake"
#endif

extern char** environ;

namespace saga::itest {
namespace {

// An idle gRPC C++ client reads its connections only on the backup poller,
// every 5 s by default: a coordinator draining on SIGTERM would wait that
// long for this process to acknowledge its GOAWAY. Poll often, so the tests
// measure the server's drain rather than this client's poll interval (and
// notice a killed coordinator sooner). Set before gRPC initialises.
const bool kBackupPollSet = [] {
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  return true;
}();

std::string RandomHex(int n) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}() ^
                             static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  static constexpr char kHex[] = "0123456789abcdef";
  std::lock_guard<std::mutex> g(mu);
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(kHex[rng() & 15]);
  return s;
}

std::string CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "CANCELLED";
    case grpc::UNKNOWN:
      return "UNKNOWN";
    case grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::ABORTED:
      return "ABORTED";
    case grpc::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::INTERNAL:
      return "INTERNAL";
    case grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return saga::StrCat("code ", static_cast<int>(c));
  }
}

// Seconds since the test process started, for the coordinators' log lines.
std::string SinceStart() {
  static const Clock::time_point start = Clock::now();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f",
                std::chrono::duration<double>(Clock::now() - start).count());
  return buf;
}

std::string Describe(const grpc::Status& s) {
  return saga::StrCat(CodeName(s.error_code()), ": ", s.error_message());
}

// argv/envp for execve, built before fork (the child may only make
// async-signal-safe calls).
struct Argv {
  explicit Argv(const std::vector<std::string>& args) : strings(args) {
    for (auto& s : strings) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
};

// fork + exec with stdout and stderr on `out_fd` and stdin from /dev/null.
// The child is killed when this thread's process dies (PR_SET_PDEATHSIG), so
// a crashed test leaves no coordinator behind.
pid_t Spawn(const std::vector<std::string>& args, int out_fd) {
  Argv argv(args);
  const pid_t parent = getpid();
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    // The test blocks no signals the child should see, but reset the mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv.ptrs[0], argv.ptrs.data(), environ);
    _exit(127);
  }
  if (devnull >= 0) close(devnull);
  return pid;
}

}  // namespace

// ---------------------------------------------------------------------------
// PostgreSQL

std::string AdminDsn() {
  const char* v = std::getenv("SAGA_TEST_PG");
  return v == nullptr ? "" : v;
}

std::string WithDatabase(const std::string& dsn, const std::string& dbname) {
  std::istringstream in(dsn);
  std::string token, out;
  while (in >> token) {
    if (token.rfind("dbname=", 0) == 0) continue;
    out += token + " ";
  }
  return out + "dbname=" + dbname;
}

SqlResult RunSql(const std::string& dsn, const std::string& sql) {
  SqlResult r;
  PGconn* c = PQconnectdb(dsn.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    r.error = saga::StrCat("connect: ", PQerrorMessage(c));
    PQfinish(c);
    return r;
  }
  PGresult* res = PQexec(c, sql.c_str());
  const ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    r.ok = true;
    for (int i = 0; i < PQntuples(res); ++i) {
      std::vector<std::string> row;
      for (int j = 0; j < PQnfields(res); ++j) row.emplace_back(PQgetvalue(res, i, j));
      r.rows.push_back(std::move(row));
    }
  } else {
    r.error = PQresultErrorMessage(res);
  }
  PQclear(res);
  PQfinish(c);
  return r;
}

TestDatabase::TestDatabase(const std::string& admin_dsn) : admin_dsn_(admin_dsn) {
  if (admin_dsn_.empty()) {
    error_ =
        "SAGA_TEST_PG is not set: run these tests through ctest (the pg:start fixture starts "
        "PostgreSQL and sets it), or set it to a libpq conninfo of a PostgreSQL 15 server";
    return;
  }
  name_ = "t_" + RandomHex(16);
  SqlResult r = RunSql(admin_dsn_, "CREATE DATABASE " + name_);
  if (!r.ok) {
    error_ = "CREATE DATABASE " + name_ + ": " + r.error;
    return;
  }
  dsn_ = WithDatabase(admin_dsn_, name_);
}

TestDatabase::~TestDatabase() {
  if (!dsn_.empty()) RunSql(admin_dsn_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

int RunScript(const std::string& name, const std::vector<std::string>& args, std::string* out) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  std::vector<std::string> argv = {"/bin/bash", std::string(SAGA_SOURCE_DIR) + "/scripts/" + name};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = Spawn(argv, fds[1]);
  close(fds[1]);
  std::string text;
  char buf[4096];
  while (true) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (out != nullptr) *out = text;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::cerr << "[" << name << "] " << text;
  return 128 + WTERMSIG(status);
}

// ---------------------------------------------------------------------------
// The coordinator process

CoordinatorProcess::CoordinatorProcess(std::vector<std::string> args, std::string label)
    : label_(std::move(label)) {
  SinceStart();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    eof_ = true;
    exit_code_ = -1;
    return;
  }
  args.insert(args.begin(), SAGA_COORDINATOR_BIN);
  pid_ = Spawn(args, fds[1]);
  close(fds[1]);
  if (pid_ < 0) {
    close(fds[0]);
    eof_ = true;
    exit_code_ = -1;
    return;
  }
  reader_ = std::thread([this, fd = fds[0]] { ReadLoop(fd); });
}

CoordinatorProcess::~CoordinatorProcess() {
  if (running()) Kill9();
  if (reader_.joinable()) reader_.join();
}

void CoordinatorProcess::ReadLoop(int fd) {
  static constexpr char kListening[] = "saga-coordinator: listening on ";
  char buf[4096];
  std::string line;
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::lock_guard<std::mutex> g(mu_);
    for (ssize_t i = 0; i < n; ++i) {
      stderr_.push_back(buf[i]);
      if (buf[i] != '\n') {
        line.push_back(buf[i]);
        continue;
      }
      std::cerr << "[" << label_ << " " << pid_ << " +" << SinceStart() << "s] " << line
                << std::endl;
      size_t at = line.find(kListening);
      if (at != std::string::npos && address_.empty()) {
        std::string rest = line.substr(at + sizeof(kListening) - 1);
        address_ = rest.substr(0, rest.find(' '));
      }
      line.clear();
    }
    cv_.notify_all();
  }
  close(fd);
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  std::lock_guard<std::mutex> g(mu_);
  eof_ = true;
  exit_code_ = r < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  cv_.notify_all();
}

bool CoordinatorProcess::WaitListening(milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return !address_.empty() || eof_; }) &&
         !address_.empty() && !eof_;
}

std::optional<int> CoordinatorProcess::WaitExit(milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return exit_code_.has_value(); });
  return exit_code_;
}

void CoordinatorProcess::Kill9() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (exit_code_ || pid_ <= 0) return;
    kill(pid_, SIGKILL);
  }
  WaitExit(seconds(30));
}

std::optional<int> CoordinatorProcess::Terminate(milliseconds timeout) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!exit_code_ && pid_ > 0) kill(pid_, SIGTERM);
  }
  return WaitExit(timeout);
}

bool CoordinatorProcess::running() const {
  std::lock_guard<std::mutex> g(mu_);
  return pid_ > 0 && !exit_code_;
}

std::string CoordinatorProcess::address() const {
  std::lock_guard<std::mutex> g(mu_);
  return address_;
}

std::string CoordinatorProcess::Stderr() const {
  std::lock_guard<std::mutex> g(mu_);
  return stderr_;
}

std::unique_ptr<Stub> CoordinatorProcess::NewStub() const { return itest::NewStub(address()); }

std::unique_ptr<CoordinatorProcess> StartCoordinator(const std::string& dsn,
                                                     const CoordinatorOptions& o,
                                                     const std::string& label) {
  std::vector<std::string> args = {"--listen", o.listen, "--database-url", dsn};
  if (!o.migrate) args.push_back("--no-migrate");
  if (!o.token_secret.empty()) {
    args.push_back("--token-secret");
    args.push_back(o.token_secret);
  }
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  auto p = std::make_unique<CoordinatorProcess>(args, label);
  if (!p->WaitListening(seconds(20))) {
    ADD_FAILURE() << label << " did not start listening; its output:\n" << p->Stderr();
    return nullptr;
  }
  return p;
}

std::unique_ptr<Stub> NewStub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as the minimum
  // connect timeout, and a handshake slower than that (ASan on two busy
  // cores) failed the call with "connection attempt timed out before
  // receiving SETTINGS frame". The default gives a handshake 20 s.
  // Each stub its own connection (two stubs to one address must not share).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return pb::SagaCoordinator::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

// ---------------------------------------------------------------------------
// RPC helpers

::testing::AssertionResult IsOk(const grpc::Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << Describe(s);
}

::testing::AssertionResult HasCode(const grpc::Status& s, grpc::StatusCode code,
                                   const std::string& needle) {
  if (s.error_code() != code) {
    return ::testing::AssertionFailure()
           << "expected " << CodeName(code) << ", got " << Describe(s);
  }
  if (s.error_message().find(needle) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message of " << Describe(s) << " does not contain '" << needle << "'";
  }
  return ::testing::AssertionSuccess();
}

namespace {
void WithDeadline(grpc::ClientContext* ctx, milliseconds d = seconds(30)) {
  ctx->set_deadline(std::chrono::system_clock::now() + d);
}
}  // namespace

grpc::Status CreateStateMachine(Stub* stub, const std::string& name,
                                const std::string& definition) {
  grpc::ClientContext ctx;
  WithDeadline(&ctx);
  pb::CreateStateMachineRequest req;
  req.set_name(name);
  req.set_definition(definition);
  pb::CreateStateMachineResponse resp;
  return stub->CreateStateMachine(&ctx, req, &resp);
}

grpc::Status StartExecution(Stub* stub, const std::string& state_machine, const std::string& name,
                            const std::string& input, std::string* arn) {
  grpc::ClientContext ctx;
  WithDeadline(&ctx);
  pb::StartExecutionRequest req;
  req.set_state_machine(state_machine);
  req.set_name(name);
  req.set_input(input);
  pb::StartExecutionResponse resp;
  grpc::Status s = stub->StartExecution(&ctx, req, &resp);
  if (arn != nullptr) *arn = resp.execution_arn();
  return s;
}

grpc::Status Describe(Stub* stub, const std::string& arn, pb::Execution* out) {
  grpc::ClientContext ctx;
  WithDeadline(&ctx, seconds(10));
  pb::DescribeExecutionRequest req;
  req.set_execution_arn(arn);
  return stub->DescribeExecution(&ctx, req, out);
}

bool WaitUntil(const std::function<bool()>& cond, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));  // polling a condition
  }
}

bool WaitDescribe(Stub* stub, const std::string& arn,
                  const std::function<bool(const pb::Execution&)>& pred, milliseconds timeout) {
  return WaitUntil(
      [&] {
        pb::Execution e;
        return Describe(stub, arn, &e).ok() && pred(e);
      },
      timeout);
}

pb::Execution WaitFinished(Stub* stub, const std::string& arn, milliseconds timeout) {
  pb::Execution last;
  WaitUntil(
      [&] {
        pb::Execution e;
        if (!Describe(stub, arn, &e).ok()) return false;
        last = e;
        return e.status() != pb::RUNNING;
      },
      timeout);
  return last;
}

absl::StatusOr<std::vector<pb::HistoryEvent>> History(Stub* stub, const std::string& arn,
                                                      int page_size, bool reverse) {
  std::vector<pb::HistoryEvent> out;
  std::string token;
  for (int pages = 0; pages < 100000; ++pages) {
    grpc::ClientContext ctx;
    WithDeadline(&ctx);
    pb::GetExecutionHistoryRequest req;
    req.set_execution_arn(arn);
    req.set_max_results(page_size);
    req.set_next_token(token);
    req.set_reverse_order(reverse);
    pb::GetExecutionHistoryResponse resp;
    grpc::Status s = stub->GetExecutionHistory(&ctx, req, &resp);
    if (!s.ok()) return absl::UnknownError(Describe(s));
    for (const auto& e : resp.events()) out.push_back(e);
    token = resp.next_token();
    if (token.empty()) return out;
  }
  return absl::InternalError("history paging does not end");
}

std::vector<std::string> EventTypes(const std::vector<pb::HistoryEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.type());
  return out;
}

::testing::AssertionResult ConsecutiveIds(const std::vector<pb::HistoryEvent>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    const int64_t want = static_cast<int64_t>(i) + 1;
    if (events[i].id() != want || events[i].previous_event_id() != want - 1) {
      return ::testing::AssertionFailure()
             << "event #" << i << " has id " << events[i].id() << " (previous "
             << events[i].previous_event_id() << "), expected " << want;
    }
  }
  return ::testing::AssertionSuccess();
}

int CountEvents(const std::vector<pb::HistoryEvent>& events, const std::string& type,
                const std::string& state) {
  return static_cast<int>(std::count_if(events.begin(), events.end(), [&](const auto& e) {
    return e.type() == type && (state.empty() || e.state_name() == state);
  }));
}

int64_t TimestampMs(const std::string& ts) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(ts.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

const pb::HistoryEvent* FindEvent(const std::vector<pb::HistoryEvent>& events,
                                  const std::string& type, const std::string& state, int nth) {
  for (const auto& e : events) {
    if (e.type() == type && (state.empty() || e.state_name() == state) && nth-- == 0) return &e;
  }
  return nullptr;
}

json::Value ParseJson(const std::string& text) {
  auto v = json::Parse(text);
  if (!v.ok()) {
    ADD_FAILURE() << "not JSON: " << text << " (" << v.status().message() << ")";
    return json::Value();
  }
  return *v;
}

// ---------------------------------------------------------------------------
// Workers

Worker::Worker(std::vector<std::string> addresses, std::vector<std::string> activities,
               TaskHandler handler, int threads_per, std::string name)
    : addresses_(std::move(addresses)), handler_(std::move(handler)), name_(std::move(name)) {
  for (const auto& a : addresses_) stubs_.push_back(NewStub(a));
  for (size_t i = 0; i < addresses_.size(); ++i) {
    for (const auto& act : activities) {
      for (int k = 0; k < threads_per; ++k) {
        threads_.emplace_back([this, i, act] { PollLoop(i, act); });
      }
    }
  }
}

Worker::~Worker() { Stop(); }

void Worker::Stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
    for (auto* ctx : active_) ctx->TryCancel();
  }
  stop_cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool Worker::WaitStop(milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return stop_cv_.wait_for(lock, d, [&] { return stopping_; });
}

std::string Worker::Key(const pb::GetActivityTaskResponse& t) {
  return saga::StrCat(t.execution_arn(), "|", t.state_name(), "|", t.attempt());
}

void Worker::PollLoop(size_t address, std::string activity) {
  while (true) {
    grpc::ClientContext ctx;
    WithDeadline(&ctx, seconds(20));
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stopping_) return;
      active_.push_back(&ctx);
    }
    pb::GetActivityTaskRequest req;
    req.set_activity(activity);
    req.set_worker_name(name_);
    req.set_wait_seconds(5);
    pb::GetActivityTaskResponse resp;
    grpc::Status s = stubs_[address]->GetActivityTask(&ctx, req, &resp);
    {
      std::lock_guard<std::mutex> g(mu_);
      active_.erase(std::find(active_.begin(), active_.end(), &ctx));
      if (stopping_) return;
    }
    if (!s.ok()) {
      const auto c = s.error_code();
      if (c != grpc::UNAVAILABLE && c != grpc::CANCELLED && c != grpc::DEADLINE_EXCEEDED) {
        std::lock_guard<std::mutex> g(mu_);
        errors_.push_back(saga::StrCat("GetActivityTask(", activity, ") at ", addresses_[address],
                                       ": ", Describe(s)));
      }
      if (WaitStop(milliseconds(50))) return;  // retry backoff
      continue;
    }
    if (resp.task_token().empty()) continue;
    {
      std::lock_guard<std::mutex> g(mu_);
      deliveries_[Key(resp)]++;
    }
    delivered_++;
    ReceivedTask t{resp, address};
    Reply r = handler_(t);
    if (r.kind != Reply::kNone) Complete(t, r);
  }
}

grpc::Status Worker::Complete(const ReceivedTask& t, const Reply& reply) {
  size_t idx = t.from;
  bool retried = false;
  const auto deadline = Clock::now() + seconds(60);
  const std::string key = Key(t.task);
  while (true) {
    grpc::ClientContext ctx;
    WithDeadline(&ctx, seconds(10));
    grpc::Status s;
    if (reply.kind == Reply::kSuccess) {
      pb::SendTaskSuccessRequest req;
      req.set_task_token(t.task.task_token());
      req.set_output(reply.output);
      pb::SendTaskSuccessResponse resp;
      s = stubs_[idx]->SendTaskSuccess(&ctx, req, &resp);
    } else {
      pb::SendTaskFailureRequest req;
      req.set_task_token(t.task.task_token());
      req.set_error(reply.error);
      req.set_cause(reply.cause);
      pb::SendTaskFailureResponse resp;
      s = stubs_[idx]->SendTaskFailure(&ctx, req, &resp);
    }
    if (s.ok()) {
      std::lock_guard<std::mutex> g(mu_);
      acked_ok_[key]++;
      acked_++;
      return s;
    }
    if ((s.error_code() == grpc::UNAVAILABLE || s.error_code() == grpc::DEADLINE_EXCEEDED) &&
        Clock::now() < deadline) {
      retried = true;
      idx = (idx + 1) % stubs_.size();
      if (WaitStop(milliseconds(50))) return s;  // retry backoff
      continue;
    }
    std::lock_guard<std::mutex> g(mu_);
    if (retried && s.error_code() == grpc::FAILED_PRECONDITION) {
      ambiguous_[key]++;
    } else {
      errors_.push_back(saga::StrCat("completion of ", key, ": ", Describe(s)));
    }
    return s;
  }
}

std::map<std::string, int> Worker::Deliveries() const {
  std::lock_guard<std::mutex> g(mu_);
  return deliveries_;
}
std::map<std::string, int> Worker::AckedOk() const {
  std::lock_guard<std::mutex> g(mu_);
  return acked_ok_;
}
std::map<std::string, int> Worker::Ambiguous() const {
  std::lock_guard<std::mutex> g(mu_);
  return ambiguous_;
}
std::vector<std::string> Worker::Errors() const {
  std::lock_guard<std::mutex> g(mu_);
  return errors_;
}

// ---------------------------------------------------------------------------
// The engine alone

absl::StatusOr<engine::OfflineResult> RunEngineAlone(const std::string& definition,
                                                     const std::string& input,
                                                     const std::string& mocks) {
  auto machine = asl::CompileText(definition);
  if (!machine.ok()) return machine.status();
  auto in = json::Parse(input);
  if (!in.ok()) return in.status();
  std::optional<engine::MockConfig> config;
  if (!mocks.empty()) {
    auto m = json::Parse(mocks);
    if (!m.ok()) return m.status();
    auto c = engine::MockConfig::FromJson(*m, "M", "T");
    if (!c.ok()) return c.status();
    config = *std::move(c);
  }
  engine::OfflineOptions o;
  o.state_machine_name = "M";
  return engine::RunOffline(*machine, *in, config ? &*config : nullptr, o);
}

std::string Normalize(const std::string& type, const std::string& state,
                      const json::Value& details) {
  json::Value d = details;
  if (d.is_object()) {
    for (const char* k : {"workerName", "waitUntil"}) d.Erase(k);
    if (type == "ExecutionStarted") {
      for (const char* k :
           {"executionArn", "name", "stateMachineArn", "stateMachineName", "roleArn"}) {
        d.Erase(k);
      }
    }
  }
  return saga::StrCat(type, " ", state, " ", d.Dump());
}

std::vector<std::string> Normalize(const std::vector<pb::HistoryEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events)
    out.push_back(Normalize(e.type(), e.state_name(), ParseJson(e.details())));
  return out;
}

std::vector<std::string> Normalize(const std::vector<engine::Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(Normalize(std::string(engine::EventTypeName(e.type)), e.state_name, e.details));
  }
  return out;
}

namespace {

// Sorts the events strictly inside top-level Parallel/Map spans.
std::vector<std::string> Canonical(std::vector<std::string> events) {
  auto type_of = [](const std::string& s) { return s.substr(0, s.find(' ')); };
  int depth = 0;
  size_t span_start = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string t = type_of(events[i]);
    if (t == "ParallelStateStarted" || t == "MapStateStarted") {
      if (depth++ == 0) span_start = i + 1;
    } else if (t == "ParallelStateSucceeded" || t == "ParallelStateFailed" ||
               t == "ParallelStateAborted" || t == "MapStateSucceeded" || t == "MapStateFailed" ||
               t == "MapStateAborted") {
      if (--depth == 0) {
        std::sort(events.begin() + static_cast<std::ptrdiff_t>(span_start),
                  events.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  }
  if (depth > 0) {
    std::sort(events.begin() + static_cast<std::ptrdiff_t>(span_start), events.end());
  }
  return events;
}

}  // namespace

std::string CompareHistories(const std::vector<std::string>& actual,
                             const std::vector<std::string>& expected) {
  const auto a = Canonical(actual), e = Canonical(expected);
  for (size_t i = 0; i < std::max(a.size(), e.size()); ++i) {
    const std::string x = i < a.size() ? a[i] : "(none)";
    const std::string y = i < e.size() ? e[i] : "(none)";
    if (x != y) {
      std::string msg = saga::StrCat(
          "histories differ at canonical position ", i, " (of ", a.size(), " actual, ", e.size(),
          " expected events)\n  actual:   ", x, "\n  expected: ", y, "\nactual history:\n");
      for (const auto& s : actual) msg += "  " + s + "\n";
      msg += "engine-alone history:\n";
      for (const auto& s : expected) msg += "  " + s + "\n";
      return msg;
    }
  }
  return "";
}

}  // namespace saga::itest
