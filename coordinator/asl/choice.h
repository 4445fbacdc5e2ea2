// Choice state rules: compiled once from the definition, evaluated per input.
//
// Supports every comparison operator of the ASL spec and its ...Path form
// (StringEquals, StringLessThan(Equals), StringGreaterThan(Equals),
// StringMatches, NumericEquals/LessThan/..., BooleanEquals, TimestampEquals/
// LessThan/..., each with Path), the type tests IsNull, IsPresent, IsNumeric,
// IsString, IsBoolean, IsTimestamp (true or false), and And / Or / Not.
//
// Semantics as on AWS: a comparison whose operand has the wrong type is
// false (not an error); a Variable that matches nothing is States.Runtime
// except under IsPresent, which is then false; a ...Path operand that matches
// nothing is States.Runtime. StringMatches supports '*' and the escapes '\*'
// and '\\'. Timestamps are RFC 3339 (as AWS: "2016-03-14T01:59:00Z",
// fractional seconds and offsets allowed).
//
// Thread safety: a compiled ChoiceRule is immutable and can be shared.
#ifndef SAGA_COORDINATOR_ASL_CHOICE_H_
#define SAGA_COORDINATOR_ASL_CHOICE_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/common/json.h"

namespace saga::asl {

class ChoiceRule {
 public:
  // Compiles a rule object (a top-level Choices entry or a nested rule;
  // "Next" and "Comment" members are ignored here). Errors are InvalidArgument
  // with a plain message; the validator reports paths.
  static absl::StatusOr<ChoiceRule> Compile(const json::Value& rule);

  // Whether the rule matches. Errors: AslError(States.Runtime, cause).
  absl::StatusOr<bool> Matches(const json::Value& input, const json::Value& context) const;

  ChoiceRule();
  ~ChoiceRule();
  ChoiceRule(const ChoiceRule&);
  ChoiceRule& operator=(const ChoiceRule&);
  ChoiceRule(ChoiceRule&&) noexcept;
  ChoiceRule& operator=(ChoiceRule&&) noexcept;

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
};

// Parses an RFC 3339 timestamp into microseconds since the Unix epoch.
std::optional<int64_t> ParseTimestampMicros(std::string_view s);

}  // namespace saga::asl

#endif  // SAGA_COORDINATOR_ASL_CHOICE_H_
