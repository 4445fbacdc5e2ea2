// What every order service shares: flags, signal handling, one log line per
// task, idempotency by the task's key, and small JSON helpers.
//
// A service is a list of (activity, handler) pairs; main() hands them to
// RunService:
//
//   int main(int argc, char** argv) {
//     return order_example::RunService(argc, argv, "payments", order_example::PaymentsHandlers());
//   }
//
// Handlers are written as TaskFn (see Idempotent): they get the task input
// already parsed, return the result or a TaskError, and describe what they did
// in one line that the wrapper prints as "[payments] charge order ...".
#ifndef SAGA_EXAMPLES_ORDER_COMMON_H_
#define SAGA_EXAMPLES_ORDER_COMMON_H_

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/common/json.h"
#include "saga/worker/task.h"
#include "saga/worker/worker.h"

namespace order_example {

namespace json = saga::json;

using Handlers = std::vector<std::pair<std::string, saga::worker::Handler>>;

// Flags shared by every service:
//   --address HOST:PORT   the coordinator (default $SAGA_ADDRESS, else 127.0.0.1:7233)
//   --identity NAME       the worker's name in the coordinator (default order-SERVICE:PID)
//   --concurrency N       handlers running at once (default 8)
// Parses them, blocks SIGINT and SIGTERM before any thread starts, registers
// `handlers`, logs "[service] connected to ..." whenever the connection comes
// up (and when it is lost), serves until SIGINT or SIGTERM, then calls
// Worker::Shutdown(5 s) from a sigwait thread and returns 0. Bad flags: a
// message on stderr and 2.
int RunService(int argc, char** argv, std::string_view service, Handlers handlers);

// Prints "[service] text" as one line on stdout and flushes it.
void Log(std::string_view service, std::string_view text);

// What a handler did: the result (or TaskError) and the log line describing it
// ("charge order ord-1001: 99.50 EUR -> ch_3f2a9c1b").
struct Outcome {
  saga::worker::Result result;
  std::string log;
};

// A handler body. `input` is the task input parsed as JSON (always an object).
using TaskFn = std::function<Outcome(const json::Value& input, const saga::worker::TaskContext& ctx)>;

// Per-service memory of results by idempotency key, plus the lock that
// serialises the service's handlers (each takes microseconds), so handler
// bodies may use the service's in-memory state without locks of their own.
class Ledger {
 public:
  // Runs `fn` once per ctx.idempotency_key() and prints its log line; a later
  // delivery with the same key gets the stored result (logged as a replay).
  // A task input that is not a JSON object fails with "Order.BadInput".
  saga::worker::Result Run(std::string_view service, const TaskFn& fn,
                           saga::worker::TaskContext& ctx);

 private:
  std::mutex mu_;
  std::map<std::string, Outcome, std::less<>> done_;
};

// Wraps `fn` as an SDK handler run through `ledger` (shared by all the
// handlers of one service).
saga::worker::Handler Idempotent(std::string service, std::shared_ptr<Ledger> ledger, TaskFn fn);

// --- JSON helpers ----------------------------------------------------------

// The string member `key`, or nullopt when absent or not a string.
std::optional<std::string> GetString(const json::Value& v, std::string_view key);
// The number member `key`, or nullopt when absent or not a number.
std::optional<double> GetNumber(const json::Value& v, std::string_view key);
// An object from members: Obj({{"status", "CHARGED"}, {"amount", 99.5}}).
json::Value Obj(std::initializer_list<json::Member> members);
// "99.50".
std::string Money(double amount);
// A short id that depends only on `seed`: prefix + 8 hex digits
// (IdFor("ch_", "0190.../3") == "ch_5d1c09e2").
std::string IdFor(std::string_view prefix, std::string_view seed);
// A TaskError result with its log line.
Outcome Failure(std::string error, std::string cause, std::string log);

}  // namespace order_example

#endif  // SAGA_EXAMPLES_ORDER_COMMON_H_
