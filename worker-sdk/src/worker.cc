// The worker's machinery: one connection thread (connect, register, wait
// for the stream to end, reconnect with jittered backoff), the stream's
// reactions on gRPC's threads (pushed tasks are queued for the handlers,
// acks settled; writes go out from a queue, one at a time), `concurrency`
// handler threads, and a ticker thread (automatic heartbeats, resending
// results the coordinator could not take yet). Results wait in an outbox
// until acknowledged, so a broken connection loses none: they are sent again
// on the next connection (a duplicate is refused harmlessly).
#include "saga/worker/worker.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "saga/v1/saga.grpc.pb.h"

namespace saga::worker {
namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = saga::v1;

constexpr int kUnavailable = 14, kAborted = 10, kInternal = 13, kFailedPrecondition = 9,
              kNotFound = 5, kInvalidArgument = 3;
// RegisterWorker.ack_delay_ms: results' acks may ride the next pushed task
// (one write and one read fewer per task); a result waits at most this much
// longer in the outbox.
constexpr uint32_t kAckDelayMs = 20;

std::string DefaultIdentity() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace

class RunningContext : public TaskContext, public std::enable_shared_from_this<RunningContext> {
 public:
  RunningContext(Worker::Impl* w, TaskInfo info) : w_(w), info_(std::move(info)) {}
  const TaskInfo& info() const override { return info_; }
  bool Heartbeat() override;
  bool Cancelled() const override { return cancelled_.load(); }
  void Cancel() { cancelled_ = true; }

 private:
  Worker::Impl* w_;
  TaskInfo info_;
  std::atomic<bool> cancelled_{false};
};

class Stream;

struct Worker::Impl {
  WorkerOptions opts;
  std::map<std::string, Handler> handlers;

  mutable std::mutex mu;
  // Four condition variables on `mu`, so that an event wakes only the
  // threads that wait for it (one condition variable for all of them woke
  // every handler thread on every task pushed, result sent and ack read).
  // Results and acks wake `cv` only while stopping, when Shutdown waits.
  mutable std::condition_variable cv;        // connected, shut; stopping: running tasks, outbox
  // Handler threads wait on a slot each (a task queued, closing): a task
  // wakes the one that went idle last, still warm in the CPU's caches,
  // where a shared condition variable wakes the one idle longest.
  struct HandlerSlot {
    std::condition_variable cv;
    bool woken = false;
  };
  std::vector<std::unique_ptr<HandlerSlot>> handler_slots;  // one per handler thread
  std::vector<HandlerSlot*> idle_handlers;                  // the last to go idle at the back
  std::condition_variable conn_cv;           // the connection thread: stream ended, closing
  std::condition_variable ticker_cv;         // the ticker: an earlier deadline, closing
  Clock::time_point ticker_wake = Clock::time_point::max();  // when the ticker next looks

  // Tasks pushed and not finished: queued or running.
  struct Running {
    std::shared_ptr<RunningContext> ctx;
    Clock::time_point next_heartbeat;
    std::chrono::milliseconds heartbeat_every{0};
    bool abandoned = false;  // given back at shutdown: its result is dropped
  };
  std::map<std::string, Running> running;
  std::deque<std::string> queue;  // tokens waiting for a handler thread

  // Messages waiting for an ack (request id -> message).
  struct Pending {
    v1::WorkerMessage msg;
    bool durable = true;  // results: kept across reconnects; heartbeats: dropped
    std::optional<Clock::time_point> resend_at;
    std::function<void(const v1::WorkerAck&)> on_ack;
  };
  std::map<uint64_t, Pending> outbox;
  uint64_t next_request = 1;

  // The connection.
  std::shared_ptr<grpc::ClientContext> call_ctx;
  std::shared_ptr<Stream> stream;  // while connected
  bool connected = false;
  bool stream_done = false;        // the current call ended (stream_status)
  grpc::Status stream_status;
  bool credit_on_results = false;  // the current stream's coordinator grants results' credits
  uint64_t generation = 0;  // bumped per connection

  bool started = false, stopping = false, closing = false, shut = false;
  WorkerStats stats;
  std::thread conn_thread, ticker_thread;
  std::vector<std::thread> handler_threads;
  std::shared_ptr<grpc::Channel> channel;
  std::mt19937_64 rng{std::random_device{}()};

  // Queues `m` on the current stream; false when not connected.
  bool WriteNow(const v1::WorkerMessage& m);
  // The stream's reactions (on gRPC's threads).
  void OnRegistered(const std::shared_ptr<Stream>& s, const v1::WorkerRegistered& r);
  void OnStreamDone(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> g(mu);
      stream_done = true;
      stream_status = status;
    }
    conn_cv.notify_all();
  }

  // Queues a request (its id is filled in) and sends it if connected.
  uint64_t Send(v1::WorkerMessage m, bool durable, std::function<void(const v1::WorkerAck&)> on_ack) {
    uint64_t id;
    {
      std::lock_guard<std::mutex> g(mu);
      id = next_request++;
      switch (m.message_case()) {
        case v1::WorkerMessage::kComplete: m.mutable_complete()->set_request_id(id); break;
        case v1::WorkerMessage::kFail: m.mutable_fail()->set_request_id(id); break;
        case v1::WorkerMessage::kHeartbeat: m.mutable_heartbeat()->set_request_id(id); break;
        case v1::WorkerMessage::kRelease: m.mutable_release()->set_request_id(id); break;
        default: break;
      }
      if (!durable && !connected) return 0;
      outbox[id] = Pending{m, durable, std::nullopt, std::move(on_ack)};
    }
    WriteNow(m);
    return id;
  }

  // The credit a result carries (CompleteTask.credit): none while stopping.
  int ResultCredit() {
    std::lock_guard<std::mutex> g(mu);
    return stopping ? 0 : 1;
  }
  // After a result's ack: the coordinator granted its credit itself when it
  // said it would (WorkerRegistered.credit_on_results; the ack came on that
  // same stream) and the result is settled; otherwise this grants it.
  void CreditAfter(const v1::WorkerAck& a, int carried) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (carried > 0 && credit_on_results &&
          (a.code() == 0 || a.code() == kFailedPrecondition || a.code() == kNotFound)) {
        return;
      }
    }
    GrantCredit();
  }

  void GrantCredit() {
    {
      std::lock_guard<std::mutex> g(mu);
      if (stopping) return;
    }
    v1::WorkerMessage m;
    m.mutable_credit()->set_tasks(1);
    WriteNow(m);
  }

  void OnAck(const v1::WorkerAck& a) {
    std::function<void(const v1::WorkerAck&)> cb;
    bool wake = false;
    {
      std::lock_guard<std::mutex> g(mu);
      auto it = outbox.find(a.request_id());
      if (it == outbox.end()) return;
      if (it->second.durable && (a.code() == kUnavailable || a.code() == kAborted ||
                                 a.code() == kInternal)) {
        // The coordinator could not store it now (database down): again soon.
        it->second.resend_at = Clock::now() + std::chrono::milliseconds(200);
        if (*it->second.resend_at < ticker_wake) ticker_cv.notify_one();
        return;
      }
      cb = std::move(it->second.on_ack);
      outbox.erase(it);
      wake = stopping;  // Shutdown waits for the outbox to drain
    }
    if (cb) cb(a);
    if (wake) cv.notify_all();
  }

  void OnTask(const v1::PushedTask& p) {
    TaskInfo info;
    info.received = std::chrono::system_clock::now();
    info.task_token = p.task_token();
    info.activity = p.activity();
    info.input = p.input();
    info.execution_arn = p.execution_arn();
    info.state_name = p.state_name();
    info.attempt = p.attempt();
    info.idempotency_key = p.idempotency_key();
    if (p.deadline_unix_ms() > 0) {
      info.deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(p.deadline_unix_ms()));
    }
    if (p.heartbeat_seconds() > 0) info.heartbeat_interval = std::chrono::seconds(p.heartbeat_seconds());
    auto from_unix_us = [](int64_t us) {
      return std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(us)));
    };
    info.scheduled = from_unix_us(p.scheduled_unix_us());
    info.sent = from_unix_us(p.sent_unix_us());
    info.traceparent = p.traceparent();
    info.callback = p.callback();
    info.compensation = p.compensation();
    info.compensated_state = p.compensated_state();
    info.compensated_idempotency_key = p.compensated_idempotency_key();
    bool give_back = false;
    HandlerSlot* wake = nullptr;
    {
      std::lock_guard<std::mutex> g(mu);
      if (running.count(info.task_token)) {
        // Delivered again (given back when a stream broke) while its handler
        // still runs here: that handler's result completes it.
        return;
      }
      if (stopping) {
        give_back = true;
      } else {
        Running r;
        r.ctx = std::make_shared<RunningContext>(this, info);
        r.heartbeat_every = info.heartbeat_interval
                                ? std::chrono::duration_cast<std::chrono::milliseconds>(*info.heartbeat_interval) / 3
                                : opts.cancel_check_interval;
        if (r.heartbeat_every < std::chrono::milliseconds(100)) r.heartbeat_every = std::chrono::milliseconds(100);
        r.next_heartbeat = Clock::now() + r.heartbeat_every;
        if (r.next_heartbeat < ticker_wake) ticker_cv.notify_one();
        running[info.task_token] = std::move(r);
        queue.push_back(info.task_token);
        ++stats.tasks_started;
        if (!idle_handlers.empty()) {
          wake = idle_handlers.back();
          idle_handlers.pop_back();
          wake->woken = true;
        }
      }
    }
    if (give_back) {
      Release(info.task_token);
      return;
    }
    if (wake) wake->cv.notify_one();  // slots live as long as the worker
  }

  void Release(const std::string& token) {
    v1::WorkerMessage m;
    m.mutable_release()->set_task_token(token);
    Send(m, true, [this](const v1::WorkerAck& a) {
      std::lock_guard<std::mutex> g(mu);
      if (a.code() == 0) ++stats.tasks_released;
    });
  }

  void Finish(const std::string& token, const Result& r) {
    {
      std::lock_guard<std::mutex> g(mu);
      auto it = running.find(token);
      if (it == running.end()) return;
      const bool abandoned = it->second.abandoned;
      running.erase(it);
      if (stopping) cv.notify_all();  // Shutdown waits for the handlers
      if (abandoned) return;  // given back already
    }
    v1::WorkerMessage m;
    const bool ok = r.ok();
    const int credit = ResultCredit();
    if (ok) {
      m.mutable_complete()->set_task_token(token);
      m.mutable_complete()->set_output(r.output().empty() ? "null" : r.output());
      m.mutable_complete()->set_credit(credit);
    } else {
      m.mutable_fail()->set_task_token(token);
      // Empty: left out (TaskError has no way to say "empty" apart from none).
      const TaskError& e = r.error();
      if (!e.error.empty() || e.send_empty_error) m.mutable_fail()->set_error(e.error);
      if (!e.cause.empty() || e.send_empty_cause) m.mutable_fail()->set_cause(e.cause);
      m.mutable_fail()->set_credit(credit);
    }
    Send(m, true, [this, ok, token, credit](const v1::WorkerAck& a) {
      if (ok && a.code() == kInvalidArgument) {
        // The output was refused (not JSON, too large): fail the task with
        // the reason instead, so the state's Catch can see it.
        v1::WorkerMessage f;
        f.mutable_fail()->set_task_token(token);
        f.mutable_fail()->set_error("Saga.InvalidOutput");
        f.mutable_fail()->set_cause(a.message());
        const int fail_credit = ResultCredit();
        f.mutable_fail()->set_credit(fail_credit);
        Send(f, true, [this, fail_credit](const v1::WorkerAck& fa) {
          {
            std::lock_guard<std::mutex> g(mu);
            ++(fa.code() == 0 ? stats.tasks_failed : stats.results_refused);
          }
          CreditAfter(fa, fail_credit);
        });
        return;
      }
      {
        std::lock_guard<std::mutex> g(mu);
        if (a.code() == 0) {
          ++(ok ? stats.tasks_succeeded : stats.tasks_failed);
        } else {
          ++stats.results_refused;
        }
      }
      // Only now: the coordinator counts the task as held until it took the
      // result, and caps credits at max_concurrency minus tasks held.
      CreditAfter(a, credit);
    });
  }

  void HandlerLoop(HandlerSlot& slot) {
    while (true) {
      std::string token;
      std::shared_ptr<RunningContext> ctx;
      {
        std::unique_lock<std::mutex> lock(mu);
        while (!closing && queue.empty()) {
          slot.woken = false;
          idle_handlers.push_back(&slot);
          slot.cv.wait(lock, [&] { return slot.woken || closing; });
          if (!slot.woken) std::erase(idle_handlers, &slot);  // closing
        }
        if (queue.empty()) return;
        token = queue.front();
        queue.pop_front();
        auto it = running.find(token);
        if (it == running.end() || it->second.abandoned) continue;
        ctx = it->second.ctx;
      }
      Result result = TaskError{"Saga.WorkerError", "no handler"};
      auto h = handlers.find(ctx->info().activity);
      if (h == handlers.end()) {
        result = TaskError{"Saga.NoHandler",
                           "worker has no handler for activity '" + ctx->info().activity + "'"};
      } else {
        try {
          result = h->second(*ctx);
        } catch (const std::exception& e) {
          result = TaskError{"Saga.HandlerException", e.what()};
        } catch (...) {
          result = TaskError{"Saga.HandlerException", "unknown exception"};
        }
      }
      Finish(token, result);
    }
  }

  bool SendHeartbeat(const std::shared_ptr<RunningContext>& ctx) {
    v1::WorkerMessage m;
    m.mutable_heartbeat()->set_task_token(ctx->info().task_token);
    std::weak_ptr<RunningContext> weak = ctx;
    uint64_t id = Send(m, false, [weak](const v1::WorkerAck& a) {
      if (auto c = weak.lock(); c && (a.cancelled() || a.code() == kFailedPrecondition ||
                                      a.code() == kNotFound)) {
        c->Cancel();
      }
    });
    return id != 0;
  }

  void TickerLoop() {
    std::unique_lock<std::mutex> lock(mu);
    while (!closing) {
      const auto now = Clock::now();
      auto next = now + std::chrono::seconds(1);
      std::vector<std::shared_ptr<RunningContext>> beat;
      for (auto& [token, r] : running) {
        if (r.abandoned) continue;
        if (r.next_heartbeat <= now) {
          beat.push_back(r.ctx);
          r.next_heartbeat = now + r.heartbeat_every;
        }
        next = std::min(next, r.next_heartbeat);
      }
      std::vector<v1::WorkerMessage> resend;
      for (auto& [id, p] : outbox) {
        if (!p.resend_at) continue;
        if (*p.resend_at <= now) {
          p.resend_at.reset();
          resend.push_back(p.msg);
        } else {
          next = std::min(next, *p.resend_at);
        }
      }
      if (!beat.empty() || !resend.empty()) {
        lock.unlock();
        for (auto& c : beat) SendHeartbeat(c);
        for (auto& m : resend) WriteNow(m);
        lock.lock();
        continue;
      }
      ticker_wake = next;
      ticker_cv.wait_until(lock, next);
      ticker_wake = Clock::time_point::max();  // looking now: nobody need wake it
    }
  }

  void StartStream(const std::shared_ptr<Stream>& s, v1::SagaCoordinator::Stub* stub,
                   grpc::ClientContext* ctx, v1::WorkerMessage reg);

  std::chrono::milliseconds Jittered(std::chrono::milliseconds backoff) {
    // Uniform in [backoff/2, backoff].
    std::lock_guard<std::mutex> g(mu);
    std::uniform_int_distribution<int64_t> d(backoff.count() / 2, backoff.count());
    return std::chrono::milliseconds(d(rng));
  }

  // Waits until the channel is connected; false once closing. The retries
  // run on this loop's own jittered backoff: after each wait the channel's
  // backoff is reset, which makes gRPC try again at once. (Left to gRPC
  // 1.51's own retry timer, a reconnection after a coordinator restart
  // sometimes came ~1 s late, seen with GRPC_TRACE=subchannel.) Waiting in
  // WaitForConnected also polls the connection attempt.
  bool Connect() {
    auto backoff = opts.reconnect_min;
    while (true) {
      if (channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) return true;
      const auto until = std::chrono::steady_clock::now() + Jittered(backoff);
      while (std::chrono::steady_clock::now() < until) {
        {
          std::lock_guard<std::mutex> g(mu);
          if (closing) return false;
        }
        // In slices, so that Shutdown is not kept waiting.
        const auto slice = std::min<std::chrono::steady_clock::duration>(
            until - std::chrono::steady_clock::now(), std::chrono::milliseconds(100));
        if (channel->WaitForConnected(std::chrono::system_clock::now() + slice)) return true;
      }
      grpc::experimental::ChannelResetConnectionBackoff(channel.get());
      backoff = std::min(opts.reconnect_max, backoff * 2);
    }
  }

  void ConnectionLoop() {
    auto backoff = opts.reconnect_min;
    while (true) {
      {
        std::lock_guard<std::mutex> g(mu);
        if (closing) return;
      }
      if (!Connect()) return;
      auto ctx = std::make_shared<grpc::ClientContext>();
      // Should the connection drop again right now: wait for the next one
      // (polling it) rather than fail at once, when a connection made is
      // only noticed by gRPC's backup poller, up to 5 s later.
      ctx->set_wait_for_ready(true);
      {
        // Set before the call starts (it waits until connected), so that
        // Shutdown's TryCancel ends that wait too.
        std::lock_guard<std::mutex> g(mu);
        if (closing) return;
        call_ctx = ctx;
      }
      auto stub = v1::SagaCoordinator::NewStub(channel);
      uint64_t generation_before;
      v1::WorkerMessage reg;
      reg.mutable_register_()->set_identity(opts.identity);
      for (const auto& [a, h] : handlers) reg.mutable_register_()->add_activities(a);
      reg.mutable_register_()->set_max_concurrency(opts.concurrency);
      reg.mutable_register_()->set_ack_delay_ms(kAckDelayMs);
      {
        std::lock_guard<std::mutex> g(mu);
        int busy = static_cast<int>(running.size());
        reg.mutable_register_()->set_initial_credits(stopping ? 0 : std::max(0, opts.concurrency - busy));
        // Held: tasks running here, and those whose result waits to be sent.
        for (const auto& [token, r] : running) {
          if (!r.abandoned) reg.mutable_register_()->add_held_task_tokens(token);
        }
        for (const auto& [id, p] : outbox) {
          if (p.msg.has_complete()) reg.mutable_register_()->add_held_task_tokens(p.msg.complete().task_token());
          if (p.msg.has_fail()) reg.mutable_register_()->add_held_task_tokens(p.msg.fail().task_token());
        }
        stream_done = false;
        generation_before = generation;
      }
      auto s = std::make_shared<Stream>(this);
      StartStream(s, stub.get(), ctx.get(), std::move(reg));
      grpc::Status st;
      bool registered;
      {
        std::unique_lock<std::mutex> lock(mu);
        conn_cv.wait(lock, [&] { return stream_done; });
        st = stream_status;
        registered = generation != generation_before;
        connected = false;
        stream.reset();  // reactions are over: nothing refers to it any more
      }
      s.reset();
      if (registered) backoff = opts.reconnect_min;
      if (!registered && st.error_code() != grpc::StatusCode::UNAVAILABLE &&
          st.error_code() != grpc::StatusCode::CANCELLED) {
        // A refused registration (e.g. a bad activity name) will not fix
        // itself; say why, then keep trying at the slowest pace.
        fprintf(stderr, "saga worker %s: registration refused: %s\n", opts.identity.c_str(),
                st.error_message().c_str());
        backoff = opts.reconnect_max;
      }
      {
        std::lock_guard<std::mutex> g(mu);
        call_ctx.reset();
        // Heartbeats of the broken connection will never be answered.
        for (auto it = outbox.begin(); it != outbox.end();) {
          it = it->second.durable ? std::next(it) : outbox.erase(it);
        }
        if (closing) return;
      }
      cv.notify_all();
      // Jittered exponential backoff between streams (a refused
      // registration, a stream broken right after it was made).
      const std::chrono::milliseconds wait = Jittered(backoff);
      backoff = std::min(opts.reconnect_max, backoff * 2);
      std::unique_lock<std::mutex> lock(mu);
      conn_cv.wait_for(lock, wait, [&] { return closing; });
    }
  }
};

// One call of WorkerStream. Reads run on gRPC's threads: the first must be
// `registered`, then pushed tasks and acks go to the worker as they come.
// Writes are queued and go out one at a time, those with more queued behind
// them buffered, so that a burst of results leaves in few packets. A hold
// keeps the call from ending while another thread may still start a write;
// it is dropped once the input has ended (writes are refused from then on).
class Stream final : public grpc::ClientBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  explicit Stream(Worker::Impl* w) : w_(w) {}

  void Begin(const std::shared_ptr<Stream>& self, v1::SagaCoordinator::Stub* stub,
             grpc::ClientContext* ctx, v1::WorkerMessage reg) {
    self_ = self;
    ctx_ = ctx;
    stub->async()->WorkerStream(ctx, this);
    AddHold();
    Send(std::move(reg));
    StartRead(&in_);
    StartCall();
  }

  // False once the stream cannot take it (ended or broken).
  bool Send(v1::WorkerMessage m) {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return false;
    if (writing_) {
      out_.push_back(std::move(m));
      return true;
    }
    writing_ = true;
    current_ = std::move(m);
    lock.unlock();  // the reaction may run inline and takes the lock
    StartWrite(&current_);
    return true;
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (ok && !out_.empty() && !closed_) {
      current_ = std::move(out_.front());
      out_.pop_front();
      const bool more = !out_.empty();
      lock.unlock();
      StartWrite(&current_, more ? grpc::WriteOptions().set_buffer_hint() : grpc::WriteOptions());
      return;
    }
    if (!ok) {
      closed_ = true;  // broken: what is queued is resent on the next stream (outbox)
      out_.clear();
    }
    writing_ = false;
    const bool release = closed_ && hold_;
    if (release) hold_ = false;
    lock.unlock();
    if (release) RemoveHold();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      EndInput();
      return;
    }
    if (!registered_) {
      if (!in_.has_registered()) {  // not a coordinator we can talk to
        ctx_->TryCancel();
        EndInput();
        return;
      }
      registered_ = true;
      w_->OnRegistered(self_, in_.registered());
    } else if (in_.has_task()) {
      w_->OnTask(in_.task());
    } else if (in_.has_ack()) {
      w_->OnAck(in_.ack());
    }
    // Results' acks the coordinator held back (ack_delay_ms), after the
    // task they may ride with: its handler starts first.
    for (const v1::WorkerAck& a : in_.acks()) w_->OnAck(a);
    in_.Clear();
    StartRead(&in_);
  }

  void OnDone(const grpc::Status& status) override {
    self_.reset();  // the connection thread holds it until it has seen the end
    w_->OnStreamDone(status);  // last: the stream may be destroyed from here on
  }

 private:
  // No more writes from here on; the hold goes once none is in flight (a
  // Send between its check and StartWrite counts as one).
  void EndInput() {
    bool release;
    {
      std::lock_guard<std::mutex> g(mu_);
      closed_ = true;
      out_.clear();
      release = hold_ && !writing_;
      if (release) hold_ = false;
    }
    if (release) RemoveHold();
  }

  Worker::Impl* const w_;
  std::shared_ptr<Stream> self_;  // kept alive until OnDone
  grpc::ClientContext* ctx_ = nullptr;
  v1::CoordinatorMessage in_;
  bool registered_ = false;
  std::mutex mu_;  // the outgoing queue
  bool writing_ = false;
  bool closed_ = false;
  bool hold_ = true;  // AddHold in Begin, not yet removed
  v1::WorkerMessage current_;
  std::deque<v1::WorkerMessage> out_;
};

bool Worker::Impl::WriteNow(const v1::WorkerMessage& m) {
  std::shared_ptr<Stream> s;
  {
    std::lock_guard<std::mutex> g(mu);
    if (!connected) return false;
    s = stream;
  }
  return s->Send(m);
}

void Worker::Impl::StartStream(const std::shared_ptr<Stream>& s, v1::SagaCoordinator::Stub* stub,
                               grpc::ClientContext* ctx, v1::WorkerMessage reg) {
  s->Begin(s, stub, ctx, std::move(reg));
}

void Worker::Impl::OnRegistered(const std::shared_ptr<Stream>& s, const v1::WorkerRegistered& r) {
  std::vector<v1::WorkerMessage> unacked;
  {
    std::lock_guard<std::mutex> g(mu);
    stream = s;
    connected = true;
    credit_on_results = r.credit_on_results();
    ++generation;
    ++stats.connections;
    for (auto& [id, p] : outbox) unacked.push_back(p.msg);
  }
  cv.notify_all();
  for (auto& m : unacked) s->Send(std::move(m));
}

bool RunningContext::Heartbeat() {
  if (Cancelled()) return false;
  return w_->SendHeartbeat(shared_from_this()) && !Cancelled();
}

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(options);
  if (impl_->opts.identity.empty()) impl_->opts.identity = DefaultIdentity();
  impl_->opts.concurrency = std::clamp(impl_->opts.concurrency, 1, 1000);
  using std::chrono::milliseconds;
  impl_->opts.keepalive_time = std::clamp(impl_->opts.keepalive_time, milliseconds(1000), milliseconds(3600000));
  impl_->opts.keepalive_timeout = std::clamp(impl_->opts.keepalive_timeout, milliseconds(1000), milliseconds(3600000));
}

Worker::~Worker() { Shutdown(std::chrono::milliseconds(0)); }

void Worker::Register(const std::string& activity, Handler handler) {
  impl_->handlers[activity] = std::move(handler);
}

void Worker::Start() {
  Impl& w = *impl_;
  {
    std::lock_guard<std::mutex> g(w.mu);
    if (w.started || w.closing) return;  // running, or shut down before it started
    w.started = true;
  }
  grpc::ChannelArguments args;
  // Keepalive pings go on however long the stream stays quiet: gRPC's
  // default stops them after two pings without data sent, and an idle
  // worker would then never notice a coordinator gone silently.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(w.opts.keepalive_time.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(w.opts.keepalive_timeout.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(w.opts.reconnect_min.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(w.opts.reconnect_max.count()));
  if (!w.opts.tls_server_name.empty()) args.SetSslTargetNameOverride(w.opts.tls_server_name);
  w.channel = grpc::CreateCustomChannel(
      w.opts.address, w.opts.credentials ? w.opts.credentials : grpc::InsecureChannelCredentials(),
      args);
  for (int i = 0; i < w.opts.concurrency; ++i) {
    w.handler_slots.push_back(std::make_unique<Impl::HandlerSlot>());
  }
  // Named for top -H and debuggers (at most 15 characters).
  for (int i = 0; i < w.opts.concurrency; ++i) {
    w.handler_threads.emplace_back([&w, slot = w.handler_slots[i].get()] {
      pthread_setname_np(pthread_self(), "saga-handler");
      w.HandlerLoop(*slot);
    });
  }
  w.ticker_thread = std::thread([&w] {
    pthread_setname_np(pthread_self(), "saga-ticker");
    w.TickerLoop();
  });
  w.conn_thread = std::thread([&w] {
    pthread_setname_np(pthread_self(), "saga-connect");
    w.ConnectionLoop();
  });
}

void Worker::Run() {
  Start();
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->shut; });
}

void Worker::Shutdown(std::chrono::milliseconds grace) {
  Impl& w = *impl_;
  {
    std::unique_lock<std::mutex> lock(w.mu);
    if (!w.started) {
      w.closing = w.shut = true;
      return;
    }
    if (w.stopping) {  // another thread is shutting down: wait for it
      w.cv.wait(lock, [&] { return w.shut; });
      return;
    }
    w.stopping = true;
    // Running handlers finish within the grace period...
    w.cv.wait_for(lock, grace, [&] { return w.running.empty(); });
  }
  // ...the others are given back and told to stop.
  std::vector<std::string> give_back;
  {
    std::lock_guard<std::mutex> g(w.mu);
    for (auto& [token, r] : w.running) {
      if (r.abandoned) continue;
      r.abandoned = true;
      r.ctx->Cancel();
      give_back.push_back(token);
    }
  }
  for (const auto& t : give_back) w.Release(t);
  {
    // Results and give-backs reach the coordinator if it is reachable.
    std::unique_lock<std::mutex> lock(w.mu);
    w.cv.wait_for(lock, std::chrono::seconds(2), [&] {
      if (!w.connected) return true;
      for (const auto& [id, p] : w.outbox) {
        if (p.durable) return false;
      }
      return true;
    });
    w.closing = true;
    if (w.call_ctx) w.call_ctx->TryCancel();
  }
  w.cv.notify_all();
  w.conn_cv.notify_all();
  for (auto& slot : w.handler_slots) slot->cv.notify_all();
  w.ticker_cv.notify_all();
  if (w.conn_thread.joinable()) w.conn_thread.join();
  if (w.ticker_thread.joinable()) w.ticker_thread.join();
  for (auto& t : w.handler_threads) {
    if (t.joinable()) t.join();
  }
  {
    std::lock_guard<std::mutex> g(w.mu);
    w.shut = true;
  }
  w.cv.notify_all();
}

bool Worker::connected() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->connected;
}

bool Worker::WaitConnected(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->connected; });
}

WorkerStats Worker::stats() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->stats;
}

}  // namespace saga::worker
