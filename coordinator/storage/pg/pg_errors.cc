#include "coordinator/storage/pg/pg_errors.h"

#include <pqxx/pqxx>

#include "coordinator/common/strings.h"

namespace saga::storage {

absl::Status CurrentExceptionToStatus(std::string_view what_doing, bool* broken) {
  *broken = false;
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    *broken = true;
    return absl::UnavailableError(saga::StrCat(what_doing, ": database unavailable: ", e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    *broken = true;
    return absl::UnavailableError(
        saga::StrCat(what_doing, ": connection lost during commit: ", e.what()));
  } catch (const pqxx::unique_violation& e) {
    return absl::AlreadyExistsError(saga::StrCat(what_doing, ": ", e.what()));
  } catch (const pqxx::serialization_failure& e) {
    return absl::AbortedError(saga::StrCat(what_doing, ": ", e.what()));
  } catch (const pqxx::deadlock_detected& e) {
    return absl::AbortedError(saga::StrCat(what_doing, ": ", e.what()));
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    // No SQLSTATE: libpq's own error, not the server's. A statement outside
    // a transaction block (pqxx::nontransaction) whose server goes away
    // mid-way fails like this ("server closed the connection unexpectedly"),
    // and it may or may not have committed: the caller retries, and what was
    // applied refuses the retry (stale version or token).
    if (state.empty()) {
      *broken = true;
      return absl::UnavailableError(
          saga::StrCat(what_doing, ": connection lost, the statement may have been applied: ", e.what()));
    }
    // Class 08 (connection exception), 57P (operator intervention: shutdown,
    // terminated backend), 53 (insufficient resources): the server or the
    // connection went away; retry later on a fresh connection.
    if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state.rfind("53", 0) == 0) {
      *broken = true;
      return absl::UnavailableError(saga::StrCat(what_doing, ": database unavailable: ", e.what()));
    }
    if (state == "55P03") {  // lock_not_available (NOWAIT / SKIP LOCKED)
      return absl::ResourceExhaustedError(saga::StrCat(what_doing, ": row is locked"));
    }
    return absl::InternalError(saga::StrCat(what_doing, ": ", e.what(), " (SQLSTATE ", state, ")"));
  } catch (const std::exception& e) {
    // libpqxx reports a dead connection on reuse as a plain failure.
    std::string msg = e.what();
    if (msg.find("onnection") != std::string::npos) {
      *broken = true;
      return absl::UnavailableError(saga::StrCat(what_doing, ": database unavailable: ", msg));
    }
    return absl::InternalError(saga::StrCat(what_doing, ": ", msg));
  }
}

}  // namespace saga::storage
