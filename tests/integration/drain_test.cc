// SIGTERM drains the coordinator: parked long polls end, the process exits 0.
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using ::testing::HasSubstr;

class Drain : public PgTest {};

TEST_F(Drain, SigtermWithAParkedLongPollExitsZeroPromptly) {
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  // A round trip first, so the channel is connected before the long poll.
  ASSERT_TRUE(IsOk(CreateStateMachine(
      stub.get(), "m",
      R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":"idle","End":true}}})")));

  std::mutex mu;
  std::condition_variable cv;
  bool poll_done = false;
  grpc::Status poll_status;
  pb::GetActivityTaskResponse poll_resp;
  Clock::time_point poll_end;
  std::thread poller([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(90));
    pb::GetActivityTaskRequest req;
    req.set_activity("idle");  // nothing will ever be scheduled for it
    req.set_wait_seconds(60);
    pb::GetActivityTaskResponse resp;
    grpc::Status s = stub->GetActivityTask(&ctx, req, &resp);
    std::lock_guard<std::mutex> g(mu);
    poll_status = s;
    poll_resp = resp;
    poll_end = Clock::now();
    poll_done = true;
    cv.notify_all();
  });
  // Whatever happens below, the poll ends (the process dies) and is joined.
  struct Joiner {
    std::thread& t;
    CoordinatorProcess* c;
    ~Joiner() {
      c->Kill9();
      if (t.joinable()) t.join();
    }
  } joiner{poller, c.get()};
  // The poll is parked when it has not returned after a full round trip on
  // another RPC issued after it (the server handles both concurrently).
  ASSERT_TRUE(WaitUntil(
      [&] {
        pb::Execution e;
        grpc::Status s = Describe(stub.get(), "arn:saga:states:::execution:m:none", &e);
        return s.error_code() == grpc::NOT_FOUND;
      },
      seconds(10)));
  {
    std::lock_guard<std::mutex> g(mu);
    ASSERT_FALSE(poll_done) << "the long poll returned early: " << poll_status.error_message();
  }

  const auto t0 = Clock::now();
  std::optional<int> code = c->Terminate(seconds(8));
  const auto exit_time = Clock::now();
  ASSERT_TRUE(code.has_value()) << "still running 8 s after SIGTERM";
  EXPECT_EQ(*code, 0) << c->Stderr();
  EXPECT_LT(std::chrono::duration<double>(exit_time - t0).count(), 3.0);
  EXPECT_THAT(c->Stderr(), HasSubstr("draining"));
  EXPECT_THAT(c->Stderr(), HasSubstr("stopped"));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return poll_done; }));
    // It ended with the drain (empty task, or the connection closing), long
    // before its 60 s.
    EXPECT_LT(std::chrono::duration<double>(poll_end - t0).count(), 3.0);
    EXPECT_TRUE(poll_resp.task_token().empty());
    EXPECT_TRUE(poll_status.ok() || poll_status.error_code() == grpc::UNAVAILABLE ||
                poll_status.error_code() == grpc::CANCELLED)
        << poll_status.error_message();
  }
}

}  // namespace
}  // namespace saga::itest

namespace saga::itest {
namespace {

TEST_F(Drain, SigtermWithAnIdleConnectedClientExitsZeroPromptly) {
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(
      stub.get(), "m", R"({"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}})")));
  const auto t0 = Clock::now();
  std::optional<int> code = c->Terminate(seconds(8));
  ASSERT_TRUE(code.has_value()) << "still running 8 s after SIGTERM";
  EXPECT_EQ(*code, 0) << c->Stderr();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 3.0);
}

}  // namespace
}  // namespace saga::itest
