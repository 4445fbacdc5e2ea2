// `sagactl validate` and `sagactl test-run`: the offline commands.
// Each takes its arguments (after the command word), reads its files and
// writes one JSON line to `out`; problems with files or flags go to `err`
// as one clear line. Returns the process exit code.
#ifndef SAGA_COORDINATOR_CLI_OFFLINE_COMMANDS_H_
#define SAGA_COORDINATOR_CLI_OFFLINE_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace saga::cli {

// exit 0 valid, 2 invalid, 1 unreadable file / bad flags.
int Validate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// exit 0 finished execution, 2 invalid definition, 1 unreadable files / bad flags.
int TestRun(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace saga::cli

#endif  // SAGA_COORDINATOR_CLI_OFFLINE_COMMANDS_H_
