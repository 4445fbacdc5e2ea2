#include "coordinator/engine/engine.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <set>
#include <utility>

#include "coordinator/asl/errors.h"
#include "coordinator/asl/validator.h"
#include "coordinator/common/status_macros.h"
#include "coordinator/common/strings.h"

namespace saga::engine {
namespace {

using asl::State;
using asl::StateType;

// An ASL-level failure: error and cause may each be absent (a Fail state
// without Error/Cause, SendTaskFailure without a cause).
struct Failure {
  std::optional<std::string> error;
  std::optional<std::string> cause;
  // A heartbeat timeout is reported as States.Timeout (as AWS records it)
  // but also matches ErrorEquals "States.HeartbeatTimeout".
  bool heartbeat = false;
  // A task's TimeoutSeconds or HeartbeatSeconds ran out (see AsCatchOutput).
  bool timed_out = false;

  bool Matches(std::string_view pattern) const {
    if (heartbeat && pattern == asl::kStatesHeartbeatTimeout) return true;
    return asl::ErrorMatches(pattern, error.value_or(""));
  }

  static Failure From(const absl::Status& s) {
    return Failure{asl::ErrorName(s), asl::ErrorCause(s)};
  }
  static Failure Of(std::string_view error, std::string_view cause) {
    return Failure{std::string(error), std::string(cause)};
  }
  void AddTo(json::Value* details) const {
    if (error) details->Set("error", json::Value(*error));
    if (cause) details->Set("cause", json::Value(*cause));
  }
  // {"Error": ..., "Cause": ...} as a Catch places it at ResultPath: both
  // fields always, as ASL defines the error output and as AWS writes it
  // (recorded against AWS in LocalStack's Step Functions snapshots). A
  // field the failure has not is null (SendTaskFailure with neither error
  // nor cause gives {"Error": null, "Cause": null}:
  // test_sqs_failure_in_wait_for_task_tok_no_error_field), except a task
  // timeout's Cause, which is "" ({"Error": "States.Timeout", "Cause": ""}:
  // test_invoke_timeout). The history events still leave out what the
  // failure has not, as AWS's do.
  json::Value AsCatchOutput() const {
    json::Object o;
    o.emplace_back("Error", error ? json::Value(*error) : json::Value());
    o.emplace_back("Cause", cause       ? json::Value(*cause)
                            : timed_out ? json::Value(std::string())
                                        : json::Value());
    return json::Value(std::move(o));
  }
};

json::Value Details() { return json::Value::EmptyObject(); }

json::Value Details(std::string_view k1, json::Value v1) {
  json::Object o;
  o.emplace_back(std::string(k1), std::move(v1));
  return json::Value(std::move(o));
}

EventType EnteredEvent(StateType t) {
  switch (t) {
    case StateType::kTask:
      return EventType::kTaskStateEntered;
    case StateType::kPass:
      return EventType::kPassStateEntered;
    case StateType::kChoice:
      return EventType::kChoiceStateEntered;
    case StateType::kWait:
      return EventType::kWaitStateEntered;
    case StateType::kSucceed:
      return EventType::kSucceedStateEntered;
    case StateType::kFail:
      return EventType::kFailStateEntered;
    case StateType::kParallel:
      return EventType::kParallelStateEntered;
    case StateType::kMap:
      return EventType::kMapStateEntered;
    case StateType::kCompensate:
      return EventType::kCompensateStateEntered;
  }
  return EventType::kPassStateEntered;
}

EventType ExitedEvent(StateType t) {
  switch (t) {
    case StateType::kTask:
      return EventType::kTaskStateExited;
    case StateType::kChoice:
      return EventType::kChoiceStateExited;
    case StateType::kWait:
      return EventType::kWaitStateExited;
    case StateType::kSucceed:
      return EventType::kSucceedStateExited;
    case StateType::kParallel:
      return EventType::kParallelStateExited;
    case StateType::kMap:
      return EventType::kMapStateExited;
    case StateType::kCompensate:
      return EventType::kCompensateStateExited;
    default:
      return EventType::kPassStateExited;
  }
}

EventType AbortedEvent(StateType t) {
  switch (t) {
    case StateType::kWait:
      return EventType::kWaitStateAborted;
    case StateType::kParallel:
      return EventType::kParallelStateAborted;
    case StateType::kMap:
      return EventType::kMapStateAborted;
    default:
      return EventType::kTaskStateAborted;
  }
}

class Decider {
 public:
  Decider(ExecutionState* s, int64_t now, uint64_t seed, const EngineOptions& opts, Decision* d)
      : s_(s), now_(now), rng_(seed), opts_(opts), d_(d) {}

  absl::Status Run(const Command& cmd) {
    RETURN_IF_ERROR(std::visit([this](const auto& c) { return Handle(c); }, cmd));
    return Drain();
  }

 private:
  // ---- commands ----------------------------------------------------------

  absl::Status Handle(const StartCommand& c) {
    if (s_->status != ExecutionStatus::kPending) {
      return absl::FailedPreconditionError("execution already started");
    }
    if (!json::FitsIn(c.input, asl::kMaxPayloadBytes)) {
      return absl::InvalidArgumentError(saga::StrCat("input: the execution input is larger than ",
                                                     asl::kMaxPayloadBytes, " bytes"));
    }
    json::Value d = Details("input", c.input);
    d.Set("roleArn", json::Value(c.info.role_arn));
    d.Set("executionArn", json::Value(c.info.execution_id));
    d.Set("name", json::Value(c.info.name));
    d.Set("stateMachineArn", json::Value(c.info.state_machine_id));
    d.Set("stateMachineName", json::Value(c.info.state_machine_name));
    int64_t timer = 0;
    if (s_->machine->timeout_seconds) {
      timer = s_->next_timer_id;
      d.Set("timeoutInSeconds", json::Value(*s_->machine->timeout_seconds));
      d.Set("timerId", json::Value(timer));
    }
    RETURN_IF_ERROR(Emit(EventType::kExecutionStarted, 0, "", std::move(d)));
    if (timer != 0) {
      d_->timers.push_back({timer, now_ + *s_->machine->timeout_seconds * 1000000});
    }
    Enter(0, s_->machine->start_at, c.input);
    return absl::OkStatus();
  }

  absl::StatusOr<Frame*> TaskFrame(int64_t task_id) {
    if (s_->finished()) return absl::FailedPreconditionError("execution has finished");
    auto it = s_->open_tasks.find(task_id);
    if (it == s_->open_tasks.end()) {
      return absl::FailedPreconditionError(
          saga::StrCat("task ", task_id, " is not current (timed out, retried or finished)"));
    }
    return &s_->frames.at(it->second);
  }

  bool IsCompensation(const Frame& f) const {
    return f.stop_rollback || (f.state >= 0 && f.current().type == StateType::kCompensate);
  }
  // The state named in compensation events: the Compensate state, or none
  // for a stop's rollback.
  std::string CompensationStateName(const Frame& f) const {
    return f.stop_rollback ? std::string() : f.current().name;
  }

  absl::Status Handle(const TaskStartedCommand& c) {
    ASSIGN_OR_RETURN(Frame * f, TaskFrame(c.task_id));
    json::Value d = Details("taskId", json::Value(c.task_id));
    d.Set("workerName", json::Value(c.worker));
    if (IsCompensation(*f)) {
      for (const auto& r : s_->compensations) {
        if (r.seq == f->compensation_seq) d.Set("compensatedState", json::Value(r.state_name));
      }
    }
    return Emit(IsCompensation(*f) ? EventType::kCompensationStarted : EventType::kActivityStarted,
                f->id, IsCompensation(*f) ? CompensationStateName(*f) : f->current().name,
                std::move(d));
  }

  absl::Status Handle(const TaskHeartbeatCommand& c) { return TaskFrame(c.task_id).status(); }

  // A task result over the payload limit fails the task, as on AWS
  // (LambdaFunctionFailed with States.DataLimitExceeded, recorded by
  // LocalStack; the result is not recorded, and Catch and Retry apply).
  static std::string ResultTooLarge(std::string_view resource) {
    return saga::StrCat("The state/task '", resource,
                        "' returned a result with a size exceeding the maximum number of bytes "
                        "service limit.");
  }

  absl::Status Handle(const TaskSucceededCommand& c) {
    ASSIGN_OR_RETURN(Frame * f, TaskFrame(c.task_id));
    const bool too_large = c.too_large || !json::FitsIn(c.output, asl::kMaxPayloadBytes);
    if (IsCompensation(*f)) {
      if (!too_large) return CompensationSucceeded(f, c.output);
      const CompensationRecord* rec = Record(f->compensation_seq);
      const asl::State* target = rec ? FindStateAnywhere(rec->state_name) : nullptr;
      const std::string resource =
          target && target->compensation ? target->compensation->resource : std::string();
      return CompensationFailed(
          f, Failure::Of(asl::kStatesDataLimitExceeded, ResultTooLarge(resource)), false);
    }
    if (too_large) {
      return Handle(TaskFailedCommand{c.task_id, std::string(asl::kStatesDataLimitExceeded),
                                      ResultTooLarge(f->current().resource)});
    }
    succeeded_task_ = c.task_id;
    const State& st = f->current();
    json::Value d = Details("taskId", json::Value(c.task_id));
    d.Set("output", c.output);
    RETURN_IF_ERROR(Emit(EventType::kActivitySucceeded, f->id, st.name, std::move(d)));
    return ProcessResult(f->id, c.output);
  }

  absl::Status Handle(const TaskFailedCommand& c) {
    ASSIGN_OR_RETURN(Frame * f, TaskFrame(c.task_id));
    Failure fl{c.error, c.cause};
    if (IsCompensation(*f)) return CompensationFailed(f, fl, false);
    json::Value d = Details("taskId", json::Value(c.task_id));
    fl.AddTo(&d);
    RETURN_IF_ERROR(Emit(EventType::kActivityFailed, f->id, f->current().name, std::move(d)));
    return HandleStateError(f->id, fl);
  }

  absl::Status Handle(const TaskTimedOutCommand& c) {
    ASSIGN_OR_RETURN(Frame * f, TaskFrame(c.task_id));
    // AWS reports both kinds as States.Timeout without a cause.
    Failure fl{std::string(asl::kStatesTimeout), std::nullopt, c.heartbeat, /*timed_out=*/true};
    if (IsCompensation(*f)) return CompensationFailed(f, fl, true);
    json::Value d = Details("taskId", json::Value(c.task_id));
    fl.AddTo(&d);
    RETURN_IF_ERROR(Emit(EventType::kActivityTimedOut, f->id, f->current().name, std::move(d)));
    return HandleStateError(f->id, fl);
  }

  absl::Status Handle(const TimerFiredCommand& c) {
    if (s_->finished()) return absl::FailedPreconditionError("execution has finished");
    auto it = s_->open_timers.find(c.timer_id);
    if (it == s_->open_timers.end()) {
      return absl::FailedPreconditionError(saga::StrCat("timer ", c.timer_id, " is not current"));
    }
    if (it->second < 0) {
      return EndExecution(EventType::kExecutionTimedOut,
                          Failure::Of(asl::kStatesTimeout, "The execution timed out."));
    }
    Frame& f = s_->frames.at(it->second);
    if (f.phase == Phase::kWait) {
      const State& st = f.current();
      absl::StatusOr<json::Value> out = InputPath(f, f.input);
      if (out.ok()) out = OutputPath(f, *out);
      if (!out.ok()) return FailFrame(f.id, Failure::From(out.status()));
      return ExitState(f.id, *out, Details());
      (void)st;
    }
    if (f.phase == Phase::kRetryWait && IsCompensation(f)) {
      return ContinueCompensation(f.id, f.compensation_plan);
    }
    if (f.phase == Phase::kRetryWait) return RunAttempt(f.id);
    return absl::InternalError("timer owner is in no waiting phase");
  }

  absl::Status Handle(const RedriveCommand&) {
    if (!s_->finished()) {
      return absl::FailedPreconditionError(
          "execution_arn: the execution is RUNNING; only FAILED, TIMED_OUT and ABORTED executions "
          "can be redriven");
    }
    if (s_->status == ExecutionStatus::kSucceeded) {
      return absl::FailedPreconditionError(
          "execution_arn: the execution SUCCEEDED; only FAILED, TIMED_OUT and ABORTED executions "
          "can be redriven");
    }
    if (now_ - s_->stop_us > kRedriveWindowUs) {
      return absl::FailedPreconditionError(
          "execution_arn: the execution stopped more than 14 days ago and can no longer be redriven");
    }
    auto root = s_->frames.find(0);
    if (root == s_->frames.end() || root->second.state < 0) {
      return absl::FailedPreconditionError("execution_arn: the execution never entered a state");
    }
    // Every frame resumes where it stopped: a rollback with the compensation
    // that failed; a Parallel or Map whose children failed with the
    // branches/iterations that did not succeed; any other state that was
    // running or failed is entered again with its input. Frames waiting for
    // their children wait on.
    std::set<int32_t> parents;
    for (const auto& [id, f] : s_->frames) {
      if (f.parent >= 0) parents.insert(f.parent);
    }
    json::Array restart, rollback, children;
    std::vector<std::pair<int32_t, std::vector<std::pair<int64_t, int32_t>>>> branches;
    int32_t next_frame = s_->next_frame_id;
    for (const auto& [id, f] : s_->frames) {
      if (parents.count(id) || f.phase == Phase::kDone) continue;  // waits for its children
      if (f.state < 0) {
        return absl::FailedPreconditionError(
            "execution_arn: the execution stopped between states and cannot be redriven");
      }
      const StateType t = f.current().type;
      if (IsCompensation(f) && !f.compensation_plan.empty()) {
        rollback.push_back(json::Value(static_cast<int64_t>(id)));
      } else if ((t == StateType::kParallel || t == StateType::kMap) && !f.child_done.empty() &&
                 f.child_done.size() == f.results.size()) {
        json::Value c = Details("frame", json::Value(static_cast<int64_t>(id)));
        json::Array resumed;
        std::vector<std::pair<int64_t, int32_t>> mine;
        if (t == StateType::kParallel) {
          for (size_t i = 0; i < f.child_done.size(); ++i) {
            if (f.child_done[i]) continue;
            const int32_t child = next_frame++;
            mine.emplace_back(static_cast<int64_t>(i), child);
            json::Value b = Details("index", json::Value(static_cast<int64_t>(i)));
            b.Set("frameId", json::Value(static_cast<int64_t>(child)));
            resumed.push_back(std::move(b));
          }
        }
        c.Set("branches", json::Value(std::move(resumed)));
        children.push_back(std::move(c));
        branches.emplace_back(id, std::move(mine));
      } else {
        restart.push_back(json::Value(static_cast<int64_t>(id)));
      }
    }
    json::Value d = Details("redriveCount", json::Value(s_->redrive_count + 1));
    int64_t timer = 0;
    if (s_->machine->timeout_seconds) {
      timer = s_->next_timer_id;
      d.Set("timerId", json::Value(timer));
    }
    d.Set("restart", json::Value(restart));
    d.Set("rollback", json::Value(rollback));
    d.Set("children", json::Value(std::move(children)));
    RETURN_IF_ERROR(Emit(EventType::kExecutionRedriven, 0, "", std::move(d)));
    if (timer != 0) {
      d_->timers.push_back({timer, now_ + *s_->machine->timeout_seconds * 1000000});
    }
    for (const auto& v : restart) {
      const Frame& f = s_->frames.at(static_cast<int32_t>(v.as_int()));
      Enter(f.id, f.state, f.input);
    }
    for (const auto& v : rollback) {
      const int32_t id = static_cast<int32_t>(v.as_int());
      RETURN_IF_ERROR(ContinueCompensation(id, s_->frames.at(id).compensation_plan));
    }
    for (const auto& [id, mine] : branches) {
      const Frame& f = s_->frames.at(id);
      if (f.current().type == StateType::kMap) {
        RETURN_IF_ERROR(StartIterations(id));
      } else if (mine.empty()) {
        RETURN_IF_ERROR(FinishChildren(id));
      } else {
        for (const auto& [index, child] : mine) {
          Enter(child, f.current().branches[static_cast<size_t>(index)]->start_at, f.effective);
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status Handle(const StopCommand& c) {
    if (s_->finished()) return absl::FailedPreconditionError("execution has finished");
    if (s_->status != ExecutionStatus::kRunning) {
      return absl::FailedPreconditionError("execution has not started");
    }
    if (c.compensate) {
      const Frame& root = s_->frames.at(0);
      if (root.stop_rollback) {
        return absl::FailedPreconditionError(
            "execution_arn: the execution is already rolling back for a stop");
      }
      std::vector<int64_t> plan;
      for (auto it = s_->compensations.rbegin(); it != s_->compensations.rend(); ++it) {
        if (!it->done) plan.push_back(it->seq);
      }
      if (!plan.empty()) {
        for (const auto& [timer, owner] : s_->open_timers) {
          if (owner != -1) d_->cancelled_timers.push_back(timer);
        }
        for (const auto& [task, _] : s_->open_tasks) d_->cancelled_tasks.push_back(task);
        json::Value d = Details();
        Failure{c.error, c.cause}.AddTo(&d);
        RETURN_IF_ERROR(Emit(EventType::kExecutionStopRequested, 0, "", std::move(d)));
        return ContinueCompensation(0, std::move(plan));
      }
    }
    return EndExecution(EventType::kExecutionAborted, Failure{c.error, c.cause});
  }

  // ---- plumbing ----------------------------------------------------------

  absl::Status Emit(EventType type, int32_t frame, std::string_view state, json::Value details) {
    Event e;
    e.id = s_->last_event_id + 1;
    e.timestamp_us = now_;
    e.type = type;
    e.frame = frame;
    e.state_name = std::string(state);
    e.details = std::move(details);
    RETURN_IF_ERROR(Apply(s_, e));
    d_->events.push_back(std::move(e));
    return absl::OkStatus();
  }

  struct Pending {
    int32_t frame;
    int state;
    json::Value input;
  };

  void Enter(int32_t frame, int state, json::Value input) {
    work_.push_back(Pending{frame, state, std::move(input)});
  }

  absl::Status Drain() {
    while (!work_.empty() && !s_->finished()) {
      Pending p = std::move(work_.front());
      work_.pop_front();
      auto it = s_->frames.find(p.frame);
      if (it == s_->frames.end() || it->second.phase == Phase::kDone) continue;  // aborted
      if (s_->last_event_id > kMaxHistoryEvents - 50) {
        return EndExecution(
            EventType::kExecutionFailed,
            Failure::Of(asl::kStatesRuntime,
                        saga::StrCat("The execution reached the maximum number of history events (",
                                     kMaxHistoryEvents, ").")));
      }
      RETURN_IF_ERROR(DoEnter(p.frame, p.state, std::move(p.input)));
    }
    return absl::OkStatus();
  }

  const json::Value& EmptyContext() {
    static const json::Value* kEmpty = new json::Value(json::Value::EmptyObject());
    return *kEmpty;
  }

  // The context object ($$) for the frame's current state.
  json::Value Context(const Frame& f, std::optional<int64_t> task_id = std::nullopt,
                      const json::Value* map_index = nullptr,
                      const json::Value* map_value = nullptr) {
    json::Object exec;
    exec.emplace_back("Id", json::Value(s_->info.execution_id));
    exec.emplace_back("Input", s_->input);
    exec.emplace_back("StartTime", json::Value(FormatTimestamp(s_->start_us)));
    exec.emplace_back("Name", json::Value(s_->info.name));
    exec.emplace_back("RoleArn", json::Value(s_->info.role_arn));
    exec.emplace_back("RedriveCount", json::Value(0));
    json::Object state;
    state.emplace_back("EnteredTime", json::Value(FormatTimestamp(f.entered_us)));
    state.emplace_back("Name", json::Value(f.state >= 0 ? f.current().name : std::string()));
    // As AWS: only states that can retry expose State.RetryCount.
    if (f.state >= 0 &&
        (f.current().type == StateType::kTask || f.current().type == StateType::kParallel ||
         f.current().type == StateType::kMap)) {
      state.emplace_back("RetryCount", json::Value(f.retry_count));
    }
    json::Object sm;
    sm.emplace_back("Id", json::Value(s_->info.state_machine_id));
    sm.emplace_back("Name", json::Value(s_->info.state_machine_name));
    json::Object ctx;
    ctx.emplace_back("Execution", json::Value(std::move(exec)));
    ctx.emplace_back("State", json::Value(std::move(state)));
    ctx.emplace_back("StateMachine", json::Value(std::move(sm)));
    if (task_id) {
      std::string token = opts_.task_token ? opts_.task_token(*s_, *task_id)
                                           : saga::StrCat(s_->info.execution_id, "#", *task_id);
      ctx.emplace_back("Task", Details("Token", json::Value(std::move(token))));
    }
    if (map_index != nullptr) {
      json::Object item;
      item.emplace_back("Index", *map_index);
      item.emplace_back("Value", *map_value);
      ctx.emplace_back("Map", Details("Item", json::Value(std::move(item))));
    }
    return json::Value(std::move(ctx));
  }

  json::Value ContextFor(const Frame& f, std::optional<int64_t> task_id = std::nullopt) {
    return f.current().uses_context ? Context(f, task_id) : EmptyContext();
  }

  static absl::Status NotFoundPath(std::string_view field, const asl::JsonPath& p,
                                   const absl::Status& s) {
    (void)field;
    return asl::AslError(asl::kStatesRuntime,
                         saga::StrCat("Invalid path '", p.text(), "' : ", s.message()));
  }

  absl::StatusOr<json::Value> InputPath(const Frame& f, const json::Value& raw) {
    const asl::PathField& pf = f.current().input_path;
    if (pf.kind == asl::PathField::Kind::kNull) return json::Value::EmptyObject();
    if (pf.is_identity()) return raw;
    auto r = pf.path.Evaluate(raw, ContextFor(f));
    if (!r.ok()) return NotFoundPath("InputPath", pf.path, r.status());
    return r;
  }

  absl::StatusOr<json::Value> OutputPath(const Frame& f, const json::Value& v) {
    const asl::PathField& pf = f.current().output_path;
    if (pf.kind == asl::PathField::Kind::kNull) return json::Value::EmptyObject();
    if (pf.is_identity()) return v;
    auto r = pf.path.Evaluate(v, ContextFor(f));
    if (!r.ok()) return NotFoundPath("OutputPath", pf.path, r.status());
    return r;
  }

  static absl::StatusOr<json::Value> ResultPath(const asl::PathField& pf, const json::Value& raw,
                                                json::Value result) {
    if (pf.kind == asl::PathField::Kind::kNull) return raw;
    if (pf.is_identity()) return result;
    auto r = pf.path.Assign(raw, std::move(result));
    if (!r.ok()) {
      return asl::AslError(asl::kStatesResultPathMatchFailure,
                           saga::StrCat("Unable to apply ResultPath '", pf.path.text(),
                                        "' to input '", raw.Dump(), "': ", r.status().message()));
    }
    return r;
  }

  // InputPath then Parameters.
  absl::StatusOr<json::Value> EffectiveInput(const Frame& f, std::optional<int64_t> task_id) {
    ASSIGN_OR_RETURN(json::Value v, InputPath(f, f.input));
    const State& st = f.current();
    if (st.parameters) {
      json::Value ctx = ContextFor(f, task_id);
      return st.parameters->Evaluate(v, ctx, &rng_);
    }
    return v;
  }

  absl::StatusOr<int64_t> PositiveSeconds(const Frame& f, const asl::JsonPath& path,
                                          std::string_view field, const json::Value& input) {
    auto v = path.Evaluate(input, ContextFor(f));
    if (!v.ok()) return NotFoundPath(field, path, v.status());
    // At most what the static field allows (TimeoutSeconds, HeartbeatSeconds:
    // 99999999): a larger one would overflow the deadline's arithmetic.
    if (!v->is_integral() || v->as_double() <= 0 || v->as_double() > asl::kMaxSeconds) {
      return asl::AslError(
          asl::kStatesRuntime,
          saga::StrCat(field, " '", path.text(), "' must point to a positive integer of at most ",
                       asl::kMaxSeconds, ", found ", v->Dump()));
    }
    return static_cast<int64_t>(v->as_double());
  }

  // ---- states ------------------------------------------------------------

  absl::Status DoEnter(int32_t fid, int state_index, json::Value input) {
    Frame& f0 = s_->frames.at(fid);
    const State& st = f0.machine->states[static_cast<size_t>(state_index)];
    json::Value d = Details("input", input);
    if (st.type == StateType::kWait) {
      // The timer is part of WaitStateEntered so that replay rebuilds it.
      Frame probe = f0;
      probe.state = state_index;
      probe.input = input;
      probe.entered_us = now_;
      auto until = WaitUntil(probe);
      if (!until.ok()) {
        RETURN_IF_ERROR(Emit(EventType::kWaitStateEntered, fid, st.name, std::move(d)));
        return FailFrame(fid, Failure::From(until.status()));
      }
      int64_t timer = s_->next_timer_id;
      d.Set("timerId", json::Value(timer));
      d.Set("waitUntil", json::Value(FormatTimestamp(*until)));
      RETURN_IF_ERROR(Emit(EventType::kWaitStateEntered, fid, st.name, std::move(d)));
      d_->timers.push_back({timer, *until});
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(Emit(EnteredEvent(st.type), fid, st.name, std::move(d)));
    Frame& f = s_->frames.at(fid);
    switch (st.type) {
      case StateType::kPass:
        return EnterPass(f);
      case StateType::kTask:
      case StateType::kParallel:
      case StateType::kMap:
        return RunAttempt(fid);
      case StateType::kChoice:
        return EnterChoice(f);
      case StateType::kSucceed: {
        absl::StatusOr<json::Value> out = InputPath(f, f.input);
        if (out.ok()) out = OutputPath(f, *out);
        if (!out.ok()) return FailFrame(fid, Failure::From(out.status()));
        return ExitState(fid, *out, Details());
      }
      case StateType::kFail:
        return EnterFail(f);
      case StateType::kCompensate:
        return EnterCompensate(f);
      case StateType::kWait:
        break;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> WaitUntil(const Frame& f) {
    const State& st = f.current();
    ASSIGN_OR_RETURN(json::Value in, InputPath(f, f.input));
    if (st.seconds) return now_ + static_cast<int64_t>(*st.seconds * 1e6);
    if (st.timestamp_micros) return std::max(now_, *st.timestamp_micros);
    if (st.seconds_path) {
      auto v = st.seconds_path->Evaluate(in, ContextFor(f));
      const std::string where = st.seconds_path->text();
      if (!v.ok()) {
        return asl::AslError(
            asl::kStatesRuntime,
            saga::StrCat("The SecondsPath parameter does not reference an input value: ", where));
      }
      if (v->is_number() && !v->is_integral()) {
        return asl::AslError(asl::kStatesRuntime,
                             saga::StrCat("The SecondsPath parameter cannot be parsed as a long "
                                          "value: ",
                                          where, " == ", v->Dump()));
      }
      if (!v->is_number()) {
        return asl::AslError(asl::kStatesRuntime,
                             saga::StrCat("The SecondsPath parameter does not reference a valid "
                                          "integer value: ",
                                          where, " == ", v->Dump()));
      }
      if (v->as_double() < 0) {
        return asl::AslError(asl::kStatesRuntime,
                             saga::StrCat("The SecondsPath parameter references a negative value: ",
                                          where, " == ", v->Dump()));
      }
      // At most what Seconds allows (99999999, three years: longer than a
      // Standard execution may run); more would overflow the fire time.
      if (v->as_double() > asl::kMaxSeconds) {
        return asl::AslError(asl::kStatesRuntime,
                             saga::StrCat("The SecondsPath parameter references a value larger "
                                          "than ",
                                          asl::kMaxSeconds, ": ", where, " == ", v->Dump()));
      }
      return now_ + static_cast<int64_t>(v->as_double() * 1e6);
    }
    if (st.timestamp_path) {
      auto v = st.timestamp_path->Evaluate(in, ContextFor(f));
      if (!v.ok()) return NotFoundPath("TimestampPath", *st.timestamp_path, v.status());
      std::optional<int64_t> t;
      if (v->is_string()) t = asl::ParseTimestampMicros(v->as_string());
      if (!t) {
        return asl::AslError(asl::kStatesRuntime,
                             saga::StrCat("The TimestampPath parameter does not reference a valid "
                                          "ISO-8601 extended offset date-time format string: ",
                                          st.timestamp_path->text(),
                                          " == ", v->is_string() ? v->as_string() : v->Dump()));
      }
      return std::max(now_, *t);
    }
    return now_;
  }

  absl::Status EnterPass(Frame& f) {
    const State& st = f.current();
    absl::StatusOr<json::Value> eff = EffectiveInput(f, std::nullopt);
    if (!eff.ok()) return FailFrame(f.id, Failure::From(eff.status()));
    json::Value result = st.result ? *st.result : *std::move(eff);
    absl::StatusOr<json::Value> out = ResultPath(st.result_path, f.input, std::move(result));
    if (out.ok()) out = OutputPath(f, *out);
    if (!out.ok()) return FailFrame(f.id, Failure::From(out.status()));
    return ExitState(f.id, *std::move(out), Details());
  }

  absl::Status EnterChoice(Frame& f) {
    const State& st = f.current();
    absl::StatusOr<json::Value> in = InputPath(f, f.input);
    if (!in.ok()) return FailFrame(f.id, Failure::From(in.status()));
    json::Value ctx = ContextFor(f);
    int next = -1;
    for (const auto& ch : st.choices) {
      absl::StatusOr<bool> m = ch.rule.Matches(*in, ctx);
      if (!m.ok()) return FailFrame(f.id, Failure::From(m.status()));
      if (*m) {
        next = ch.next;
        break;
      }
    }
    if (next < 0) next = st.default_next;
    if (next < 0) {
      return FailFrame(f.id, Failure::Of(asl::kStatesNoChoiceMatched,
                                         saga::StrCat("No Matches! in state '", st.name, "'")));
    }
    absl::StatusOr<json::Value> out = OutputPath(f, *in);
    if (!out.ok()) return FailFrame(f.id, Failure::From(out.status()));
    RETURN_IF_ERROR(CheckSize(f, *out));
    RETURN_IF_ERROR(Emit(EventType::kChoiceStateExited, f.id, st.name, Details("output", *out)));
    Enter(f.id, next, *std::move(out));
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> FailField(const Frame& f, const asl::DynamicValue& dv,
                                        std::string_view field) {
    json::Value v;
    if (dv.is_intrinsic) {
      json::Value ctx = ContextFor(f);
      ASSIGN_OR_RETURN(v, dv.intrinsic.Evaluate(asl::IntrinsicEnv{f.input, ctx, &rng_}));
    } else {
      auto r = dv.path.Evaluate(f.input, ContextFor(f));
      if (!r.ok()) return NotFoundPath(field, dv.path, r.status());
      v = *std::move(r);
    }
    if (!v.is_string()) {
      return asl::AslError(
          asl::kStatesRuntime,
          saga::StrCat("The ", field, " must resolve to a string, found ", v.Dump()));
    }
    return v.as_string();
  }

  absl::Status EnterFail(Frame& f) {
    const State& st = f.current();
    Failure fl{st.error, st.cause};
    if (st.error_path) {
      auto e = FailField(f, *st.error_path, "ErrorPath");
      if (!e.ok()) return FailFrame(f.id, Failure::From(e.status()));
      fl.error = *e;
    }
    if (st.cause_path) {
      auto c = FailField(f, *st.cause_path, "CausePath");
      if (!c.ok()) return FailFrame(f.id, Failure::From(c.status()));
      fl.cause = *c;
    }
    return FailFrame(f.id, fl);
  }

  // Starts (or restarts after a retry timer) a Task, Parallel or Map state.
  absl::Status RunAttempt(int32_t fid) {
    Frame& f = s_->frames.at(fid);
    const State& st = f.current();
    switch (st.type) {
      case StateType::kTask:
        return StartTask(f);
      case StateType::kParallel:
        return StartParallel(f);
      case StateType::kMap:
        return StartMap(f);
      default:
        return absl::InternalError("RunAttempt on a state that cannot retry");
    }
  }

  absl::Status StartTask(Frame& f) {
    const State& st = f.current();
    const int64_t task_id = s_->next_task_id;
    absl::StatusOr<json::Value> eff = EffectiveInput(f, task_id);
    if (!eff.ok()) return HandleStateError(f.id, Failure::From(eff.status()));
    std::optional<int64_t> timeout = st.timeout_seconds, heartbeat = st.heartbeat_seconds;
    if (st.timeout_seconds_path || st.heartbeat_seconds_path) {
      absl::StatusOr<json::Value> in = InputPath(f, f.input);
      if (!in.ok()) return HandleStateError(f.id, Failure::From(in.status()));
      if (st.timeout_seconds_path) {
        auto t = PositiveSeconds(f, *st.timeout_seconds_path, "TimeoutSecondsPath", *in);
        if (!t.ok()) return HandleStateError(f.id, Failure::From(t.status()));
        timeout = *t;
      }
      if (st.heartbeat_seconds_path) {
        auto t = PositiveSeconds(f, *st.heartbeat_seconds_path, "HeartbeatSecondsPath", *in);
        if (!t.ok()) return HandleStateError(f.id, Failure::From(t.status()));
        heartbeat = *t;
      }
    }
    if (!json::FitsIn(*eff, asl::kMaxPayloadBytes)) {
      return HandleStateError(
          f.id, Failure::Of(asl::kStatesDataLimitExceeded,
                            saga::StrCat("The state/task '", st.name,
                                         "' has an input with a size exceeding the maximum "
                                         "number of bytes service limit.")));
    }
    json::Value d = Details("resource", json::Value(st.resource));
    d.Set("input", *eff);
    d.Set("taskId", json::Value(task_id));
    if (timeout) d.Set("timeoutInSeconds", json::Value(*timeout));
    if (heartbeat) d.Set("heartbeatInSeconds", json::Value(*heartbeat));
    RETURN_IF_ERROR(Emit(EventType::kActivityScheduled, f.id, st.name, std::move(d)));
    TaskRequest t;
    t.task_id = task_id;
    t.frame = f.id;
    t.state_name = st.name;
    t.resource = st.resource;
    t.input = *std::move(eff);
    t.attempt = f.retry_count;
    t.timeout_seconds = timeout;
    t.heartbeat_seconds = heartbeat;
    d_->tasks.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status StartParallel(Frame& f) {
    const State& st = f.current();
    absl::StatusOr<json::Value> eff = EffectiveInput(f, std::nullopt);
    if (!eff.ok()) return HandleStateError(f.id, Failure::From(eff.status()));
    json::Array ids;
    for (size_t i = 0; i < st.branches.size(); ++i) {
      ids.push_back(json::Value(static_cast<int64_t>(s_->next_frame_id + static_cast<int32_t>(i))));
    }
    json::Value d = Details("input", *eff);
    d.Set("frameIds", json::Value(ids));
    const int32_t fid = f.id;
    RETURN_IF_ERROR(Emit(EventType::kParallelStateStarted, fid, st.name, std::move(d)));
    if (st.branches.empty()) return FinishChildren(fid);
    for (size_t i = 0; i < st.branches.size(); ++i) {
      Enter(static_cast<int32_t>(ids[i].as_int()), st.branches[i]->start_at, *eff);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> NonNegative(const Frame& f, const asl::JsonPath& p,
                                      std::string_view field, const json::Value& in) {
    auto v = p.Evaluate(in, ContextFor(f));
    if (!v.ok()) return NotFoundPath(field, p, v.status());
    if (!v->is_integral() || v->as_double() < 0) {
      return asl::AslError(
          asl::kStatesRuntime,
          saga::StrCat(field, " '", p.text(), "' must point to a non-negative integer, found ",
                       v->Dump()));
    }
    return static_cast<int64_t>(v->as_double());
  }

  absl::Status StartMap(Frame& f) {
    const State& st = f.current();
    const int32_t fid = f.id;
    absl::StatusOr<json::Value> eff = InputPath(f, f.input);
    if (!eff.ok()) return HandleStateError(fid, Failure::From(eff.status()));
    json::Value items = *eff;
    if (st.items_path) {
      auto r = st.items_path->Evaluate(*eff, ContextFor(f));
      if (!r.ok())
        return HandleStateError(
            fid, Failure::From(NotFoundPath("ItemsPath", *st.items_path, r.status())));
      items = *std::move(r);
    }
    if (!items.is_array()) {
      return HandleStateError(
          fid,
          Failure::Of(asl::kStatesRuntime, saga::StrCat("Map state '", st.name,
                                                        "': the items must be a JSON array, found ",
                                                        json::TypeName(items.type()))));
    }
    int64_t max_conc = st.max_concurrency;
    std::optional<int64_t> tol_count = st.tolerated_failure_count;
    std::optional<double> tol_pct = st.tolerated_failure_percentage;
    if (st.max_concurrency_path) {
      auto v = NonNegative(f, *st.max_concurrency_path, "MaxConcurrencyPath", *eff);
      if (!v.ok()) return HandleStateError(fid, Failure::From(v.status()));
      max_conc = *v;
    }
    if (st.tolerated_failure_count_path) {
      auto v = NonNegative(f, *st.tolerated_failure_count_path, "ToleratedFailureCountPath", *eff);
      if (!v.ok()) return HandleStateError(fid, Failure::From(v.status()));
      tol_count = *v;
    }
    if (st.tolerated_failure_percentage_path) {
      auto v = st.tolerated_failure_percentage_path->Evaluate(*eff, ContextFor(f));
      if (!v.ok() || !v->is_number() || v->as_double() < 0 || v->as_double() > 100) {
        return HandleStateError(
            fid, Failure::Of(asl::kStatesRuntime,
                             "ToleratedFailurePercentagePath must point to a number from 0 to "
                             "100"));
      }
      tol_pct = v->as_double();
    }
    json::Value d = Details("input", *eff);
    d.Set("length", json::Value(static_cast<int64_t>(items.size())));
    d.Set("items", items);
    d.Set("maxConcurrency", json::Value(max_conc));
    if (tol_count) d.Set("toleratedFailureCount", json::Value(*tol_count));
    if (tol_pct) d.Set("toleratedFailurePercentage", json::Value(*tol_pct));
    RETURN_IF_ERROR(Emit(EventType::kMapStateStarted, fid, st.name, std::move(d)));
    return StartIterations(fid);
  }

  absl::Status StartIterations(int32_t fid) {
    while (true) {
      Frame& f = s_->frames.at(fid);
      if (f.phase != Phase::kChildren) return absl::OkStatus();
      const State& st = f.current();
      const int64_t n = static_cast<int64_t>(f.items.size());
      // Iterations that succeeded before a redrive are kept, not run again.
      int64_t index = f.next_child;
      while (index < n && static_cast<size_t>(index) < f.child_done.size() &&
             f.child_done[static_cast<size_t>(index)]) {
        ++index;
      }
      if (index >= n) {
        if (f.running_children == 0) return FinishChildren(fid);
        return absl::OkStatus();
      }
      if (f.max_concurrency > 0 && f.running_children >= f.max_concurrency) {
        return absl::OkStatus();
      }
      json::Value item = f.items.as_array()[static_cast<size_t>(index)];
      json::Value iter_input = item;
      if (st.item_selector) {
        json::Value idx(index);
        json::Value ctx = Context(f, std::nullopt, &idx, &item);
        auto r = st.item_selector->Evaluate(f.effective, ctx, &rng_);
        if (!r.ok()) {
          RETURN_IF_ERROR(AbortChildren(fid));
          return ChildStateFailed(fid, Failure::From(r.status()));
        }
        iter_input = *std::move(r);
      }
      const int32_t child = s_->next_frame_id;
      json::Value d = Details("index", json::Value(index));
      d.Set("frameId", json::Value(static_cast<int64_t>(child)));
      RETURN_IF_ERROR(Emit(EventType::kMapIterationStarted, fid, st.name, std::move(d)));
      Enter(child, st.processor->start_at, std::move(iter_input));
    }
  }

  // All branches/iterations of the Parallel/Map in frame `fid` succeeded
  // (or failed within tolerance).
  absl::Status FinishChildren(int32_t fid) {
    Frame& f = s_->frames.at(fid);
    const State& st = f.current();
    json::Value results{json::Array(f.results)};
    RETURN_IF_ERROR(Emit(st.type == StateType::kParallel ? EventType::kParallelStateSucceeded
                                                         : EventType::kMapStateSucceeded,
                         fid, st.name, Details("output", results)));
    return ProcessResult(fid, std::move(results));
  }

  // The Parallel/Map in frame `fid` failed because of a child.
  absl::Status ChildStateFailed(int32_t fid, const Failure& fl) {
    Frame& f = s_->frames.at(fid);
    const State& st = f.current();
    json::Value d = Details();
    fl.AddTo(&d);
    RETURN_IF_ERROR(Emit(st.type == StateType::kParallel ? EventType::kParallelStateFailed
                                                         : EventType::kMapStateFailed,
                         fid, st.name, std::move(d)));
    return HandleStateError(fid, fl);
  }

  // ResultSelector, ResultPath, OutputPath, then leave the state.
  absl::Status ProcessResult(int32_t fid, json::Value result) {
    Frame& f = s_->frames.at(fid);
    const State& st = f.current();
    json::Value selected = result;
    if (st.result_selector) {
      json::Value ctx = ContextFor(f);
      auto r = st.result_selector->Evaluate(result, ctx, &rng_);
      if (!r.ok()) return HandleStateError(fid, Failure::From(r.status()));
      selected = *std::move(r);
    }
    absl::StatusOr<json::Value> out = ResultPath(st.result_path, f.input, std::move(selected));
    if (out.ok()) out = OutputPath(f, *out);
    if (!out.ok()) return HandleStateError(fid, Failure::From(out.status()));
    json::Value extra = Details();
    if (st.type == StateType::kTask && st.compensation) {
      json::Object io;
      io.emplace_back("Input", f.effective);
      io.emplace_back("Result", result);
      json::Value comp_in(std::move(io));
      if (st.compensation->parameters) {
        json::Value ctx = Context(f);
        auto r = st.compensation->parameters->Evaluate(comp_in, ctx, &rng_);
        if (!r.ok()) return HandleStateError(fid, Failure::From(r.status()));
        comp_in = *std::move(r);
      }
      extra.Set("compensationInput", std::move(comp_in));
      extra.Set("compensatedTaskId", json::Value(succeeded_task_));
    }
    return ExitState(fid, *std::move(out), std::move(extra));
  }

  absl::Status CheckSize(const Frame& f, const json::Value& out) {
    // An output that is the state's own input node was checked when it was made.
    if (out.SharesNodeWith(f.input) || json::FitsIn(out, asl::kMaxPayloadBytes)) {
      return absl::OkStatus();
    }
    return asl::AslError(asl::kStatesDataLimitExceeded,
                         saga::StrCat("The state/task '", f.current().name,
                                      "' returned a result with a size exceeding the maximum "
                                      "number of bytes service limit."));
  }

  absl::Status ExitState(int32_t fid, json::Value out, json::Value extra) {
    Frame& f = s_->frames.at(fid);
    const State& st = f.current();
    if (absl::Status size = CheckSize(f, out); !size.ok()) {
      return HandleStateError(fid, Failure::From(size));
    }
    extra.Set("output", out);
    RETURN_IF_ERROR(Emit(ExitedEvent(st.type), fid, st.name, std::move(extra)));
    if (st.end || st.type == StateType::kSucceed) return CompleteFrame(fid, std::move(out));
    Enter(fid, st.next, std::move(out));
    return absl::OkStatus();
  }

  // Retry, then Catch, then fail the frame.
  absl::Status HandleStateError(int32_t fid, const Failure& fl) {
    Frame& f = s_->frames.at(fid);
    const State& st = f.current();
    for (size_t i = 0; i < st.retry.size(); ++i) {
      const asl::Retrier& r = st.retry[i];
      bool match = std::any_of(r.error_equals.begin(), r.error_equals.end(),
                               [&](const std::string& p) { return fl.Matches(p); });
      if (!match) continue;
      const int64_t attempts = f.retrier_attempts[i];
      if (attempts >= r.max_attempts) break;  // exhausted: fall through to Catch
      double delay = r.interval_seconds * std::pow(r.backoff_rate, static_cast<double>(attempts));
      if (r.max_delay_seconds) delay = std::min(delay, static_cast<double>(*r.max_delay_seconds));
      if (r.jitter_full) delay = rng_.NextDouble() * delay;
      const int64_t timer = s_->next_timer_id;
      json::Value d = Details("retrier", json::Value(static_cast<int64_t>(i)));
      d.Set("attempt", json::Value(attempts + 1));
      d.Set("delaySeconds", json::Value(delay));
      d.Set("timerId", json::Value(timer));
      fl.AddTo(&d);
      RETURN_IF_ERROR(Emit(EventType::kStateRetryScheduled, fid, st.name, std::move(d)));
      d_->timers.push_back({timer, now_ + static_cast<int64_t>(std::llround(delay * 1e6))});
      return absl::OkStatus();
    }
    for (const asl::Catcher& c : st.catchers) {
      bool match = std::any_of(c.error_equals.begin(), c.error_equals.end(),
                               [&](const std::string& p) { return fl.Matches(p); });
      if (!match) continue;
      auto out = ResultPath(c.result_path, f.input, fl.AsCatchOutput());
      if (!out.ok()) return FailFrame(fid, Failure::From(out.status()));
      if (absl::Status size = CheckSize(f, *out); !size.ok()) {
        return FailFrame(fid, Failure::From(size));
      }
      Enter(fid, c.next, *std::move(out));
      return absl::OkStatus();
    }
    return FailFrame(fid, fl);
  }

  // Succeeds frame `fid` with `out`.
  absl::Status CompleteFrame(int32_t fid, json::Value out) {
    if (fid == 0) {
      for (const auto& [timer, _] : s_->open_timers) d_->cancelled_timers.push_back(timer);
      for (const auto& [task, _] : s_->open_tasks) d_->cancelled_tasks.push_back(task);
      return Emit(EventType::kExecutionSucceeded, 0, "", Details("output", std::move(out)));
    }
    Frame& f = s_->frames.at(fid);
    const int32_t pid = f.parent;
    Frame& p = s_->frames.at(pid);
    const bool parallel = p.current().type == StateType::kParallel;
    json::Value d = Details("index", json::Value(f.index));
    d.Set("output", std::move(out));
    RETURN_IF_ERROR(
        Emit(parallel ? EventType::kParallelBranchSucceeded : EventType::kMapIterationSucceeded,
             fid, p.current().name, std::move(d)));
    Frame& p2 = s_->frames.at(pid);
    if (parallel) {
      if (p2.running_children == 0) return FinishChildren(pid);
      return absl::OkStatus();
    }
    return StartIterations(pid);
  }

  // Fails frame `fid`: the execution at top level, else its branch/iteration.
  absl::Status FailFrame(int32_t fid, const Failure& fl) {
    if (fid == 0) return EndExecution(EventType::kExecutionFailed, fl);
    Frame& f = s_->frames.at(fid);
    const int32_t pid = f.parent;
    Frame& p = s_->frames.at(pid);
    const State& pst = p.current();
    const bool parallel = pst.type == StateType::kParallel;
    json::Value d = Details("index", json::Value(f.index));
    fl.AddTo(&d);
    RETURN_IF_ERROR(CancelSubtreeWork(fid));
    RETURN_IF_ERROR(
        Emit(parallel ? EventType::kParallelBranchFailed : EventType::kMapIterationFailed, fid,
             pst.name, std::move(d)));
    Frame& pp = s_->frames.at(pid);
    if (!parallel) {
      const int64_t total = static_cast<int64_t>(pp.items.size());
      const bool tolerance = pp.tolerated_count >= 0 || pp.tolerated_percentage >= 0;
      bool exceeded = !tolerance;
      if (pp.tolerated_count >= 0 && pp.failed_children > pp.tolerated_count) exceeded = true;
      if (pp.tolerated_percentage >= 0 && total > 0 &&
          static_cast<double>(pp.failed_children) * 100.0 / static_cast<double>(total) >
              pp.tolerated_percentage) {
        exceeded = true;
      }
      if (!exceeded) return StartIterations(pid);
      RETURN_IF_ERROR(AbortChildren(pid));
      if (tolerance) {
        return ChildStateFailed(
            pid, Failure::Of(asl::kStatesExceedToleratedFailureThreshold,
                             "The specified tolerated failure threshold was exceeded"));
      }
      return ChildStateFailed(pid, fl);
    }
    RETURN_IF_ERROR(AbortChildren(pid));
    return ChildStateFailed(pid, fl);
  }

  // Records cancellation of every task/timer in the subtree of `fid`.
  absl::Status CancelSubtreeWork(int32_t fid) {
    for (const auto& [task, owner] : s_->open_tasks) {
      if (InSubtree(owner, fid)) d_->cancelled_tasks.push_back(task);
    }
    for (const auto& [timer, owner] : s_->open_timers) {
      if (owner >= 0 && InSubtree(owner, fid)) d_->cancelled_timers.push_back(timer);
    }
    return absl::OkStatus();
  }

  bool InSubtree(int32_t frame, int32_t root) const {
    while (frame >= 0) {
      if (frame == root) return true;
      auto it = s_->frames.find(frame);
      if (it == s_->frames.end()) return false;
      frame = it->second.parent;
    }
    return false;
  }

  // Aborts every running child of `pid` (and their descendants).
  absl::Status AbortChildren(int32_t pid) {
    std::vector<int32_t> children;
    for (const auto& [id, fr] : s_->frames) {
      if (fr.parent == pid) children.push_back(id);
    }
    const bool parallel = s_->frames.at(pid).current().type == StateType::kParallel;
    for (int32_t c : children) {
      RETURN_IF_ERROR(AbortActiveStates(c));
      const Frame& cf = s_->frames.at(c);
      RETURN_IF_ERROR(
          Emit(parallel ? EventType::kParallelBranchAborted : EventType::kMapIterationAborted, c,
               s_->frames.at(pid).current().name, Details("index", json::Value(cf.index))));
    }
    return absl::OkStatus();
  }

  // Emits XStateAborted for the active states in the subtree of `fid`,
  // deepest first, and records their tasks and timers as cancelled.
  absl::Status AbortActiveStates(int32_t fid) {
    std::vector<int32_t> children;
    for (const auto& [id, fr] : s_->frames) {
      if (fr.parent == fid) children.push_back(id);
    }
    for (int32_t c : children) RETURN_IF_ERROR(AbortActiveStates(c));
    Frame& f = s_->frames.at(fid);
    if (f.state < 0 || f.phase == Phase::kDone || f.phase == Phase::kIdle) return absl::OkStatus();
    if (f.task_id != 0) d_->cancelled_tasks.push_back(f.task_id);
    if (f.timer_id != 0) d_->cancelled_timers.push_back(f.timer_id);
    return Emit(AbortedEvent(f.current().type), fid, f.current().name, Details());
  }

  absl::Status EndExecution(EventType type, const Failure& fl) {
    for (const auto& [timer, _] : s_->open_timers) d_->cancelled_timers.push_back(timer);
    for (const auto& [task, _] : s_->open_tasks) d_->cancelled_tasks.push_back(task);
    json::Value d = Details();
    fl.AddTo(&d);
    return Emit(type, 0, "", std::move(d));
  }

  // ---- saga extension: Compensate state --------------------------------

  absl::Status EnterCompensate(Frame& f) {
    // Scope: the whole execution at top level, else this frame (a branch or
    // iteration) and everything that ran below it. Latest completion first.
    std::vector<int64_t> plan;
    for (auto it = s_->compensations.rbegin(); it != s_->compensations.rend(); ++it) {
      if (it->done) continue;
      if (f.id == 0 || it->frame == f.id ||
          std::find(it->ancestors.begin(), it->ancestors.end(), f.id) != it->ancestors.end()) {
        plan.push_back(it->seq);
      }
    }
    return ContinueCompensation(f.id, std::move(plan));
  }

  absl::Status ContinueCompensation(int32_t fid, std::vector<int64_t> plan) {
    Frame& f = s_->frames.at(fid);
    if (plan.empty() && f.stop_rollback) {
      const json::Value* err = s_->stop_request.Find("error");
      const json::Value* cause = s_->stop_request.Find("cause");
      Failure fl;
      if (err != nullptr && err->is_string()) fl.error = err->as_string();
      if (cause != nullptr && cause->is_string()) fl.cause = cause->as_string();
      return EndExecution(EventType::kExecutionAborted, fl);
    }
    const State& st = f.current();
    const std::string event_state = CompensationStateName(f);
    if (plan.empty()) {
      json::Value report =
          f.compensation_report.is_array() ? f.compensation_report : json::Value::EmptyArray();
      absl::StatusOr<json::Value> out =
          st.result_path.kind == asl::PathField::Kind::kDefault
              ? absl::StatusOr<json::Value>(f.input)
              : ResultPath(st.result_path, f.input, std::move(report));
      if (out.ok()) out = OutputPath(f, *out);
      if (!out.ok()) return FailFrame(fid, Failure::From(out.status()));
      return ExitState(fid, *std::move(out), Details());
    }
    const CompensationRecord* rec = nullptr;
    for (const auto& r : s_->compensations) {
      if (r.seq == plan.front()) rec = &r;
    }
    if (rec == nullptr) return absl::InternalError("compensation record vanished");
    const asl::State* target = FindStateAnywhere(rec->state_name);
    if (target == nullptr || !target->compensation) {
      return absl::InternalError("compensated state has no Compensation");
    }
    const int64_t task_id = s_->next_task_id;
    json::Value d = Details("resource", json::Value(target->compensation->resource));
    d.Set("input", rec->input);
    d.Set("taskId", json::Value(task_id));
    d.Set("seq", json::Value(rec->seq));
    d.Set("compensatedState", json::Value(rec->state_name));
    json::Array remaining;
    for (int64_t q : plan) remaining.push_back(json::Value(q));
    d.Set("plan", json::Value(std::move(remaining)));
    d.Set("retriers", json::Value(static_cast<int64_t>(target->compensation->retry.size())));
    RETURN_IF_ERROR(Emit(EventType::kCompensationScheduled, fid, event_state, std::move(d)));
    TaskRequest t;
    t.task_id = task_id;
    t.frame = fid;
    t.state_name = event_state;
    t.resource = target->compensation->resource;
    t.input = rec->input;
    t.timeout_seconds = target->compensation->timeout_seconds;
    t.heartbeat_seconds = target->compensation->heartbeat_seconds;
    t.compensation = true;
    t.compensated_state = rec->state_name;
    t.compensated_task_id = rec->task_id;
    d_->tasks.push_back(std::move(t));
    return absl::OkStatus();
  }

  const asl::State* FindStateAnywhere(std::string_view name) const {
    std::vector<const asl::StateMachine*> stack{s_->machine.get()};
    while (!stack.empty()) {
      const asl::StateMachine* m = stack.back();
      stack.pop_back();
      if (const asl::State* st = m->Find(name)) return st;
      for (const auto& st : m->states) {
        for (const auto& b : st.branches) stack.push_back(b.get());
        if (st.processor) stack.push_back(st.processor.get());
      }
    }
    return nullptr;
  }

  const CompensationRecord* Record(int64_t seq) const {
    for (const auto& r : s_->compensations) {
      if (r.seq == seq) return &r;
    }
    return nullptr;
  }

  absl::Status CompensationSucceeded(Frame* f, const json::Value& output) {
    const CompensationRecord* rec = Record(f->compensation_seq);
    if (rec == nullptr) return absl::InternalError("compensation record vanished");
    json::Value d = Details("taskId", json::Value(f->task_id));
    d.Set("seq", json::Value(rec->seq));
    d.Set("compensatedState", json::Value(rec->state_name));
    d.Set("output", output);
    const int32_t fid = f->id;
    RETURN_IF_ERROR(
        Emit(EventType::kCompensationSucceeded, fid, CompensationStateName(*f), std::move(d)));
    Frame& fr = s_->frames.at(fid);
    return ContinueCompensation(fid, fr.compensation_plan);
  }

  // A compensation failed (or timed out): its own Retry, else the execution
  // fails with Saga.CompensationFailed, keeping the compensations not yet run.
  absl::Status CompensationFailed(Frame* f, const Failure& fl, bool timed_out) {
    (void)timed_out;
    const CompensationRecord* rec = Record(f->compensation_seq);
    if (rec == nullptr) return absl::InternalError("compensation record vanished");
    const asl::State* target = FindStateAnywhere(rec->state_name);
    if (target == nullptr || !target->compensation) {
      return absl::InternalError("compensated state has no Compensation");
    }
    const int32_t fid = f->id;
    const std::string state_name = CompensationStateName(*f);
    json::Value d = Details("taskId", json::Value(f->task_id));
    d.Set("seq", json::Value(rec->seq));
    d.Set("compensatedState", json::Value(rec->state_name));
    fl.AddTo(&d);
    const auto& retry = target->compensation->retry;
    for (size_t i = 0; i < retry.size(); ++i) {
      const asl::Retrier& r = retry[i];
      if (!std::any_of(r.error_equals.begin(), r.error_equals.end(),
                       [&](const std::string& p) { return fl.Matches(p); })) {
        continue;
      }
      const int64_t attempts =
          i < f->compensation_attempts.size() ? f->compensation_attempts[i] : r.max_attempts;
      if (attempts >= r.max_attempts) break;
      double delay = r.interval_seconds * std::pow(r.backoff_rate, static_cast<double>(attempts));
      if (r.max_delay_seconds) delay = std::min(delay, static_cast<double>(*r.max_delay_seconds));
      if (r.jitter_full) delay = rng_.NextDouble() * delay;
      const int64_t timer = s_->next_timer_id;
      d.Set("retrier", json::Value(static_cast<int64_t>(i)));
      d.Set("attempt", json::Value(attempts + 1));
      d.Set("delaySeconds", json::Value(delay));
      d.Set("timerId", json::Value(timer));
      RETURN_IF_ERROR(Emit(EventType::kCompensationFailed, fid, state_name, std::move(d)));
      d_->timers.push_back({timer, now_ + static_cast<int64_t>(std::llround(delay * 1e6))});
      return absl::OkStatus();
    }
    // Exhausted: list what is left to undo, in the order it would run.
    json::Array pending;
    for (int64_t q : f->compensation_plan) {
      if (const CompensationRecord* p = Record(q)) pending.push_back(json::Value(p->state_name));
    }
    d.Set("pendingCompensations", json::Value(std::move(pending)));
    const std::string cause = saga::StrCat(
        "Compensation of state '", rec->state_name, "' failed: ", fl.error.value_or("(no error)"),
        fl.cause ? saga::StrCat(": ", *fl.cause) : std::string());
    RETURN_IF_ERROR(Emit(EventType::kCompensationFailed, fid, state_name, std::move(d)));
    return EndExecution(EventType::kExecutionFailed, Failure::Of("Saga.CompensationFailed", cause));
  }

  ExecutionState* s_;
  int64_t now_;
  Rng rng_;
  int64_t succeeded_task_ = 0;  // the task whose success is being processed
  const EngineOptions& opts_;
  Decision* d_;
  std::deque<Pending> work_;
};

}  // namespace

absl::StatusOr<Decision> Process(ExecutionState* state, const Command& command, int64_t now_us,
                                 uint64_t seed, const EngineOptions& options) {
  if (!state->machine) return absl::FailedPreconditionError("no state machine");
  Decision d;
  const int64_t before = state->last_event_id;
  Decider decider(state, now_us, seed, options, &d);
  absl::Status s = decider.Run(command);
  if (!s.ok()) {
    if (state->last_event_id != before) {
      return absl::InternalError(saga::StrCat("engine failed mid-decision: ", s.message()));
    }
    return s;
  }
  return d;
}

}  // namespace saga::engine
