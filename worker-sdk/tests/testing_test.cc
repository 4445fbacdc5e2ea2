// The SDK's test helper and Result type, as a handler's unit test uses them.
#include "saga/worker/testing.h"

#include <gtest/gtest.h>

namespace saga::worker {
namespace {

Result Charge(TaskContext& ctx) {
  if (ctx.Cancelled()) return TaskError{"Payment.Cancelled", ""};
  ctx.Heartbeat();
  if (ctx.attempt() > 1) return TaskError{"Payment.Declined", "too many attempts"};
  return "{\"charged\":true,\"key\":\"" + ctx.idempotency_key() + "\"}";
}

TEST(FakeTaskContext, RunsAHandlerWithoutACoordinator) {
  testing::FakeTaskContext ctx(R"({"amount":5})", "payments.charge");
  ctx.info().idempotency_key = "k1";
  Result r = Charge(ctx);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.output(), R"({"charged":true,"key":"k1"})");
  EXPECT_EQ(ctx.heartbeats(), 1);
  EXPECT_EQ(ctx.input(), R"({"amount":5})");
}

TEST(FakeTaskContext, AttemptAndCancellationReachTheHandler) {
  testing::FakeTaskContext retry;
  retry.info().attempt = 2;
  Result r = Charge(retry);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().error, "Payment.Declined");
  EXPECT_EQ(r.error().cause, "too many attempts");

  testing::FakeTaskContext stopped;
  stopped.Cancel();
  EXPECT_FALSE(stopped.Heartbeat());
  EXPECT_EQ(Charge(stopped).error().error, "Payment.Cancelled");
  EXPECT_EQ(stopped.heartbeats(), 1);
}

}  // namespace
}  // namespace saga::worker
