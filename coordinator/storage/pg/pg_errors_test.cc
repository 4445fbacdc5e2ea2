// CurrentExceptionToStatus: what each pqxx failure tells the caller to do.
#include "coordinator/storage/pg/pg_errors.h"

#include <pqxx/pqxx>

#include <stdexcept>
#include <string>

#include "gtest/gtest.h"

namespace saga::storage {
namespace {

template <typename E>
absl::Status Map(const E& e, bool* broken) {
  try {
    throw e;
  } catch (...) {
    return CurrentExceptionToStatus("transition", broken);
  }
}

TEST(PgErrors, AConnectionLostMidStatementIsUnavailableAndDropsTheConnection) {
  // What libpqxx 6.4 throws for a pqxx::nontransaction statement whose server
  // stopped while it ran: an sql_error without SQLSTATE (libpq's message).
  bool broken = false;
  absl::Status s = Map(pqxx::sql_error("server closed the connection unexpectedly\n"
                                       "\tThis probably means the server terminated abnormally\n",
                                       "EXECUTE write_batch_11"),
                       &broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(broken);
  EXPECT_NE(s.message().find("transition: connection lost"), std::string::npos) << s;
}

TEST(PgErrors, ServerErrorsKeepTheirMeaning) {
  bool broken = true;
  absl::Status s = Map(pqxx::sql_error("division by zero", "SELECT 1/0", "22012"), &broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_FALSE(broken);
  EXPECT_NE(s.message().find("SQLSTATE 22012"), std::string::npos) << s;

  s = Map(pqxx::sql_error("terminating connection due to administrator command", "", "57P01"), &broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(broken);

  s = Map(pqxx::unique_violation("duplicate key", "INSERT", "23505"), &broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_FALSE(broken);

  s = Map(pqxx::broken_connection("gone"), &broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(broken);

  s = Map(std::runtime_error("something else"), &broken);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_FALSE(broken);
}

}  // namespace
}  // namespace saga::storage
