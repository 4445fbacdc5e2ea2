#include "coordinator/engine/offline_runner.h"

#include <charconv>
#include <deque>
#include <queue>

#include "coordinator/asl/errors.h"
#include "coordinator/common/status_macros.h"
#include "coordinator/common/strings.h"
#include "coordinator/engine/engine.h"

namespace saga::engine {
namespace {

std::optional<int64_t> ParseIndex(std::string_view s) {
  int64_t v;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace

absl::StatusOr<MockConfig> MockConfig::FromJson(const json::Value& config,
                                                std::string_view state_machine,
                                                std::string_view test_case) {
  MockConfig mc;
  const json::Value* sms = config.Find("StateMachines");
  if (sms == nullptr || !sms->is_object()) {
    return absl::InvalidArgumentError("mock config: StateMachines must be an object");
  }
  const json::Value* sm = sms->Find(state_machine);
  if (sm == nullptr) {
    return absl::InvalidArgumentError(
        saga::StrCat("mock config: StateMachines.", state_machine, " does not exist"));
  }
  const json::Value* tcs = sm->Find("TestCases");
  const json::Value* tc = tcs ? tcs->Find(test_case) : nullptr;
  if (tc == nullptr || !tc->is_object()) {
    return absl::InvalidArgumentError(saga::StrCat("mock config: StateMachines.", state_machine,
                                                   ".TestCases.", test_case, " does not exist"));
  }
  const json::Value* responses = config.Find("MockedResponses");
  for (const auto& [state, ref] : tc->as_object()) {
    const std::string where =
        saga::StrCat("StateMachines.", state_machine, ".TestCases.", test_case, ".", state);
    if (!ref.is_string()) {
      return absl::InvalidArgumentError(
          saga::StrCat("mock config: ", where, " must name a MockedResponses entry"));
    }
    const json::Value* resp = responses ? responses->Find(ref.as_string()) : nullptr;
    if (resp == nullptr || !resp->is_object()) {
      return absl::InvalidArgumentError(saga::StrCat("mock config: MockedResponses.",
                                                     ref.as_string(), " (used by ", where,
                                                     ") does not exist"));
    }
    std::vector<Range>& ranges = mc.by_state_[state];
    for (const auto& [key, val] : resp->as_object()) {
      const std::string rwhere = saga::StrCat("MockedResponses.", ref.as_string(), ".", key);
      Range r;
      size_t dash = key.find('-');
      auto first = ParseIndex(key.substr(0, dash));
      auto last = dash == std::string::npos ? first : ParseIndex(key.substr(dash + 1));
      if (!first || !last || *last < *first) {
        return absl::InvalidArgumentError(
            saga::StrCat("mock config: ", rwhere, ": key must be \"N\" or \"N-M\""));
      }
      r.first = *first;
      r.last = *last;
      if (const json::Value* ret = val.Find("Return")) {
        r.response.value = *ret;
      } else if (const json::Value* th = val.Find("Throw"); th && th->is_object()) {
        r.response.is_throw = true;
        if (const json::Value* e = th->Find("Error"); e && e->is_string()) {
          r.response.error = e->as_string();
        }
        if (const json::Value* c = th->Find("Cause"); c && c->is_string()) {
          r.response.cause = c->as_string();
        }
      } else {
        return absl::InvalidArgumentError(
            saga::StrCat("mock config: ", rwhere, " needs \"Return\" or \"Throw\""));
      }
      ranges.push_back(std::move(r));
    }
  }
  return mc;
}

absl::StatusOr<std::optional<MockResponse>> MockConfig::Lookup(std::string_view state,
                                                               int64_t invocation) const {
  auto it = by_state_.find(state);
  if (it == by_state_.end()) return std::optional<MockResponse>();
  for (const Range& r : it->second) {
    if (invocation >= r.first && invocation <= r.last) return std::optional(r.response);
  }
  return absl::NotFoundError(
      saga::StrCat("no mocked response for state '", state, "' invocation ", invocation));
}

absl::StatusOr<OfflineResult> RunOffline(std::shared_ptr<const asl::StateMachine> machine,
                                         const json::Value& input, const MockConfig* mocks,
                                         const OfflineOptions& o) {
  ExecutionState st;
  st.machine = std::move(machine);
  OfflineResult result;
  int64_t now = o.start_us;
  uint64_t seed = o.seed;
  std::deque<TaskRequest> tasks;
  using TimerEntry = std::pair<int64_t, int64_t>;  // (fire_at, timer id)
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers;
  std::map<std::string, int64_t, std::less<>> invocations;

  auto absorb = [&](Decision d) {
    for (auto& t : d.tasks) tasks.push_back(std::move(t));
    for (const auto& t : d.timers) timers.push({t.fire_at_us, t.timer_id});
    for (auto& e : d.events) {
      if (EventTypeName(e.type).ends_with("StateEntered")) result.transitions++;
      if (o.keep_history) result.history.push_back(std::move(e));
    }
  };
  auto process = [&](const Command& c) -> absl::Status {
    auto d = Process(&st, c, now, seed++);
    if (!d.ok()) return d.status();
    absorb(*std::move(d));
    return absl::OkStatus();
  };

  StartCommand start;
  start.input = input;
  start.info.name = o.execution_name;
  start.info.state_machine_name = o.state_machine_name;
  start.info.state_machine_id =
      saga::StrCat("arn:aws:states:local:000000000000:stateMachine:", o.state_machine_name);
  start.info.execution_id = saga::StrCat(
      "arn:aws:states:local:000000000000:execution:", o.state_machine_name, ":", o.execution_name);
  start.info.role_arn = "arn:aws:iam::000000000000:role/saga-test-run";
  RETURN_IF_ERROR(process(start));

  while (!st.finished()) {
    if (!tasks.empty()) {
      TaskRequest t = std::move(tasks.front());
      tasks.pop_front();
      if (!st.open_tasks.count(t.task_id)) continue;  // cancelled meanwhile
      const std::string key =
          t.compensation ? saga::StrCat(t.compensated_state, ".Compensation") : t.state_name;
      int64_t n = invocations[key]++;
      RETURN_IF_ERROR(process(TaskStartedCommand{t.task_id, "sagactl-test-run"}));
      std::optional<MockResponse> resp;
      if (mocks != nullptr) {
        auto r = mocks->Lookup(key, n);
        if (!r.ok()) {
          RETURN_IF_ERROR(process(TaskFailedCommand{t.task_id, std::string(asl::kStatesRuntime),
                                                    std::string(r.status().message())}));
          continue;
        }
        resp = *r;
      }
      if (!resp) {
        RETURN_IF_ERROR(process(TaskSucceededCommand{t.task_id, t.input}));
      } else if (resp->is_throw) {
        RETURN_IF_ERROR(process(TaskFailedCommand{t.task_id, resp->error, resp->cause}));
      } else {
        RETURN_IF_ERROR(process(TaskSucceededCommand{t.task_id, resp->value}));
      }
      continue;
    }
    if (!timers.empty()) {
      auto [at, id] = timers.top();
      timers.pop();
      if (!st.open_timers.count(id)) continue;  // stale
      now = std::max(now, at);
      RETURN_IF_ERROR(process(TimerFiredCommand{id}));
      continue;
    }
    return absl::InternalError("execution is stuck: no pending task or timer");
  }
  result.status = st.status;
  result.output = st.output;
  if (st.has_error) result.error = st.error;
  if (st.has_cause) result.cause = st.cause;
  return result;
}

json::Value OfflineResultToJson(const OfflineResult& r, bool with_history) {
  json::Value o = json::Value::EmptyObject();
  o.Set("status", json::Value(ExecutionStatusName(r.status)));
  if (r.status == ExecutionStatus::kSucceeded) {
    o.Set("output", r.output);
  } else {
    if (r.error) o.Set("error", json::Value(*r.error));
    if (r.cause) o.Set("cause", json::Value(*r.cause));
  }
  if (with_history) {
    json::Array h;
    h.reserve(r.history.size());
    for (const auto& e : r.history) h.push_back(EventToJson(e));
    o.Set("history", json::Value(std::move(h)));
  }
  return o;
}

}  // namespace saga::engine
