// PostgreSQL crash-restarted under load (pg_ctl stop -m immediate, then
// start on the same data directory). The test runs its own cluster so the
// other tests' server is never touched.
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using ::testing::IsEmpty;

class DatabaseRestart : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();  // requires SAGA_TEST_PG like every test
    if (HasFatalFailure()) return;
    RunScript("pg_down.sh", {dir_});
    std::string out;
    ASSERT_EQ(RunScript("pg_up.sh", {dir_}, &out), 0) << out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    private_dsn_ = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    up_ = true;
  }
  void TearDown() override {
    if (up_) RunScript("pg_down.sh", {dir_});
  }
  int PgCtl(const std::string& what) { return RunScript("pg_restart.sh", {dir_, what}); }

  const std::string dir_ = SAGA_IT_PG_RESTART_DIR;
  std::string private_dsn_;
  bool up_ = false;
};

// Starts executions at a steady pace, recording which starts were
// acknowledged and every error code.
class Loader {
 public:
  Loader(const std::string& address, std::string sm) : stub_(NewStub(address)), sm_(std::move(sm)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Loader() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> acked() const {
    std::lock_guard<std::mutex> g(mu_);
    return acked_;
  }
  size_t acked_count() const {
    std::lock_guard<std::mutex> g(mu_);
    return acked_.size();
  }
  int failures(grpc::StatusCode code) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = failures_.find(code);
    return it == failures_.end() ? 0 : it->second;
  }
  std::map<grpc::StatusCode, int> all_failures() const {
    std::lock_guard<std::mutex> g(mu_);
    return failures_;
  }
  std::vector<std::string> messages() const {
    std::lock_guard<std::mutex> g(mu_);
    return messages_;
  }

 private:
  void Run() {
    for (int i = 0;; ++i) {
      std::string arn;
      grpc::Status s = StartExecution(stub_.get(), sm_, saga::StrCat("load-", i),
                                      saga::StrCat(R"({"i":)", i, "}"), &arn);
      std::unique_lock<std::mutex> lock(mu_);
      if (s.ok()) {
        acked_.push_back(arn);
      } else {
        failures_[s.error_code()]++;
        if (messages_.size() < 20) messages_.push_back(s.error_message());
      }
      // The load's pace (about 25 starts a second), not a synchronisation.
      if (cv_.wait_for(lock, milliseconds(40), [&] { return stop_; })) return;
    }
  }

  std::unique_ptr<Stub> stub_;
  std::string sm_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::string> acked_;
  std::map<grpc::StatusCode, int> failures_;
  std::vector<std::string> messages_;
  std::thread thread_;
};

TEST_F(DatabaseRestart, RpcsAreUnavailableWhileItIsDownAndNothingAcknowledgedIsLost) {
  ASSERT_FALSE(private_dsn_.empty());
  auto c = StartCoordinator(private_dsn_, {}, "coordinator");
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  constexpr char kDef[] = R"({"StartAt":"One","States":{
    "One":{"Type":"Task","Resource":"it-x","ResultPath":"$.one","Next":"Two","TimeoutSeconds":20,
           "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":3}]},
    "Two":{"Type":"Task","Resource":"it-x","ResultPath":"$.two","End":true,"TimeoutSeconds":20,
           "Retry":[{"ErrorEquals":["States.Timeout"],"IntervalSeconds":1,"MaxAttempts":3}]}}})";
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "load", kDef)));
  auto answer = [](const ReceivedTask& t) {
    return Reply::Success(saga::StrCat(R"({"by":")", t.task.state_name(), R"("})"));
  };
  // Until the database is down, the worker holds the tasks of state Two:
  // those executions are in flight across the restart, and their answers are
  // sent while the database is down (retried until it is back).
  std::mutex mu;
  bool gate_open = false;
  std::vector<ReceivedTask> held;
  Worker worker(
      {c->address()}, {"it-x"},
      [&](const ReceivedTask& t) {
        std::lock_guard<std::mutex> g(mu);
        if (t.task.state_name() == "Two" && !gate_open) {
          held.push_back(t);
          return Reply::None();
        }
        return answer(t);
      },
      /*threads_per=*/2);
  Loader loader(c->address(), "load");
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard<std::mutex> g(mu);
        return loader.acked_count() >= 10 && held.size() >= 5;
      },
      seconds(30)));

  // Down.
  ASSERT_EQ(PgCtl("stop"), 0);
  std::vector<ReceivedTask> late;
  {
    std::lock_guard<std::mutex> g(mu);
    gate_open = true;
    late = held;
  }
  std::vector<grpc::Status> late_results(late.size());
  std::thread completer([&] {
    for (size_t i = 0; i < late.size(); ++i)
      late_results[i] = worker.Complete(late[i], answer(late[i]));
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{completer};
  const size_t acked_before = loader.acked_count();
  const std::string probe = loader.acked().front();
  pb::Execution e;
  EXPECT_TRUE(HasCode(Describe(stub.get(), probe, &e), grpc::UNAVAILABLE));
  EXPECT_TRUE(
      HasCode(StartExecution(stub.get(), "load", "while-down", "{}", nullptr), grpc::UNAVAILABLE));
  grpc::ClientContext pctx;
  pctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  pb::GetActivityTaskRequest preq;
  preq.set_activity("it-x");
  preq.set_wait_seconds(1);
  pb::GetActivityTaskResponse presp;
  EXPECT_TRUE(HasCode(stub->GetActivityTask(&pctx, preq, &presp), grpc::UNAVAILABLE));
  // The load keeps failing with UNAVAILABLE for a while.
  ASSERT_TRUE(WaitUntil([&] { return loader.failures(grpc::UNAVAILABLE) >= 10; }, seconds(10)));

  // Up again: the coordinator reconnects by itself.
  ASSERT_EQ(PgCtl("start"), 0);
  ASSERT_TRUE(WaitUntil([&] { return Describe(stub.get(), probe, &e).ok(); }, seconds(20)))
      << "the coordinator did not reconnect";
  ASSERT_TRUE(WaitUntil([&] { return loader.acked_count() >= acked_before + 10; }, seconds(20)));
  loader.Stop();
  completer.join();
  for (size_t i = 0; i < late.size(); ++i) {
    // Acknowledged, or refused after an UNAVAILABLE try that was applied.
    EXPECT_TRUE(late_results[i].ok() || late_results[i].error_code() == grpc::FAILED_PRECONDITION)
        << late_results[i].error_message();
  }

  // Every acknowledged start exists and finishes; every acknowledged
  // completion is in its history, once.
  const std::vector<std::string> acked = loader.acked();
  for (const auto& arn : acked) {
    SCOPED_TRACE(arn);
    pb::Execution done = WaitFinished(stub.get(), arn, seconds(60));
    ASSERT_EQ(done.status(), pb::SUCCEEDED) << done.DebugString();
    auto h = History(stub.get(), arn);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_TRUE(ConsecutiveIds(*h));
    EXPECT_EQ(CountEvents(*h, "ActivitySucceeded", "One"), 1);
    EXPECT_EQ(CountEvents(*h, "ActivitySucceeded", "Two"), 1);
  }
  worker.Stop();
  std::cerr << "acknowledged starts: " << acked.size() << " (" << acked_before
            << " before the stop), UNAVAILABLE starts: " << loader.failures(grpc::UNAVAILABLE)
            << ", answers sent while down: " << late.size()
            << ", ambiguous completions: " << worker.Ambiguous().size() << "\n";
  std::map<std::string, int> completions;
  auto strip_attempt = [](const std::string& key) { return key.substr(0, key.rfind('|')); };
  for (const auto& [key, n] : worker.AckedOk()) completions[strip_attempt(key)] += n;
  for (const auto& [key, n] : worker.Ambiguous()) completions[strip_attempt(key)] += n;
  for (const auto& [key, n] : completions) EXPECT_EQ(n, 1) << key;
  for (const auto& arn : acked) {
    EXPECT_EQ(completions.count(arn + "|One"), 1u) << arn;
    EXPECT_EQ(completions.count(arn + "|Two"), 1u) << arn;
  }
  for (const auto& [key, n] : worker.Deliveries()) EXPECT_EQ(n, 1) << key;
  EXPECT_THAT(worker.Errors(), IsEmpty());
  // The only failures the load saw are UNAVAILABLE.
  for (const auto& [code, n] : loader.all_failures()) {
    EXPECT_EQ(code, grpc::UNAVAILABLE) << n << " failures with code " << code << ": "
                                       << ::testing::PrintToString(loader.messages());
  }
}

}  // namespace
}  // namespace saga::itest
