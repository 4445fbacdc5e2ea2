// saga-bench: throughput benchmarks.
//
//   saga-bench engine --definition D --input I [--mock-config M --state-machine N
//                     --test-case T] --seconds S
// runs the definition on the in-memory engine (virtual clock, mocked Tasks)
// as many times as fits in S seconds on one thread and prints one JSON line:
//   {"executions_per_sec":..., "transitions_per_sec":..., "executions":...,
//    "transitions_per_execution":..., "seconds":...}
// A transition is a state entered.
//
//   saga-bench durable --coordinator BIN --database-url CONNINFO [...]
// measures the durable coordinator over loopback gRPC (durable_bench.cc;
// bench/durable.sh runs it with everything set up).
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "coordinator/asl/definition.h"
#include "coordinator/engine/offline_runner.h"

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "saga-bench: cannot read '" << path << "'\n";
    std::exit(1);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Engine(const std::vector<std::string>& args) {
  std::string def, input, mock, sm = "StateMachine", tc;
  double seconds = 5;
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    const std::string& k = args[i];
    const std::string& v = args[i + 1];
    if (k == "--definition") {
      def = v;
    } else if (k == "--input") {
      input = v;
    } else if (k == "--mock-config") {
      mock = v;
    } else if (k == "--state-machine") {
      sm = v;
    } else if (k == "--test-case") {
      tc = v;
    } else if (k == "--seconds") {
      seconds = std::stod(v);
    } else {
      std::cerr << "saga-bench engine: unknown flag '" << k << "'\n";
      return 1;
    }
  }
  if (def.empty() || input.empty()) {
    std::cerr << "usage: saga-bench engine --definition D --input I [--mock-config M "
                 "--state-machine N --test-case T] --seconds S\n";
    return 1;
  }
  auto machine = saga::asl::CompileText(ReadFile(def));
  if (!machine.ok()) {
    std::cerr << "saga-bench: invalid definition: " << machine.status().message() << "\n";
    return 2;
  }
  auto in = saga::json::Parse(ReadFile(input));
  if (!in.ok()) {
    std::cerr << "saga-bench: --input: " << in.status().message() << "\n";
    return 1;
  }
  std::optional<saga::engine::MockConfig> mocks;
  if (!mock.empty()) {
    auto cfg = saga::json::Parse(ReadFile(mock));
    if (!cfg.ok()) {
      std::cerr << "saga-bench: --mock-config: " << cfg.status().message() << "\n";
      return 1;
    }
    auto mc = saga::engine::MockConfig::FromJson(*cfg, sm, tc);
    if (!mc.ok()) {
      std::cerr << "saga-bench: " << mc.status().message() << "\n";
      return 1;
    }
    mocks = *std::move(mc);
  }
  saga::engine::OfflineOptions opts;
  opts.keep_history = false;
  opts.start_us = 1700000000000000;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  int64_t executions = 0, transitions = 0;
  while (true) {
    for (int k = 0; k < 64; ++k) {
      opts.seed = static_cast<uint64_t>(executions);
      auto r = saga::engine::RunOffline(*machine, *in, mocks ? &*mocks : nullptr, opts);
      if (!r.ok()) {
        std::cerr << "saga-bench: " << r.status().message() << "\n";
        return 1;
      }
      ++executions;
      transitions += r->transitions;
    }
    if (Clock::now() >= deadline) break;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "{\"executions_per_sec\":" << static_cast<int64_t>(executions / elapsed)
            << ",\"transitions_per_sec\":" << static_cast<int64_t>(transitions / elapsed)
            << ",\"executions\":" << executions
            << ",\"transitions_per_execution\":" << (executions ? transitions / executions : 0)
            << ",\"seconds\":" << elapsed << "}\n";
  return 0;
}

}  // namespace

namespace saga::bench {
int DurableMain(const std::vector<std::string>& args);
}  // namespace saga::bench

int main(int argc, char** argv) {
  // The load generator's gRPC calls without absl::Mutex deadlock detection
  // (on in Debian's Abseil), as in the coordinator: less of the machine
  // goes to measuring.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "engine") return Engine({args.begin() + 1, args.end()});
  if (!args.empty() && args[0] == "durable") {
    return saga::bench::DurableMain({args.begin() + 1, args.end()});
  }
  std::cerr << "usage: saga-bench engine --definition D --input I [--mock-config M "
               "--state-machine N --test-case T] --seconds S\n"
               "       saga-bench durable --coordinator BIN --database-url CONNINFO [...]\n";
  return 1;
}
