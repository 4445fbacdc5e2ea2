// Every conformance case run durably (coordinator, PostgreSQL, an SDK worker
// answering its Task states from the case's mocks) and compared with the
// engine alone (RunOffline with the same mocks, as `sagactl test-run` runs
// it): the same status, error, cause and output, and the same history once
// worker names and times are left out. The cases were written for the
// engine; this checks that the durable path (storage, replay, timers,
// dispatch, group commit) changes nothing of what they mean.
//
// Left out: cases whose engine-alone run spans more than 10 s of virtual time
// (their Waits and retry intervals would take that long for real), and, for
// the output and history only, cases reading the context object ($$) or
// drawing random values (States.UUID, States.MathRandom): their values
// differ between two runs by design. The history is not compared for
// Parallel and Map cases whose mocks throw (timing decides whether a
// sibling's task finished before the failure).
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
#include "tests/robustness/mutator.h"

namespace saga::itest {
namespace {

namespace fs = std::filesystem;
namespace sw = ::saga::worker;

// Longest virtual span run for real: conformance cases (all run at once)
// and mutants.
constexpr int64_t kMaxCaseVirtualUs = 10'000'000;
constexpr int64_t kMaxMutantVirtualUs = 3'000'000;

struct Case {
  std::string file;
  std::string definition;
  std::string input;
  std::unique_ptr<engine::MockConfig> mocks;
  engine::OfflineResult alone;
  bool compare_error = true;    // the error too (the status always)
  bool compare_all = true;      // cause, output and history too
  bool compare_history = true;  // (with compare_all)
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

// Runs every case durably on a coordinator of `dsn` with one SDK worker
// serving `activities` from the cases' mocks, and compares each with its run
// by the engine alone. `compared_all` counts the cases compared whole.
void RunDurablyAndCompare(const std::string& dsn, const std::vector<std::unique_ptr<Case>>& cases,
                          const std::set<std::string>& activities, int* compared_all) {
  auto coord = StartCoordinator(dsn);
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
      if (!k->mocks) return sw::Result(t.input);  // no mocks: echo
      auto r = k->mocks->Lookup(key, n);
      if (!r.ok()) return sw::TaskError{"States.Runtime", std::string(r.status().message())};
      if (!r->has_value()) return sw::Result(t.input);  // not mocked: echo
      const engine::MockResponse& m = **r;
      if (m.is_throw) return sw::TaskError{m.error.value_or(""), m.cause.value_or(""), m.error.has_value(), m.cause.has_value()};
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

  for (const auto& kp : cases) {
    Case& k = *kp;
    pb::Execution e = WaitFinished(stub.get(), k.arn, std::chrono::seconds(60));
    SCOPED_TRACE(k.file + "\n definition: " + k.definition.substr(0, 3000) +
                 "\n input: " + k.input.substr(0, 500));
    const engine::OfflineResult& a = k.alone;
    EXPECT_EQ(pb::ExecutionStatus_Name(e.status()), engine::ExecutionStatusName(a.status));
    if (!k.compare_error) continue;
    EXPECT_EQ(e.error(), a.error.value_or(""));
    if (!k.compare_all) continue;
    ++*compared_all;
    EXPECT_EQ(e.cause(), a.cause.value_or(""));
    if (a.status == engine::ExecutionStatus::kSucceeded) {
      EXPECT_EQ(ParseJson(e.output()), a.output) << e.output() << " vs " << a.output.Dump();
    }
    if (!k.compare_history) continue;
    auto h = History(stub.get(), k.arn);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(CompareHistories(Normalize(*h), Normalize(a.history)), "");
  }
  worker.Shutdown(std::chrono::seconds(5));
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
    // The C++ SDK's TaskError cannot tell an empty cause from none (it
    // sends an empty one as none; the protocol could tell them apart), so
    // mocks throwing with "Cause": "" throw without one here, on both sides.
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
    if (!h.empty() && h.back().timestamp_us - h.front().timestamp_us > kMaxCaseVirtualUs) {
      ++too_long;
      continue;
    }
    k->alone = *std::move(alone);
    k->compare_all = k->definition.find("$$") == std::string::npos &&
                     k->definition.find("States.UUID") == std::string::npos &&
                     k->definition.find("States.MathRandom") == std::string::npos;
    // A branch's task may finish before or after a sibling's failure ends
    // the Parallel (or Map) and cancels it: the histories may differ by that
    // task's completion, the outcome does not.
    // JitterStrategy FULL draws retry delays from each run's own seed.
    k->compare_history = k->definition.find("JitterStrategy") == std::string::npos &&
                         !((k->definition.find("\"Parallel\"") != std::string::npos ||
                            k->definition.find("\"Map\"") != std::string::npos) &&
                           config.Dump().find("\"Throw\"") != std::string::npos);
    Resources(*c.Find("definition"), &activities);
    cases.push_back(std::move(k));
  }
  ASSERT_GT(cases.size(), 150u) << too_long << " too long, " << not_run << " not run";

  int compared_all = 0;
  RunDurablyAndCompare(dsn(), cases, activities, &compared_all);
  std::cout << cases.size() << " cases run durably (" << compared_all
            << " compared beyond status and error), " << too_long << " left out as too long, "
            << not_run << " refused by the engine alone\n";
}

// Mutants of the corpus (tests/robustness/mutator.h) that compile and that
// the engine alone ends within 3 s of virtual time, run durably and compared
// the same way; half of them with mocks that make each Task fail first.
// Left out besides: callback tasks (nobody sends their token), Task and
// execution timeouts (real time on one side, none on the other), more
// activities than a stream registers. Parallel and Map mutants run without
// mocks and are compared on their status only: which branch's task finishes
// before a sibling fails, and which failure comes first, depend on timing.
TEST_F(Differential, MutantsRunDurablyAsTheEngineAloneRunsThem) {
  const std::vector<mutation::Case> corpus =
      mutation::LoadCorpus(std::string(SAGA_SOURCE_DIR) + "/tests");
  ASSERT_GT(corpus.size(), 100u);
  const uint64_t seed = static_cast<uint64_t>(mutation::EnvInt("SAGA_MUTATION_SEED", 20261202));
  const size_t want = static_cast<size_t>(mutation::EnvInt("SAGA_DIFFERENTIAL_MUTANTS", 150));
  mutation::Mutator m(seed, &corpus);
  std::vector<std::unique_ptr<Case>> cases;
  std::set<std::string> activities;
  for (int64_t tries = 0; cases.size() < want && tries < 200000; ++tries) {
    const mutation::Case& from = corpus[m.Below(corpus.size())];
    json::Value def = from.definition, input = from.input;
    for (size_t edits = 1 + m.Below(2); edits > 0; --edits) {
      if (m.Chance(80))
        m.MutateTree(&def);
      else
        m.MutateTree(&input);
    }
    const std::string text = def.Dump();
    if (text.find("waitForTaskToken") != std::string::npos ||
        text.find("TimeoutSeconds") != std::string::npos ||
        text.find("HeartbeatSeconds") != std::string::npos) {
      continue;
    }
    auto machine = asl::CompileText(text);
    if (!machine.ok()) continue;
    std::set<std::string> resources;
    Resources(def, &resources);
    bool usable = true;
    for (const std::string& r : resources) usable = usable && !r.empty() && r.size() <= 256;
    std::set<std::string> all = activities;
    all.insert(resources.begin(), resources.end());
    if (!usable || all.size() > 64) continue;
    auto k = std::make_unique<Case>();
    k->file = "mutant of " + from.file;
    k->definition = text;
    k->input = input.Dump();
    if (m.Chance(50)) {
      auto mocks = engine::MockConfig::FromJson(mutation::FailingMocks(def, tries), "M", "T");
      if (!mocks.ok()) continue;
      k->mocks = std::make_unique<engine::MockConfig>(*std::move(mocks));
    }
    engine::OfflineOptions o;
    auto alone = engine::RunOffline(*machine, input, k->mocks.get(), o);
    if (!alone.ok()) continue;
    const auto& h = alone->history;
    if (h.empty() || h.back().timestamp_us - h.front().timestamp_us > kMaxMutantVirtualUs ||
        h.size() > 400) {
      continue;
    }
    if (k->input.size() > asl::kMaxPayloadBytes) continue;
    k->alone = *std::move(alone);
    k->compare_all = text.find("$$") == std::string::npos &&
                     text.find("States.UUID") == std::string::npos &&
                     text.find("States.MathRandom") == std::string::npos;
    if (text.find("JitterStrategy") != std::string::npos) k->compare_history = false;  // see above
    if (text.find("\"Parallel\"") != std::string::npos ||
        text.find("\"Map\"") != std::string::npos) {
      // Which branch or iteration fails first (and with which error) and
      // which draws a failing mock depend on timing: status only, no mocks.
      if (k->mocks) continue;
      k->compare_error = k->compare_all = false;
    }
    activities = std::move(all);
    cases.push_back(std::move(k));
  }
  ASSERT_EQ(cases.size(), want);
  int compared_all = 0;
  RunDurablyAndCompare(dsn(), cases, activities, &compared_all);
  std::cout << cases.size() << " mutants run durably (" << compared_all
            << " compared beyond their status)\n";
}

}  // namespace
}  // namespace saga::itest
