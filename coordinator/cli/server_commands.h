// `sagactl` server commands: the gRPC client side of saga.v1.SagaCoordinator.
//
// Every command prints JSON objects on `out`, one per line; problems go to
// `err` as one line naming the flag or the gRPC status code and message, e.g.
//   sagactl: start-execution: NOT_FOUND: state machine 'x' does not exist
// Exit codes: 0 success, 1 error (bad flags, unreadable file, failed RPC),
// 2 definition rejected by the server (create/update-state-machine print
// {"valid":false,"errors":[...]} on `out`).
#ifndef SAGA_COORDINATOR_CLI_SERVER_COMMANDS_H_
#define SAGA_COORDINATOR_CLI_SERVER_COMMANDS_H_

#include <chrono>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace saga::cli {

struct ServerCommandOptions {
  // Pause between DescribeExecution polls of `start-execution --wait`.
  std::chrono::milliseconds poll_interval{500};
};

// Whether `cmd` names a server command (e.g. "start-execution").
bool IsServerCommand(std::string_view cmd);

// Usage text of the server commands (several lines, newline-terminated).
std::string ServerCommandsUsage();

// Runs one server command. `argv` is everything after the program name:
// [CONNECTION FLAGS] COMMAND [ARGS...]; the connection flags may also come
// after the command word: --address HOST:PORT (else $SAGA_ADDRESS, else
// 127.0.0.1:7233), and for TLS --tls, --tls-ca FILE, --tls-cert FILE
// --tls-key FILE (mutual TLS) and --tls-server-name NAME (else
// $SAGA_TLS, $SAGA_TLS_CA, $SAGA_TLS_CLIENT_CERT, $SAGA_TLS_CLIENT_KEY,
// $SAGA_TLS_SERVER_NAME). Returns the process exit code.
int RunServerCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err,
                     const ServerCommandOptions& options = {});

}  // namespace saga::cli

#endif  // SAGA_COORDINATOR_CLI_SERVER_COMMANDS_H_
