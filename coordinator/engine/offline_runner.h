// Runs an execution to completion in memory on a virtual clock, answering
// Task states from a Step Functions Local mock configuration. This is what
// `sagactl test-run` and the engine benchmark use; it drives the same
// engine::Process as the durable coordinator.
//
// Virtual clock: Wait states and retry intervals take no real time but keep
// their order (timers fire in fire-time order; pending tasks complete first,
// at the current virtual time, in the order they were scheduled).
//
// Thread safety: pure; MockConfig is immutable after construction.
#ifndef SAGA_COORDINATOR_ENGINE_OFFLINE_RUNNER_H_
#define SAGA_COORDINATOR_ENGINE_OFFLINE_RUNNER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/asl/definition.h"
#include "coordinator/common/json.h"
#include "coordinator/engine/events.h"
#include "coordinator/engine/execution_state.h"

namespace saga::engine {

struct MockResponse {
  bool is_throw = false;
  json::Value value;  // Return value
  std::optional<std::string> error, cause;
};

// The mocks of one test case of a MockConfigFile:
// StateMachines.NAME.TestCases.CASE maps state names to MockedResponses
// entries, whose keys ("0", "1-2") count every invocation of that state from 0.
class MockConfig {
 public:
  // Errors name the missing or malformed part ("StateMachines.M.TestCases.X").
  static absl::StatusOr<MockConfig> FromJson(const json::Value& config,
                                             std::string_view state_machine,
                                             std::string_view test_case);

  // nullopt: the state is not mocked (the Task echoes its input).
  // NotFound: the state is mocked but no key covers `invocation`.
  absl::StatusOr<std::optional<MockResponse>> Lookup(std::string_view state,
                                                     int64_t invocation) const;

 private:
  struct Range {
    int64_t first, last;
    MockResponse response;
  };
  std::map<std::string, std::vector<Range>, std::less<>> by_state_;
};

struct OfflineOptions {
  int64_t start_us = 0;  // virtual start time
  uint64_t seed = 0;     // randomness for jitter, MathRandom and UUID
  std::string state_machine_name = "StateMachine";
  std::string execution_name = "test-run";
  bool keep_history = true;
};

struct OfflineResult {
  ExecutionStatus status = ExecutionStatus::kPending;
  json::Value output;
  std::optional<std::string> error, cause;
  std::vector<Event> history;
  int64_t transitions = 0;  // states entered
};

// Runs to completion. Errors are harness problems (engine bug, stuck
// execution, bad input size), never execution failures.
absl::StatusOr<OfflineResult> RunOffline(std::shared_ptr<const asl::StateMachine> machine,
                                         const json::Value& input, const MockConfig* mocks,
                                         const OfflineOptions& options);

// {"status":..., "output"|"error","cause", ["history": [...]]}
json::Value OfflineResultToJson(const OfflineResult& r, bool with_history);

}  // namespace saga::engine

#endif  // SAGA_COORDINATOR_ENGINE_OFFLINE_RUNNER_H_
