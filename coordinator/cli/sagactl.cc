// sagactl: the Saga Coordinator command-line tool.
#include <iostream>
#include <string>
#include <vector>

#include "coordinator/cli/offline_commands.h"

namespace {

constexpr char kUsage[] =
    "usage: sagactl COMMAND [ARGS]\n"
    "offline commands:\n"
    "  validate DEFINITION.json\n"
    "  test-run --definition DEF.json --input INPUT.json|- [--mock-config MOCK.json\n"
    "           --state-machine NAME --test-case CASE] [--history] [--seed N]\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 1;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "validate") return saga::cli::Validate(args, std::cout, std::cerr);
  if (cmd == "test-run") return saga::cli::TestRun(args, std::cout, std::cerr);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "sagactl: unknown command '" << cmd << "'\n" << kUsage;
  return 1;
}
