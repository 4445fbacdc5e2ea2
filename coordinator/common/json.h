// A small JSON value type built for the ASL engine's hot path.
//
// Why our own: payloads flow through many states, history events, context
// objects, Parallel branches and Map iterations. Values here are immutable
// shared nodes with copy-on-write, so copying a 1 KiB payload into an event or
// a branch is a reference-count increment, not a deep copy. Objects keep
// insertion order (as Step Functions prints them) and compare key-order
// insensitively; numbers keep the integer/double distinction of their literal
// and compare by value.
//
// Thread safety: a Value may be read from several threads at once. Mutating
// accessors (mutable_*, Set, Append) clone shared nodes first, so they never
// change a node another Value can see.
#ifndef SAGA_COORDINATOR_COMMON_JSON_H_
#define SAGA_COORDINATOR_COMMON_JSON_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace saga::json {

enum class Type : uint8_t { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

// "null", "boolean", "number", "string", "array", "object".
std::string_view TypeName(Type t);

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Object = std::vector<Member>;

class Value {
 public:
  Value() noexcept : type_(Type::kNull), i_(0) {}
  Value(std::nullptr_t) noexcept : type_(Type::kNull), i_(0) {}   // NOLINT
  Value(bool b) noexcept : type_(Type::kBool), i_(0) { b_ = b; }  // NOLINT
  Value(int i) noexcept : type_(Type::kInt), i_(i) {}             // NOLINT
  Value(int64_t i) noexcept : type_(Type::kInt), i_(i) {}         // NOLINT
  Value(double d) noexcept : type_(Type::kDouble), d_(d) {}       // NOLINT
  Value(const char* s) : Value(std::string(s)) {}                 // NOLINT
  Value(std::string_view s) : Value(std::string(s)) {}            // NOLINT
  Value(std::string s);                                           // NOLINT
  Value(Array a);                                                 // NOLINT
  Value(Object o);                                                // NOLINT

  static Value EmptyObject() { return Value(Object{}); }
  static Value EmptyArray() { return Value(Array{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_double() const { return type_ == Type::kDouble; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kDouble; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // REQUIRES: the matching is_*() is true (as_double accepts ints too).
  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_double() const { return type_ == Type::kInt ? static_cast<double>(i_) : d_; }
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;

  // True when this is a number with an integral value that fits int64.
  bool is_integral() const;

  // Copy-on-write access. REQUIRES: is_array() / is_object().
  Array& mutable_array();
  Object& mutable_object();

  // Object helpers. Find returns nullptr when absent or not an object.
  const Value* Find(std::string_view key) const;
  // REQUIRES: is_object(). Replaces an existing member in place.
  void Set(std::string_view key, Value v);
  // REQUIRES: is_object(). Returns whether a member was removed.
  bool Erase(std::string_view key);
  // REQUIRES: is_array().
  void Append(Value v) { mutable_array().push_back(std::move(v)); }

  // Number of elements/members; 0 for scalars.
  size_t size() const;

  // Structural equality: numbers by value, object members in any order.
  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

  // Compact serialisation (no spaces), members in insertion order.
  std::string Dump() const;
  void DumpTo(std::string* out) const;
  // Human-readable serialisation with the given indent.
  std::string Pretty(int indent = 2) const;

  // Whether two values share the same node (cheap identity test for tests).
  bool SharesNodeWith(const Value& o) const { return ptr_ && ptr_ == o.ptr_; }

 private:
  void PrettyTo(std::string* out, int indent, int depth) const;

  Type type_;
  union {
    bool b_;
    int64_t i_;
    double d_;
  };
  std::shared_ptr<void> ptr_;  // std::string, Array or Object
};

// Parses RFC 8259 JSON. Errors name the byte offset and what was expected.
// Nesting deeper than 512 levels is refused rather than risking the stack.
absl::StatusOr<Value> Parse(std::string_view text);

// Appends code point `cp` encoded as UTF-8.
void AppendUtf8(uint32_t cp, std::string* out);

// Appends `s` as a quoted, escaped JSON string.
void AppendQuoted(std::string_view s, std::string* out);

// Exact byte length of Dump() without building the string.
size_t SerializedSize(const Value& v);

// Whether Dump() would be at most `limit` bytes. Cheap for values far below
// the limit: it first walks a fast upper bound and computes the exact size
// only when that bound exceeds the limit.
bool FitsIn(const Value& v, size_t limit);

// Formats a number the way Dump does (doubles keep a ".0" when integral).
std::string FormatNumber(const Value& number);

}  // namespace saga::json

#endif  // SAGA_COORDINATOR_COMMON_JSON_H_
