#include "coordinator/asl/errors.h"

#include <array>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"

namespace saga::asl {
namespace {
constexpr std::string_view kPayloadKey = "saga.asl.error";
}  // namespace

absl::Status AslError(std::string_view error, std::string_view cause) {
  absl::Status s(absl::StatusCode::kFailedPrecondition,
                 absl::string_view(cause.data(), cause.size()));
  s.SetPayload(absl::string_view(kPayloadKey.data(), kPayloadKey.size()),
               absl::Cord(absl::string_view(error.data(), error.size())));
  return s;
}

std::string ErrorName(const absl::Status& s) {
  auto p = s.GetPayload(absl::string_view(kPayloadKey.data(), kPayloadKey.size()));
  if (!p.has_value()) return std::string(kStatesRuntime);
  return std::string(*p);
}

bool IsKnownStatesError(std::string_view error) {
  static constexpr std::array<std::string_view, 16> kKnown = {
      kStatesAll,
      kStatesRuntime,
      kStatesTimeout,
      kStatesHeartbeatTimeout,
      kStatesTaskFailed,
      kStatesPermissions,
      kStatesDataLimitExceeded,
      kStatesResultPathMatchFailure,
      kStatesParameterPathFailure,
      kStatesBranchFailed,
      kStatesNoChoiceMatched,
      kStatesIntrinsicFailure,
      kStatesExceedToleratedFailureThreshold,
      kStatesItemReaderFailed,
      kStatesResultWriterFailed,
      "States.QueryEvaluationError",
  };
  for (auto k : kKnown) {
    if (k == error) return true;
  }
  return false;
}

bool ErrorMatches(std::string_view pattern, std::string_view error) {
  // States.Runtime always ends the execution: nothing catches or retries it.
  if (error == kStatesRuntime) return false;
  if (pattern == error) return true;
  if (error == kStatesDataLimitExceeded) return false;  // only by name
  if (pattern == kStatesAll) return true;
  if (pattern == kStatesTimeout) return error == kStatesHeartbeatTimeout;
  if (pattern == kStatesTaskFailed) {
    return error != kStatesTimeout && error != kStatesHeartbeatTimeout;
  }
  return false;
}

}  // namespace saga::asl
