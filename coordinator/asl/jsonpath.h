// JSONPath as the Amazon States Language uses it (Jayway semantics, as AWS).
//
// Syntax: "$" (or "$$" for the context object) followed by any of
//   .name   ['name']   ["name"]   [3]   [-1]   [*]   .*   [1:5]   [::2]
//   [0,2]   ['a','b']   ..name   ..*   [?(@.price < 10)]   [?(@.tag)]
// Filter expressions support @-relative paths, literals (numbers, 'strings',
// "strings", true, false, null), == != < <= > >= =~ (regex /.../), && || !
// and parentheses.
//
// A path is *definite* when it has no wildcard, slice, union, filter or
// recursive descent: it names at most one node. Evaluating a definite path
// yields that node or NotFound; an indefinite path yields an array of every
// match (possibly empty), as Jayway does.
//
// A *reference path* (ASL spec) is a definite path made only of names and
// indexes; ResultPath, Wait SecondsPath/TimestampPath, ErrorPath... require one.
//
// Thread safety: a parsed JsonPath is immutable and can be shared.
#ifndef SAGA_COORDINATOR_ASL_JSONPATH_H_
#define SAGA_COORDINATOR_ASL_JSONPATH_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/common/json.h"

namespace saga::asl {

class JsonPath {
 public:
  // Parses `text`. On error the status is InvalidArgument with a message such
  // as "invalid JSONPath '$.a[': unterminated bracket at position 3".
  static absl::StatusOr<JsonPath> Parse(std::string_view text);

  const std::string& text() const;
  // True for "$$..." paths: evaluated against the context object.
  bool is_context() const;
  bool is_definite() const;
  bool is_reference_path() const;
  // True for exactly "$" (or "$$").
  bool is_root() const;

  // Evaluates against `input` (or `context` for $$ paths).
  // Definite path: the node, or NotFound("... '$.a.b' ...") when absent.
  // Indefinite path: an array of all matches in document order.
  absl::StatusOr<json::Value> Evaluate(const json::Value& input, const json::Value& context) const;

  // For reference paths only: returns a copy of `root` with `value` placed at
  // this path, creating missing intermediate objects. "$" returns `value`.
  // FailedPrecondition when an existing intermediate node is not an object
  // (or the index is out of range for arrays): States.ResultPathMatchFailure.
  // REQUIRES: is_reference_path() && !is_context().
  absl::StatusOr<json::Value> Assign(const json::Value& root, json::Value value) const;

  JsonPath();
  ~JsonPath();
  JsonPath(const JsonPath&);
  JsonPath& operator=(const JsonPath&);
  JsonPath(JsonPath&&) noexcept;
  JsonPath& operator=(JsonPath&&) noexcept;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace saga::asl

#endif  // SAGA_COORDINATOR_ASL_JSONPATH_H_
