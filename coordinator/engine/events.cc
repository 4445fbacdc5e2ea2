#include "coordinator/engine/events.h"

#include <array>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace saga::engine {
namespace {

constexpr std::array kNames = {
#define SAGA_NAME_(n) std::string_view(#n),
    SAGA_EVENT_TYPES(SAGA_NAME_)
#undef SAGA_NAME_
};

}  // namespace

std::string_view EventTypeName(EventType t) { return kNames[static_cast<size_t>(t)]; }

std::optional<EventType> EventTypeFromName(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<EventType>(i);
  }
  return std::nullopt;
}

std::string FormatTimestamp(int64_t micros) {
  absl::Time t = absl::FromUnixMicros(micros);
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

json::Value EventToJson(const Event& e) {
  json::Object o;
  o.reserve(6 + e.details.size());
  o.emplace_back("id", json::Value(e.id));
  o.emplace_back("previousEventId", json::Value(e.id - 1));
  o.emplace_back("timestamp", json::Value(FormatTimestamp(e.timestamp_us)));
  o.emplace_back("type", json::Value(EventTypeName(e.type)));
  if (!e.state_name.empty()) o.emplace_back("stateName", json::Value(e.state_name));
  if (e.details.is_object()) {
    for (const auto& m : e.details.as_object()) o.push_back(m);
  }
  return json::Value(std::move(o));
}

json::Value EventToRecord(const Event& e) {
  json::Object o;
  o.emplace_back("id", json::Value(e.id));
  o.emplace_back("ts", json::Value(e.timestamp_us));
  o.emplace_back("type", json::Value(EventTypeName(e.type)));
  o.emplace_back("frame", json::Value(static_cast<int64_t>(e.frame)));
  if (!e.state_name.empty()) o.emplace_back("state", json::Value(e.state_name));
  o.emplace_back("details", e.details.is_null() ? json::Value::EmptyObject() : e.details);
  return json::Value(std::move(o));
}

absl::StatusOr<Event> EventFromRecord(const json::Value& r) {
  Event e;
  const json::Value* id = r.Find("id");
  const json::Value* ts = r.Find("ts");
  const json::Value* type = r.Find("type");
  const json::Value* frame = r.Find("frame");
  if (!id || !id->is_int() || !ts || !ts->is_int() || !type || !type->is_string() || !frame ||
      !frame->is_int()) {
    return absl::InvalidArgumentError("event record lacks id, ts, type or frame");
  }
  auto t = EventTypeFromName(type->as_string());
  if (!t) return absl::InvalidArgumentError("unknown event type " + type->as_string());
  e.id = id->as_int();
  e.timestamp_us = ts->as_int();
  e.type = *t;
  e.frame = static_cast<int32_t>(frame->as_int());
  if (const json::Value* s = r.Find("state"); s && s->is_string()) e.state_name = s->as_string();
  if (const json::Value* d = r.Find("details")) e.details = *d;
  return e;
}

}  // namespace saga::engine
