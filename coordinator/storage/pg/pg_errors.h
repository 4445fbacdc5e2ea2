// The only place that turns pqxx exceptions into absl::Status.
// Codes follow what the caller should do: ABORTED retry the whole
// read-modify-write, UNAVAILABLE retry later, ALREADY_EXISTS, INTERNAL.
#ifndef SAGA_COORDINATOR_STORAGE_PG_PG_ERRORS_H_
#define SAGA_COORDINATOR_STORAGE_PG_PG_ERRORS_H_

#include <exception>
#include <string_view>

#include "absl/status/status.h"

namespace saga::storage {

// Maps the exception currently being handled (call inside a catch block).
// Sets *broken when the connection can no longer be used.
absl::Status CurrentExceptionToStatus(std::string_view what_doing, bool* broken);

}  // namespace saga::storage

#endif  // SAGA_COORDINATOR_STORAGE_PG_PG_ERRORS_H_
