#include "coordinator/engine/execution_state.h"

#include <algorithm>

#include "coordinator/common/strings.h"

namespace saga::engine {

std::string_view ExecutionStatusName(ExecutionStatus s) {
  switch (s) {
    case ExecutionStatus::kPending:
      return "PENDING";
    case ExecutionStatus::kRunning:
      return "RUNNING";
    case ExecutionStatus::kSucceeded:
      return "SUCCEEDED";
    case ExecutionStatus::kFailed:
      return "FAILED";
    case ExecutionStatus::kTimedOut:
      return "TIMED_OUT";
    case ExecutionStatus::kAborted:
      return "ABORTED";
  }
  return "UNKNOWN";
}

namespace {

int64_t IntField(const json::Value& d, std::string_view key, int64_t def = 0) {
  const json::Value* v = d.Find(key);
  return v != nullptr && v->is_number() ? static_cast<int64_t>(v->as_double()) : def;
}

json::Value ValueField(const json::Value& d, std::string_view key) {
  const json::Value* v = d.Find(key);
  return v != nullptr ? *v : json::Value();
}

absl::Status Corrupt(const Event& e, std::string_view why) {
  return absl::DataLossError(saga::StrCat("event ", e.id, " (", EventTypeName(e.type), "): ", why));
}

void CloseTimer(ExecutionState* s, Frame* f) {
  if (f->timer_id != 0) {
    s->open_timers.erase(f->timer_id);
    f->timer_id = 0;
  }
}

void CloseTask(ExecutionState* s, Frame* f) {
  if (f->task_id != 0) {
    s->open_tasks.erase(f->task_id);
    f->task_id = 0;
  }
}

// Removes frame `id` and every frame below it, closing their tasks and timers.
void EraseSubtree(ExecutionState* s, int32_t id) {
  std::vector<int32_t> stack{id};
  while (!stack.empty()) {
    int32_t cur = stack.back();
    stack.pop_back();
    auto it = s->frames.find(cur);
    if (it == s->frames.end()) continue;
    CloseTask(s, &it->second);
    CloseTimer(s, &it->second);
    for (const auto& [fid, fr] : s->frames) {
      if (fr.parent == cur) stack.push_back(fid);
    }
    s->frames.erase(it);
  }
}

void Finish(ExecutionState* s, const Event& e, ExecutionStatus status) {
  s->status = status;
  s->stop_us = e.timestamp_us;
  s->open_tasks.clear();
  s->open_timers.clear();
  s->execution_timer_id = 0;
  if (status == ExecutionStatus::kSucceeded) {
    s->output = ValueField(e.details, "output");
  } else {
    const json::Value* err = e.details.Find("error");
    const json::Value* cause = e.details.Find("cause");
    s->has_error = err != nullptr && err->is_string();
    s->has_cause = cause != nullptr && cause->is_string();
    s->error = s->has_error ? err->as_string() : "";
    s->cause = s->has_cause ? cause->as_string() : "";
  }
}

}  // namespace

absl::Status Apply(ExecutionState* s, const Event& e) {
  if (e.id != s->last_event_id + 1) return Corrupt(e, "event ids are not consecutive");
  s->last_event_id = e.id;
  const json::Value& d = e.details;

  if (e.type == EventType::kExecutionStarted) {
    if (s->status != ExecutionStatus::kPending) return Corrupt(e, "execution already started");
    if (!s->machine) return Corrupt(e, "no state machine");
    s->status = ExecutionStatus::kRunning;
    s->input = ValueField(d, "input");
    s->start_us = e.timestamp_us;
    auto str = [&](std::string_view k) {
      const json::Value* v = d.Find(k);
      return v && v->is_string() ? v->as_string() : std::string();
    };
    s->info.execution_id = str("executionArn");
    s->info.name = str("name");
    s->info.state_machine_id = str("stateMachineArn");
    s->info.state_machine_name = str("stateMachineName");
    s->info.role_arn = str("roleArn");
    Frame root;
    root.id = 0;
    root.machine = s->machine.get();
    s->frames.emplace(0, std::move(root));
    if (int64_t t = IntField(d, "timerId"); t != 0) {
      s->execution_timer_id = t;
      s->open_timers[t] = -1;
      s->next_timer_id = std::max(s->next_timer_id, t + 1);
    }
    return absl::OkStatus();
  }
  if (e.type == EventType::kExecutionRedriven) {
    if (!s->finished() || s->status == ExecutionStatus::kSucceeded) {
      return Corrupt(e, "only a FAILED, TIMED_OUT or ABORTED execution is redriven");
    }
    s->status = ExecutionStatus::kRunning;
    s->stop_us = 0;
    s->has_error = s->has_cause = false;
    s->error.clear();
    s->cause.clear();
    ++s->redrive_count;
    auto frame = [&](const json::Value& v) -> Frame* {
      auto it = s->frames.find(static_cast<int32_t>(v.as_int()));
      return it == s->frames.end() ? nullptr : &it->second;
    };
    auto list = [&](std::string_view k) {
      const json::Value* v = d.Find(k);
      return v != nullptr && v->is_array() ? v->as_array() : json::Array();
    };
    // Frames entered again: the StateEntered event that follows resets them.
    for (const auto& v : list("restart")) {
      Frame* f = frame(v);
      if (f == nullptr) return Corrupt(e, "unknown frame to restart");
      f->phase = Phase::kIdle;
      f->task_id = 0;
      f->timer_id = 0;
    }
    // Rollbacks resuming with the compensation that failed, retries afresh.
    for (const auto& v : list("rollback")) {
      Frame* f = frame(v);
      if (f == nullptr) return Corrupt(e, "unknown frame to roll back");
      f->phase = Phase::kIdle;
      f->task_id = 0;
      f->timer_id = 0;
      f->compensation_seq = 0;
    }
    // A Parallel or Map again, with what succeeded kept.
    for (const auto& c : list("children")) {
      const json::Value* id = c.Find("frame");
      Frame* f = id != nullptr ? frame(*id) : nullptr;
      if (f == nullptr || f->state < 0 || f->child_done.size() != f->results.size()) {
        return Corrupt(e, "no children to resume");
      }
      f->phase = Phase::kChildren;
      f->timer_id = 0;
      f->next_child = 0;
      f->running_children = 0;
      f->failed_children = 0;
      f->finished_children = 0;
      for (size_t i = 0; i < f->child_done.size(); ++i) {
        if (f->child_done[i]) {
          f->finished_children++;
        } else {
          f->results[i] = json::Value();
        }
      }
      const asl::State& st = f->current();
      const json::Value* resumed = c.Find("branches");
      for (const auto& r : resumed != nullptr && resumed->is_array() ? resumed->as_array()
                                                                       : json::Array()) {
        const json::Value* idx = r.Find("index");
        const json::Value* fid = r.Find("frameId");
        if (idx == nullptr || fid == nullptr || idx->as_int() < 0 ||
            static_cast<size_t>(idx->as_int()) >= st.branches.size()) {
          return Corrupt(e, "bad resumed branch");
        }
        Frame b;
        b.id = static_cast<int32_t>(fid->as_int());
        b.parent = f->id;
        b.index = idx->as_int();
        b.machine = st.branches[static_cast<size_t>(b.index)].get();
        f->running_children++;
        s->next_frame_id = std::max(s->next_frame_id, b.id + 1);
        s->frames.emplace(b.id, std::move(b));
      }
    }
    Frame& root = s->frames.at(0);
    if (root.compensation_plan.empty()) root.stop_rollback = false;  // its rollback was complete
    if (int64_t t = IntField(d, "timerId"); t != 0) {
      s->execution_timer_id = t;
      s->open_timers[t] = -1;
      s->next_timer_id = std::max(s->next_timer_id, t + 1);
    }
    return absl::OkStatus();
  }
  if (e.type == EventType::kExecutionStopRequested) {
    // StopExecution with compensation: everything running is cancelled (the
    // execution's own TimeoutSeconds stays); the top-level frame rolls back.
    auto root = s->frames.find(0);
    if (root == s->frames.end()) return Corrupt(e, "no top-level frame");
    for (auto it = s->frames.begin(); it != s->frames.end();) {
      it = it->first == 0 ? std::next(it) : s->frames.erase(it);
    }
    for (auto it = s->open_tasks.begin(); it != s->open_tasks.end();) it = s->open_tasks.erase(it);
    for (auto it = s->open_timers.begin(); it != s->open_timers.end();) {
      it = it->second == -1 ? std::next(it) : s->open_timers.erase(it);
    }
    Frame& f = root->second;
    f.phase = Phase::kIdle;
    f.task_id = 0;
    f.timer_id = 0;
    f.stop_rollback = true;
    f.compensation_plan.clear();
    f.compensation_report = json::Value();
    f.compensation_seq = 0;
    s->stop_request = d;
    return absl::OkStatus();
  }

  switch (e.type) {
    case EventType::kExecutionSucceeded:
      Finish(s, e, ExecutionStatus::kSucceeded);
      return absl::OkStatus();
    case EventType::kExecutionFailed:
      Finish(s, e, ExecutionStatus::kFailed);
      return absl::OkStatus();
    case EventType::kExecutionAborted:
      Finish(s, e, ExecutionStatus::kAborted);
      return absl::OkStatus();
    case EventType::kExecutionTimedOut:
      Finish(s, e, ExecutionStatus::kTimedOut);
      return absl::OkStatus();
    default:
      break;
  }

  auto fit = s->frames.find(e.frame);
  if (fit == s->frames.end()) return Corrupt(e, "unknown frame");
  Frame& f = fit->second;

  switch (e.type) {
    case EventType::kTaskStateEntered:
    case EventType::kPassStateEntered:
    case EventType::kChoiceStateEntered:
    case EventType::kWaitStateEntered:
    case EventType::kSucceedStateEntered:
    case EventType::kFailStateEntered:
    case EventType::kParallelStateEntered:
    case EventType::kMapStateEntered:
    case EventType::kCompensateStateEntered: {
      const asl::State* st = f.machine->Find(e.state_name);
      if (st == nullptr) return Corrupt(e, "unknown state " + e.state_name);
      CloseTask(s, &f);
      CloseTimer(s, &f);
      f.state = st->index;
      f.phase = Phase::kIdle;
      f.input = ValueField(d, "input");
      f.effective = json::Value();
      f.entered_us = e.timestamp_us;
      f.entered_event = e.id;
      f.retry_count = 0;
      f.retrier_attempts.assign(st->retry.size(), 0);
      f.compensation_plan.clear();
      f.compensation_report = json::Value();
      f.child_done.clear();
      // A Wait whose duration could not be computed has no timer; a failure
      // event follows.
      if (e.type == EventType::kWaitStateEntered && IntField(d, "timerId") != 0) {
        int64_t t = IntField(d, "timerId");
        f.phase = Phase::kWait;
        f.timer_id = t;
        s->open_timers[t] = f.id;
        s->next_timer_id = std::max(s->next_timer_id, t + 1);
      }
      return absl::OkStatus();
    }
    case EventType::kTaskStateExited: {
      // A completed Task with a Compensation records its undo step.
      if (const json::Value* ci = d.Find("compensationInput")) {
        CompensationRecord r;
        r.state_name = e.state_name;
        r.frame = f.id;
        for (int32_t a = f.parent; a >= 0;) {
          r.ancestors.push_back(a);
          auto pit = s->frames.find(a);
          a = pit == s->frames.end() ? -1 : pit->second.parent;
        }
        r.input = *ci;
        r.task_id = IntField(d, "compensatedTaskId");
        r.seq = s->next_compensation_seq++;
        s->compensations.push_back(std::move(r));
      }
      [[fallthrough]];
    }
    case EventType::kPassStateExited:
    case EventType::kChoiceStateExited:
    case EventType::kWaitStateExited:
    case EventType::kSucceedStateExited:
    case EventType::kParallelStateExited:
    case EventType::kMapStateExited:
    case EventType::kCompensateStateExited:
      CloseTask(s, &f);
      CloseTimer(s, &f);
      f.state = -1;
      f.phase = Phase::kIdle;
      f.input = ValueField(d, "output");
      f.effective = json::Value();
      f.compensation_plan.clear();
      return absl::OkStatus();
    case EventType::kTaskStateAborted:
    case EventType::kWaitStateAborted:
    case EventType::kParallelStateAborted:
    case EventType::kMapStateAborted:
      CloseTask(s, &f);
      CloseTimer(s, &f);
      f.phase = Phase::kDone;
      return absl::OkStatus();
    case EventType::kActivityScheduled:
    case EventType::kCompensationScheduled: {
      int64_t t = IntField(d, "taskId");
      if (t == 0) return Corrupt(e, "no taskId");
      CloseTimer(s, &f);
      f.phase = Phase::kTask;
      f.task_id = t;
      if (e.type == EventType::kActivityScheduled) f.effective = ValueField(d, "input");
      if (e.type == EventType::kCompensationScheduled) {
        f.compensation_plan.clear();
        if (const json::Value* plan = d.Find("plan"); plan && plan->is_array()) {
          for (const auto& q : plan->as_array()) f.compensation_plan.push_back(q.as_int());
        }
        const int64_t seq = IntField(d, "seq");
        if (seq != f.compensation_seq) {
          f.compensation_seq = seq;
          f.compensation_attempts.assign(static_cast<size_t>(IntField(d, "retriers")), 0);
        }
      }
      s->open_tasks[t] = f.id;
      s->next_task_id = std::max(s->next_task_id, t + 1);
      return absl::OkStatus();
    }
    case EventType::kActivityStarted:
    case EventType::kCompensationStarted:
      if (IntField(d, "taskId") != f.task_id) return Corrupt(e, "not the current task");
      return absl::OkStatus();
    case EventType::kActivitySucceeded:
    case EventType::kActivityFailed:
    case EventType::kActivityTimedOut:
      if (IntField(d, "taskId") != f.task_id) return Corrupt(e, "not the current task");
      CloseTask(s, &f);
      f.phase = Phase::kIdle;
      return absl::OkStatus();
    case EventType::kCompensationFailed: {
      if (IntField(d, "taskId") != f.task_id) return Corrupt(e, "not the current task");
      CloseTask(s, &f);
      f.phase = Phase::kIdle;
      if (int64_t t = IntField(d, "timerId"); t != 0) {  // retried by its own Retry
        const int64_t r = IntField(d, "retrier", -1);
        if (r < 0 || static_cast<size_t>(r) >= f.compensation_attempts.size()) {
          return Corrupt(e, "bad compensation retrier");
        }
        f.compensation_attempts[static_cast<size_t>(r)]++;
        f.phase = Phase::kRetryWait;
        f.timer_id = t;
        s->open_timers[t] = f.id;
        s->next_timer_id = std::max(s->next_timer_id, t + 1);
      }
      return absl::OkStatus();
    }
    case EventType::kCompensationSucceeded: {
      if (IntField(d, "taskId") != f.task_id) return Corrupt(e, "not the current task");
      CloseTask(s, &f);
      f.phase = Phase::kIdle;
      int64_t seq = IntField(d, "seq");
      for (auto& r : s->compensations) {
        if (r.seq == seq) r.done = true;
      }
      if (!f.compensation_plan.empty() && f.compensation_plan.front() == seq) {
        f.compensation_plan.erase(f.compensation_plan.begin());
      }
      if (!f.compensation_report.is_array()) f.compensation_report = json::Value::EmptyArray();
      json::Object entry;
      entry.emplace_back("state", ValueField(d, "compensatedState"));
      entry.emplace_back("status", json::Value("COMPENSATED"));
      f.compensation_report.Append(json::Value(std::move(entry)));
      return absl::OkStatus();
    }
    case EventType::kStateRetryScheduled: {
      int64_t t = IntField(d, "timerId");
      int64_t r = IntField(d, "retrier", -1);
      if (t == 0 || r < 0 || static_cast<size_t>(r) >= f.retrier_attempts.size()) {
        return Corrupt(e, "bad retry");
      }
      CloseTask(s, &f);
      f.retrier_attempts[static_cast<size_t>(r)]++;
      f.retry_count++;
      f.phase = Phase::kRetryWait;
      f.timer_id = t;
      s->open_timers[t] = f.id;
      s->next_timer_id = std::max(s->next_timer_id, t + 1);
      return absl::OkStatus();
    }
    case EventType::kParallelStateStarted: {
      if (f.state < 0) return Corrupt(e, "not in a state");
      const asl::State& st = f.current();
      const json::Value* ids = d.Find("frameIds");
      if (ids == nullptr || !ids->is_array() || ids->size() != st.branches.size()) {
        return Corrupt(e, "frameIds do not match the branches");
      }
      CloseTimer(s, &f);
      f.phase = Phase::kChildren;
      f.effective = ValueField(d, "input");
      f.results.assign(st.branches.size(), json::Value());
      f.child_done.assign(st.branches.size(), false);
      f.running_children = static_cast<int64_t>(st.branches.size());
      f.finished_children = f.failed_children = 0;
      for (size_t i = 0; i < st.branches.size(); ++i) {
        Frame c;
        c.id = static_cast<int32_t>(ids->as_array()[i].as_int());
        c.parent = f.id;
        c.index = static_cast<int64_t>(i);
        c.machine = st.branches[i].get();
        s->next_frame_id = std::max(s->next_frame_id, c.id + 1);
        s->frames.emplace(c.id, std::move(c));
      }
      return absl::OkStatus();
    }
    case EventType::kMapStateStarted: {
      CloseTimer(s, &f);
      f.phase = Phase::kChildren;
      f.effective = ValueField(d, "input");
      f.items = ValueField(d, "items");
      f.results.assign(f.items.size(), json::Value());
      f.child_done.assign(f.items.size(), false);
      f.next_child = 0;
      f.running_children = f.finished_children = f.failed_children = 0;
      f.max_concurrency = IntField(d, "maxConcurrency");
      f.tolerated_count = IntField(d, "toleratedFailureCount", -1);
      const json::Value* p = d.Find("toleratedFailurePercentage");
      f.tolerated_percentage = p && p->is_number() ? p->as_double() : -1;
      return absl::OkStatus();
    }
    case EventType::kMapIterationStarted: {
      if (f.phase != Phase::kChildren || f.state < 0) return Corrupt(e, "Map not running");
      Frame c;
      c.id = static_cast<int32_t>(IntField(d, "frameId"));
      c.parent = f.id;
      c.index = IntField(d, "index");
      c.machine = f.current().processor.get();
      if (c.id <= 0 || s->frames.count(c.id)) return Corrupt(e, "bad frameId");
      f.next_child = std::max(f.next_child, c.index + 1);
      f.running_children++;
      s->next_frame_id = std::max(s->next_frame_id, c.id + 1);
      s->frames.emplace(c.id, std::move(c));
      return absl::OkStatus();
    }
    case EventType::kParallelBranchSucceeded:
    case EventType::kMapIterationSucceeded:
    case EventType::kParallelBranchFailed:
    case EventType::kMapIterationFailed:
    case EventType::kParallelBranchAborted:
    case EventType::kMapIterationAborted: {
      auto pit = s->frames.find(f.parent);
      if (pit == s->frames.end()) return Corrupt(e, "frame has no parent");
      Frame& p = pit->second;
      size_t idx = static_cast<size_t>(f.index);
      if (idx >= p.results.size()) return Corrupt(e, "child index out of range");
      p.running_children--;
      if (e.type == EventType::kParallelBranchSucceeded ||
          e.type == EventType::kMapIterationSucceeded) {
        p.results[idx] = ValueField(d, "output");
        if (idx < p.child_done.size()) p.child_done[idx] = true;
        p.finished_children++;
      } else if (e.type == EventType::kParallelBranchFailed ||
                 e.type == EventType::kMapIterationFailed) {
        json::Object o;
        o.emplace_back("Error", ValueField(d, "error"));
        o.emplace_back("Cause", ValueField(d, "cause"));
        p.results[idx] = json::Value(std::move(o));
        p.finished_children++;
        p.failed_children++;
      }
      EraseSubtree(s, f.id);
      return absl::OkStatus();
    }
    case EventType::kParallelStateSucceeded:
    case EventType::kMapStateSucceeded:
      f.phase = Phase::kIdle;
      f.results.clear();
      f.child_done.clear();
      f.items = json::Value();
      return absl::OkStatus();
    case EventType::kParallelStateFailed:
    case EventType::kMapStateFailed:
      // Results and items stay: a redrive reruns only what did not succeed.
      f.phase = Phase::kIdle;
      return absl::OkStatus();
    default:
      return Corrupt(e, "unexpected event");
  }
}

json::Value ExecutionState::Debug() const {
  json::Value o = json::Value::EmptyObject();
  o.Set("status", json::Value(ExecutionStatusName(status)));
  o.Set("info", json::Value(saga::StrCat(info.execution_id, "|", info.name, "|",
                                         info.state_machine_id, "|", info.state_machine_name)));
  o.Set("input", input);
  o.Set("output", output);
  o.Set("error", json::Value(saga::StrCat(has_error, error, "|", has_cause, cause)));
  o.Set("times", json::Value(saga::StrCat(start_us, "|", stop_us)));
  o.Set("counters", json::Value(saga::StrCat(last_event_id, "|", next_task_id, "|", next_timer_id,
                                             "|", next_frame_id, "|", execution_timer_id, "|",
                                             next_compensation_seq, "|", redrive_count)));
  o.Set("stopRequest", stop_request);
  json::Array fr;
  for (const auto& [id, f] : frames) {
    json::Value x = json::Value::EmptyObject();
    x.Set("id", json::Value(static_cast<int64_t>(id)));
    x.Set("shape", json::Value(saga::StrCat(f.parent, "|", f.index, "|", f.state, "|",
                                            static_cast<int>(f.phase), "|", f.entered_us, "|",
                                            f.entered_event, "|", f.retry_count, "|", f.task_id,
                                            "|", f.timer_id, "|", f.stop_rollback)));
    json::Array ra;
    for (int64_t a : f.retrier_attempts) ra.push_back(json::Value(a));
    x.Set("retriers", json::Value(std::move(ra)));
    x.Set("input", f.input);
    x.Set("effective", f.effective);
    x.Set("items", f.items);
    x.Set("results", json::Value(json::Array(f.results)));
    std::string done;
    for (bool b : f.child_done) done.push_back(b ? '1' : '0');
    x.Set("done", json::Value(done));
    x.Set("children",
          json::Value(saga::StrCat(f.next_child, "|", f.running_children, "|", f.finished_children,
                                   "|", f.failed_children, "|", f.max_concurrency, "|",
                                   f.tolerated_count, "|", f.tolerated_percentage)));
    json::Array plan;
    for (int64_t q : f.compensation_plan) plan.push_back(json::Value(q));
    plan.push_back(json::Value(saga::StrCat("seq", f.compensation_seq)));
    for (int64_t q : f.compensation_attempts) plan.push_back(json::Value(q));
    x.Set("plan", json::Value(std::move(plan)));
    x.Set("report", f.compensation_report);
    fr.push_back(std::move(x));
  }
  o.Set("frames", json::Value(std::move(fr)));
  json::Array t;
  for (const auto& [k, v] : open_tasks) t.push_back(json::Value(saga::StrCat(k, ":", v)));
  o.Set("tasks", json::Value(std::move(t)));
  json::Array tm;
  for (const auto& [k, v] : open_timers) tm.push_back(json::Value(saga::StrCat(k, ":", v)));
  o.Set("timers", json::Value(std::move(tm)));
  json::Array comp;
  for (const auto& r : compensations) {
    comp.push_back(json::Value(
        saga::StrCat(r.seq, "|", r.state_name, "|", r.frame, "|", r.task_id, "|", r.done, "|", r.input.Dump())));
  }
  o.Set("compensations", json::Value(std::move(comp)));
  return o;
}

}  // namespace saga::engine
