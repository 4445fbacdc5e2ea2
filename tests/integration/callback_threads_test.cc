// gRPC's callback threads in a coordinator process (--callback-threads): by
// default one of them takes StartExecution's and the streams' reactions and
// the others stay idle; with 0 gRPC uses them all, and at this load each
// event wakes two of them.
#include <dirent.h>

#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

using ::testing::HasSubstr;

// Voluntary context switches of each thread of `pid` named `name`, by
// thread id.
std::map<std::string, long> Switches(pid_t pid, const std::string& name) {
  std::map<std::string, long> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string task = dir + "/" + e->d_name;
    std::ifstream comm(task + "/comm");
    std::string c;
    if (!std::getline(comm, c) || c != name) continue;
    std::ifstream status(task + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
        out[e->d_name] = std::stol(line.substr(line.find(':') + 1));
      }
    }
  }
  closedir(d);
  return out;
}

// How many of gRPC's callback threads woke while 40 executions were
// started one after another (StartExecution runs on them).
int ThreadsThatWoke(CoordinatorProcess* c, int* threads) {
  auto stub = c->NewStub();
  EXPECT_TRUE(IsOk(CreateStateMachine(
      stub.get(), "pass", R"({"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}})")));
  std::string arn;
  EXPECT_TRUE(IsOk(StartExecution(stub.get(), "pass", "warm", "{}", &arn)));
  const auto before = Switches(c->pid(), "nexting_thread");
  for (int i = 0; i < 40; ++i) {
    EXPECT_TRUE(IsOk(StartExecution(stub.get(), "pass", "e" + std::to_string(i), "{}", &arn)));
  }
  EXPECT_EQ(WaitFinished(stub.get(), arn, seconds(20)).status(), pb::SUCCEEDED);
  const auto after = Switches(c->pid(), "nexting_thread");
  *threads = static_cast<int>(after.size());
  int woke = 0;
  for (const auto& [tid, n] : after) {
    auto it = before.find(tid);
    if (it != before.end() && n > it->second) ++woke;
  }
  return woke;
}

class CallbackThreads : public PgTest {};

TEST_F(CallbackThreads, OneTakesTheReactionsByDefault) {
  auto c = Start();
  ASSERT_TRUE(c);
  EXPECT_THAT(c->Stderr(), HasSubstr("gRPC callback threads: 1 of "));
  int threads = 0;
  EXPECT_EQ(ThreadsThatWoke(c.get(), &threads), 1);
  EXPECT_GE(threads, 2);  // gRPC 1.51 starts max(2, cores / 2)
  // The held ones go back to work for the drain: it ends promptly.
  EXPECT_EQ(c->Terminate(seconds(10)), 0) << c->Stderr();
}

TEST_F(CallbackThreads, ZeroLeavesThemAllToGrpc) {
  CoordinatorOptions o;
  o.extra_args = {"--callback-threads", "0"};
  auto c = Start(o);
  ASSERT_TRUE(c);
  EXPECT_THAT(c->Stderr(), ::testing::Not(HasSubstr("gRPC callback threads:")));
  int threads = 0;
  EXPECT_GE(ThreadsThatWoke(c.get(), &threads), 2);
  EXPECT_EQ(c->Terminate(seconds(10)), 0) << c->Stderr();
}

TEST_F(CallbackThreads, ABadCountIsRefusedNamingTheFlag) {
  CoordinatorProcess c(
      {"--database-url", dsn(), "--listen", "127.0.0.1:0", "--callback-threads", "-1"});
  EXPECT_EQ(c.WaitExit(seconds(10)), 1);
  EXPECT_THAT(c.Stderr(), HasSubstr("--callback-threads must be a number from 0"));
}

}  // namespace
}  // namespace saga::itest
