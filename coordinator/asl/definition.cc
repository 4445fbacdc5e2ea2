#include "coordinator/asl/definition.h"

#include <utility>

#include "absl/strings/match.h"
#include "coordinator/asl/errors.h"
#include "coordinator/asl/validator.h"
#include "coordinator/common/status_macros.h"
#include "coordinator/common/strings.h"

namespace saga::asl {

std::string_view StateTypeName(StateType t) {
  switch (t) {
    case StateType::kTask:
      return "Task";
    case StateType::kPass:
      return "Pass";
    case StateType::kChoice:
      return "Choice";
    case StateType::kWait:
      return "Wait";
    case StateType::kSucceed:
      return "Succeed";
    case StateType::kFail:
      return "Fail";
    case StateType::kParallel:
      return "Parallel";
    case StateType::kMap:
      return "Map";
    case StateType::kCompensate:
      return "Compensate";
  }
  return "Unknown";
}

const State* StateMachine::Find(std::string_view name) const {
  auto it = index_by_name.find(std::string(name));
  return it == index_by_name.end() ? nullptr : &states[static_cast<size_t>(it->second)];
}

// ---------------------------------------------------------------------------
// Payload templates

struct PayloadTemplate::Node {
  enum class Kind : uint8_t { kLiteral, kPath, kIntrinsic, kObject, kArray };
  Kind kind = Kind::kLiteral;
  json::Value literal;                                // kLiteral
  JsonPath path;                                      // kPath
  Intrinsic intrinsic;                                // kIntrinsic
  std::string field;                                  // the ".$" key, for error messages
  std::vector<std::pair<std::string, Node>> members;  // kObject
  std::vector<Node> elements;                         // kArray
};

namespace {

bool IsStatic(const PayloadTemplate::Node& n) {
  return n.kind == PayloadTemplate::Node::Kind::kLiteral;
}

absl::StatusOr<PayloadTemplate::Node> CompileNode(const json::Value& v, bool* uses_context) {
  using Node = PayloadTemplate::Node;
  Node n;
  if (v.is_object()) {
    n.kind = Node::Kind::kObject;
    bool all_static = true;
    for (const auto& [key, val] : v.as_object()) {
      if (key.size() > 2 && absl::EndsWith(key, ".$") && val.is_string()) {
        Node d;
        d.field = key;
        const std::string& expr = val.as_string();
        if (absl::StrContains(expr, "$$")) *uses_context = true;
        if (LooksLikeIntrinsic(expr)) {
          d.kind = Node::Kind::kIntrinsic;
          ASSIGN_OR_RETURN(d.intrinsic, Intrinsic::Parse(expr));
        } else {
          d.kind = Node::Kind::kPath;
          ASSIGN_OR_RETURN(d.path, JsonPath::Parse(expr));
        }
        all_static = false;
        n.members.emplace_back(key.substr(0, key.size() - 2), std::move(d));
      } else {
        ASSIGN_OR_RETURN(Node child, CompileNode(val, uses_context));
        all_static = all_static && IsStatic(child);
        n.members.emplace_back(key, std::move(child));
      }
    }
    if (all_static) {
      // Fold a fully static subtree into one shared literal.
      json::Object o;
      o.reserve(n.members.size());
      for (auto& [k, child] : n.members) o.emplace_back(k, child.literal);
      Node lit;
      lit.literal = json::Value(std::move(o));
      return lit;
    }
    return n;
  }
  if (v.is_array()) {
    n.kind = Node::Kind::kArray;
    bool all_static = true;
    for (const auto& e : v.as_array()) {
      ASSIGN_OR_RETURN(Node child, CompileNode(e, uses_context));
      all_static = all_static && IsStatic(child);
      n.elements.push_back(std::move(child));
    }
    if (all_static) {
      Node lit;
      lit.literal = v;
      return lit;
    }
    return n;
  }
  n.literal = v;
  return n;
}

absl::StatusOr<json::Value> EvalNode(const PayloadTemplate::Node& n, const json::Value& input,
                                     const json::Value& context, Rng* rng) {
  using Node = PayloadTemplate::Node;
  switch (n.kind) {
    case Node::Kind::kLiteral:
      return n.literal;
    case Node::Kind::kPath: {
      auto r = n.path.Evaluate(input, context);
      if (!r.ok()) {
        return AslError(kStatesRuntime,
                        saga::StrCat("The JSONPath '", n.path.text(), "' specified for the field '",
                                     n.field, "' could not be found in the input '",
                                     n.path.is_context() ? context.Dump() : input.Dump(), "'"));
      }
      return r;
    }
    case Node::Kind::kIntrinsic:
      return n.intrinsic.Evaluate(IntrinsicEnv{input, context, rng});
    case Node::Kind::kObject: {
      json::Object o;
      o.reserve(n.members.size());
      for (const auto& [k, child] : n.members) {
        ASSIGN_OR_RETURN(json::Value v, EvalNode(child, input, context, rng));
        o.emplace_back(k, std::move(v));
      }
      return json::Value(std::move(o));
    }
    case Node::Kind::kArray: {
      json::Array a;
      a.reserve(n.elements.size());
      for (const auto& child : n.elements) {
        ASSIGN_OR_RETURN(json::Value v, EvalNode(child, input, context, rng));
        a.push_back(std::move(v));
      }
      return json::Value(std::move(a));
    }
  }
  return absl::InternalError("unreachable");
}

}  // namespace

absl::StatusOr<PayloadTemplate> PayloadTemplate::Compile(const json::Value& tpl) {
  PayloadTemplate t;
  ASSIGN_OR_RETURN(Node root, CompileNode(tpl, &t.uses_context_));
  t.root_ = std::make_shared<const Node>(std::move(root));
  return t;
}

absl::StatusOr<json::Value> PayloadTemplate::Evaluate(const json::Value& input,
                                                      const json::Value& context, Rng* rng) const {
  return EvalNode(*root_, input, context, rng);
}

// ---------------------------------------------------------------------------
// Compilation of states

namespace {

struct Compiler {
  absl::Status Fail(std::string_view where, std::string_view what) {
    return absl::InvalidArgumentError(saga::StrCat(where, ": ", what));
  }

  static std::optional<int64_t> OptInt(const json::Value& s, std::string_view key) {
    const json::Value* v = s.Find(key);
    if (v == nullptr || !v->is_number()) return std::nullopt;
    return static_cast<int64_t>(v->as_double());
  }
  static std::optional<double> OptNum(const json::Value& s, std::string_view key) {
    const json::Value* v = s.Find(key);
    if (v == nullptr || !v->is_number()) return std::nullopt;
    return v->as_double();
  }
  static std::string Str(const json::Value& s, std::string_view key) {
    const json::Value* v = s.Find(key);
    return v != nullptr && v->is_string() ? v->as_string() : std::string();
  }

  absl::StatusOr<std::optional<JsonPath>> OptPath(const json::Value& s, std::string_view key) {
    const json::Value* v = s.Find(key);
    if (v == nullptr || !v->is_string()) return std::optional<JsonPath>();
    ASSIGN_OR_RETURN(JsonPath p, JsonPath::Parse(v->as_string()));
    return std::optional<JsonPath>(std::move(p));
  }

  absl::StatusOr<PathField> Field(const json::Value& s, std::string_view key) {
    PathField f;
    const json::Value* v = s.Find(key);
    if (v == nullptr) return f;
    if (v->is_null()) {
      f.kind = PathField::Kind::kNull;
      return f;
    }
    if (!v->is_string()) return Fail(key, "must be a string or null");
    f.kind = PathField::Kind::kPath;
    ASSIGN_OR_RETURN(f.path, JsonPath::Parse(v->as_string()));
    return f;
  }

  absl::StatusOr<std::optional<PayloadTemplate>> Template(const json::Value& s,
                                                          std::string_view key) {
    const json::Value* v = s.Find(key);
    if (v == nullptr) return std::optional<PayloadTemplate>();
    ASSIGN_OR_RETURN(PayloadTemplate t, PayloadTemplate::Compile(*v));
    return std::optional<PayloadTemplate>(std::move(t));
  }

  absl::StatusOr<std::vector<Retrier>> Retriers(const json::Value& s) {
    std::vector<Retrier> out;
    const json::Value* r = s.Find("Retry");
    if (r == nullptr || !r->is_array()) return out;
    for (const auto& e : r->as_array()) {
      Retrier rt;
      if (const json::Value* eq = e.Find("ErrorEquals"); eq && eq->is_array()) {
        for (const auto& n : eq->as_array()) {
          if (n.is_string()) rt.error_equals.push_back(n.as_string());
        }
      }
      if (auto v = OptNum(e, "IntervalSeconds")) rt.interval_seconds = *v;
      if (auto v = OptInt(e, "MaxAttempts")) rt.max_attempts = *v;
      if (auto v = OptNum(e, "BackoffRate")) rt.backoff_rate = *v;
      rt.max_delay_seconds = OptInt(e, "MaxDelaySeconds");
      rt.jitter_full = Str(e, "JitterStrategy") == "FULL";
      out.push_back(std::move(rt));
    }
    return out;
  }

  absl::StatusOr<DynamicValue> Dynamic(const std::string& expr) {
    DynamicValue d;
    if (LooksLikeIntrinsic(expr)) {
      d.is_intrinsic = true;
      ASSIGN_OR_RETURN(d.intrinsic, Intrinsic::Parse(expr));
    } else {
      ASSIGN_OR_RETURN(d.path, JsonPath::Parse(expr));
    }
    return d;
  }

  absl::StatusOr<std::shared_ptr<const StateMachine>> Machine(const json::Value& def,
                                                              bool top_level) {
    auto m = std::make_shared<StateMachine>();
    const json::Value* states = def.Find("States");
    if (states == nullptr || !states->is_object()) return Fail("States", "must be an object");
    int i = 0;
    for (const auto& [name, _] : states->as_object()) m->index_by_name[name] = i++;
    auto resolve = [&](const std::string& name) -> absl::StatusOr<int> {
      auto it = m->index_by_name.find(name);
      if (it == m->index_by_name.end()) return Fail(name, "names no state");
      return it->second;
    };
    ASSIGN_OR_RETURN(m->start_at, resolve(Str(def, "StartAt")));
    if (top_level) m->timeout_seconds = OptInt(def, "TimeoutSeconds");
    m->states.reserve(states->size());
    for (const auto& [name, sj] : states->as_object()) {
      State st;
      st.name = name;
      st.index = static_cast<int>(m->states.size());
      st.uses_context = absl::StrContains(sj.Dump(), "$$");
      const std::string type = Str(sj, "Type");
      if (type == "Task") {
        st.type = StateType::kTask;
      } else if (type == "Pass") {
        st.type = StateType::kPass;
      } else if (type == "Choice") {
        st.type = StateType::kChoice;
      } else if (type == "Wait") {
        st.type = StateType::kWait;
      } else if (type == "Succeed") {
        st.type = StateType::kSucceed;
      } else if (type == "Fail") {
        st.type = StateType::kFail;
      } else if (type == "Parallel") {
        st.type = StateType::kParallel;
      } else if (type == "Map") {
        st.type = StateType::kMap;
      } else if (type == "Compensate") {
        st.type = StateType::kCompensate;
      } else {
        return Fail(name, saga::StrCat("unknown state type '", type, "'"));
      }
      if (const json::Value* n = sj.Find("Next"); n && n->is_string()) {
        ASSIGN_OR_RETURN(st.next, resolve(n->as_string()));
      }
      if (const json::Value* e = sj.Find("End"); e && e->is_bool()) st.end = e->as_bool();
      ASSIGN_OR_RETURN(st.input_path, Field(sj, "InputPath"));
      ASSIGN_OR_RETURN(st.output_path, Field(sj, "OutputPath"));
      ASSIGN_OR_RETURN(st.result_path, Field(sj, "ResultPath"));
      ASSIGN_OR_RETURN(st.result_selector, Template(sj, "ResultSelector"));
      ASSIGN_OR_RETURN(st.retry, Retriers(sj));
      if (const json::Value* c = sj.Find("Catch"); c && c->is_array()) {
        for (const auto& cj : c->as_array()) {
          Catcher ct;
          if (const json::Value* eq = cj.Find("ErrorEquals"); eq && eq->is_array()) {
            for (const auto& n : eq->as_array()) {
              if (n.is_string()) ct.error_equals.push_back(n.as_string());
            }
          }
          ASSIGN_OR_RETURN(ct.next, resolve(Str(cj, "Next")));
          ASSIGN_OR_RETURN(ct.result_path, Field(cj, "ResultPath"));
          st.catchers.push_back(std::move(ct));
        }
      }
      switch (st.type) {
        case StateType::kPass: {
          if (const json::Value* r = sj.Find("Result")) st.result = *r;
          ASSIGN_OR_RETURN(st.parameters, Template(sj, "Parameters"));
          break;
        }
        case StateType::kTask: {
          st.resource = Str(sj, "Resource");
          ASSIGN_OR_RETURN(st.parameters, Template(sj, "Parameters"));
          st.timeout_seconds = OptInt(sj, "TimeoutSeconds");
          st.heartbeat_seconds = OptInt(sj, "HeartbeatSeconds");
          ASSIGN_OR_RETURN(st.timeout_seconds_path, OptPath(sj, "TimeoutSecondsPath"));
          ASSIGN_OR_RETURN(st.heartbeat_seconds_path, OptPath(sj, "HeartbeatSecondsPath"));
          if (const json::Value* c = sj.Find("Compensation"); c && c->is_object()) {
            Compensation comp;
            comp.resource = Str(*c, "Resource");
            ASSIGN_OR_RETURN(comp.parameters, Template(*c, "Parameters"));
            ASSIGN_OR_RETURN(comp.retry, Retriers(*c));
            comp.timeout_seconds = OptInt(*c, "TimeoutSeconds");
            comp.heartbeat_seconds = OptInt(*c, "HeartbeatSeconds");
            st.compensation = std::move(comp);
          }
          break;
        }
        case StateType::kChoice: {
          if (const json::Value* cs = sj.Find("Choices"); cs && cs->is_array()) {
            for (const auto& cj : cs->as_array()) {
              State::Choice ch;
              ASSIGN_OR_RETURN(ch.rule, ChoiceRule::Compile(cj));
              ASSIGN_OR_RETURN(ch.next, resolve(Str(cj, "Next")));
              st.choices.push_back(std::move(ch));
            }
          }
          if (const json::Value* d = sj.Find("Default"); d && d->is_string()) {
            ASSIGN_OR_RETURN(st.default_next, resolve(d->as_string()));
          }
          break;
        }
        case StateType::kWait: {
          st.seconds = OptNum(sj, "Seconds");
          if (const json::Value* t = sj.Find("Timestamp"); t && t->is_string()) {
            st.timestamp_micros = ParseTimestampMicros(t->as_string());
            if (!st.timestamp_micros) return Fail(name, "Timestamp is not an RFC 3339 timestamp");
          }
          ASSIGN_OR_RETURN(st.seconds_path, OptPath(sj, "SecondsPath"));
          ASSIGN_OR_RETURN(st.timestamp_path, OptPath(sj, "TimestampPath"));
          break;
        }
        case StateType::kFail: {
          if (const json::Value* v = sj.Find("Error"); v && v->is_string())
            st.error = v->as_string();
          if (const json::Value* v = sj.Find("Cause"); v && v->is_string())
            st.cause = v->as_string();
          if (const json::Value* v = sj.Find("ErrorPath"); v && v->is_string()) {
            ASSIGN_OR_RETURN(st.error_path, Dynamic(v->as_string()));
          }
          if (const json::Value* v = sj.Find("CausePath"); v && v->is_string()) {
            ASSIGN_OR_RETURN(st.cause_path, Dynamic(v->as_string()));
          }
          break;
        }
        case StateType::kParallel: {
          ASSIGN_OR_RETURN(st.parameters, Template(sj, "Parameters"));
          if (const json::Value* bs = sj.Find("Branches"); bs && bs->is_array()) {
            for (const auto& b : bs->as_array()) {
              ASSIGN_OR_RETURN(auto bm, Machine(b, false));
              st.branches.push_back(std::move(bm));
            }
          }
          break;
        }
        case StateType::kMap: {
          ASSIGN_OR_RETURN(st.items_path, OptPath(sj, "ItemsPath"));
          ASSIGN_OR_RETURN(st.item_selector, Template(sj, "ItemSelector"));
          if (!st.item_selector) {
            ASSIGN_OR_RETURN(st.item_selector, Template(sj, "Parameters"));
          }
          const json::Value* proc = sj.Find("ItemProcessor");
          if (proc == nullptr) proc = sj.Find("Iterator");
          if (proc == nullptr) return Fail(name, "Map state needs an ItemProcessor");
          ASSIGN_OR_RETURN(st.processor, Machine(*proc, false));
          if (auto v = OptInt(sj, "MaxConcurrency")) st.max_concurrency = *v;
          ASSIGN_OR_RETURN(st.max_concurrency_path, OptPath(sj, "MaxConcurrencyPath"));
          st.tolerated_failure_count = OptInt(sj, "ToleratedFailureCount");
          st.tolerated_failure_percentage = OptNum(sj, "ToleratedFailurePercentage");
          ASSIGN_OR_RETURN(st.tolerated_failure_count_path,
                           OptPath(sj, "ToleratedFailureCountPath"));
          ASSIGN_OR_RETURN(st.tolerated_failure_percentage_path,
                           OptPath(sj, "ToleratedFailurePercentagePath"));
          break;
        }
        default:
          break;
      }
      m->states.push_back(std::move(st));
    }
    return std::shared_ptr<const StateMachine>(std::move(m));
  }
};

}  // namespace

absl::StatusOr<std::shared_ptr<const StateMachine>> Compile(const json::Value& definition) {
  Compiler c;
  return c.Machine(definition, true);
}

absl::StatusOr<std::shared_ptr<const StateMachine>> CompileText(std::string_view text) {
  std::vector<ValidationError> errors = ValidateText(text);
  if (errors.empty()) {
    auto parsed = json::Parse(text);
    if (!parsed.ok()) return parsed.status();
    auto compiled = Compile(*parsed);
    if (compiled.ok()) return compiled;
    errors.push_back({"$", std::string(compiled.status().message())});
  }
  return absl::InvalidArgumentError(ValidationErrorsToJson(errors).Dump());
}

}  // namespace saga::asl
