// History events: what happened to an execution, in order.
//
// Event type names follow Step Functions' HistoryEventType where one exists.
// Extra types (ParallelBranch*, StateRetryScheduled, Compensation*) record
// decisions that Step Functions keeps out of its history but that an
// event-sourced engine needs to rebuild its state by replay.
//
// Thread safety: plain values.
#ifndef SAGA_COORDINATOR_ENGINE_EVENTS_H_
#define SAGA_COORDINATOR_ENGINE_EVENTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/common/json.h"

namespace saga::engine {

#define SAGA_EVENT_TYPES(X)  \
  X(ExecutionStarted)        \
  X(ExecutionSucceeded)      \
  X(ExecutionFailed)         \
  X(ExecutionAborted)        \
  X(ExecutionTimedOut)       \
  X(ExecutionRedriven)       \
  X(ExecutionStopRequested)  \
  X(TaskStateEntered)        \
  X(TaskStateExited)         \
  X(TaskStateAborted)        \
  X(ActivityScheduled)       \
  X(ActivityStarted)         \
  X(ActivitySucceeded)       \
  X(ActivityFailed)          \
  X(ActivityTimedOut)        \
  X(PassStateEntered)        \
  X(PassStateExited)         \
  X(ChoiceStateEntered)      \
  X(ChoiceStateExited)       \
  X(WaitStateEntered)        \
  X(WaitStateExited)         \
  X(WaitStateAborted)        \
  X(SucceedStateEntered)     \
  X(SucceedStateExited)      \
  X(FailStateEntered)        \
  X(ParallelStateEntered)    \
  X(ParallelStateStarted)    \
  X(ParallelBranchSucceeded) \
  X(ParallelBranchFailed)    \
  X(ParallelBranchAborted)   \
  X(ParallelStateSucceeded)  \
  X(ParallelStateFailed)     \
  X(ParallelStateAborted)    \
  X(ParallelStateExited)     \
  X(MapStateEntered)         \
  X(MapStateStarted)         \
  X(MapIterationStarted)     \
  X(MapIterationSucceeded)   \
  X(MapIterationFailed)      \
  X(MapIterationAborted)     \
  X(MapStateSucceeded)       \
  X(MapStateFailed)          \
  X(MapStateAborted)         \
  X(MapStateExited)          \
  X(StateRetryScheduled)     \
  X(CompensateStateEntered)  \
  X(CompensationScheduled)   \
  X(CompensationStarted)     \
  X(CompensationSucceeded)   \
  X(CompensationFailed)      \
  X(CompensateStateExited)

enum class EventType : uint8_t {
#define SAGA_ENUM_(n) k##n,
  SAGA_EVENT_TYPES(SAGA_ENUM_)
#undef SAGA_ENUM_
};

std::string_view EventTypeName(EventType t);
std::optional<EventType> EventTypeFromName(std::string_view name);

struct Event {
  int64_t id = 0;            // 1-based, consecutive within an execution
  int64_t timestamp_us = 0;  // microseconds since the Unix epoch
  EventType type = EventType::kExecutionStarted;
  int32_t frame = 0;       // 0: top level; else a Parallel branch or Map iteration
  std::string state_name;  // empty when the event concerns no state
  json::Value details;     // object with the type's fields (input, output, error, ...)
};

// Formats microseconds since the epoch as "2024-05-01T12:00:00.123Z".
std::string FormatTimestamp(int64_t micros);

// The event as a Step Functions-like history entry:
// {"id","previousEventId","timestamp","type","stateName"?, ...details}.
json::Value EventToJson(const Event& e);

// Lossless form for storage and replay (adds "frame" and raw timestamp).
json::Value EventToRecord(const Event& e);
absl::StatusOr<Event> EventFromRecord(const json::Value& record);

}  // namespace saga::engine

#endif  // SAGA_COORDINATOR_ENGINE_EVENTS_H_
