// How many of gRPC's callback threads take work in this process.
//
// gRPC 1.51 runs callback-API reactions (our StartExecution, the worker
// streams' reads and writes) on its own threads, max(2, cores / 2) of them
// ("nexting_thread"), and it has no setting for how many. With its epoll1
// poller, the thread that wakes for an event hands polling over to another
// idle one before it runs the reaction: at moderate load every event wakes
// two threads. On a small machine one thread is enough for reactions that
// never block (ours hand blocking work to threads of their own), and it
// halves those wake-ups (README, "Where the time goes at half load").
//
// CallbackThreadLimit holds the others idle: each is given a reaction that
// waits until the limit is lifted. It counts the threads by name in
// /proc/self/task, so it never holds more than there are less `keep`.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace saga::api {

class CallbackThreadLimit {
 public:
  // Leaves `keep` (at least 1) of gRPC's callback threads taking work and
  // holds the rest; call once the server has started (its threads exist).
  // Returns once they are held, or after 2 s with those held by then.
  static std::unique_ptr<CallbackThreadLimit> Apply(int keep);
  // Lets the held threads go back to work and waits until they have.
  ~CallbackThreadLimit();
  CallbackThreadLimit(const CallbackThreadLimit&) = delete;
  CallbackThreadLimit& operator=(const CallbackThreadLimit&) = delete;

  int threads() const { return threads_; }  // callback threads found
  int held() const;                          // of them held

 private:
  CallbackThreadLimit() = default;
  // The threads of this process named `name` (Linux: /proc/self/task).
  static int CountThreads(const std::string& name);
  struct Call;
  int threads_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int held_ = 0, released_ = 0;
  bool lifted_ = false;
  std::shared_ptr<void> channel_;  // grpc::Channel, kept out of this header
  std::vector<std::unique_ptr<Call>> calls_;
};

}  // namespace saga::api
