// RETURN_IF_ERROR / ASSIGN_OR_RETURN: Debian's abseil 20220623 ships neither.
#ifndef SAGA_COORDINATOR_COMMON_STATUS_MACROS_H_
#define SAGA_COORDINATOR_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SAGA_CONCAT_INNER_(a, b) a##b
#define SAGA_CONCAT_(a, b) SAGA_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status saga_status_ = (expr);        \
    if (!saga_status_.ok()) return saga_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(SAGA_CONCAT_(saga_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // SAGA_COORDINATOR_COMMON_STATUS_MACROS_H_
