// The seeded mutation generator of the mutation tests: the conformance and
// validation corpora, structure-aware and byte edits of their definitions
// and inputs, and mock configurations that make every Task state fail first.
// Shared by tests/robustness/mutation_test.cc (engine alone) and
// tests/integration/differential_test.cc (durable against the engine).
//
// Thread safety: a Mutator is used from one thread.
#ifndef SAGA_TESTS_ROBUSTNESS_MUTATOR_H_
#define SAGA_TESTS_ROBUSTNESS_MUTATOR_H_

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "coordinator/common/json.h"

namespace saga::mutation {

using json::Value;

// A corpus case: its file, definition and input. `tests_dir` is the
// project's tests/ folder.
struct Case {
  std::string file;
  Value definition;
  Value input;
};

inline std::vector<Case> LoadCorpus(const std::string& tests_dir) {
  std::vector<Case> out;
  for (const char* dir : {"conformance/cases", "validation/cases"}) {
    std::vector<std::filesystem::path> files;
    for (const auto& e :
         std::filesystem::directory_iterator(std::filesystem::path(tests_dir) / dir)) {
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

inline int64_t EnvInt(const char* name, int64_t fallback) {
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

// The names of every Task state, in branches and Map processors too.
inline void TaskStates(const Value& v, std::set<std::string>* out, int depth = 0) {
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
inline Value FailingMocks(const Value& definition, uint64_t seed) {
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

}  // namespace saga::mutation

#endif  // SAGA_TESTS_ROBUSTNESS_MUTATOR_H_
