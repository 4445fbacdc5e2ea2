#include "coordinator/asl/jsonpath.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace saga::asl {
namespace jsonpath_internal {

using json::Array;
using json::Object;
using json::Value;

struct FilterExpr;

enum class SegKind : uint8_t {
  kName,      // .name ['name']
  kIndex,     // [3] [-1]
  kWildcard,  // .* [*]
  kNames,     // ['a','b']
  kIndexes,   // [0,2]
  kSlice,     // [1:5:2]
  kFilter,    // [?(...)]
};

struct Segment {
  SegKind kind = SegKind::kName;
  bool descendant = false;  // preceded by ".."
  std::string name;
  int64_t index = 0;
  std::vector<std::string> names;
  std::vector<int64_t> indexes;
  std::optional<int64_t> slice_start;
  std::optional<int64_t> slice_end;
  int64_t slice_step = 1;
  std::shared_ptr<const FilterExpr> filter;
};

bool SegmentsDefinite(const std::vector<Segment>& segs) {
  for (const Segment& s : segs) {
    if (s.descendant || (s.kind != SegKind::kName && s.kind != SegKind::kIndex)) return false;
  }
  return true;
}

struct Operand {
  enum class Kind : uint8_t { kLiteral, kRelPath, kRootPath, kRegex };
  Kind kind = Kind::kLiteral;
  Value literal;
  std::vector<Segment> path;
  bool definite = true;
  // std::regex is expensive to build, so it is compiled once at parse time.
  std::shared_ptr<const std::regex> regex;
};

enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kRegex };

struct FilterExpr {
  enum class Kind : uint8_t { kOr, kAnd, kNot, kCompare, kExists, kConstant };
  Kind kind = Kind::kConstant;
  std::vector<FilterExpr> children;  // kOr, kAnd (n), kNot (1)
  Operand lhs;                       // kCompare, kExists
  Operand rhs;                       // kCompare
  CmpOp op = CmpOp::kEq;
  bool constant = false;  // kConstant
};

// ---------------------------------------------------------------------------
// Evaluation

// Resolves an index against an array size, Python/Jayway style (-1 is last).
std::optional<size_t> NormalizeIndex(int64_t idx, size_t size) {
  int64_t n = static_cast<int64_t>(size);
  if (idx < 0) idx += n;
  if (idx < 0 || idx >= n) return std::nullopt;
  return static_cast<size_t>(idx);
}

// Walks a definite path without copying anything; nullptr when absent.
const Value* WalkDefinite(const Value& start, const std::vector<Segment>& segs) {
  const Value* cur = &start;
  for (const Segment& s : segs) {
    if (s.kind == SegKind::kName) {
      cur = cur->Find(s.name);
    } else {
      if (!cur->is_array()) return nullptr;
      const Array& arr = cur->as_array();
      auto i = NormalizeIndex(s.index, arr.size());
      if (!i) return nullptr;
      cur = &arr[*i];
    }
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

void Collect(const Value& node, const Segment* seg, const Segment* end, const Value& root,
             Array* out);
bool EvalFilter(const FilterExpr& e, const Value& at, const Value& root);

template <typename Fn>
void ApplySelector(const Value& node, const Segment& s, const Value& root, Fn&& fn) {
  switch (s.kind) {
    case SegKind::kName:
      if (const Value* v = node.Find(s.name)) fn(*v);
      break;
    case SegKind::kIndex:
      if (node.is_array()) {
        const Array& arr = node.as_array();
        if (auto i = NormalizeIndex(s.index, arr.size())) fn(arr[*i]);
      }
      break;
    case SegKind::kWildcard:
      if (node.is_array()) {
        for (const Value& v : node.as_array()) fn(v);
      } else if (node.is_object()) {
        for (const auto& m : node.as_object()) fn(m.second);
      }
      break;
    case SegKind::kNames:
      if (node.is_object()) {
        for (const std::string& n : s.names) {
          if (const Value* v = node.Find(n)) fn(*v);
        }
      }
      break;
    case SegKind::kIndexes:
      if (node.is_array()) {
        const Array& arr = node.as_array();
        for (int64_t idx : s.indexes) {
          if (auto i = NormalizeIndex(idx, arr.size())) fn(arr[*i]);
        }
      }
      break;
    case SegKind::kSlice: {
      if (!node.is_array()) break;
      const Array& arr = node.as_array();
      // Python slice semantics (Jayway has no step; a step is a superset).
      const int64_t len = static_cast<int64_t>(arr.size());
      const int64_t step = s.slice_step;
      const int64_t lower = step > 0 ? 0 : -1;
      const int64_t upper = step > 0 ? len : len - 1;
      auto clamp = [&](int64_t v) {
        if (v < 0) return std::max(v + len, lower);
        return std::min(v, upper);
      };
      int64_t b = s.slice_start ? clamp(*s.slice_start) : (step > 0 ? lower : upper);
      int64_t e = s.slice_end ? clamp(*s.slice_end) : (step > 0 ? upper : lower);
      if (step > 0) {
        for (int64_t i = b; i < e; i += step) fn(arr[static_cast<size_t>(i)]);
      } else {
        for (int64_t i = b; i > e; i += step) fn(arr[static_cast<size_t>(i)]);
      }
      break;
    }
    case SegKind::kFilter:
      if (node.is_array()) {
        for (const Value& v : node.as_array()) {
          if (EvalFilter(*s.filter, v, root)) fn(v);
        }
      } else if (node.is_object()) {
        // Jayway applies a filter on an object to the object itself.
        if (EvalFilter(*s.filter, node, root)) fn(node);
      }
      break;
  }
}

// Recursive descent in Jayway's order: apply the selector at a node, then
// descend into its children.
template <typename Fn>
void Descend(const Value& node, const Segment& s, const Value& root, Fn& fn) {
  if (s.kind == SegKind::kFilter) {
    // Jayway tests each object reached by the scan against the filter itself
    // (not its elements), so an object is reported once, in pre-order.
    if (node.is_object() && EvalFilter(*s.filter, node, root)) fn(node);
  } else {
    ApplySelector(node, s, root, fn);
  }
  if (node.is_array()) {
    for (const Value& v : node.as_array()) {
      if (v.is_array() || v.is_object()) Descend(v, s, root, fn);
    }
  } else if (node.is_object()) {
    for (const auto& m : node.as_object()) {
      if (m.second.is_array() || m.second.is_object()) Descend(m.second, s, root, fn);
    }
  }
}

void Collect(const Value& node, const Segment* seg, const Segment* end, const Value& root,
             Array* out) {
  if (seg == end) {
    out->push_back(node);
    return;
  }
  auto next = [&](const Value& child) { Collect(child, seg + 1, end, root, out); };
  if (seg->descendant) {
    Descend(node, *seg, root, next);
  } else {
    ApplySelector(node, *seg, root, next);
  }
}

// The value of a filter operand: `ptr` is null when a path matched nothing.
struct Resolved {
  const Value* ptr = nullptr;
  Value holder;  // owns the result of an indefinite path
};

Resolved Resolve(const Operand& o, const Value& at, const Value& root) {
  Resolved r;
  switch (o.kind) {
    case Operand::Kind::kLiteral:
      r.ptr = &o.literal;
      break;
    case Operand::Kind::kRelPath:
    case Operand::Kind::kRootPath: {
      const Value& start = o.kind == Operand::Kind::kRelPath ? at : root;
      if (o.definite) {
        r.ptr = WalkDefinite(start, o.path);
      } else {
        Array out;
        Collect(start, o.path.data(), o.path.data() + o.path.size(), root, &out);
        if (!out.empty()) {
          r.holder = Value(std::move(out));
          r.ptr = &r.holder;
        }
      }
      break;
    }
    case Operand::Kind::kRegex:
      break;
  }
  return r;
}

bool Compare(const Value& a, CmpOp op, const Value& b) {
  if (op == CmpOp::kEq) return a == b;
  if (op == CmpOp::kNe) return a != b;
  int c;
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) {
      c = a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
    } else {
      double x = a.as_double(), y = b.as_double();
      if (x != x || y != y) return false;  // NaN orders with nothing
      c = x < y ? -1 : (x > y ? 1 : 0);
    }
  } else if (a.is_string() && b.is_string()) {
    c = a.as_string().compare(b.as_string());
  } else {
    return false;  // ordering only between numbers or between strings
  }
  switch (op) {
    case CmpOp::kLt:
      return c < 0;
    case CmpOp::kLe:
      return c <= 0;
    case CmpOp::kGt:
      return c > 0;
    case CmpOp::kGe:
      return c >= 0;
    default:
      return false;
  }
}

bool EvalFilter(const FilterExpr& e, const Value& at, const Value& root) {
  switch (e.kind) {
    case FilterExpr::Kind::kOr:
      for (const FilterExpr& c : e.children) {
        if (EvalFilter(c, at, root)) return true;
      }
      return false;
    case FilterExpr::Kind::kAnd:
      for (const FilterExpr& c : e.children) {
        if (!EvalFilter(c, at, root)) return false;
      }
      return true;
    case FilterExpr::Kind::kNot:
      return !EvalFilter(e.children[0], at, root);
    case FilterExpr::Kind::kConstant:
      return e.constant;
    case FilterExpr::Kind::kExists:
      return Resolve(e.lhs, at, root).ptr != nullptr;
    case FilterExpr::Kind::kCompare: {
      Resolved l = Resolve(e.lhs, at, root);
      // A side that matches nothing makes every comparison false (also !=):
      // Jayway rejects the item when a filter path is missing.
      if (l.ptr == nullptr) return false;
      if (e.op == CmpOp::kRegex) {
        if (!l.ptr->is_string()) return false;
        // std::regex reports pathological inputs by throwing; treat as no match.
        try {
          return std::regex_match(l.ptr->as_string(), *e.rhs.regex);
        } catch (const std::regex_error&) {
          return false;
        }
      }
      Resolved r = Resolve(e.rhs, at, root);
      if (r.ptr == nullptr) return false;
      return Compare(*l.ptr, e.op, *r.ptr);
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Parsing

// Debian's abseil has its own absl::string_view, which StrCat needs.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Characters that end a dot-notation name. Names needing any of these must
// use bracket notation, as the AWS docs require for non-alphanumeric names.
bool EndsDotName(char c) {
  switch (c) {
    case '.':
    case '[':
    case ']':
    case '(':
    case ')':
    case ',':
    case '\'':
    case '"':
    case '=':
    case '!':
    case '<':
    case '>':
    case '&':
    case '|':
    case '~':
      return true;
    default:
      return IsWs(c);
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  void set_pos(size_t pos) { pos_ = pos; }

  absl::Status Error(size_t at, std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSONPath '", AV(s_), "': ", AV(what), " at position ", at));
  }

  // Parses selectors until the end of the text (top level) or, inside a
  // filter, until a character that cannot continue a path.
  absl::Status ParseSegments(std::vector<Segment>* out, bool in_filter) {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '[') {
        Segment seg;
        if (absl::Status st = ParseBracket(&seg); !st.ok()) return st;
        out->push_back(std::move(seg));
        continue;
      }
      if (c != '.') {
        if (in_filter) return absl::OkStatus();
        return Error(pos_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
      }
      size_t dot = pos_++;
      Segment seg;
      if (pos_ < s_.size() && s_[pos_] == '.') {
        seg.descendant = true;
        ++pos_;
      }
      if (pos_ >= s_.size()) return Error(dot, "path ends after '.'");
      if (s_[pos_] == '[') {
        // "$..['a']" and "$.['a b']" (the AWS docs use the latter).
        if (absl::Status st = ParseBracket(&seg); !st.ok()) return st;
        out->push_back(std::move(seg));
        continue;
      }
      size_t start = pos_;
      while (pos_ < s_.size() && !EndsDotName(s_[pos_])) ++pos_;
      if (pos_ == start) return Error(start, "expected a name after '.'");
      std::string_view name = s_.substr(start, pos_ - start);
      if (name == "*") {
        seg.kind = SegKind::kWildcard;
      } else {
        seg.kind = SegKind::kName;
        seg.name = std::string(name);
      }
      out->push_back(std::move(seg));
    }
    return absl::OkStatus();
  }

 private:
  void SkipWs() {
    while (pos_ < s_.size() && IsWs(s_[pos_])) ++pos_;
  }

  bool Consume(std::string_view tok) {
    if (s_.substr(pos_, tok.size()) == tok) {
      pos_ += tok.size();
      return true;
    }
    return false;
  }

  absl::Status ExpectClose(size_t open) {
    SkipWs();
    if (pos_ >= s_.size()) return Error(open, "unterminated bracket");
    if (s_[pos_] != ']') return Error(pos_, "expected ']'");
    ++pos_;
    return absl::OkStatus();
  }

  absl::Status ParseInt(int64_t* out) {
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size() && IsDigit(s_[pos_])) ++pos_;
    auto res = std::from_chars(s_.data() + start, s_.data() + pos_, *out);
    if (res.ec != std::errc() || res.ptr != s_.data() + pos_) {
      return Error(start, "invalid integer");
    }
    return absl::OkStatus();
  }

  bool AtIntStart() const { return pos_ < s_.size() && (IsDigit(s_[pos_]) || s_[pos_] == '-'); }

  absl::Status ParseQuoted(std::string* out) {
    size_t open = pos_;
    char q = s_[pos_++];
    while (true) {
      if (pos_ >= s_.size()) return Error(open, "unterminated string");
      char c = s_[pos_++];
      if (c == q) return absl::OkStatus();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return Error(open, "unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '\\':
        case '\'':
        case '"':
        case '/':
          out->push_back(e);
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return Error(pos_, "invalid \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF && s_.substr(pos_, 2) == "\\u") {
            size_t save = pos_;
            pos_ += 2;
            uint32_t lo = 0;
            if (Hex4(&lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              pos_ = save;
            }
          }
          json::AppendUtf8(cp, out);
          break;
        }
        default:
          return Error(pos_ - 2, "invalid escape in string");
      }
    }
  }

  bool Hex4(uint32_t* cp) {
    if (pos_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *cp = v;
    return true;
  }

  absl::Status ParseBracket(Segment* seg) {
    size_t open = pos_++;
    SkipWs();
    if (pos_ >= s_.size()) return Error(open, "unterminated bracket");
    char c = s_[pos_];
    if (c == '*') {
      ++pos_;
      seg->kind = SegKind::kWildcard;
      return ExpectClose(open);
    }
    if (c == '\'' || c == '"') {
      std::vector<std::string> names;
      while (true) {
        std::string name;
        if (absl::Status st = ParseQuoted(&name); !st.ok()) return st;
        names.push_back(std::move(name));
        SkipWs();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          SkipWs();
          if (pos_ >= s_.size()) return Error(open, "unterminated bracket");
          if (s_[pos_] != '\'' && s_[pos_] != '"') return Error(pos_, "expected a quoted name");
          continue;
        }
        break;
      }
      if (names.size() == 1) {
        seg->kind = SegKind::kName;
        seg->name = std::move(names[0]);
      } else {
        seg->kind = SegKind::kNames;
        seg->names = std::move(names);
      }
      return ExpectClose(open);
    }
    if (c == '?') {
      ++pos_;
      SkipWs();
      if (pos_ >= s_.size()) return Error(open, "unterminated bracket");
      if (s_[pos_] != '(') return Error(pos_, "expected '(' after '?'");
      ++pos_;
      auto expr = std::make_shared<FilterExpr>();
      if (absl::Status st = ParseOr(expr.get(), 0); !st.ok()) return st;
      SkipWs();
      if (pos_ >= s_.size()) return Error(open, "unterminated filter");
      if (s_[pos_] != ')') return Error(pos_, "expected ')' to close the filter");
      ++pos_;
      seg->kind = SegKind::kFilter;
      seg->filter = std::move(expr);
      return ExpectClose(open);
    }
    if (c == ':' || AtIntStart()) {
      std::optional<int64_t> first;
      if (c != ':') {
        int64_t v;
        if (absl::Status st = ParseInt(&v); !st.ok()) return st;
        first = v;
      }
      SkipWs();
      if (pos_ < s_.size() && s_[pos_] == ':') {
        ++pos_;
        SkipWs();
        seg->kind = SegKind::kSlice;
        seg->slice_start = first;
        if (AtIntStart()) {
          int64_t v;
          if (absl::Status st = ParseInt(&v); !st.ok()) return st;
          seg->slice_end = v;
          SkipWs();
        }
        if (pos_ < s_.size() && s_[pos_] == ':') {
          ++pos_;
          SkipWs();
          if (AtIntStart()) {
            size_t at = pos_;
            if (absl::Status st = ParseInt(&seg->slice_step); !st.ok()) return st;
            if (seg->slice_step == 0) return Error(at, "slice step cannot be zero");
          }
        }
        return ExpectClose(open);
      }
      if (pos_ < s_.size() && s_[pos_] == ',') {
        seg->kind = SegKind::kIndexes;
        seg->indexes.push_back(*first);
        while (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          SkipWs();
          if (!AtIntStart()) {
            if (pos_ >= s_.size()) return Error(open, "unterminated bracket");
            return Error(pos_, "expected an index");
          }
          int64_t v;
          if (absl::Status st = ParseInt(&v); !st.ok()) return st;
          seg->indexes.push_back(v);
          SkipWs();
        }
        return ExpectClose(open);
      }
      seg->kind = SegKind::kIndex;
      seg->index = *first;
      return ExpectClose(open);
    }
    return Error(pos_, absl::StrCat("unexpected character '", std::string(1, c), "' in brackets"));
  }

  // Filter grammar:
  //   or    := and ('||' and)*
  //   and   := unary ('&&' unary)*
  //   unary := '!' unary | '(' or ')' | operand [op operand]
  static constexpr int kMaxFilterDepth = 64;  // bounds recursion on hostile input

  absl::Status ParseOr(FilterExpr* out, int depth) {
    if (depth > kMaxFilterDepth) return Error(pos_, "filter nested too deeply");
    FilterExpr first;
    if (absl::Status st = ParseAnd(&first, depth); !st.ok()) return st;
    SkipWs();
    if (s_.substr(pos_, 2) != "||") {
      *out = std::move(first);
      return absl::OkStatus();
    }
    out->kind = FilterExpr::Kind::kOr;
    out->children.push_back(std::move(first));
    while (Consume("||")) {
      FilterExpr next;
      if (absl::Status st = ParseAnd(&next, depth); !st.ok()) return st;
      out->children.push_back(std::move(next));
      SkipWs();
    }
    return absl::OkStatus();
  }

  absl::Status ParseAnd(FilterExpr* out, int depth) {
    FilterExpr first;
    if (absl::Status st = ParseUnary(&first, depth); !st.ok()) return st;
    SkipWs();
    if (s_.substr(pos_, 2) != "&&") {
      *out = std::move(first);
      return absl::OkStatus();
    }
    out->kind = FilterExpr::Kind::kAnd;
    out->children.push_back(std::move(first));
    while (Consume("&&")) {
      FilterExpr next;
      if (absl::Status st = ParseUnary(&next, depth); !st.ok()) return st;
      out->children.push_back(std::move(next));
      SkipWs();
    }
    return absl::OkStatus();
  }

  absl::Status ParseUnary(FilterExpr* out, int depth) {
    if (depth > kMaxFilterDepth) return Error(pos_, "filter nested too deeply");
    SkipWs();
    if (pos_ >= s_.size()) return Error(pos_, "unterminated filter");
    if (s_[pos_] == '!' && s_.substr(pos_, 2) != "!=") {
      ++pos_;
      FilterExpr inner;
      if (absl::Status st = ParseUnary(&inner, depth + 1); !st.ok()) return st;
      out->kind = FilterExpr::Kind::kNot;
      out->children.push_back(std::move(inner));
      return absl::OkStatus();
    }
    if (s_[pos_] == '(') {
      ++pos_;
      if (absl::Status st = ParseOr(out, depth + 1); !st.ok()) return st;
      SkipWs();
      if (pos_ >= s_.size()) return Error(pos_, "unterminated filter");
      if (s_[pos_] != ')') return Error(pos_, "expected ')'");
      ++pos_;
      return absl::OkStatus();
    }
    Operand lhs;
    if (absl::Status st = ParseOperand(&lhs, depth); !st.ok()) return st;
    SkipWs();
    std::optional<CmpOp> op;
    size_t op_pos = pos_;
    if (Consume("==")) {
      op = CmpOp::kEq;
    } else if (Consume("!=")) {
      op = CmpOp::kNe;
    } else if (Consume("<=")) {
      op = CmpOp::kLe;
    } else if (Consume(">=")) {
      op = CmpOp::kGe;
    } else if (Consume("=~")) {
      op = CmpOp::kRegex;
    } else if (Consume("<")) {
      op = CmpOp::kLt;
    } else if (Consume(">")) {
      op = CmpOp::kGt;
    } else if (pos_ < s_.size() && s_[pos_] == '=') {
      return Error(pos_, "use '==' to compare");
    }
    if (!op) {
      if (lhs.kind == Operand::Kind::kRelPath || lhs.kind == Operand::Kind::kRootPath) {
        out->kind = FilterExpr::Kind::kExists;
        out->lhs = std::move(lhs);
        return absl::OkStatus();
      }
      if (lhs.kind == Operand::Kind::kLiteral && lhs.literal.is_bool()) {
        out->kind = FilterExpr::Kind::kConstant;
        out->constant = lhs.literal.as_bool();
        return absl::OkStatus();
      }
      return Error(op_pos, "expected a comparison operator");
    }
    Operand rhs;
    if (absl::Status st = ParseOperand(&rhs, depth); !st.ok()) return st;
    if (*op == CmpOp::kRegex) {
      if (lhs.kind == Operand::Kind::kRegex && rhs.kind != Operand::Kind::kRegex) {
        std::swap(lhs, rhs);
      }
      if (rhs.kind != Operand::Kind::kRegex || lhs.kind == Operand::Kind::kRegex) {
        return Error(op_pos, "'=~' needs a value and a /regex/");
      }
    } else if (lhs.kind == Operand::Kind::kRegex || rhs.kind == Operand::Kind::kRegex) {
      return Error(op_pos, "a /regex/ can only be used with '=~'");
    }
    out->kind = FilterExpr::Kind::kCompare;
    out->op = *op;
    out->lhs = std::move(lhs);
    out->rhs = std::move(rhs);
    return absl::OkStatus();
  }

  absl::Status ParseOperand(Operand* out, int depth) {
    SkipWs();
    if (pos_ >= s_.size()) return Error(pos_, "unterminated filter");
    char c = s_[pos_];
    if (c == '@' || c == '$') {
      ++pos_;
      out->kind = c == '@' ? Operand::Kind::kRelPath : Operand::Kind::kRootPath;
      if (depth > kMaxFilterDepth) return Error(pos_, "filter nested too deeply");
      if (absl::Status st = ParseSegments(&out->path, /*in_filter=*/true); !st.ok()) return st;
      out->definite = SegmentsDefinite(out->path);
      return absl::OkStatus();
    }
    if (c == '\'' || c == '"') {
      std::string s;
      if (absl::Status st = ParseQuoted(&s); !st.ok()) return st;
      out->kind = Operand::Kind::kLiteral;
      out->literal = Value(std::move(s));
      return absl::OkStatus();
    }
    if (c == '-' || IsDigit(c)) {
      size_t start = pos_;
      if (c == '-') ++pos_;
      while (pos_ < s_.size() && (IsDigit(s_[pos_]) || s_[pos_] == '.' || s_[pos_] == 'e' ||
                                  s_[pos_] == 'E' || s_[pos_] == '+' || s_[pos_] == '-')) {
        ++pos_;
      }
      auto num = json::Parse(s_.substr(start, pos_ - start));
      if (!num.ok() || !num->is_number()) return Error(start, "invalid number");
      out->kind = Operand::Kind::kLiteral;
      out->literal = *std::move(num);
      return absl::OkStatus();
    }
    if (c == '/') {
      size_t open = pos_++;
      std::string pattern;
      while (true) {
        if (pos_ >= s_.size()) return Error(open, "unterminated regex");
        char r = s_[pos_++];
        if (r == '/') break;
        if (r == '\\' && pos_ < s_.size() && s_[pos_] == '/') {
          pattern.push_back('/');
          ++pos_;
          continue;
        }
        pattern.push_back(r);
        if (r == '\\' && pos_ < s_.size()) pattern.push_back(s_[pos_++]);
      }
      auto flags = std::regex::ECMAScript;
      while (pos_ < s_.size() && s_[pos_] >= 'a' && s_[pos_] <= 'z') {
        if (s_[pos_] != 'i') return Error(pos_, "unsupported regex flag");
        flags |= std::regex::icase;
        ++pos_;
      }
      // std::regex reports a bad pattern only by throwing.
      try {
        out->regex = std::make_shared<const std::regex>(pattern, flags);
      } catch (const std::regex_error& e) {
        return Error(open, absl::StrCat("invalid regex (", e.what(), ")"));
      }
      out->kind = Operand::Kind::kRegex;
      return absl::OkStatus();
    }
    for (auto [word, value] : {std::pair<std::string_view, Value>{"true", Value(true)},
                               {"false", Value(false)},
                               {"null", Value()}}) {
      if (s_.substr(pos_, word.size()) == word &&
          (pos_ + word.size() >= s_.size() || EndsDotName(s_[pos_ + word.size()]))) {
        pos_ += word.size();
        out->kind = Operand::Kind::kLiteral;
        out->literal = value;
        return absl::OkStatus();
      }
    }
    return Error(pos_, "expected a value in the filter");
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace jsonpath_internal

using jsonpath_internal::AV;
using jsonpath_internal::SegKind;
using jsonpath_internal::Segment;

struct JsonPath::Impl {
  std::string text;
  bool context = false;
  bool definite = true;
  bool reference = true;
  std::vector<Segment> segments;
};

namespace {

const std::shared_ptr<const JsonPath::Impl>& RootImpl() {
  // Leaked on purpose: avoids a static destructor (Google style).
  static const auto* root = [] {
    auto impl = std::make_shared<JsonPath::Impl>();
    impl->text = "$";
    return new std::shared_ptr<const JsonPath::Impl>(std::move(impl));
  }();
  return *root;
}

absl::Status AssignAt(json::Value* node, const Segment* seg, const Segment* end, json::Value value,
                      const std::string& text) {
  if (seg == end) {
    *node = std::move(value);
    return absl::OkStatus();
  }
  if (seg->kind == SegKind::kName) {
    if (!node->is_object()) {
      return absl::FailedPreconditionError(
          absl::StrCat("Unable to apply ReferencePath ", text, ": field '", seg->name,
                       "' cannot be set on a ", AV(json::TypeName(node->type()))));
    }
    // mutable_object() clones a shared node first, so `root` is never changed.
    json::Object& obj = node->mutable_object();
    for (auto& m : obj) {
      if (m.first == seg->name) return AssignAt(&m.second, seg + 1, end, std::move(value), text);
    }
    obj.emplace_back(seg->name, seg + 1 == end ? json::Value() : json::Value::EmptyObject());
    return AssignAt(&obj.back().second, seg + 1, end, std::move(value), text);
  }
  if (!node->is_array()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Unable to apply ReferencePath ", text, ": index [", seg->index,
                     "] cannot be set on a ", AV(json::TypeName(node->type()))));
  }
  auto idx = jsonpath_internal::NormalizeIndex(seg->index, node->as_array().size());
  if (!idx) {
    return absl::FailedPreconditionError(
        absl::StrCat("Unable to apply ReferencePath ", text, ": index [", seg->index,
                     "] is out of range for an array of length ", node->as_array().size()));
  }
  json::Array& arr = node->mutable_array();
  return AssignAt(&arr[*idx], seg + 1, end, std::move(value), text);
}

}  // namespace

absl::StatusOr<JsonPath> JsonPath::Parse(std::string_view text) {
  jsonpath_internal::Parser p(text);
  auto impl = std::make_shared<Impl>();
  impl->text = std::string(text);
  if (text.empty() || text[0] != '$') return p.Error(0, "a path must start with '$'");
  p.set_pos(1);
  if (text.size() > 1 && text[1] == '$') {
    impl->context = true;
    p.set_pos(2);
  }
  if (absl::Status st = p.ParseSegments(&impl->segments, /*in_filter=*/false); !st.ok()) {
    return st;
  }
  impl->definite = jsonpath_internal::SegmentsDefinite(impl->segments);
  impl->reference = impl->definite;
  JsonPath out;
  out.impl_ = std::move(impl);
  return out;
}

const std::string& JsonPath::text() const { return impl_->text; }
bool JsonPath::is_context() const { return impl_->context; }
bool JsonPath::is_definite() const { return impl_->definite; }
bool JsonPath::is_reference_path() const { return impl_->reference; }
bool JsonPath::is_root() const { return impl_->segments.empty(); }

absl::StatusOr<json::Value> JsonPath::Evaluate(const json::Value& input,
                                               const json::Value& context) const {
  const Impl& impl = *impl_;
  const json::Value& doc = impl.context ? context : input;
  if (impl.definite) {
    const json::Value* v = jsonpath_internal::WalkDefinite(doc, impl.segments);
    if (v == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("Invalid path '", impl.text, "': no value exists at that path"));
    }
    return *v;  // shares the node: a reference-count increment
  }
  json::Array out;
  const Segment* begin = impl.segments.data();
  jsonpath_internal::Collect(doc, begin, begin + impl.segments.size(), doc, &out);
  return json::Value(std::move(out));
}

absl::StatusOr<json::Value> JsonPath::Assign(const json::Value& root, json::Value value) const {
  const Impl& impl = *impl_;
  if (!impl.reference || impl.context) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", impl.text, "' is not a reference path into the input"));
  }
  json::Value result = root;  // shares nodes until a mutable_* call clones one
  const Segment* begin = impl.segments.data();
  absl::Status st =
      AssignAt(&result, begin, begin + impl.segments.size(), std::move(value), impl.text);
  if (!st.ok()) return st;
  return result;
}

JsonPath::JsonPath() : impl_(RootImpl()) {}
JsonPath::~JsonPath() = default;
JsonPath::JsonPath(const JsonPath&) = default;
JsonPath& JsonPath::operator=(const JsonPath&) = default;
JsonPath::JsonPath(JsonPath&&) noexcept = default;
JsonPath& JsonPath::operator=(JsonPath&&) noexcept = default;

}  // namespace saga::asl
