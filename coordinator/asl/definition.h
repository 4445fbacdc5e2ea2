// The compiled form of an Amazon States Language definition.
//
// Compile() turns a definition JSON document (already accepted by Validate)
// into an immutable tree: paths, payload templates, Choice rules and
// intrinsic calls are parsed once; Next targets are resolved to indexes.
// The engine only ever reads this structure.
//
// Thread safety: a compiled StateMachine is immutable and can be shared.
#ifndef SAGA_COORDINATOR_ASL_DEFINITION_H_
#define SAGA_COORDINATOR_ASL_DEFINITION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/asl/choice.h"
#include "coordinator/asl/intrinsics.h"
#include "coordinator/asl/jsonpath.h"
#include "coordinator/common/json.h"
#include "coordinator/common/rng.h"

namespace saga::asl {

// Largest state input/output, task result or execution input (bytes of JSON).
inline constexpr size_t kMaxPayloadBytes = 262144;

// An InputPath / OutputPath / ResultPath field: absent (default "$"),
// explicit null, or a path.
struct PathField {
  enum class Kind : uint8_t { kDefault, kNull, kPath };
  Kind kind = Kind::kDefault;
  JsonPath path;
  bool is_identity() const {
    return kind == Kind::kDefault || (kind == Kind::kPath && path.is_root());
  }
};

// A path or an intrinsic call, as allowed in ".$" fields, ErrorPath, CausePath.
struct DynamicValue {
  bool is_intrinsic = false;
  JsonPath path;
  Intrinsic intrinsic;
};

// Parameters / ItemSelector / ResultSelector / Compensation Parameters.
class PayloadTemplate {
 public:
  static absl::StatusOr<PayloadTemplate> Compile(const json::Value& tpl);

  // Builds the payload. A path that matches nothing fails with
  // States.Runtime naming the field (as AWS); intrinsic failures keep their
  // own error names.
  absl::StatusOr<json::Value> Evaluate(const json::Value& input, const json::Value& context,
                                       Rng* rng) const;
  bool uses_context() const { return uses_context_; }

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  bool uses_context_ = false;
};

struct Retrier {
  std::vector<std::string> error_equals;
  double interval_seconds = 1;
  int64_t max_attempts = 3;
  double backoff_rate = 2.0;
  std::optional<int64_t> max_delay_seconds;
  bool jitter_full = false;
};

struct Catcher {
  std::vector<std::string> error_equals;
  int next = -1;
  PathField result_path;
};

struct StateMachine;

enum class StateType : uint8_t {
  kTask,
  kPass,
  kChoice,
  kWait,
  kSucceed,
  kFail,
  kParallel,
  kMap,
  kCompensate,
};
std::string_view StateTypeName(StateType t);

// Saga extension: how to undo a Task step.
struct Compensation {
  std::string resource;
  std::optional<PayloadTemplate> parameters;
  std::vector<Retrier> retry;
  std::optional<int64_t> timeout_seconds;
  std::optional<int64_t> heartbeat_seconds;
};

struct State {
  std::string name;
  StateType type = StateType::kPass;
  int index = -1;
  bool uses_context = false;  // whether any field of the state mentions "$$"

  int next = -1;  // index in the owning StateMachine, -1 when End
  bool end = false;

  PathField input_path, output_path, result_path;
  std::optional<PayloadTemplate> parameters;
  std::optional<PayloadTemplate> result_selector;
  std::vector<Retrier> retry;
  std::vector<Catcher> catchers;

  // Pass
  std::optional<json::Value> result;
  // Task
  std::string resource;
  std::optional<int64_t> timeout_seconds, heartbeat_seconds;
  std::optional<JsonPath> timeout_seconds_path, heartbeat_seconds_path;
  std::optional<Compensation> compensation;
  // Choice
  struct Choice {
    ChoiceRule rule;
    int next = -1;
  };
  std::vector<Choice> choices;
  int default_next = -1;
  // Wait
  std::optional<double> seconds;
  std::optional<int64_t> timestamp_micros;
  std::optional<JsonPath> seconds_path, timestamp_path;
  // Fail
  std::optional<std::string> error, cause;
  std::optional<DynamicValue> error_path, cause_path;
  // Parallel
  std::vector<std::shared_ptr<const StateMachine>> branches;
  // Map
  std::optional<JsonPath> items_path;
  std::optional<PayloadTemplate> item_selector;  // ItemSelector or legacy Parameters
  std::shared_ptr<const StateMachine> processor;
  int64_t max_concurrency = 0;
  std::optional<JsonPath> max_concurrency_path;
  std::optional<int64_t> tolerated_failure_count;
  std::optional<double> tolerated_failure_percentage;
  std::optional<JsonPath> tolerated_failure_count_path, tolerated_failure_percentage_path;
};

struct StateMachine {
  std::vector<State> states;
  std::unordered_map<std::string, int> index_by_name;
  int start_at = 0;
  std::optional<int64_t> timeout_seconds;  // top level only

  const State* Find(std::string_view name) const;
};

// Compiles a definition. REQUIRES: Validate(definition) returned no errors;
// anything it still cannot compile is InvalidArgument.
absl::StatusOr<std::shared_ptr<const StateMachine>> Compile(const json::Value& definition);

// Validates and compiles definition text; on failure the status message is a
// JSON array of {"path","message"} validation errors.
absl::StatusOr<std::shared_ptr<const StateMachine>> CompileText(std::string_view text);

}  // namespace saga::asl

#endif  // SAGA_COORDINATOR_ASL_DEFINITION_H_
