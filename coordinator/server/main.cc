// saga-coordinator: the durable coordinator process.
//
//   saga-coordinator --listen HOST:PORT --database-url CONNINFO
//                    [--no-migrate] [--pool-size N] [--token-secret S]
//                    [--history-compression-from BYTES] [--keepalive-ms MS]
//                    [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
//                    [--callback-threads N]
// Flags fall back to SAGA_LISTEN, SAGA_DATABASE_URL, SAGA_POOL_SIZE,
// SAGA_TOKEN_SECRET, SAGA_HISTORY_COMPRESSION_FROM, SAGA_KEEPALIVE_MS,
// SAGA_TLS_CERT, SAGA_TLS_KEY, SAGA_TLS_CLIENT_CA and SAGA_CALLBACK_THREADS. Wiring only:
// configuration, migrations, the gRPC server, signals. SIGTERM/SIGINT drain:
// stop taking new work, finish in-flight RPCs (long polls return empty), exit 0.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/api/callback_threads.h"
#include "coordinator/api/service.h"
#include "coordinator/common/pem_file.h"
#include "coordinator/runtime/coordinator.h"
#include "coordinator/storage/pg/pg_store.h"

namespace {

constexpr char kUsage[] =
    "usage: saga-coordinator --listen HOST:PORT --database-url CONNINFO [--no-migrate]\n"
    "                        [--pool-size N] [--token-secret SECRET]\n"
    "                        [--history-compression-from BYTES] [--keepalive-ms MS]\n"
    "                        [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
    "                        [--callback-threads N]\n"
    "  (or SAGA_LISTEN, SAGA_DATABASE_URL, SAGA_POOL_SIZE, SAGA_TOKEN_SECRET,\n"
    "   SAGA_HISTORY_COMPRESSION_FROM, SAGA_KEEPALIVE_MS, SAGA_TLS_CERT, SAGA_TLS_KEY,\n"
    "   SAGA_TLS_CLIENT_CA, SAGA_CALLBACK_THREADS)\n"
    "  --history-compression-from: history rows (a transition's events) of at least\n"
    "  this many bytes of JSON are stored compressed (zstd with a dictionary of the\n"
    "  history format) when that saves a fifth (default 64; 0 stores every row as\n"
    "  readable JSON text)\n"
    "  --keepalive-ms: ping each client connection (a worker's stream) after this\n"
    "  long without traffic and close it when the ping is not answered within as\n"
    "  long again, so that a worker whose host vanished without closing its\n"
    "  connection stops holding tasks' credits (default 20000; 1000 to 3600000)\n"
    "  --tls-cert, --tls-key: serve gRPC over TLS with this PEM certificate chain and\n"
    "  private key (without them the port is plaintext)\n"
    "  --tls-client-ca: also require every client (workers, sagactl) to present a\n"
    "  certificate signed by one of these PEM CA certificates (mutual TLS)\n"
    "  --callback-threads: how many of gRPC's callback threads (max(2, cores / 2))\n"
    "  take the streams' and StartExecution's reactions; the others are held idle,\n"
    "  which saves a thread wake-up per event at moderate load (default 1; 0 uses\n"
    "  them all)\n";

std::string Env(const char* name, const std::string& def = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : def;
}

// `text` is a decimal integer and nothing else (no space, no unit).
template <typename T>
bool ParseWhole(const std::string& text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return !text.empty() && ec == std::errc() && ptr == end;
}

int Fail(const std::string& msg) {
  std::cerr << "saga-coordinator: " << msg << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with absl::Mutex deadlock detection on: every
  // lock (gRPC takes many per call) updates a global lock graph. The
  // coordinator's own locks are std::mutex: the detector only costs CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Block the stop signals before gRPC starts threads; a thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::string listen = Env("SAGA_LISTEN", "127.0.0.1:7233");
  std::string db = Env("SAGA_DATABASE_URL");
  std::string secret = Env("SAGA_TOKEN_SECRET");
  int pool = std::atoi(Env("SAGA_POOL_SIZE", "16").c_str());
  std::string compress_from = Env("SAGA_HISTORY_COMPRESSION_FROM", "64");
  std::string keepalive_ms = Env("SAGA_KEEPALIVE_MS", "20000");
  std::string tls_cert = Env("SAGA_TLS_CERT");
  std::string tls_key = Env("SAGA_TLS_KEY");
  std::string tls_client_ca = Env("SAGA_TLS_CLIENT_CA");
  std::string callback_threads_text = Env("SAGA_CALLBACK_THREADS", "1");
  bool migrate = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* dst) {
      if (i + 1 >= argc) return false;
      *dst = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--listen" && value(&listen)) continue;
    if (a == "--database-url" && value(&db)) continue;
    if (a == "--token-secret" && value(&secret)) continue;
    if (a == "--history-compression-from" && value(&compress_from)) continue;
    if (a == "--keepalive-ms" && value(&keepalive_ms)) continue;
    if (a == "--tls-cert" && value(&tls_cert)) continue;
    if (a == "--tls-key" && value(&tls_key)) continue;
    if (a == "--tls-client-ca" && value(&tls_client_ca)) continue;
    if (a == "--callback-threads" && value(&callback_threads_text)) continue;
    if (a == "--pool-size" && value(&v)) {
      pool = std::atoi(v.c_str());
      continue;
    }
    if (a == "--no-migrate") {
      migrate = false;
      continue;
    }
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    std::cerr << "saga-coordinator: unknown or incomplete flag '" << a << "'\n" << kUsage;
    return 1;
  }
  if (db.empty()) return Fail("--database-url (or SAGA_DATABASE_URL) is required");
  if (pool < 1 || pool > 256) return Fail("--pool-size must be between 1 and 256");
  int keepalive = 0;
  if (!ParseWhole(keepalive_ms, &keepalive) || keepalive < 1000 || keepalive > 3600000) {
    return Fail("--keepalive-ms must be a number of milliseconds from 1000 to 3600000, not '" +
                keepalive_ms + "'");
  }
  int callback_threads = 0;
  if (!ParseWhole(callback_threads_text, &callback_threads) || callback_threads < 0 ||
      callback_threads > 1024) {
    return Fail("--callback-threads must be a number from 0 (all of gRPC's) to 1024, not '" +
                callback_threads_text + "'");
  }
  // TLS: read and check the files before touching the database.
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  const bool tls = !tls_cert.empty() || !tls_key.empty();
  if (tls_cert.empty() != tls_key.empty()) {
    return Fail(tls_cert.empty() ? "--tls-key needs --tls-cert (or SAGA_TLS_CERT)"
                                 : "--tls-cert needs --tls-key (or SAGA_TLS_KEY)");
  }
  if (!tls && !tls_client_ca.empty()) {
    return Fail("--tls-client-ca needs --tls-cert and --tls-key (clients are verified over TLS)");
  }
  if (tls) {
    auto cert = saga::ReadPemFile("--tls-cert", tls_cert, "CERTIFICATE");
    if (!cert.ok()) return Fail(std::string(cert.status().message()));
    auto key = saga::ReadPemFile("--tls-key", tls_key, "PRIVATE KEY");
    if (!key.ok()) return Fail(std::string(key.status().message()));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!tls_client_ca.empty()) {
      auto ca = saga::ReadPemFile("--tls-client-ca", tls_client_ca, "CERTIFICATE");
      if (!ca.ok()) return Fail(std::string(ca.status().message()));
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  }

  saga::storage::PgStoreOptions store_options;
  if (!ParseWhole(compress_from, &store_options.compress_history_from) ||
      store_options.compress_history_from < 0) {
    return Fail("--history-compression-from must be a number of bytes (0 turns it off), not '" +
                compress_from + "'");
  }
  auto store = saga::storage::PgStore::Open(db, pool, store_options);
  if (!store.ok())
    return Fail(std::string("cannot connect to the database: ") +
                std::string(store.status().message()));
  if (migrate) {
    absl::Status s = (*store)->Migrate();
    if (!s.ok()) return Fail(std::string("migration failed: ") + std::string(s.message()));
  } else {
    auto v = (*store)->SchemaVersion();
    if (!v.ok()) return Fail(std::string(v.status().message()));
    if (*v < saga::storage::PgStore::LatestSchemaVersion()) {
      return Fail("the database schema is at version " + std::to_string(*v) +
                  " but this coordinator needs version " +
                  std::to_string(saga::storage::PgStore::LatestSchemaVersion()) +
                  "; run once without --no-migrate to apply the pending migrations");
    }
  }
  if (secret.empty()) {
    std::random_device rd;
    std::string fresh;
    for (int i = 0; i < 32; ++i) fresh.push_back(static_cast<char>(rd() & 0xFF));
    auto stored = (*store)->GetOrInitSetting("task_token_secret", absl::Base64Escape(fresh));
    if (!stored.ok()) return Fail(std::string(stored.status().message()));
    secret = *stored;
  }

  saga::runtime::CoordinatorOptions opts;
  opts.token_secret = secret;
  saga::runtime::Coordinator coordinator(store->get(), opts);
  saga::api::SagaService service(&coordinator);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // The synchronous server (every unary RPC but StartExecution, which is on
  // the callback API) keeps at most MAX_POLLERS idle threads: with the
  // default (2), every RPC that arrives while a few handlers wait for a group
  // commit starts a thread and every handler that returns ends one (about
  // 800 thread creations per second at 1,200 executions/s). Idle pollers cost
  // a parked thread each; keep enough for the usual concurrency. One poller
  // at least rather than two: at a steady 1,500 StartExecution calls/s the
  // dispatch latency's p50 and p99 were lower in five alternating pairs of
  // 6-second runs (p99 5.1-8.0 against 6.9-12.9 ms); the maximum of 1-task
  // executions was ~8 % lower in three pairs of four (README, ninth session).
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  // Keepalive both ways. A connection whose peer vanished without closing
  // it (its node died, a network partition) shows nothing to a side that
  // only waits: the coordinator pings every connection quiet for
  // --keepalive-ms and closes it when the ping is not answered within as
  // long again (ending that worker's stream, whose tasks then go to others
  // as their timeouts say; gRPC's default is 2 hours). Workers ping it for
  // the same reason (the SDK every 10 s by default); it accepts pings every
  // 0.5 s, also with no call open, so that a short keepalive is never taken
  // for abuse (gRPC documents 5 minutes as the default floor while nothing
  // else is sent; with a stream open, 1.51 did not enforce it in
  // WorkerKeepalive.BothSidesNoticeAConnectionThatFellSilent either way).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 64);
  int port = 0;
  builder.AddListeningPort(listen, credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return Fail("cannot listen on " + listen +
                (tls ? " (or the --tls-cert certificate does not match the --tls-key key)" : ""));
  }
  coordinator.Start();
  // Held until the drain begins (shutting down needs no more than one).
  std::unique_ptr<saga::api::CallbackThreadLimit> callback_limit;
  if (callback_threads > 0) {
    callback_limit = saga::api::CallbackThreadLimit::Apply(callback_threads);
    std::cerr << "saga-coordinator: gRPC callback threads: "
              << callback_limit->threads() - callback_limit->held() << " of "
              << callback_limit->threads() << " take work\n";
  }
  std::cerr << "saga-coordinator: listening on " << listen.substr(0, listen.rfind(':')) << ":"
            << port << " (schema version " << saga::storage::PgStore::LatestSchemaVersion()
            << (tls_client_ca.empty() ? (tls ? ", TLS" : "") : ", TLS with client certificates")
            << ")"
            << std::endl;

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::cerr << "saga-coordinator: draining" << std::endl;
    callback_limit.reset();  // the held callback threads back to work
    coordinator.Shutdown();  // long polls return at once
    service.Drain();         // worker streams end; workers reconnect elsewhere
    // In-flight unary RPCs finish within milliseconds once long polls are woken;
    // the grace only bounds waiting for idle clients to acknowledge GOAWAY.
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(3));
  });
  server->Wait();
  stopper.join();
  const auto st = coordinator.stats();
  const auto bs = (*store)->batch_stats();
  std::cerr << "saga-coordinator: stopped; transitions: " << st.transitions_unlocked
            << " unlocked (" << st.transitions_together << " of them written with others of one stream, "
            << st.results_async << " results applied from a stream's read with no thread waiting), "
            << st.transitions_locked << " locked, " << st.lease_waits << " found another of their execution under way, " << st.unlocked_conflicts
            << " unlocked conflicts, " << st.replays << " replays; tasks: " << st.tasks_handed_off
            << " handed off, " << st.tasks_claimed << " claimed by scans; group commits: "
            << bs.batches << " carrying " << bs.items << " writes" << std::endl;
  return 0;
}
