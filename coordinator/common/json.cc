#include "coordinator/common/json.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace saga::json {

std::string_view TypeName(Type t) {
  switch (t) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "boolean";
    case Type::kInt:
    case Type::kDouble:
      return "number";
    case Type::kString:
      return "string";
    case Type::kArray:
      return "array";
    case Type::kObject:
      return "object";
  }
  return "unknown";
}

Value::Value(std::string s)
    : type_(Type::kString), i_(0), ptr_(std::make_shared<std::string>(std::move(s))) {}
Value::Value(Array a) : type_(Type::kArray), i_(0), ptr_(std::make_shared<Array>(std::move(a))) {}
Value::Value(Object o)
    : type_(Type::kObject), i_(0), ptr_(std::make_shared<Object>(std::move(o))) {}

const std::string& Value::as_string() const { return *static_cast<const std::string*>(ptr_.get()); }
const Array& Value::as_array() const { return *static_cast<const Array*>(ptr_.get()); }
const Object& Value::as_object() const { return *static_cast<const Object*>(ptr_.get()); }

bool Value::is_integral() const {
  if (type_ == Type::kInt) return true;
  if (type_ != Type::kDouble) return false;
  return std::isfinite(d_) && std::floor(d_) == d_ && d_ >= -9.2233720368547758e18 &&
         d_ < 9.2233720368547758e18;
}

Array& Value::mutable_array() {
  if (ptr_.use_count() > 1) ptr_ = std::make_shared<Array>(as_array());
  return *static_cast<Array*>(ptr_.get());
}

Object& Value::mutable_object() {
  if (ptr_.use_count() > 1) ptr_ = std::make_shared<Object>(as_object());
  return *static_cast<Object*>(ptr_.get());
}

const Value* Value::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& m : as_object()) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

void Value::Set(std::string_view key, Value v) {
  Object& o = mutable_object();
  for (auto& m : o) {
    if (m.first == key) {
      m.second = std::move(v);
      return;
    }
  }
  o.emplace_back(std::string(key), std::move(v));
}

bool Value::Erase(std::string_view key) {
  if (Find(key) == nullptr) return false;
  Object& o = mutable_object();
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (it->first == key) {
      o.erase(it);
      return true;
    }
  }
  return false;
}

size_t Value::size() const {
  if (type_ == Type::kArray) return as_array().size();
  if (type_ == Type::kObject) return as_object().size();
  return 0;
}

bool operator==(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.i_ == b.i_;
    return a.as_double() == b.as_double();
  }
  if (a.type_ != b.type_) return false;
  if (a.ptr_ && a.ptr_ == b.ptr_) return true;
  switch (a.type_) {
    case Type::kNull:
      return true;
    case Type::kBool:
      return a.b_ == b.b_;
    case Type::kString:
      return a.as_string() == b.as_string();
    case Type::kArray:
      return a.as_array() == b.as_array();
    case Type::kObject: {
      const Object& x = a.as_object();
      const Object& y = b.as_object();
      if (x.size() != y.size()) return false;
      for (const auto& m : x) {
        const Value* other = b.Find(m.first);
        if (other == nullptr || !(*other == m.second)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// Serialisation

void AppendQuoted(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

static void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {  // not representable in JSON
    out->append("null");
    return;
  }
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  std::string_view s(buf, static_cast<size_t>(res.ptr - buf));
  out->append(s);
  if (s.find_first_of(".eEn") == std::string_view::npos) out->append(".0");
}

static size_t QuotedSize(const std::string& s) {
  size_t n = 2;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != '"' && c != '\\') {
      ++n;
    } else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' ||
               c == '\f') {
      n += 2;
    } else {
      n += 6;
    }
  }
  return n;
}

size_t SerializedSize(const Value& v) {
  switch (v.type()) {
    case Type::kNull:
      return 4;
    case Type::kBool:
      return v.as_bool() ? 4 : 5;
    case Type::kInt: {
      char buf[24];
      return static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), v.as_int()).ptr - buf);
    }
    case Type::kDouble:
      return FormatNumber(v).size();
    case Type::kString:
      return QuotedSize(v.as_string());
    case Type::kArray: {
      const Array& a = v.as_array();
      size_t n = 2 + (a.empty() ? 0 : a.size() - 1);
      for (const auto& e : a) n += SerializedSize(e);
      return n;
    }
    case Type::kObject: {
      const Object& o = v.as_object();
      size_t n = 2 + (o.empty() ? 0 : o.size() - 1);
      for (const auto& m : o) n += QuotedSize(m.first) + 1 + SerializedSize(m.second);
      return n;
    }
  }
  return 0;
}

static size_t UpperBound(const Value& v) {
  switch (v.type()) {
    case Type::kNull:
    case Type::kBool:
      return 5;
    case Type::kInt:
      return 20;
    case Type::kDouble:
      return 28;
    case Type::kString:
      return 6 * v.as_string().size() + 2;
    case Type::kArray: {
      size_t n = 2 + v.as_array().size();
      for (const auto& e : v.as_array()) n += UpperBound(e);
      return n;
    }
    case Type::kObject: {
      size_t n = 2 + v.as_object().size();
      for (const auto& m : v.as_object()) n += 6 * m.first.size() + 3 + UpperBound(m.second);
      return n;
    }
  }
  return 0;
}

bool FitsIn(const Value& v, size_t limit) {
  return UpperBound(v) <= limit || SerializedSize(v) <= limit;
}

std::string FormatNumber(const Value& v) {
  std::string out;
  if (v.is_int()) {
    out = std::to_string(v.as_int());
  } else {
    AppendDouble(v.as_double(), &out);
  }
  return out;
}

void Value::DumpTo(std::string* out) const {
  switch (type_) {
    case Type::kNull:
      out->append("null");
      break;
    case Type::kBool:
      out->append(b_ ? "true" : "false");
      break;
    case Type::kInt: {
      char buf[24];
      auto res = std::to_chars(buf, buf + sizeof(buf), i_);
      out->append(buf, static_cast<size_t>(res.ptr - buf));
      break;
    }
    case Type::kDouble:
      AppendDouble(d_, out);
      break;
    case Type::kString:
      AppendQuoted(as_string(), out);
      break;
    case Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const auto& v : as_array()) {
        if (!first) out->push_back(',');
        first = false;
        v.DumpTo(out);
      }
      out->push_back(']');
      break;
    }
    case Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& m : as_object()) {
        if (!first) out->push_back(',');
        first = false;
        AppendQuoted(m.first, out);
        out->push_back(':');
        m.second.DumpTo(out);
      }
      out->push_back('}');
      break;
    }
  }
}

std::string Value::Dump() const {
  std::string out;
  DumpTo(&out);
  return out;
}

void Value::PrettyTo(std::string* out, int indent, int depth) const {
  auto newline = [&](int d) {
    out->push_back('\n');
    out->append(static_cast<size_t>(indent * d), ' ');
  };
  if (type_ == Type::kArray && !as_array().empty()) {
    out->push_back('[');
    bool first = true;
    for (const auto& v : as_array()) {
      if (!first) out->push_back(',');
      first = false;
      newline(depth + 1);
      v.PrettyTo(out, indent, depth + 1);
    }
    newline(depth);
    out->push_back(']');
  } else if (type_ == Type::kObject && !as_object().empty()) {
    out->push_back('{');
    bool first = true;
    for (const auto& m : as_object()) {
      if (!first) out->push_back(',');
      first = false;
      newline(depth + 1);
      AppendQuoted(m.first, out);
      out->append(": ");
      m.second.PrettyTo(out, indent, depth + 1);
    }
    newline(depth);
    out->push_back('}');
  } else {
    DumpTo(out);
  }
}

std::string Value::Pretty(int indent) const {
  std::string out;
  PrettyTo(&out, indent, 0);
  return out;
}

// ---------------------------------------------------------------------------
// Parsing

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  absl::StatusOr<Value> ParseDocument() {
    Value v;
    if (!ParseValue(&v, 0)) return Error();
    SkipWs();
    if (pos_ != s_.size()) {
      err_ = "unexpected trailing characters";
      return Error();
    }
    return v;
  }

 private:
  absl::Status Error() const {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at offset ", pos_, ": ", err_));
  }

  void SkipWs() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  bool Fail(const char* msg) {
    err_ = msg;
    return false;
  }

  bool ParseValue(Value* out, int depth) {
    if (depth > 512) return Fail("nesting deeper than 512 levels");
    SkipWs();
    if (pos_ >= s_.size()) return Fail("unexpected end of input, expected a value");
    char c = s_[pos_];
    switch (c) {
      case '{':
        return ParseObject(out, depth);
      case '[':
        return ParseArray(out, depth);
      case '"': {
        std::string str;
        if (!ParseString(&str)) return false;
        *out = Value(std::move(str));
        return true;
      }
      case 't':
        return Literal("true", Value(true), out);
      case 'f':
        return Literal("false", Value(false), out);
      case 'n':
        return Literal("null", Value(), out);
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
        return Fail("unexpected character, expected a value");
    }
  }

  bool Literal(std::string_view word, Value v, Value* out) {
    if (s_.substr(pos_, word.size()) != word) return Fail("invalid literal");
    pos_ += word.size();
    *out = std::move(v);
    return true;
  }

  bool ParseNumber(Value* out) {
    size_t start = pos_;
    bool integral = true;
    if (s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) {
      return Fail("invalid number");
    }
    if (s_[pos_] == '0') {
      ++pos_;
    } else {
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) {
        return Fail("invalid number: digits expected after '.'");
      }
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (pos_ >= s_.size() || !isdigit(static_cast<unsigned char>(s_[pos_]))) {
        return Fail("invalid number: digits expected in exponent");
      }
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    const char* b = s_.data() + start;
    const char* e = s_.data() + pos_;
    if (integral) {
      int64_t i;
      auto res = std::from_chars(b, e, i);
      if (res.ec == std::errc() && res.ptr == e) {
        *out = Value(i);
        return true;
      }
    }
    double d;
    auto res = std::from_chars(b, e, d);
    if (res.ptr != e) return Fail("invalid number");
    if (res.ec == std::errc::result_out_of_range) return Fail("number out of range");
    *out = Value(d);
    return true;
  }

  bool Hex4(uint32_t* cp) {
    if (pos_ + 4 > s_.size()) return Fail("truncated \\u escape");
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
        return Fail("invalid hex digit in \\u escape");
      }
    }
    *cp = v;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // opening quote
    size_t run = pos_;
    while (true) {
      if (pos_ >= s_.size()) return Fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        out->append(s_.data() + run, pos_ - run);
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control character in string");
      if (c != '\\') {
        ++pos_;
        continue;
      }
      out->append(s_.data() + run, pos_ - run);
      ++pos_;
      if (pos_ >= s_.size()) return Fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF && pos_ + 1 < s_.size() && s_[pos_] == '\\' &&
              s_[pos_ + 1] == 'u') {
            size_t save = pos_;
            pos_ += 2;
            uint32_t lo;
            if (!Hex4(&lo)) return false;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              pos_ = save;
            }
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Fail("invalid escape in string");
      }
      run = pos_;
    }
  }

  bool ParseArray(Value* out, int depth) {
    ++pos_;
    Array arr;
    SkipWs();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      *out = Value(std::move(arr));
      return true;
    }
    while (true) {
      Value v;
      if (!ParseValue(&v, depth + 1)) return false;
      arr.push_back(std::move(v));
      SkipWs();
      if (pos_ >= s_.size()) return Fail("unterminated array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        *out = Value(std::move(arr));
        return true;
      }
      return Fail("expected ',' or ']' in array");
    }
  }

  bool ParseObject(Value* out, int depth) {
    ++pos_;
    Value obj = Value::EmptyObject();
    SkipWs();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      *out = std::move(obj);
      return true;
    }
    while (true) {
      SkipWs();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a string key in object");
      std::string key;
      if (!ParseString(&key)) return false;
      SkipWs();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':' after object key");
      ++pos_;
      Value v;
      if (!ParseValue(&v, depth + 1)) return false;
      obj.Set(key, std::move(v));  // a repeated key keeps the last value
      SkipWs();
      if (pos_ >= s_.size()) return Fail("unterminated object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        *out = std::move(obj);
        return true;
      }
      return Fail("expected ',' or '}' in object");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  const char* err_ = "";
};

}  // namespace

absl::StatusOr<Value> Parse(std::string_view text) { return Parser(text).ParseDocument(); }

}  // namespace saga::json
