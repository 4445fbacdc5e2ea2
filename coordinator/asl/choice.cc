#include "coordinator/asl/choice.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/asl/errors.h"
#include "coordinator/asl/jsonpath.h"

namespace saga::asl {
namespace choice_internal {

enum class Family : uint8_t { kString, kNumeric, kBoolean, kTimestamp, kMatches, kTypeTest };
enum class Cmp : uint8_t { kEq, kLt, kGt, kLe, kGe };
enum class TypeTest : uint8_t { kNull, kPresent, kNumeric, kString, kBoolean, kTimestamp };

struct OpInfo {
  std::string_view name;
  Family family;
  Cmp cmp;
  bool path_operand;
  TypeTest test;
};

constexpr OpInfo kOps[] = {
    {"StringEquals", Family::kString, Cmp::kEq, false, TypeTest::kNull},
    {"StringEqualsPath", Family::kString, Cmp::kEq, true, TypeTest::kNull},
    {"StringLessThan", Family::kString, Cmp::kLt, false, TypeTest::kNull},
    {"StringLessThanPath", Family::kString, Cmp::kLt, true, TypeTest::kNull},
    {"StringGreaterThan", Family::kString, Cmp::kGt, false, TypeTest::kNull},
    {"StringGreaterThanPath", Family::kString, Cmp::kGt, true, TypeTest::kNull},
    {"StringLessThanEquals", Family::kString, Cmp::kLe, false, TypeTest::kNull},
    {"StringLessThanEqualsPath", Family::kString, Cmp::kLe, true, TypeTest::kNull},
    {"StringGreaterThanEquals", Family::kString, Cmp::kGe, false, TypeTest::kNull},
    {"StringGreaterThanEqualsPath", Family::kString, Cmp::kGe, true, TypeTest::kNull},
    {"StringMatches", Family::kMatches, Cmp::kEq, false, TypeTest::kNull},
    {"NumericEquals", Family::kNumeric, Cmp::kEq, false, TypeTest::kNull},
    {"NumericEqualsPath", Family::kNumeric, Cmp::kEq, true, TypeTest::kNull},
    {"NumericLessThan", Family::kNumeric, Cmp::kLt, false, TypeTest::kNull},
    {"NumericLessThanPath", Family::kNumeric, Cmp::kLt, true, TypeTest::kNull},
    {"NumericGreaterThan", Family::kNumeric, Cmp::kGt, false, TypeTest::kNull},
    {"NumericGreaterThanPath", Family::kNumeric, Cmp::kGt, true, TypeTest::kNull},
    {"NumericLessThanEquals", Family::kNumeric, Cmp::kLe, false, TypeTest::kNull},
    {"NumericLessThanEqualsPath", Family::kNumeric, Cmp::kLe, true, TypeTest::kNull},
    {"NumericGreaterThanEquals", Family::kNumeric, Cmp::kGe, false, TypeTest::kNull},
    {"NumericGreaterThanEqualsPath", Family::kNumeric, Cmp::kGe, true, TypeTest::kNull},
    {"BooleanEquals", Family::kBoolean, Cmp::kEq, false, TypeTest::kNull},
    {"BooleanEqualsPath", Family::kBoolean, Cmp::kEq, true, TypeTest::kNull},
    {"TimestampEquals", Family::kTimestamp, Cmp::kEq, false, TypeTest::kNull},
    {"TimestampEqualsPath", Family::kTimestamp, Cmp::kEq, true, TypeTest::kNull},
    {"TimestampLessThan", Family::kTimestamp, Cmp::kLt, false, TypeTest::kNull},
    {"TimestampLessThanPath", Family::kTimestamp, Cmp::kLt, true, TypeTest::kNull},
    {"TimestampGreaterThan", Family::kTimestamp, Cmp::kGt, false, TypeTest::kNull},
    {"TimestampGreaterThanPath", Family::kTimestamp, Cmp::kGt, true, TypeTest::kNull},
    {"TimestampLessThanEquals", Family::kTimestamp, Cmp::kLe, false, TypeTest::kNull},
    {"TimestampLessThanEqualsPath", Family::kTimestamp, Cmp::kLe, true, TypeTest::kNull},
    {"TimestampGreaterThanEquals", Family::kTimestamp, Cmp::kGe, false, TypeTest::kNull},
    {"TimestampGreaterThanEqualsPath", Family::kTimestamp, Cmp::kGe, true, TypeTest::kNull},
    {"IsNull", Family::kTypeTest, Cmp::kEq, false, TypeTest::kNull},
    {"IsPresent", Family::kTypeTest, Cmp::kEq, false, TypeTest::kPresent},
    {"IsNumeric", Family::kTypeTest, Cmp::kEq, false, TypeTest::kNumeric},
    {"IsString", Family::kTypeTest, Cmp::kEq, false, TypeTest::kString},
    {"IsBoolean", Family::kTypeTest, Cmp::kEq, false, TypeTest::kBoolean},
    {"IsTimestamp", Family::kTypeTest, Cmp::kEq, false, TypeTest::kTimestamp},
};

const OpInfo* FindOp(std::string_view name) {
  for (const OpInfo& op : kOps) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

// Debian's abseil has its own absl::string_view, which StrCat needs.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// StringMatches patterns compile to the literal runs between unescaped '*'s:
// "a*b\*c*" -> {"a", "b*c", ""}. A pattern without '*' is a single run.
std::vector<std::string> CompileGlob(std::string_view p) {
  std::vector<std::string> runs(1);
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      // "\*" is a literal star and "\\" a literal backslash; AWS defines no
      // other escapes, so "\x" stands for x.
      runs.back().push_back(p[++i]);
    } else if (c == '*') {
      runs.emplace_back();
    } else {
      runs.back().push_back(c);
    }
  }
  return runs;
}

// Leftmost matching of each middle run is optimal when '*' is the only
// wildcard, so this is linear-ish rather than backtracking.
bool GlobMatch(const std::vector<std::string>& runs, std::string_view s) {
  if (runs.size() == 1) return s == runs[0];
  const std::string& first = runs.front();
  const std::string& last = runs.back();
  if (s.size() < first.size() + last.size()) return false;
  if (s.substr(0, first.size()) != first) return false;
  if (s.substr(s.size() - last.size()) != last) return false;
  size_t pos = first.size();
  const size_t end = s.size() - last.size();
  for (size_t i = 1; i + 1 < runs.size(); ++i) {
    const std::string& run = runs[i];
    if (run.empty()) continue;
    size_t at = s.substr(0, end).find(run, pos);
    if (at == std::string_view::npos) return false;
    pos = at + run.size();
  }
  return true;
}

template <typename T>
bool Apply(Cmp cmp, const T& a, const T& b) {
  switch (cmp) {
    case Cmp::kEq:
      return a == b;
    case Cmp::kLt:
      return a < b;
    case Cmp::kGt:
      return a > b;
    case Cmp::kLe:
      return a <= b;
    case Cmp::kGe:
      return a >= b;
  }
  return false;
}

bool CompareNumbers(Cmp cmp, const json::Value& a, const json::Value& b) {
  if (a.is_int() && b.is_int()) return Apply(cmp, a.as_int(), b.as_int());
  return Apply(cmp, a.as_double(), b.as_double());
}

}  // namespace choice_internal

using choice_internal::AV;
using choice_internal::Cmp;
using choice_internal::Family;
using choice_internal::OpInfo;
using choice_internal::TypeTest;

struct ChoiceRule::Node {
  enum class Kind : uint8_t { kAnd, kOr, kNot, kCompare };
  Kind kind = Kind::kCompare;
  std::vector<Node> children;
  const OpInfo* op = nullptr;
  JsonPath variable;
  JsonPath operand_path;          // ...Path operators
  json::Value operand;            // literal operand
  int64_t operand_micros = 0;     // literal Timestamp* operand, pre-parsed
  std::vector<std::string> glob;  // StringMatches
};

namespace {

using Node = ChoiceRule::Node;

// ---------------------------------------------------------------------------
// Timestamps

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return kDays[m - 1];
}

absl::StatusOr<json::Value> Resolve(const JsonPath& path, const json::Value& input,
                                    const json::Value& context) {
  auto v = path.Evaluate(input, context);
  if (v.ok() || v.status().code() != absl::StatusCode::kNotFound) return v;
  return AslError(
      kStatesRuntime,
      absl::StrCat("Invalid path '", path.text(),
                   "': The choice state's condition path references an invalid value."));
}

absl::StatusOr<bool> Eval(const Node& n, const json::Value& input, const json::Value& context);

absl::StatusOr<bool> EvalCompare(const Node& n, const json::Value& input,
                                 const json::Value& context) {
  const OpInfo& op = *n.op;
  auto found = n.variable.Evaluate(input, context);
  if (op.family == Family::kTypeTest && op.test == TypeTest::kPresent) {
    if (!found.ok() && found.status().code() != absl::StatusCode::kNotFound) return found.status();
    // An indefinite path that matches nothing yields [], which is treated as absent.
    bool present = found.ok() && !(!n.variable.is_definite() && found->size() == 0);
    return present == n.operand.as_bool();
  }
  if (!found.ok()) {
    if (found.status().code() != absl::StatusCode::kNotFound) return found.status();
    return AslError(kStatesRuntime, absl::StrCat("Invalid path '", n.variable.text(),
                                                 "': The choice state's condition path "
                                                 "references an invalid value."));
  }
  const json::Value& v = *found;

  if (op.family == Family::kTypeTest) {
    bool is;
    switch (op.test) {
      case TypeTest::kNull:
        is = v.is_null();
        break;
      case TypeTest::kNumeric:
        is = v.is_number();
        break;
      case TypeTest::kString:
        is = v.is_string();
        break;
      case TypeTest::kBoolean:
        is = v.is_bool();
        break;
      case TypeTest::kTimestamp:
        is = v.is_string() && ParseTimestampMicros(v.as_string()).has_value();
        break;
      default:
        is = false;
    }
    return is == n.operand.as_bool();
  }

  // The right-hand side: a literal, or a value read through a ...Path.
  json::Value rhs_holder;
  const json::Value* rhs = &n.operand;
  if (op.path_operand) {
    auto r = Resolve(n.operand_path, input, context);
    if (!r.ok()) return r.status();
    rhs_holder = *std::move(r);
    rhs = &rhs_holder;
  }

  // A type mismatch on either side is a non-match, not an error (AWS).
  switch (op.family) {
    case Family::kString:
      if (!v.is_string() || !rhs->is_string()) return false;
      return choice_internal::Apply(op.cmp, v.as_string(), rhs->as_string());
    case Family::kMatches:
      return v.is_string() && choice_internal::GlobMatch(n.glob, v.as_string());
    case Family::kNumeric:
      if (!v.is_number() || !rhs->is_number()) return false;
      return choice_internal::CompareNumbers(op.cmp, v, *rhs);
    case Family::kBoolean:
      return v.is_bool() && rhs->is_bool() && v.as_bool() == rhs->as_bool();
    case Family::kTimestamp: {
      if (!v.is_string()) return false;
      auto lhs_ts = ParseTimestampMicros(v.as_string());
      if (!lhs_ts) return false;
      int64_t rhs_ts = n.operand_micros;
      if (op.path_operand) {
        if (!rhs->is_string()) return false;
        auto parsed = ParseTimestampMicros(rhs->as_string());
        if (!parsed) return false;
        rhs_ts = *parsed;
      }
      return choice_internal::Apply(op.cmp, *lhs_ts, rhs_ts);
    }
    case Family::kTypeTest:
      break;
  }
  return false;
}

absl::StatusOr<bool> Eval(const Node& n, const json::Value& input, const json::Value& context) {
  switch (n.kind) {
    case Node::Kind::kAnd:
      for (const Node& c : n.children) {
        auto r = Eval(c, input, context);
        if (!r.ok() || !*r) return r;
      }
      return true;
    case Node::Kind::kOr:
      for (const Node& c : n.children) {
        auto r = Eval(c, input, context);
        if (!r.ok() || *r) return r;
      }
      return false;
    case Node::Kind::kNot: {
      auto r = Eval(n.children[0], input, context);
      if (!r.ok()) return r;
      return !*r;
    }
    case Node::Kind::kCompare:
      return EvalCompare(n, input, context);
  }
  return false;
}

// ---------------------------------------------------------------------------
// Compilation

// Rules nest through And/Or/Not; the bound keeps hostile definitions from
// exhausting the stack.
constexpr int kMaxDepth = 64;

absl::Status Invalid(std::string_view msg) { return absl::InvalidArgumentError(AV(msg)); }

bool IgnoredKey(std::string_view k) {
  // Next and Comment belong to the Choices entry; Assign/Output are JSONata-era
  // members of it that the state, not the rule, handles.
  return k == "Next" || k == "Comment" || k == "Assign" || k == "Output";
}

absl::Status CompileNode(const json::Value& rule, int depth, Node* out) {
  if (depth > kMaxDepth) return Invalid("choice rules are nested too deeply");
  if (!rule.is_object()) return Invalid("a choice rule must be an object");

  const json::Value* combinator = nullptr;
  std::string_view combinator_name;
  const json::Value* variable = nullptr;
  const OpInfo* op = nullptr;
  const json::Value* operand = nullptr;
  for (const auto& [key, value] : rule.as_object()) {
    if (key == "And" || key == "Or" || key == "Not") {
      if (combinator != nullptr) {
        return Invalid(
            absl::StrCat("a choice rule cannot have both ", AV(combinator_name), " and ", key));
      }
      combinator = &value;
      combinator_name = key;
    } else if (key == "Variable") {
      variable = &value;
    } else if (const OpInfo* found = choice_internal::FindOp(key)) {
      if (op != nullptr) {
        return Invalid(absl::StrCat("a choice rule has two comparison operators: ", AV(op->name),
                                    " and ", key));
      }
      op = found;
      operand = &value;
    } else if (!IgnoredKey(key)) {
      return Invalid(absl::StrCat("unknown field '", key, "' in a choice rule"));
    }
  }

  if (combinator != nullptr) {
    if (variable != nullptr || op != nullptr) {
      return Invalid(absl::StrCat(AV(combinator_name),
                                  " cannot be combined with Variable or a comparison operator"));
    }
    if (combinator_name == "Not") {
      out->kind = Node::Kind::kNot;
      out->children.resize(1);
      return CompileNode(*combinator, depth + 1, &out->children[0]);
    }
    out->kind = combinator_name == "And" ? Node::Kind::kAnd : Node::Kind::kOr;
    if (!combinator->is_array() || combinator->as_array().empty()) {
      return Invalid(absl::StrCat(AV(combinator_name), " must be a non-empty array of rules"));
    }
    out->children.resize(combinator->as_array().size());
    for (size_t i = 0; i < out->children.size(); ++i) {
      if (absl::Status st = CompileNode(combinator->as_array()[i], depth + 1, &out->children[i]);
          !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }

  if (variable == nullptr) return Invalid("a choice rule needs Variable, And, Or or Not");
  if (op == nullptr) return Invalid("a choice rule with Variable needs a comparison operator");
  if (!variable->is_string()) return Invalid("Variable must be a string path");
  auto var = JsonPath::Parse(variable->as_string());
  if (!var.ok()) {
    return Invalid(absl::StrCat("Variable is not a valid path: ", var.status().message()));
  }
  out->kind = Node::Kind::kCompare;
  out->op = op;
  out->variable = *std::move(var);

  if (op->path_operand) {
    if (!operand->is_string()) return Invalid(absl::StrCat(AV(op->name), " must be a string path"));
    auto p = JsonPath::Parse(operand->as_string());
    if (!p.ok()) {
      return Invalid(absl::StrCat(AV(op->name), " is not a valid path: ", p.status().message()));
    }
    out->operand_path = *std::move(p);
    return absl::OkStatus();
  }
  switch (op->family) {
    case Family::kString:
    case Family::kMatches:
      if (!operand->is_string()) return Invalid(absl::StrCat(AV(op->name), " must be a string"));
      if (op->family == Family::kMatches)
        out->glob = choice_internal::CompileGlob(operand->as_string());
      break;
    case Family::kNumeric:
      if (!operand->is_number()) return Invalid(absl::StrCat(AV(op->name), " must be a number"));
      break;
    case Family::kBoolean:
    case Family::kTypeTest:
      if (!operand->is_bool()) {
        return Invalid(absl::StrCat(AV(op->name), " must be true or false"));
      }
      break;
    case Family::kTimestamp: {
      auto ts = operand->is_string() ? ParseTimestampMicros(operand->as_string()) : std::nullopt;
      if (!ts) {
        return Invalid(absl::StrCat(AV(op->name),
                                    " must be an RFC 3339 timestamp such as 2016-03-14T01:59:00Z"));
      }
      out->operand_micros = *ts;
      break;
    }
  }
  out->operand = *operand;
  return absl::OkStatus();
}

}  // namespace

// RFC 3339 as Step Functions requires it: "YYYY-MM-DDTHH:MM:SS", optional
// fraction, then "Z" or "+HH:MM"/"-HH:MM"; an uppercase T and Z are required.
std::optional<int64_t> ParseTimestampMicros(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (!Digits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &month) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || s[10] != 'T' || !Digits(s, 11, 2, &hour) ||
      s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' || !Digits(s, 17, 2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 59) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t micros = 0;
  if (s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t scale = 100000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      // Digits past the sixth are truncated: the engine works in microseconds.
      if (scale > 0) micros += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  int64_t offset_seconds = 0;
  if (s[pos] == 'Z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_seconds = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = DaysFromCivil(year, month, day);
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return secs * 1000000 + micros;
}

absl::StatusOr<ChoiceRule> ChoiceRule::Compile(const json::Value& rule) {
  auto root = std::make_shared<Node>();
  if (absl::Status st = CompileNode(rule, 0, root.get()); !st.ok()) return st;
  ChoiceRule out;
  out.root_ = std::move(root);
  return out;
}

absl::StatusOr<bool> ChoiceRule::Matches(const json::Value& input,
                                         const json::Value& context) const {
  if (root_ == nullptr) return false;
  return Eval(*root_, input, context);
}

ChoiceRule::ChoiceRule() = default;
ChoiceRule::~ChoiceRule() = default;
ChoiceRule::ChoiceRule(const ChoiceRule&) = default;
ChoiceRule& ChoiceRule::operator=(const ChoiceRule&) = default;
ChoiceRule::ChoiceRule(ChoiceRule&&) noexcept = default;
ChoiceRule& ChoiceRule::operator=(ChoiceRule&&) noexcept = default;

}  // namespace saga::asl
