// Every conformance case run durably (coordinator, PostgreSQL, an SDK worker
// answering its Task states from the case's mocks) and compared with the
// engine alone (RunOffline with the same mocks, as `sagactl test-run` runs
// it): the same status, error, cause and output, and the same history once
// worker names and times are left out. The cases were written for the
// engine; this checks that the durable path (storage, replay, timers,
// dispatch, group commit) changes nothing of what they mean.
//
// Left out: cases whose engine-alone run spans more than 3 s of virtual time
// (their Waits and retry intervals would take that long for real), and, for
// the output and history only, cases reading the context object ($$) or
// drawing random values (States.UUID, States.MathRandom): their values
// differ between two runs by design.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "coordinator/asl/definition.h"
#include "coordinator/common/json.h"
#include "coordinator/engine/offline_runner.h"
#include "gtest/gtest.h"
#include "saga/worker/worker.h"
#include "tests/integration/pg_test.h"

namespace saga::itest {
namespace {

namespace fs = std::filesystem;
namespace sw = ::saga::worker;

constexpr int64_t kMaxVirtualUs = 3'000'000;

struct Case {
  std::string file;
  std::string definition;
  std::string input;
  std::unique_ptr<engine::MockConfig> mocks;
  engine::OfflineResult alone;
  bool compare_all = true;  // output and history too
  std::string arn;
  std::mutex mu;
  std::map<std::string, int64_t> invocations;  // by mock key
};

void Resources(const json::Value& v, std::set<std::string>* out) {
  if (v.is_object()) {
    for (const auto& [k, c] : v.as_object()) {
      if (k == "Resource" && c.is_string()) {
        std::string r = c.as_string();
        const std::string suffix = ".waitForTaskToken";
        if (r.ends_with(suffix)) r.resize(r.size() - suffix.size());
        out->insert(r);
      }
      Resources(c, out);
    }
  } else if (v.is_array()) {
    for (const auto& c : v.as_array()) Resources(c, out);
  }
}

class Differential : public PgTest {};

TEST_F(Differential, ConformanceCasesRunDurablyAsTheEngineAloneRunsThem) {
  std::vector<std::unique_ptr<Case>> cases;
  std::set<std::string> activities;
  int too_long = 0, not_run = 0;
  std::vector<fs::path> files;
  for (const auto& e :
       fs::directory_iterator(fs::path(SAGA_SOURCE_DIR) / "tests/conformance/cases")) {
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    json::Value c = ParseJson(ss.str());
    ASSERT_TRUE(c.is_object()) << f;
    auto k = std::make_unique<Case>();
    k->file = f.filename().string();
    k->definition = c.Find("definition")->Dump();
    k->input = c.Find("input") ? c.Find("input")->Dump() : "{}";
    // A worker's TaskError cannot tell an empty cause from none (proto3
    // strings; the coordinator records none), so mocks throwing with
    // "Cause": "" throw without one here, on both sides.
    json::Value config = *c.Find("mockConfig");
    for (auto& [key, responses] : config.mutable_object()) {
      if (key != "MockedResponses" || !responses.is_object()) continue;
      for (auto& [name, ranges] : responses.mutable_object()) {
        if (!ranges.is_object()) continue;
        for (auto& [range, r] : ranges.mutable_object()) {
          if (!r.is_object()) continue;
          for (auto& [field, thrown] : r.mutable_object()) {
            const json::Value* cause = thrown.is_object() ? thrown.Find("Cause") : nullptr;
            if (field == "Throw" && cause && cause->is_string() && cause->as_string().empty()) {
              thrown.Erase("Cause");
            }
          }
        }
      }
    }
    const std::string sm = config.Find("StateMachines")->as_object().front().first;
    auto mocks = engine::MockConfig::FromJson(config, sm, c.Find("testCase")->as_string());
    ASSERT_TRUE(mocks.ok()) << k->file << ": " << mocks.status();
    k->mocks = std::make_unique<engine::MockConfig>(*std::move(mocks));
    auto machine = asl::CompileText(k->definition);
    ASSERT_TRUE(machine.ok()) << k->file << ": " << machine.status();
    auto input = json::Parse(k->input);
    ASSERT_TRUE(input.ok());
    engine::OfflineOptions o;
    auto alone = engine::RunOffline(*machine, *input, k->mocks.get(), o);
    if (!alone.ok()) {  // a harness refusal (bad input size, ...): nothing to compare
      ++not_run;
      continue;
    }
    const auto& h = alone->history;
    if (!h.empty() && h.back().timestamp_us - h.front().timestamp_us > kMaxVirtualUs) {
      ++too_long;
      continue;
    }
    k->alone = *std::move(alone);
    k->compare_all = k->definition.find("$$") == std::string::npos &&
                     k->definition.find("States.UUID") == std::string::npos &&
                     k->definition.find("States.MathRandom") == std::string::npos;
    Resources(*c.Find("definition"), &activities);
    cases.push_back(std::move(k));
  }
  ASSERT_GT(cases.size(), 150u) << too_long << " too long, " << not_run << " not run";

  auto coord = Start();
  ASSERT_TRUE(coord);
  auto stub = coord->NewStub();
  std::map<std::string, Case*> by_arn;
  std::mutex by_arn_mu;

  sw::WorkerOptions wo;
  wo.address = coord->address();
  wo.identity = "differential";
  wo.concurrency = 16;
  sw::Worker worker(wo);
  for (const std::string& a : activities) {
    worker.Register(a, [&](sw::TaskContext& ctx) -> sw::Result {
      const sw::TaskInfo& t = ctx.info();
      Case* k;
      {
        std::lock_guard<std::mutex> g(by_arn_mu);
        auto it = by_arn.find(t.execution_arn);
        if (it == by_arn.end()) return sw::TaskError{"Differential.Unknown", t.execution_arn};
        k = it->second;
      }
      // As RunOffline: a compensation is mocked as "STATE.Compensation".
      const std::string key = t.compensation ? t.compensated_state + ".Compensation" : t.state_name;
      int64_t n;
      {
        std::lock_guard<std::mutex> g(k->mu);
        n = k->invocations[key]++;
      }
      auto r = k->mocks->Lookup(key, n);
      if (!r.ok()) return sw::TaskError{"States.Runtime", std::string(r.status().message())};
      if (!r->has_value()) return sw::Result(t.input);  // not mocked: echo
      const engine::MockResponse& m = **r;
      if (m.is_throw) return sw::TaskError{m.error.value_or(""), m.cause.value_or("")};
      return sw::Result(m.value.Dump());
    });
  }
  worker.Start();
  ASSERT_TRUE(worker.WaitConnected(std::chrono::seconds(10)));

  for (size_t i = 0; i < cases.size(); ++i) {
    Case& k = *cases[i];
    const std::string name = "case" + std::to_string(i);
    ASSERT_TRUE(IsOk(CreateStateMachine(stub.get(), name, k.definition))) << k.file;
    std::lock_guard<std::mutex> g(by_arn_mu);  // the worker may see the task first
    ASSERT_TRUE(IsOk(StartExecution(stub.get(), name, "run", k.input, &k.arn))) << k.file;
    by_arn[k.arn] = &k;
  }

  int compared_all = 0;
  for (const auto& kp : cases) {
    Case& k = *kp;
    pb::Execution e = WaitFinished(stub.get(), k.arn, std::chrono::seconds(60));
    SCOPED_TRACE(k.file);
    const engine::OfflineResult& a = k.alone;
    EXPECT_EQ(pb::ExecutionStatus_Name(e.status()), engine::ExecutionStatusName(a.status));
    EXPECT_EQ(e.error(), a.error.value_or(""));
    if (!k.compare_all) continue;
    ++compared_all;
    EXPECT_EQ(e.cause(), a.cause.value_or(""));
    if (a.status == engine::ExecutionStatus::kSucceeded) {
      EXPECT_EQ(ParseJson(e.output()), a.output) << e.output() << " vs " << a.output.Dump();
    }
    auto h = History(stub.get(), k.arn);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(CompareHistories(Normalize(*h), Normalize(a.history)), "");
  }
  worker.Shutdown(std::chrono::seconds(5));
  std::cout << cases.size() << " cases run durably (" << compared_all
            << " with output and history compared), " << too_long << " left out as too long, "
            << not_run << " refused by the engine alone\n";
}

}  // namespace
}  // namespace saga::itest
