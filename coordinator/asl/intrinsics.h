// The 18 Step Functions intrinsic functions (States.Format, ...), parsed once
// into a call tree and evaluated against a state's input and context object.
//
// Arguments are 'single-quoted strings' (escapes \' \{ \} \\), numbers, true,
// false, null, JSONPaths ($..., $$...) and nested intrinsic calls.
// Evaluation failures (wrong argument count or type, bad JSON for
// StringToJson, index out of range, ...) are AslError(States.IntrinsicFailure,
// cause); a path argument that matches nothing is
// AslError(States.Runtime, cause) as on AWS.
//
// Thread safety: a parsed Intrinsic is immutable and can be shared.
#ifndef SAGA_COORDINATOR_ASL_INTRINSICS_H_
#define SAGA_COORDINATOR_ASL_INTRINSICS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/common/json.h"
#include "coordinator/common/rng.h"

namespace saga::asl {

// True when `s` looks like an intrinsic call ("States.Xxx(").
bool LooksLikeIntrinsic(std::string_view s);

struct IntrinsicEnv {
  const json::Value& input;
  const json::Value& context;
  Rng* rng;  // for States.MathRandom and States.UUID; never null
};

class Intrinsic {
 public:
  // Parses and checks the call statically: unknown function names, syntax,
  // and argument counts known at parse time. Errors are InvalidArgument with a
  // plain message naming the problem.
  static absl::StatusOr<Intrinsic> Parse(std::string_view text);

  absl::StatusOr<json::Value> Evaluate(const IntrinsicEnv& env) const;
  const std::string& text() const;

  Intrinsic();
  ~Intrinsic();
  Intrinsic(const Intrinsic&);
  Intrinsic& operator=(const Intrinsic&);
  Intrinsic(Intrinsic&&) noexcept;
  Intrinsic& operator=(Intrinsic&&) noexcept;

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  std::string text_;
};

}  // namespace saga::asl

#endif  // SAGA_COORDINATOR_ASL_INTRINSICS_H_
