// Static validation of an Amazon States Language definition.
//
// Validate() reports every problem at once, each with the JSON path of the
// offending node ("$.States.Charge.Retry[0].BackoffRate") and a plain message.
// It recurses into Parallel branches and Map processors. A definition that
// validates cleanly can be compiled by asl::Compile without further errors.
//
// Thread safety: pure function.
#ifndef SAGA_COORDINATOR_ASL_VALIDATOR_H_
#define SAGA_COORDINATOR_ASL_VALIDATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/common/json.h"

namespace saga::asl {

struct ValidationError {
  std::string path;     // JSONPath-style location, "$" for the document
  std::string message;  // plain English
  friend bool operator==(const ValidationError&, const ValidationError&) = default;
};

// Step Functions' cap on most counters and durations in seconds (Wait
// Seconds, TimeoutSeconds, HeartbeatSeconds, IntervalSeconds, ...); the
// engine applies it to the values their *Path variants find at run time too.
inline constexpr int64_t kMaxSeconds = 99999999;

// Largest definition text accepted (Step Functions: 1 MiB).
inline constexpr size_t kMaxDefinitionBytes = 1024 * 1024;

std::vector<ValidationError> Validate(const json::Value& definition);

// Parses `text` (checking its size first) and validates it. JSON syntax
// errors come back as one error at path "$".
std::vector<ValidationError> ValidateText(std::string_view text);

// [{"path": ..., "message": ...}, ...] as sagactl prints them and the API
// returns them in INVALID_ARGUMENT messages.
json::Value ValidationErrorsToJson(const std::vector<ValidationError>& errors);

// Validates a state or execution name: 1-80 characters, none of the
// characters Step Functions forbids (whitespace, < > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /
// and control characters). Returns an empty string when valid, else why not.
std::string CheckName(std::string_view name);

}  // namespace saga::asl

#endif  // SAGA_COORDINATOR_ASL_VALIDATOR_H_
