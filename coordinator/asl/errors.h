// ASL error names and the absl::Status encoding of an ASL failure.
//
// Inside the ASL layer a failure that the state machine can see (and maybe
// Retry/Catch) is an absl::Status whose message is the Cause and whose payload
// "saga.asl.error" is the Error name. Status codes other than that carry no
// ASL meaning and are mapped to States.Runtime by ErrorName().
#ifndef SAGA_COORDINATOR_ASL_ERRORS_H_
#define SAGA_COORDINATOR_ASL_ERRORS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace saga::asl {

inline constexpr std::string_view kStatesAll = "States.ALL";
inline constexpr std::string_view kStatesRuntime = "States.Runtime";
inline constexpr std::string_view kStatesTimeout = "States.Timeout";
inline constexpr std::string_view kStatesHeartbeatTimeout = "States.HeartbeatTimeout";
inline constexpr std::string_view kStatesTaskFailed = "States.TaskFailed";
inline constexpr std::string_view kStatesPermissions = "States.Permissions";
inline constexpr std::string_view kStatesDataLimitExceeded = "States.DataLimitExceeded";
inline constexpr std::string_view kStatesResultPathMatchFailure = "States.ResultPathMatchFailure";
inline constexpr std::string_view kStatesParameterPathFailure = "States.ParameterPathFailure";
inline constexpr std::string_view kStatesBranchFailed = "States.BranchFailed";
inline constexpr std::string_view kStatesNoChoiceMatched = "States.NoChoiceMatched";
inline constexpr std::string_view kStatesIntrinsicFailure = "States.IntrinsicFailure";
inline constexpr std::string_view kStatesExceedToleratedFailureThreshold =
    "States.ExceedToleratedFailureThreshold";
inline constexpr std::string_view kStatesItemReaderFailed = "States.ItemReaderFailed";
inline constexpr std::string_view kStatesResultWriterFailed = "States.ResultWriterFailed";

// Builds a failure with ASL error name `error` and cause `cause`.
absl::Status AslError(std::string_view error, std::string_view cause);

// The ASL error name of `s` (States.Runtime when `s` carries none).
// REQUIRES: !s.ok().
std::string ErrorName(const absl::Status& s);

// The Cause of `s` (its message).
inline std::string ErrorCause(const absl::Status& s) { return std::string(s.message()); }

// True when `error` is one of the predefined States.* names.
bool IsKnownStatesError(std::string_view error);

// Whether a Retrier's or Catcher's ErrorEquals entry `pattern` matches `error`,
// with Step Functions' rules: States.ALL matches everything except
// States.Runtime and States.DataLimitExceeded (those terminate the execution);
// States.TaskFailed matches everything except States.Timeout (and the two
// above); States.Timeout also matches States.HeartbeatTimeout.
bool ErrorMatches(std::string_view pattern, std::string_view error);

}  // namespace saga::asl

#endif  // SAGA_COORDINATOR_ASL_ERRORS_H_
