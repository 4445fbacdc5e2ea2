// Unit-test handlers without a coordinator:
//
//   saga::worker::testing::FakeTaskContext ctx(R"({"amount": 5})");
//   ctx.info().attempt = 2;
//   saga::worker::Result r = MyHandler(ctx);
//   EXPECT_TRUE(r.ok());
//   EXPECT_EQ(ctx.heartbeats(), 1);
#ifndef SAGA_WORKER_TESTING_H_
#define SAGA_WORKER_TESTING_H_

#include <atomic>
#include <string>

#include "saga/worker/task.h"

namespace saga::worker::testing {

class FakeTaskContext : public TaskContext {
 public:
  explicit FakeTaskContext(std::string input_json = "{}", std::string activity = "test.activity") {
    info_.input = std::move(input_json);
    info_.activity = std::move(activity);
    info_.task_token = "test-token";
    info_.execution_arn = "arn:saga:states:::execution:test:test";
    info_.state_name = "Test";
    info_.idempotency_key = "00000000-0000-7000-8000-000000000000/1";
    info_.traceparent = "00-00000000000070008000000000000000-0000000000000001-01";
  }

  TaskInfo& info() { return info_; }
  const TaskInfo& info() const override { return info_; }
  bool Heartbeat() override {
    ++heartbeats_;
    return !cancelled_;
  }
  bool Cancelled() const override { return cancelled_; }

  // Makes Cancelled() true, as when the execution is stopped.
  void Cancel() { cancelled_ = true; }
  int heartbeats() const { return heartbeats_; }

 private:
  TaskInfo info_;
  std::atomic<int> heartbeats_{0};
  std::atomic<bool> cancelled_{false};
};

}  // namespace saga::worker::testing

#endif  // SAGA_WORKER_TESTING_H_
