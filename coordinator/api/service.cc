#include "coordinator/api/service.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "coordinator/common/strings.h"
#include "coordinator/engine/events.h"
#include "coordinator/runtime/worker_session.h"

namespace saga::api {
namespace {

std::string Ts(int64_t us) { return engine::FormatTimestamp(us); }

// A proto3 `optional string`: absent, or as given (even empty).
std::optional<std::string> OptionalField(bool has, const std::string& value) {
  return has ? std::optional<std::string>(value) : std::nullopt;
}

v1::StateMachineType TypeOf(int t) { return t == 2 ? v1::EXPRESS : v1::STANDARD; }

void FillStateMachine(const storage::StateMachineRecord& r, v1::StateMachine* out) {
  out->set_state_machine_arn(runtime::Coordinator::StateMachineArn(r.name));
  out->set_name(r.name);
  out->set_type(TypeOf(r.type));
  out->set_definition(r.definition);
  out->set_revision(r.revision);
  out->set_creation_date(Ts(r.created_us));
  out->set_update_date(Ts(r.updated_us));
}

void FillExecution(const storage::ExecutionRecord& r, v1::Execution* out) {
  out->set_execution_arn(runtime::Coordinator::ExecutionArn(r.state_machine, r.name));
  out->set_state_machine_arn(runtime::Coordinator::StateMachineArn(r.state_machine));
  out->set_state_machine(r.state_machine);
  out->set_revision(r.revision);
  out->set_name(r.name);
  out->set_status(static_cast<v1::ExecutionStatus>(r.status));
  out->set_input(r.input);
  if (r.output) out->set_output(*r.output);
  if (r.error) out->set_error(*r.error);
  if (r.cause) out->set_cause(*r.cause);
  out->set_start_date(Ts(r.start_us));
  if (r.stop_us) out->set_stop_date(Ts(*r.stop_us));
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

grpc::Status SagaService::CreateStateMachine(grpc::ServerContext*,
                                             const v1::CreateStateMachineRequest* req,
                                             v1::CreateStateMachineResponse* resp) {
  auto r = c_->CreateStateMachine(req->name(), req->definition(), static_cast<int>(req->type()));
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_state_machine_arn(runtime::Coordinator::StateMachineArn(r->name));
  resp->set_revision(r->revision);
  resp->set_creation_date(Ts(r->created_us));
  return grpc::Status::OK;
}

grpc::Status SagaService::UpdateStateMachine(grpc::ServerContext*,
                                             const v1::UpdateStateMachineRequest* req,
                                             v1::UpdateStateMachineResponse* resp) {
  auto r = c_->UpdateStateMachine(req->name(), req->definition());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_revision(r->revision);
  resp->set_update_date(Ts(r->updated_us));
  return grpc::Status::OK;
}

grpc::Status SagaService::DescribeStateMachine(grpc::ServerContext*,
                                               const v1::DescribeStateMachineRequest* req,
                                               v1::StateMachine* resp) {
  auto r = c_->DescribeStateMachine(req->name(), req->revision());
  if (!r.ok()) return ToGrpc(r.status());
  FillStateMachine(*r, resp);
  return grpc::Status::OK;
}

grpc::Status SagaService::ListStateMachines(grpc::ServerContext*,
                                            const v1::ListStateMachinesRequest* req,
                                            v1::ListStateMachinesResponse* resp) {
  int limit = req->max_results() <= 0 ? 100 : std::min(req->max_results(), 1000);
  auto r = c_->ListStateMachines(req->next_token(), limit);
  if (!r.ok()) return ToGrpc(r.status());
  for (const auto& m : *r) FillStateMachine(m, resp->add_state_machines());
  if (static_cast<int>(r->size()) == limit) resp->set_next_token(r->back().name);
  return grpc::Status::OK;
}

grpc::Status SagaService::DeleteStateMachine(grpc::ServerContext*,
                                             const v1::DeleteStateMachineRequest* req,
                                             v1::DeleteStateMachineResponse*) {
  return ToGrpc(c_->DeleteStateMachine(req->name()));
}

grpc::Status SagaService::ValidateStateMachineDefinition(
    grpc::ServerContext*, const v1::ValidateStateMachineDefinitionRequest* req,
    v1::ValidateStateMachineDefinitionResponse* resp) {
  auto errors = runtime::Coordinator::Validate(req->definition());
  resp->set_valid(errors.empty());
  for (const auto& e : errors) {
    auto* out = resp->add_errors();
    out->set_path(e.path);
    out->set_message(e.message);
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* SagaService::StartExecution(grpc::CallbackServerContext* ctx,
                                                      const v1::StartExecutionRequest* req,
                                                      v1::StartExecutionResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto done = [reactor, resp](absl::StatusOr<storage::ExecutionRecord> r) {
    if (!r.ok()) {
      reactor->Finish(ToGrpc(r.status()));
      return;
    }
    resp->set_execution_arn(runtime::Coordinator::ExecutionArn(r->state_machine, r->name));
    resp->set_start_date(Ts(r->start_us));
    reactor->Finish(grpc::Status::OK);
  };
  auto run_blocking = [this](std::function<void()> fn) { RunBlocking(std::move(fn)); };
  if (!c_->StartExecutionAsync(req->state_machine(), req->name(), req->input(), done,
                               run_blocking)) {
    RunBlocking([this, req, done] {
      done(c_->StartExecution(req->state_machine(), req->name(), req->input()));
    });
  }
  return reactor;
}

void SagaService::RunBlocking(std::function<void()> fn) {
  std::lock_guard<std::mutex> g(blocking_mu_);
  blocking_.push_back(std::move(fn));
  if (blocking_idle_ > 0) {
    blocking_cv_.notify_one();
  } else if (static_cast<int>(blocking_threads_.size()) < kBlockingThreads) {
    blocking_threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "saga-blocking");
      BlockingLoop();
    });
  }  // else the next thread to finish takes it
}

void SagaService::BlockingLoop() {
  std::unique_lock<std::mutex> lock(blocking_mu_);
  while (true) {
    if (blocking_.empty()) {
      if (blocking_stop_) return;
      ++blocking_idle_;
      blocking_cv_.wait(lock, [&] { return blocking_stop_ || !blocking_.empty(); });
      --blocking_idle_;
      continue;
    }
    std::function<void()> fn = std::move(blocking_.front());
    blocking_.pop_front();
    lock.unlock();
    fn();
    lock.lock();
  }
}

grpc::Status SagaService::DescribeExecution(grpc::ServerContext*,
                                            const v1::DescribeExecutionRequest* req,
                                            v1::Execution* resp) {
  auto r = c_->DescribeExecution(req->execution_arn());
  if (!r.ok()) return ToGrpc(r.status());
  FillExecution(*r, resp);
  return grpc::Status::OK;
}

grpc::Status SagaService::ListExecutions(grpc::ServerContext*, const v1::ListExecutionsRequest* req,
                                         v1::ListExecutionsResponse* resp) {
  std::string next;
  auto r = c_->ListExecutions(req->state_machine(), static_cast<int>(req->status_filter()),
                              req->next_token(), req->max_results(), &next);
  if (!r.ok()) return ToGrpc(r.status());
  for (const auto& e : *r) FillExecution(e, resp->add_executions());
  resp->set_next_token(next);
  return grpc::Status::OK;
}

grpc::Status SagaService::GetExecutionHistory(grpc::ServerContext*,
                                              const v1::GetExecutionHistoryRequest* req,
                                              v1::GetExecutionHistoryResponse* resp) {
  std::string next;
  auto r = c_->GetExecutionHistory(req->execution_arn(), req->next_token(), req->max_results(),
                                   req->reverse_order(), &next);
  if (!r.ok()) return ToGrpc(r.status());
  for (const auto& e : *r) {
    auto* out = resp->add_events();
    out->set_id(e.id);
    out->set_previous_event_id(e.id - 1);
    out->set_timestamp(Ts(e.timestamp_us));
    out->set_type(std::string(engine::EventTypeName(e.type)));
    out->set_state_name(e.state_name);
    out->set_details(e.details.Dump());
  }
  resp->set_next_token(next);
  return grpc::Status::OK;
}

grpc::Status SagaService::StopExecution(grpc::ServerContext*, const v1::StopExecutionRequest* req,
                                        v1::StopExecutionResponse* resp) {
  auto r = c_->StopExecution(req->execution_arn(), req->error(), req->cause(), req->compensate());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_stop_date(Ts(*r));
  return grpc::Status::OK;
}

grpc::Status SagaService::RedriveExecution(grpc::ServerContext*,
                                           const v1::RedriveExecutionRequest* req,
                                           v1::RedriveExecutionResponse* resp) {
  auto r = c_->RedriveExecution(req->execution_arn());
  if (!r.ok()) return ToGrpc(r.status());
  resp->set_redrive_date(Ts(*r));
  return grpc::Status::OK;
}

grpc::Status SagaService::GetActivityTask(grpc::ServerContext* ctx,
                                          const v1::GetActivityTaskRequest* req,
                                          v1::GetActivityTaskResponse* resp) {
  if (req->wait_seconds() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "wait_seconds: must not be negative (0 or more than 60 waits 60 s)");
  }
  const int wait_ms = req->wait_seconds() == 0 || req->wait_seconds() > 60
                          ? 60000
                          : req->wait_seconds() * 1000;
  auto r = c_->GetActivityTask(req->activity(), req->worker_name(), wait_ms,
                               [ctx] { return ctx->IsCancelled(); });
  if (!r.ok()) return ToGrpc(r.status());
  if (!r->task_token.empty() && ctx->IsCancelled()) {
    // The caller is gone: give the task back rather than leave it started.
    (void)c_->ReleaseTask(r->task_token, req->worker_name());
    return grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled");
  }
  resp->set_task_token(r->task_token);
  resp->set_input(r->input);
  resp->set_execution_arn(r->execution_arn);
  resp->set_state_name(r->state_name);
  resp->set_attempt(r->attempt);
  resp->set_timeout_seconds(static_cast<int32_t>(r->timeout_seconds.value_or(0)));
  resp->set_heartbeat_seconds(static_cast<int32_t>(r->heartbeat_seconds.value_or(0)));
  resp->set_idempotency_key(r->idempotency_key);
  resp->set_traceparent(r->traceparent);
  resp->set_callback(r->callback);
  resp->set_compensation(r->compensation);
  resp->set_compensated_state(r->compensated_state);
  resp->set_compensated_idempotency_key(r->compensated_idempotency_key);
  resp->set_deadline_unix_ms(r->deadline_unix_ms.value_or(0));
  resp->set_scheduled_unix_us(r->scheduled_unix_us);
  return grpc::Status::OK;
}

grpc::Status SagaService::SendTaskSuccess(grpc::ServerContext*,
                                          const v1::SendTaskSuccessRequest* req,
                                          v1::SendTaskSuccessResponse*) {
  return ToGrpc(c_->SendTaskSuccess(req->task_token(), req->output()));
}

grpc::Status SagaService::SendTaskFailure(grpc::ServerContext*,
                                          const v1::SendTaskFailureRequest* req,
                                          v1::SendTaskFailureResponse*) {
  return ToGrpc(c_->SendTaskFailure(req->task_token(), OptionalField(req->has_error(), req->error()),
                                    OptionalField(req->has_cause(), req->cause())));
}

grpc::Status SagaService::SendTaskHeartbeat(grpc::ServerContext*,
                                            const v1::SendTaskHeartbeatRequest* req,
                                            v1::SendTaskHeartbeatResponse*) {
  return ToGrpc(c_->SendTaskHeartbeat(req->task_token()));
}

void SagaService::Drain() {
  std::lock_guard<std::mutex> g(streams_mu_);
  draining_ = true;
  for (auto& [ctx, reactor] : streams_) ctx->TryCancel();
}

namespace {

absl::Status BadCredit(int credit, const char* field) {
  return credit < 0 || credit > 1000
             ? absl::InvalidArgumentError(saga::StrCat(field, ": must be 0 to 1000"))
             : absl::OkStatus();
}

void FillPushedTask(const runtime::ActivityTask& t, v1::PushedTask* p) {
  p->set_task_token(t.task_token);
  p->set_activity(t.activity);
  p->set_input(t.input);
  p->set_execution_arn(t.execution_arn);
  p->set_state_name(t.state_name);
  p->set_attempt(t.attempt);
  p->set_idempotency_key(t.idempotency_key);
  p->set_timeout_seconds(static_cast<int32_t>(t.timeout_seconds.value_or(0)));
  p->set_heartbeat_seconds(static_cast<int32_t>(t.heartbeat_seconds.value_or(0)));
  p->set_deadline_unix_ms(t.deadline_unix_ms.value_or(0));
  p->set_scheduled_unix_us(t.scheduled_unix_us);
  p->set_sent_unix_us(absl::ToUnixMicros(absl::Now()));
  p->set_traceparent(t.traceparent);
  p->set_callback(t.callback);
  p->set_compensation(t.compensation);
  p->set_compensated_state(t.compensated_state);
  p->set_compensated_idempotency_key(t.compensated_idempotency_key);
}

}  // namespace

// One worker stream (see worker_session.h for what it does). gRPC's threads
// run the reactions: a read hands results to this stream's appliers and
// credits to the session, then reads on; writes go out one at a time from a
// queue, those with more queued behind them buffered so that a burst leaves
// in few packets. What blocks (registration's database work, the dispatch
// loop, applying results, the end of the stream) runs on this stream's own
// threads:
// - control: registers (reclaims what the worker held), starts the others,
//   waits for the input to end, then closes the session and finishes;
// - dispatcher: WorkerSession::Run, pushing tasks as credits allow;
// - appliers: apply results, heartbeats and give-backs side by side (so one
//   worker's completions share group commits) and queue their acks.
class WorkerStreamReactor final
    : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  WorkerStreamReactor(SagaService* svc, grpc::CallbackServerContext* ctx)
      : svc_(svc), ctx_(ctx) {
    {
      std::lock_guard<std::mutex> g(svc_->streams_mu_);
      if (svc_->draining_) {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator is draining"));
        return;
      }
      svc_->streams_.emplace(ctx_, this);
      listed_ = true;
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      EndInput(grpc::Status::OK);
      return;
    }
    if (!registering_) {  // the first message
      if (in_.message_case() != v1::WorkerMessage::kRegister) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "register: the first message of a worker stream must be register"));
        return;
      }
      // Set before the thread starts; it reads on (so this runs again) once
      // registered, after taking mu_ (so control_ is assigned by then).
      registering_ = true;
      std::lock_guard<std::mutex> g(mu_);
      control_ = std::thread([this, m = std::move(in_)] {
        pthread_setname_np(pthread_self(), "saga-stream");
        { std::lock_guard<std::mutex> started(mu_); }
        Control(m);
      });
      return;
    }
    grpc::Status result = grpc::Status::OK;
    switch (in_.message_case()) {
      case v1::WorkerMessage::kCredit: {
        absl::Status s = session_->Grant(in_.credit().tasks());
        if (!s.ok()) result = ToGrpc(s);
        break;  // credits are not acknowledged
      }
      case v1::WorkerMessage::kComplete:
      case v1::WorkerMessage::kFail:
      case v1::WorkerMessage::kHeartbeat:
      case v1::WorkerMessage::kRelease: {
        // A result's credit is granted as it arrives (the worker's handler
        // is free), not once it is committed; the applier then grants none.
        if (in_.has_complete() &&
            session_->GrantForResult(in_.complete().task_token(), in_.complete().credit())) {
          in_.mutable_complete()->set_credit(0);
        } else if (in_.has_fail() &&
                   session_->GrantForResult(in_.fail().task_token(), in_.fail().credit())) {
          in_.mutable_fail()->set_credit(0);
        }
        // A result is applied from here when nothing is queued before it
        // (an applier would otherwise see later messages first): decided
        // at once, its write left to the group commit, which finishes it
        // (no applier woken, none waiting). Anything else, and a result
        // that cannot be (its execution not cached here, or busy), goes to
        // the appliers.
        bool direct = false;
        if (in_.has_complete() || in_.has_fail()) {
          std::lock_guard<std::mutex> g(mu_);
          direct = queue_.empty();
          if (direct) ++direct_pending_;
        }
        if (direct && ApplyDirect(in_)) break;
        {
          std::lock_guard<std::mutex> g(mu_);
          if (direct) --direct_pending_;
          queue_.push_back(Work{std::move(in_), nullptr});
        }
        queue_cv_.notify_one();
        break;
      }
      case v1::WorkerMessage::kRegister:
        result = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "register: may only be sent once, first");
        break;
      default:
        result = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "message: empty or unknown worker message");
        break;
    }
    if (!result.ok()) {
      EndInput(result);
      return;
    }
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(write_mu_);
    if (!ok) {
      // The stream is broken. Tasks queued behind are settled with the
      // session like any task pushed and not answered (gRPC completes a
      // write once the transport has taken it, so a queue rarely forms).
      write_failed_ = true;
      out_.clear();
      held_acks_.clear();
    } else {
      while (!out_.empty()) {
        current_ = std::move(out_.front());
        out_.pop_front();
        if (!TakeHeldAcks(&current_)) continue;  // an ack carrier whose acks went before
        // Carriers queued behind have nothing left to carry: drop them, so
        // that the buffer hint below promises only a write that will come
        // (a write left buffered behind a skipped carrier never goes out).
        std::erase_if(out_, [](const v1::CoordinatorMessage& q) { return CarriesNothing(q); });
        const bool more = !out_.empty();
        lock.unlock();
        StartWrite(&current_, more ? grpc::WriteOptions().set_buffer_hint() : grpc::WriteOptions());
        return;
      }
    }
    writing_ = false;
    lock.unlock();
    write_cv_.notify_all();
  }

  void OnDone() override {
    if (control_.joinable()) control_.join();  // it has finished the call
    if (listed_) {
      std::lock_guard<std::mutex> g(svc_->streams_mu_);
      svc_->streams_.erase(ctx_);
    }
    delete this;
  }

 private:
  // Queues a message for the worker; false once the stream cannot be
  // written (a task then is given back by the control thread).
  bool Send(v1::CoordinatorMessage m) {
    std::unique_lock<std::mutex> lock(write_mu_);
    if (write_failed_ || write_closed_) return false;  // a task: the session gives it back
    if (writing_) {
      // An ack carrier behind another write is not needed: the held acks
      // ride the first write queued.
      if (!CarriesNothing(m) || out_.empty()) out_.push_back(std::move(m));
      return true;
    }
    if (!TakeHeldAcks(&m)) return true;  // an ack carrier with nothing to carry
    writing_ = true;
    current_ = std::move(m);
    lock.unlock();  // the reaction may run inline and takes the lock
    StartWrite(&current_);
    return true;
  }

  // Held acks ride the message about to be written (write_mu_ held); false:
  // it carries nothing at all (an ack carrier queued by FlushAcks whose
  // acks went with an earlier message).
  bool TakeHeldAcks(v1::CoordinatorMessage* m) {
    for (auto& a : held_acks_) *m->add_acks() = std::move(a);
    held_acks_.clear();
    return !CarriesNothing(*m);
  }
  static bool CarriesNothing(const v1::CoordinatorMessage& m) {
    return m.message_case() == v1::CoordinatorMessage::MESSAGE_NOT_SET && m.acks_size() == 0;
  }

  // A result's ack for a worker that takes them deferred: held until the
  // next message to it, or ack_delay_ms (the service's ack thread flushes).
  void HoldAck(uint64_t request_id, const absl::Status& s) {
    bool first;
    {
      std::lock_guard<std::mutex> g(write_mu_);
      if (write_failed_ || write_closed_) return;  // the worker sends it again when it reconnects
      first = held_acks_.empty();
      held_acks_.push_back(MakeAck(request_id, s, false));
    }
    if (first) {
      svc_->AcksHeld(this, std::chrono::steady_clock::now() + std::chrono::milliseconds(ack_delay_ms_));
    }
  }

  // Sends the held acks now, alone or with a write queued behind the one
  // in flight (the service's ack thread, and the stream's end).
  void FlushAcks() {
    {
      std::lock_guard<std::mutex> g(write_mu_);
      if (held_acks_.empty()) return;
    }
    Send(v1::CoordinatorMessage());  // carries them (TakeHeldAcks)
  }

  // The worker's input ended (or it broke the protocol: `result`).
  void EndInput(grpc::Status result) {
    if (!registering_) {  // never registered
      Finish(result);
      return;
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      input_ended_ = true;
      result_ = std::move(result);
    }
    queue_cv_.notify_all();
  }

  void Control(const v1::WorkerMessage& msg) {
    grpc::Status result = Serve(msg);
    // The appliers are done: what they held goes now.
    svc_->ForgetAcks(this);
    FlushAcks();
    // Finish once the queued messages are written (or cannot be).
    {
      std::unique_lock<std::mutex> lock(write_mu_);
      write_cv_.wait(lock, [&] { return !writing_; });
      write_closed_ = true;
    }
    if (ctx_->IsCancelled() && result.ok()) {
      result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker stream ended by the coordinator");
    }
    Finish(result);
  }

  grpc::Status Serve(const v1::WorkerMessage& msg) {
    runtime::WorkerRegistration reg;
    std::string worker_id;
    reg.identity = msg.register_().identity();
    reg.activities.assign(msg.register_().activities().begin(),
                          msg.register_().activities().end());
    reg.max_concurrency = msg.register_().max_concurrency();
    if (msg.register_().has_initial_credits()) reg.initial_credits = msg.register_().initial_credits();
    reg.ack_delay_ms = msg.register_().ack_delay_ms();
    if (absl::Status s = runtime::ValidateRegistration(reg); !s.ok()) return ToGrpc(s);
    ack_delay_ms_ = reg.ack_delay_ms;
    {
      std::vector<std::string> held(msg.register_().held_task_tokens().begin(),
                                    msg.register_().held_task_tokens().end());
      auto reclaimed = svc_->c_->ReclaimLostTasks(reg.identity, held);
      if (!reclaimed.ok()) return ToGrpc(reclaimed.status());
    }
    // Registered goes first: the session's hand-offs may be pushed as soon
    // as it exists.
    {
      static std::atomic<uint64_t> next_id{1};
      worker_id = saga::StrCat(reg.identity, "#", next_id.fetch_add(1));
      v1::CoordinatorMessage m;
      m.mutable_registered()->set_worker_id(worker_id);
      m.mutable_registered()->set_coordinator(svc_->c_->instance());
      m.mutable_registered()->set_credit_on_results(true);
      if (!Send(std::move(m))) return grpc::Status::OK;
    }
    session_ = std::make_unique<runtime::WorkerSession>(
        svc_->c_, reg, [this](const runtime::ActivityTask& t) {
          v1::CoordinatorMessage m;
          FillPushedTask(t, m.mutable_task());
          return Send(std::move(m));
        });
    {
      // Listed by ListWorkers from now on (session_ is set).
      Registered r;
      r.worker_id = worker_id;
      r.identity = reg.identity;
      r.activities = reg.activities;
      r.max_concurrency = reg.max_concurrency;
      r.connected_us = absl::ToUnixMicros(absl::Now());
      r.peer = ctx_->peer();
      std::lock_guard<std::mutex> g(svc_->streams_mu_);
      registered_ = std::move(r);
    }
    std::thread dispatcher([this] {
      pthread_setname_np(pthread_self(), "saga-dispatch");
      session_->Run();
    });
    // Two appliers: while one waits for its group commit, the other takes
    // what arrived meanwhile, all of it at once (ApplyLoop). Eight, one per
    // result in flight, each woke for one or two results and waited on its
    // own commit: 2.5 context switches per task in the saga benchmark, and
    // a third more coordinator CPU per saga execution.
    std::vector<std::thread> appliers;
    const int n_appliers = std::clamp(reg.max_concurrency, 1, 2);
    for (int i = 0; i < n_appliers; ++i) {
      appliers.emplace_back([this] {
        pthread_setname_np(pthread_self(), "saga-apply");
        ApplyLoop();
      });
    }
    in_.Clear();
    StartRead(&in_);  // the session exists: read the worker's messages

    grpc::Status result;
    {
      std::unique_lock<std::mutex> lock(mu_);
      control_cv_.wait(lock, [&] { return input_ended_ && appliers_done_ == n_appliers; });
      result = result_;
    }
    for (auto& t : appliers) t.join();
    session_->Close();
    dispatcher.join();
    return result;
  }

  // Results, heartbeats and give-backs, each acknowledged when applied. An
  // applier takes everything queued: the results among it go to one group
  // commit together (one wait for all, instead of one applier woken and
  // waiting per result). It also runs what a directly applied result needs
  // done on a thread that may block.
  void ApplyLoop() {
    std::vector<v1::WorkerMessage> taken;
    while (true) {
      taken.clear();
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        queue_cv_.wait(lock, [&] {
          return (input_ended_ && direct_pending_ == 0) || !queue_.empty();
        });
        if (queue_.empty()) {  // ended and drained: what was received is applied
          ++appliers_done_;
          lock.unlock();
          control_cv_.notify_all();
          return;
        }
        if (queue_.front().fn) {
          fn = std::move(queue_.front().fn);
          queue_.pop_front();
        }
        while (!fn && !queue_.empty() && !queue_.front().fn && taken.size() < kMaxTaken) {
          taken.push_back(std::move(queue_.front().m));
          queue_.pop_front();
        }
      }
      if (fn) {
        fn();
      } else {
        ApplyTaken(taken);
      }
    }
  }

  // A result applied without an applier (see OnReadDone); false: not taken.
  bool ApplyDirect(const v1::WorkerMessage& m) {
    const bool complete = m.has_complete();
    const int credit = complete ? m.complete().credit() : m.fail().credit();
    if (!BadCredit(credit, "credit").ok()) return false;  // the appliers refuse it
    runtime::Coordinator::WorkerResult r;
    if (complete) {
      r.token = m.complete().task_token();
      r.output = m.complete().output();
    } else {
      r.token = m.fail().task_token();
      r.failed = true;
      r.error = OptionalField(m.fail().has_error(), m.fail().error());
      r.cause = OptionalField(m.fail().has_cause(), m.fail().cause());
    }
    const uint64_t id = complete ? m.complete().request_id() : m.fail().request_id();
    return session_->ApplyAsync(
        r,
        [this, id, credit](absl::Status s) {
          Settled(id, credit, s);
          // Last: once none is pending, the stream may end and this go.
          std::lock_guard<std::mutex> g(mu_);
          if (--direct_pending_ == 0 && input_ended_) queue_cv_.notify_all();
        },
        [this](std::function<void()> fn) {
          {
            std::lock_guard<std::mutex> g(mu_);
            queue_.push_front(Work{v1::WorkerMessage(), std::move(fn)});
          }
          queue_cv_.notify_one();
        });
  }

  static constexpr size_t kMaxTaken = 64;

  void ApplyTaken(const std::vector<v1::WorkerMessage>& taken) {
    std::vector<runtime::Coordinator::WorkerResult> results;
    std::vector<const v1::WorkerMessage*> of;
    for (const v1::WorkerMessage& m : taken) {
      runtime::Coordinator::WorkerResult r;
      if (m.has_complete()) {
        if (absl::Status bad = BadCredit(m.complete().credit(), "complete.credit"); !bad.ok()) {
          Ack(m.complete().request_id(), bad, false);  // the result is not taken
          continue;
        }
        r.token = m.complete().task_token();
        r.output = m.complete().output();
      } else if (m.has_fail()) {
        if (absl::Status bad = BadCredit(m.fail().credit(), "fail.credit"); !bad.ok()) {
          Ack(m.fail().request_id(), bad, false);
          continue;
        }
        r.token = m.fail().task_token();
        r.failed = true;
        r.error = OptionalField(m.fail().has_error(), m.fail().error());
        r.cause = OptionalField(m.fail().has_cause(), m.fail().cause());
      } else if (m.has_heartbeat()) {
        bool cancelled = false;
        absl::Status s = session_->Heartbeat(m.heartbeat().task_token(), &cancelled);
        Ack(m.heartbeat().request_id(), s, cancelled);
        continue;
      } else {  // kRelease
        Ack(m.release().request_id(), session_->Release(m.release().task_token()), false);
        continue;
      }
      results.push_back(std::move(r));
      of.push_back(&m);
    }
    if (results.empty()) return;
    const std::vector<absl::Status> applied = session_->Apply(results);
    for (size_t k = 0; k < results.size(); ++k) {
      const v1::WorkerMessage& m = *of[k];
      const bool complete = m.has_complete();
      Settled(complete ? m.complete().request_id() : m.fail().request_id(),
              complete ? m.complete().credit() : m.fail().credit(), applied[k]);
    }
  }

  // A result is applied (or refused): its credit and its ack.
  void Settled(uint64_t request_id, int credit, const absl::Status& s) {
    // A result's credit (CompleteTask.credit) not granted as it arrived
    // (its task was not held on this stream): granted once the result is
    // settled, taken or refused for good.
    if (credit != 0 && (s.ok() || s.code() == absl::StatusCode::kFailedPrecondition ||
                        s.code() == absl::StatusCode::kNotFound)) {
      (void)session_->Grant(credit);  // in range: checked before applying
    }
    if (ack_delay_ms_ > 0) {
      HoldAck(request_id, s);
    } else {
      Ack(request_id, s, false);
    }
  }

  static v1::WorkerAck MakeAck(uint64_t request_id, const absl::Status& s, bool cancelled) {
    v1::WorkerAck a;
    a.set_request_id(request_id);
    a.set_cancelled(cancelled);
    a.set_code(static_cast<int32_t>(s.code()));
    a.set_message(std::string(s.message()));
    return a;
  }

  void Ack(uint64_t request_id, const absl::Status& s, bool cancelled) {
    v1::CoordinatorMessage ack;
    *ack.mutable_ack() = MakeAck(request_id, s, cancelled);
    Send(std::move(ack));
  }

  SagaService* const svc_;
  grpc::CallbackServerContext* const ctx_;
  bool listed_ = false;
  // What ListWorkers shows, once registered (guarded by svc_->streams_mu_).
  struct Registered {
    std::string worker_id, identity;
    std::vector<std::string> activities;
    int max_concurrency = 0;
    int64_t connected_us = 0;
    std::string peer;
  };
  std::optional<Registered> registered_;
  friend class SagaService;
  bool registering_ = false;  // the first message came: control_ runs
  v1::WorkerMessage in_;  // the read in progress
  std::thread control_;
  std::unique_ptr<runtime::WorkerSession> session_;

  std::mutex mu_;  // the appliers' queue and the end of the input
  std::condition_variable queue_cv_, control_cv_;
  // The appliers' work: a message, or what a directly applied result needs
  // run on a thread that may block.
  struct Work {
    v1::WorkerMessage m;
    std::function<void()> fn;
  };
  std::deque<Work> queue_;
  int direct_pending_ = 0;  // results applied directly, not yet settled
  bool input_ended_ = false;
  int appliers_done_ = 0;
  grpc::Status result_;

  std::mutex write_mu_;  // the outgoing queue
  std::condition_variable write_cv_;
  bool writing_ = false;       // a write is in flight (current_)
  bool write_failed_ = false;  // the stream cannot be written any more
  bool write_closed_ = false;  // finishing: nothing more is written
  // Results' acks held back up to this long (RegisterWorker.ack_delay_ms;
  // set before the appliers start; 0: none).
  int64_t ack_delay_ms_ = 0;
  std::vector<v1::WorkerAck> held_acks_;
  v1::CoordinatorMessage current_;
  std::deque<v1::CoordinatorMessage> out_;
};

grpc::Status SagaService::ListWorkers(grpc::ServerContext*, const v1::ListWorkersRequest* req,
                                      v1::ListWorkersResponse* resp) {
  if (req->activity().size() > 256) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "activity: at most 256 characters (an activity name)");
  }
  std::vector<v1::WorkerInfo> out;
  {
    std::lock_guard<std::mutex> g(streams_mu_);
    for (const auto& [ctx, reactor] : streams_) {
      if (!reactor->registered_) continue;  // not registered (yet)
      const auto& r = *reactor->registered_;
      if (!req->activity().empty() &&
          std::find(r.activities.begin(), r.activities.end(), req->activity()) == r.activities.end()) {
        continue;
      }
      v1::WorkerInfo& w = out.emplace_back();
      w.set_worker_id(r.worker_id);
      w.set_identity(r.identity);
      for (const auto& a : r.activities) w.add_activities(a);
      w.set_max_concurrency(r.max_concurrency);
      w.set_tasks_held(static_cast<int32_t>(reactor->session_->in_flight()));
      w.set_connected_date(Ts(r.connected_us));
      w.set_peer(r.peer);
    }
  }
  std::sort(out.begin(), out.end(), [](const v1::WorkerInfo& a, const v1::WorkerInfo& b) {
    return std::tie(a.identity(), a.worker_id()) < std::tie(b.identity(), b.worker_id());
  });
  for (auto& w : out) *resp->add_workers() = std::move(w);
  return grpc::Status::OK;
}

SagaService::~SagaService() {
  {
    std::lock_guard<std::mutex> g(acks_mu_);
    acks_stop_ = true;
  }
  acks_cv_.notify_all();
  if (ack_thread_.joinable()) ack_thread_.join();
  {
    std::lock_guard<std::mutex> g(blocking_mu_);
    blocking_stop_ = true;  // what is queued still runs
  }
  blocking_cv_.notify_all();
  for (auto& t : blocking_threads_) t.join();
}

void SagaService::AcksHeld(WorkerStreamReactor* r, std::chrono::steady_clock::time_point due) {
  bool wake;
  {
    std::lock_guard<std::mutex> g(acks_mu_);
    if (acks_stop_) return;  // the stream's end flushes them
    if (!ack_thread_.joinable()) {
      ack_thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "saga-acks");
        AckLoop();
      });
    }
    // The thread sleeps until the earliest due time: wake it for an earlier one.
    wake = acks_due_.empty() || due < acks_due_.begin()->first;
    acks_due_.emplace(due, r);
  }
  if (wake) acks_cv_.notify_one();
}

void SagaService::ForgetAcks(WorkerStreamReactor* r) {
  std::lock_guard<std::mutex> g(acks_mu_);
  for (auto it = acks_due_.begin(); it != acks_due_.end();) {
    it = it->second == r ? acks_due_.erase(it) : std::next(it);
  }
}

void SagaService::AckLoop() {
  std::unique_lock<std::mutex> lock(acks_mu_);
  while (!acks_stop_) {
    if (acks_due_.empty()) {
      acks_cv_.wait(lock);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (const auto first = acks_due_.begin()->first; first > now) {
      acks_cv_.wait_until(lock, first);  // a copy: the entry may go meanwhile
      continue;
    }
    // Under acks_mu_, so ForgetAcks waits for a flush of its stream. Those
    // due soon go too: one wake-up for many streams.
    const auto horizon = now + std::chrono::milliseconds(10);
    while (!acks_due_.empty() && acks_due_.begin()->first <= horizon) {
      WorkerStreamReactor* r = acks_due_.begin()->second;
      acks_due_.erase(acks_due_.begin());
      r->FlushAcks();
    }
  }
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* SagaService::WorkerStream(
    grpc::CallbackServerContext* ctx) {
  return new WorkerStreamReactor(this, ctx);
}

}  // namespace saga::api
