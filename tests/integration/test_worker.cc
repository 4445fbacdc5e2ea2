// saga-test-worker: an SDK worker in a process of its own, for tests that
// kill workers. Serves one activity:
//   saga-test-worker --address HOST:PORT --activity A --identity ID --mode echo|hang
// Prints "START <idempotency key> <attempt>" (flushed) when a handler starts;
// echo answers {"echo": input, "worker": ID}; hang runs until cancelled.
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "saga/worker/worker.h"

int main(int argc, char** argv) {
  saga::worker::WorkerOptions o;
  std::string activity, mode = "echo";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--address") o.address = v;
    else if (k == "--activity") activity = v;
    else if (k == "--identity") o.identity = v;
    else if (k == "--mode") mode = v;
    else {
      std::cerr << "saga-test-worker: unknown flag " << k << "\n";
      return 2;
    }
  }
  if (activity.empty()) {
    std::cerr << "saga-test-worker: --activity is required\n";
    return 2;
  }
  o.cancel_check_interval = std::chrono::milliseconds(200);
  saga::worker::Worker w(o);
  const std::string id = o.identity;
  w.Register(activity, [&](saga::worker::TaskContext& ctx) -> saga::worker::Result {
    std::cout << "START " << ctx.idempotency_key() << " " << ctx.attempt() << std::endl;
    if (mode == "hang") {
      while (!ctx.Cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return saga::worker::TaskError{"Test.Cancelled", "hang worker was cancelled"};
    }
    return "{\"echo\":" + ctx.input() + ",\"worker\":\"" + id + "\"}";
  });
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&set, &sig);
    w.Shutdown(std::chrono::seconds(2));
  });
  w.Run();
  stopper.join();
}
