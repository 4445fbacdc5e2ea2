#include "coordinator/api/callback_threads.h"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <grpc/support/cpu.h>
#include <grpcpp/grpcpp.h>

#include "saga/v1/saga.grpc.pb.h"

namespace saga::api {

namespace v1 = saga::v1;

// A call that fails at once (its deadline has passed): its reaction runs on
// one of gRPC's callback threads, and holds that thread.
struct CallbackThreadLimit::Call {
  grpc::ClientContext ctx;
  v1::ListStateMachinesRequest req;
  v1::ListStateMachinesResponse resp;
};

int CallbackThreadLimit::CountThreads(const std::string& name) {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string comm;
    if (std::getline(f, comm) && comm == name) ++n;
  }
  closedir(d);
  return n;
}

std::unique_ptr<CallbackThreadLimit> CallbackThreadLimit::Apply(int keep) {
  std::unique_ptr<CallbackThreadLimit> limit(new CallbackThreadLimit);
  // gRPC 1.51 starts Clamp(cores / 2, 2, 16) of them with the server, and
  // each names itself once it runs: wait (2 s at most) until that many have
  // their name, so that none starting late is left out and wakes with the
  // one kept. Should a gRPC version start fewer, those found after the wait
  // are counted; holding never takes more than there are less `keep`.
  const int expected = std::clamp(static_cast<int>(gpr_cpu_num_cores()) / 2, 2, 16);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while ((limit->threads_ = CountThreads("nexting_thread")) < expected &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polled: nothing signals a start
  }
  const int hold = limit->threads_ - std::max(1, keep);
  if (hold <= 0) return limit;
  // Nothing listens on the path; the deadline fails each call before it
  // would try to connect.
  auto channel = grpc::CreateChannel("unix:/nonexistent/saga-callback-thread-limit",
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::SagaCoordinator::NewStub(channel);
  limit->channel_ = channel;
  CallbackThreadLimit* self = limit.get();
  for (int i = 0; i < hold; ++i) {
    auto call = std::make_unique<Call>();
    call->ctx.set_deadline(std::chrono::system_clock::now());
    stub->async()->ListStateMachines(&call->ctx, &call->req, &call->resp, [self](grpc::Status) {
      std::unique_lock<std::mutex> lock(self->mu_);
      ++self->held_;
      self->cv_.notify_all();
      self->cv_.wait(lock, [self] { return self->lifted_; });
      ++self->released_;
      self->cv_.notify_all();
    });
    limit->calls_.push_back(std::move(call));
  }
  std::unique_lock<std::mutex> lock(limit->mu_);
  limit->cv_.wait_for(lock, std::chrono::seconds(2), [&] { return limit->held_ == hold; });
  return limit;
}

int CallbackThreadLimit::held() const {
  std::lock_guard<std::mutex> g(mu_);
  return held_ - released_;
}

CallbackThreadLimit::~CallbackThreadLimit() {
  std::unique_lock<std::mutex> lock(mu_);
  lifted_ = true;
  cv_.notify_all();
  // Every reaction has run (or runs now that the threads are free) and
  // returned before the calls and this object go.
  const int started = static_cast<int>(calls_.size());
  cv_.wait(lock, [&] { return released_ == started; });
}

}  // namespace saga::api
