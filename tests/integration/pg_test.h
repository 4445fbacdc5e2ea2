// The base fixture of the integration tests: a fresh database per test on the
// PostgreSQL server of the ctest fixture. Without SAGA_TEST_PG the test
// fails (it never skips).
#ifndef SAGA_TESTS_INTEGRATION_PG_TEST_H_
#define SAGA_TESTS_INTEGRATION_PG_TEST_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace saga::itest {

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<TestDatabase>(AdminDsn());
    ASSERT_TRUE(db_->ok()) << db_->error();
  }
  const std::string& dsn() const { return db_->dsn(); }

  // A coordinator on this test's database, listening.
  std::unique_ptr<CoordinatorProcess> Start(const CoordinatorOptions& o = {},
                                            const std::string& label = "coordinator") {
    return StartCoordinator(dsn(), o, label);
  }
  // A coordinator on this test's database listening on `address` (where an
  // earlier one listened: its workers find it there).
  std::unique_ptr<CoordinatorProcess> StartOn(const std::string& address,
                                              const std::string& label = "restarted") {
    CoordinatorOptions o;
    o.listen = address;
    return Start(o, label);
  }

  std::unique_ptr<TestDatabase> db_;
};

}  // namespace saga::itest

#endif  // SAGA_TESTS_INTEGRATION_PG_TEST_H_
