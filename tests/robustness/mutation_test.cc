// Mutation tests of everything that reads user input without a server: the
// JSON parser, the ASL validator and compiler, and the engine running what
// compiles (sagactl test-run's path). Inputs are the conformance and
// validation corpora, mutated by a seeded generator: structure-aware edits
// (replace, delete, copy a member from another case, rename a key to an ASL
// field, interesting values: paths, intrinsics, extreme numbers) and byte
// edits of the text.
//
// What must hold for every mutant, besides not crashing (the suite also runs
// under ASan+UBSan):
//  - JSON: a parsed value dumps to text that parses back to the same value;
//  - ASL: the validator finds nothing exactly when the compiler accepts
//    (no definition passes validation and then fails to compile, which
//    would reach users as an error at "$" instead of at its field);
//  - engine: a compiled machine runs to an end (SUCCEEDED, FAILED, ...) or
//    is refused as a harness problem that is not an internal error.
//
// SAGA_MUTATIONS=N runs N mutants per corpus case instead of the default
// (a longer campaign); SAGA_MUTATION_SEED=S changes the seed.
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "coordinator/asl/choice.h"
#include "coordinator/asl/definition.h"
#include "coordinator/asl/errors.h"
#include "coordinator/asl/intrinsics.h"
#include "coordinator/asl/jsonpath.h"
#include "coordinator/asl/validator.h"
#include "coordinator/common/json.h"
#include "coordinator/engine/offline_runner.h"
#include "gtest/gtest.h"
#include "tests/robustness/mutator.h"

namespace saga {
namespace {

using json::Value;
using mutation::Case;
using mutation::EnvInt;
using mutation::FailingMocks;
using mutation::Mutator;

// How the engine runs ended, for the summary line.
std::map<std::string, int64_t>& RunCounts() {
  static std::map<std::string, int64_t> counts;
  return counts;
}

// Checks one text; returns a description of what went wrong, or "".
std::string CheckOne(const std::string& text, const Value& input, uint64_t seed) {
  auto parsed = json::Parse(text);
  if (parsed.ok()) {
    std::string dumped = parsed->Dump();
    auto again = json::Parse(dumped);
    if (!again.ok()) return "dumped JSON does not parse: " + std::string(again.status().message());
    if (*again != *parsed) return "JSON does not round-trip: " + dumped.substr(0, 200);
  }
  std::vector<asl::ValidationError> errors = asl::ValidateText(text);
  auto compiled = asl::CompileText(text);
  if (errors.empty() != compiled.ok()) {
    return errors.empty()
               ? "validates but does not compile: " + std::string(compiled.status().message())
               : "compiles but the validator reports " + errors[0].path + ": " + errors[0].message;
  }
  if (!compiled.ok()) return "";
  engine::OfflineOptions o;
  o.seed = seed;
  o.keep_history = false;
  // Half of the runs answer Task states from mocks that fail first (so that
  // Retry, Catch and compensation run), the others echo their input.
  std::optional<engine::MockConfig> mocks;
  if (seed % 2 == 0) {
    if (auto parsed_def = json::Parse(text); parsed_def.ok()) {
      auto config = FailingMocks(*parsed_def, seed);
      auto m = engine::MockConfig::FromJson(config, "M", "T");
      if (!m.ok()) return "mocks: " + std::string(m.status().message());
      mocks = *std::move(m);
    }
  }
  auto run = engine::RunOffline(*compiled, input, mocks ? &*mocks : nullptr, o);
  if (!run.ok() && run.status().code() == absl::StatusCode::kInternal) {
    return "engine: " + std::string(run.status().message());
  }
  if (run.ok()) {
    ++RunCounts()[std::string(engine::ExecutionStatusName(run->status)) +
                  (run->error ? " " + *run->error : "")];
  }
  return "";
}

TEST(Mutation, CorpusMutantsNeverCrashAndKeepTheInvariants) {
  const std::vector<Case> corpus = mutation::LoadCorpus(SAGA_TESTS_DIR);
  ASSERT_GT(corpus.size(), 100u) << "corpus not found under " << SAGA_TESTS_DIR;
  const int64_t per_case = EnvInt("SAGA_MUTATIONS", 12);
  const uint64_t seed = static_cast<uint64_t>(EnvInt("SAGA_MUTATION_SEED", 20261202));
  Mutator m(seed, &corpus);
  int failures = 0;
  int64_t ran = 0, compiled_runs = 0;
  for (size_t c = 0; c < corpus.size(); ++c) {
    for (int64_t k = 0; k < per_case; ++k) {
      Value def = corpus[c].definition;
      Value input = corpus[c].input;
      for (size_t edits = 1 + m.Below(3); edits > 0; --edits) {
        if (m.Chance(85))
          m.MutateTree(&def);
        else
          m.MutateTree(&input);
      }
      std::string text = m.Chance(15) ? def.Pretty() : def.Dump();
      if (m.Chance(20)) m.MutateBytes(&text);
      ++ran;
      if (asl::CompileText(text).ok()) ++compiled_runs;
      std::string bad = CheckOne(text, input, seed + static_cast<uint64_t>(ran));
      if (!bad.empty() && ++failures <= 10) {
        ADD_FAILURE() << corpus[c].file << " mutant " << k << ": " << bad
                      << "\n definition: " << text.substr(0, 2000)
                      << "\n input: " << input.Dump().substr(0, 500);
      }
    }
  }
  EXPECT_EQ(failures, 0);
  // The mutants must reach the engine, not only the validator.
  EXPECT_GT(compiled_runs, ran / 10) << ran << " mutants, " << compiled_runs << " compiled";
  std::cout << ran << " mutants, " << compiled_runs << " compiled and ran:";
  for (const auto& [how, count] : RunCounts()) std::cout << " " << how << " " << count << ";";
  std::cout << "\n";
}

// Random JSONPaths, intrinsic calls and Choice rules, evaluated against
// random data: never a crash, and every evaluation error is a Step Functions
// error (States.Runtime, States.IntrinsicFailure, ...), never an internal
// one.
class ExpressionGen {
 public:
  explicit ExpressionGen(uint64_t seed) : rng_(seed) {}
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::string Path(bool context_ok = true) {
    static const char* kSegs[] = {".a",    ".b",        ".s",      ".n",       "['a']",
                                  "[0]",   "[1]",       "[-1]",    "[*]",      "..a",
                                  "[1:3]", "[::2]",     "[-2:]",   "[?(@.a)]", "[?(@.n > 1)]",
                                  "[0,1]", ".length()", "['x.y']", ".*",       "[?(@.s == 'x')]",
                                  "[:]"};
    static const char* kBroken[] = {"[",        "]",   "'", ".", "[99999999999999999999]",
                                    ".\\u00e9", "[?(", "@"};
    std::string p = (context_ok && Below(6) == 0) ? "$$" : "$";
    if (p == "$$" && Below(2))
      p += std::vector<std::string>{".Execution.Input", ".Task.Token", ".Map.Item.Value",
                                    ".State.Name"}[Below(4)];
    for (size_t k = Below(5); k > 0; --k) {
      p += Below(15) ? kSegs[Below(std::size(kSegs))] : kBroken[Below(std::size(kBroken))];
    }
    return p;
  }

  std::string Literal() {
    switch (Below(8)) {
      case 0:
        return "'a b'";
      case 1:
        return "'{} and {}'";
      case 2:
        return "'\\{\\}\\'\\\\'";  // escapes
      case 3:
        return std::vector<std::string>{"0",
                                        "1",
                                        "-1",
                                        "2.5",
                                        "1e308",
                                        "-9223372036854775808",
                                        "9223372036854775807",
                                        "99999999999999999999",
                                        "1e-5"}[Below(9)];
      case 4:
        return std::vector<std::string>{"true", "false", "null"}[Below(3)];
      case 5:
        return "'[1,2,{\"a\":3}]'";
      case 6:
        return "'SHA-256'";
      default:
        return "''";
    }
  }

  std::string Intrinsic(int depth = 0) {
    struct Fn {
      const char* name;
      int min, max;
    };
    static const Fn kFns[] = {
        {"Format", 1, 4},      {"StringToJson", 1, 1},   {"JsonToString", 1, 1},
        {"Array", 0, 4},       {"ArrayPartition", 2, 2}, {"ArrayContains", 2, 2},
        {"ArrayRange", 3, 3},  {"ArrayGetItem", 2, 2},   {"ArrayLength", 1, 1},
        {"ArrayUnique", 1, 1}, {"Base64Encode", 1, 1},   {"Base64Decode", 1, 1},
        {"Hash", 2, 2},        {"JsonMerge", 3, 3},      {"MathRandom", 2, 3},
        {"MathAdd", 2, 2},     {"StringSplit", 2, 2},    {"UUID", 0, 0},
        {"Nope", 0, 2}};
    // Mostly known functions with their argument counts; now and then not.
    const Fn& f = kFns[Below(std::size(kFns) - (Below(10) ? 1 : 0))];
    std::string s = std::string("States.") + f.name + "(";
    size_t args = Below(10) ? f.min + Below(f.max - f.min + 1) : Below(5);
    for (size_t i = 0; i < args; ++i) {
      if (i) s += Below(10) ? ", " : ",";
      size_t pick = Below(depth < 3 ? 4 : 3);
      s += pick == 0   ? Literal()
           : pick == 1 ? Path()
           : pick == 2 ? Literal()
                       : Intrinsic(depth + 1);
    }
    s += ")";
    if (Below(12) == 0) s.erase(Below(s.size()), 1);  // broken syntax
    return s;
  }

  json::Value Data(int depth = 0) {
    switch (Below(depth < 3 ? 9 : 6)) {
      case 0:
        return json::Value(static_cast<int64_t>(Below(7)) - 3);
      case 1:
        return json::Value(Below(2) ? 1e300 : -0.5);
      case 2:
        return json::Value(
            std::vector<std::string>{"x", "", "a,b", "{\"a\":1}", "aGk=", "é"}[Below(6)]);
      case 3:
        return json::Value(Below(2) == 0);
      case 4:
        return json::Value(nullptr);
      case 5:
        return json::Value(INT64_MAX);
      case 6:
      case 7: {
        json::Value o = json::Value::EmptyObject();
        for (size_t k = Below(4); k > 0; --k)
          o.Set(std::vector<std::string>{"a", "b", "s", "n", "x.y"}[Below(5)], Data(depth + 1));
        return o;
      }
      default: {
        json::Value a = json::Value::EmptyArray();
        for (size_t k = Below(5); k > 0; --k) a.Append(Data(depth + 1));
        return a;
      }
    }
  }

  json::Value Rule(int depth = 0) {
    static const char* kOps[] = {"StringEquals",
                                 "StringMatches",
                                 "NumericLessThan",
                                 "NumericEquals",
                                 "BooleanEquals",
                                 "TimestampLessThan",
                                 "IsPresent",
                                 "IsNull",
                                 "IsNumeric",
                                 "IsString",
                                 "IsTimestamp",
                                 "StringEqualsPath",
                                 "NumericGreaterThanPath",
                                 "TimestampEqualsPath",
                                 "IsBoolean"};
    json::Value r = json::Value::EmptyObject();
    if (depth < 2 && Below(4) == 0) {
      const char* comb = std::vector<const char*>{"And", "Or", "Not"}[Below(3)];
      if (std::string(comb) == "Not") {
        r.Set("Not", Rule(depth + 1));
      } else {
        json::Value list = json::Value::EmptyArray();
        for (size_t k = Below(3); k > 0; --k) list.Append(Rule(depth + 1));
        r.Set(comb, std::move(list));
      }
      return r;
    }
    r.Set("Variable", json::Value(Path()));
    std::string op = kOps[Below(std::size(kOps))];
    if (op.ends_with("Path"))
      r.Set(op, json::Value(Path()));
    else if (op.starts_with("Is"))
      r.Set(op, json::Value(Below(2) == 0));
    else if (op.starts_with("Numeric"))
      r.Set(op, json::Value(Below(2) ? 1.5 : 3.0));
    else if (op.starts_with("Boolean"))
      r.Set(op, json::Value(true));
    else if (op.starts_with("Timestamp"))
      r.Set(op, json::Value("2016-03-14T01:59:00Z"));
    else
      r.Set(op, json::Value(Below(2) ? "x*" : "\\*a*"));
    return r;
  }

 private:
  std::mt19937_64 rng_;
};

// "" when `s` is a Step Functions error an execution can see.
std::string NotAnAslError(const absl::Status& s) {
  std::string name = asl::ErrorName(s);
  if (s.code() == absl::StatusCode::kInternal || !asl::IsKnownStatesError(name)) {
    return name + " (" + std::string(absl::StatusCodeToString(s.code())) +
           "): " + std::string(s.message());
  }
  return "";
}

TEST(Mutation, RandomExpressionsFailOnlyWithStepFunctionsErrors) {
  const int64_t n = EnvInt("SAGA_MUTATIONS", 12) * 250;
  ExpressionGen g(static_cast<uint64_t>(EnvInt("SAGA_MUTATION_SEED", 20261202)));
  int failures = 0;
  int64_t paths = 0, calls = 0, calls_ok = 0, rules = 0;
  auto fail = [&](const std::string& what) {
    if (++failures <= 10) ADD_FAILURE() << what;
  };
  for (int64_t k = 0; k < n; ++k) {
    json::Value input = g.Data();
    json::Value context = json::Value::EmptyObject();
    context.Set("Execution", [&] {
      json::Value e = json::Value::EmptyObject();
      e.Set("Input", input);
      return e;
    }());
    context.Set("Map", [&] {
      json::Value m = json::Value::EmptyObject();
      json::Value it = json::Value::EmptyObject();
      it.Set("Value", g.Data());
      m.Set("Item", it);
      return m;
    }());
    // A path: evaluated, and assigned to when it is a reference path.
    std::string ptext = g.Path();
    if (auto p = asl::JsonPath::Parse(ptext); p.ok()) {
      ++paths;
      if (auto v = p->Evaluate(input, context);
          !v.ok() && v.status().code() == absl::StatusCode::kInternal) {
        fail("path " + ptext + ": " + std::string(v.status().message()));
      }
      if (p->is_reference_path() && !p->is_context()) {
        if (auto v = p->Assign(input, g.Data()); !v.ok()) {
          if (std::string bad = NotAnAslError(v.status()); !bad.empty())
            fail("assign " + ptext + ": " + bad);
        }
      }
    }
    // An intrinsic call.
    std::string itext = g.Intrinsic();
    if (auto in = asl::Intrinsic::Parse(itext); in.ok()) {
      ++calls;
      Rng rng(static_cast<uint64_t>(k));
      if (auto v = in->Evaluate(asl::IntrinsicEnv{input, context, &rng}); !v.ok()) {
        if (std::string bad = NotAnAslError(v.status()); !bad.empty())
          fail("intrinsic " + itext + " on " + input.Dump() + ": " + bad);
      } else {
        ++calls_ok;
        auto again = json::Parse(v->Dump());
        if (!again.ok() || *again != *v)
          fail("intrinsic " + itext + ": result does not round-trip: " + v->Dump());
      }
    }
    // A Choice rule.
    json::Value rtext = g.Rule();
    if (auto r = asl::ChoiceRule::Compile(rtext); r.ok()) {
      ++rules;
      if (auto v = r->Matches(input, context); !v.ok()) {
        if (std::string bad = NotAnAslError(v.status()); !bad.empty())
          fail("rule " + rtext.Dump() + " on " + input.Dump() + ": " + bad);
      }
    }
  }
  EXPECT_EQ(failures, 0);
  // The generator must reach evaluation, not only the parsers.
  EXPECT_GT(paths, n / 4);
  EXPECT_GT(calls_ok, n / 20);
  EXPECT_GT(rules, n / 4);
  std::cout << n << " of each: " << paths << " paths, " << calls << " calls (" << calls_ok
            << " evaluated without error), " << rules << " rules parsed\n";
}

}  // namespace
}  // namespace saga
