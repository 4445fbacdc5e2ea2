#include "coordinator/asl/validator.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "coordinator/asl/choice.h"
#include "coordinator/asl/errors.h"
#include "coordinator/asl/intrinsics.h"
#include "coordinator/asl/jsonpath.h"

namespace saga::asl {
namespace {

using json::Value;

// String concatenation over std::string_view and integers (this abseil build's
// absl::string_view is not std::string_view, so absl::StrCat is awkward here).
inline void AppendPiece(std::string* out, std::string_view s) { out->append(s); }
template <typename T>
requires std::is_same_v<T, absl::string_view>
void AppendPiece(std::string* out, const T& s) { out->append(s.data(), s.size()); }
template <typename T>
requires std::is_integral_v<T>
void AppendPiece(std::string* out, T n) { out->append(std::to_string(n)); }
template <typename... A>
std::string Cat(const A&... pieces) {
  std::string out;
  (AppendPiece(&out, pieces), ...);
  return out;
}

constexpr int64_t kMaxDelaySecondsCap = 31622400;  // one (leap) year
constexpr size_t kMaxNameChars = 80;

// ---------------------------------------------------------------------------
// Locations: the printed path plus the member/element indexes leading to the
// node, so that errors can be put in document order at the end.

struct Loc {
  std::string path;
  std::vector<uint32_t> pos;

  Loc Field(std::string_view key, size_t index) const {
    Loc l{Cat(path, ".", key), pos};
    l.pos.push_back(static_cast<uint32_t>(index));
    return l;
  }
  Loc Index(size_t i) const {
    Loc l{Cat(path, "[", i, "]"), pos};
    l.pos.push_back(static_cast<uint32_t>(i));
    return l;
  }
};

// The first member named `key` of object `obj` and its index.
const Value* FindMember(const Value& obj, std::string_view key, size_t* index) {
  if (!obj.is_object()) return nullptr;
  const json::Object& o = obj.as_object();
  for (size_t i = 0; i < o.size(); ++i) {
    if (o[i].first == key) {
      if (index != nullptr) *index = i;
      return &o[i].second;
    }
  }
  return nullptr;
}

std::string_view TypeOf(const Value& v) { return json::TypeName(v.type()); }

// Decodes one UTF-8 code point at s[*i], advancing *i. Returns -1 when invalid.
int32_t NextCodePoint(std::string_view s, size_t* i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(*i);
  int len;
  int32_t cp;
  if (c < 0x80) {
    ++*i;
    return c;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return -1;
  }
  if (*i + len > s.size()) return -1;
  for (int k = 1; k < len; ++k) {
    unsigned char cc = byte(*i + k);
    if ((cc & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr int32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *i += len;
  return cp;
}

bool IsUnicodeWhitespace(int32_t cp) {
  return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

std::string DescribeChar(int32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
    return absl::StrFormat("control character U+%04X", cp);
  }
  if (cp == ' ') return "a space";
  if (IsUnicodeWhitespace(cp)) return absl::StrFormat("whitespace character U+%04X", cp);
  return Cat("'", std::string(1, static_cast<char>(cp)), "'");
}

// `allow_space` (state names): the API reference gives state names the same
// forbidden characters as state machine and execution names, but plain
// spaces are everywhere in real definitions ("Lambda Invoke", the spec's
// "Hello World"), so a state name may contain U+0020.
std::string CheckNameImpl(std::string_view name, bool allow_space) {
  if (name.empty()) return "name must not be empty";
  size_t chars = 0;
  size_t i = 0;
  while (i < name.size()) {
    int32_t cp = NextCodePoint(name, &i);
    if (cp < 0) return "name is not valid UTF-8";
    ++chars;
    if (cp == ' ' && allow_space) continue;
    bool bad = cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || IsUnicodeWhitespace(cp);
    if (!bad && cp < 0x80) {
      static constexpr std::string_view kForbidden = "<>{}[]?*\"#%\\^|~`$&,;:/";
      bad = kForbidden.find(static_cast<char>(cp)) != std::string_view::npos;
    }
    if (bad) return Cat("name must not contain ", DescribeChar(cp));
  }
  if (chars > kMaxNameChars) {
    return Cat("name must be at most ", kMaxNameChars, " characters long (it has ", chars, ")");
  }
  return "";
}

// ---------------------------------------------------------------------------
// State types and the fields each allows.

enum class Kind { kTask, kPass, kChoice, kWait, kSucceed, kFail, kParallel, kMap, kCompensate };

struct KindInfo {
  std::string_view name;
  Kind kind;
  bool needs_next_or_end;
  std::vector<std::string_view> fields;  // besides Type, Comment, QueryLanguage
};

const std::vector<KindInfo>& Kinds() {
  static const auto* kinds = new std::vector<KindInfo>{
      {"Task",
       Kind::kTask,
       true,
       {"Resource", "Parameters", "ResultSelector", "ResultPath", "InputPath", "OutputPath",
        "Retry", "Catch", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
        "HeartbeatSecondsPath", "Credentials", "Next", "End", "Compensation"}},
      {"Pass",
       Kind::kPass,
       true,
       {"Result", "Parameters", "InputPath", "OutputPath", "ResultPath", "Next", "End"}},
      {"Choice", Kind::kChoice, false, {"Choices", "Default", "InputPath", "OutputPath"}},
      {"Wait",
       Kind::kWait,
       true,
       {"Seconds", "Timestamp", "SecondsPath", "TimestampPath", "InputPath", "OutputPath", "Next",
        "End"}},
      {"Succeed", Kind::kSucceed, false, {"InputPath", "OutputPath"}},
      {"Fail", Kind::kFail, false, {"Error", "ErrorPath", "Cause", "CausePath"}},
      {"Parallel",
       Kind::kParallel,
       true,
       {"Branches", "Parameters", "ResultSelector", "ResultPath", "InputPath", "OutputPath",
        "Retry", "Catch", "Next", "End"}},
      {"Map",
       Kind::kMap,
       true,
       {"ItemProcessor",
        "Iterator",
        "ItemsPath",
        "ItemSelector",
        "Parameters",
        "MaxConcurrency",
        "MaxConcurrencyPath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ResultSelector",
        "ResultPath",
        "InputPath",
        "OutputPath",
        "Retry",
        "Catch",
        "Next",
        "End",
        "Label"}},
      {"Compensate",
       Kind::kCompensate,
       true,
       {"ResultPath", "InputPath", "OutputPath", "Next", "End"}},
  };
  return *kinds;
}

const KindInfo* FindKind(std::string_view name) {
  for (const KindInfo& k : Kinds()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

bool Contains(const std::vector<std::string_view>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// JSONata / variables fields we do not support yet, wherever they appear.
bool IsUnsupportedDataField(std::string_view key) {
  return key == "Arguments" || key == "Output" || key == "Assign" || key == "Items";
}

// ---------------------------------------------------------------------------
// Choice rule operators.

enum class Operand { kString, kNumber, kBool, kTimestamp, kPath };

struct OperatorInfo {
  std::string_view name;
  Operand operand;
};

constexpr OperatorInfo kOperators[] = {
    {"StringEquals", Operand::kString},
    {"StringEqualsPath", Operand::kPath},
    {"StringLessThan", Operand::kString},
    {"StringLessThanPath", Operand::kPath},
    {"StringGreaterThan", Operand::kString},
    {"StringGreaterThanPath", Operand::kPath},
    {"StringLessThanEquals", Operand::kString},
    {"StringLessThanEqualsPath", Operand::kPath},
    {"StringGreaterThanEquals", Operand::kString},
    {"StringGreaterThanEqualsPath", Operand::kPath},
    {"StringMatches", Operand::kString},
    {"NumericEquals", Operand::kNumber},
    {"NumericEqualsPath", Operand::kPath},
    {"NumericLessThan", Operand::kNumber},
    {"NumericLessThanPath", Operand::kPath},
    {"NumericGreaterThan", Operand::kNumber},
    {"NumericGreaterThanPath", Operand::kPath},
    {"NumericLessThanEquals", Operand::kNumber},
    {"NumericLessThanEqualsPath", Operand::kPath},
    {"NumericGreaterThanEquals", Operand::kNumber},
    {"NumericGreaterThanEqualsPath", Operand::kPath},
    {"BooleanEquals", Operand::kBool},
    {"BooleanEqualsPath", Operand::kPath},
    {"TimestampEquals", Operand::kTimestamp},
    {"TimestampEqualsPath", Operand::kPath},
    {"TimestampLessThan", Operand::kTimestamp},
    {"TimestampLessThanPath", Operand::kPath},
    {"TimestampGreaterThan", Operand::kTimestamp},
    {"TimestampGreaterThanPath", Operand::kPath},
    {"TimestampLessThanEquals", Operand::kTimestamp},
    {"TimestampLessThanEqualsPath", Operand::kPath},
    {"TimestampGreaterThanEquals", Operand::kTimestamp},
    {"TimestampGreaterThanEqualsPath", Operand::kPath},
    {"IsNull", Operand::kBool},
    {"IsPresent", Operand::kBool},
    {"IsNumeric", Operand::kBool},
    {"IsString", Operand::kBool},
    {"IsBoolean", Operand::kBool},
    {"IsTimestamp", Operand::kBool},
};

const OperatorInfo* FindOperator(std::string_view name) {
  for (const OperatorInfo& op : kOperators) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------

class Validator {
 public:
  std::vector<ValidationError> Run(const Value& root) {
    Loc loc{"$", {}};
    if (!root.is_object()) {
      Error(loc, Cat("definition must be a JSON object, not ", TypeOf(root)));
    } else {
      Machine(root, loc, MachineKind::kTop);
    }
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<ValidationError> out;
    out.reserve(errors_.size());
    for (auto& e : errors_) out.push_back(std::move(e.second));
    return out;
  }

 private:
  enum class MachineKind { kTop, kBranch, kItemProcessor, kIterator };

  struct Scope {
    std::set<std::string, std::less<>> names;
    std::set<std::string, std::less<>> reachable;
    bool check_reachability = false;
    bool Has(std::string_view name) const { return names.find(name) != names.end(); }
  };

  void Error(const Loc& loc, std::string message) {
    errors_.emplace_back(loc.pos, ValidationError{loc.path, std::move(message)});
  }

  // --- generic value checks (each returns whether the value is acceptable) ---

  bool ExpectString(const Value& v, const Loc& loc, std::string_view field) {
    if (v.is_string()) return true;
    Error(loc, Cat(field, " must be a string, not ", TypeOf(v)));
    return false;
  }

  bool ExpectNonEmptyString(const Value& v, const Loc& loc, std::string_view field) {
    if (!ExpectString(v, loc, field)) return false;
    if (!v.as_string().empty()) return true;
    Error(loc, Cat(field, " must not be empty"));
    return false;
  }

  bool ExpectBool(const Value& v, const Loc& loc, std::string_view field) {
    if (v.is_bool()) return true;
    Error(loc, Cat(field, " must be a boolean, not ", TypeOf(v)));
    return false;
  }

  bool ExpectObject(const Value& v, const Loc& loc, std::string_view field) {
    if (v.is_object()) return true;
    Error(loc, Cat(field, " must be an object, not ", TypeOf(v)));
    return false;
  }

  // An integer (not a double) in [min, max].
  bool ExpectInt(const Value& v, const Loc& loc, std::string_view field, int64_t min, int64_t max) {
    std::string_view kind = min > 0 ? "a positive integer" : "a non-negative integer";
    if (!v.is_int()) {
      Error(loc, Cat(field, " must be ", kind, ", not ",
                     v.is_number() ? "a non-integral number" : TypeOf(v)));
      return false;
    }
    int64_t n = v.as_int();
    if (n < min) {
      Error(loc, Cat(field, " must be ", kind, " (got ", n, ")"));
      return false;
    }
    if (n > max) {
      Error(loc, Cat(field, " must be at most ", max, " (got ", n, ")"));
      return false;
    }
    return true;
  }

  // Any valid JSONPath (string). Returns the parsed path.
  std::optional<JsonPath> ExpectPath(const Value& v, const Loc& loc, std::string_view field) {
    if (!v.is_string()) {
      Error(loc, Cat(field, " must be a JSONPath string, not ", TypeOf(v)));
      return std::nullopt;
    }
    if (LooksLikeIntrinsic(v.as_string())) {
      Error(loc, Cat(field, " must be a JSONPath; intrinsic functions are not allowed"));
      return std::nullopt;
    }
    absl::StatusOr<JsonPath> p = JsonPath::Parse(v.as_string());
    if (!p.ok()) {
      Error(loc, Cat(field, " is not a valid JSONPath: ", p.status().message()));
      return std::nullopt;
    }
    return *std::move(p);
  }

  void ExpectNullablePath(const Value& v, const Loc& loc, std::string_view field) {
    if (v.is_null()) return;
    ExpectPath(v, loc, field);
  }

  bool ExpectReferencePath(const Value& v, const Loc& loc, std::string_view field) {
    std::optional<JsonPath> p = ExpectPath(v, loc, field);
    if (!p) return false;
    if (!p->is_reference_path()) {
      Error(loc, Cat(field,
                     " must be a reference path (only names and indexes, "
                     "identifying a single node): '",
                     v.as_string(), "'"));
      return false;
    }
    return true;
  }

  void ExpectResultPath(const Value& v, const Loc& loc, std::string_view field) {
    if (v.is_null()) return;
    std::optional<JsonPath> p = ExpectPath(v, loc, field);
    if (!p) return;
    if (p->is_context()) {
      Error(loc, Cat(field, " cannot refer to the context object ($$)"));
    } else if (!p->is_reference_path()) {
      Error(loc, Cat(field,
                     " must be a reference path (only names and indexes, "
                     "identifying a single node): '",
                     v.as_string(), "'"));
    }
  }

  // A reference path or an intrinsic function call (Fail ErrorPath/CausePath).
  void ExpectReferencePathOrIntrinsic(const Value& v, const Loc& loc, std::string_view field) {
    if (v.is_string() && LooksLikeIntrinsic(v.as_string())) {
      CheckIntrinsic(v.as_string(), loc, field);
      return;
    }
    ExpectReferencePath(v, loc, field);
  }

  void CheckIntrinsic(const std::string& text, const Loc& loc, std::string_view field) {
    absl::StatusOr<Intrinsic> f = Intrinsic::Parse(text);
    if (!f.ok()) {
      Error(loc, Cat(field, " is not a valid intrinsic function call: ", f.status().message()));
    }
  }

  void ExpectTimestamp(const Value& v, const Loc& loc, std::string_view field) {
    if (!ExpectString(v, loc, field)) return;
    if (!ParseTimestampMicros(v.as_string()).has_value()) {
      Error(loc, Cat(field,
                     " must be an RFC 3339 timestamp such as "
                     "\"2016-03-14T01:59:00Z\", not \"",
                     v.as_string(), "\""));
    }
  }

  // Reports repeated member names of object `obj` (json::Parse keeps only the
  // last, but Values built in code may repeat keys).
  void CheckDuplicateKeys(const Value& obj, const Loc& loc) {
    const json::Object& o = obj.as_object();
    std::set<std::string_view> seen;
    for (size_t i = 0; i < o.size(); ++i) {
      if (!seen.insert(o[i].first).second) {
        Error(loc.Field(o[i].first, i), Cat("Field '", o[i].first, "' appears more than once"));
      }
    }
  }

  // Checks the QueryLanguage field (top level or state).
  void QueryLanguage(const Value& v, const Loc& loc) {
    if (v.is_string() && v.as_string() == "JSONPath") return;
    if (v.is_string() && v.as_string() == "JSONata") {
      Error(loc, "QueryLanguage JSONata is not supported yet");
      return;
    }
    Error(loc, "QueryLanguage must be \"JSONPath\" (or \"JSONata\", not supported yet)");
  }

  // --- payload templates (Parameters, ResultSelector, ItemSelector, ...) ---

  // A bad "k.$" value is reported at the template object that holds it (as
  // AWS does: "... for the field 'k.$' ... at /States/X/Parameters"), the
  // message naming the key; the template's own path is `root`.
  void PayloadTemplate(const Value& v, const Loc& loc, std::string_view field) {
    if (!ExpectObject(v, loc, field)) return;
    TemplateNode(v, loc, loc);
  }

  void TemplateNode(const Value& v, const Loc& loc, const Loc& root) {
    if (v.is_array()) {
      const json::Array& a = v.as_array();
      for (size_t i = 0; i < a.size(); ++i) TemplateNode(a[i], loc.Index(i), root);
      return;
    }
    if (!v.is_object()) return;
    const json::Object& o = v.as_object();
    std::map<std::string_view, std::string_view> effective;  // stripped name -> original
    for (size_t i = 0; i < o.size(); ++i) {
      const std::string& key = o[i].first;
      const Value& val = o[i].second;
      Loc l = loc.Field(key, i);
      bool dynamic = std::string_view(key).ends_with(".$");
      std::string_view name(key);
      if (dynamic) name.remove_suffix(2);
      auto [it, inserted] = effective.emplace(name, key);
      if (!inserted) {
        Error(l, Cat("Field '", key, "' clashes with '", it->second, "': both produce the field '",
                     name, "'"));
      }
      if (!dynamic) {
        TemplateNode(val, l, root);
        continue;
      }
      if (!val.is_string()) {
        Error(root, Cat("Field '", key,
                        "' ends in \".$\", so its value must be a JSONPath or intrinsic "
                        "function string, not ",
                        TypeOf(val)));
        continue;
      }
      const std::string& s = val.as_string();
      if (LooksLikeIntrinsic(s)) {
        CheckIntrinsic(s, root, Cat("Field '", key, "'"));
      } else if (std::string_view(s).starts_with("$")) {
        absl::StatusOr<JsonPath> p = JsonPath::Parse(s);
        if (!p.ok()) {
          Error(root, Cat("Field '", key, "' is not a valid JSONPath: ", p.status().message()));
        }
      } else {
        Error(root, Cat("Field '", key, "' ends in \".$\" but its value \"", s,
                        "\" is not a JSONPath or intrinsic function"));
      }
    }
  }

  // --- Retry / Catch ---

  // Returns whether the array contains States.ALL.
  bool ErrorEquals(const Value& v, const Loc& loc) {
    if (!v.is_array()) {
      Error(loc, Cat("ErrorEquals must be a non-empty array of strings, not ", TypeOf(v)));
      return false;
    }
    const json::Array& a = v.as_array();
    if (a.empty()) {
      Error(loc, "ErrorEquals must not be empty");
      return false;
    }
    bool has_all = false;
    std::set<std::string_view> seen;
    for (size_t i = 0; i < a.size(); ++i) {
      Loc l = loc.Index(i);
      if (!a[i].is_string()) {
        Error(l, Cat("ErrorEquals entries must be strings, not ", TypeOf(a[i])));
        continue;
      }
      const std::string& name = a[i].as_string();
      if (name.empty()) {
        Error(l, "ErrorEquals entries must not be empty");
        continue;
      }
      if (!seen.insert(name).second) {
        Error(l, Cat("Error name '", name, "' appears more than once in ErrorEquals"));
        continue;
      }
      if (std::string_view(name).starts_with("States.") && !IsKnownStatesError(name)) {
        Error(l, Cat("Unknown predefined error name '", name,
                     "' (names starting with \"States.\" are reserved)"));
        continue;
      }
      if (name == kStatesAll) {
        has_all = true;
        if (a.size() > 1) Error(l, "States.ALL must appear alone in ErrorEquals");
      }
    }
    return has_all;
  }

  void Retriers(const Value& v, const Loc& loc) {
    if (!v.is_array()) {
      Error(loc, Cat("Retry must be an array of retriers, not ", TypeOf(v)));
      return;
    }
    const json::Array& a = v.as_array();
    for (size_t i = 0; i < a.size(); ++i) {
      Loc rl = loc.Index(i);
      const Value& r = a[i];
      if (!r.is_object()) {
        Error(rl, Cat("A retrier must be an object, not ", TypeOf(r)));
        continue;
      }
      CheckDuplicateKeys(r, rl);
      if (FindMember(r, "ErrorEquals", nullptr) == nullptr) {
        Error(rl, "Retrier is missing the required field 'ErrorEquals'");
      }
      const json::Object& o = r.as_object();
      for (size_t k = 0; k < o.size(); ++k) {
        const auto& [key, val] = o[k];
        Loc l = rl.Field(key, k);
        if (key == "ErrorEquals") {
          if (ErrorEquals(val, l) && i + 1 != a.size()) {
            Error(rl, "A retrier with States.ALL must be the last one in Retry");
          }
        } else if (key == "IntervalSeconds") {
          ExpectInt(val, l, key, 1, kMaxSeconds);
        } else if (key == "MaxAttempts") {
          ExpectInt(val, l, key, 0, kMaxSeconds);
        } else if (key == "BackoffRate") {
          if (!val.is_number()) {
            Error(l, Cat("BackoffRate must be a number, not ", TypeOf(val)));
          } else if (val.as_double() < 1.0) {
            Error(l, Cat("BackoffRate must be at least 1.0 (got ", json::FormatNumber(val), ")"));
          }
        } else if (key == "MaxDelaySeconds") {
          ExpectInt(val, l, key, 1, kMaxDelaySecondsCap);
        } else if (key == "JitterStrategy") {
          if (!val.is_string() || (val.as_string() != "FULL" && val.as_string() != "NONE")) {
            Error(l, "JitterStrategy must be \"FULL\" or \"NONE\"");
          }
        } else if (key == "Comment") {
          ExpectString(val, l, key);
        } else {
          Error(l, Cat("Field '", key, "' is not allowed in a retrier"));
        }
      }
    }
  }

  void Catchers(const Value& v, const Loc& loc, const Scope& scope) {
    if (!v.is_array()) {
      Error(loc, Cat("Catch must be an array of catchers, not ", TypeOf(v)));
      return;
    }
    const json::Array& a = v.as_array();
    for (size_t i = 0; i < a.size(); ++i) {
      Loc cl = loc.Index(i);
      const Value& c = a[i];
      if (!c.is_object()) {
        Error(cl, Cat("A catcher must be an object, not ", TypeOf(c)));
        continue;
      }
      CheckDuplicateKeys(c, cl);
      if (FindMember(c, "ErrorEquals", nullptr) == nullptr) {
        Error(cl, "Catcher is missing the required field 'ErrorEquals'");
      }
      if (FindMember(c, "Next", nullptr) == nullptr) {
        Error(cl, "Catcher is missing the required field 'Next'");
      }
      const json::Object& o = c.as_object();
      for (size_t k = 0; k < o.size(); ++k) {
        const auto& [key, val] = o[k];
        Loc l = cl.Field(key, k);
        if (key == "ErrorEquals") {
          if (ErrorEquals(val, l) && i + 1 != a.size()) {
            Error(cl, "A catcher with States.ALL must be the last one in Catch");
          }
        } else if (key == "Next") {
          NextTarget(val, l, scope, key);
        } else if (key == "ResultPath") {
          ExpectResultPath(val, l, key);
        } else if (key == "Comment") {
          ExpectString(val, l, key);
        } else if (IsUnsupportedDataField(key)) {
          Error(l, Cat(key, " is not supported yet"));
        } else {
          Error(l, Cat("Field '", key, "' is not allowed in a catcher"));
        }
      }
    }
  }

  // A Next/Default/catcher Next value: a string naming a state of the scope.
  void NextTarget(const Value& v, const Loc& loc, const Scope& scope, std::string_view field) {
    if (!ExpectString(v, loc, field)) return;
    if (!scope.Has(v.as_string())) {
      Error(loc, Cat(field, " names state '", v.as_string(),
                     "', which does not exist in this States object"));
    }
  }

  // --- Choice rules ---

  void ChoiceRule(const Value& rule, const Loc& loc, bool top_level, const Scope& scope) {
    if (!rule.is_object()) {
      Error(loc, Cat("A Choice rule must be an object, not ", TypeOf(rule)));
      return;
    }
    CheckDuplicateKeys(rule, loc);
    const json::Object& o = rule.as_object();
    bool has_variable = false;
    bool has_next = false;
    int booleans = 0;
    std::vector<size_t> ops;  // indexes of operator members
    for (size_t i = 0; i < o.size(); ++i) {
      const auto& [key, val] = o[i];
      Loc l = loc.Field(key, i);
      if (const OperatorInfo* op = FindOperator(key); op != nullptr) {
        ops.push_back(i);
        CheckOperand(op->operand, val, l, key);
      } else if (key == "Variable") {
        has_variable = true;
        ExpectPath(val, l, key);
      } else if (key == "And" || key == "Or") {
        ++booleans;
        if (!val.is_array()) {
          Error(l, Cat(key, " must be a non-empty array of Choice rules, not ", TypeOf(val)));
        } else if (val.as_array().empty()) {
          Error(l, Cat(key, " must not be empty"));
        } else {
          const json::Array& a = val.as_array();
          for (size_t k = 0; k < a.size(); ++k) ChoiceRule(a[k], l.Index(k), false, scope);
        }
      } else if (key == "Not") {
        ++booleans;
        if (ExpectObject(val, l, key)) ChoiceRule(val, l, false, scope);
      } else if (key == "Next") {
        has_next = true;
        if (top_level) {
          NextTarget(val, l, scope, key);
        } else {
          Error(l, "Next is not allowed in a nested Choice rule (inside And, Or or Not)");
        }
      } else if (key == "Comment") {
        ExpectString(val, l, key);
      } else if (key == "Condition") {
        Error(l, "Condition (JSONata) is not supported yet");
      } else if (top_level && IsUnsupportedDataField(key)) {
        Error(l, Cat(key, " is not supported yet"));
      } else {
        Error(l, Cat("Field '", key, "' is not allowed in a Choice rule"));
      }
    }
    if (top_level && !has_next) Error(loc, "Choice rule is missing the required field 'Next'");
    bool comparison = has_variable || !ops.empty();
    if (booleans + (comparison ? 1 : 0) > 1) {
      Error(loc,
            "A Choice rule must be exactly one of: a comparison (Variable and one operator), "
            "And, Or or Not");
      return;
    }
    if (booleans == 1) return;
    if (!comparison) {
      Error(loc,
            "A Choice rule needs a Variable and a comparison operator, or an And, Or or Not "
            "field");
      return;
    }
    if (!has_variable) Error(loc, "Choice rule is missing the required field 'Variable'");
    if (ops.empty()) {
      Error(loc, "Choice rule has a Variable but no comparison operator");
    }
    for (size_t k = 1; k < ops.size(); ++k) {
      const std::string& key = o[ops[k]].first;
      Error(loc.Field(key, ops[k]),
            Cat("A Choice rule must have exactly one comparison operator; '", key, "' follows '",
                o[ops[0]].first, "'"));
    }
  }

  void CheckOperand(Operand type, const Value& v, const Loc& loc, std::string_view op) {
    switch (type) {
      case Operand::kString:
        ExpectString(v, loc, op);
        break;
      case Operand::kNumber:
        if (!v.is_number()) Error(loc, Cat(op, " must be a number, not ", TypeOf(v)));
        break;
      case Operand::kBool:
        ExpectBool(v, loc, op);
        break;
      case Operand::kTimestamp:
        ExpectTimestamp(v, loc, op);
        break;
      case Operand::kPath:
        ExpectPath(v, loc, op);
        break;
    }
  }

  // --- Compensation (saga extension on Task states) ---

  void Compensation(const Value& v, const Loc& loc) {
    if (!ExpectObject(v, loc, "Compensation")) return;
    CheckDuplicateKeys(v, loc);
    if (FindMember(v, "Resource", nullptr) == nullptr) {
      Error(loc, "Compensation is missing the required field 'Resource'");
    }
    const json::Object& o = v.as_object();
    for (size_t i = 0; i < o.size(); ++i) {
      const auto& [key, val] = o[i];
      Loc l = loc.Field(key, i);
      if (key == "Resource") {
        ExpectNonEmptyString(val, l, key);
      } else if (key == "Parameters") {
        PayloadTemplate(val, l, key);
      } else if (key == "Retry") {
        Retriers(val, l);
      } else if (key == "TimeoutSeconds" || key == "HeartbeatSeconds") {
        ExpectInt(val, l, key, 1, kMaxSeconds);
      } else if (key == "Comment") {
        ExpectString(val, l, key);
      } else {
        Error(l, Cat("Field '", key, "' is not allowed in Compensation"));
      }
    }
    HeartbeatBelowTimeout(v, loc);
  }

  // HeartbeatSeconds < TimeoutSeconds when both are fixed integers.
  void HeartbeatBelowTimeout(const Value& obj, const Loc& loc) {
    size_t hi = 0;
    const Value* timeout = FindMember(obj, "TimeoutSeconds", nullptr);
    const Value* heartbeat = FindMember(obj, "HeartbeatSeconds", &hi);
    if (timeout != nullptr && heartbeat != nullptr && timeout->is_int() && heartbeat->is_int() &&
        heartbeat->as_int() >= timeout->as_int()) {
      Error(loc.Field("HeartbeatSeconds", hi),
            Cat("HeartbeatSeconds (", heartbeat->as_int(),
                ") must be smaller than TimeoutSeconds (", timeout->as_int(), ")"));
    }
  }

  // Reports "not both `a` and `b`" at whichever appears second.
  void NotBoth(const Value& obj, const Loc& loc, std::string_view a, std::string_view b,
               std::string_view what) {
    size_t ia = 0, ib = 0;
    if (FindMember(obj, a, &ia) == nullptr || FindMember(obj, b, &ib) == nullptr) return;
    std::string_view later = ia > ib ? a : b;
    Error(loc.Field(later, std::max(ia, ib)), Cat(what, " cannot have both ", a, " and ", b));
  }

  // --- Map ItemProcessor ProcessorConfig ---

  void ProcessorConfig(const Value& v, const Loc& loc) {
    if (!ExpectObject(v, loc, "ProcessorConfig")) return;
    CheckDuplicateKeys(v, loc);
    const json::Object& o = v.as_object();
    for (size_t i = 0; i < o.size(); ++i) {
      const auto& [key, val] = o[i];
      Loc l = loc.Field(key, i);
      if (key == "Mode") {
        if (val.is_string() && val.as_string() == "INLINE") continue;
        if (val.is_string() && val.as_string() == "DISTRIBUTED") {
          Error(l, "Mode DISTRIBUTED is not supported yet");
        } else {
          Error(l, "Mode must be \"INLINE\" (or \"DISTRIBUTED\", not supported yet)");
        }
      } else if (key == "ExecutionType") {
        if (!val.is_string() || (val.as_string() != "STANDARD" && val.as_string() != "EXPRESS")) {
          Error(l, "ExecutionType must be \"STANDARD\" or \"EXPRESS\"");
        }
      } else {
        Error(l, Cat("Field '", key, "' is not allowed in ProcessorConfig"));
      }
    }
  }

  // --- state machines (top level, Parallel branches, Map processors) ---

  static void CollectTargets(const Value& state, std::vector<std::string_view>* out) {
    if (!state.is_object()) return;
    auto add = [&](const Value* v) {
      if (v != nullptr && v->is_string()) out->push_back(v->as_string());
    };
    add(FindMember(state, "Next", nullptr));
    add(FindMember(state, "Default", nullptr));
    for (const char* list : {"Choices", "Catch"}) {
      const Value* a = FindMember(state, list, nullptr);
      if (a == nullptr || !a->is_array()) continue;
      for (const Value& e : a->as_array()) add(FindMember(e, "Next", nullptr));
    }
  }

  void Machine(const Value& m, const Loc& loc, MachineKind kind) {
    std::string_view what = kind == MachineKind::kTop             ? "the state machine"
                            : kind == MachineKind::kBranch        ? "a Parallel branch"
                            : kind == MachineKind::kItemProcessor ? "ItemProcessor"
                                                                  : "Iterator";
    CheckDuplicateKeys(m, loc);
    // Names of this scope and which of them StartAt reaches.
    Scope scope;
    const Value* states = FindMember(m, "States", nullptr);
    const Value* start = FindMember(m, "StartAt", nullptr);
    if (states != nullptr && states->is_object()) {
      std::map<std::string_view, const Value*> by_name;  // first state of each name
      for (const auto& [name, s] : states->as_object()) {
        scope.names.insert(name);
        by_name.emplace(name, &s);
      }
      if (start != nullptr && start->is_string() && scope.Has(start->as_string())) {
        scope.check_reachability = true;
        std::deque<std::string_view> todo = {start->as_string()};
        scope.reachable.insert(start->as_string());
        while (!todo.empty()) {
          std::string_view cur = todo.front();
          todo.pop_front();
          std::vector<std::string_view> next;
          CollectTargets(*by_name.at(cur), &next);
          for (std::string_view n : next) {
            if (scope.Has(n) && scope.reachable.emplace(n).second) todo.push_back(n);
          }
        }
      }
    }
    if (start == nullptr) {
      Error(loc, Cat("Missing required field 'StartAt' in ", what));
    }
    if (states == nullptr) {
      Error(loc, Cat("Missing required field 'States' in ", what));
    }
    const json::Object& o = m.as_object();
    for (size_t i = 0; i < o.size(); ++i) {
      const auto& [key, val] = o[i];
      Loc l = loc.Field(key, i);
      if (key == "StartAt") {
        if (ExpectString(val, l, key) && states != nullptr && states->is_object() &&
            !scope.Has(val.as_string())) {
          Error(l,
                Cat("StartAt names state '", val.as_string(), "', which does not exist in States"));
        }
      } else if (key == "States") {
        if (!ExpectObject(val, l, key)) continue;
        const json::Object& so = val.as_object();
        if (so.empty()) {
          Error(l, "States must contain at least one state");
          continue;
        }
        for (size_t k = 0; k < so.size(); ++k) {
          State(so[k].first, so[k].second, l.Field(so[k].first, k), scope);
        }
      } else if (key == "Comment") {
        ExpectString(val, l, key);
      } else if (kind == MachineKind::kTop && key == "Version") {
        if (!val.is_string() || val.as_string() != "1.0") Error(l, "Version must be \"1.0\"");
      } else if (kind == MachineKind::kTop && key == "TimeoutSeconds") {
        ExpectInt(val, l, key, 1, kMaxSeconds);
      } else if (kind == MachineKind::kTop && key == "QueryLanguage") {
        QueryLanguage(val, l);
      } else if (kind == MachineKind::kTop && IsUnsupportedDataField(key)) {
        Error(l, Cat(key, " is not supported yet"));
      } else if (kind == MachineKind::kItemProcessor && key == "ProcessorConfig") {
        ProcessorConfig(val, l);
      } else {
        Error(l, Cat("Field '", key, "' is not allowed in ", what));
      }
    }
  }

  // Validates Branches[] / ItemProcessor / Iterator bodies.
  void SubMachine(const Value& v, const Loc& loc, MachineKind kind, std::string_view field) {
    if (!ExpectObject(v, loc, field)) return;
    Machine(v, loc, kind);
  }

  void State(const std::string& name, const Value& s, const Loc& loc, const Scope& scope) {
    if (std::string why = CheckNameImpl(name, /*allow_space=*/true); !why.empty()) {
      Error(loc, Cat("Invalid state name '", name, "': ", why));
    }
    auto [it, inserted] = names_.emplace(name, loc.path);
    if (!inserted) {
      Error(loc, Cat("State name '", name, "' is not unique in the state machine (first used at ",
                     it->second, ")"));
    }
    if (scope.check_reachability && scope.reachable.find(name) == scope.reachable.end()) {
      Error(loc, Cat("State '", name, "' is not reachable"));
    }
    if (!s.is_object()) {
      Error(loc, Cat("State '", name, "' must be an object, not ", TypeOf(s)));
      return;
    }
    CheckDuplicateKeys(s, loc);
    size_t type_index = 0;
    const Value* type = FindMember(s, "Type", &type_index);
    if (type == nullptr) {
      Error(loc, "State is missing the required field 'Type'");
      return;
    }
    Loc type_loc = loc.Field("Type", type_index);
    if (!ExpectString(*type, type_loc, "Type")) return;
    const KindInfo* info = FindKind(type->as_string());
    if (info == nullptr) {
      Error(type_loc, Cat("Unknown state Type '", type->as_string(),
                          "'; expected Task, Pass, Choice, Wait, Succeed, Fail, "
                          "Parallel, Map or Compensate"));
      return;
    }
    std::string_view tname = info->name;

    // Required fields and combinations.
    auto require = [&](std::string_view field) {
      if (FindMember(s, field, nullptr) == nullptr) {
        Error(loc, Cat(tname, " state is missing the required field '", field, "'"));
      }
    };
    if (info->needs_next_or_end) {
      size_t end_index = 0;
      const Value* next = FindMember(s, "Next", nullptr);
      const Value* end = FindMember(s, "End", &end_index);
      bool is_end = end != nullptr && end->is_bool() && end->as_bool();
      if (next != nullptr && is_end) {
        Error(loc.Field("End", end_index),
              Cat(tname, " state cannot have both Next and \"End\": true"));
      } else if (next == nullptr && !is_end) {
        Error(loc, Cat(tname, " state must have either Next or \"End\": true"));
      }
    }
    switch (info->kind) {
      case Kind::kTask:
        require("Resource");
        NotBoth(s, loc, "TimeoutSeconds", "TimeoutSecondsPath", "Task state");
        NotBoth(s, loc, "HeartbeatSeconds", "HeartbeatSecondsPath", "Task state");
        HeartbeatBelowTimeout(s, loc);
        break;
      case Kind::kChoice:
        require("Choices");
        break;
      case Kind::kWait: {
        std::vector<std::pair<size_t, std::string_view>> present;
        for (std::string_view f : {"Seconds", "Timestamp", "SecondsPath", "TimestampPath"}) {
          size_t idx = 0;
          if (FindMember(s, f, &idx) != nullptr) present.emplace_back(idx, f);
        }
        std::sort(present.begin(), present.end());
        if (present.empty()) {
          Error(loc,
                "Wait state must have exactly one of Seconds, Timestamp, SecondsPath or "
                "TimestampPath");
        }
        for (size_t k = 1; k < present.size(); ++k) {
          Error(loc.Field(present[k].second, present[k].first),
                Cat("Wait state must have exactly one of Seconds, Timestamp, "
                    "SecondsPath or TimestampPath; '",
                    present[k].second, "' follows '", present[0].second, "'"));
        }
        break;
      }
      case Kind::kFail:
        NotBoth(s, loc, "Error", "ErrorPath", "Fail state");
        NotBoth(s, loc, "Cause", "CausePath", "Fail state");
        break;
      case Kind::kParallel:
        require("Branches");
        break;
      case Kind::kMap: {
        bool processor = FindMember(s, "ItemProcessor", nullptr) != nullptr;
        bool iterator = FindMember(s, "Iterator", nullptr) != nullptr;
        if (!processor && !iterator) {
          Error(loc, "Map state is missing the required field 'ItemProcessor'");
        }
        NotBoth(s, loc, "ItemProcessor", "Iterator", "Map state");
        NotBoth(s, loc, "ItemSelector", "Parameters", "Map state");
        NotBoth(s, loc, "MaxConcurrency", "MaxConcurrencyPath", "Map state");
        NotBoth(s, loc, "ToleratedFailureCount", "ToleratedFailureCountPath", "Map state");
        NotBoth(s, loc, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
                "Map state");
        break;
      }
      default:
        break;
    }

    // Each field.
    const json::Object& o = s.as_object();
    for (size_t i = 0; i < o.size(); ++i) {
      const auto& [key, val] = o[i];
      Loc l = loc.Field(key, i);
      if (key == "Type") continue;
      if (key == "Comment") {
        ExpectString(val, l, key);
      } else if (key == "QueryLanguage") {
        QueryLanguage(val, l);
      } else if (IsUnsupportedDataField(key)) {
        Error(l, Cat(key, " is not supported yet"));
      } else if (key == "Compensation" && info->kind != Kind::kTask) {
        Error(l, "Compensation is only allowed on Task states");
      } else if (info->kind == Kind::kMap &&
                 (key == "ItemReader" || key == "ItemBatcher" || key == "ResultWriter")) {
        Error(l, Cat(key, " is not supported yet"));
      } else if (!Contains(info->fields, key)) {
        Error(l, Cat("Field '", key, "' is not allowed in a ", tname, " state"));
      } else {
        StateField(key, val, l, scope);
      }
    }
  }

  void StateField(const std::string& key, const Value& v, const Loc& l, const Scope& scope) {
    if (key == "Next") {
      NextTarget(v, l, scope, key);
    } else if (key == "End") {
      ExpectBool(v, l, key);
    } else if (key == "InputPath" || key == "OutputPath") {
      ExpectNullablePath(v, l, key);
    } else if (key == "ResultPath") {
      ExpectResultPath(v, l, key);
    } else if (key == "Parameters" || key == "ResultSelector" || key == "ItemSelector" ||
               key == "Credentials") {
      PayloadTemplate(v, l, key);
    } else if (key == "Result") {
      // Any JSON value.
    } else if (key == "Resource") {
      ExpectNonEmptyString(v, l, key);
    } else if (key == "Retry") {
      Retriers(v, l);
    } else if (key == "Catch") {
      Catchers(v, l, scope);
    } else if (key == "TimeoutSeconds" || key == "HeartbeatSeconds") {
      ExpectInt(v, l, key, 1, kMaxSeconds);
    } else if (key == "TimeoutSecondsPath" || key == "HeartbeatSecondsPath" ||
               key == "SecondsPath" || key == "TimestampPath" || key == "MaxConcurrencyPath" ||
               key == "ToleratedFailureCountPath" || key == "ToleratedFailurePercentagePath" ||
               key == "ItemsPath") {
      ExpectReferencePath(v, l, key);
    } else if (key == "Compensation") {
      Compensation(v, l);
    } else if (key == "Choices") {
      if (!v.is_array()) {
        Error(l, Cat("Choices must be a non-empty array of Choice rules, not ", TypeOf(v)));
      } else if (v.as_array().empty()) {
        Error(l, "Choices must not be empty");
      } else {
        const json::Array& a = v.as_array();
        for (size_t k = 0; k < a.size(); ++k) ChoiceRule(a[k], l.Index(k), true, scope);
      }
    } else if (key == "Default") {
      NextTarget(v, l, scope, key);
    } else if (key == "Seconds") {
      ExpectInt(v, l, key, 0, kMaxSeconds);
    } else if (key == "Timestamp") {
      ExpectTimestamp(v, l, key);
    } else if (key == "Error" || key == "Cause") {
      ExpectString(v, l, key);
    } else if (key == "ErrorPath" || key == "CausePath") {
      ExpectReferencePathOrIntrinsic(v, l, key);
    } else if (key == "Branches") {
      if (!v.is_array()) {
        Error(l, Cat("Branches must be a non-empty array of branches, not ", TypeOf(v)));
      } else if (v.as_array().empty()) {
        Error(l, "Branches must not be empty");
      } else {
        const json::Array& a = v.as_array();
        for (size_t k = 0; k < a.size(); ++k) {
          SubMachine(a[k], l.Index(k), MachineKind::kBranch, "A Parallel branch");
        }
      }
    } else if (key == "ItemProcessor") {
      SubMachine(v, l, MachineKind::kItemProcessor, key);
    } else if (key == "Iterator") {
      SubMachine(v, l, MachineKind::kIterator, key);
    } else if (key == "MaxConcurrency" || key == "ToleratedFailureCount") {
      ExpectInt(v, l, key, 0, INT64_MAX);
    } else if (key == "ToleratedFailurePercentage") {
      if (!v.is_number()) {
        Error(l, Cat(key, " must be a number, not ", TypeOf(v)));
      } else if (v.as_double() < 0 || v.as_double() > 100) {
        Error(l, Cat(key, " must be between 0 and 100 (got ", json::FormatNumber(v), ")"));
      }
    } else if (key == "Label") {
      ExpectString(v, l, key);
    } else {
      // Every allowed field is handled above.
      Error(l, Cat("Field '", key, "' is not supported"));
    }
  }

  std::map<std::string, std::string, std::less<>> names_;  // state name -> first path
  std::vector<std::pair<std::vector<uint32_t>, ValidationError>> errors_;
};

}  // namespace

json::Value ValidationErrorsToJson(const std::vector<ValidationError>& errors) {
  json::Array arr;
  arr.reserve(errors.size());
  for (const auto& e : errors) {
    json::Object o;
    o.emplace_back("path", json::Value(e.path));
    o.emplace_back("message", json::Value(e.message));
    arr.push_back(json::Value(std::move(o)));
  }
  return json::Value(std::move(arr));
}

std::string CheckName(std::string_view name) { return CheckNameImpl(name, /*allow_space=*/false); }

std::vector<ValidationError> Validate(const json::Value& definition) {
  return Validator().Run(definition);
}

std::vector<ValidationError> ValidateText(std::string_view text) {
  if (text.size() > kMaxDefinitionBytes) {
    return {{"$", Cat("definition is larger than ", kMaxDefinitionBytes, " bytes (", text.size(),
                      " bytes)")}};
  }
  absl::StatusOr<json::Value> v = json::Parse(text);
  if (!v.ok()) return {{"$", Cat("invalid JSON: ", v.status().message())}};
  return Validate(*v);
}

}  // namespace saga::asl
