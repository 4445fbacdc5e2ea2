// Timers fire on time: a Wait ends when due, not on a polling period.
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

class Timers : public PgTest {};

constexpr char kWaitOne[] =
    R"({"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"End":true}}})";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Starts an execution of `sm` and returns the seconds until it was seen
// SUCCEEDED (DescribeExecution polled every 10 ms).
double RunAndTime(Stub* stub, const std::string& sm, const std::string& name, std::string* arn) {
  const auto t0 = Clock::now();
  EXPECT_TRUE(IsOk(StartExecution(stub, sm, name, "{}", arn)));
  pb::Execution e = WaitFinished(stub, *arn, seconds(10));
  const double elapsed = Seconds(Clock::now() - t0);
  EXPECT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  return elapsed;
}

void ExpectWaitLastedOneSecond(Stub* stub, const std::string& arn) {
  auto h = History(stub, arn);
  ASSERT_TRUE(h.ok()) << h.status();
  const pb::HistoryEvent* entered = FindEvent(*h, "WaitStateEntered", "W");
  const pb::HistoryEvent* exited = FindEvent(*h, "WaitStateExited", "W");
  ASSERT_TRUE(entered && exited);
  const int64_t ms = TimestampMs(exited->timestamp()) - TimestampMs(entered->timestamp());
  EXPECT_GE(ms, 1000 - 1);
  EXPECT_LT(ms, 1600) << "the timer fired late";
}

TEST_F(Timers, OneSecondWaitCompletesBetweenPointNineAndOnePointSixSeconds) {
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "wait1", kWaitOne)));
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    std::string arn;
    const double elapsed = RunAndTime(stub.get(), "wait1", "w" + std::to_string(i), &arn);
    EXPECT_GE(elapsed, 0.9);
    EXPECT_LE(elapsed, 1.6);
    ExpectWaitLastedOneSecond(stub.get(), arn);
  }
}

// The sweeper is asleep until a timer 60 s away; a new 1 s timer must wake it.
TEST_F(Timers, AnEarlierTimerArmedWhileTheSweeperSleepsOnALaterOneFiresOnTime) {
  auto c = Start();
  ASSERT_TRUE(c);
  auto stub = c->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(
      stub.get(), "wait60",
      R"({"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":60,"End":true}}})")));
  ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), "wait1", kWaitOne)));
  std::string far;
  ASSERT_TRUE(IsOk(StartExecution(stub.get(), "wait60", "far", "{}", &far)));
  // Let the sweeper settle on the 60 s deadline: the far timer is stored.
  ASSERT_TRUE(WaitUntil(
      [&] {
        SqlResult r = RunSql(dsn(), "SELECT count(*) FROM timers");
        return r.ok && r.rows[0][0] == "1";
      },
      seconds(10)));
  std::string arn;
  const double elapsed = RunAndTime(stub.get(), "wait1", "near", &arn);
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LE(elapsed, 1.6);
  ExpectWaitLastedOneSecond(stub.get(), arn);
  pb::Execution e;
  ASSERT_TRUE(IsOk(Describe(stub.get(), far, &e)));
  EXPECT_EQ(e.status(), pb::RUNNING);
}

// A timer armed through one coordinator is fired on time by the other one
// too when the first dies (it is in the database, and the NOTIFY wakes the
// other's sweeper).
TEST_F(Timers, TimerArmedOnACoordinatorThatDiesFiresOnTimeOnAnother) {
  auto a = Start({}, "coordinator A");
  ASSERT_TRUE(a);
  auto b = Start({}, "coordinator B");
  ASSERT_TRUE(b);
  auto stub_a = a->NewStub();
  auto stub_b = b->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(
      stub_a.get(), "wait2",
      R"({"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":2,"End":true}}})")));
  std::string arn;
  const auto t0 = Clock::now();
  ASSERT_TRUE(IsOk(StartExecution(stub_a.get(), "wait2", "x", "{}", &arn)));
  a->Kill9();
  pb::Execution e = WaitFinished(stub_b.get(), arn, seconds(10));
  const double elapsed = Seconds(Clock::now() - t0);
  ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
  EXPECT_GE(elapsed, 1.9);
  EXPECT_LE(elapsed, 2.6);
}

}  // namespace
}  // namespace saga::itest

namespace saga::itest {
namespace {

// Both coordinators' sweepers wake for the same due timers; each fires once.
TEST_F(Timers, DueTimersSweptByTwoCoordinatorsFireExactlyOnce) {
  constexpr int kExecutions = 30;
  auto a = Start({}, "coordinator A");
  ASSERT_TRUE(a);
  auto b = Start({}, "coordinator B");
  ASSERT_TRUE(b);
  auto stub_a = a->NewStub();
  auto stub_b = b->NewStub();
  ASSERT_TRUE(IsOk(CreateStateMachine(stub_a.get(), "wait1", kWaitOne)));
  std::vector<std::string> arns(kExecutions);
  for (int i = 0; i < kExecutions; ++i) {
    ASSERT_TRUE(IsOk(StartExecution(i % 2 ? stub_a.get() : stub_b.get(), "wait1",
                                    "w" + std::to_string(i), "{}", &arns[i])));
  }
  for (const auto& arn : arns) {
    SCOPED_TRACE(arn);
    pb::Execution e = WaitFinished(stub_a.get(), arn, seconds(20));
    ASSERT_EQ(e.status(), pb::SUCCEEDED) << e.DebugString();
    auto h = History(stub_b.get(), arn);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_TRUE(ConsecutiveIds(*h));
    EXPECT_EQ(EventTypes(*h), (std::vector<std::string>{"ExecutionStarted", "WaitStateEntered",
                                                        "WaitStateExited", "ExecutionSucceeded"}));
  }
  SqlResult rows = RunSql(dsn(), "SELECT count(*) FROM timers");
  ASSERT_TRUE(rows.ok) << rows.error;
  EXPECT_EQ(rows.rows[0][0], "0");
}

}  // namespace
}  // namespace saga::itest
