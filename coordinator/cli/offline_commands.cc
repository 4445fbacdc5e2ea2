#include "coordinator/cli/offline_commands.h"

#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "coordinator/asl/definition.h"
#include "coordinator/asl/validator.h"
#include "coordinator/common/strings.h"
#include "coordinator/engine/offline_runner.h"

namespace saga::cli {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(saga::StrCat("cannot read '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}


}  // namespace

int Validate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.size() != 1) {
    err << "usage: sagactl validate DEFINITION.json\n";
    return 1;
  }
  auto text = ReadFile(args[0]);
  if (!text.ok()) {
    err << "sagactl validate: " << text.status().message() << "\n";
    return 1;
  }
  std::vector<asl::ValidationError> errors = asl::ValidateText(*text);
  json::Value o = json::Value::EmptyObject();
  o.Set("valid", json::Value(errors.empty()));
  if (!errors.empty()) o.Set("errors", asl::ValidationErrorsToJson(errors));
  out << o.Dump() << "\n";
  return errors.empty() ? 0 : 2;
}

int TestRun(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string definition, input_arg, mock_path, state_machine, test_case;
  bool history = false;
  std::optional<uint64_t> seed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* dst) {
      if (i + 1 >= args.size()) return false;
      *dst = args[++i];
      return true;
    };
    bool ok = true;
    if (a == "--definition") {
      ok = value(&definition);
    } else if (a == "--input") {
      ok = value(&input_arg);
    } else if (a == "--mock-config") {
      ok = value(&mock_path);
    } else if (a == "--state-machine") {
      ok = value(&state_machine);
    } else if (a == "--test-case") {
      ok = value(&test_case);
    } else if (a == "--history") {
      history = true;
    } else if (a == "--seed") {
      std::string s;
      uint64_t v;
      ok = value(&s) && absl::SimpleAtoi(s, &v);
      if (ok) seed = v;
    } else {
      err << "sagactl test-run: unknown flag '" << a << "'\n";
      return 1;
    }
    if (!ok) {
      err << "sagactl test-run: flag '" << a << "' needs a value\n";
      return 1;
    }
  }
  if (definition.empty() || input_arg.empty()) {
    err << "usage: sagactl test-run --definition DEF.json --input INPUT.json|- "
           "[--mock-config MOCK.json --state-machine NAME --test-case CASE] [--history] "
           "[--seed N]\n";
    return 1;
  }
  if (!mock_path.empty() && test_case.empty()) {
    err << "sagactl test-run: --mock-config needs --test-case\n";
    return 1;
  }
  auto def_text = ReadFile(definition);
  if (!def_text.ok()) {
    err << "sagactl test-run: --definition: " << def_text.status().message() << "\n";
    return 1;
  }
  auto input_text = ReadFile(input_arg);
  if (!input_text.ok()) {
    err << "sagactl test-run: --input: " << input_text.status().message() << "\n";
    return 1;
  }
  auto input = json::Parse(*input_text);
  if (!input.ok()) {
    err << "sagactl test-run: --input: " << input.status().message() << "\n";
    return 1;
  }
  std::vector<asl::ValidationError> errors = asl::ValidateText(*def_text);
  std::shared_ptr<const asl::StateMachine> machine;
  if (errors.empty()) {
    auto compiled = asl::Compile(*json::Parse(*def_text));
    if (compiled.ok()) {
      machine = *compiled;
    } else {
      errors.push_back({"$", std::string(compiled.status().message())});
    }
  }
  if (!errors.empty()) {
    json::Value o = json::Value::EmptyObject();
    o.Set("status", json::Value("INVALID"));
    o.Set("errors", asl::ValidationErrorsToJson(errors));
    out << o.Dump() << "\n";
    return 2;
  }
  std::optional<engine::MockConfig> mocks;
  engine::OfflineOptions opts;
  if (!mock_path.empty()) {
    auto text = ReadFile(mock_path);
    if (!text.ok()) {
      err << "sagactl test-run: --mock-config: " << text.status().message() << "\n";
      return 1;
    }
    auto cfg = json::Parse(*text);
    if (!cfg.ok()) {
      err << "sagactl test-run: --mock-config: " << cfg.status().message() << "\n";
      return 1;
    }
    if (state_machine.empty()) {
      const json::Value* sms = cfg->Find("StateMachines");
      if (sms != nullptr && sms->is_object() && sms->size() == 1) {
        state_machine = sms->as_object()[0].first;
      } else {
        err << "sagactl test-run: --state-machine is needed to pick a StateMachines entry\n";
        return 1;
      }
    }
    auto mc = engine::MockConfig::FromJson(*cfg, state_machine, test_case);
    if (!mc.ok()) {
      err << "sagactl test-run: --mock-config: " << mc.status().message() << "\n";
      return 1;
    }
    mocks = *std::move(mc);
  }
  if (!state_machine.empty()) opts.state_machine_name = state_machine;
  opts.start_us = absl::ToUnixMicros(absl::Now());
  opts.seed = seed ? *seed : std::random_device{}();
  opts.keep_history = history;
  auto result = engine::RunOffline(machine, *input, mocks ? &*mocks : nullptr, opts);
  if (!result.ok()) {
    err << "sagactl test-run: " << result.status().message() << "\n";
    return 1;
  }
  out << engine::OfflineResultToJson(*result, history).Dump() << "\n";
  return 0;
}

}  // namespace saga::cli
