#include "examples/order/common.h"

#include <grpcpp/security/credentials.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "coordinator/common/pem_file.h"

namespace order_example {
namespace {

constexpr std::chrono::seconds kShutdownGrace(5);

std::string Usage(std::string_view service) {
  std::string u =
      "usage: order-" + std::string(service) +
      " [--address HOST:PORT] [--identity NAME] [--concurrency N]\n"
      "       [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]\n"
      "  --address      the coordinator (default $SAGA_ADDRESS, else 127.0.0.1:7233)\n"
      "  --identity     worker name shown by the coordinator (default order-" +
      std::string(service) +
      ":PID)\n"
      "  --concurrency  tasks handled at once (default 8)\n"
      "  --tls-ca       connect over TLS, trusting these PEM CA certificates\n"
      "                 (default $SAGA_TLS_CA)\n"
      "  --tls-cert, --tls-key  present this client certificate (mutual TLS; default\n"
      "                 $SAGA_TLS_CLIENT_CERT, $SAGA_TLS_CLIENT_KEY)\n"
      "  --tls-server-name  the name in the coordinator's certificate when the address\n"
      "                 does not carry it (default $SAGA_TLS_SERVER_NAME)\n"
      "SIGINT or SIGTERM: stop taking tasks, finish running ones (up to 5 s), exit 0.\n";
  return u;
}

std::string EnvOr(const char* name, std::string fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// The --tls-* flags (or their variables), each with where it came from.
struct TlsFlags {
  std::optional<saga::PemSource> ca, cert, key, server_name;
  std::optional<saga::PemSource>* Find(const std::string& flag) {
    return flag == "--tls-ca"            ? &ca
           : flag == "--tls-cert"        ? &cert
           : flag == "--tls-key"         ? &key
           : flag == "--tls-server-name" ? &server_name
                                         : nullptr;
  }
};

std::optional<saga::PemSource> FromEnv(const char* name) {
  std::string v = EnvOr(name);
  if (v.empty()) return std::nullopt;
  return saga::PemSource{v, name};
}

// TLS credentials from `tls`; plaintext when none is given. False with a
// message naming the flag (or variable).
bool SetCredentials(std::string_view service, const TlsFlags& tls, saga::worker::WorkerOptions* o) {
  if (tls.server_name) o->tls_server_name = tls.server_name->path;
  if (!tls.ca && !tls.cert && !tls.key && !tls.server_name) return true;  // plaintext
  auto pem = saga::ReadClientTlsPem(tls.ca, tls.cert, tls.key);
  if (!pem.ok()) {
    std::fprintf(stderr, "order-%.*s: %s\n", static_cast<int>(service.size()), service.data(),
                 std::string(pem.status().message()).c_str());
    return false;
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = std::move(pem->roots);
  ssl.pem_cert_chain = std::move(pem->cert_chain);
  ssl.pem_private_key = std::move(pem->private_key);
  o->credentials = grpc::SslCredentials(ssl);
  return true;
}

// Parses --flag VALUE and --flag=VALUE; false (with a message) on bad flags.
bool ParseFlags(int argc, char** argv, std::string_view service, saga::worker::WorkerOptions* o,
                bool* help) {
  o->address = EnvOr("SAGA_ADDRESS", "127.0.0.1:7233");
  TlsFlags tls{FromEnv("SAGA_TLS_CA"), FromEnv("SAGA_TLS_CLIENT_CERT"),
               FromEnv("SAGA_TLS_CLIENT_KEY"), FromEnv("SAGA_TLS_SERVER_NAME")};
  o->identity = "order-" + std::string(service) + ":" + std::to_string(getpid());
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return true;
    }
    std::string flag = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (flag != "--address" && flag != "--identity" && flag != "--concurrency" &&
        tls.Find(flag) == nullptr) {
      std::fprintf(stderr, "order-%.*s: unknown argument '%s'\n", static_cast<int>(service.size()),
                   service.data(), arg.c_str());
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "order-%.*s: flag '%s' needs a value\n",
                     static_cast<int>(service.size()), service.data(), flag.c_str());
        return false;
      }
      value = argv[++i];
    }
    if (auto* t = tls.Find(flag)) {
      *t = saga::PemSource{value, flag};
    } else if (flag == "--address") {
      o->address = value;
    } else if (flag == "--identity") {
      o->identity = value;
    } else {
      char* end = nullptr;
      long n = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 1 || n > 1000) {
        std::fprintf(stderr, "order-%.*s: --concurrency: must be an integer from 1 to 1000, not '%s'\n",
                     static_cast<int>(service.size()), service.data(), value.c_str());
        return false;
      }
      o->concurrency = static_cast<int>(n);
    }
    if (value.empty()) {
      std::fprintf(stderr, "order-%.*s: flag '%s' needs a value\n", static_cast<int>(service.size()),
                   service.data(), flag.c_str());
      return false;
    }
  }
  return SetCredentials(service, tls, o);
}

}  // namespace

int RunService(int argc, char** argv, std::string_view service, Handlers handlers) {
  saga::worker::WorkerOptions options;
  bool help = false;
  if (!ParseFlags(argc, argv, service, &options, &help)) {
    std::fputs(Usage(service).c_str(), stderr);
    return 2;
  }
  if (help) {
    std::fputs(Usage(service).c_str(), stdout);
    return 0;
  }

  // Block the stop signals in every thread (the worker's and gRPC's threads
  // inherit this mask); one thread takes them with sigwait, so no work ever
  // runs in a signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::string activities;
  saga::worker::Worker worker(options);
  for (auto& [activity, handler] : handlers) {
    activities += (activities.empty() ? "" : ", ") + activity;
    worker.Register(activity, std::move(handler));
  }
  worker.Start();
  Log(service, "serving " + activities + " for " + options.address + " as " + options.identity);

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    Log(service, std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
                     ": stopping (running tasks get up to 5 s)");
    {
      std::lock_guard<std::mutex> g(mu);
      stop = true;
    }
    cv.notify_all();
    worker.Shutdown(kShutdownGrace);
  });

  // Report the connection coming up and going away until told to stop.
  bool was_connected = false;
  std::unique_lock<std::mutex> lock(mu);
  while (!stop) {
    lock.unlock();
    bool now = was_connected ? worker.connected()
                             : worker.WaitConnected(std::chrono::milliseconds(250));
    lock.lock();
    if (stop) break;
    if (now != was_connected) {
      Log(service, now ? "connected to " + options.address
                       : "lost the connection to " + options.address + ", reconnecting");
      was_connected = now;
    }
    if (now) cv.wait_for(lock, std::chrono::milliseconds(250), [&] { return stop; });
  }
  lock.unlock();
  signal_thread.join();

  saga::worker::WorkerStats s = worker.stats();
  Log(service, "stopped: " + std::to_string(s.tasks_started) + " tasks (" +
                   std::to_string(s.tasks_succeeded) + " succeeded, " +
                   std::to_string(s.tasks_failed) + " failed, " +
                   std::to_string(s.tasks_released) + " given back)");
  return 0;
}

void Log(std::string_view service, std::string_view text) {
  static std::mutex* mu = new std::mutex;
  std::string line;
  line.reserve(service.size() + text.size() + 4);
  line += '[';
  line += service;
  line += "] ";
  line += text;
  line += '\n';
  std::lock_guard<std::mutex> g(*mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

saga::worker::Result Ledger::Run(std::string_view service, const TaskFn& fn,
                                 saga::worker::TaskContext& ctx) {
  std::lock_guard<std::mutex> g(mu_);
  const std::string& key = ctx.idempotency_key();
  if (auto it = done_.find(key); it != done_.end()) {
    Log(service, it->second.log + "  (same idempotency key: earlier result returned)");
    return it->second.result;
  }
  auto input = json::Parse(ctx.input());
  Outcome o = !input.ok() || !input->is_object()
                  ? Failure("Order.BadInput", "the task input is not a JSON object",
                            ctx.info().activity + ": bad input")
                  : fn(*input, ctx);
  if (ctx.info().compensation && !ctx.info().compensated_state.empty()) {
    o.log += "  [undoing " + ctx.info().compensated_state + "]";
  }
  if (ctx.attempt() > 0) o.log += "  [retry " + std::to_string(ctx.attempt()) + "]";
  Log(service, o.log);
  if (!key.empty()) done_.emplace(key, o);
  return o.result;
}

saga::worker::Handler Idempotent(std::string service, std::shared_ptr<Ledger> ledger, TaskFn fn) {
  return [service = std::move(service), ledger = std::move(ledger),
          fn = std::move(fn)](saga::worker::TaskContext& ctx) {
    return ledger->Run(service, fn, ctx);
  };
}

std::optional<std::string> GetString(const json::Value& v, std::string_view key) {
  const json::Value* m = v.Find(key);
  if (m == nullptr || !m->is_string()) return std::nullopt;
  return m->as_string();
}

std::optional<double> GetNumber(const json::Value& v, std::string_view key) {
  const json::Value* m = v.Find(key);
  if (m == nullptr || !m->is_number()) return std::nullopt;
  return m->as_double();
}

json::Value Obj(std::initializer_list<json::Member> members) {
  return json::Value(json::Object(members));
}

std::string Money(double amount) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", amount);
  return buf;
}

std::string IdFor(std::string_view prefix, std::string_view seed) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : seed) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", h);
  return std::string(prefix) + buf;
}

Outcome Failure(std::string error, std::string cause, std::string log) {
  log += " -> " + error + ": " + cause;
  return Outcome{saga::worker::TaskError{std::move(error), std::move(cause)}, std::move(log)};
}

}  // namespace order_example
