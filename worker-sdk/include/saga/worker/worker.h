// A Saga Coordinator worker: serves activities (Task Resources) over one
// streaming connection, with the coordinator pushing tasks as they become
// runnable and `concurrency` as the flow-control window.
//
//   saga::worker::Worker w({.address = "127.0.0.1:7233", .identity = "payments-1"});
//   w.Register("payments.charge", [](saga::worker::TaskContext& ctx) -> saga::worker::Result {
//     if (!Charge(ctx.input(), ctx.idempotency_key())) return saga::worker::TaskError{"Payment.Declined", "card"};
//     return R"({"charged": true})";
//   });
//   w.Run();  // until Shutdown() (e.g. from a signal handler thread)
//
// The worker reconnects with jittered exponential backoff when the
// coordinator is unreachable, keeps running handlers across reconnects and
// delivers their results on the next connection. Shutdown stops taking
// tasks, lets running handlers finish up to a grace period, then gives the
// rest back to the coordinator (delivered again as the same attempt).
//
// Thread safety: Register before Start; everything else from any thread.
#ifndef SAGA_WORKER_WORKER_H_
#define SAGA_WORKER_WORKER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "saga/worker/task.h"

namespace grpc {
class ChannelCredentials;
}

namespace saga::worker {

struct WorkerOptions {
  std::string address = "127.0.0.1:7233";
  std::string identity;  // default: hostname:pid
  int concurrency = 8;   // handlers running at once (1 to 1000)
  // Channel credentials (TLS, e.g. grpc::SslCredentials); default insecure.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // With TLS: the name the coordinator's certificate must carry when the
  // address does not (an IP address, a port-forward); empty: the address's host.
  std::string tls_server_name;
  // Heartbeats for tasks without HeartbeatSeconds, only to learn early that
  // a task was cancelled.
  std::chrono::milliseconds cancel_check_interval{5000};
  std::chrono::milliseconds reconnect_min{100}, reconnect_max{5000};
  // Pings the coordinator after `keepalive_time` without traffic, also while
  // no task comes for a long time, and reconnects when a ping is not
  // answered within `keepalive_timeout`: a coordinator whose host vanished
  // without closing the connection is noticed. At least 1 s (the
  // coordinator refuses pings more frequent than every 0.5 s).
  std::chrono::milliseconds keepalive_time{10000}, keepalive_timeout{5000};
};

using Handler = std::function<Result(TaskContext&)>;

struct WorkerStats {
  uint64_t tasks_started = 0;
  uint64_t tasks_succeeded = 0;   // results the coordinator accepted
  uint64_t tasks_failed = 0;      // TaskErrors the coordinator accepted
  uint64_t results_refused = 0;   // stale results (task timed out, was retried, ...)
  uint64_t tasks_released = 0;    // given back at shutdown
  uint64_t connections = 0;       // successful registrations so far
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  ~Worker();  // Shutdown(0) if still running
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // One handler per activity; before Start.
  void Register(const std::string& activity, Handler handler);

  // Starts the connection and handler threads; returns at once.
  void Start();
  // Start() and block until Shutdown() finished.
  void Run();
  // Stops taking tasks, waits up to `grace` for running handlers, gives the
  // rest back (their handlers see Cancelled()) and closes the connection.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::seconds(10));

  // Whether the worker is registered with a coordinator right now.
  bool connected() const;
  // Blocks until connected or the timeout passes.
  bool WaitConnected(std::chrono::milliseconds timeout) const;
  WorkerStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace saga::worker

#endif  // SAGA_WORKER_WORKER_H_
