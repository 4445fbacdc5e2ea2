#include "coordinator/asl/intrinsics.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/asl/errors.h"
#include "coordinator/asl/jsonpath.h"

namespace saga::asl {
namespace intrinsics_internal {

using json::Array;
using json::Object;
using json::Value;

enum class Fn : uint8_t {
  kFormat,
  kStringToJson,
  kJsonToString,
  kArray,
  kArrayPartition,
  kArrayContains,
  kArrayRange,
  kArrayGetItem,
  kArrayLength,
  kArrayUnique,
  kBase64Encode,
  kBase64Decode,
  kHash,
  kJsonMerge,
  kMathRandom,
  kMathAdd,
  kStringSplit,
  kUuid,
};

struct FnInfo {
  std::string_view name;
  Fn fn;
  int min_args;
  int max_args;  // -1: no limit
};

constexpr FnInfo kFunctions[] = {
    {"States.Format", Fn::kFormat, 1, -1},
    {"States.StringToJson", Fn::kStringToJson, 1, 1},
    {"States.JsonToString", Fn::kJsonToString, 1, 1},
    {"States.Array", Fn::kArray, 0, -1},
    {"States.ArrayPartition", Fn::kArrayPartition, 2, 2},
    {"States.ArrayContains", Fn::kArrayContains, 2, 2},
    {"States.ArrayRange", Fn::kArrayRange, 3, 3},
    {"States.ArrayGetItem", Fn::kArrayGetItem, 2, 2},
    {"States.ArrayLength", Fn::kArrayLength, 1, 1},
    {"States.ArrayUnique", Fn::kArrayUnique, 1, 1},
    {"States.Base64Encode", Fn::kBase64Encode, 1, 1},
    {"States.Base64Decode", Fn::kBase64Decode, 1, 1},
    {"States.Hash", Fn::kHash, 2, 2},
    {"States.JsonMerge", Fn::kJsonMerge, 3, 3},
    {"States.MathRandom", Fn::kMathRandom, 2, 3},
    {"States.MathAdd", Fn::kMathAdd, 2, 2},
    {"States.StringSplit", Fn::kStringSplit, 2, 2},
    {"States.UUID", Fn::kUuid, 0, 0},
};

// AWS: "You can nest up to 10 intrinsic functions within a field".
constexpr int kMaxNesting = 10;
// AWS limits for Base64Encode/Base64Decode/Hash input and ArrayRange output.
constexpr size_t kMaxInputChars = 10000;
constexpr int64_t kMaxRangeItems = 1000;

// Debian's abseil has its own absl::string_view, which StrCat needs.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace intrinsics_internal

using intrinsics_internal::AV;
using intrinsics_internal::Fn;
using intrinsics_internal::FnInfo;
using json::Array;
using json::Object;
using json::Value;

struct Intrinsic::Node {
  enum class Kind : uint8_t { kLiteral, kPath, kCall };
  Kind kind = Kind::kLiteral;
  Value literal;
  bool string_literal = false;
  // A string literal split at its unescaped "{}" placeholders (States.Format);
  // escaped \{ \} never split it.
  std::vector<std::string> pieces;
  JsonPath path;
  const FnInfo* fn = nullptr;
  std::vector<Node> args;
};

namespace {

using Node = Intrinsic::Node;

class CallParser {
 public:
  explicit CallParser(std::string_view text) : s_(text) {}

  absl::Status Error(size_t at, std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid intrinsic function '", AV(s_), "': ", AV(what), " at position ", at));
  }

  absl::Status ParseAll(Node* out) {
    if (absl::Status st = ParseCall(out, 1); !st.ok()) return st;
    SkipWs();
    if (pos_ != s_.size()) return Error(pos_, "unexpected text after the closing parenthesis");
    return absl::OkStatus();
  }

 private:
  void SkipWs() {
    while (pos_ < s_.size() && intrinsics_internal::IsWs(s_[pos_])) ++pos_;
  }

  absl::Status ParseCall(Node* out, int depth) {
    size_t start = pos_;
    if (depth > intrinsics_internal::kMaxNesting) {
      return Error(start, "intrinsic functions are nested more than 10 deep");
    }
    if (s_.substr(pos_, 7) != "States.") return Error(pos_, "expected 'States.'");
    pos_ += 7;
    while (pos_ < s_.size() && intrinsics_internal::IsAlnum(s_[pos_])) ++pos_;
    std::string_view name = s_.substr(start, pos_ - start);
    const FnInfo* fn = nullptr;
    for (const FnInfo& f : intrinsics_internal::kFunctions) {
      if (f.name == name) fn = &f;
    }
    if (fn == nullptr) {
      return Error(start, absl::StrCat("unknown intrinsic function '", AV(name), "'"));
    }
    if (pos_ >= s_.size() || s_[pos_] != '(') return Error(pos_, "expected '(' after the name");
    ++pos_;
    out->kind = Node::Kind::kCall;
    out->fn = fn;
    SkipWs();
    if (pos_ < s_.size() && s_[pos_] == ')') {
      ++pos_;
    } else {
      while (true) {
        Node arg;
        if (absl::Status st = ParseArg(&arg, depth); !st.ok()) return st;
        out->args.push_back(std::move(arg));
        SkipWs();
        if (pos_ >= s_.size()) return Error(start, "unterminated call");
        if (s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (s_[pos_] == ')') {
          ++pos_;
          break;
        }
        return Error(pos_, "expected ',' or ')'");
      }
    }
    return CheckArity(*out, start);
  }

  absl::Status CheckArity(const Node& call, size_t at) const {
    const FnInfo& fn = *call.fn;
    int n = static_cast<int>(call.args.size());
    if (n < fn.min_args || (fn.max_args >= 0 && n > fn.max_args)) {
      std::string want;
      if (fn.max_args < 0) {
        want = absl::StrCat("at least ", fn.min_args);
      } else if (fn.min_args == fn.max_args) {
        want = absl::StrCat("exactly ", fn.min_args);
      } else {
        want = absl::StrCat(fn.min_args, " to ", fn.max_args);
      }
      return Error(at, absl::StrCat(AV(fn.name), " takes ", want, " argument",
                                    fn.max_args == 1 ? "" : "s", " but was given ", n));
    }
    if (fn.fn == Fn::kFormat) {
      const Node& tmpl = call.args[0];
      if (tmpl.kind == Node::Kind::kLiteral && !tmpl.string_literal) {
        return Error(at, "the first argument of States.Format must be a string");
      }
      // A placeholder/argument count mismatch is an evaluation failure
      // (States.IntrinsicFailure), as the reference interpreter reports it.
    }
    return absl::OkStatus();
  }

  absl::Status ParseArg(Node* out, int depth) {
    SkipWs();
    if (pos_ >= s_.size()) return Error(pos_, "expected an argument");
    char c = s_[pos_];
    if (c == '\'') return ParseString(out);
    if (c == '$') return ParsePath(out);
    if (s_.substr(pos_, 7) == "States.") return ParseCall(out, depth + 1);
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != ')' &&
           !intrinsics_internal::IsWs(s_[pos_])) {
      ++pos_;
    }
    std::string_view tok = s_.substr(start, pos_ - start);
    if (tok.empty()) return Error(start, "expected an argument");
    if (c == '-' || (c >= '0' && c <= '9')) {
      auto num = json::Parse(tok);
      if (!num.ok() || !num->is_number()) return Error(start, "invalid number");
      out->literal = *std::move(num);
    } else if (tok == "true") {
      out->literal = Value(true);
    } else if (tok == "false") {
      out->literal = Value(false);
    } else if (tok == "null") {
      out->literal = Value();
    } else {
      return Error(start, absl::StrCat("unexpected '", AV(tok), "'"));
    }
    out->kind = Node::Kind::kLiteral;
    return absl::OkStatus();
  }

  // Intrinsic escapes (AWS): \' \{ \} \\ and nothing else.
  absl::Status ParseString(Node* out) {
    size_t open = pos_++;
    std::string value;
    std::vector<std::string> pieces(1);
    while (true) {
      if (pos_ >= s_.size()) return Error(open, "unterminated string");
      char c = s_[pos_++];
      if (c == '\'') break;
      if (c == '\\') {
        if (pos_ >= s_.size()) return Error(open, "unterminated string");
        char e = s_[pos_++];
        if (e != '\'' && e != '{' && e != '}' && e != '\\') {
          return Error(pos_ - 2, "invalid escape (only \\' \\{ \\} and \\\\ are allowed)");
        }
        value.push_back(e);
        pieces.back().push_back(e);
        continue;
      }
      if (c == '{' && pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        value.append("{}");
        pieces.emplace_back();
        continue;
      }
      value.push_back(c);
      pieces.back().push_back(c);
    }
    out->kind = Node::Kind::kLiteral;
    out->string_literal = true;
    out->literal = Value(std::move(value));
    out->pieces = std::move(pieces);
    return absl::OkStatus();
  }

  // A path runs to the next ',' ')' or blank outside brackets; inside brackets
  // quotes, filters and regexes may contain those characters.
  absl::Status ParsePath(Node* out) {
    size_t start = pos_;
    int depth = 0;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (depth == 0 && (c == ',' || c == ')' || intrinsics_internal::IsWs(c))) break;
      if (c == '[') {
        ++depth;
      } else if (c == ']') {
        if (depth > 0) --depth;
      } else if (depth > 0 && (c == '\'' || c == '"' || c == '/')) {
        ++pos_;
        while (pos_ < s_.size() && s_[pos_] != c) {
          if (s_[pos_] == '\\') ++pos_;
          ++pos_;
        }
        if (pos_ >= s_.size()) break;
      }
      ++pos_;
    }
    auto path = JsonPath::Parse(s_.substr(start, pos_ - start));
    if (!path.ok()) return Error(start, std::string(path.status().message()));
    out->kind = Node::Kind::kPath;
    out->path = *std::move(path);
    return absl::OkStatus();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// Evaluation helpers

absl::Status Fail(const FnInfo& fn, std::string_view why) {
  return AslError(kStatesIntrinsicFailure,
                  absl::StrCat("Invalid arguments in ", AV(fn.name), ": ", AV(why)));
}

std::string_view TypeOf(const Value& v) { return json::TypeName(v.type()); }

// AWS rounds non-integer arguments "to the nearest integer"; Step Functions
// runs on Java, whose Math.round sends halves up (2.5 -> 3, -2.5 -> -2).
bool RoundToInt(const Value& v, int64_t* out) {
  if (!v.is_number()) return false;
  if (v.is_int()) {
    *out = v.as_int();
    return true;
  }
  double d = v.as_double();
  if (!std::isfinite(d)) return false;
  double f = std::floor(d);
  if (d - f >= 0.5) f += 1;
  if (f < -9.2e18 || f > 9.2e18) return false;
  *out = static_cast<int64_t>(f);
  return true;
}

size_t CountChars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// States.Format renders objects and arrays as Java's Map/List toString does:
// AWS turns {"Arg1": 1, "Arg2": []} into "{Arg1=1, Arg2=[]}" (LocalStack's
// AWS-recorded snapshot tests). Strings appear raw, other scalars as JSON.
void AppendFormatted(const Value& v, std::string* out) {
  switch (v.type()) {
    case json::Type::kString:
      out->append(v.as_string());
      break;
    case json::Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Value& e : v.as_array()) {
        if (!first) out->append(", ");
        first = false;
        AppendFormatted(e, out);
      }
      out->push_back(']');
      break;
    }
    case json::Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& m : v.as_object()) {
        if (!first) out->append(", ");
        first = false;
        out->append(m.first);
        out->push_back('=');
        AppendFormatted(m.second, out);
      }
      out->push_back('}');
      break;
    }
    default:
      v.DumpTo(out);
  }
}

// Hash consistent with json::Value's operator== (numbers by value, members in
// any order), so ArrayUnique is linear rather than quadratic.
size_t HashValue(const Value& v) {
  constexpr size_t kMul = 0x9E3779B97F4A7C15ULL;
  switch (v.type()) {
    case json::Type::kNull:
      return 0x51;
    case json::Type::kBool:
      return v.as_bool() ? 0x52 : 0x53;
    case json::Type::kInt:
    case json::Type::kDouble: {
      double d = v.as_double();
      if (d == 0) d = 0;  // -0.0 == 0.0
      return std::hash<double>()(d);
    }
    case json::Type::kString:
      return std::hash<std::string>()(v.as_string());
    case json::Type::kArray: {
      size_t h = 0x54;
      for (const Value& e : v.as_array()) h = (h ^ HashValue(e)) * kMul;
      return h;
    }
    case json::Type::kObject: {
      size_t h = 0x55;
      for (const auto& m : v.as_object()) {
        h += (std::hash<std::string>()(m.first) ^ (HashValue(m.second) * kMul)) * kMul;
      }
      return h;
    }
  }
  return 0;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.push_back(kB64[(n >> 6) & 63]);
    out.push_back(kB64[n & 63]);
  }
  if (i + 1 == in.size()) {
    uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.append("==");
  } else if (i + 2 == in.size()) {
    uint32_t n = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.push_back(kB64[(n >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

int B64Digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard alphabet; padding optional, but when present it must complete the
// last quantum.
bool Base64Decode(std::string_view in, std::string* out) {
  size_t pads = 0;
  while (pads < 2 && pads < in.size() && in[in.size() - 1 - pads] == '=') ++pads;
  if (pads > 0 && in.size() % 4 != 0) return false;
  std::string_view data = in.substr(0, in.size() - pads);
  if (data.size() % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : data) {
    int d = B64Digit(c);
    if (d < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

// Decoded bytes become a JSON string, which must be UTF-8: like Java's
// new String(bytes, UTF_8), each malformed sequence becomes U+FFFD.
std::string SanitizeUtf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    size_t len = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      min = 0x10000;
    }
    bool ok = len > 0 && i + len <= in.size();
    uint32_t cp = len > 0 ? (c & (0x7F >> len)) : 0;
    for (size_t k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(in[i + k]);
      if ((cc & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (cc & 0x3F);
      }
    }
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

absl::StatusOr<Value> Hash(const FnInfo& fn, const std::string& data, const std::string& alg) {
  const EVP_MD* md = nullptr;
  if (alg == "MD5") {
    md = EVP_md5();
  } else if (alg == "SHA-1") {
    md = EVP_sha1();
  } else if (alg == "SHA-256") {
    md = EVP_sha256();
  } else if (alg == "SHA-384") {
    md = EVP_sha384();
  } else if (alg == "SHA-512") {
    md = EVP_sha512();
  } else {
    return Fail(fn, absl::StrCat("unsupported hash algorithm '", alg,
                                 "' (use MD5, SHA-1, SHA-256, SHA-384 or SHA-512)"));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, md, nullptr) != 1) {
    return Fail(fn, "the digest could not be computed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return Value(std::move(hex));
}

std::string Uuid4(Rng* rng) {
  uint8_t b[16];
  uint64_t hi = rng->Next();
  uint64_t lo = rng->Next();
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    b[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 15]);
  }
  return out;
}

std::vector<std::string_view> SplitFormatTemplate(std::string_view t) {
  std::vector<std::string_view> out;
  size_t from = 0;
  while (true) {
    size_t at = t.find("{}", from);
    if (at == std::string_view::npos) break;
    out.push_back(t.substr(from, at - from));
    from = at + 2;
  }
  out.push_back(t.substr(from));
  return out;
}

absl::StatusOr<Value> EvalNode(const Node& n, const IntrinsicEnv& env, const FnInfo* parent);

absl::StatusOr<Value> Call(const Node& call, const IntrinsicEnv& env) {
  const FnInfo& fn = *call.fn;
  std::vector<Value> a;
  a.reserve(call.args.size());
  for (const Node& arg : call.args) {
    auto v = EvalNode(arg, env, &fn);
    if (!v.ok()) return v.status();
    a.push_back(*std::move(v));
  }
  auto need = [&](size_t i, json::Type t, std::string_view what) -> absl::Status {
    bool ok = a[i].type() == t || (t == json::Type::kDouble && a[i].is_number());
    if (ok) return absl::OkStatus();
    return Fail(
        fn, absl::StrCat("argument ", i + 1, " must be ", AV(what), ", got ", AV(TypeOf(a[i]))));
  };
  auto need_int = [&](size_t i, int64_t* out) -> absl::Status {
    if (RoundToInt(a[i], out)) return absl::OkStatus();
    return Fail(fn,
                absl::StrCat("argument ", i + 1, " must be an integer, got ", AV(TypeOf(a[i]))));
  };
  auto need_short = [&](size_t i) -> absl::Status {
    if (absl::Status st = need(i, json::Type::kString, "a string"); !st.ok()) return st;
    size_t chars = CountChars(a[i].as_string());
    if (chars <= intrinsics_internal::kMaxInputChars) return absl::OkStatus();
    return Fail(fn, absl::StrCat("the input has ", chars, " characters; the limit is ",
                                 intrinsics_internal::kMaxInputChars));
  };

  switch (fn.fn) {
    case Fn::kFormat: {
      std::vector<std::string_view> pieces;
      const Node& tmpl = call.args[0];
      if (tmpl.string_literal) {
        for (const std::string& p : tmpl.pieces) pieces.push_back(p);
      } else {
        if (absl::Status st = need(0, json::Type::kString, "a string"); !st.ok()) return st;
        pieces = SplitFormatTemplate(a[0].as_string());
      }
      if (pieces.size() != a.size()) {
        return Fail(fn, absl::StrCat("the template has ", pieces.size() - 1, " placeholder(s) but ",
                                     a.size() - 1, " value(s) were given"));
      }
      std::string out(pieces[0]);
      for (size_t i = 1; i < a.size(); ++i) {
        AppendFormatted(a[i], &out);
        out.append(pieces[i]);
      }
      return Value(std::move(out));
    }
    case Fn::kStringToJson: {
      if (absl::Status st = need(0, json::Type::kString, "a string"); !st.ok()) return st;
      // AWS (LocalStack recordings): "" and blank strings give null.
      if (a[0].as_string().find_first_not_of(" \t\r\n") == std::string::npos) return Value();
      auto parsed = json::Parse(a[0].as_string());
      if (!parsed.ok()) {
        return Fail(fn,
                    absl::StrCat("the string is not valid JSON (", parsed.status().message(), ")"));
      }
      return *std::move(parsed);
    }
    case Fn::kJsonToString:
      return Value(a[0].Dump());
    case Fn::kArray:
      return Value(Array(std::move(a)));
    case Fn::kArrayPartition: {
      if (absl::Status st = need(0, json::Type::kArray, "an array"); !st.ok()) return st;
      int64_t size;
      if (absl::Status st = need_int(1, &size); !st.ok()) return st;
      if (size <= 0) return Fail(fn, "the chunk size must be a positive integer");
      const Array& in = a[0].as_array();
      Array out;
      for (size_t i = 0; i < in.size(); i += static_cast<size_t>(size)) {
        size_t end = std::min(in.size(), i + static_cast<size_t>(size));
        out.push_back(Value(Array(in.begin() + static_cast<std::ptrdiff_t>(i),
                                  in.begin() + static_cast<std::ptrdiff_t>(end))));
      }
      return Value(std::move(out));
    }
    case Fn::kArrayContains: {
      if (absl::Status st = need(0, json::Type::kArray, "an array"); !st.ok()) return st;
      for (const Value& e : a[0].as_array()) {
        if (e == a[1]) return Value(true);
      }
      return Value(false);
    }
    case Fn::kArrayRange: {
      int64_t start, end, step;
      if (absl::Status st = need_int(0, &start); !st.ok()) return st;
      if (absl::Status st = need_int(1, &end); !st.ok()) return st;
      if (absl::Status st = need_int(2, &step); !st.ok()) return st;
      if (step == 0) return Fail(fn, "the step must not be zero");
      // Counted in double so that extreme bounds cannot overflow.
      double span = static_cast<double>(end) - static_cast<double>(start);
      double count = span / static_cast<double>(step) < 0
                         ? 0
                         : std::floor(span / static_cast<double>(step)) + 1;
      if (count > static_cast<double>(intrinsics_internal::kMaxRangeItems)) {
        return Fail(fn, absl::StrCat("the range would have more than ",
                                     intrinsics_internal::kMaxRangeItems, " items"));
      }
      Array out;
      out.reserve(static_cast<size_t>(count));
      for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) out.push_back(start + i * step);
      return Value(std::move(out));
    }
    case Fn::kArrayGetItem: {
      if (absl::Status st = need(0, json::Type::kArray, "an array"); !st.ok()) return st;
      if (!a[1].is_number() || !a[1].is_integral()) {
        return Fail(fn, absl::StrCat("the index must be an integer, got ", AV(TypeOf(a[1]))));
      }
      const Array& arr = a[0].as_array();
      double idx = a[1].as_double();
      if (idx < 0 || idx >= static_cast<double>(arr.size())) {
        return Fail(fn, absl::StrCat("index ", a[1].Dump(), " is out of bounds for an array of ",
                                     arr.size(), " items"));
      }
      return arr[static_cast<size_t>(idx)];
    }
    case Fn::kArrayLength:
      if (absl::Status st = need(0, json::Type::kArray, "an array"); !st.ok()) return st;
      return Value(static_cast<int64_t>(a[0].as_array().size()));
    case Fn::kArrayUnique: {
      if (absl::Status st = need(0, json::Type::kArray, "an array"); !st.ok()) return st;
      Array out;
      std::unordered_multimap<size_t, size_t> seen;  // hash -> index in `out`
      for (const Value& e : a[0].as_array()) {
        size_t h = HashValue(e);
        bool dup = false;
        for (auto [it, end] = seen.equal_range(h); it != end && !dup; ++it) {
          dup = out[it->second] == e;
        }
        if (dup) continue;
        seen.emplace(h, out.size());
        out.push_back(e);
      }
      return Value(std::move(out));
    }
    case Fn::kBase64Encode:
      if (absl::Status st = need_short(0); !st.ok()) return st;
      return Value(Base64Encode(a[0].as_string()));
    case Fn::kBase64Decode: {
      if (absl::Status st = need_short(0); !st.ok()) return st;
      std::string bytes;
      if (!Base64Decode(a[0].as_string(), &bytes)) return Fail(fn, "the input is not valid Base64");
      return Value(SanitizeUtf8(bytes));
    }
    case Fn::kHash: {
      if (absl::Status st = need_short(0); !st.ok()) return st;
      if (absl::Status st = need(1, json::Type::kString, "a string"); !st.ok()) return st;
      return Hash(fn, a[0].as_string(), a[1].as_string());
    }
    case Fn::kJsonMerge: {
      if (absl::Status st = need(0, json::Type::kObject, "an object"); !st.ok()) return st;
      if (absl::Status st = need(1, json::Type::kObject, "an object"); !st.ok()) return st;
      if (absl::Status st = need(2, json::Type::kBool, "a boolean"); !st.ok()) return st;
      if (a[2].as_bool()) return Fail(fn, "deep merge is not supported; pass false");
      Value out = a[0];
      for (const auto& m : a[1].as_object()) out.Set(m.first, m.second);
      return out;
    }
    case Fn::kMathRandom: {
      int64_t start, end;
      if (absl::Status st = need_int(0, &start); !st.ok()) return st;
      if (absl::Status st = need_int(1, &end); !st.ok()) return st;
      if (start >= end) return Fail(fn, "the start must be less than the end");
      uint64_t range = static_cast<uint64_t>(end) - static_cast<uint64_t>(start);
      uint64_t r;
      if (a.size() == 3) {
        int64_t seed;
        if (absl::Status st = need_int(2, &seed); !st.ok()) return st;
        // The same seed always yields the same number, as AWS documents.
        Rng seeded(static_cast<uint64_t>(seed));
        r = seeded.Next() % range;
      } else {
        r = env.rng->Next() % range;
      }
      return Value(static_cast<int64_t>(static_cast<uint64_t>(start) + r));
    }
    case Fn::kMathAdd: {
      int64_t x, y;
      if (absl::Status st = need_int(0, &x); !st.ok()) return st;
      if (absl::Status st = need_int(1, &y); !st.ok()) return st;
      for (int64_t v : {x, y}) {
        if (v < INT32_MIN || v > INT32_MAX) {
          return Fail(fn, absl::StrCat(v, " is outside the range -2147483648..2147483647"));
        }
      }
      return Value(x + y);
    }
    case Fn::kStringSplit: {
      if (absl::Status st = need(0, json::Type::kString, "a string"); !st.ok()) return st;
      if (absl::Status st = need(1, json::Type::kString, "a string"); !st.ok()) return st;
      // AWS splits at each character of the delimiter string and drops empty
      // pieces ("This.is+a,test=string" with ".+,=" gives five words).
      std::string_view s = a[0].as_string();
      std::string_view delims = a[1].as_string();
      std::vector<std::string_view> cps;  // delimiter characters, as UTF-8 sequences
      for (size_t i = 0; i < delims.size();) {
        size_t len = 1;
        while (i + len < delims.size() &&
               (static_cast<unsigned char>(delims[i + len]) & 0xC0) == 0x80) {
          ++len;
        }
        cps.push_back(delims.substr(i, len));
        i += len;
      }
      Array out;
      size_t piece = 0;
      size_t i = 0;
      while (i < s.size()) {
        size_t matched = 0;
        for (std::string_view d : cps) {
          if (s.substr(i, d.size()) == d) {
            matched = d.size();
            break;
          }
        }
        if (matched == 0) {
          ++i;
          continue;
        }
        if (i > piece) out.push_back(Value(s.substr(piece, i - piece)));
        i += matched;
        piece = i;
      }
      if (s.size() > piece) out.push_back(Value(s.substr(piece)));
      return Value(std::move(out));
    }
    case Fn::kUuid:
      return Value(Uuid4(env.rng));
  }
  return Fail(fn, "unsupported function");
}

absl::StatusOr<Value> EvalNode(const Node& n, const IntrinsicEnv& env, const FnInfo* parent) {
  switch (n.kind) {
    case Node::Kind::kLiteral:
      return n.literal;
    case Node::Kind::kPath: {
      auto v = n.path.Evaluate(env.input, env.context);
      if (v.ok()) return v;
      if (v.status().code() == absl::StatusCode::kNotFound) {
        return AslError(kStatesRuntime,
                        absl::StrCat("The JsonPath argument '", n.path.text(), "' of ",
                                     parent ? AV(parent->name) : absl::string_view("the call"),
                                     " could not be found in the input"));
      }
      return v.status();
    }
    case Node::Kind::kCall:
      return Call(n, env);
  }
  return absl::InternalError("bad intrinsic node");
}

}  // namespace

bool LooksLikeIntrinsic(std::string_view s) {
  if (s.substr(0, 7) != "States.") return false;
  size_t i = 7;
  while (i < s.size() && intrinsics_internal::IsAlnum(s[i])) ++i;
  return i > 7 && i < s.size() && s[i] == '(';
}

absl::StatusOr<Intrinsic> Intrinsic::Parse(std::string_view text) {
  auto root = std::make_shared<Node>();
  CallParser p(text);
  if (absl::Status st = p.ParseAll(root.get()); !st.ok()) return st;
  Intrinsic out;
  out.root_ = std::move(root);
  out.text_ = std::string(text);
  return out;
}

absl::StatusOr<json::Value> Intrinsic::Evaluate(const IntrinsicEnv& env) const {
  if (root_ == nullptr) return AslError(kStatesIntrinsicFailure, "empty intrinsic function");
  return EvalNode(*root_, env, nullptr);
}

const std::string& Intrinsic::text() const { return text_; }

Intrinsic::Intrinsic() = default;
Intrinsic::~Intrinsic() = default;
Intrinsic::Intrinsic(const Intrinsic&) = default;
Intrinsic& Intrinsic::operator=(const Intrinsic&) = default;
Intrinsic::Intrinsic(Intrinsic&&) noexcept = default;
Intrinsic& Intrinsic::operator=(Intrinsic&&) noexcept = default;

}  // namespace saga::asl
