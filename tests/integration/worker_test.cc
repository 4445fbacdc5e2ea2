// Workers end to end: the C++ worker SDK over the WorkerStream protocol
// against real saga-coordinator processes on a real PostgreSQL: push
// dispatch, credits, task fields, Retry/Catch on handler errors, a worker
// killed mid-task, two workers racing, a coordinator restarted under a
// connected worker, late completions refused, cancellation through
// heartbeats, callback (.waitForTaskToken) tokens, graceful give-back.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <sstream>
#include <fstream>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <regex>
#include <set>

#include "coordinator/cli/server_commands.h"
#include "coordinator/common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "saga/worker/worker.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

namespace sw = ::saga::worker;

// A saga-test-worker process with its stdout collected line by line.
class WorkerProcess {
 public:
  WorkerProcess(const std::string& address, const std::string& activity,
                const std::string& identity, const std::string& mode)
      : WorkerProcess({SAGA_TEST_WORKER_BIN, "--address", address, "--activity", activity,
                       "--identity", identity, "--mode", mode},
                      /*with_stderr=*/false) {}
  // Any program (argv[0] its path); `with_stderr`: its stderr collected with
  // its stdout (for messages; lines may then interleave).
  WorkerProcess(const std::vector<std::string>& argv, bool with_stderr) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      if (with_stderr) dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) {
        std::lock_guard<std::mutex> g(mu_);
        out_.append(buf, static_cast<size_t>(n));
        cv_.notify_all();
      }
      close(fd);
      std::lock_guard<std::mutex> g(mu_);
      eof_ = true;
      cv_.notify_all();
    });
  }
  ~WorkerProcess() {
    Kill9();
    if (reader_.joinable()) reader_.join();
  }
  // Waits for a line starting with `prefix`; the line.
  std::string WaitLine(const std::string& prefix, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    std::string found;
    cv_.wait_for(lock, timeout, [&] {
      size_t pos = 0;
      while (pos < out_.size()) {
        size_t end = out_.find('\n', pos);
        if (end == std::string::npos) break;
        if (out_.compare(pos, prefix.size(), prefix) == 0) {
          found = out_.substr(pos, end - pos);
          return true;
        }
        pos = end + 1;
      }
      return eof_;
    });
    return found;
  }
  // Waits for the process to close its output and exit; its exit code
  // (nullopt when it is still running at the deadline or died by a signal).
  std::optional<int> WaitExit(milliseconds timeout) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, timeout, [&] { return eof_; })) return std::nullopt;
    }
    int status = 0;
    if (pid_ <= 0 || waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    pid_ = -1;
    return WIFEXITED(status) ? std::optional<int>(WEXITSTATUS(status)) : std::nullopt;
  }
  std::string Output() {
    std::lock_guard<std::mutex> g(mu_);
    return out_;
  }
  void Kill9() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string out_;
  bool eof_ = false;
};

sw::WorkerOptions Options(const std::string& address, const std::string& identity,
                          int concurrency = 4) {
  sw::WorkerOptions o;
  o.address = address;
  o.identity = identity;
  o.concurrency = concurrency;
  o.cancel_check_interval = milliseconds(200);
  o.reconnect_min = milliseconds(50);
  o.reconnect_max = milliseconds(500);
  return o;
}

// A raw WorkerStream registered as `identity` for `activity`, capacity one;
// `registered` (optional) gets the coordinator's answer.
std::unique_ptr<grpc::ClientReaderWriter<pb::WorkerMessage, pb::CoordinatorMessage>> OpenRawStream(
    pb::SagaCoordinator::Stub* stub, grpc::ClientContext* ctx, const std::string& identity,
    const std::string& activity, pb::WorkerRegistered* registered = nullptr,
    int max_concurrency = 1, uint32_t ack_delay_ms = 0) {
  auto s = stub->WorkerStream(ctx);
  pb::WorkerMessage m;
  m.mutable_register_()->set_identity(identity);
  m.mutable_register_()->add_activities(activity);
  m.mutable_register_()->set_max_concurrency(max_concurrency);
  m.mutable_register_()->set_ack_delay_ms(ack_delay_ms);
  EXPECT_TRUE(s->Write(m));
  pb::CoordinatorMessage in;
  EXPECT_TRUE(s->Read(&in) && in.has_registered());
  if (registered != nullptr) *registered = in.registered();
  return s;
}

std::string OneTask(const std::string& resource, const std::string& extra = "") {
  return R"({"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":")" + resource + "\"" +
         extra + R"(,"End":true}}})";
}

class Workers : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    coordinator_ = Start();
    ASSERT_NE(coordinator_, nullptr);
    stub_ = coordinator_->NewStub();
  }
  std::string Run(const std::string& sm, const std::string& input) {
    std::string arn;
    EXPECT_TRUE(IsOk(StartExecution(stub_.get(), sm, "", input, &arn)));
    return arn;
  }
  std::unique_ptr<CoordinatorProcess> coordinator_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(Workers, PushedTasksCarryTheStepAndResultsCompleteIt) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Double",
                                      OneTask("w.double", R"(,"TimeoutSeconds":30,"HeartbeatSeconds":10)"))));
  std::mutex mu;
  std::vector<sw::TaskInfo> seen;
  sw::Worker w(Options(coordinator_->address(), "doubler"));
  w.Register("w.double", [&](sw::TaskContext& ctx) -> sw::Result {
    {
      std::lock_guard<std::mutex> g(mu);
      seen.push_back(ctx.info());
    }
    json::Value in = ParseJson(ctx.input());
    return "{\"doubled\":" + std::to_string(2 * in.Find("x")->as_int()) + "}";
  });
  w.Start();
  ASSERT_TRUE(w.WaitConnected(seconds(10)));
  std::vector<std::string> arns;
  const auto before_starts = std::chrono::system_clock::now();
  for (int i = 0; i < 20; ++i) arns.push_back(Run("Double", "{\"x\":" + std::to_string(i) + "}"));
  for (int i = 0; i < 20; ++i) {
    pb::Execution e = WaitFinished(stub_.get(), arns[i], seconds(20));
    ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.error() << " " << e.cause();
    EXPECT_EQ(ParseJson(e.output()), ParseJson("{\"doubled\":" + std::to_string(2 * i) + "}"));
    auto h = History(stub_.get(), arns[i]);
    ASSERT_TRUE(h.ok());
    const pb::HistoryEvent* started = FindEvent(*h, "ActivityStarted", "Work");
    ASSERT_NE(started, nullptr);
    EXPECT_EQ(ParseJson(started->details()).Find("workerName")->as_string(), "doubler");
  }
  std::lock_guard<std::mutex> g(mu);
  ASSERT_EQ(seen.size(), 20u);
  std::set<std::string> keys;
  const std::regex key("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/[0-9]+$");
  const std::regex trace("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$");
  for (const auto& t : seen) {
    EXPECT_TRUE(std::regex_match(t.idempotency_key, key)) << t.idempotency_key;
    EXPECT_TRUE(std::regex_match(t.traceparent, trace)) << t.traceparent;
    // The trace id is the execution's uuid.
    std::string uuid = t.idempotency_key.substr(0, 36);
    uuid.erase(std::remove(uuid.begin(), uuid.end(), '-'), uuid.end());
    EXPECT_EQ(t.traceparent.substr(3, 32), uuid);
    EXPECT_EQ(t.attempt, 0);
    EXPECT_EQ(t.activity, "w.double");
    EXPECT_EQ(t.state_name, "Work");
    ASSERT_TRUE(t.deadline.has_value());
    // Scheduled by its StartExecution, TimeoutSeconds before the deadline.
    EXPECT_GE(t.scheduled, before_starts - milliseconds(50));
    EXPECT_LE(t.scheduled, std::chrono::system_clock::now());
    // Sent once its transition committed, received by this worker after.
    EXPECT_GE(t.sent, t.scheduled);
    EXPECT_GE(t.received, t.sent);
    EXPECT_LE(t.received, std::chrono::system_clock::now());
    // (the deadline is in whole milliseconds)
    EXPECT_NEAR(std::chrono::duration_cast<milliseconds>(*t.deadline - t.scheduled).count(), 30000, 1);
    auto left = *t.deadline - std::chrono::system_clock::now();
    EXPECT_GT(left, seconds(5));
    EXPECT_LE(left, seconds(31));
    ASSERT_TRUE(t.heartbeat_interval.has_value());
    EXPECT_EQ(*t.heartbeat_interval, seconds(10));
    EXPECT_FALSE(t.callback);
    EXPECT_FALSE(t.compensation);
    keys.insert(t.idempotency_key);
  }
  EXPECT_EQ(keys.size(), 20u);
  // Counted as each ack arrives; the SDK takes them deferred (ack_delay_ms),
  // so the last may come a little after its execution finished.
  EXPECT_TRUE(WaitUntil([&] { return w.stats().tasks_succeeded == 20; }, seconds(10)))
      << w.stats().tasks_succeeded;
  w.Shutdown(seconds(1));
}

TEST_F(Workers, HandlerErrorsGoThroughRetryAndCatch) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Flaky", R"({"StartAt":"Work","States":{
    "Work":{"Type":"Task","Resource":"w.flaky","Next":"Done",
      "Retry":[{"ErrorEquals":["Flaky.Busy"],"IntervalSeconds":1,"MaxAttempts":2,"BackoffRate":1}],
      "Catch":[{"ErrorEquals":["Flaky.Broken"],"ResultPath":"$.error","Next":"Caught"}]},
    "Done":{"Type":"Succeed"},
    "Caught":{"Type":"Pass","Result":"caught","ResultPath":"$.handled","End":true}}})")));
  sw::Worker w(Options(coordinator_->address(), "flaky"));
  w.Register("w.flaky", [&](sw::TaskContext& ctx) -> sw::Result {
    json::Value in = ParseJson(ctx.input());
    // An empty cause: the SDK sends none, and the Catch sees "Cause": null.
    if (in.Find("bare")) return sw::TaskError{"Flaky.Broken", ""};
    // Asked for: the empty cause is sent as "", and the Catch sees "Cause": "".
    if (in.Find("empty")) return sw::TaskError{"Flaky.Broken", "", false, /*send_empty_cause=*/true};
    if (in.Find("broken")) return sw::TaskError{"Flaky.Broken", "always broken"};
    if (ctx.attempt() == 0) return sw::TaskError{"Flaky.Busy", "try again"};
    return "{\"attempt\":" + std::to_string(ctx.attempt()) + "}";
  });
  w.Start();
  std::string retried = Run("Flaky", "{}");
  std::string caught = Run("Flaky", R"({"broken":true})");
  std::string bare = Run("Flaky", R"({"bare":true})");
  std::string empty = Run("Flaky", R"({"empty":true})");
  pb::Execution a = WaitFinished(stub_.get(), retried, seconds(20));
  ASSERT_EQ(a.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(a.output()), ParseJson(R"({"attempt":1})"));
  pb::Execution b = WaitFinished(stub_.get(), caught, seconds(20));
  ASSERT_EQ(b.status(), pb::SUCCEEDED);
  json::Value out = ParseJson(b.output());
  EXPECT_EQ(out.Find("handled")->as_string(), "caught");
  EXPECT_EQ(out.Find("error")->Find("Error")->as_string(), "Flaky.Broken");
  EXPECT_EQ(out.Find("error")->Find("Cause")->as_string(), "always broken");
  pb::Execution c = WaitFinished(stub_.get(), bare, seconds(20));
  ASSERT_EQ(c.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(c.output()).Find("error")->Dump(),
            ParseJson(R"({"Error":"Flaky.Broken","Cause":null})").Dump());
  pb::Execution e = WaitFinished(stub_.get(), empty, seconds(20));
  ASSERT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()).Find("error")->Dump(),
            ParseJson(R"({"Error":"Flaky.Broken","Cause":""})").Dump());
  auto h = History(stub_.get(), retried);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ActivityFailed"), 1);
  EXPECT_EQ(CountEvents(*h, "ActivityStarted"), 2);
  w.Shutdown(seconds(1));
}

// ListWorkers shows the streams registered with this coordinator, what
// they serve and hold, filtered by activity; a worker gone is gone from it.
TEST_F(Workers, ListWorkersShowsTheConnectedWorkersAndWhatTheyHold) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Listed", OneTask("w.la"))));
  auto list = [&](const std::string& activity) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    pb::ListWorkersRequest req;
    req.set_activity(activity);
    pb::ListWorkersResponse resp;
    grpc::Status s = stub_->ListWorkers(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  };
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  sw::Worker a(Options(coordinator_->address(), "list-a", /*concurrency=*/3));
  a.Register("w.la", [&](sw::TaskContext&) -> sw::Result {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    return "{}";
  });
  a.Register("w.lb", [](sw::TaskContext&) -> sw::Result { return "{}"; });
  auto b = std::make_unique<sw::Worker>(Options(coordinator_->address(), "list-b", /*concurrency=*/2));
  b->Register("w.lb", [](sw::TaskContext&) -> sw::Result { return "{}"; });
  a.Start();
  b->Start();
  ASSERT_TRUE(a.WaitConnected(seconds(10)));
  ASSERT_TRUE(b->WaitConnected(seconds(10)));

  // Listed once the session exists, right after the worker is told it is
  // registered.
  ASSERT_TRUE(WaitUntil([&] { return list("").workers_size() == 2; }, seconds(10)));
  pb::ListWorkersResponse all = list("");
  ASSERT_EQ(all.workers_size(), 2);
  const pb::WorkerInfo& wa = all.workers(0);
  EXPECT_EQ(wa.identity(), "list-a");
  EXPECT_THAT(wa.worker_id(), ::testing::StartsWith("list-a#"));
  EXPECT_THAT(std::vector<std::string>(wa.activities().begin(), wa.activities().end()),
              ::testing::UnorderedElementsAre("w.la", "w.lb"));
  EXPECT_EQ(wa.max_concurrency(), 3);
  EXPECT_EQ(wa.tasks_held(), 0);
  EXPECT_THAT(wa.connected_date(), ::testing::MatchesRegex(R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)"));
  EXPECT_THAT(wa.peer(), ::testing::HasSubstr("127.0.0.1:"));
  EXPECT_EQ(all.workers(1).identity(), "list-b");
  EXPECT_EQ(all.workers(1).max_concurrency(), 2);
  EXPECT_NE(all.workers(1).worker_id(), wa.worker_id());

  pb::ListWorkersResponse only_a = list("w.la");
  ASSERT_EQ(only_a.workers_size(), 1);
  EXPECT_EQ(only_a.workers(0).identity(), "list-a");
  EXPECT_EQ(list("w.lb").workers_size(), 2);
  EXPECT_EQ(list("w.none").workers_size(), 0);

  // A task held by list-a shows, and stops showing once finished.
  std::string arn = Run("Listed", "{}");
  EXPECT_TRUE(WaitUntil([&] { return list("w.la").workers(0).tasks_held() == 1; }, seconds(10)));
  {
    std::lock_guard<std::mutex> g(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  EXPECT_TRUE(WaitUntil([&] { return list("w.la").workers(0).tasks_held() == 0; }, seconds(10)));

  b->Shutdown(seconds(1));
  b.reset();
  EXPECT_TRUE(WaitUntil([&] { return list("").workers_size() == 1; }, seconds(10)));
  EXPECT_EQ(list("").workers(0).identity(), "list-a");

  // A bad filter is refused naming the field.
  grpc::ClientContext ctx;
  pb::ListWorkersRequest req;
  req.set_activity(std::string(257, 'x'));
  pb::ListWorkersResponse resp;
  grpc::Status s = stub_->ListWorkers(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("activity"));
  a.Shutdown(seconds(1));
}

TEST_F(Workers, CreditsBoundTheTasksAWorkerHolds) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Slow", OneTask("w.slow"))));
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, max_running = 0, released = 0;
  sw::Worker w(Options(coordinator_->address(), "slow", /*concurrency=*/2));
  w.Register("w.slow", [&](sw::TaskContext&) -> sw::Result {
    std::unique_lock<std::mutex> lock(mu);
    ++running;
    max_running = std::max(max_running, running);
    cv.notify_all();
    cv.wait(lock, [&] { return released > 0; });  // the test lets one finish at a time
    --released;
    --running;
    return "{}";
  });
  w.Start();
  std::vector<std::string> arns;
  for (int i = 0; i < 6; ++i) arns.push_back(Run("Slow", "{}"));
  {
    // The window is used: two tasks run at once before any is let go (the
    // worker may register after the starts; its dispatcher then claims the
    // tasks one by one, so releasing at the first could leave one running).
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, seconds(10), [&] { return running == 2; }));
  }
  for (int i = 0; i < 6; ++i) {
    {
      std::unique_lock<std::mutex> lock(mu);
      // At least one handler is waiting for us; release it.
      ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return running > 0; }));
      ++released;
    }
    cv.notify_all();
  }
  for (const auto& arn : arns) EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(max_running, 2);  // never more than the credits
  w.Shutdown(seconds(1));
}

// Tasks handed off as they are made go round the workers with free
// credits (results return their credit as they arrive, so the first worker
// registered would otherwise always have one and take every task).
TEST_F(Workers, HandedOffTasksGoRoundTheWorkers) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Round", OneTask("w.round"))));
  std::mutex mu;
  std::map<std::string, int> ran;  // worker identity -> tasks
  std::vector<std::unique_ptr<sw::Worker>> workers;
  for (const char* name : {"round-a", "round-b", "round-c"}) {
    auto w = std::make_unique<sw::Worker>(Options(coordinator_->address(), name, /*concurrency=*/8));
    const std::string identity = name;
    w->Register("w.round", [&mu, &ran, identity](sw::TaskContext&) -> sw::Result {
      std::lock_guard<std::mutex> g(mu);
      ++ran[identity];
      return "{}";
    });
    w->Start();
    ASSERT_TRUE(w->WaitConnected(seconds(10)));
    workers.push_back(std::move(w));
  }
  // One execution at a time: every worker is idle with all its credits.
  for (int i = 0; i < 9; ++i) {
    const std::string arn = Run("Round", "{}");
    EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  }
  std::lock_guard<std::mutex> g(mu);
  for (const char* name : {"round-a", "round-b", "round-c"}) {
    EXPECT_GE(ran[name], 2) << name << " ran " << ran[name] << " of 9 tasks";
  }
  for (auto& w : workers) w->Shutdown(seconds(1));
}

TEST_F(Workers, WorkerKilledMidTaskIsRedeliveredAfterItsHeartbeatTimeout) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Beat", OneTask("w.beat", R"(,"HeartbeatSeconds":1,
    "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":3}])"))));
  WorkerProcess doomed(coordinator_->address(), "w.beat", "doomed", "hang");
  std::string arn = Run("Beat", R"({"n":1})");
  std::string line = doomed.WaitLine("START ", seconds(10));
  ASSERT_FALSE(line.empty());
  EXPECT_THAT(line, ::testing::EndsWith(" 0"));
  doomed.Kill9();
  WorkerProcess rescuer(coordinator_->address(), "w.beat", "rescuer", "echo");
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(20));
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.error() << " " << e.cause();
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"echo":{"n":1},"worker":"rescuer"})"));
  EXPECT_THAT(rescuer.WaitLine("START ", seconds(1)), ::testing::EndsWith(" 1"));  // attempt 1
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ActivityTimedOut"), 1);
  EXPECT_EQ(ParseJson(FindEvent(*h, "ActivityStarted", "", 0)->details()).Find("workerName")->as_string(), "doomed");
  EXPECT_EQ(ParseJson(FindEvent(*h, "ActivityStarted", "", 1)->details()).Find("workerName")->as_string(), "rescuer");
}

TEST_F(Workers, TaskWithoutTimeoutsIsGivenBackWhenItsWorkerDies) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "NoTimeout", OneTask("w.plain"))));
  WorkerProcess doomed(coordinator_->address(), "w.plain", "doomed", "hang");
  std::string arn = Run("NoTimeout", "{}");
  std::string first = doomed.WaitLine("START ", seconds(10));
  ASSERT_FALSE(first.empty());
  doomed.Kill9();
  WorkerProcess rescuer(coordinator_->address(), "w.plain", "rescuer", "echo");
  ASSERT_EQ(WaitFinished(stub_.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  // Redelivered as the same attempt with the same idempotency key.
  EXPECT_EQ(rescuer.WaitLine("START ", seconds(1)), first);
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ActivityStarted"), 2);
  EXPECT_EQ(CountEvents(*h, "ActivityScheduled"), 1);
}

TEST_F(Workers, TwoWorkersRacingRunEachTaskOnce) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Race", OneTask("w.race"))));
  std::mutex mu;
  std::map<std::string, int> runs;
  std::map<std::string, int> per_worker;
  auto handler = [&](const std::string& who) {
    return [&, who](sw::TaskContext& ctx) -> sw::Result {
      std::lock_guard<std::mutex> g(mu);
      ++runs[ctx.idempotency_key()];
      ++per_worker[who];
      return "{}";
    };
  };
  sw::Worker a(Options(coordinator_->address(), "a", 4)), b(Options(coordinator_->address(), "b", 4));
  a.Register("w.race", handler("a"));
  b.Register("w.race", handler("b"));
  a.Start();
  b.Start();
  ASSERT_TRUE(a.WaitConnected(seconds(10)) && b.WaitConnected(seconds(10)));
  std::vector<std::string> arns;
  for (int i = 0; i < 60; ++i) arns.push_back(Run("Race", "{}"));
  for (const auto& arn : arns) ASSERT_EQ(WaitFinished(stub_.get(), arn, seconds(30)).status(), pb::SUCCEEDED);
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(runs.size(), 60u);
  for (const auto& [key, n] : runs) EXPECT_EQ(n, 1) << key;
  EXPECT_EQ(per_worker["a"] + per_worker["b"], 60);
  a.Shutdown(seconds(1));
  b.Shutdown(seconds(1));
}

// Idle handler threads are woken last in, first out: tasks that arrive one
// at a time run on the thread that finished the previous one, warm in the
// CPU's caches, instead of going round all of them (a shared condition
// variable wakes the thread idle longest: four threads for eight tasks). A
// task may arrive before that thread is back waiting; one other is allowed.
TEST_F(Workers, TasksArrivingOneAtATimeRunOnTheHandlerThreadIdleLast) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Warm", OneTask("w.warm"))));
  std::mutex mu;
  std::set<std::thread::id> threads;
  sw::Worker w(Options(coordinator_->address(), "warm", 4));
  w.Register("w.warm", [&](sw::TaskContext& ctx) -> sw::Result {
    std::lock_guard<std::mutex> g(mu);
    threads.insert(std::this_thread::get_id());
    return ctx.input();
  });
  w.Start();
  ASSERT_TRUE(w.WaitConnected(seconds(10)));
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(WaitFinished(stub_.get(), Run("Warm", "{}"), seconds(20)).status(), pb::SUCCEEDED);
  }
  std::lock_guard<std::mutex> g(mu);
  EXPECT_LE(threads.size(), 2u);
  w.Shutdown(seconds(1));
}

TEST_F(Workers, WorkerReconnectsWhenTheCoordinatorRestarts) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Echo", OneTask("w.echo"))));
  sw::Worker w(Options(coordinator_->address(), "steady"));
  w.Register("w.echo", [](sw::TaskContext& ctx) -> sw::Result { return ctx.input(); });
  w.Start();
  ASSERT_TRUE(w.WaitConnected(seconds(10)));
  EXPECT_EQ(WaitFinished(stub_.get(), Run("Echo", "[1]"), seconds(20)).status(), pb::SUCCEEDED);
  const std::string address = coordinator_->address();
  coordinator_->Kill9();
  ASSERT_TRUE(WaitUntil([&] { return !w.connected(); }, seconds(10)));
  coordinator_ = StartOn(address, "restarted");
  ASSERT_NE(coordinator_, nullptr);
  stub_ = coordinator_->NewStub();
  ASSERT_TRUE(w.WaitConnected(seconds(10)));
  pb::Execution e = WaitFinished(stub_.get(), Run("Echo", "[2]"), seconds(20));
  EXPECT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()), ParseJson("[2]"));
  EXPECT_GE(w.stats().connections, 2u);
  w.Shutdown(seconds(1));
}

// After an outage long enough for the channel to sit in TRANSIENT_FAILURE,
// the worker is back as soon as the coordinator listens again: its stream
// waits for the connection (and so polls the attempt) instead of failing
// fast between attempts, when a connection made is only noticed by gRPC's
// backup poller, up to 5 s later (was 1-5 s in about one restart in ten).
TEST_F(Workers, WorkerIsBackWithinASecondOfTheCoordinatorListeningAgain) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Echo", OneTask("w.echo"))));
  sw::WorkerOptions o = Options(coordinator_->address(), "prompt");
  o.reconnect_min = milliseconds(20);
  o.reconnect_max = milliseconds(100);
  // Several workers of one process share a connection (gRPC's global
  // subchannel pool), as in the load generator where this was found.
  std::vector<std::unique_ptr<sw::Worker>> workers;
  for (int i = 0; i < 4; ++i) {
    workers.push_back(std::make_unique<sw::Worker>(o));
    workers.back()->Register("w.echo", [](sw::TaskContext& ctx) -> sw::Result { return ctx.input(); });
    workers.back()->Start();
  }
  auto all = [&](auto pred) {
    return std::all_of(workers.begin(), workers.end(), [&](auto& w) { return pred(*w); });
  };
  ASSERT_TRUE(WaitUntil([&] { return all([](sw::Worker& w) { return w.connected(); }); }, seconds(10)));
  const std::string address = coordinator_->address();
  // With gRPC's own reconnect backoff (1 s, growing) every outage would take
  // over a second; with reconnect_max 100 ms each takes a fraction of one. A
  // loaded machine (the suite runs two tests at once, once under ASan) may
  // delay a restarted coordinator's first registrations now and then: one
  // slow outage in ten is tolerated, two are a failure.
  std::vector<int> slow;
  for (int outage = 0; outage < 10; ++outage) {
    coordinator_->Kill9();
    ASSERT_TRUE(WaitUntil([&] { return all([](sw::Worker& w) { return !w.connected(); }); }, seconds(10)));
    coordinator_ = StartOn(address, "restarted-" + std::to_string(outage));
    ASSERT_NE(coordinator_, nullptr);
    if (!WaitUntil([&] { return all([](sw::Worker& w) { return w.connected(); }); }, seconds(1))) {
      slow.push_back(outage);
    }
    ASSERT_TRUE(WaitUntil([&] { return all([](sw::Worker& w) { return w.connected(); }); }, seconds(10)));
  }
  EXPECT_LE(slow.size(), 1u) << "outages after which the workers took over a second: "
                             << ::testing::PrintToString(slow);
  stub_ = coordinator_->NewStub();
  EXPECT_EQ(WaitFinished(stub_.get(), Run("Echo", "[3]"), seconds(20)).status(), pb::SUCCEEDED);
  for (auto& w : workers) w->Shutdown(seconds(1));
}

TEST_F(Workers, LateCompletionIsRefusedAndTheHandlerSeesCancellation) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Late", OneTask("w.late", R"(,"TimeoutSeconds":1,
    "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":1}])"))));
  std::atomic<bool> saw_cancel{false};
  sw::Worker w(Options(coordinator_->address(), "late"));
  w.Register("w.late", [&](sw::TaskContext& ctx) -> sw::Result {
    if (ctx.attempt() == 0) {
      // Outlive the timeout: the heartbeat reply says the task was cancelled.
      if (WaitUntil([&] { return ctx.Cancelled(); }, seconds(15))) saw_cancel = true;
      return R"({"from":"late attempt"})";
    }
    return R"({"from":"retry"})";
  });
  w.Start();
  std::string arn = Run("Late", "{}");
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(20));
  ASSERT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"from":"retry"})"));
  EXPECT_TRUE(WaitUntil([&] { return w.stats().results_refused == 1; }, seconds(10)));
  EXPECT_TRUE(saw_cancel.load());
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ActivitySucceeded"), 1);
  EXPECT_EQ(CountEvents(*h, "ActivityTimedOut"), 1);
  w.Shutdown(seconds(1));
}

TEST_F(Workers, StopExecutionCancelsTheRunningHandler) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Stoppable", OneTask("w.stoppable"))));
  std::atomic<bool> started{false}, cancelled{false};
  sw::Worker w(Options(coordinator_->address(), "stoppable"));
  w.Register("w.stoppable", [&](sw::TaskContext& ctx) -> sw::Result {
    started = true;
    cancelled = WaitUntil([&] { return ctx.Cancelled(); }, seconds(15));
    return "{}";
  });
  w.Start();
  std::string arn = Run("Stoppable", "{}");
  ASSERT_TRUE(WaitUntil([&] { return started.load(); }, seconds(10)));
  grpc::ClientContext ctx;
  pb::StopExecutionRequest req;
  req.set_execution_arn(arn);
  pb::StopExecutionResponse resp;
  ASSERT_TRUE(IsOk(stub_->StopExecution(&ctx, req, &resp)));
  EXPECT_TRUE(WaitUntil([&] { return cancelled.load(); }, seconds(10)));
  EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(5)).status(), pb::ABORTED);
  w.Shutdown(seconds(1));
}

TEST_F(Workers, CallbackTaskWaitsForItsTokenWhichWorksOnce) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Approval", R"({"StartAt":"Ask","States":{
    "Ask":{"Type":"Task","Resource":"w.approval.waitForTaskToken",
           "Parameters":{"token.$":"$$.Task.Token","order.$":"$.order"},"End":true}}})")));
  std::mutex mu;
  std::string token_in_input, token_of_task;
  bool flagged = false;
  sw::Worker w(Options(coordinator_->address(), "mailer"));
  w.Register("w.approval", [&](sw::TaskContext& ctx) -> sw::Result {
    std::lock_guard<std::mutex> g(mu);
    token_in_input = ParseJson(ctx.input()).Find("token")->as_string();
    token_of_task = ctx.info().task_token;
    flagged = ctx.info().callback;
    return R"({"mail":"sent"})";  // only acknowledges the dispatch
  });
  w.Start();
  std::string arn = Run("Approval", R"({"order":7})");
  ASSERT_TRUE(WaitUntil([&] { return w.stats().tasks_succeeded == 1; }, seconds(10)));
  {
    std::lock_guard<std::mutex> g(mu);
    EXPECT_TRUE(flagged);
    EXPECT_EQ(token_in_input, token_of_task);
  }
  // The worker's answer did not complete the state.
  pb::Execution mid;
  ASSERT_TRUE(IsOk(Describe(stub_.get(), arn, &mid)));
  EXPECT_EQ(mid.status(), pb::RUNNING);
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ActivitySucceeded"), 0);

  auto send = [&](const std::string& output) {
    grpc::ClientContext ctx;
    pb::SendTaskSuccessRequest req;
    req.set_task_token(token_in_input);
    req.set_output(output);
    pb::SendTaskSuccessResponse resp;
    return stub_->SendTaskSuccess(&ctx, req, &resp);
  };
  ASSERT_TRUE(IsOk(send(R"({"approved":true})")));
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(10));
  ASSERT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"approved":true})"));
  grpc::Status again = send(R"({"approved":false})");
  EXPECT_TRUE(again.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
              again.error_code() == grpc::StatusCode::NOT_FOUND)
      << again.error_code() << " " << again.error_message();
  w.Shutdown(seconds(1));
}

// Human approval that takes days: once the worker has passed the token on,
// the state waits for nobody but the token's holder. The mailer going away,
// the coordinator dying (kill -9) and a new one starting on the same
// database, and a new mailer connecting change nothing: the e-mail is not
// sent again, no timeout fires (no TimeoutSeconds: Step Functions' default is
// 99999999 s), and the token from before the restart completes the state.
TEST_F(Workers, AnApprovalOutlivesItsWorkerAndACoordinatorRestart) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "SlowApproval", R"({"StartAt":"Ask","States":{
    "Ask":{"Type":"Task","Resource":"w.mail.waitForTaskToken",
           "Parameters":{"token.$":"$$.Task.Token"},"ResultPath":"$.decision","End":true}}})")));
  std::mutex mu;
  std::vector<std::string> mailed;  // tokens, one per handler run, of every mailer
  auto mailer = [&](const std::string& identity) {
    auto w = std::make_unique<sw::Worker>(Options(coordinator_->address(), identity));
    w->Register("w.mail", [&](sw::TaskContext& ctx) -> sw::Result {
      std::lock_guard<std::mutex> g(mu);
      mailed.push_back(ParseJson(ctx.input()).Find("token")->as_string());
      return "{}";
    });
    w->Start();
    return w;
  };
  auto first = mailer("mailer-1");
  std::string arn = Run("SlowApproval", R"({"order":"o-9"})");
  ASSERT_TRUE(WaitUntil([&] { return first->stats().tasks_succeeded == 1; }, seconds(10)));
  first->Shutdown(seconds(1));
  first.reset();

  const std::string address = coordinator_->address();
  coordinator_->Kill9();
  coordinator_ = StartOn(address, "restarted");
  ASSERT_NE(coordinator_, nullptr);
  stub_ = coordinator_->NewStub();
  auto second = mailer("mailer-2");
  ASSERT_TRUE(second->WaitConnected(seconds(10)));
  // A marker execution served by the new mailer: once it has run, the new
  // coordinator has dispatched what it had to dispatch.
  std::string marker = Run("SlowApproval", R"({"order":"marker"})");
  ASSERT_TRUE(WaitUntil([&] { return second->stats().tasks_succeeded == 1; }, seconds(10)));
  std::string token;
  {
    std::lock_guard<std::mutex> g(mu);
    ASSERT_EQ(mailed.size(), 2u) << "the approval's e-mail was sent again";
    token = mailed[0];
  }
  pb::Execution mid;
  ASSERT_TRUE(IsOk(Describe(stub_.get(), arn, &mid)));
  EXPECT_EQ(mid.status(), pb::RUNNING);

  grpc::ClientContext ctx;
  pb::SendTaskSuccessRequest req;
  req.set_task_token(token);
  req.set_output(R"({"approved":true,"by":"ops@example.com"})");
  pb::SendTaskSuccessResponse resp;
  ASSERT_TRUE(IsOk(stub_->SendTaskSuccess(&ctx, req, &resp)));
  pb::Execution e = WaitFinished(stub_.get(), arn, seconds(10));
  ASSERT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()),
            ParseJson(R"({"order":"o-9","decision":{"approved":true,"by":"ops@example.com"}})"));
  auto h = History(stub_.get(), arn);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(CountEvents(*h, "ActivityScheduled"), 1);
  EXPECT_EQ(CountEvents(*h, "ActivityStarted"), 1);
  EXPECT_EQ(CountEvents(*h, "ActivityTimedOut"), 0);
  second->Shutdown(seconds(1));
}

// A task handed to a waiting worker is written with its input left to the
// history (its row's input is NULL); given back, it is claimed again with
// the same input, attempt and idempotency key.
TEST_F(Workers, ShutdownGivesUnfinishedTasksBack) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Handover", OneTask("w.handover"))));
  struct Seen {
    std::string key;
    int64_t attempt;
    std::string input;
    bool operator==(const Seen&) const = default;
  };
  std::mutex mu;
  std::vector<Seen> first, second;
  auto w1 = std::make_unique<sw::Worker>(Options(coordinator_->address(), "leaving"));
  w1->Register("w.handover", [&](sw::TaskContext& ctx) -> sw::Result {
    {
      std::lock_guard<std::mutex> g(mu);
      first.push_back({ctx.idempotency_key(), ctx.attempt(), ctx.input()});
    }
    WaitUntil([&] { return ctx.Cancelled(); }, seconds(15));  // never finishes by itself
    return "{}";
  });
  w1->Start();
  ASSERT_TRUE(WaitUntil([&] { return w1->connected(); }, seconds(10)));
  const std::string input = R"({"order":"o-7","lines":[1,2.5,"three"],"note":"caf\u00e9"})";
  std::string arn = Run("Handover", input);
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> g(mu);
    return !first.empty();
  }, seconds(10)));
  SqlResult held = RunSql(dsn(), "SELECT (started_us IS NOT NULL)::text || (input IS NULL)::text FROM tasks");
  ASSERT_TRUE(held.ok) << held.error;
  ASSERT_EQ(held.rows.size(), 1u);
  EXPECT_EQ(held.rows[0][0], "truetrue");  // handed off: the input is in the history only
  w1->Shutdown(milliseconds(100));
  EXPECT_EQ(w1->stats().tasks_released, 1u);
  sw::Worker w2(Options(coordinator_->address(), "arriving"));
  w2.Register("w.handover", [&](sw::TaskContext& ctx) -> sw::Result {
    std::lock_guard<std::mutex> g(mu);
    second.push_back({ctx.idempotency_key(), ctx.attempt(), ctx.input()});
    return R"({"done":true})";
  });
  w2.Start();
  ASSERT_EQ(WaitFinished(stub_.get(), arn, seconds(10)).status(), pb::SUCCEEDED);
  std::lock_guard<std::mutex> g(mu);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(first[0].input, json::Parse(input)->Dump());
  EXPECT_TRUE(second[0] == first[0]);  // same attempt, idempotency key and input
  EXPECT_EQ(second[0].input, first[0].input);
  w2.Shutdown(seconds(1));
}

// A task started for a worker that never got it (its coordinator died
// between the commit and the push; here: a stream dropped before reading)
// is delivered again when that worker registers without it among the tasks
// it holds, as the same attempt, long before its heartbeat timeout.
TEST_F(Workers, LostTaskIsRedeliveredWhenItsWorkerRegistersAgain) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Lost", OneTask("w.lost", R"(,"HeartbeatSeconds":60)"))));
  auto channel = grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::SagaCoordinator::NewStub(channel);
  auto open = [&](grpc::ClientContext* ctx) {
    return OpenRawStream(stub.get(), ctx, "forgetful", "w.lost");
  };
  std::string first_key;
  {
    grpc::ClientContext ctx;
    auto s = open(&ctx);
    std::string arn = Run("Lost", "{}");
    pb::CoordinatorMessage in;
    ASSERT_TRUE(s->Read(&in) && in.has_task());
    first_key = in.task().idempotency_key();
    ctx.TryCancel();  // gone without a word; the task has a heartbeat deadline, so it stays started
  }
  grpc::ClientContext ctx;
  auto s = open(&ctx);  // holds nothing
  pb::CoordinatorMessage in;
  ASSERT_TRUE(s->Read(&in) && in.has_task());
  EXPECT_EQ(in.task().idempotency_key(), first_key);
  EXPECT_EQ(in.task().attempt(), 0);
  pb::WorkerMessage done;
  done.mutable_complete()->set_request_id(1);
  done.mutable_complete()->set_task_token(in.task().task_token());
  done.mutable_complete()->set_output("{}");
  ASSERT_TRUE(s->Write(done));
  ASSERT_TRUE(s->Read(&in) && in.has_ack());
  EXPECT_EQ(in.ack().code(), 0) << in.ack().message();
  ctx.TryCancel();
}

// CompleteTask.credit / FailTask.credit: a worker of capacity one that lets
// its results carry the credit gets its next task without a GrantCredit
// (without the credit the second task would never come); a refused result
// (FAILED_PRECONDITION) still returns it; a credit out of range is refused
// naming the field, and the result is not applied.
TEST_F(Workers, ACreditCarriedByAResultBringsTheNextTask) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Carry", OneTask("w.carry"))));
  auto channel = grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::SagaCoordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(30));
  pb::WorkerRegistered registered;
  auto s = OpenRawStream(stub.get(), &ctx, "carrier", "w.carry", &registered);
  ASSERT_FALSE(HasFailure());
  EXPECT_TRUE(registered.credit_on_results());
  std::vector<std::string> arns;
  for (int i = 0; i < 3; ++i) arns.push_back(Run("Carry", "[" + std::to_string(i) + "]"));
  // Tasks may come before the ack of the result whose credit sent them.
  std::deque<pb::PushedTask> tasks;
  std::map<uint64_t, pb::WorkerAck> acks;
  auto read_one = [&] {
    pb::CoordinatorMessage m;
    if (!s->Read(&m)) return false;
    if (m.has_task()) tasks.push_back(m.task());
    if (m.has_ack()) acks[m.ack().request_id()] = m.ack();
    return true;
  };
  auto next_task = [&]() -> pb::PushedTask {
    while (tasks.empty()) {
      if (!read_one()) {
        ADD_FAILURE() << "the stream ended without a task";
        return {};
      }
    }
    pb::PushedTask t = tasks.front();
    tasks.pop_front();
    return t;
  };
  auto ack_of = [&](uint64_t id) -> pb::WorkerAck {
    while (!acks.count(id)) {
      if (!read_one()) {
        ADD_FAILURE() << "no ack for request " << id;
        return {};
      }
    }
    return acks[id];
  };
  // A credit out of range: refused naming the field, the result not taken.
  pb::PushedTask t1 = next_task();
  pb::WorkerMessage bad;
  bad.mutable_complete()->set_request_id(1);
  bad.mutable_complete()->set_task_token(t1.task_token());
  bad.mutable_complete()->set_output("{}");
  bad.mutable_complete()->set_credit(1001);
  ASSERT_TRUE(s->Write(bad));
  pb::WorkerAck a = ack_of(1);
  EXPECT_EQ(a.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_THAT(a.message(), ::testing::HasSubstr("complete.credit"));
  EXPECT_TRUE(tasks.empty()) << "a task beyond the capacity: attempt " << tasks.front().attempt()
                             << (tasks.front().task_token() == t1.task_token() ? " (t1 again)" : " (another)")
                             << " input " << tasks.front().input() << " t1 input " << t1.input();
  // The same result with one credit: taken, and the next task comes.
  pb::WorkerMessage done = bad;
  done.mutable_complete()->set_request_id(2);
  done.mutable_complete()->set_credit(1);
  ASSERT_TRUE(s->Write(done));
  EXPECT_EQ(ack_of(2).code(), 0);
  pb::PushedTask t2 = next_task();
  EXPECT_NE(t2.task_token(), t1.task_token());
  // The first result again, now stale: refused for good; its credit is
  // capped by the capacity, which t2 holds.
  done.mutable_complete()->set_request_id(3);
  ASSERT_TRUE(s->Write(done));
  EXPECT_EQ(ack_of(3).code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_TRUE(tasks.empty()) << "a task beyond the capacity";
  pb::WorkerMessage fail;
  fail.mutable_fail()->set_request_id(4);
  fail.mutable_fail()->set_task_token(t2.task_token());
  fail.mutable_fail()->set_error("Carry.Failed");
  fail.mutable_fail()->set_cause("");  // given empty: kept (left out: none)
  fail.mutable_fail()->set_credit(1);
  ASSERT_TRUE(s->Write(fail));
  EXPECT_EQ(ack_of(4).code(), 0);
  pb::PushedTask t3 = next_task();
  pb::WorkerMessage last;
  last.mutable_complete()->set_request_id(5);
  last.mutable_complete()->set_task_token(t3.task_token());
  last.mutable_complete()->set_output("{}");
  ASSERT_TRUE(s->Write(last));
  EXPECT_EQ(ack_of(5).code(), 0);
  ctx.TryCancel();
  int succeeded = 0, failed = 0;
  for (const auto& arn : arns) {
    const auto st = WaitFinished(stub_.get(), arn, seconds(20)).status();
    succeeded += st == pb::SUCCEEDED ? 1 : 0;
    failed += st == pb::FAILED ? 1 : 0;
    if (st != pb::FAILED) continue;
    auto h = History(stub_.get(), arn);
    ASSERT_TRUE(h.ok());
    ASSERT_FALSE(h->empty());
    json::Value d = ParseJson(h->back().details());
    EXPECT_EQ(h->back().type(), "ExecutionFailed");
    ASSERT_NE(d.Find("cause"), nullptr) << h->back().details();
    EXPECT_EQ(d.Find("cause")->as_string(), "");
    EXPECT_EQ(d.Find("error")->as_string(), "Carry.Failed");
  }
  EXPECT_EQ(succeeded, 2);
  EXPECT_EQ(failed, 1);
}

// A result's credit is granted as the result arrives, not once it is
// committed: with the completion held back by a lock on its execution's row
// (its transition arms a Wait's timer, so it commits on its own, not in a
// group commit), a task started meanwhile still comes to the worker of
// capacity one, before the result's ack.
TEST_F(Workers, AResultsCreditIsGrantedBeforeTheResultCommits) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Held", R"({"StartAt":"Work","States":{
    "Work":{"Type":"Task","Resource":"w.early","Next":"Pause"},
    "Pause":{"Type":"Wait","Seconds":1,"End":true}}})")));
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Next", OneTask("w.early"))));
  auto channel = grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::SagaCoordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(20));
  auto s = OpenRawStream(stub.get(), &ctx, "early", "w.early");
  ASSERT_FALSE(HasFailure());
  const std::string held = Run("Held", "[1]");
  pb::CoordinatorMessage m;
  ASSERT_TRUE(s->Read(&m) && m.has_task());
  const pb::PushedTask t1 = m.task();
  std::unique_ptr<PGconn, decltype(&PQfinish)> lock(PQconnectdb(dsn().c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(lock.get()), CONNECTION_OK) << PQerrorMessage(lock.get());
  auto sql = [&](const char* q) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(lock.get(), q), &PQclear);
    const auto st = PQresultStatus(r.get());
    EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << q << ": " << PQerrorMessage(lock.get());
    return st == PGRES_TUPLES_OK ? PQntuples(r.get()) : 0;
  };
  sql("BEGIN");
  ASSERT_EQ(sql("SELECT 1 FROM executions WHERE state_machine = 'Held' FOR UPDATE"), 1);
  pb::WorkerMessage done;
  done.mutable_complete()->set_request_id(1);
  done.mutable_complete()->set_task_token(t1.task_token());
  done.mutable_complete()->set_output("{}");
  done.mutable_complete()->set_credit(1);
  ASSERT_TRUE(s->Write(done));
  const std::string next = Run("Next", "[2]");
  // The next task comes while the result cannot commit (a credit granted
  // only after the commit would leave the stream silent until the deadline).
  ASSERT_TRUE(s->Read(&m));
  ASSERT_TRUE(m.has_task()) << "got " << m.ShortDebugString() << " before the next task";
  const pb::PushedTask t2 = m.task();
  sql("ROLLBACK");
  ASSERT_TRUE(s->Read(&m) && m.has_ack());
  EXPECT_EQ(m.ack().request_id(), 1u);
  EXPECT_EQ(m.ack().code(), 0) << m.ack().message();
  done.mutable_complete()->set_request_id(2);
  done.mutable_complete()->set_task_token(t2.task_token());
  done.mutable_complete()->set_credit(0);
  ASSERT_TRUE(s->Write(done));
  ASSERT_TRUE(s->Read(&m) && m.has_ack());
  EXPECT_EQ(m.ack().code(), 0) << m.ack().message();
  ctx.TryCancel();
  EXPECT_EQ(WaitFinished(stub_.get(), held, seconds(20)).status(), pb::SUCCEEDED);
  EXPECT_EQ(WaitFinished(stub_.get(), next, seconds(20)).status(), pb::SUCCEEDED);
}

TEST_F(Workers, BadRegistrationIsRefusedNamingTheField) {
  auto channel = grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::SagaCoordinator::NewStub(channel);
  auto attempt = [&](const pb::RegisterWorker& r) {
    grpc::ClientContext ctx;
    auto s = stub->WorkerStream(&ctx);
    pb::WorkerMessage m;
    *m.mutable_register_() = r;
    s->Write(m);
    s->WritesDone();
    pb::CoordinatorMessage in;
    while (s->Read(&in)) {
    }
    return s->Finish();
  };
  pb::RegisterWorker r;
  r.set_identity("x");
  r.set_max_concurrency(1);
  EXPECT_TRUE(HasCode(attempt(r), grpc::StatusCode::INVALID_ARGUMENT, "register.activities"));
  r.add_activities("a.waitForTaskToken");
  EXPECT_TRUE(HasCode(attempt(r), grpc::StatusCode::INVALID_ARGUMENT, "register.activities[0]"));
  r.set_activities(0, "a");
  r.set_max_concurrency(0);
  EXPECT_TRUE(HasCode(attempt(r), grpc::StatusCode::INVALID_ARGUMENT, "register.max_concurrency"));
  r.set_max_concurrency(1);
  r.set_ack_delay_ms(60001);
  EXPECT_TRUE(HasCode(attempt(r), grpc::StatusCode::INVALID_ARGUMENT, "register.ack_delay_ms"));
  r.set_ack_delay_ms(60000);
  r.set_identity("");
  EXPECT_TRUE(HasCode(attempt(r), grpc::StatusCode::INVALID_ARGUMENT, "register.identity"));
  // A first message that is not a registration.
  grpc::ClientContext ctx;
  auto s = stub->WorkerStream(&ctx);
  pb::WorkerMessage m;
  m.mutable_credit()->set_tasks(1);
  s->Write(m);
  s->WritesDone();
  pb::CoordinatorMessage in;
  while (s->Read(&in)) {
  }
  EXPECT_TRUE(HasCode(s->Finish(), grpc::StatusCode::INVALID_ARGUMENT, "register"));
}

// RegisterWorker.ack_delay_ms: a worker that takes its results' acks
// deferred gets them in CoordinatorMessage.acks, riding the tasks pushed to
// it; with a delay longer than the test (60 s), an ack can only come with a
// pushed task or with the last message before the stream ends, which
// carries every ack still held (none is lost when the worker leaves).
TEST_F(Workers, HeldBackAcksRideThePushedTasksAndTheRestGoBeforeTheStreamEnds) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Defer", OneTask("w.defer"))));
  auto channel = grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::SagaCoordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(30));
  auto s = OpenRawStream(stub.get(), &ctx, "deferring", "w.defer", nullptr, 1, 60000);
  ASSERT_FALSE(HasFailure());
  std::vector<pb::CoordinatorMessage> seen;  // every message after the registration
  constexpr int kTasks = 6;
  std::string last_arn;
  for (int i = 0; i < kTasks; ++i) {
    last_arn = Run("Defer", "[" + std::to_string(i) + "]");
    pb::CoordinatorMessage m;
    do {
      ASSERT_TRUE(s->Read(&m)) << "the stream ended before task " << i;
      seen.push_back(m);
    } while (!m.has_task());
    pb::WorkerMessage done;
    done.mutable_complete()->set_request_id(i + 1);
    done.mutable_complete()->set_task_token(m.task().task_token());
    done.mutable_complete()->set_output("{}");
    done.mutable_complete()->set_credit(1);
    ASSERT_TRUE(s->Write(done));
    // Applied (so its ack is held, or about to be) before the next task.
    EXPECT_EQ(WaitFinished(stub_.get(), last_arn, seconds(20)).status(), pb::SUCCEEDED);
  }
  // Every result is applied; then the worker leaves.
  ASSERT_TRUE(s->WritesDone());
  pb::CoordinatorMessage m;
  while (s->Read(&m)) seen.push_back(m);
  EXPECT_TRUE(s->Finish().ok());
  std::map<uint64_t, int> acked;  // request id -> times
  int riding = 0, alone = 0;
  for (size_t k = 0; k < seen.size(); ++k) {
    const pb::CoordinatorMessage& c = seen[k];
    EXPECT_FALSE(c.has_ack()) << "an ack not deferred: request " << c.ack().request_id();
    for (const auto& a : c.acks()) {
      ++acked[a.request_id()];
      EXPECT_EQ(a.code(), 0) << a.message();
    }
    if (c.acks_size() == 0) continue;
    if (c.has_task()) {
      ++riding;
    } else {
      ++alone;
      EXPECT_EQ(k, seen.size() - 1) << "acks sent alone before the delay, message " << k;
    }
  }
  for (int i = 1; i <= kTasks; ++i) EXPECT_EQ(acked[i], 1) << "ack of request " << i;
  EXPECT_EQ(acked.size(), static_cast<size_t>(kTasks));
  EXPECT_GE(riding, 1);
  EXPECT_LE(alone, 1);
}

// With nothing to ride, a held-back ack goes alone once its delay is up,
// while the stream stays open; acks of heartbeats are never held.
TEST_F(Workers, AHeldBackAckGoesAloneWhenNothingElseIsSent) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Alone", OneTask("w.alone", R"(,"HeartbeatSeconds":60)"))));
  auto channel = grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::SagaCoordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(30));
  auto s = OpenRawStream(stub.get(), &ctx, "alone", "w.alone", nullptr, 1, 50);
  ASSERT_FALSE(HasFailure());
  const std::string arn = Run("Alone", "{}");
  pb::CoordinatorMessage in;
  ASSERT_TRUE(s->Read(&in) && in.has_task());
  pb::WorkerMessage beat;
  beat.mutable_heartbeat()->set_request_id(1);
  beat.mutable_heartbeat()->set_task_token(in.task().task_token());
  ASSERT_TRUE(s->Write(beat));
  ASSERT_TRUE(s->Read(&in));
  ASSERT_TRUE(in.has_ack()) << "a heartbeat's ack is never held";
  EXPECT_EQ(in.ack().request_id(), 1u);
  EXPECT_EQ(in.acks_size(), 0);
  pb::WorkerMessage done;
  done.mutable_complete()->set_request_id(2);
  done.mutable_complete()->set_task_token(beat.heartbeat().task_token());
  done.mutable_complete()->set_output("{}");
  ASSERT_TRUE(s->Write(done));
  ASSERT_TRUE(s->Read(&in)) << "the held ack never came";
  EXPECT_EQ(in.message_case(), pb::CoordinatorMessage::MESSAGE_NOT_SET);
  ASSERT_EQ(in.acks_size(), 1);
  EXPECT_EQ(in.acks(0).request_id(), 2u);
  EXPECT_EQ(in.acks(0).code(), 0) << in.acks(0).message();
  EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  ctx.TryCancel();
}

// A burst of results on one stream (the coordinator applies what it has
// received together, with one group commit): each is settled on its own,
// exactly as if it came alone: results for two branches of one execution,
// a result sent twice, a forged token, a failure matched by a Catch.
TEST_F(Workers, ABurstOfResultsIsSettledEachOnItsOwn) {
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Single", OneTask("w.burst"))));
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Pair", R"({"StartAt":"P","States":{"P":{
    "Type":"Parallel","End":true,"Branches":[
      {"StartAt":"A","States":{"A":{"Type":"Task","Resource":"w.burst","End":true}}},
      {"StartAt":"B","States":{"B":{"Type":"Task","Resource":"w.burst","End":true}}}]}}})")));
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_.get(), "Caught", R"({"StartAt":"Work","States":{
    "Work":{"Type":"Task","Resource":"w.burst","Next":"Done",
            "Catch":[{"ErrorEquals":["Burst.Failed"],"ResultPath":"$.error","Next":"Done"}]},
    "Done":{"Type":"Pass","End":true}}})")));
  auto channel = grpc::CreateChannel(coordinator_->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::SagaCoordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(30));
  constexpr int kSingles = 6, kTasks = kSingles + 3;
  auto s = OpenRawStream(stub.get(), &ctx, "burst", "w.burst", nullptr, kTasks);
  ASSERT_FALSE(HasFailure());
  std::vector<std::string> singles;
  for (int i = 0; i < kSingles; ++i) singles.push_back(Run("Single", "[" + std::to_string(i) + "]"));
  const std::string pair = Run("Pair", R"({"p":1})");
  const std::string caught = Run("Caught", R"({"c":1})");
  std::vector<pb::PushedTask> tasks;
  std::map<uint64_t, pb::WorkerAck> acks;
  while (static_cast<int>(tasks.size()) < kTasks) {
    pb::CoordinatorMessage m;
    ASSERT_TRUE(s->Read(&m)) << "the stream ended after " << tasks.size() << " tasks";
    if (m.has_task()) tasks.push_back(m.task());
  }
  // Every result in one burst (buffered: they leave together).
  uint64_t next_id = 1;
  std::map<uint64_t, std::string> what;
  auto write = [&](pb::WorkerMessage m, uint64_t id, const std::string& label, bool last = false) {
    what[id] = label;
    ASSERT_TRUE(s->Write(m, last ? grpc::WriteOptions() : grpc::WriteOptions().set_buffer_hint()));
  };
  std::string first_token, first_output;
  for (const pb::PushedTask& t : tasks) {
    const uint64_t id = next_id++;
    pb::WorkerMessage m;
    if (t.execution_arn() == caught) {
      m.mutable_fail()->set_request_id(id);
      m.mutable_fail()->set_task_token(t.task_token());
      m.mutable_fail()->set_error("Burst.Failed");
      m.mutable_fail()->set_cause("on purpose");
      write(m, id, "failure");
      continue;
    }
    m.mutable_complete()->set_request_id(id);
    m.mutable_complete()->set_task_token(t.task_token());
    m.mutable_complete()->set_output(R"({"from":")" + t.state_name() + R"(","input":)" + t.input() + "}");
    if (first_token.empty() && t.execution_arn() != pair) {
      first_token = t.task_token();
      first_output = m.complete().output();
    }
    write(m, id, "result");
  }
  {
    pb::WorkerMessage again;
    again.mutable_complete()->set_request_id(next_id);
    again.mutable_complete()->set_task_token(first_token);
    again.mutable_complete()->set_output(first_output);  // whichever is taken, the same output
    write(again, next_id++, "again");
    pb::WorkerMessage forged;
    forged.mutable_complete()->set_request_id(next_id);
    forged.mutable_complete()->set_task_token("forged" + first_token);
    forged.mutable_complete()->set_output("{}");
    write(forged, next_id++, "forged", /*last=*/true);
  }
  while (acks.size() < what.size()) {
    pb::CoordinatorMessage m;
    if (!s->Read(&m)) break;
    if (m.has_ack()) acks[m.ack().request_id()] = m.ack();
  }
  ASSERT_EQ(acks.size(), what.size());
  int ok = 0, stale = 0;
  for (const auto& [id, label] : what) {
    const pb::WorkerAck& a = acks[id];
    if (label == "forged") {
      EXPECT_NE(a.code(), 0) << "a forged token was taken";
    } else if (label == "again") {
      // Applied after the first or before it: one of the two is refused.
      (a.code() == 0 ? ok : stale) += 1;
    } else {
      (a.code() == 0 ? ok : stale) += 1;
      if (a.code() != 0) {
        EXPECT_EQ(a.code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION)) << a.message();
      }
    }
  }
  EXPECT_EQ(ok, kTasks) << "every task settled once";
  EXPECT_EQ(stale, 1) << "the result sent twice was refused once";
  for (int i = 0; i < kSingles; ++i) {
    pb::Execution e = WaitFinished(stub_.get(), singles[i], seconds(20));
    ASSERT_EQ(e.status(), pb::SUCCEEDED) << singles[i];
    EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"from":"Work","input":[)" + std::to_string(i) + "]}"));
  }
  pb::Execution p = WaitFinished(stub_.get(), pair, seconds(20));
  ASSERT_EQ(p.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(p.output()),
            ParseJson(R"([{"from":"A","input":{"p":1}},{"from":"B","input":{"p":1}}])"));
  pb::Execution c = WaitFinished(stub_.get(), caught, seconds(20));
  ASSERT_EQ(c.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(c.output()),
            ParseJson(R"({"c":1,"error":{"Error":"Burst.Failed","Cause":"on purpose"}})"));
  s->WritesDone();
  // How many were written together (not asserted: it depends on how the
  // reads and the appliers interleave; 4 to 8 of 9 in ten runs).
  ASSERT_EQ(coordinator_->Terminate(seconds(15)), 0);
  const std::string err = coordinator_->Stderr();
  const size_t at = err.find("transitions:");
  ASSERT_NE(at, std::string::npos) << err;
  std::cout << err.substr(at, err.find('\n', at) - at) << std::endl;
}

// Branches of a Parallel finishing at the same moment take turns on their
// execution inside the coordinator (its lease): each decides on the state
// the previous one left in memory, so none races for the row version and
// none rebuilds the state from the stored history.
TEST_F(Workers, ParallelBranchesFinishingTogetherNeitherConflictNorReplay) {
  constexpr int kBranches = 8, kExecutions = 5;
  std::string branches;
  for (int b = 0; b < kBranches; ++b) {
    const std::string name = "B" + std::to_string(b);
    branches += std::string(b ? "," : "") + R"({"StartAt":")" + name + R"(","States":{")" + name +
                R"(":{"Type":"Task","Resource":"w.branch","End":true}}})";
  }
  ASSERT_TRUE(IsOk(CreateStateMachine(
      stub_.get(), "Fan",
      R"({"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[)" + branches +
          "]}}}")));
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> arrived;  // per execution: branches in their handler
  sw::Worker w(Options(coordinator_->address(), "fan", kBranches * kExecutions));
  w.Register("w.branch", [&](sw::TaskContext& ctx) -> sw::Result {
    std::unique_lock<std::mutex> lock(mu);
    const std::string e = ctx.info().execution_arn;
    ++arrived[e];
    cv.notify_all();
    // All branches of this execution return together.
    cv.wait_for(lock, seconds(10), [&] { return arrived[e] == kBranches; });
    return "{}";
  });
  w.Start();
  ASSERT_TRUE(w.WaitConnected(seconds(10)));
  std::vector<std::string> arns;
  for (int i = 0; i < kExecutions; ++i) arns.push_back(Run("Fan", "{}"));
  for (const auto& arn : arns) {
    EXPECT_EQ(WaitFinished(stub_.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  }
  {
    std::lock_guard<std::mutex> g(mu);
    for (const auto& [e, n] : arrived) EXPECT_EQ(n, kBranches) << e;
  }
  w.Shutdown(seconds(1));
  ASSERT_EQ(coordinator_->Terminate(seconds(15)), 0);
  EXPECT_THAT(coordinator_->Stderr(), ::testing::HasSubstr(" 0 unlocked conflicts, 0 replays"))
      << coordinator_->Stderr();
}

// --- TLS ------------------------------------------------------------------------------

// A CA, a server certificate for 127.0.0.1, a client certificate and an
// unrelated CA, made with
// the openssl command in a fresh folder.
struct TestPki {
  std::string dir;
  bool ok = false;
  TestPki() {
    char tmpl[] = "/tmp/saga-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir = tmpl;
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "cd " + dir + " && exec >openssl.log 2>&1 && " +
        "openssl req -x509 " + key + " -keyout ca.key -out ca.pem -days 2 -subj /CN=saga-test-ca && " +
        "openssl req -x509 " + key + " -keyout other-ca.key -out other-ca.pem -days 2 " +
        "-subj /CN=another-ca && " +
        "openssl req " + key + " -keyout server.key -out server.csr -subj /CN=localhost && " +
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' >san.ext && " +
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 " +
        "-extfile san.ext -out server.pem && " +
        "openssl req " + key + " -keyout client.key -out client.csr -subj /CN=saga-test-worker && " +
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 " +
        "-out client.pem";
    ok = std::system(script.c_str()) == 0;
  }
  ~TestPki() {
    if (!dir.empty()) std::system(("rm -rf " + dir).c_str());
  }
  std::string Path(const std::string& name) const { return dir + "/" + name; }
  std::string Read(const std::string& name) const {
    std::ifstream f(Path(name));
    std::ostringstream text;
    text << f.rdbuf();
    return text.str();
  }
};

std::unique_ptr<Stub> TlsStub(const std::string& address, const TestPki& pki, bool client_cert) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = pki.Read("ca.pem");
  if (client_cert) {
    o.pem_private_key = pki.Read("client.key");
    o.pem_cert_chain = pki.Read("client.pem");
  }
  return pb::SagaCoordinator::NewStub(grpc::CreateChannel(address, grpc::SslCredentials(o)));
}

// A TCP forwarder between workers and a coordinator that can fall silent:
// Freeze() stops moving bytes on the connections open at that moment while
// keeping their sockets open, as a host that lost power or a partition
// would (what arrives is dropped); later connections are forwarded. It
// counts the HTTP/2 PINGs (not acks) each connection's client sends, and
// notices when the coordinator closes its side of a frozen connection.
class SilentProxy {
 public:
  explicit SilentProxy(int upstream_port) : upstream_port_(upstream_port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "proxy: cannot listen";
      return;
    }
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~SilentProxy() {
    stop_ = true;
    shutdown(listener_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> pumps;
    {
      std::lock_guard<std::mutex> g(mu_);
      for (auto& c : conns_) pumps.push_back(std::move(c->pump));
    }
    for (auto& t : pumps) t.join();
    std::lock_guard<std::mutex> g(mu_);
    for (auto& c : conns_) {
      close(c->client);
      close(c->server);
    }
    close(listener_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void Freeze() {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& c : conns_) c->frozen = true;
  }
  size_t Connections() {
    std::lock_guard<std::mutex> g(mu_);
    return conns_.size();
  }
  int Pings(size_t i) {
    std::lock_guard<std::mutex> g(mu_);
    return i < conns_.size() ? conns_[i]->pings : 0;
  }
  bool ServerClosed(size_t i) {
    std::lock_guard<std::mutex> g(mu_);
    return i < conns_.size() && conns_[i]->server_closed;
  }

 private:
  struct Conn {
    int client = -1, server = -1;
    bool frozen = false, server_closed = false, client_closed = false;
    int pings = 0;
    std::string frames;      // client -> server bytes not yet parsed
    size_t preface = 24;     // the client's connection preface, skipped
    std::thread pump;
  };
  void AcceptLoop() {
    while (!stop_) {
      int c = accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      int s = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
      if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(c);
        close(s);
        continue;
      }
      std::lock_guard<std::mutex> g(mu_);
      auto conn = std::make_unique<Conn>();
      conn->client = c;
      conn->server = s;
      Conn* p = conn.get();
      conn->pump = std::thread([this, p] { Pump(p); });
      conns_.push_back(std::move(conn));
    }
  }
  // Counts the client's PING frames (type 6 without the ACK flag).
  void Parse(Conn* c, const char* data, size_t n) {
    c->frames.append(data, n);
    const size_t skip = std::min(c->preface, c->frames.size());
    c->frames.erase(0, skip);
    c->preface -= skip;
    while (c->frames.size() >= 9) {
      const auto* f = reinterpret_cast<const unsigned char*>(c->frames.data());
      const size_t len = (size_t{f[0]} << 16) | (size_t{f[1]} << 8) | f[2];
      if (c->frames.size() < 9 + len) break;
      if (f[3] == 6 && (f[4] & 1) == 0) ++c->pings;
      c->frames.erase(0, 9 + len);
    }
  }
  void Pump(Conn* c) {
    char buf[16384];
    while (!stop_) {
      pollfd fds[2] = {{c->client, POLLIN, 0}, {c->server, POLLIN, 0}};
      if (poll(fds, 2, 50) <= 0) continue;
      for (int k = 0; k < 2; ++k) {
        if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = read(fds[k].fd, buf, sizeof(buf));
        std::lock_guard<std::mutex> g(mu_);
        if (n <= 0) {
          (k == 0 ? c->client_closed : c->server_closed) = true;
          if (!c->frozen) return;  // forwarded: the other side sees the end when we close
          continue;
        }
        if (c->frozen) continue;  // dropped, as by a dead host
        if (k == 0) Parse(c, buf, static_cast<size_t>(n));
        const int to = k == 0 ? c->server : c->client;
        for (ssize_t off = 0; off < n;) {
          const ssize_t w = write(to, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) return;
          off += w;
        }
      }
      std::lock_guard<std::mutex> g(mu_);
      if (c->frozen && c->server_closed && c->client_closed) return;
    }
  }

  int upstream_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::thread acceptor_;
};

class WorkerKeepalive : public PgTest {};

// A connection that dies without ending (the coordinator's host vanished,
// a partition) is noticed on both sides by keepalive pings, also when the
// worker has been idle for long: the SDK keeps pinging (gRPC's default
// stops after two pings without data) and the coordinator accepts that
// (its default closes the connection at the third such ping); the worker
// reconnects, the coordinator closes its side, and work goes on.
TEST_F(WorkerKeepalive, BothSidesNoticeAConnectionThatFellSilent) {
  CoordinatorOptions o;
  o.extra_args = {"--keepalive-ms", "1000"};
  auto c = Start(o);
  ASSERT_NE(c, nullptr);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "Kept", OneTask("w.kept"))));
  const std::string addr = c->address();
  SilentProxy proxy(std::stoi(addr.substr(addr.rfind(':') + 1)));

  sw::WorkerOptions wo = Options(proxy.address(), "kept");
  wo.keepalive_time = milliseconds(1000);
  wo.keepalive_timeout = milliseconds(1000);
  sw::Worker w(wo);
  w.Register("w.kept", [](sw::TaskContext&) -> sw::Result { return R"({"kept":true})"; });
  w.Start();
  ASSERT_TRUE(w.WaitConnected(seconds(10)));
  // Idle: pings go on past the two gRPC allows by default, and the
  // coordinator keeps the connection.
  EXPECT_TRUE(WaitUntil([&] { return proxy.Pings(0) >= 4; }, seconds(20)))
      << "pings sent while idle: " << proxy.Pings(0);
  EXPECT_EQ(w.stats().connections, 1u);
  EXPECT_EQ(proxy.Connections(), 1u);

  proxy.Freeze();
  EXPECT_TRUE(WaitUntil([&] { return w.stats().connections >= 2; }, seconds(15)))
      << "the worker did not notice the silent connection";
  EXPECT_TRUE(WaitUntil([&] { return proxy.ServerClosed(0); }, seconds(15)))
      << "the coordinator kept the silent connection open";
  // The task goes to the new stream (the old one's credits are gone).
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "Kept", "", "{}", &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(20));
  EXPECT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"kept":true})"));
  w.Shutdown(seconds(1));
}

TEST_F(WorkerKeepalive, ABadKeepaliveFlagIsRefusedNamingIt) {
  for (const char* bad : {"999", "20s", "", "3600001"}) {
    CoordinatorProcess p({"--listen", "127.0.0.1:0", "--database-url", dsn(), "--keepalive-ms", bad},
                         "bad flag");
    std::optional<int> code = p.WaitExit(seconds(20));
    ASSERT_TRUE(code.has_value()) << "still running; output:\n" << p.Stderr();
    EXPECT_NE(*code, 0);
    EXPECT_THAT(p.Stderr(), ::testing::HasSubstr("--keepalive-ms must be a number of milliseconds")) << bad;
  }
}

class WorkersOverTls : public PgTest {
 protected:
  // A coordinator serving TLS with `pki`'s server certificate; with
  // `client_ca` it also requires client certificates of `pki`'s CA.
  auto StartTls(const TestPki& pki, bool client_ca) {
    CoordinatorOptions o;
    o.extra_args = {"--tls-cert", pki.Path("server.pem"), "--tls-key", pki.Path("server.key")};
    if (client_ca) o.extra_args.insert(o.extra_args.end(), {"--tls-client-ca", pki.Path("ca.pem")});
    return Start(o);
  }
};

// Flags a program must refuse, and what its message must say.
struct BadFlags {
  std::vector<std::string> args;
  std::string message;
};

TEST_F(WorkersOverTls, AWorkerRunsATaskOverTlsAndPlaintextClientsAreRefused) {
  TestPki pki;
  ASSERT_TRUE(pki.ok) << "openssl failed: " << pki.Read("openssl.log");
  auto c = StartTls(pki, /*client_ca=*/false);
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->Stderr(), ::testing::HasSubstr(", TLS)"));
  auto stub = TlsStub(c->address(), pki, /*client_cert=*/false);
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "Secure", OneTask("w.secure"))));

  sw::WorkerOptions wo = Options(c->address(), "secure-worker");
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Read("ca.pem");
  wo.credentials = grpc::SslCredentials(ssl);
  sw::Worker w(wo);
  w.Register("w.secure", [](sw::TaskContext& ctx) -> sw::Result {
    return R"({"seen":)" + ctx.input() + "}";
  });
  w.Start();
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "Secure", "", R"({"n":1})", &arn)));
  pb::Execution e = WaitFinished(stub.get(), arn, seconds(20));
  EXPECT_EQ(e.status(), pb::SUCCEEDED);
  EXPECT_EQ(ParseJson(e.output()), ParseJson(R"({"seen":{"n":1}})"));
  w.Shutdown(seconds(1));

  // A plaintext client cannot talk to it, nor one that does not trust its CA.
  auto plain = c->NewStub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
  pb::DescribeExecutionRequest req;
  req.set_execution_arn(arn);
  pb::Execution out;
  EXPECT_EQ(plain->DescribeExecution(&ctx, req, &out).error_code(), grpc::StatusCode::UNAVAILABLE);
  grpc::SslCredentialsOptions wrong;
  wrong.pem_root_certs = pki.Read("other-ca.pem");  // not the CA that signed its certificate
  auto untrusting =
      pb::SagaCoordinator::NewStub(grpc::CreateChannel(c->address(), grpc::SslCredentials(wrong)));
  grpc::ClientContext ctx2;
  ctx2.set_deadline(std::chrono::system_clock::now() + seconds(5));
  EXPECT_EQ(untrusting->DescribeExecution(&ctx2, req, &out).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(WorkersOverTls, TheSdkChecksTheServerNameItIsGiven) {
  TestPki pki;
  ASSERT_TRUE(pki.ok) << "openssl failed: " << pki.Read("openssl.log");
  auto c = StartTls(pki, /*client_ca=*/false);
  ASSERT_NE(c, nullptr);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Read("ca.pem");
  // The certificate names localhost and 127.0.0.1; the address is 127.0.0.1.
  sw::WorkerOptions right = Options(c->address(), "named-right");
  right.credentials = grpc::SslCredentials(ssl);
  right.tls_server_name = "localhost";
  sw::WorkerOptions wrong = Options(c->address(), "named-wrong");
  wrong.credentials = grpc::SslCredentials(ssl);
  wrong.tls_server_name = "wrong.example";
  sw::Worker a(right), b(wrong);
  for (sw::Worker* w : {&a, &b}) {
    w->Register("w.named", [](sw::TaskContext& ctx) -> sw::Result { return ctx.input(); });
    w->Start();
  }
  EXPECT_TRUE(a.WaitConnected(seconds(20)));
  // By then the other has tried (its handshake fails at once, and it retries
  // every 50-500 ms): it never gets in.
  EXPECT_FALSE(b.WaitConnected(seconds(2)));
  EXPECT_EQ(b.stats().connections, 0u);
  a.Shutdown(seconds(1));
  b.Shutdown(seconds(1));
}

TEST_F(WorkersOverTls, WithAClientCaOnlyClientsWithACertificateOfItGetIn) {
  TestPki pki;
  ASSERT_TRUE(pki.ok) << "openssl failed: " << pki.Read("openssl.log");
  auto c = StartTls(pki, /*client_ca=*/true);
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->Stderr(), ::testing::HasSubstr("TLS with client certificates"));
  pb::ListStateMachinesRequest req;
  pb::ListStateMachinesResponse out;
  {
    auto anonymous = TlsStub(c->address(), pki, /*client_cert=*/false);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
    EXPECT_EQ(anonymous->ListStateMachines(&ctx, req, &out).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  auto stub = TlsStub(c->address(), pki, /*client_cert=*/true);
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "Mutual", OneTask("w.mutual"))));
  sw::WorkerOptions wo = Options(c->address(), "mutual-worker");
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Read("ca.pem");
  ssl.pem_private_key = pki.Read("client.key");
  ssl.pem_cert_chain = pki.Read("client.pem");
  wo.credentials = grpc::SslCredentials(ssl);
  sw::Worker w(wo);
  w.Register("w.mutual", [](sw::TaskContext& ctx) -> sw::Result { return ctx.input(); });
  w.Start();
  std::string arn;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "Mutual", "", "[7]", &arn)));
  EXPECT_EQ(WaitFinished(stub.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  w.Shutdown(seconds(1));
}

TEST_F(WorkersOverTls, BadTlsFlagsStopTheCoordinatorWithAMessageNamingTheFlag) {
  TestPki pki;
  ASSERT_TRUE(pki.ok) << "openssl failed: " << pki.Read("openssl.log");
  const std::vector<BadFlags> cases = {
      {{"--tls-cert", pki.Path("server.pem")}, "--tls-cert needs --tls-key"},
      {{"--tls-key", pki.Path("server.key")}, "--tls-key needs --tls-cert"},
      {{"--tls-client-ca", pki.Path("ca.pem")}, "--tls-client-ca needs --tls-cert"},
      {{"--tls-cert", pki.Path("missing.pem"), "--tls-key", pki.Path("server.key")},
       "--tls-cert: cannot read"},
      {{"--tls-cert", pki.Path("server.pem"), "--tls-key", pki.Path("server.pem")},
       "--tls-key: '" + pki.Path("server.pem") + "' holds no PEM block ending in PRIVATE KEY"},
      {{"--tls-cert", pki.Path("server.pem"), "--tls-key", pki.Path("client.key")},
       "does not match the --tls-key key"},
  };
  for (const BadFlags& k : cases) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--database-url", dsn()};
    args.insert(args.end(), k.args.begin(), k.args.end());
    CoordinatorProcess p(args, "bad-tls");
    EXPECT_EQ(p.WaitExit(seconds(20)), std::optional<int>(1)) << k.message;
    EXPECT_THAT(p.Stderr(), ::testing::HasSubstr(k.message));
  }
}

// sagactl (its command runner, as the binary calls it) and an example order
// service, both with the --tls-* flags, against a coordinator that requires
// client certificates.
struct Sagactl {
  int code;
  std::string out, err;
};
Sagactl RunSagactl(const std::vector<std::string>& argv) {
  std::ostringstream out, err;
  int code = saga::cli::RunServerCommand(argv, out, err);
  return {code, out.str(), err.str()};
}

TEST_F(WorkersOverTls, SagactlAndTheExampleServicesConnectWithTheTlsFlags) {
  TestPki pki;
  ASSERT_TRUE(pki.ok) << "openssl failed: " << pki.Read("openssl.log");
  auto c = StartTls(pki, /*client_ca=*/true);
  ASSERT_NE(c, nullptr);
  const std::vector<std::string> tls = {
      "--address",  c->address(),           "--tls-ca",  pki.Path("ca.pem"),
      "--tls-cert", pki.Path("client.pem"), "--tls-key", pki.Path("client.key")};
  auto with = [&](std::vector<std::string> flags, std::vector<std::string> command) {
    flags.insert(flags.end(), command.begin(), command.end());
    return RunSagactl(flags);
  };
  {
    std::ofstream(pki.Path("notify.asl.json"))
        << R"({"StartAt":"Notify","States":{"Notify":{"Type":"Task",)"
        << R"("Resource":"notifications.send","End":true}}})";
  }
  Sagactl r = with(tls, {"create-state-machine", "--name", "Notify", "--definition",
                         pki.Path("notify.asl.json")});
  ASSERT_EQ(r.code, 0) << r.err;

  // The example service over mutual TLS, its flags as a user would pass them.
  WorkerProcess notify({ORDER_NOTIFY_BIN, "--address", c->address(), "--tls-ca", pki.Path("ca.pem"),
                        "--tls-cert", pki.Path("client.pem"), "--tls-key", pki.Path("client.key")},
                       /*with_stderr=*/false);
  ASSERT_NE(notify.WaitLine("[notify] connected to", seconds(20)), "") << notify.Output();

  // Flags after the command word, and the same from the environment.
  r = with({}, {"start-execution", "--state-machine", "Notify", "--name", "tls-1", "--input",
                R"({"orderId":"o-1","message":"hello"})", "--wait", "--address", c->address(),
                "--tls-ca", pki.Path("ca.pem"), "--tls-cert", pki.Path("client.pem"), "--tls-key",
                pki.Path("client.key")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::HasSubstr("SUCCEEDED"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("messageId"));
  ASSERT_EQ(setenv("SAGA_ADDRESS", c->address().c_str(), 1), 0);
  ASSERT_EQ(setenv("SAGA_TLS_CA", pki.Path("ca.pem").c_str(), 1), 0);
  ASSERT_EQ(setenv("SAGA_TLS_CLIENT_CERT", pki.Path("client.pem").c_str(), 1), 0);
  ASSERT_EQ(setenv("SAGA_TLS_CLIENT_KEY", pki.Path("client.key").c_str(), 1), 0);
  r = RunSagactl({"describe-execution", "arn:saga:states:::execution:Notify:tls-1"});
  for (const char* v :
       {"SAGA_ADDRESS", "SAGA_TLS_CA", "SAGA_TLS_CLIENT_CERT", "SAGA_TLS_CLIENT_KEY"}) {
    unsetenv(v);
  }
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::HasSubstr("\"SUCCEEDED\""));
  EXPECT_THAT(notify.WaitLine("[notify] notify order o-1", seconds(5)),
              ::testing::HasSubstr("hello"));

  // --tls trusts gRPC's default roots, which GRPC_DEFAULT_SSL_ROOTS_FILE_PATH
  // replaces (read when first needed: no test before this one in this
  // process needed them).
  ASSERT_EQ(setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", pki.Path("ca.pem").c_str(), 1), 0);
  r = with({"--address", c->address(), "--tls", "--tls-cert", pki.Path("client.pem"), "--tls-key",
            pki.Path("client.key")},
           {"describe-state-machine", "--name", "Notify"});
  unsetenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH");
  EXPECT_EQ(r.code, 0) << r.err;

  // The certificate says localhost and 127.0.0.1: another expected name
  // fails the handshake, the right one passes.
  std::vector<std::string> named = tls;
  named.insert(named.end(), {"--tls-server-name", "localhost"});
  r = with(named, {"list-state-machines"});
  EXPECT_EQ(r.code, 0) << r.err;
  named.back() = "wrong.example";
  r = with(named, {"list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, ::testing::StartsWith("sagactl: list-state-machines: UNAVAILABLE: "));

  // Without a client certificate, without TLS, trusting another CA: refused,
  // each saying how it connected.
  r = with({"--address", c->address(), "--tls-ca", pki.Path("ca.pem")}, {"list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("(server " + c->address() + ", TLS)"));
  r = with({"--address", c->address()}, {"list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("(server " + c->address() + ", plaintext)"));
  std::vector<std::string> untrusting = tls;
  untrusting[3] = pki.Path("other-ca.pem");
  r = with(untrusting, {"list-state-machines"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("UNAVAILABLE"));
}

TEST_F(WorkersOverTls, TheExampleServicesRefuseBadTlsFlagsNamingTheFlag) {
  TestPki pki;
  ASSERT_TRUE(pki.ok) << "openssl failed: " << pki.Read("openssl.log");
  const std::vector<BadFlags> cases = {
      {{"--tls-cert", pki.Path("client.pem")}, "order-notify: --tls-cert needs --tls-key"},
      {{"--tls-key", pki.Path("client.key")}, "order-notify: --tls-key needs --tls-cert"},
      {{"--tls-ca", pki.Path("missing.pem")},
       "order-notify: --tls-ca: cannot read '" + pki.Path("missing.pem") + "'"},
      {{"--tls-ca", pki.Path("ca.pem"), "--tls-cert", pki.Path("client.key"), "--tls-key",
        pki.Path("client.key")},
       "order-notify: --tls-cert: '" + pki.Path("client.key") +
           "' holds no PEM block ending in CERTIFICATE"},
  };
  for (const BadFlags& k : cases) {
    std::vector<std::string> argv = {ORDER_NOTIFY_BIN, "--address", "127.0.0.1:1"};
    argv.insert(argv.end(), k.args.begin(), k.args.end());
    WorkerProcess p(argv, /*with_stderr=*/true);
    EXPECT_EQ(p.WaitExit(seconds(20)), std::optional<int>(2)) << k.message;
    EXPECT_THAT(p.Output(), ::testing::HasSubstr(k.message));
    EXPECT_THAT(p.Output(), ::testing::HasSubstr("usage: order-notify"));
  }
}

}  // namespace
}  // namespace saga::itest
