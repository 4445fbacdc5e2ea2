// sagactl: the Saga Coordinator command-line tool.
#include <iostream>
#include <string>
#include <vector>

#include "coordinator/cli/offline_commands.h"
#include "coordinator/cli/server_commands.h"

namespace {

constexpr char kUsage[] =
    "usage: sagactl [CONNECTION FLAGS] COMMAND [ARGS]\n"
    "offline commands:\n"
    "  validate DEFINITION.json\n"
    "  test-run --definition DEF.json --input INPUT.json|- [--mock-config MOCK.json\n"
    "           --state-machine NAME --test-case CASE] [--history] [--seed N]\n";

std::string Usage() { return kUsage + saga::cli::ServerCommandsUsage(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << Usage();
    return 1;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "validate") return saga::cli::Validate(args, std::cout, std::cerr);
  if (cmd == "test-run") return saga::cli::TestRun(args, std::cout, std::cerr);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << Usage();
    return 0;
  }
  if (cmd.rfind("--", 0) == 0 || saga::cli::IsServerCommand(cmd)) {
    return saga::cli::RunServerCommand(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                       std::cerr);
  }
  std::cerr << "sagactl: unknown command '" << cmd << "'\n" << Usage();
  return 1;
}
