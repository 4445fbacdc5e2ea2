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
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
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

namespace saga {
namespace {

namespace fs = std::filesystem;
using json::Value;

struct Case {
  std::string file;
  Value definition;
  Value input;
};

std::vector<Case> LoadCorpus() {
  std::vector<Case> out;
  for (const char* dir : {"conformance/cases", "validation/cases"}) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(fs::path(SAGA_TESTS_DIR) / dir)) {
      if (e.path().extension() == ".json") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());  // the same order on every machine
    for (const auto& f : files) {
      std::ifstream in(f);
      std::stringstream ss;
      ss << in.rdbuf();
      auto v = json::Parse(ss.str());
      if (!v.ok() || !v->is_object()) continue;
      const Value* d = v->Find("definition");
      if (d == nullptr) continue;
      const Value* i = v->Find("input");
      out.push_back({f.filename().string(), *d, i ? *i : Value::EmptyObject()});
    }
  }
  return out;
}

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::strtoll(s, nullptr, 10) : fallback;
}

class Mutator {
 public:
  Mutator(uint64_t seed, const std::vector<Case>* corpus) : rng_(seed), corpus_(corpus) {}

  size_t Below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  bool Chance(int percent) { return static_cast<int>(Below(100)) < percent; }

  Value Interesting() {
    static const std::vector<std::string> kStrings = {"$",
                                                      "$$",
                                                      "$.a",
                                                      "$.a.b",
                                                      "$[0]",
                                                      "$.a[*]",
                                                      "$..a",
                                                      "$[-1]",
                                                      "$.a[1:3]",
                                                      "$.a[?(@.b)]",
                                                      "$$.Execution.Input",
                                                      "$$.Task.Token",
                                                      "$$.Map.Item.Value",
                                                      "$$.State.RetryCount",
                                                      "States.Format('{} {}', $.a)",
                                                      "States.StringToJson($.s)",
                                                      "States.JsonToString($)",
                                                      "States.Array($.a, 1, 'x')",
                                                      "States.ArrayRange(1, 100000000, 1)",
                                                      "States.ArrayPartition($.a, 0)",
                                                      "States.ArrayContains($.a, 1)",
                                                      "States.ArrayUnique($)",
                                                      "States.ArrayGetItem($.a, -1)",
                                                      "States.ArrayLength($.a)",
                                                      "States.Base64Decode('!!')",
                                                      "States.Hash($.s, 'SHA-1')",
                                                      "States.JsonMerge($, $, true)",
                                                      "States.MathRandom(5, 1)",
                                                      "States.MathAdd(9223372036854775807, 1)",
                                                      "States.StringSplit($.s, '')",
                                                      "States.UUID()",
                                                      "States.Format(",
                                                      "States.Foo()",
                                                      "States.Format('\\{', 1)",
                                                      "Pass",
                                                      "Task",
                                                      "Choice",
                                                      "Wait",
                                                      "Succeed",
                                                      "Fail",
                                                      "Parallel",
                                                      "Map",
                                                      "States.ALL",
                                                      "States.TaskFailed",
                                                      "States.Timeout",
                                                      "2024-13-40T99:99:99Z",
                                                      "2016-03-14T01:59:00Z",
                                                      "",
                                                      "\xff\xfe",
                                                      "arn:aws:states:::lambda:invoke",
                                                      "arn:aws:states:::task:x.waitForTaskToken",
                                                      "JSONata",
                                                      "{% $states.input %}",
                                                      "INLINE",
                                                      "DISTRIBUTED",
                                                      "STANDARD",
                                                      "a.$",
                                                      "{}"};
    switch (Below(9)) {
      case 0:
        return Value(kStrings[Below(kStrings.size())]);
      case 1: {
        static const int64_t kInts[] = {0,         1,         -1,        2,       99999999,
                                        INT32_MAX, INT64_MAX, INT64_MIN, 31536001};
        return Value(kInts[Below(std::size(kInts))]);
      }
      case 2: {
        static const double kDoubles[] = {0.5, -0.0, 1e308, -1e308, 1e-308, 3.0, 1e19, -1e19};
        return Value(kDoubles[Below(std::size(kDoubles))]);
      }
      case 3:
        return Value(Chance(50));
      case 4:
        return Value(nullptr);
      case 5:
        return Value::EmptyArray();
      case 6:
        return Value::EmptyObject();
      case 7: {  // deep nesting
        Value v(1);
        for (int i = 0; i < 200; ++i) {
          json::Array a;
          a.push_back(std::move(v));
          v = Value(std::move(a));
        }
        return v;
      }
      default:
        return Value(std::string(Below(3) == 0 ? 300000 : 40, 'x'));
    }
  }

  static const std::vector<std::string>& Keys() {
    static const std::vector<std::string> k = {"Type",
                                               "Next",
                                               "End",
                                               "StartAt",
                                               "States",
                                               "Comment",
                                               "InputPath",
                                               "OutputPath",
                                               "ResultPath",
                                               "Parameters",
                                               "ResultSelector",
                                               "Result",
                                               "Retry",
                                               "Catch",
                                               "ErrorEquals",
                                               "IntervalSeconds",
                                               "MaxAttempts",
                                               "BackoffRate",
                                               "MaxDelaySeconds",
                                               "JitterStrategy",
                                               "TimeoutSeconds",
                                               "TimeoutSecondsPath",
                                               "HeartbeatSeconds",
                                               "HeartbeatSecondsPath",
                                               "Resource",
                                               "Choices",
                                               "Default",
                                               "Variable",
                                               "StringEquals",
                                               "NumericLessThan",
                                               "IsPresent",
                                               "And",
                                               "Or",
                                               "Not",
                                               "Seconds",
                                               "SecondsPath",
                                               "Timestamp",
                                               "TimestampPath",
                                               "Branches",
                                               "Iterator",
                                               "ItemProcessor",
                                               "ItemsPath",
                                               "ItemSelector",
                                               "MaxConcurrency",
                                               "ToleratedFailurePercentage",
                                               "ToleratedFailureCount",
                                               "Error",
                                               "Cause",
                                               "ErrorPath",
                                               "CausePath",
                                               "Compensation",
                                               "Compensate",
                                               "Version",
                                               "QueryLanguage",
                                               "Assign",
                                               "Arguments",
                                               "Output",
                                               "Items",
                                               "ItemReader",
                                               "ResultWriter",
                                               "ItemBatcher",
                                               "Parameters.$",
                                               "x.$",
                                               "Credentials",
                                               "ProcessorConfig",
                                               "Mode",
                                               "Label"};
    return k;
  }

  // All nodes of `v` (depth-first), as pointers into it.
  static void Nodes(Value* v, std::vector<Value*>* out, int depth = 0) {
    out->push_back(v);
    if (depth > 40) return;
    if (v->is_object()) {
      for (auto& [k, c] : v->mutable_object()) Nodes(&c, out, depth + 1);
    } else if (v->is_array()) {
      for (auto& c : v->mutable_array()) Nodes(&c, out, depth + 1);
    }
  }

  Value RandomSubtree() {
    Value donor = (*corpus_)[Below(corpus_->size())].definition;
    std::vector<Value*> nodes;
    Nodes(&donor, &nodes);
    return *nodes[Below(nodes.size())];
  }

  void MutateTree(Value* root) {
    std::vector<Value*> nodes;
    Nodes(root, &nodes);
    Value* n = nodes[Below(nodes.size())];
    switch (Below(7)) {
      case 0:
        *n = Interesting();
        break;
      case 1:
        *n = RandomSubtree();
        break;
      case 2:  // delete a member or element
        if (n->is_object() && n->size() > 0) {
          auto& o = n->mutable_object();
          o.erase(o.begin() + static_cast<std::ptrdiff_t>(Below(o.size())));
        } else if (n->is_array() && n->size() > 0) {
          auto& a = n->mutable_array();
          a.erase(a.begin() + static_cast<std::ptrdiff_t>(Below(a.size())));
        }
        break;
      case 3:  // add a member: an ASL field with an interesting or borrowed value
        if (n->is_object())
          n->Set(Keys()[Below(Keys().size())], Chance(50) ? Interesting() : RandomSubtree());
        else if (n->is_array())
          n->Append(Chance(50) ? Interesting() : RandomSubtree());
        break;
      case 4:  // rename a member
        if (n->is_object() && n->size() > 0) {
          auto& o = n->mutable_object();
          auto& m = o[Below(o.size())];
          Value moved = m.second;
          std::string key = m.first;
          n->Erase(key);
          n->Set(Chance(70) ? Keys()[Below(Keys().size())] : key + ".$", std::move(moved));
        }
        break;
      case 5:  // a state's Next / Default to another (or a missing) name
        if (n->is_object() && n->Find("Type") != nullptr) {
          const Value* states = root->Find("States");
          std::string target = "Nowhere";
          if (states && states->is_object() && states->size() > 0) {
            target = states->as_object()[Below(states->size())].first;
          }
          n->Erase("End");
          n->Set("Next", Value(target));
        }
        break;
      default:  // numbers and strings nudged
        if (n->is_int() && n->as_int() > INT64_MIN + 2 && n->as_int() < INT64_MAX - 2) {
          *n = Value(n->as_int() + static_cast<int64_t>(Below(5)) - 2);
        } else if (n->is_string() && !n->as_string().empty()) {
          std::string s = n->as_string();
          s.insert(Below(s.size() + 1), 1, "$.[]'(){}\\,*@?"[Below(14)]);
          *n = Value(s);
        }
        break;
    }
  }

  void MutateBytes(std::string* s) {
    if (s->empty()) return;
    for (size_t k = 0, n = 1 + Below(4); k < n; ++k) {
      size_t at = Below(s->size());
      switch (Below(5)) {
        case 0:
          (*s)[at] = static_cast<char>(Below(256));
          break;
        case 1:
          s->erase(at, 1 + Below(8));
          break;
        case 2:
          s->insert(at, 1, "{}[]\",:\\0-eE.+ \x80\xc3"[Below(17)]);
          break;
        case 3:
          s->insert(at, s->substr(Below(s->size()), Below(64)));
          break;
        default:
          s->resize(at);
          break;
      }
      if (s->empty()) return;
    }
  }

 private:
  std::mt19937_64 rng_;
  const std::vector<Case>* corpus_;
};

// How the engine runs ended, for the summary line.
std::map<std::string, int64_t>& RunCounts() {
  static std::map<std::string, int64_t> counts;
  return counts;
}

// The names of every Task state, in branches and Map processors too.
void TaskStates(const Value& v, std::set<std::string>* out, int depth = 0) {
  if (depth > 30) return;
  if (v.is_object()) {
    if (const Value* states = v.Find("States"); states && states->is_object()) {
      for (const auto& [name, st] : states->as_object()) {
        const Value* type = st.is_object() ? st.Find("Type") : nullptr;
        if (type && type->is_string() && type->as_string() == "Task") out->insert(name);
      }
    }
    for (const auto& [k, c] : v.as_object()) TaskStates(c, out, depth + 1);
  } else if (v.is_array()) {
    for (const auto& c : v.as_array()) TaskStates(c, out, depth + 1);
  }
}

// A mock configuration (state machine "M", test case "T") under which each
// Task state (and its compensation) throws for its first invocations, then
// returns a small object.
Value FailingMocks(const Value& definition, uint64_t seed) {
  static const char* kErrors[] = {"States.TaskFailed", "States.Timeout", "Custom.Error",
                                  "States.HeartbeatTimeout", "States.Permissions"};
  std::set<std::string> tasks;
  TaskStates(definition, &tasks);
  Value test_case = Value::EmptyObject(), responses = Value::EmptyObject();
  size_t i = 0;
  for (const std::string& name : tasks) {
    const std::string ref = "R" + std::to_string(i++);
    Value thrown = Value::EmptyObject();
    thrown.Set("Error", Value(kErrors[(seed + i) % std::size(kErrors)]));
    thrown.Set("Cause", Value("mutant"));
    Value th = Value::EmptyObject();
    th.Set("Throw", thrown);
    Value ret = Value::EmptyObject();
    Value result = Value::EmptyObject();
    result.Set("ok", Value(true));
    ret.Set("Return", result);
    Value r = Value::EmptyObject();
    const int64_t fails = static_cast<int64_t>((seed / 2 + i) % 4);
    if (fails > 0) r.Set(fails == 1 ? "0" : "0-" + std::to_string(fails - 1), th);
    r.Set(std::to_string(fails) + "-1000", ret);
    responses.Set(ref, r);
    test_case.Set(name, Value(ref));
    test_case.Set(name + ".Compensation", Value(ref));
  }
  Value machines = Value::EmptyObject(), m = Value::EmptyObject(), cases = Value::EmptyObject();
  cases.Set("T", test_case);
  m.Set("TestCases", cases);
  machines.Set("M", m);
  Value config = Value::EmptyObject();
  config.Set("StateMachines", machines);
  config.Set("MockedResponses", responses);
  return config;
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
  const std::vector<Case> corpus = LoadCorpus();
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
